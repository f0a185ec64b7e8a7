"""RADIUS packets: sans-IO decode, authenticator checks and encode (RFC 2865, 2866, 3579, 5176).

Rules:

- :func:`decode_packet` checks structure only: every length before any slice. A datagram
  shorter than its Length field is dropped; octets past it are padding and ignored (RFC 2865
  section 3); Length outside 20..4096 or an attribute of length < 2 or running past the end
  drops the packet. Attributes keep wire order as raw ``(type, value)``; Vendor-Specific ones in
  the RFC 2865 section 5.26 format are also split into ``(vendor, type, value)``. Nothing is
  rejected for an attribute the dictionary does not know or a value that does not fit its
  type: typed access reports that attribute alone.
- :func:`verify_request` authenticates a request with the client's secret: the Request
  Authenticator of Accounting-, Disconnect- and CoA-Request (RFC 2866 section 3, RFC 5176
  section 3.3) and any Message-Authenticator (RFC 3579 section 3.2). Status-Server always needs
  one (RFC 5997 section 3); an Access-Request needs one when the caller requires it, and when it
  carries Proxy-State (the BlastRADIUS attack vector, CVE-2024-3596).
- Replies are encoded with Message-Authenticator as the first attribute and Proxy-State copied
  from the request (RFC 2865 section 5.33).
- One exception, :class:`RadiusError`, whose :class:`DropReason` is the counter label.
- Comparisons of secrets-derived digests use :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Iterable
from typing import Final, cast

from protocols.radius.attribute import (
    Attribute,
    MalformedAttribute,
    Value,
    decode_value,
    parse_avpair,
)
from protocols.radius.dictionary import AttributeDef, Dictionary, default_dictionary

__all__ = [
    "MAX_PACKET_OCTETS",
    "Code",
    "DropReason",
    "Packet",
    "RadiusError",
    "RetransmissionKey",
    "decode_packet",
    "decrypt_user_password",
    "encode_reply",
    "encode_request",
    "encrypt_user_password",
    "is_standard_vsa",
    "retransmission_key",
    "verify_reply",
    "verify_request",
]

MIN_PACKET_OCTETS: Final = 20
MAX_PACKET_OCTETS: Final = 4096
USER_PASSWORD: Final = 2
VENDOR_SPECIFIC: Final = 26
PROXY_STATE: Final = 33
EAP_MESSAGE: Final = 79
MESSAGE_AUTHENTICATOR: Final = 80

_ZERO16: Final = bytes(16)
_MA_PLACEHOLDER: Final = bytes((MESSAGE_AUTHENTICATOR, 18)) + _ZERO16
_HEADER: Final = struct.Struct("!BBH")
_MA_MISSING: Final = -1
_MA_INVALID: Final = -2  # duplicated, or not 16 octets


class Code(enum.IntEnum):
    """RADIUS packet codes (RFC 2865 section 3, RFC 2866, RFC 5176, RFC 5997)."""

    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12
    DISCONNECT_REQUEST = 40
    DISCONNECT_ACK = 41
    DISCONNECT_NAK = 42
    COA_REQUEST = 43
    COA_ACK = 44
    COA_NAK = 45


class DropReason(enum.Enum):
    """Why a packet is dropped; the value is the counter label."""

    TRUNCATED = "truncated"
    BAD_LENGTH = "bad_length"
    BAD_ATTRIBUTE = "bad_attribute"
    UNKNOWN_CODE = "unknown_code"
    NOT_A_REQUEST = "not_a_request"
    UNEXPECTED_REPLY = "unexpected_reply"
    BAD_REQUEST_AUTHENTICATOR = "bad_request_authenticator"
    BAD_RESPONSE_AUTHENTICATOR = "bad_response_authenticator"
    BAD_MESSAGE_AUTHENTICATOR = "bad_message_authenticator"
    MISSING_MESSAGE_AUTHENTICATOR = "missing_message_authenticator"
    TOO_LARGE = "too_large"


class RadiusError(Exception):
    """A packet that must be dropped (or cannot be encoded), with the reason as counter label."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


