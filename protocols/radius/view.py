"""Typed views of the requests a charging server acts on: Accounting-Request and Access-Request.

A view reads every attribute it knows once, by dictionary name (so an operator dictionary that
renumbers an attribute is followed). An attribute whose value does not fit its type is named in
``malformed`` and its field stays None; attributes the view does not interpret are kept raw in
``raw_unknown`` as ``(vendor, type, value)`` (vendor 0 for IETF attributes). Neither ever
rejects the request: the adapter decides. When an attribute repeats, the first one counts.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Final

from protocols.radius.attribute import MalformedAttribute, parse_avpair
from protocols.radius.dictionary import Dictionary
from protocols.radius.h323 import H323Time, parse_h323_time
from protocols.radius.packet import Packet, decrypt_user_password, is_standard_vsa

__all__ = [
    "AccessRequest",
    "AccountingRequest",
    "AcctStatusType",
    "decode_access",
    "decode_accounting",
]


class AcctStatusType(enum.IntEnum):
    """Acct-Status-Type values (RFC 2866 section 5.1)."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8
    FAILED = 15


_STATUS: Final = {int(s): s for s in AcctStatusType}


@dataclass(slots=True)
class AccountingRequest:
    """What an Accounting-Request says about a call (RFC 2866, RFC 2869, Cisco voice VSAs)."""

    status_type: AcctStatusType | int | None = None
    session_id: str | None = None
    multi_session_id: str | None = None
    session_time_s: int | None = None
    delay_time_s: int | None = None
    event_timestamp: datetime | None = None
    input_octets: int | None = None
    output_octets: int | None = None
    input_gigawords: int | None = None
    output_gigawords: int | None = None
    input_packets: int | None = None
    output_packets: int | None = None
    terminate_cause: int | None = None
    user_name: str | None = None
    calling_station_id: str | None = None
    called_station_id: str | None = None
    nas_ip_address: IPv4Address | None = None
    nas_ipv6_address: IPv6Address | None = None
    nas_identifier: str | None = None
    nas_port: int | None = None
    framed_ip_address: IPv4Address | None = None
    h323_conf_id: str | None = None
    h323_remote_address: str | None = None
    h323_call_origin: str | None = None
    h323_call_type: str | None = None
    h323_gw_id: str | None = None
    h323_setup_time: H323Time | None = None
    h323_connect_time: H323Time | None = None
    h323_disconnect_time: H323Time | None = None
    h323_disconnect_cause: str | None = None
    cisco_avpairs: dict[str, str] = field(default_factory=dict)
    raw_unknown: tuple[tuple[int, int, bytes], ...] = ()
    malformed: tuple[str, ...] = ()

    @property
    def h323_disconnect_cause_q850(self) -> int | None:
        """h323-disconnect-cause as a Q.850 cause number (Cisco sends it in hex: 16 is "10")."""
        if self.h323_disconnect_cause is None:
            return None
        try:
            return int(self.h323_disconnect_cause, 16)
        except ValueError:
            return None


@dataclass(slots=True)
class AccessRequest:
    """What an Access-Request asks for a call (RFC 2865, Cisco voice VSAs)."""

    user_name: str | None = None
    user_password: bytes | None = None
    chap_password: bytes | None = None
    chap_challenge: bytes | None = None
    calling_station_id: str | None = None
    called_station_id: str | None = None
    nas_ip_address: IPv4Address | None = None
    nas_ipv6_address: IPv6Address | None = None
    nas_identifier: str | None = None
    nas_port: int | None = None
    service_type: int | None = None
    framed_ip_address: IPv4Address | None = None
    h323_conf_id: str | None = None
    h323_call_origin: str | None = None
    h323_call_type: str | None = None
    h323_gw_id: str | None = None
    h323_remote_address: str | None = None
    cisco_avpairs: dict[str, str] = field(default_factory=dict)
    raw_unknown: tuple[tuple[int, int, bytes], ...] = ()
    malformed: tuple[str, ...] = ()


