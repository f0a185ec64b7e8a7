"""UTF8String: UTF-8 text; anything else is 5004, never silently replaced."""

import pytest

from protocols.diameter.constants import ResultCode
from protocols.diameter.datatypes.utf8string import pull_utf8_string, push_utf8_string
from protocols.diameter.errors import DiameterError


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        pytest.param(b"", "", id="empty"),
        pytest.param(b"32260@3gpp.org", "32260@3gpp.org", id="ascii"),
        pytest.param("Zürich ☎".encode(), "Zürich ☎", id="multibyte"),
    ],
)
def test_round_trip(payload: bytes, text: str) -> None:
    assert pull_utf8_string(payload) == text
    assert push_utf8_string(text) == payload


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xff", id="invalid-start-byte"),
        pytest.param(b"abc\xc3", id="truncated-sequence"),
        pytest.param(b"\xc0\xaf", id="overlong"),
        pytest.param(b"\xed\xa0\x80", id="encoded-surrogate"),
    ],
)
def test_invalid_utf8_is_5004(payload: bytes) -> None:
    with pytest.raises(DiameterError) as caught:
        pull_utf8_string(payload)
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE


def test_lone_surrogate_cannot_be_sent() -> None:
    with pytest.raises(ValueError):
        push_utf8_string("\ud800")
