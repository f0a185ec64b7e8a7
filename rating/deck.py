"""Rate decks in memory: effective-dated rates found by longest-prefix match.

A deck holds every rate it has had and will have (a version of an import never rewrites
history; it ends rates and starts new ones). ``Deck.lookup`` returns the rate in force at a
call's start time for the longest prefix of the number that has one: a prefix whose only rates
are not yet effective, expired, or outside their time-of-day band falls through to a shorter
prefix. Times are UTC epoch seconds; bands are matched on the account's local weekday and
second of the day, computed once per call by the caller.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol

import marisa_trie

ALL_WEEKDAYS = 0b111_1111
"""Bit 0 is Monday, bit 6 Sunday (``datetime.weekday()``)."""
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Band:
    """A weekly time window in local time; ``end_s < start_s`` wraps past midnight."""

    weekdays: int = ALL_WEEKDAYS
    start_s: int = 0
    end_s: int = SECONDS_PER_DAY

    def __post_init__(self) -> None:
        if not 0 < self.weekdays <= ALL_WEEKDAYS:
            raise ValueError("a band needs at least one weekday")
        if not (0 <= self.start_s < SECONDS_PER_DAY and 0 < self.end_s <= SECONDS_PER_DAY):
            raise ValueError("band times must lie within one day")
        if self.start_s == self.end_s:
            raise ValueError("a band must not be empty")

    def contains(self, weekday: int, second_of_day: int) -> bool:
        """Whether a local (weekday, second of day) falls inside the band."""
        if self.start_s < self.end_s:
            return bool(self.weekdays >> weekday & 1) and (
                self.start_s <= second_of_day < self.end_s
            )
        # Overnight band: the part after midnight belongs to the previous day's window.
        if second_of_day >= self.start_s:
            return bool(self.weekdays >> weekday & 1)
        if second_of_day < self.end_s:
            return bool(self.weekdays >> ((weekday - 1) % 7) & 1)
        return False

    def overlaps(self, other: Band) -> bool:
        """Whether some local moment of the week lies in both bands."""
        mine = self.week_spans()
        return any(a < d and c < b for a, b in mine for c, d in other.week_spans())

    def week_spans(self) -> list[tuple[int, int]]:
        """Return the band as [start, end) second-of-week spans (Monday 00:00 is 0)."""
        week = 7 * SECONDS_PER_DAY
        spans: list[tuple[int, int]] = []
        for day in range(7):
            if not self.weekdays >> day & 1:
                continue
            base = day * SECONDS_PER_DAY
            if self.start_s < self.end_s:
                spans.append((base + self.start_s, base + self.end_s))
            else:
                spans.append((base + self.start_s, base + SECONDS_PER_DAY))
                after = (base + SECONDS_PER_DAY) % week
                spans.append((after, after + self.end_s))
        return spans

    def describe(self) -> str:
        """Return the band in the CSV notation, e.g. ``mon-fri 08:00-18:00``."""
        days = format_weekdays(self.weekdays)
        return f"{days} {_hhmm(self.start_s)}-{_hhmm(self.end_s)}"


def _hhmm(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def format_weekdays(mask: int) -> str:
    """Return a weekday mask as ``mon-fri``, ``sat,sun`` or ``all``."""
    if mask == ALL_WEEKDAYS:
        return "all"
    days = [i for i in range(7) if mask >> i & 1]
    runs: list[str] = []
    start = prev = days[0]
    for day in [*days[1:], None]:
        if day is not None and day == prev + 1:
            prev = day
            continue
        runs.append(
            WEEKDAY_NAMES[start]
            if start == prev
            else f"{WEEKDAY_NAMES[start]}-{WEEKDAY_NAMES[prev]}"
        )
        if day is not None:
            start = prev = day
    return ",".join(runs)


@dataclass(frozen=True, slots=True)
class Rate:
    """One line of a deck: the price of calls to ``prefix`` during its effective period."""

    prefix: str
    destination: str
    rate_micros: int
    """Price per minute in micro-units of the deck's currency."""
    connect_fee_micros: int
    first_block_s: int
    increment_s: int
    grace_s: int
    effective_from: int
    """UTC epoch seconds, inclusive."""
    effective_to: int | None
    """UTC epoch seconds, exclusive; ``None`` while open-ended."""
    band: Band | None = None
    version: int = 0
    """The deck version (import) that brought this rate."""

    def in_force(self, at: int) -> bool:
        """Whether the rate is effective at UTC epoch second ``at``."""
        return self.effective_from <= at and (self.effective_to is None or at < self.effective_to)

    def same_price(self, other: Rate) -> bool:
        """Whether two rates charge the same for every call."""
        return (
            self.rate_micros == other.rate_micros
            and self.connect_fee_micros == other.connect_fee_micros
            and self.first_block_s == other.first_block_s
            and self.increment_s == other.increment_s
            and self.grace_s == other.grace_s
        )


