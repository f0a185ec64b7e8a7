"""Float32/Float64: IEEE 754 big-endian with exact sizes."""

import math
from collections.abc import Callable

import pytest

from protocols.diameter.constants import ResultCode
from protocols.diameter.datatypes.floatingpoint import (
    pull_float32,
    pull_float64,
    push_float32,
    push_float64,
)
from protocols.diameter.errors import DiameterError


@pytest.mark.parametrize("value", [0.0, -1.5, 3.25, math.inf])
def test_round_trip(value: float) -> None:
    assert pull_float32(push_float32(value)) == value
    assert pull_float64(push_float64(value)) == value


def test_known_encoding() -> None:
    assert push_float32(1.0) == b"\x3f\x80\x00\x00"
    assert push_float64(1.0) == b"\x3f\xf0" + bytes(6)


def test_float32_overflow_cannot_be_sent() -> None:
    with pytest.raises(ValueError):
        push_float32(1e300)


@pytest.mark.parametrize(
    ("pull", "payload"),
    [
        pytest.param(pull_float32, bytes(3), id="float32-short"),
        pytest.param(pull_float32, bytes(8), id="float32-long"),
        pytest.param(pull_float64, bytes(4), id="float64-short"),
    ],
)
def test_wrong_length_is_5014(pull: Callable[[bytes], float], payload: bytes) -> None:
    with pytest.raises(DiameterError) as caught:
        pull(payload)
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