_CODES: Final[dict[int, Code]] = {int(code): code for code in Code}
_REQUESTS: Final = frozenset(
    {
        Code.ACCESS_REQUEST,
        Code.ACCOUNTING_REQUEST,
        Code.STATUS_SERVER,
        Code.DISCONNECT_REQUEST,
        Code.COA_REQUEST,
    }
)
_SIGNED_REQUESTS: Final = frozenset(
    {Code.ACCOUNTING_REQUEST, Code.DISCONNECT_REQUEST, Code.COA_REQUEST}
)
_REPLIES: Final[dict[Code, frozenset[Code]]] = {
    Code.ACCESS_REQUEST: frozenset({Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE}),
    Code.ACCOUNTING_REQUEST: frozenset({Code.ACCOUNTING_RESPONSE}),
    Code.STATUS_SERVER: frozenset(
        {Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCOUNTING_RESPONSE}
    ),
    Code.DISCONNECT_REQUEST: frozenset({Code.DISCONNECT_ACK, Code.DISCONNECT_NAK}),
    Code.COA_REQUEST: frozenset({Code.COA_ACK, Code.COA_NAK}),
}


class Packet:
    """A decoded RADIUS packet (immutable); attributes stay raw and in wire order.

    ``attributes`` holds every attribute as ``(type, value)``, Vendor-Specific ones included;
    ``vendor_attributes`` holds the sub-attributes of those in the RFC 2865 section 5.26
    format as ``(vendor, vendor_type, value)``. Both are split from ``raw`` on first use:
    :func:`decode_packet` only validates the structure, and the views read ``raw`` directly.
    Typed accessors read through ``dictionary``. Build one with :func:`decode_packet`.
    """

    __slots__ = (
        "_attributes",
        "_nonstandard_vsa_count",
        "_vendor_attributes",
        "authenticator",
        "code",
        "dictionary",
        "has_proxy_state",
        "identifier",
        "message_authenticator_at",
        "raw",
    )

    code: Code
    identifier: int
    authenticator: bytes
    raw: bytes
    dictionary: Dictionary
    message_authenticator_at: int
    """Offset of the Message-Authenticator value in ``raw``; -1 if absent, -2 if malformed."""
    has_proxy_state: bool
    _attributes: tuple[tuple[int, bytes], ...] | None
    _vendor_attributes: tuple[tuple[int, int, bytes], ...]
    _nonstandard_vsa_count: int

    def __init__(self) -> None:
        raise TypeError("a Packet comes from decode_packet()")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Packet is immutable, cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Packet is immutable, cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Packet) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return (
            f"Packet(code={self.code!r}, identifier={self.identifier}, "
            f"authenticator={self.authenticator.hex()}, attributes={self.attributes!r})"
        )

    @property
    def attributes(self) -> tuple[tuple[int, bytes], ...]:
        """Every attribute as ``(type, value)`` in wire order."""
        found = self._attributes
        if found is None:
            found = self._split()
        return found

    @property
    def vendor_attributes(self) -> tuple[tuple[int, int, bytes], ...]:
        """Vendor-Specific sub-attributes as ``(vendor, vendor_type, value)`` in wire order."""
        if self._attributes is None:
            self._split()
        return self._vendor_attributes

    @property
    def nonstandard_vsa_count(self) -> int:
        """How many Vendor-Specific attributes are not in the RFC 2865 §5.26 format."""
        if self._attributes is None:
            self._split()
        return self._nonstandard_vsa_count

    def _split(self) -> tuple[tuple[int, bytes], ...]:
        data = self.raw
        length = len(data)
        attributes: list[tuple[int, bytes]] = []
        vendor_attributes: list[tuple[int, int, bytes]] = []
        nonstandard = 0
        pos = MIN_PACKET_OCTETS
        while pos < length:  # lengths were validated by decode_packet
            type_ = data[pos]
            end = pos + data[pos + 1]
            attributes.append((type_, data[pos + 2 : end]))
            if type_ == VENDOR_SPECIFIC and (
                end - pos < 8 or not _split_standard_vsa(data, pos + 2, end, vendor_attributes)
            ):
                nonstandard += 1
            pos = end
        found = tuple(attributes)
        _set_vendor_attributes(self, tuple(vendor_attributes))
        _set_nonstandard(self, nonstandard)
        _set_attributes(self, found)
        return found

    # -- raw access -------------------------------------------------------------------

    def values(self, name: str) -> list[bytes]:
        """The raw values of every attribute ``name`` (a dictionary name), in wire order."""
        return self._raw_values(self.dictionary.attribute(name))

    def _raw_values(self, definition: AttributeDef) -> list[bytes]:
        number = definition.number
        if not definition.on_wire:
            return []
        if definition.vendor == 0:
            return [value for type_, value in self.attributes if type_ == number]
        vendor = definition.vendor
        found = self.dictionary.vendor_format(vendor)
        if found is not None and not found.standard_format:
            return [
                value
                for type_, value in _split_vendor(
                    self.attributes, vendor, found.type_size, found.length_size
                )
                if type_ == number
            ]
        return [value for v, t, value in self.vendor_attributes if v == vendor and t == number]

    def has(self, name: str) -> bool:
        """Whether the packet carries attribute ``name``."""
        return bool(self._raw_values(self.dictionary.attribute(name)))

    # -- typed access ------------------------------------------------------------------

    def get_all(self, name: str) -> list[Value]:
        """Every value of ``name``, typed; :class:`MalformedAttribute` if one does not fit."""
        definition = self.dictionary.attribute(name)
        return [decode_value(definition, raw) for raw in self._raw_values(definition)]

    def get(self, name: str) -> Value | None:
        """The first value of ``name``, typed, or None when absent."""
        definition = self.dictionary.attribute(name)
        found = self._raw_values(definition)
        return decode_value(definition, found[0]) if found else None

    def get_str(self, name: str) -> str | None:
        """The first value of ``name`` as text (UTF-8, invalid octets replaced), or None."""
        value = self.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return str(value)

    def get_int(self, name: str) -> int | None:
        """The first value of the integer attribute ``name``, or None when absent."""
        value = self.get(name)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise MalformedAttribute(name, "not an integer attribute")

    def avpairs(self) -> dict[str, str]:
        """The Cisco-AVPair ``key=value`` pairs (vendor 9, type 1); the first of a key wins."""
        pairs: dict[str, str] = {}
        for vendor, type_, value in self.vendor_attributes:
            if vendor == 9 and type_ == 1:
                key, text = parse_avpair(value.decode("utf-8", "replace"))
                pairs.setdefault(key, text)
        return pairs

    def user_password(self, secret: bytes) -> bytes | None:
        """The decrypted User-Password of an Access-Request (RFC 2865 section 5.2), or None."""
        for type_, value in self.attributes:
            if type_ == USER_PASSWORD:
                return decrypt_user_password(value, secret, self.authenticator)
        return None


