"""Enumerated (RFC 6733 §4.3.1): an Integer32 whose valid values a definition lists.

On the wire it is an Integer32; :func:`to_enum` turns the number into the named value of an
:class:`~enum.IntEnum` and refuses an undefined one with 5004, which RFC 6733 §4.3.1 prescribes
for an unrecognised value of a mandatory Enumerated AVP.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

from protocols.diameter.constants import ResultCode
from protocols.diameter.datatypes.integer import pull_integer32, push_integer32
from protocols.diameter.errors import DiameterError

E = TypeVar("E", bound=IntEnum)


def pull_enumerated(data: bytes) -> int:
    """Decode the Integer32 carrying the value."""
    return pull_integer32(data)


def push_enumerated(value: int) -> bytes:
    """Encode the Integer32 carrying the value."""
    return push_integer32(value)


def to_enum(enum_type: type[E], value: int) -> E:
    """Return the member of *enum_type* for *value*, or raise 5004 if it has none."""
    try:
        return enum_type(value)
    except ValueError:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_AVP_VALUE,
            f"{value} is not a valid {enum_type.__name__}",
        ) from None


def to_enum_or_int(enum_type: type[E], value: int) -> E | int:
    """Return the member of *enum_type* for *value*, or *value* itself when it has none."""
    try:
        return enum_type(value)
    except ValueError:
        return value
