"""RADIUS attribute values: typed decode/encode per data type, builders, Cisco AV pairs.

An attribute on the wire is ``(type, value)``; a Vendor-Specific one is type 26 whose value is
the vendor id and sub-attributes (RFC 2865 section 5.26). Builders return that raw form, ready
for :func:`protocols.radius.packet.encode_reply` / ``encode_request``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from protocols.radius.dictionary import AttributeDef, DataType, Dictionary, default_dictionary

__all__ = [
    "MAX_VALUE_OCTETS",
    "Attribute",
    "MalformedAttribute",
    "Value",
    "cisco_avpair",
    "date_attribute",
    "decode_value",
    "encode_attribute",
    "encode_value",
    "h323_attribute",
    "integer_attribute",
    "ipaddr_attribute",
    "octets_attribute",
    "parse_avpair",
    "string_attribute",
    "vendor_attribute",
]

Attribute = tuple[int, bytes]
"""An attribute as it goes on the wire: ``(type, value)``; VSAs are type 26."""

Value = str | bytes | int | datetime | IPv4Address | IPv6Address | IPv6Network
"""A typed attribute value."""

MAX_VALUE_OCTETS = 253  # the one-octet Length field counts the 2 header octets (RFC 2865 §5)
VENDOR_SPECIFIC = 26
CISCO_VENDOR_ID = 9
CISCO_AVPAIR = 1

_FIXED_LENGTH: dict[DataType, int] = {
    DataType.INTEGER: 4,
    DataType.SIGNED: 4,
    DataType.DATE: 4,
    DataType.INTEGER64: 8,
    DataType.SHORT: 2,
    DataType.BYTE: 1,
    DataType.IPADDR: 4,
    DataType.IPV6ADDR: 16,
    DataType.ETHER: 6,
}


class MalformedAttribute(ValueError):
    """An attribute value does not fit its data type; it concerns that attribute only."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def decode_value(definition: AttributeDef, raw: bytes) -> Value:
    """The typed value of ``raw``; :class:`MalformedAttribute` if it does not fit the type."""
    data_type = definition.data_type
    if data_type is DataType.STRING:
        if definition.has_tag and raw and raw[0] <= 0x1F:
            raw = raw[1:]  # RFC 2868 section 3.3: an optional tag octet
        return raw.decode("utf-8", "replace")
    if data_type is DataType.OCTETS:
        return raw
    if definition.has_tag and data_type is DataType.INTEGER and len(raw) == 4:
        raw = b"\x00" + raw[1:]  # the tag takes the first octet of a tagged integer
    expected = _FIXED_LENGTH.get(data_type)
    if expected is not None and len(raw) != expected:
        raise MalformedAttribute(
            definition.name, f"{data_type.value} needs {expected} octets, got {len(raw)}"
        )
    if data_type in (DataType.INTEGER, DataType.INTEGER64, DataType.SHORT, DataType.BYTE):
        return int.from_bytes(raw, "big")
    if data_type is DataType.SIGNED:
        return int.from_bytes(raw, "big", signed=True)
    if data_type is DataType.DATE:
        return datetime.fromtimestamp(int.from_bytes(raw, "big"), UTC)
    if data_type is DataType.IPADDR:
        return IPv4Address(raw)
    if data_type is DataType.IPV6ADDR:
        return IPv6Address(raw)
    if data_type is DataType.ETHER:
        return ":".join(f"{octet:02x}" for octet in raw)
    # IPV6PREFIX, RFC 3162 section 2.3: reserved, prefix length, prefix (up to 16 octets)
    if not 2 <= len(raw) <= 18 or raw[1] > 128 or len(raw) - 2 < (raw[1] + 7) // 8:
        raise MalformedAttribute(definition.name, f"bad ipv6prefix of {len(raw)} octets")
    prefix = raw[2:].ljust(16, b"\x00")
    return IPv6Network((IPv6Address(prefix), raw[1]), strict=False)


def encode_value(definition: AttributeDef, value: Value) -> bytes:
    """The wire octets of ``value`` for ``definition``'s type; ``ValueError`` if it does not fit."""
    data_type = definition.data_type
    if isinstance(value, bytes):
        return value
    if data_type is DataType.STRING and isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, datetime) and data_type is DataType.DATE:
        if value.tzinfo is None:
            raise ValueError(f"{definition.name}: a date needs a timezone-aware datetime")
        value = int(value.timestamp())
    if isinstance(value, int) and not isinstance(value, bool):
        size = _FIXED_LENGTH.get(data_type)
        if size is None or data_type in (DataType.IPADDR, DataType.IPV6ADDR, DataType.ETHER):
            raise ValueError(f"{definition.name}: an integer does not fit {data_type.value}")
        signed = data_type is DataType.SIGNED
        try:
            return value.to_bytes(size, "big", signed=signed)
        except OverflowError:
            raise ValueError(f"{definition.name}: {value} does not fit {size} octets") from None
    if data_type is DataType.IPADDR and isinstance(value, str | IPv4Address):
        return IPv4Address(value).packed
    if data_type is DataType.IPV6ADDR and isinstance(value, str | IPv6Address):
        return IPv6Address(value).packed
    if data_type is DataType.IPV6PREFIX and isinstance(value, str | IPv6Network):
        network = IPv6Network(value)
        octets = (network.prefixlen + 7) // 8
        return bytes((0, network.prefixlen)) + network.network_address.packed[:octets]
    if data_type is DataType.ETHER and isinstance(value, str):
        octets_ = bytes.fromhex(value.replace(":", "").replace("-", ""))
        if len(octets_) != 6:
            raise ValueError(f"{definition.name}: bad MAC address {value!r}")
        return octets_
    raise ValueError(f"{definition.name}: cannot encode {value!r} as {data_type.value}")


