"""AVPs and the AVP-list codec (RFC 6733 §4): the body of a message and of a Grouped AVP.

An :class:`Avp` is an immutable record ``(code, vendor_id, flags, value)``.  Its value is typed
by the dictionary when the AVP is known (int, float, str, bytes, datetime, an address, or a
tuple of AVPs for Grouped) and kept as the raw payload ``bytes`` when it is not, so that an
unknown AVP re-encodes byte for byte.  Any AVP may also carry raw ``bytes``: that is how a
Failed-AVP quotes an AVP whose payload could not be decoded.

Grouped AVPs are decoded eagerly by the same loop as the message body, which lets every error
surface during :func:`~protocols.diameter.message.decode_message` with the offending AVP
wrapped in its parents, as RFC 6733 §7.5 suggests for Failed-AVP.

Speed: the decoder is one loop over ``struct`` calls with the common types (Unsigned32,
Integer32/Enumerated, Unsigned64, UTF8String, DiameterIdentity, OctetString, Grouped) decoded
inline; the other types call their :mod:`protocols.diameter.datatypes` module.  The inline
paths and the modules must agree; ``test_diameter_avp_codec`` checks it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from protocols.diameter.constants import RESERVED_AVP_FLAGS, AvpFlag, ResultCode
from protocols.diameter.datatypes import DataType
from protocols.diameter.datatypes.address import (
    AddressValue,
    OtherAddress,
    pull_address,
    push_address,
)
from protocols.diameter.datatypes.floatingpoint import (
    pull_float32,
    pull_float64,
    push_float32,
    push_float64,
)
from protocols.diameter.datatypes.integer import pull_integer64, push_integer64
from protocols.diameter.datatypes.timestamp import pull_time, push_time
from protocols.diameter.datatypes.uri import pull_diameter_uri
from protocols.diameter.dictionary import DEFINITIONS, FlagRule, avp_name, lookup
from protocols.diameter.errors import DiameterError

AvpValue = int | float | str | bytes | datetime | AddressValue | tuple["Avp", ...]
_Puller = Callable[[bytes], AvpValue]


class Avp(NamedTuple):
    """One AVP: code, Vendor-Id (0 for IETF AVPs), flags byte and value."""

    code: int
    vendor_id: int
    flags: int
    value: AvpValue

    @property
    def is_mandatory(self) -> bool:
        """True when the M bit is set."""
        return bool(self.flags & AvpFlag.MANDATORY)

    @property
    def name(self) -> str:
        """The dictionary name, or ``AVP <code>[/<vendor>]`` when unknown."""
        return avp_name(self.code, self.vendor_id)

    @property
    def avps(self) -> tuple[Avp, ...]:
        """The members of a Grouped AVP (empty for any other value)."""
        value = self.value
        return value if type(value) is tuple else ()

    def find(self, code: int, vendor_id: int = 0) -> Avp | None:
        """Return the first member with this code and vendor, or None."""
        return find_avp(self.avps, code, vendor_id)

    def find_all(self, code: int, vendor_id: int = 0) -> list[Avp]:
        """Return every member with this code and vendor."""
        return find_avps(self.avps, code, vendor_id)


_new_avp = tuple.__new__


def new_avp(code: int, value: AvpValue, vendor_id: int = 0) -> Avp:
    """Build an AVP to send, with the M/V/P flags its dictionary entry prescribes.

    Unknown AVPs (vendor extensions the dictionary does not list) get only the V bit when they
    carry a Vendor-Id; use :class:`Avp` directly to set other flags.
    """
    definition = DEFINITIONS.get((vendor_id << 32) | code)
    if definition is not None:
        flags = definition.flags_to_send
    else:
        flags = AvpFlag.VENDOR if vendor_id else 0
    return _new_avp(Avp, (code, vendor_id, int(flags), value))


def grouped(code: int, members: Iterable[Avp], vendor_id: int = 0) -> Avp:
    """Build a Grouped AVP from its members (flags from the dictionary)."""
    return new_avp(code, tuple(members), vendor_id)


def find_avp(avps: Sequence[Avp], code: int, vendor_id: int = 0) -> Avp | None:
    """Return the first AVP of *avps* with this code and vendor, or None."""
    for avp in avps:
        if avp[0] == code and avp[1] == vendor_id:
            return avp
    return None


def find_avps(avps: Sequence[Avp], code: int, vendor_id: int = 0) -> list[Avp]:
    """Return every AVP of *avps* with this code and vendor."""
    return [avp for avp in avps if avp[0] == code and avp[1] == vendor_id]


def zeroed_avp(code: int, vendor_id: int = 0) -> Avp:
    """An AVP of minimum size filled with zeroes: RFC 6733 §7.5's example of a missing AVP."""
    definition = lookup(code, vendor_id)
    size = _MIN_PAYLOAD.get(definition.data_type, 0) if definition is not None else 0
    flags = definition.flags_to_send if definition is not None else 0
    value: AvpValue = () if definition and definition.data_type is DataType.GROUPED else b""
    if size:
        value = bytes(size)
    return _new_avp(Avp, (code, vendor_id, flags, value))