# -- converters: raw octets -> field value, MalformedAttribute when they do not fit -------


def _u32(raw: bytes) -> int:
    if len(raw) != 4:
        raise ValueError(f"integer needs 4 octets, got {len(raw)}")
    return int.from_bytes(raw, "big")


def _status(raw: bytes) -> AcctStatusType | int:
    number = _u32(raw)
    return _STATUS.get(number, number)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _octets(raw: bytes) -> bytes:
    return raw


def _date(raw: bytes) -> datetime:
    return datetime.fromtimestamp(_u32(raw), UTC)


def _ipv4(raw: bytes) -> IPv4Address:
    if len(raw) != 4:
        raise ValueError(f"ipaddr needs 4 octets, got {len(raw)}")
    return IPv4Address(raw)


def _ipv6(raw: bytes) -> IPv6Address:
    if len(raw) != 16:
        raise ValueError(f"ipv6addr needs 16 octets, got {len(raw)}")
    return IPv6Address(raw)


def _h323_text(prefix: bytes) -> Callable[[bytes], str]:
    def convert(raw: bytes) -> str:
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
        return raw.decode("utf-8", "replace")

    return convert


def _h323_time(prefix: bytes) -> Callable[[bytes], H323Time]:
    def convert(raw: bytes) -> H323Time:
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
        return parse_h323_time(raw.decode("utf-8", "replace"))

    return convert


_AVPAIR: Final = "cisco_avpairs"
_PASSWORD: Final = "user_password"

# (dictionary name, field, converter)
_COMMON: Final[tuple[tuple[str, str, Callable[[bytes], Any]], ...]] = (
    ("User-Name", "user_name", _text),
    ("Calling-Station-Id", "calling_station_id", _text),
    ("Called-Station-Id", "called_station_id", _text),
    ("NAS-IP-Address", "nas_ip_address", _ipv4),
    ("NAS-IPv6-Address", "nas_ipv6_address", _ipv6),
    ("NAS-Identifier", "nas_identifier", _text),
    ("NAS-Port", "nas_port", _u32),
    ("Framed-IP-Address", "framed_ip_address", _ipv4),
    ("Cisco-AVPair", _AVPAIR, _text),
    ("h323-conf-id", "h323_conf_id", _h323_text(b"h323-conf-id=")),
    ("h323-remote-address", "h323_remote_address", _h323_text(b"h323-remote-address=")),
    ("h323-call-origin", "h323_call_origin", _h323_text(b"h323-call-origin=")),
    ("h323-call-type", "h323_call_type", _h323_text(b"h323-call-type=")),
    ("h323-gw-id", "h323_gw_id", _h323_text(b"h323-gw-id=")),
)
_ACCOUNTING: Final[tuple[tuple[str, str, Callable[[bytes], Any]], ...]] = (
    *_COMMON,
    ("Acct-Status-Type", "status_type", _status),
    ("Acct-Session-Id", "session_id", _text),
    ("Acct-Multi-Session-Id", "multi_session_id", _text),
    ("Acct-Session-Time", "session_time_s", _u32),
    ("Acct-Delay-Time", "delay_time_s", _u32),
    ("Event-Timestamp", "event_timestamp", _date),
    ("Acct-Input-Octets", "input_octets", _u32),
    ("Acct-Output-Octets", "output_octets", _u32),
    ("Acct-Input-Gigawords", "input_gigawords", _u32),
    ("Acct-Output-Gigawords", "output_gigawords", _u32),
    ("Acct-Input-Packets", "input_packets", _u32),
    ("Acct-Output-Packets", "output_packets", _u32),
    ("Acct-Terminate-Cause", "terminate_cause", _u32),
    ("h323-setup-time", "h323_setup_time", _h323_time(b"h323-setup-time=")),
    ("h323-connect-time", "h323_connect_time", _h323_time(b"h323-connect-time=")),
    ("h323-disconnect-time", "h323_disconnect_time", _h323_time(b"h323-disconnect-time=")),
    (
        "h323-disconnect-cause",
        "h323_disconnect_cause",
        _h323_text(b"h323-disconnect-cause="),
    ),
)
_ACCESS: Final[tuple[tuple[str, str, Callable[[bytes], Any]], ...]] = (
    *_COMMON,
    ("User-Password", _PASSWORD, _octets),
    ("CHAP-Password", "chap_password", _octets),
    ("CHAP-Challenge", "chap_challenge", _octets),
    ("Service-Type", "service_type", _u32),
)

