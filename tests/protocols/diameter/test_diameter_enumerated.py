"""Enumerated: an Integer32 on the wire; undefined values are 5004 when checked."""

import pytest

from protocols.diameter.constants import CcRequestType, ResultCode
from protocols.diameter.datatypes.enumerated import (
    pull_enumerated,
    push_enumerated,
    to_enum,
    to_enum_or_int,
)
from protocols.diameter.errors import DiameterError


def test_round_trip() -> None:
    assert pull_enumerated(push_enumerated(CcRequestType.EVENT_REQUEST)) == 4
    assert push_enumerated(-1) == b"\xff\xff\xff\xff"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1, CcRequestType.INITIAL_REQUEST, id="initial"),
        pytest.param(4, CcRequestType.EVENT_REQUEST, id="event"),
    ],
)
def test_to_enum(value: int, expected: CcRequestType) -> None:
    assert to_enum(CcRequestType, value) is expected


@pytest.mark.parametrize("value", [0, 5, -1])
def test_undefined_value_is_5004(value: int) -> None:
    with pytest.raises(DiameterError) as caught:
        to_enum(CcRequestType, value)
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    assert to_enum_or_int(CcRequestType, value) == value


def test_wrong_length_is_5014() -> None:
    with pytest.raises(DiameterError) as caught:
        pull_enumerated(b"\x00\x01")
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
