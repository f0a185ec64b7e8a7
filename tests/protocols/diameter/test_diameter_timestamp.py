"""Time: NTP seconds in two eras, aware UTC datetimes."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.diameter.constants import ResultCode
from protocols.diameter.datatypes.timestamp import EARLIEST, LATEST, pull_time, push_time
from protocols.diameter.errors import DiameterError


@pytest.mark.parametrize(
    ("payload", "instant"),
    [
        pytest.param(b"\x83\xaa\x7e\x80", datetime(1970, 1, 1, tzinfo=UTC), id="unix-epoch"),
        pytest.param(
            bytes.fromhex("e9dcad40"), datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), id="2024"
        ),
        pytest.param(b"\x80\x00\x00\x00", EARLIEST, id="earliest"),
        pytest.param(b"\x7f\xff\xff\xff", LATEST, id="latest"),
        pytest.param(
            b"\x00\x00\x00\x00", datetime(2036, 2, 7, 6, 28, 16, tzinfo=UTC), id="era-1-start"
        ),
        pytest.param(
            b"\xff\xff\xff\xff", datetime(2036, 2, 7, 6, 28, 15, tzinfo=UTC), id="era-0-end"
        ),
    ],
)
def test_known_values(payload: bytes, instant: datetime) -> None:
    decoded = pull_time(payload)
    assert decoded == instant
    assert decoded.tzinfo is UTC
    assert push_time(instant) == payload


def test_other_time_zones_mean_the_same_instant() -> None:
    paris = timezone(timedelta(hours=2))
    assert push_time(datetime(2024, 5, 1, 14, 0, 0, tzinfo=paris)) == bytes.fromhex("e9dcad40")


def test_sub_seconds_are_dropped() -> None:
    base = datetime(2024, 5, 1, 10, 52, 48, tzinfo=UTC)
    assert push_time(base + timedelta(microseconds=999_999)) == push_time(base)


@pytest.mark.parametrize(
    "instant",
    [
        pytest.param(EARLIEST - timedelta(seconds=1), id="before-1968"),
        pytest.param(LATEST + timedelta(seconds=1), id="after-2104"),
        pytest.param(datetime(2024, 5, 1), id="naive"),
    ],
)
def test_unrepresentable_cannot_be_sent(instant: datetime) -> None:
    with pytest.raises(ValueError):
        push_time(instant)


@pytest.mark.parametrize("size", [0, 3, 5, 8])
def test_wrong_length_is_5014(size: int) -> None:
    with pytest.raises(DiameterError) as caught:
        pull_time(bytes(size))
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH


@given(st.binary(min_size=4, max_size=4))
def test_every_payload_round_trips(payload: bytes) -> None:
    assert push_time(pull_time(payload)) == payload