_Layout = dict[tuple[int, int], tuple[str, str, Callable[[bytes], Any]]]


def _layout(
    dictionary: Dictionary, fields: tuple[tuple[str, str, Callable[[bytes], Any]], ...]
) -> _Layout:
    layout: _Layout = {}
    for name, field_name, convert in fields:
        if name in dictionary:
            definition = dictionary.attribute(name)
            if definition.on_wire:
                layout[definition.key] = (definition.name, field_name, convert)
    return layout


def _accounting_layout(dictionary: Dictionary) -> _Layout:
    return _layout(dictionary, _ACCOUNTING)


def _access_layout(dictionary: Dictionary) -> _Layout:
    return _layout(dictionary, _ACCESS)


def _fill(view: Any, packet: Packet, layout: _Layout) -> None:
    unknown: list[tuple[int, int, bytes]] = []
    malformed: list[str] = []
    seen: set[str] = set()
    avpairs: dict[str, str] = view.cisco_avpairs
    get = layout.get
    for vendor, type_, raw in (
        *[(0, t, v) for t, v in packet.attributes if t != 26],
        *packet.vendor_attributes,
    ):
        entry = get((vendor, type_))
        if entry is None:
            unknown.append((vendor, type_, raw))
            continue
        name, field_name, convert = entry
        if field_name in seen:
            if field_name != _AVPAIR:
                continue
        else:
            seen.add(field_name)
        try:
            value = convert(raw)
        except ValueError:  # MalformedAttribute included
            malformed.append(name)
            continue
        if field_name == _AVPAIR:
            key, text = parse_avpair(value)
            avpairs.setdefault(key, text)
        else:
            setattr(view, field_name, value)
    if packet.nonstandard_vsa_count:
        # Vendor-Specific attributes whose sub-attributes could not be split stay raw
        unknown.extend(
            (0, t, v) for t, v in packet.attributes if t == 26 and not is_standard_vsa(v)
        )
    view.raw_unknown = tuple(unknown)
    view.malformed = tuple(malformed)


def decode_accounting(packet: Packet, dictionary: Dictionary | None = None) -> AccountingRequest:
    """The accounting view of ``packet`` (the Request Authenticator is checked elsewhere)."""
    dictionary = packet.dictionary if dictionary is None else dictionary
    view = AccountingRequest()
    _fill(view, packet, dictionary.derived(_accounting_layout))
    # RFC 2869 section 5.1/5.2: Gigawords count how often the 32-bit octet counter wrapped
    if view.input_gigawords and view.input_octets is not None:
        view.input_octets += view.input_gigawords << 32
    if view.output_gigawords and view.output_octets is not None:
        view.output_octets += view.output_gigawords << 32
    return view


def decode_access(
    packet: Packet, secret: bytes | None = None, dictionary: Dictionary | None = None
) -> AccessRequest:
    """The access view of ``packet``; with ``secret`` the PAP User-Password is decrypted."""
    dictionary = packet.dictionary if dictionary is None else dictionary
    view = AccessRequest()
    _fill(view, packet, dictionary.derived(_access_layout))
    hidden = view.user_password
    view.user_password = None
    if hidden is not None and secret is not None:
        try:
            view.user_password = decrypt_user_password(hidden, secret, packet.authenticator)
        except MalformedAttribute:
            view.malformed = (*view.malformed, "User-Password")
    return view
