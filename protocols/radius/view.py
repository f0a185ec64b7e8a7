"""Typed views of the requests a charging server acts on: Accounting-Request and Access-Request.

A view reads every attribute it knows once, by dictionary name (so an operator dictionary that
renumbers an attribute is followed). An attribute whose value does not fit its type is named in
``malformed`` and its field stays None; attributes the view does not interpret are kept raw in
``raw_unknown`` as ``(vendor, type, value)`` (vendor 0 for IETF attributes). Neither ever
rejects the request: the adapter decides. When an attribute repeats, the first one counts.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field, fields
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


_STATUS_TYPES: Final = {int(s): s for s in AcctStatusType}


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
    h323_redirect_number: str | None = None
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
    h323_redirect_number: str | None = None
    cisco_avpairs: dict[str, str] = field(default_factory=dict)
    raw_unknown: tuple[tuple[int, int, bytes], ...] = ()
    malformed: tuple[str, ...] = ()


# -- reading: one pass over the raw packet ---------------------------------------------
#
# The per-request path: the loop below reads attributes straight from Packet.raw (whose
# structure decode_packet validated), dispatches on small integer kinds and inlines the common
# ones, so an accounting view costs a few microseconds rather than a call per attribute.

_unpack_u32: Final = struct.Struct("!I").unpack_from
_fromtimestamp: Final = datetime.fromtimestamp

_U32, _STATUS, _DATE, _TEXT, _IPV4, _IPV6, _OCTETS, _H323_TEXT, _H323_TIME, _AVPAIR = range(10)

_Spec = tuple[tuple[str, str, int], ...]  # (dictionary name, view field, kind)
_Entry = tuple[str, int, int, bytes]  # (dictionary name, field index, kind, h323 prefix)

_COMMON: Final[_Spec] = (
    ("User-Name", "user_name", _TEXT),
    ("Calling-Station-Id", "calling_station_id", _TEXT),
    ("Called-Station-Id", "called_station_id", _TEXT),
    ("NAS-IP-Address", "nas_ip_address", _IPV4),
    ("NAS-IPv6-Address", "nas_ipv6_address", _IPV6),
    ("NAS-Identifier", "nas_identifier", _TEXT),
    ("NAS-Port", "nas_port", _U32),
    ("Framed-IP-Address", "framed_ip_address", _IPV4),
    ("Cisco-AVPair", "cisco_avpairs", _AVPAIR),
    ("h323-conf-id", "h323_conf_id", _H323_TEXT),
    ("h323-remote-address", "h323_remote_address", _H323_TEXT),
    ("h323-call-origin", "h323_call_origin", _H323_TEXT),
    ("h323-call-type", "h323_call_type", _H323_TEXT),
    ("h323-gw-id", "h323_gw_id", _H323_TEXT),
    ("h323-redirect-number", "h323_redirect_number", _H323_TEXT),
)
_ACCOUNTING: Final[_Spec] = (
    *_COMMON,
    ("Acct-Status-Type", "status_type", _STATUS),
    ("Acct-Session-Id", "session_id", _TEXT),
    ("Acct-Multi-Session-Id", "multi_session_id", _TEXT),
    ("Acct-Session-Time", "session_time_s", _U32),
    ("Acct-Delay-Time", "delay_time_s", _U32),
    ("Event-Timestamp", "event_timestamp", _DATE),
    ("Acct-Input-Octets", "input_octets", _U32),
    ("Acct-Output-Octets", "output_octets", _U32),
    ("Acct-Input-Gigawords", "input_gigawords", _U32),
    ("Acct-Output-Gigawords", "output_gigawords", _U32),
    ("Acct-Input-Packets", "input_packets", _U32),
    ("Acct-Output-Packets", "output_packets", _U32),
    ("Acct-Terminate-Cause", "terminate_cause", _U32),
    ("h323-setup-time", "h323_setup_time", _H323_TIME),
    ("h323-connect-time", "h323_connect_time", _H323_TIME),
    ("h323-disconnect-time", "h323_disconnect_time", _H323_TIME),
    ("h323-disconnect-cause", "h323_disconnect_cause", _H323_TEXT),
)
_ACCESS: Final[_Spec] = (
    *_COMMON,
    ("User-Password", "user_password", _OCTETS),
    ("CHAP-Password", "chap_password", _OCTETS),
    ("CHAP-Challenge", "chap_challenge", _OCTETS),
    ("Service-Type", "service_type", _U32),
)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each attribute of a dictionary lands in a view."""

    ietf: dict[int, _Entry]
    vsa: dict[int, _Entry]  # key: vendor << 8 | vendor type
    size: int
    avpairs: int
    unknown: int
    malformed: int


def _layout(dictionary: Dictionary, view: type, spec: _Spec) -> _Layout:
    index = {f.name: i for i, f in enumerate(fields(view))}
    ietf: dict[int, _Entry] = {}
    vsa: dict[int, _Entry] = {}
    for name, field_name, kind in spec:
        if name not in dictionary:
            continue
        definition = dictionary.attribute(name)
        if not definition.on_wire:
            continue
        entry = (definition.name, index[field_name], kind, f"{name}=".encode())
        if definition.vendor:
            vsa[definition.vendor << 8 | definition.number] = entry
        else:
            ietf[definition.number] = entry
    return _Layout(
        ietf, vsa, len(index), index["cisco_avpairs"], index["raw_unknown"], index["malformed"]
    )


def _accounting_layout(dictionary: Dictionary) -> _Layout:
    return _layout(dictionary, AccountingRequest, _ACCOUNTING)


def _access_layout(dictionary: Dictionary) -> _Layout:
    return _layout(dictionary, AccessRequest, _ACCESS)


