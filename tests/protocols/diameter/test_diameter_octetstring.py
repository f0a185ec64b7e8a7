"""OctetString: any payload, returned unchanged."""

import pytest

from protocols.diameter.datatypes.octetstring import pull_octet_string, push_octet_string


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\xff", id="binary"),
        pytest.param(bytes(range(256)), id="all-octets"),
    ],
)
def test_round_trip(payload: bytes) -> None:
    assert pull_octet_string(payload) == payload
    assert push_octet_string(payload) == payload
    assert type(pull_octet_string(bytearray(payload))) is bytes