def _slot_setter(name: str) -> Callable[[Packet, object], None]:
    # Writing the slots through their descriptors bypasses Packet.__setattr__, which refuses
    # every write from outside this module.
    return cast(Callable[[Packet, object], None], vars(Packet)[name].__set__)


_new = object.__new__
_set_code = _slot_setter("code")
_set_identifier = _slot_setter("identifier")
_set_authenticator = _slot_setter("authenticator")
_set_raw = _slot_setter("raw")
_set_dictionary = _slot_setter("dictionary")
_set_ma = _slot_setter("message_authenticator_at")
_set_proxy_state = _slot_setter("has_proxy_state")
_set_attributes = _slot_setter("_attributes")
_set_vendor_attributes = _slot_setter("_vendor_attributes")
_set_nonstandard = _slot_setter("_nonstandard_vsa_count")


def decode_packet(
    datagram: bytes | bytearray | memoryview, dictionary: Dictionary | None = None
) -> Packet:
    """Decode one datagram; :class:`RadiusError` if it must be dropped.

    ``dictionary`` (default: :func:`default_dictionary`) only serves the typed accessors.
    """
    # a bytearray or memoryview would leak into the attribute values
    data = datagram if type(datagram) is bytes else bytes(datagram)
    size = len(data)
    if size < MIN_PACKET_OCTETS:
        raise RadiusError(DropReason.TRUNCATED, f"{size} octets, a header needs 20")
    code_number, identifier, length = _HEADER.unpack_from(data)
    if length < MIN_PACKET_OCTETS or length > MAX_PACKET_OCTETS:
        raise RadiusError(DropReason.BAD_LENGTH, f"Length field {length}")
    if size < length:
        raise RadiusError(DropReason.TRUNCATED, f"{size} octets, Length field {length}")
    code = _CODES.get(code_number)
    if code is None:
        raise RadiusError(DropReason.UNKNOWN_CODE, f"code {code_number}")
    if size > length:
        data = data[:length]  # RFC 2865 section 3: octets past Length are padding
    ma_at = _MA_MISSING
    proxy_state = False
    pos = MIN_PACKET_OCTETS
    try:
        while pos < length:
            size = data[pos + 1]  # IndexError: the attribute header is cut
            if size < 2:
                raise RadiusError(
                    DropReason.BAD_ATTRIBUTE, f"attribute {data[pos]} at {pos} has length {size}"
                )
            type_ = data[pos]
            if type_ == MESSAGE_AUTHENTICATOR:
                ma_at = pos + 2 if ma_at == _MA_MISSING and size == 18 else _MA_INVALID
            elif type_ == PROXY_STATE:
                proxy_state = True
            pos += size
    except IndexError:
        pos = length + 1
    if pos != length:
        raise RadiusError(DropReason.BAD_ATTRIBUTE, "the last attribute runs past the end")
    packet = _new(Packet)
    _set_code(packet, code)
    _set_identifier(packet, identifier)
    _set_authenticator(packet, data[4:20])
    _set_raw(packet, data)
    _set_dictionary(packet, default_dictionary() if dictionary is None else dictionary)
    _set_ma(packet, ma_at)
    _set_proxy_state(packet, proxy_state)
    _set_attributes(packet, None)
    return packet


