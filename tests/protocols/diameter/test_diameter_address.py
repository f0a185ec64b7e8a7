"""Address: 2-octet family + address; IPv4/IPv6 sizes are exact."""

from ipaddress import IPv4Address, IPv6Address

import pytest

from protocols.diameter.constants import ResultCode
from protocols.diameter.datatypes.address import (
    AddressValue,
    OtherAddress,
    pull_address,
    push_address,
)
from protocols.diameter.errors import DiameterError


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        pytest.param(bytes.fromhex("0001c0000201"), IPv4Address("192.0.2.1"), id="ipv4"),
        pytest.param(
            bytes.fromhex("000220010db8000000000000000000000001"),
            IPv6Address("2001:db8::1"),
            id="ipv6",
        ),
        pytest.param(b"\x00\x08441234567", OtherAddress(8, b"441234567"), id="e164"),
        pytest.param(b"\x00\x63", OtherAddress(99, b""), id="unknown-family-empty"),
    ],
)
def test_round_trip(payload: bytes, value: AddressValue) -> None:
    assert pull_address(payload) == value
    assert push_address(value) == payload


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="half-family"),
        pytest.param(bytes.fromhex("0001c00002"), id="ipv4-short"),
        pytest.param(bytes.fromhex("0001c000020101"), id="ipv4-long"),
        pytest.param(bytes.fromhex("0002") + bytes(15), id="ipv6-short"),
        pytest.param(bytes.fromhex("0002") + bytes(4), id="ipv6-with-ipv4-size"),
    ],
)
def test_wrong_length_is_5014(payload: bytes) -> None:
    with pytest.raises(DiameterError) as caught:
        pull_address(payload)
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
