"""Address (RFC 6733 §4.3.1): a 2-octet IANA address family followed by the address.

IPv4 (family 1) must carry exactly 4 octets and IPv6 (family 2) exactly 16; any other size is
5014.  Other families (E.164 is 8) are kept as :class:`OtherAddress` so they re-encode as
received.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from protocols.diameter.constants import AddressFamily, ResultCode
from protocols.diameter.datatypes._length import wrong_length
from protocols.diameter.errors import DiameterError

FAMILY = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class OtherAddress:
    """An address of a family other than IPv4/IPv6, kept as raw octets."""

    family: int
    value: bytes


AddressValue = IPv4Address | IPv6Address | OtherAddress


def pull_address(data: bytes) -> AddressValue:
    """Decode an Address payload."""
    if len(data) < 2:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_AVP_LENGTH,
            f"Address payload must hold a 2-byte family, got {len(data)} bytes",
        )
    family = FAMILY.unpack_from(data)[0]
    if family == AddressFamily.IPV4:
        if len(data) != 6:
            raise wrong_length("IPv4 Address", 6, len(data))
        return IPv4Address(data[2:])
    if family == AddressFamily.IPV6:
        if len(data) != 18:
            raise wrong_length("IPv6 Address", 18, len(data))
        return IPv6Address(data[2:])
    return OtherAddress(family, bytes(data[2:]))


def push_address(value: AddressValue) -> bytes:
    """Encode an Address value with its family."""
    if isinstance(value, IPv4Address):
        return FAMILY.pack(AddressFamily.IPV4) + value.packed
    if isinstance(value, IPv6Address):
        return FAMILY.pack(AddressFamily.IPV6) + value.packed
    return FAMILY.pack(value.family) + value.value