def _split_standard_vsa(
    data: bytes, start: int, end: int, out: list[tuple[int, int, bytes]]
) -> bool:
    """Append the sub-attributes of one Vendor-Specific value; none if they do not add up."""
    vendor = int.from_bytes(data[start : start + 4], "big")
    pos = start + 4
    sub_end = pos + data[pos + 1]
    if sub_end == end and end - pos >= 2:  # the usual case: one sub-attribute
        out.append((vendor, data[pos], data[pos + 2 : end]))
        return True
    found: list[tuple[int, int, bytes]] = []
    while pos < end:
        if end - pos < 2:
            return False
        sub_end = pos + data[pos + 1]
        if sub_end < pos + 2 or sub_end > end:
            return False  # not in the recommended format: the attribute stays raw only
        found.append((vendor, data[pos], data[pos + 2 : sub_end]))
        pos = sub_end
    out.extend(found)
    return True


def is_standard_vsa(value: bytes) -> bool:
    """Whether a Vendor-Specific value splits into RFC 2865 section 5.26 sub-attributes."""
    if len(value) < 6:
        return False
    return _split_standard_vsa(value, 0, len(value), [])


def _split_vendor(
    attributes: Iterable[tuple[int, bytes]], vendor: int, type_size: int, length_size: int
) -> list[tuple[int, bytes]]:
    """Sub-attributes of ``vendor``'s VSAs in a non-standard format (e.g. USR 4,0; Lucent 2,1)."""
    out: list[tuple[int, bytes]] = []
    prefix = vendor.to_bytes(4, "big")
    head = type_size + length_size
    for type_, value in attributes:
        if type_ != VENDOR_SPECIFIC or value[:4] != prefix:
            continue
        pos, end = 4, len(value)
        if length_size == 0:
            if end - pos >= type_size:
                out.append(
                    (int.from_bytes(value[pos : pos + type_size], "big"), value[pos + type_size :])
                )
            continue
        while end - pos >= head:
            sub_type = int.from_bytes(value[pos : pos + type_size], "big")
            sub_len = int.from_bytes(value[pos + type_size : pos + head], "big")
            if sub_len < head or pos + sub_len > end:
                break
            out.append((sub_type, value[pos + head : pos + sub_len]))
            pos += sub_len
    return out


# -- authenticators --------------------------------------------------------------------


_TRANS_5C: Final = bytes(x ^ 0x5C for x in range(256))
_TRANS_36: Final = bytes(x ^ 0x36 for x in range(256))
_HMAC_KEYS: dict[bytes, tuple[hashlib._Hash, hashlib._Hash]] = {}
_HMAC_KEYS_MAX: Final = 4096