LEAD_DIGITS = 2
NEVER = 1 << 62
"""A UTC second no call starts at."""


def _lengths_by_lead(index: dict[str, Rate | tuple[Rate, ...]]) -> dict[str, tuple[int, ...]]:
    """For each possible lead of a number, the prefix lengths worth probing, longest first."""
    lengths: dict[str, set[int]] = {}
    short = [p for p in index if len(p) < LEAD_DIGITS]
    for prefix in index:
        if len(prefix) >= LEAD_DIGITS:
            lengths.setdefault(prefix[:LEAD_DIGITS], set()).add(len(prefix))
    leads = set(lengths)
    # Numbers shorter than the lead, and leads that only short prefixes cover.
    for digit in "0123456789":
        leads.add(digit)
        for second in "0123456789":
            leads.add(digit + second)
    out: dict[str, tuple[int, ...]] = {}
    for lead in leads:
        found = set(lengths.get(lead, ()))
        found.update(len(p) for p in short if lead.startswith(p))
        if found:
            out[lead] = tuple(sorted(found, reverse=True))
    return out


class Deck:
    """An immutable rate deck indexed for longest-prefix match."""

    __slots__ = (
        "_entries",
        "_index",
        "_lengths_by_lead",
        "_plain_since",
        "_prefixes_of",
        "_size",
        "_trie",
        "currency",
        "deck_id",
        "lookup",
        "name",
        "version",
    )

    lookup: _Lookup
    """``lookup(number, at, weekday=0, second_of_day=0)``: the rate for ``number`` at UTC second
    ``at`` (longest prefix first), or None."""

    def __init__(
        self,
        deck_id: str,
        currency: str,
        rates: Iterable[Rate],
        *,
        name: str = "",
        version: int = 0,
    ) -> None:
        self.deck_id = deck_id
        self.currency = currency
        self.name = name or deck_id
        self.version = version
        index: dict[str, Rate | tuple[Rate, ...]] = {}
        size = 0
        for rate in rates:
            size += 1
            existing = index.get(rate.prefix)
            if existing is None:
                index[rate.prefix] = rate
            elif isinstance(existing, Rate):
                index[rate.prefix] = (existing, rate)
            else:
                index[rate.prefix] = (*existing, rate)
        # Several rates per prefix: newest first, so the lookup stops at the current one.
        for prefix, entry in index.items():
            if isinstance(entry, tuple):
                index[prefix] = tuple(sorted(entry, key=lambda r: -r.effective_from))
        self._index = index
        self._lengths_by_lead = _lengths_by_lead(index)
        # The longest-prefix walk runs in a compact trie (a few MB for a million prefixes):
        # it finds every prefix of a number in one pass in C, where probing a dictionary at
        # each candidate length costs a cache miss per probe. The trie numbers its keys; the
        # rates sit in a list at those numbers.
        trie = _trie(index)
        entries: list[Rate | tuple[Rate, ...]] = [None] * len(trie)  # type: ignore[list-item]
        for prefix, key_id in trie.iteritems():
            entries[key_id] = index[prefix]
        self._trie = trie
        self._entries = entries
        self._prefixes_of = trie.iter_prefixes_with_ids
        self._size = size
        # From this second on every prefix's one rate is in force (no dates ahead or behind,
        # no bands): the lookup returns the longest prefix's rate without checking it.
        plain_since = _open_since(self, 0)
        self._plain_since = NEVER if plain_since is None else plain_since
        self.lookup = _walk(self)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Rate]:
        for entry in self._index.values():
            if isinstance(entry, Rate):
                yield entry
            else:
                yield from entry

    def prefixes(self) -> int:
        """Return the number of distinct prefixes."""
        return len(self._index)

    def _lookup_shorter(
        self, number: str, at: int, weekday: int, second_of_day: int
    ) -> Rate | None:
        """The walk when the longest prefix has no rate in force: the shorter prefixes of the
        number, longest first, and each one's rates newest first."""
        entries = self._entries
        for key_id in reversed([key_id for _prefix, key_id in self._prefixes_of(number)][:-1]):
            rate = _in_force(entries[key_id], at, weekday, second_of_day)
            if rate is not None:
                return rate
        return None

    def window(self, at: int) -> tuple[dict[str, Rate], int, int] | None:
        """The rate in force at ``at`` of each prefix that has one, and the span [since,
        until) around ``at`` in which exactly these rates are in force (no rate starts or
        ends inside it); None when a rate has a band (what is in force depends on the hour).
        """
        since, until = 0, NEVER
        current: dict[str, Rate] = {}
        for prefix, entry in self._index.items():
            rates: tuple[Rate, ...] = (entry,) if isinstance(entry, Rate) else entry
            for rate in rates:  # newest first: the first in force is the lookup's
                if rate.band is not None:
                    return None
                start, end = rate.effective_from, rate.effective_to
                if start > at:
                    until = min(until, start)
                elif end is not None and end <= at:
                    since = max(since, end)
                else:
                    since = max(since, start)
                    if end is not None:
                        until = min(until, end)
                    current.setdefault(prefix, rate)
        return current, since, until

    def in_force(self, at: int) -> dict[str, list[Rate]]:
        """Return the rates effective at ``at``, by prefix (every band)."""
        out: dict[str, list[Rate]] = {}
        for rate in self:
            if rate.in_force(at):
                out.setdefault(rate.prefix, []).append(rate)
        return out