# --- decoding ----------------------------------------------------------------------------

_HEADER = struct.Struct("!II")
_HEADER3 = struct.Struct("!III")
_U32 = struct.Struct("!I")
_I32 = struct.Struct("!i")
_U64 = struct.Struct("!Q")
_FAILED_AVP = 279  # AvpCode.FAILED_AVP, as a plain int for the hot loop

# Inline decoder tags, most frequent first; the 32-bit integer ones come first (<= _T_I32).
_T_U32 = 0
_T_I32 = 1
_T_UTF8 = 2
_T_GROUPED = 3
_T_IDENTITY = 4
_T_U64 = 5
_T_OCTETS = 6
_T_CALL = 7

_MIN_PAYLOAD = {
    DataType.INTEGER32: 4,
    DataType.INTEGER64: 8,
    DataType.UNSIGNED32: 4,
    DataType.UNSIGNED64: 8,
    DataType.FLOAT32: 4,
    DataType.FLOAT64: 8,
    DataType.ENUMERATED: 4,
    DataType.TIME: 4,
    DataType.ADDRESS: 6,
}

_CALLED: dict[DataType, _Puller] = {
    DataType.INTEGER64: pull_integer64,
    DataType.FLOAT32: pull_float32,
    DataType.FLOAT64: pull_float64,
    DataType.TIME: pull_time,
    DataType.ADDRESS: pull_address,
    DataType.DIAMETER_URI: pull_diameter_uri,
    DataType.IP_FILTER_RULE: pull_diameter_uri,  # both are ASCII text on the wire
}

_INLINE = {
    DataType.UNSIGNED32: _T_U32,
    DataType.UTF8_STRING: _T_UTF8,
    DataType.GROUPED: _T_GROUPED,
    DataType.DIAMETER_IDENTITY: _T_IDENTITY,
    DataType.INTEGER32: _T_I32,
    DataType.ENUMERATED: _T_I32,
    DataType.UNSIGNED64: _T_U64,
    DataType.OCTET_STRING: _T_OCTETS,
}


def _mask(rule: FlagRule, bit: int, want: FlagRule) -> int:
    return bit if rule is want else 0


# key -> (tag, puller or None, required flag bits, forbidden flag bits)
_Spec = tuple[int, _Puller | None, int, int]
_SPECS: dict[int, _Spec] = {}
for _key, _definition in DEFINITIONS.items():
    _SPECS[_key] = (
        _INLINE.get(_definition.data_type, _T_CALL),
        _CALLED.get(_definition.data_type),
        _mask(_definition.mandatory, AvpFlag.MANDATORY, FlagRule.MUST)
        | _mask(_definition.vendor, AvpFlag.VENDOR, FlagRule.MUST),
        _mask(_definition.mandatory, AvpFlag.MANDATORY, FlagRule.MUST_NOT)
        | _mask(_definition.vendor, AvpFlag.VENDOR, FlagRule.MUST_NOT)
        | _mask(_definition.protected, AvpFlag.PROTECTED, FlagRule.MUST_NOT),
    )