def _check_length(value: bytes, limit: int = MAX_VALUE_OCTETS) -> bytes:
    if len(value) > limit:
        raise ValueError(f"attribute value of {len(value)} octets exceeds {limit}")
    return value


def octets_attribute(type_: int, value: bytes) -> Attribute:
    """An attribute carrying raw octets."""
    return (type_, _check_length(value))


def string_attribute(type_: int, value: str | bytes) -> Attribute:
    """A string attribute (UTF-8, RFC 2865 section 5)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return (type_, _check_length(raw))


def integer_attribute(type_: int, value: int) -> Attribute:
    """A 32-bit unsigned integer attribute."""
    return (type_, value.to_bytes(4, "big"))


def ipaddr_attribute(type_: int, value: str | IPv4Address) -> Attribute:
    """An IPv4 address attribute."""
    return (type_, IPv4Address(value).packed)


def date_attribute(type_: int, value: datetime | int) -> Attribute:
    """A date attribute: seconds since 1970-01-01 UTC (RFC 2865 section 5)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a date needs a timezone-aware datetime")
        value = int(value.timestamp())
    return (type_, value.to_bytes(4, "big"))


def vendor_attribute(vendor: int, vendor_type: int, value: bytes) -> Attribute:
    """A Vendor-Specific attribute with one sub-attribute (RFC 2865 section 5.26 format)."""
    _check_length(value, MAX_VALUE_OCTETS - 6)
    return (
        VENDOR_SPECIFIC,
        vendor.to_bytes(4, "big") + bytes((vendor_type, len(value) + 2)) + value,
    )


def cisco_avpair(key: str, value: str) -> Attribute:
    """A Cisco-AVPair (vendor 9, type 1) ``key=value``."""
    return vendor_attribute(CISCO_VENDOR_ID, CISCO_AVPAIR, f"{key}={value}".encode())


def h323_attribute(name: str, value: str | int, dictionary: Dictionary | None = None) -> Attribute:
    """A Cisco h323-* VSA as gateways expect it: ``h323-credit-time=3600`` (vendor 9)."""
    definition = (dictionary or default_dictionary()).attribute(name)
    if definition.vendor != CISCO_VENDOR_ID:
        raise ValueError(f"{definition.name} is not a Cisco VSA")
    text = str(value)
    if not text.startswith(f"{definition.name}="):
        text = f"{definition.name}={text}"
    return vendor_attribute(CISCO_VENDOR_ID, definition.number, text.encode())


def parse_avpair(text: str) -> tuple[str, str]:
    """Split a Cisco AV pair at its first ``=`` (mandatory) or ``*`` (optional) separator."""
    equals, star = text.find("="), text.find("*")
    cut = equals if star < 0 or (0 <= equals < star) else star
    if cut < 0:
        return (text, "")
    return (text[:cut], text[cut + 1 :])


def encode_attribute(dictionary: Dictionary, name: str, value: Value) -> tuple[Attribute, ...]:
    """``value`` encoded as the attribute ``name`` of ``dictionary``.

    Cisco h323-* values get the ``name=`` prefix Cisco gateways send and expect. A value
    longer than one attribute is split over several only where the attribute is defined
    ``concat`` (EAP-Message, RFC 3579 section 3.1); otherwise it raises ``ValueError``.
    """
    definition = dictionary.attribute(name)
    if not definition.on_wire:
        raise ValueError(f"{definition.name} is not an attribute that goes on the wire")
    if definition.encrypt:
        raise ValueError(f"{definition.name} is encrypted; use the packet's password helpers")
    if (
        definition.vendor == CISCO_VENDOR_ID
        and definition.name.lower().startswith("h323-")
        and isinstance(value, str | int)
        and not str(value).startswith(f"{definition.name}=")
    ):
        value = f"{definition.name}={value}"
    raw = encode_value(definition, value)
    if definition.vendor:
        vendor = dictionary.vendor_format(definition.vendor)
        if vendor is not None and not vendor.standard_format:
            raise ValueError(f"{definition.name}: vendor format of {vendor.name} not supported")
        return (vendor_attribute(definition.vendor, definition.number, raw),)
    if len(raw) <= MAX_VALUE_OCTETS:
        return ((definition.number, raw),)
    if not definition.concat:
        raise ValueError(
            f"{definition.name}: value of {len(raw)} octets exceeds {MAX_VALUE_OCTETS}"
        )
    return tuple(
        (definition.number, raw[i : i + MAX_VALUE_OCTETS])
        for i in range(0, len(raw), MAX_VALUE_OCTETS)
    )