class DeckUnion:
    """Several decks under one prefix index: one longest-prefix walk finds every deck's rate.

    Routing needs the rate of each carrier's deck for the same number. Looking it up deck by
    deck probes every deck at every prefix length, and in million-prefix decks each probe is a
    cache miss. Here one dictionary maps each prefix to the bit mask of the decks that have it:
    the walk probes each length once, then only the decks whose bit is set and which have not
    found their rate yet. A deck's answer is exactly ``Deck.lookup``'s (same prefixes and
    lengths tried, same effective dates and bands, longest prefix first).
    """

    __slots__ = (
        "_indexes",
        "_lengths_by_lead",
        "_mask_of",
        "_masks",
        "_prefixes_of",
        "_short",
        "_since",
        "_slots",
        "_until",
        "_views",
        "decks",
    )

    _lengths_by_lead: dict[str, tuple[tuple[int, int], ...]]

    def __init__(self, decks: Sequence[Deck], at: int | None = None) -> None:
        """``at``: the moment (UTC second) whose rates in force the index is built on, so
        that decks which keep their rate history (ended rates, rates to come) are walked as
        if they held only the rates in force (see ``plain``); None: only decks whose every
        rate is in force for good are."""
        self.decks = tuple(decks)
        views = [_window_view(deck, at) for deck in self.decks]
        self._views = all(view is not None for view in views)
        """The index holds, per deck, the one rate in force of each prefix during
        ``[_since, _until)``, in a trie; else every rate of every deck (some deck has banded
        rates), walked length by length."""
        if self._views:
            indexes = [view[0] for view in views]  # type: ignore[index]
            self._since = max((view[1] for view in views), default=0)  # type: ignore[index]
            self._until = min((view[2] for view in views), default=NEVER)  # type: ignore[index]
        else:
            indexes = [deck._index for deck in self.decks]
            self._since, self._until = NEVER, 0
        self._indexes = tuple(indexes)
        self._slots: dict[int, tuple[tuple[int, int], ...]] = {}
        """Mask -> its (position, bit) pairs, filled as masks are met."""
        # Built with dictionary and set operations in C: only prefixes that several decks
        # share go through Python, once per deck that shares them.
        masks: dict[str, int] = {}
        for slot, index in enumerate(indexes):
            bit = 1 << slot
            keys = index.keys()
            shared = {prefix: masks[prefix] | bit for prefix in keys & masks.keys()}
            masks.update(dict.fromkeys(keys, bit))
            masks.update(shared)
        self._prefixes_of: Callable[[str], Iterator[tuple[str, int]]] | None = None
        self._mask_of: array[int] = array("Q")
        self._masks: dict[str, int] = {}
        self._lengths_by_lead = {}
        self._short: tuple[tuple[int, int], ...] = ()
        if self._views:
            # While ``plain``, the walk runs in a trie of every deck's prefixes (every prefix
            # of a number found in one pass in C, instead of a dictionary probe per length);
            # the trie numbers its keys, and the decks' mask of each key sits at its number.
            trie = _trie(masks)
            mask_of = array("Q", bytes(8 * len(trie)))
            for prefix, key_id in trie.iteritems():
                mask_of[key_id] = masks[prefix]
            self._prefixes_of = trie.iter_prefixes_with_ids
            self._mask_of = mask_of
            return
        self._masks = masks
        # Per lead, the lengths to probe and which decks probe each: exactly the lengths each
        # deck's own lookup would try for that lead.
        allowed: dict[str, dict[int, int]] = {}
        for slot, deck in enumerate(self.decks):
            bit = 1 << slot
            for lead, found in deck._lengths_by_lead.items():
                per_length = allowed.setdefault(lead, {})
                for length in found:
                    per_length[length] = per_length.get(length, 0) | bit
        # Prefixes shorter than a lead (a catch-all "", a one-digit country code) start
        # numbers of every lead: each lead probes those of every deck, and a number whose lead
        # no prefix starts (a sign, a letter, an empty number) probes only them.
        short: dict[int, int] = {}
        for slot, index in enumerate(indexes):
            bit = 1 << slot
            for prefix in [p for p in index if len(p) < LEAD_DIGITS]:
                short[len(prefix)] = short.get(len(prefix), 0) | bit
                for lead, per_length in allowed.items():
                    if lead.startswith(prefix):
                        per_length[len(prefix)] = per_length.get(len(prefix), 0) | bit
        self._short = tuple(sorted(short.items(), reverse=True))
        self._lengths_by_lead = {
            lead: tuple(sorted(per_length.items(), reverse=True))
            for lead, per_length in allowed.items()
        }

    def __len__(self) -> int:
        """How many prefixes the index holds (of all decks)."""
        return len(self._mask_of) + len(self._masks)

    def _pairs(self, mask: int) -> tuple[tuple[int, int], ...]:
        pairs = tuple((slot, 1 << slot) for slot in range(mask.bit_length()) if mask >> slot & 1)
        if len(self._slots) < _MAX_MASKS:
            self._slots[mask] = pairs
        return pairs

    def covers(self, at: int) -> bool:
        """Whether the index serves ``at`` as well as an index built on it would."""
        return not self._views or self._since <= at < self._until

    @property
    def until(self) -> int:
        """When the rates in force the index holds stop being those in force (``NEVER``:
        they stay)."""
        return self._until if self._views else NEVER

    def plain(self, at: int) -> bool:
        """Whether at ``at`` each prefix of the index has one rate, in force, unbanded: the
        rates in force are those the index was built on (or every rate is in force for good).

        Then a deck's answer for a number is the one rate of the longest prefix ``prefixes``
        finds for it.
        """
        return self._since <= at < self._until

    def prefixes(self, number: str, wanted: int) -> list[str | None]:
        """The longest prefix of ``number`` that each deck in ``wanted`` has, by position
        (None: the deck has none); only while ``plain`` holds at the call's start. Then each
        prefix's one rate (``rate``) is the deck's answer, so a caller that keeps what it
        derived from a rate per prefix need not read the deck at all: in million-prefix decks
        each read is a cache miss.
        """
        found: list[str | None] = [None] * len(self.decks)
        prefixes_of = self._prefixes_of
        assert prefixes_of is not None, "only while plain"
        slots = self._slots
        mask_of = self._mask_of
        for prefix, key_id in reversed(list(prefixes_of(number))):
            hits = mask_of[key_id] & wanted
            if not hits:
                continue
            pairs = slots.get(hits)
            if pairs is None:
                pairs = self._pairs(hits)
            for slot, _bit in pairs:
                found[slot] = prefix
            wanted ^= hits
            if not wanted:
                break
        return found

    def rate(self, position: int, prefix: str) -> Rate:
        """The one rate of a prefix that ``prefixes`` found, while ``plain`` holds."""
        entry = self._indexes[position][prefix]
        assert isinstance(entry, Rate)
        return entry

    def lookup(
        self, number: str, at: int, weekday: int, second_of_day: int, wanted: int
    ) -> list[Rate | None]:
        """The rate of each deck whose bit (``1 << position``) is in ``wanted``, by position."""
        if self._views:
            if self._since <= at < self._until:
                indexes = self._indexes
                return [
                    None if prefix is None else indexes[slot][prefix]  # type: ignore[misc]
                    for slot, prefix in enumerate(self.prefixes(number, wanted))
                ]
            # A moment other than the one the index holds: each deck's own walk.
            return [
                deck.lookup(number, at, weekday, second_of_day) if wanted >> slot & 1 else None
                for slot, deck in enumerate(self.decks)
            ]
        found: list[Rate | None] = [None] * len(self.decks)
        get = self._masks.get
        slots = self._slots
        indexes = self._indexes
        size = len(number)
        for length, decks in self._lengths_by_lead.get(number[:LEAD_DIGITS], self._short):
            if length > size:
                continue
            prefix = number[:length]
            mask = get(prefix)
            if mask is None:
                continue
            hits = mask & wanted & decks
            if not hits:
                continue
            pairs = slots.get(hits)
            if pairs is None:
                pairs = self._pairs(hits)
            # Some deck has banded rates: each rate found is checked at the moment.
            for slot, bit in pairs:
                rate = _in_force(indexes[slot][prefix], at, weekday, second_of_day)
                if rate is not None:
                    found[slot] = rate
                    wanted ^= bit
            if not wanted:
                break
        return found