def _length_error(message: str, failed: Avp) -> DiameterError:
    return DiameterError(ResultCode.DIAMETER_INVALID_AVP_LENGTH, message, (failed,))


def _truncated_header(buf: bytes, pos: int, end: int) -> DiameterError:
    # RFC 6733 §7.1.5 (5014): pad the incomplete header with zeroes to the minimum size.
    header = bytes(buf[pos:end]) + bytes(8 - (end - pos))
    code, word = _HEADER.unpack(header)
    failed = _new_avp(Avp, (code, 0, (word >> 24) & ~AvpFlag.VENDOR, b""))
    return _length_error(f"{end - pos} bytes left, too short for an AVP header", failed)


def _bad_length(code: int, vendor_id: int, flags: int, length: int, room: int) -> DiameterError:
    # RFC 6733 §7.1.5 (5014): the header and a zero-filled payload of the minimum size.
    failed = zeroed_avp(code, vendor_id)._replace(flags=flags)
    return _length_error(
        f"{avp_name(code, vendor_id)}: AVP Length {length} does not fit ({room} bytes left)",
        failed,
    )


class AvpDecoder:
    """Decodes AVP lists with fixed options; one per :class:`CodecOptions`."""

    __slots__ = ("enforce_flag_rules", "max_depth", "reject_unknown_mandatory")

    def __init__(
        self, *, reject_unknown_mandatory: bool, enforce_flag_rules: bool, max_depth: int
    ) -> None:
        self.reject_unknown_mandatory = reject_unknown_mandatory
        self.enforce_flag_rules = enforce_flag_rules
        self.max_depth = max_depth

    def pull_avps(
        self, buf: bytes, pos: int, end: int, notes: list[str], depth: int = 0
    ) -> tuple[Avp, ...]:
        """Decode the AVPs in ``buf[pos:end]``; raise DiameterError naming the first bad one."""
        out: list[Avp] = []
        append = out.append
        specs = _SPECS
        unpack3 = _HEADER3.unpack_from
        unpack_u32 = _U32.unpack_from
        new = _new_avp
        enforce = self.enforce_flag_rules
        value: AvpValue
        while pos < end:
            room = end - pos
            if room >= 12:
                # One call reads the header and the Vendor-Id or the first payload word,
                # which for an IETF Unsigned32/Integer32 AVP is its whole value.
                code, word, third = unpack3(buf, pos)
            elif room >= 8:
                code, word = _HEADER.unpack_from(buf, pos)
                third = 0
            else:
                raise _truncated_header(buf, pos, end)
            flags = word >> 24
            length = word & 0xFFFFFF
            stop = pos + length
            if flags & 0x80:
                if length < 12 or stop > end:
                    raise _bad_length(code, third, flags, length, room)
                vendor_id = third
                start = pos + 12
                spec = specs.get((third << 32) | code)
                if spec is not None and spec[0] <= _T_I32:
                    third = unpack_u32(buf, start)[0] if length == 16 else -1
            else:
                if length < 8 or stop > end:
                    raise _bad_length(code, 0, flags, length, room)
                vendor_id = 0
                start = pos + 8
                spec = specs.get(code)
                if length != 12:
                    third = -1
            if spec is None:
                value = buf[start:stop]
                if flags & 0x40:
                    self._unknown_mandatory(code, vendor_id, flags, value, notes)
            else:
                tag = spec[0]
                if enforce:
                    self._check_flags(code, vendor_id, flags, spec, buf[start:stop])
                if tag == _T_U32:
                    if third < 0:
                        raise self._wrong_size(code, vendor_id, flags, buf[start:stop], 4)
                    value = third
                elif tag == _T_UTF8:
                    try:
                        value = buf[start:stop].decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise self._invalid(
                            new(Avp, (code, vendor_id, flags, buf[start:stop])),
                            f"is not valid UTF-8 (byte {exc.start})",
                        ) from None
                elif tag == _T_GROUPED:
                    if depth >= self.max_depth:
                        raise DiameterError(
                            ResultCode.DIAMETER_INVALID_AVP_VALUE,
                            f"Grouped AVPs nested deeper than {self.max_depth}",
                            (new(Avp, (code, vendor_id, flags, b"")),),
                        )
                    try:
                        value = self.pull_avps(buf, start, stop, notes, depth + 1)
                    except DiameterError as err:
                        if code == _FAILED_AVP and not vendor_id:
                            value = self._pull_quoted(buf, start, stop, notes, depth + 1)
                        else:
                            wrapper = new(Avp, (code, vendor_id, flags, err.failed_avps))
                            raise err.with_failed_avps((wrapper,)) from None
                elif tag == _T_I32:
                    if third < 0:
                        raise self._wrong_size(code, vendor_id, flags, buf[start:stop], 4)
                    value = third - 0x100000000 if third & 0x80000000 else third
                elif tag == _T_IDENTITY:
                    try:
                        value = buf[start:stop].decode("ascii")
                    except UnicodeDecodeError as exc:
                        raise self._invalid(
                            new(Avp, (code, vendor_id, flags, buf[start:stop])),
                            f"is not ASCII (byte {exc.start})",
                        ) from None
                elif tag == _T_U64:
                    if stop - start != 8:
                        raise self._wrong_size(code, vendor_id, flags, buf[start:stop], 8)
                    value = _U64.unpack_from(buf, start)[0]
                elif tag == _T_OCTETS:
                    value = buf[start:stop]
                else:
                    payload = buf[start:stop]
                    puller = spec[1]
                    assert puller is not None
                    try:
                        value = puller(payload)
                    except DiameterError as err:
                        failed = new(Avp, (code, vendor_id, flags, payload))
                        raise DiameterError(
                            err.result_code,
                            f"{avp_name(code, vendor_id)}: {err.error_message}",
                            (failed,),
                        ) from None
            append(new(Avp, (code, vendor_id, flags, value)))
            pos += (length + 3) & ~3
        if pos > end:
            # The last member ended flush with its Grouped parent but its padding was left
            # out of the parent's length; the octets are all there, so accept it.
            notes.append("grouped AVP length excludes the padding of its last member")
        return tuple(out)

    def _pull_quoted(
        self, buf: bytes, pos: int, end: int, notes: list[str], depth: int
    ) -> tuple[Avp, ...]:
        # A Failed-AVP quotes AVPs that were wrong by definition (RFC 6733 §7.5): keep each
        # member that does not decode as its raw payload instead of refusing the answer.
        out: list[Avp] = []
        for member in pull_raw_avps(buf, pos, end):
            wire = push_avp(member)
            try:
                out.extend(self.pull_avps(wire, 0, len(wire), notes, depth))
            except DiameterError:
                out.append(member)
        return tuple(out)

    def _unknown_mandatory(
        self, code: int, vendor_id: int, flags: int, payload: bytes, notes: list[str]
    ) -> None:
        if self.reject_unknown_mandatory:
            raise DiameterError(
                ResultCode.DIAMETER_AVP_UNSUPPORTED,
                f"{avp_name(code, vendor_id)} is not supported and has the M bit set",
                (_new_avp(Avp, (code, vendor_id, flags, payload)),),
            )
        notes.append(f"unknown mandatory {avp_name(code, vendor_id)} kept")

    @staticmethod
    def _check_flags(
        code: int,
        vendor_id: int,
        flags: int,
        spec: _Spec,
        payload: bytes,
    ) -> None:
        required, forbidden = spec[2], spec[3]
        reserved = flags & RESERVED_AVP_FLAGS and flags & AvpFlag.MANDATORY
        if (flags & required) != required or flags & forbidden or reserved:
            definition = lookup(code, vendor_id)
            detail = "; ".join(definition.flag_violations(flags)) if definition else ""
            if reserved:
                detail = f"{avp_name(code, vendor_id)}: reserved bits set with the M bit"
            raise DiameterError(
                ResultCode.DIAMETER_INVALID_AVP_BITS,
                detail,
                (_new_avp(Avp, (code, vendor_id, flags, payload)),),
            )

    @staticmethod
    def _wrong_size(
        code: int, vendor_id: int, flags: int, payload: bytes, expected: int
    ) -> DiameterError:
        return _length_error(
            f"{avp_name(code, vendor_id)}: payload must be {expected} bytes, got {len(payload)}",
            _new_avp(Avp, (code, vendor_id, flags, payload)),
        )

    @staticmethod
    def _invalid(failed: Avp, what: str) -> DiameterError:
        return DiameterError(
            ResultCode.DIAMETER_INVALID_AVP_VALUE, f"{failed.name} {what}", (failed,)
        )