def _hmac_md5(secret: bytes, message: bytes) -> bytes:
    """HMAC-MD5 (RFC 2104) with the padded key states cached per secret: 2x faster than hmac."""
    states = _HMAC_KEYS.get(secret)
    if states is None:
        key = hashlib.md5(secret).digest() if len(secret) > 64 else secret
        key = key.ljust(64, b"\x00")
        states = (hashlib.md5(key.translate(_TRANS_36)), hashlib.md5(key.translate(_TRANS_5C)))
        if len(_HMAC_KEYS) >= _HMAC_KEYS_MAX:
            _HMAC_KEYS.clear()
        _HMAC_KEYS[secret] = states
    inner = states[0].copy()
    inner.update(message)
    outer = states[1].copy()
    outer.update(inner.digest())
    return outer.digest()


def _check_message_authenticator(packet: Packet, secret: bytes, vector: bytes) -> bool:
    """RFC 3579 section 3.2: HMAC-MD5 over the packet, Authenticator field set to ``vector``."""
    at = packet.message_authenticator_at
    raw = packet.raw
    expected = _hmac_md5(secret, raw[:4] + vector + raw[20:at] + _ZERO16 + raw[at + 16 :])
    return hmac.compare_digest(expected, raw[at : at + 16])


def verify_request(
    packet: Packet,
    secret: bytes,
    *,
    require_message_authenticator: bool = False,
    limit_proxy_state: bool = True,
) -> None:
    """Authenticate a received request with the client's shared secret; raise :class:`RadiusError`.

    - Accounting-, Disconnect-, CoA-Request: Request Authenticator = MD5(Code + Identifier +
      Length + 16 zero octets + Attributes + Secret) (RFC 2866 section 3, RFC 5176 section 3.3).
    - Message-Authenticator, when present, must be right (RFC 3579 section 3.2); it is computed
      with the Request Authenticator of Access-Request and Status-Server and with zeros for the
      signed requests (RFC 5176 section 3.3).
    - Status-Server must carry one (RFC 5997); an Access-Request must when
      ``require_message_authenticator`` (BlastRADIUS), when it carries EAP-Message (RFC 3579),
      and, with ``limit_proxy_state``, when it carries Proxy-State.
    """
    code = packet.code
    at = packet.message_authenticator_at
    if code in _SIGNED_REQUESTS:
        raw = packet.raw
        digest = hashlib.md5(raw[:4] + _ZERO16 + raw[20:] + secret).digest()
        if not hmac.compare_digest(digest, packet.authenticator):
            raise RadiusError(DropReason.BAD_REQUEST_AUTHENTICATOR, code.name)
        vector = _ZERO16
    elif code is Code.ACCESS_REQUEST or code is Code.STATUS_SERVER:
        if at == _MA_MISSING:
            if code is Code.STATUS_SERVER or require_message_authenticator:
                raise RadiusError(DropReason.MISSING_MESSAGE_AUTHENTICATOR, code.name)
            for type_, _ in packet.attributes:
                if type_ == EAP_MESSAGE or (limit_proxy_state and type_ == PROXY_STATE):
                    raise RadiusError(
                        DropReason.MISSING_MESSAGE_AUTHENTICATOR, f"{code.name} with {type_}"
                    )
            return
        vector = packet.authenticator
    else:
        raise RadiusError(DropReason.NOT_A_REQUEST, code.name)
    if at == _MA_MISSING:
        return
    if at == _MA_INVALID or not _check_message_authenticator(packet, secret, vector):
        raise RadiusError(DropReason.BAD_MESSAGE_AUTHENTICATOR, code.name)


def verify_reply(
    reply: Packet,
    request: Packet,
    secret: bytes,
    *,
    require_message_authenticator: bool = False,
) -> None:
    """Check that ``reply`` answers ``request`` and is authentic (RFC 2865 section 3).

    The Response Authenticator must match; a Message-Authenticator, when present, must match
    with the Request Authenticator in the Authenticator field (RFC 3579, RFC 5176 section 3.3)
    or, for Accounting-Response and CoA/Disconnect ACK/NAK, with zeros as FreeRADIUS and pyrad
    sign them. ``require_message_authenticator`` makes it mandatory in replies to
    Access-Request and Status-Server.
    """
    if reply.identifier != request.identifier or reply.code not in _REPLIES.get(
        request.code, frozenset()
    ):
        raise RadiusError(
            DropReason.UNEXPECTED_REPLY,
            f"{reply.code.name} {reply.identifier} for {request.code.name} {request.identifier}",
        )
    raw = reply.raw
    digest = hashlib.md5(raw[:4] + request.authenticator + raw[20:] + secret).digest()
    if not hmac.compare_digest(digest, reply.authenticator):
        raise RadiusError(DropReason.BAD_RESPONSE_AUTHENTICATOR, reply.code.name)
    at = reply.message_authenticator_at
    if at == _MA_MISSING:
        if require_message_authenticator and request.code in (
            Code.ACCESS_REQUEST,
            Code.STATUS_SERVER,
        ):
            raise RadiusError(DropReason.MISSING_MESSAGE_AUTHENTICATOR, reply.code.name)
        return
    if at == _MA_INVALID:
        raise RadiusError(DropReason.BAD_MESSAGE_AUTHENTICATOR, reply.code.name)
    vectors = [request.authenticator]
    if request.code in _SIGNED_REQUESTS:
        vectors.append(_ZERO16)
    if not any(_check_message_authenticator(reply, secret, v) for v in vectors):
        raise RadiusError(DropReason.BAD_MESSAGE_AUTHENTICATOR, reply.code.name)