def _window_view(
    deck: Deck, at: int | None
) -> tuple[Mapping[str, Rate | tuple[Rate, ...]], int, int] | None:
    """A deck as ``DeckUnion`` walks it while ``plain``: its index and the span [since, until)
    in which each prefix of that index has one rate, in force; None when some rate is banded
    (or, with no ``at``, when some rate is dated)."""
    open_since = _open_since(deck, 0)
    if open_since is not None:
        return deck._index, open_since, NEVER
    if at is None:
        return None
    window = deck.window(at)
    return None if window is None else window


def _open_since(deck: Deck, since: int) -> int | None:
    """When every rate of ``deck`` is in force for good (one open-ended rate per prefix, no
    bands), the latest of their starts and ``since``; else None."""
    entries = deck._index.values()
    if set(map(type, entries)) - {Rate}:
        return None
    rates: Iterable[Rate] = entries  # type: ignore[assignment]
    if set(map(_END, rates)) - {None} or set(map(_BAND, rates)) - {None}:
        return None
    return max(since, max(map(_START, rates), default=0))


class _Lookup(Protocol):
    def __call__(
        self, number: str, at: int, weekday: int = 0, second_of_day: int = 0
    ) -> Rate | None: ...


def _walk(deck: Deck) -> _Lookup:
    """``Deck.lookup``: a function of its own per deck, the names it reads bound in its
    closure (a million-prefix deck is looked up once per rated call and once per carrier
    of each routed call: reading them off the instance costs 2-4% of a lookup)."""
    prefixes_of = deck._prefixes_of
    entries = deck._entries
    plain_since = deck._plain_since
    shorter = deck._lookup_shorter

    def lookup(number: str, at: int, weekday: int = 0, second_of_day: int = 0) -> Rate | None:
        key_id = -1
        for _prefix, key_id in prefixes_of(number):  # noqa: B007 (the last is the longest)
            pass
        if key_id < 0:
            return None
        entry = entries[key_id]
        if at >= plain_since:
            return entry  # type: ignore[return-value]
        rate = _in_force(entry, at, weekday, second_of_day)
        if rate is not None:
            return rate
        return shorter(number, at, weekday, second_of_day)

    return lookup