def pull_raw_avps(buf: bytes, pos: int, end: int) -> tuple[Avp, ...]:
    """Decode the well-formed prefix of an AVP list without typing any value.

    Used to salvage what can be echoed (Session-Id, Proxy-Info...) from a message that failed
    to decode; stops silently at the first malformed header.
    """
    out: list[Avp] = []
    while end - pos >= 8:
        code, word = _HEADER.unpack_from(buf, pos)
        flags = word >> 24
        length = word & 0xFFFFFF
        header = 12 if flags & 0x80 else 8
        if length < header or pos + length > end:
            break
        vendor_id = _U32.unpack_from(buf, pos + 8)[0] if header == 12 else 0
        out.append(_new_avp(Avp, (code, vendor_id, flags, bytes(buf[pos + header : pos + length]))))
        pos += (length + 3) & ~3
    return tuple(out)


# --- encoding ----------------------------------------------------------------------------

_AVP_U32 = struct.Struct("!III")
_AVP_U32_V = struct.Struct("!IIII")
_AVP_I32 = struct.Struct("!IIi")
_AVP_I32_V = struct.Struct("!IIIi")
_AVP_U64 = struct.Struct("!IIQ")
_AVP_U64_V = struct.Struct("!IIIQ")
_HEADER_V = struct.Struct("!III")
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")
_ZEROS_8 = bytes(8)
_ZEROS_12 = bytes(12)