def _reply_ma_vector(request: Packet) -> bytes:
    # An Accounting-Response to an Accounting-Request is signed with zeros, as FreeRADIUS and
    # pyrad both sign and verify it (no RFC covers it); every other reply uses the Request
    # Authenticator (RFC 3579 section 3.2, RFC 5176 section 3.3, RFC 5997 section 3).
    if request.code is Code.ACCOUNTING_REQUEST:
        return _ZERO16
    return request.authenticator


def _body(attributes: Iterable[Attribute]) -> bytes:
    parts: list[bytes] = []
    for type_, value in attributes:
        size = len(value)
        if size > 253 or not 0 <= type_ <= 255:
            raise ValueError(f"attribute {type_} with a value of {size} octets does not fit")
        parts.append(bytes((type_, size + 2)))
        parts.append(value)
    return b"".join(parts)


_BARE_REPLIES: dict[tuple[bytes, int, int], tuple[bytes, bytes]] = {}
_BARE_REPLIES_MAX: Final = 65536


def _bare_reply(code: Code, identifier: int, secret: bytes) -> tuple[bytes, bytes]:
    """Header and Message-Authenticator attribute of an attribute-less reply to an
    Accounting-Request (signed with zeros, see :func:`_reply_ma_vector`): the same for every
    request with this Identifier and secret, so computed once."""
    key = (secret, code, identifier)
    found = _BARE_REPLIES.get(key)
    if found is None:
        header = _HEADER.pack(code, identifier, MIN_PACKET_OCTETS + 18)
        mac = _hmac_md5(secret, header + _ZERO16 + _MA_PLACEHOLDER)
        found = (header, bytes((MESSAGE_AUTHENTICATOR, 18)) + mac)
        if len(_BARE_REPLIES) >= _BARE_REPLIES_MAX:
            _BARE_REPLIES.clear()
        _BARE_REPLIES[key] = found
    return found


def encode_reply(
    request: Packet,
    code: Code,
    attributes: Iterable[Attribute],
    secret: bytes,
    *,
    message_authenticator: bool = True,
    copy_proxy_state: bool = True,
) -> bytes:
    """Encode the reply ``code`` to ``request`` with its Response Authenticator (RFC 2865 §3).

    Message-Authenticator goes first (BlastRADIUS guidance); the request's Proxy-State
    attributes are copied last, unmodified and in order (RFC 2865 section 5.33).
    """
    if (
        message_authenticator
        and attributes == ()
        and not (copy_proxy_state and request.has_proxy_state)
        and request.code is Code.ACCOUNTING_REQUEST
    ):
        # The common Accounting-Response: only the Response Authenticator is per request.
        header, attribute = _bare_reply(code, request.identifier, secret)
        digest = hashlib.md5(header + request.authenticator + attribute + secret).digest()
        return header + digest + attribute
    body = _body(attributes)
    if copy_proxy_state and request.has_proxy_state:
        proxy_state = [(t, v) for t, v in request.attributes if t == PROXY_STATE]
        if proxy_state:
            body += _body(proxy_state)
    if message_authenticator:
        body = _MA_PLACEHOLDER + body
    length = 20 + len(body)
    if length > MAX_PACKET_OCTETS:
        raise RadiusError(DropReason.TOO_LARGE, f"{code.name} of {length} octets")
    header = _HEADER.pack(code, request.identifier, length)
    if message_authenticator:
        mac = _hmac_md5(secret, header + _reply_ma_vector(request) + body)
        body = body[:2] + mac + body[18:]
    digest = hashlib.md5(header + request.authenticator + body + secret).digest()
    return header + digest + body