def _trie(keys: Iterable[str]) -> marisa_trie.Trie:
    """A trie for longest-prefix walks: one level of trie (marisa nests three by default) and
    its largest node cache. Walks are 5-8% faster for 8% more memory (2.6 MB instead of 2.4 MB
    for a million prefixes)."""
    return marisa_trie.Trie(keys, num_tries=1, cache_size=marisa_trie.HUGE_CACHE)


_START = attrgetter("effective_from")
_END = attrgetter("effective_to")
_BAND = attrgetter("band")

_MAX_MASKS = 1 << 16
"""Masks whose positions ``DeckUnion`` keeps (there are few: those of plan groups' decks)."""


def _in_force(
    entry: Rate | tuple[Rate, ...], at: int, weekday: int, second_of_day: int
) -> Rate | None:
    """The rate of ``entry`` (one rate or several, newest first) in force at the moment."""
    if entry.__class__ is Rate:
        rate: Rate = entry
        if (
            rate.effective_from <= at
            and (rate.effective_to is None or at < rate.effective_to)
            and (rate.band is None or rate.band.contains(weekday, second_of_day))
        ):
            return rate
        return None
    for rate in entry:  # type: ignore[union-attr]
        if (
            rate.effective_from <= at
            and (rate.effective_to is None or at < rate.effective_to)
            and (rate.band is None or rate.band.contains(weekday, second_of_day))
        ):
            return rate
    return None