_INT_KIND: dict[int, DataType] = {
    key: definition.data_type
    for key, definition in DEFINITIONS.items()
    if definition.data_type
    in (
        DataType.UNSIGNED32,
        DataType.INTEGER32,
        DataType.ENUMERATED,
        DataType.UNSIGNED64,
        DataType.INTEGER64,
        DataType.FLOAT32,
        DataType.FLOAT64,
    )
}
_ASCII_KEYS = frozenset(
    key
    for key, definition in DEFINITIONS.items()
    if definition.data_type
    in (DataType.DIAMETER_IDENTITY, DataType.DIAMETER_URI, DataType.IP_FILTER_RULE)
)


def push_avp(avp: Avp) -> bytes:
    """Encode one AVP with its header and padding.

    The V bit and the Vendor-Id field go together: an AVP with a non-zero Vendor-Id gets the
    V bit, and an AVP received with the V bit keeps its (possibly zero) Vendor-Id field.
    Raises ValueError for a value its type cannot carry.
    """
    out = bytearray()
    push_avp_into(avp, out)
    return bytes(out)


def push_avps(avps: Iterable[Avp]) -> bytes:
    """Encode a list of AVPs (a message body or a Grouped payload)."""
    out = bytearray()
    for avp in avps:
        push_avp_into(avp, out)
    return bytes(out)