def encode_request(
    code: Code,
    identifier: int,
    attributes: Iterable[Attribute],
    secret: bytes,
    *,
    authenticator: bytes | None = None,
    user_password: bytes | str | None = None,
    message_authenticator: bool | None = None,
) -> bytes:
    """Encode a request as a client sends it.

    Access-Request and Status-Server get a random Request Authenticator (or ``authenticator``)
    and, by default, a Message-Authenticator first; ``user_password`` is hidden as RFC 2865
    section 5.2 says. Accounting-, Disconnect- and CoA-Request get the computed Request
    Authenticator (RFC 2866 section 3, RFC 5176 section 3.3); Message-Authenticator is added by
    default to Disconnect/CoA, not to Accounting-Request.
    """
    if code not in _REQUESTS:
        raise ValueError(f"{Code(code).name} is not a request")
    if not 0 <= identifier <= 255:
        raise ValueError(f"identifier {identifier} is not 0..255")
    signed = code in _SIGNED_REQUESTS
    if message_authenticator is None:
        message_authenticator = code is not Code.ACCOUNTING_REQUEST
    if signed:
        if authenticator is not None:
            raise ValueError(f"the Request Authenticator of {code.name} is computed")
        vector = _ZERO16
    else:
        vector = secrets.token_bytes(16) if authenticator is None else authenticator
        if len(vector) != 16:
            raise ValueError("an authenticator has 16 octets")
    attributes = list(attributes)
    if user_password is not None:
        if code is not Code.ACCESS_REQUEST:
            raise ValueError("User-Password belongs in an Access-Request")
        password = user_password.encode() if isinstance(user_password, str) else user_password
        attributes.append((USER_PASSWORD, encrypt_user_password(password, secret, vector)))
    body = _body(attributes)
    if message_authenticator:
        body = _MA_PLACEHOLDER + body
    length = 20 + len(body)
    if length > MAX_PACKET_OCTETS:
        raise RadiusError(DropReason.TOO_LARGE, f"{code.name} of {length} octets")
    header = _HEADER.pack(code, identifier, length)
    if message_authenticator:
        mac = _hmac_md5(secret, header + vector + body)
        body = body[:2] + mac + body[18:]
    if signed:
        vector = hashlib.md5(header + _ZERO16 + body + secret).digest()
    return header + vector + body


# -- User-Password (RFC 2865 section 5.2) ----------------------------------------------


def encrypt_user_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Hide ``password`` (at most 128 octets) with the secret and the Request Authenticator."""
    if len(password) > 128:
        raise ValueError(f"a User-Password has at most 128 octets, not {len(password)}")
    padding = -len(password) % 16 if password else 16
    padded = password + bytes(padding)
    out = bytearray()
    last = authenticator
    for i in range(0, len(padded), 16):
        last = _xor16(padded[i : i + 16], hashlib.md5(secret + last).digest())
        out += last
    return bytes(out)


def decrypt_user_password(value: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Recover a User-Password; trailing NUL padding is removed."""
    if not value or len(value) % 16 or len(value) > 128:
        raise MalformedAttribute("User-Password", f"{len(value)} octets, not 16..128 by 16")
    out = bytearray()
    last = authenticator
    for i in range(0, len(value), 16):
        block = value[i : i + 16]
        out += _xor16(block, hashlib.md5(secret + last).digest())
        last = block
    return bytes(out).rstrip(b"\x00")


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")


# -- duplicates ------------------------------------------------------------------------

RetransmissionKey = tuple[str, int, int, int, bytes]
"""(source host, source port, code, identifier, Request Authenticator)."""


def retransmission_key(
    source: tuple[str, int] | tuple[str, int, int, int], packet: Packet
) -> RetransmissionKey:
    """The key that identifies a retransmission of ``packet`` (RFC 5080 section 2.2.2).

    A client that retransmits keeps source address, port, Identifier and Request
    Authenticator; a new request changes the authenticator even when the Identifier wraps.
    The code keeps Access and Accounting apart when one cache serves both.
    """
    return (source[0], source[1], packet.code, packet.identifier, packet.authenticator)
