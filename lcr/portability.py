"""Number portability: which numbers moved to another network, looked up before rating.

Millions of ported numbers are held in three flat arrays instead of a dict of strings: the
numbers as sorted 64-bit integers (``int("1" + digits)``, so leading zeros survive), and per
number a 32-bit index into the distinct routing numbers and a 16/32-bit index into the
distinct carriers (a few thousand of each serve millions of numbers). That is 14 bytes a
number (about 70 MB for 5 million, against roughly 1 GB as a dict of strings), built without
per-row objects, and a lookup is one binary search in C (~23 steps for 5 million).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable

from lcr.model import PortedNumber

MAX_DIGITS = 18
"""A number key must fit a signed 64-bit integer with its leading ``1``."""


def number_key(number: str) -> int:
    """The integer key of a number of digits, or raise ValueError."""
    if not number.isdigit() or not number.isascii() or len(number) > MAX_DIGITS:
        raise ValueError(f"ported number {number!r} must be 1-{MAX_DIGITS} digits")
    return int("1" + number)


class PortabilityIndex:
    """An immutable ported-number table indexed for lookup."""

    __slots__ = ("_carrier_names", "_carriers", "_keys", "_routing", "_routing_numbers")

    def __init__(
        self,
        keys: array[int],
        routing: array[int],
        carriers: array[int],
        routing_numbers: list[str],
        carrier_names: list[str],
    ) -> None:
        self._keys = keys
        self._routing = routing
        self._carriers = carriers
        self._routing_numbers = routing_numbers
        self._carrier_names = carrier_names

    @classmethod
    def empty(cls) -> PortabilityIndex:
        """A table with no ported numbers."""
        return cls(array("q"), array("I"), array("H"), [], [])

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, number: str) -> PortedNumber | None:
        """The entry of ``number`` if it is ported."""
        keys = self._keys
        if not keys or not number.isdigit() or len(number) > MAX_DIGITS:
            return None
        key = int("1" + number)
        position = bisect.bisect_left(keys, key)
        if position == len(keys) or keys[position] != key:
            return None
        return PortedNumber(
            number,
            self._routing_numbers[self._routing[position]],
            self._carrier_names[self._carriers[position]],
        )

    def nbytes(self) -> int:
        """Bytes held by the arrays (the distinct strings are negligible beside them)."""
        return sum(a.itemsize * len(a) for a in (self._keys, self._routing, self._carriers))


class PortabilityBuilder:
    """Collects rows (in any order; a later row for a number wins) and builds the index."""

    def __init__(self) -> None:
        self._keys: array[int] = array("q")
        self._routing: array[int] = array("I")
        self._carriers: array[int] = array("I")
        self._routing_ids: dict[str, int] = {}
        self._carrier_ids: dict[str, int] = {}

    def add(self, number: str, routing_number: str, carrier_id: str = "") -> None:
        """Add one ported number."""
        key = number_key(number)
        routing = self._routing_ids.setdefault(routing_number, len(self._routing_ids))
        carrier = self._carrier_ids.setdefault(carrier_id, len(self._carrier_ids))
        self._keys.append(key)
        self._routing.append(routing)
        self._carriers.append(carrier)

    def extend(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Add many (number, routing number, carrier) rows."""
        for number, routing_number, carrier_id in rows:
            self.add(number, routing_number, carrier_id)

    def build(self) -> PortabilityIndex:
        """Sort (when the rows were not in key order), drop repeats, and freeze."""
        keys, routing, carriers = self._keys, self._routing, self._carriers
        count = len(keys)
        ordered = all(keys[i] < keys[i + 1] for i in range(count - 1))
        if not ordered:
            # Stable: of repeated numbers the last added stays last, and wins below.
            order = sorted(range(count), key=keys.__getitem__)
            keep = [
                index
                for position, index in enumerate(order)
                if position + 1 == count or keys[order[position + 1]] != keys[index]
            ]
            keys = array("q", (keys[i] for i in keep))
            routing = array("I", (routing[i] for i in keep))
            carriers = array("I", (carriers[i] for i in keep))
        carrier_names = [""] * len(self._carrier_ids)
        for name, index in self._carrier_ids.items():
            carrier_names[index] = name
        routing_numbers = [""] * len(self._routing_ids)
        for name, index in self._routing_ids.items():
            routing_numbers[index] = name
        narrow = array("H", carriers) if len(carrier_names) <= 0xFFFF else carriers
        self._keys, self._routing, self._carriers = array("q"), array("I"), array("I")
        return PortabilityIndex(keys, routing, narrow, routing_numbers, carrier_names)