def push_avp_into(avp: Avp, out: bytearray) -> None:
    """Append the encoding of *avp* to *out* (see :func:`push_avp`)."""
    code, vendor_id, flags, value = avp
    if vendor_id:
        flags |= 0x80
    vendor = flags & 0x80
    kind = type(value)
    if kind is tuple:
        # Grouped: reserve the header, append the members, then write the length.
        at = len(out)
        out += _ZEROS_12 if vendor else _ZEROS_8
        for member in value:  # type: ignore[union-attr]
            push_avp_into(member, out)  # type: ignore[arg-type]
        length = len(out) - at
        if length > 0xFFFFFF:
            raise ValueError(f"{avp_name(code, vendor_id)} is too long ({length} bytes)")
        if vendor:
            _HEADER_V.pack_into(out, at, code, (flags << 24) | length, vendor_id)
        else:
            _HEADER.pack_into(out, at, code, (flags << 24) | length)
        return
    if kind is int or (isinstance(value, int) and kind is not bool):
        data_type = _INT_KIND.get((vendor_id << 32) | code)
        try:
            if data_type is DataType.UNSIGNED32:
                if vendor:
                    out += _AVP_U32_V.pack(code, (flags << 24) | 16, vendor_id, value)
                else:
                    out += _AVP_U32.pack(code, (flags << 24) | 12, value)
                return
            if data_type is DataType.INTEGER32 or data_type is DataType.ENUMERATED:
                if vendor:
                    out += _AVP_I32_V.pack(code, (flags << 24) | 16, vendor_id, value)
                else:
                    out += _AVP_I32.pack(code, (flags << 24) | 12, value)
                return
            if data_type is DataType.UNSIGNED64:
                if vendor:
                    out += _AVP_U64_V.pack(code, (flags << 24) | 20, vendor_id, value)
                else:
                    out += _AVP_U64.pack(code, (flags << 24) | 16, value)
                return
        except struct.error:
            raise ValueError(f"{avp_name(code, vendor_id)}: {value!r} out of range") from None
        if data_type is DataType.INTEGER64:
            payload = push_integer64(int(value))  # type: ignore[arg-type]
        elif data_type is DataType.FLOAT32:
            payload = push_float32(float(value))  # type: ignore[arg-type]
        elif data_type is DataType.FLOAT64:
            payload = push_float64(float(value))  # type: ignore[arg-type]
        else:
            raise ValueError(f"{avp_name(code, vendor_id)} cannot carry an integer")
    elif kind is str:
        if (vendor_id << 32) | code in _ASCII_KEYS:
            try:
                payload = value.encode("ascii")  # type: ignore[union-attr]
            except UnicodeEncodeError:
                raise ValueError(f"{avp_name(code, vendor_id)} must be ASCII") from None
        else:
            payload = value.encode("utf-8")  # type: ignore[union-attr]
    elif kind is bytes:
        payload = value  # type: ignore[assignment]
    elif kind is datetime:
        payload = push_time(value)  # type: ignore[arg-type]
    elif kind is IPv4Address or kind is IPv6Address or kind is OtherAddress:
        payload = push_address(value)  # type: ignore[arg-type]
    elif kind is float:
        data_type = _INT_KIND.get((vendor_id << 32) | code)
        if data_type is DataType.FLOAT32:
            payload = push_float32(value)  # type: ignore[arg-type]
        elif data_type is DataType.FLOAT64:
            payload = push_float64(value)  # type: ignore[arg-type]
        else:
            raise ValueError(f"{avp_name(code, vendor_id)} cannot carry a float")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        payload = bytes(value)
    elif isinstance(value, datetime):
        payload = push_time(value)
    elif isinstance(value, str):
        payload = value.encode("utf-8")
    else:
        raise ValueError(f"{avp_name(code, vendor_id)}: cannot encode {kind.__name__}")
    size = len(payload)
    if vendor:
        if size > 0xFFFFFF - 12:
            raise ValueError(f"{avp_name(code, vendor_id)} is too long ({size} bytes)")
        out += _HEADER_V.pack(code, (flags << 24) | (12 + size), vendor_id)
    else:
        if size > 0xFFFFFF - 8:
            raise ValueError(f"{avp_name(code, vendor_id)} is too long ({size} bytes)")
        out += _HEADER.pack(code, (flags << 24) | (8 + size))
    out += payload
    out += _PADDING[size & 3]