def _convert(kind: int, raw: bytes, prefix: bytes) -> Any:
    """The value of the less common kinds; ``ValueError`` when ``raw`` does not fit."""
    if kind in (_U32, _STATUS, _DATE):
        if len(raw) != 4:
            raise ValueError(f"needs 4 octets, got {len(raw)}")
        number = int.from_bytes(raw, "big")
        if kind == _STATUS:
            return _STATUS_TYPES.get(number, number)
        if kind == _DATE:
            return datetime.fromtimestamp(number, UTC)
        return number
    if kind == _TEXT:
        return raw.decode("utf-8", "replace")
    if kind in (_H323_TEXT, _H323_TIME):
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
        return parse_h323_time(raw) if kind == _H323_TIME else raw.decode("utf-8", "replace")
    if kind == _IPV4:
        if len(raw) != 4:
            raise ValueError(f"ipaddr needs 4 octets, got {len(raw)}")
        return IPv4Address(raw)
    if kind == _IPV6:
        if len(raw) != 16:
            raise ValueError(f"ipv6addr needs 16 octets, got {len(raw)}")
        return IPv6Address(raw)
    return raw  # _OCTETS


def _store(
    entry: _Entry, raw: bytes, values: list[Any], avpairs: dict[str, str], malformed: list[str]
) -> None:
    name, index, kind, prefix = entry
    if kind == _AVPAIR:
        key, text = parse_avpair(raw.decode("utf-8", "replace"))
        avpairs.setdefault(key, text)
    elif values[index] is None:  # when an attribute repeats, the first one counts
        try:
            values[index] = _convert(kind, raw, prefix)
        except ValueError:  # MalformedAttribute and bad h323 times included
            malformed.append(name)


def _read(packet: Packet, layout: _Layout) -> list[Any]:
    values: list[Any] = [None] * layout.size
    avpairs: dict[str, str] = {}
    unknown: list[tuple[int, int, bytes]] = []
    malformed: list[str] = []
    ietf, vsa = layout.ietf, layout.vsa
    data = packet.raw
    length = len(data)
    pos = 20
    while pos < length:
        type_ = data[pos]
        end = pos + data[pos + 1]
        if type_ == 26:
            sub = pos + 6
            if end - sub < 2 or sub + data[sub + 1] != end or data[sub + 1] < 2:
                _read_vsa(
                    data[pos + 2 : end],
                    vsa,
                    values=values,
                    avpairs=avpairs,
                    unknown=unknown,
                    malformed=malformed,
                )
                pos = end
                continue
            vendor = _unpack_u32(data, pos + 2)[0]
            entry = vsa.get(vendor << 8 | data[sub])
            start = sub + 2
            if entry is None:
                unknown.append((vendor, data[sub], data[start:end]))
                pos = end
                continue
        else:
            entry = ietf.get(type_)
            start = pos + 2
            if entry is None:
                unknown.append((0, type_, data[start:end]))
                pos = end
                continue
        pos = end
        kind = entry[2]
        index = entry[1]
        if kind <= _DATE:  # the common kinds inline (_U32, _STATUS, _DATE), the rest through _store
            if values[index] is None:
                if end - start != 4:
                    malformed.append(entry[0])
                elif kind == _U32:
                    values[index] = _unpack_u32(data, start)[0]
                elif kind == _STATUS:
                    number = _unpack_u32(data, start)[0]
                    values[index] = _STATUS_TYPES.get(number, number)
                else:
                    values[index] = _fromtimestamp(_unpack_u32(data, start)[0], UTC)
        elif kind == _TEXT:
            if values[index] is None:
                values[index] = data[start:end].decode("utf-8", "replace")
        elif kind in (_H323_TEXT, _H323_TIME):
            if values[index] is None:
                raw = data[start:end]
                prefix = entry[3]
                if raw.startswith(prefix):
                    raw = raw[len(prefix) :]
                if kind == _H323_TEXT:
                    values[index] = raw.decode("utf-8", "replace")
                else:
                    try:
                        values[index] = parse_h323_time(raw)
                    except ValueError:
                        malformed.append(entry[0])
        else:
            _store(entry, data[start:end], values, avpairs, malformed)
    values[layout.avpairs] = avpairs
    values[layout.unknown] = tuple(unknown)
    values[layout.malformed] = tuple(malformed)
    return values


def _read_vsa(
    value: bytes,
    vsa: dict[int, _Entry],
    *,
    values: list[Any],
    avpairs: dict[str, str],
    unknown: list[tuple[int, int, bytes]],
    malformed: list[str],
) -> None:
    """A Vendor-Specific attribute with several sub-attributes, or not in the RFC format."""
    if not is_standard_vsa(value):
        unknown.append((0, 26, value))
        return
    vendor = int.from_bytes(value[:4], "big")
    pos = 4
    while pos < len(value):
        end = pos + value[pos + 1]
        entry = vsa.get(vendor << 8 | value[pos])
        if entry is None:
            unknown.append((vendor, value[pos], value[pos + 2 : end]))
        else:
            _store(entry, value[pos + 2 : end], values, avpairs, malformed)
        pos = end


def decode_accounting(packet: Packet, dictionary: Dictionary | None = None) -> AccountingRequest:
    """The accounting view of ``packet`` (the Request Authenticator is checked elsewhere)."""
    dictionary = packet.dictionary if dictionary is None else dictionary
    view = AccountingRequest(*_read(packet, dictionary.derived(_accounting_layout)))
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
    view = AccessRequest(*_read(packet, dictionary.derived(_access_layout)))
    hidden = view.user_password
    view.user_password = None
    if hidden is not None and secret is not None:
        try:
            view.user_password = decrypt_user_password(hidden, secret, packet.authenticator)
        except MalformedAttribute:
            view.malformed = (*view.malformed, "User-Password")
    return view
