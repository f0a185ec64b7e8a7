"""Integer32/64 and Unsigned32/64: exact sizes, never truncated or read as 0."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from protocols.diameter.constants import ResultCode
from protocols.diameter.datatypes.integer import (
    pull_integer32,
    pull_integer64,
    pull_unsigned32,
    pull_unsigned64,
    push_integer32,
    push_integer64,
    push_unsigned32,
    push_unsigned64,
)
from protocols.diameter.errors import DiameterError


@dataclass(frozen=True)
class IntType:
    pull: Callable[[bytes], int]
    push: Callable[[int], bytes]
    size: int
    low: int
    high: int


TYPES = [
    pytest.param(IntType(pull_integer32, push_integer32, 4, -(2**31), 2**31 - 1), id="Integer32"),
    pytest.param(IntType(pull_integer64, push_integer64, 8, -(2**63), 2**63 - 1), id="Integer64"),
    pytest.param(IntType(pull_unsigned32, push_unsigned32, 4, 0, 2**32 - 1), id="Unsigned32"),
    pytest.param(IntType(pull_unsigned64, push_unsigned64, 8, 0, 2**64 - 1), id="Unsigned64"),
]


@pytest.mark.parametrize("kind", TYPES)
def test_round_trip_at_the_limits(kind: IntType) -> None:
    for value in (kind.low, 0, 1, kind.high):
        encoded = kind.push(value)
        assert len(encoded) == kind.size
        assert kind.pull(encoded) == value


@pytest.mark.parametrize("kind", TYPES)
def test_out_of_range_cannot_be_sent(kind: IntType) -> None:
    for value in (kind.low - 1, kind.high + 1):
        with pytest.raises(ValueError, match="does not fit"):
            kind.push(value)


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("delta", [-1, 1, -4])
def test_wrong_length_is_5014(kind: IntType, delta: int) -> None:
    with pytest.raises(DiameterError) as caught:
        kind.pull(bytes(kind.size + delta))
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH


def test_big_endian() -> None:
    assert push_unsigned32(0x01020304) == b"\x01\x02\x03\x04"
    assert pull_integer32(b"\xff\xff\xff\xfe") == -2
