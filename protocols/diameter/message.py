"""Diameter messages (RFC 6733 §3): header + AVPs, their codec, and how answers are built.

``decode_message(data)`` returns a :class:`Message` or raises :class:`DiameterError`, never any
other exception: the hypothesis tests hold it to that.  ``encode_message(decode_message(x)) == x``
for every well-formed ``x`` (zero padding, padded Grouped members).

Header checks (RFC 6733 §3 and §7.1):

=============================================  ==============================================
what is wrong                                   Result-Code
=============================================  ==============================================
fewer than 20 octets, Message Length differs    5015 DIAMETER_INVALID_MESSAGE_LENGTH
from the octets received or is not a multiple
of 4
Version is not 1                                5011 DIAMETER_UNSUPPORTED_VERSION
R and E bits both set ("MUST NOT", §3)          3008 DIAMETER_INVALID_HDR_BITS
=============================================  ==============================================

The reserved header bits are kept as received and otherwise ignored (§3: "ignored by the
receiver").  AVP-level errors are described in :mod:`protocols.diameter.avp`.

Strictness that real peers break is a switch in :class:`CodecOptions`; each switch defaults to
the liberal choice, and what the liberal choice let through is listed in
``Message.tolerated`` for the caller to log.

Answers: :func:`make_answer` turns a request into its answer (R bit cleared, P bit kept,
hop-by-hop and end-to-end ids echoed, Session-Id first, our Origin-Host/Realm, the request's
Proxy-Info echoed last as §6.2 requires).  :func:`answer_for_error` is the one place where a
:class:`DiameterError` becomes an answer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address

from protocols.diameter.avp import (
    Avp,
    AvpDecoder,
    find_avp,
    find_avps,
    new_avp,
    pull_raw_avps,
    push_avp_into,
)
from protocols.diameter.constants import (
    HEADER_LENGTH,
    PROTOCOL_VERSION,
    AvpCode,
    CommandCode,
    CommandFlag,
    ResultCode,
    VendorId,
    is_protocol_error,
)
from protocols.diameter.errors import DiameterError

_HEADER = struct.Struct("!IIIII")
MAX_MESSAGE_LENGTH = 0xFFFFFF


@dataclass(frozen=True, slots=True)
class CodecOptions:
    """Decoding strictness switches (each defaults to the liberal choice).

    - ``reject_unknown_mandatory``: RFC 6733 §4.1 says a message with an unrecognised AVP
      whose M bit is set MUST be rejected with 5001.  Off by default: a refused CCR makes the
      softswitch apply its Credit-Control-Failure-Handling, which is often CONTINUE, i.e. an
      unbilled call, while the AVPs we lack (PS/MMS details) do not change how we charge.
      When off, the AVP is kept as raw bytes and noted in ``Message.tolerated``.
    - ``enforce_flag_rules``: reject (3009 DIAMETER_INVALID_AVP_BITS) an AVP whose M/V/P bits
      contradict its dictionary rules, or that has reserved bits set together with M.  Off by
      default: softswitches commonly set M on every 3GPP AVP, and 3GPP releases changed
      several rules.
    - ``max_depth``: deepest Grouped nesting accepted (bounds recursion; 5004 beyond).
    """

    reject_unknown_mandatory: bool = False
    enforce_flag_rules: bool = False
    max_depth: int = 16

    @property
    def decoder(self) -> AvpDecoder:
        """The AVP decoder configured by these options."""
        return _decoder_for(self)


_DECODERS: dict[tuple[bool, bool, int], AvpDecoder] = {}


def _decoder_for(options: CodecOptions) -> AvpDecoder:
    key = (options.reject_unknown_mandatory, options.enforce_flag_rules, options.max_depth)
    decoder = _DECODERS.get(key)
    if decoder is None:
        decoder = AvpDecoder(
            reject_unknown_mandatory=options.reject_unknown_mandatory,
            enforce_flag_rules=options.enforce_flag_rules,
            max_depth=options.max_depth,
        )
        _DECODERS[key] = decoder
    return decoder


DEFAULT_OPTIONS = CodecOptions()
STRICT_OPTIONS = CodecOptions(reject_unknown_mandatory=True, enforce_flag_rules=True)


class Message:
    """A Diameter message: header fields and the top-level AVPs in wire order.

    Immutable.  A message decoded with ``lazy=True`` keeps its wire octets in ``raw`` and
    decodes its AVPs on first access of :attr:`avps`, which then raises
    :class:`DiameterError` if they are malformed; ``raw`` also lets the Gy view read a CCR
    straight from the octets.  ``tolerated`` lists what the liberal codec options let through
    (valid once the AVPs are decoded).
    """

    __slots__ = (
        "_avps",
        "_options",
        "application_id",
        "command_code",
        "end_to_end_id",
        "flags",
        "hop_by_hop_id",
        "raw",
        "tolerated",
    )

    command_code: int
    flags: int
    application_id: int
    hop_by_hop_id: int
    end_to_end_id: int
    raw: bytes | None
    tolerated: tuple[str, ...]
    _avps: tuple[Avp, ...] | None
    _options: CodecOptions | None

    def __init__(
        self,
        command_code: int,
        flags: int,
        application_id: int,
        hop_by_hop_id: int,
        end_to_end_id: int,
        avps: tuple[Avp, ...] = (),
        *,
        tolerated: tuple[str, ...] = (),
        raw: bytes | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "command_code", command_code)
        setattr_(self, "flags", flags)
        setattr_(self, "application_id", application_id)
        setattr_(self, "hop_by_hop_id", hop_by_hop_id)
        setattr_(self, "end_to_end_id", end_to_end_id)
        setattr_(self, "_avps", tuple(avps))
        setattr_(self, "tolerated", tolerated)
        setattr_(self, "raw", raw)
        setattr_(self, "_options", None)

    @classmethod
    def _lazy(
        cls, header: tuple[int, int, int, int, int], raw: bytes, options: CodecOptions
    ) -> Message:
        message = cls.__new__(cls)
        setattr_ = object.__setattr__
        (
            command_code,
            flags,
            application_id,
            hop_by_hop_id,
            end_to_end_id,
        ) = header
        setattr_(message, "command_code", command_code)
        setattr_(message, "flags", flags)
        setattr_(message, "application_id", application_id)
        setattr_(message, "hop_by_hop_id", hop_by_hop_id)
        setattr_(message, "end_to_end_id", end_to_end_id)
        setattr_(message, "_avps", None)
        setattr_(message, "tolerated", ())
        setattr_(message, "raw", raw)
        setattr_(message, "_options", options)
        return message

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Message is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Message is immutable (cannot delete {name!r})")

    @property
    def avps(self) -> tuple[Avp, ...]:
        """The top-level AVPs (decoded now if the message was decoded lazily)."""
        avps = self._avps
        if avps is None:
            raw = self.raw
            options = self._options
            assert raw is not None
            assert options is not None
            notes: list[str] = []
            avps = _decoder_for(options).pull_avps(raw, HEADER_LENGTH, len(raw), notes)
            object.__setattr__(self, "_avps", avps)
            object.__setattr__(self, "tolerated", tuple(notes))
        return avps

    @property
    def is_decoded(self) -> bool:
        """False while the AVPs of a lazily decoded message have not been decoded yet."""
        return self._avps is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.command_code == other.command_code
            and self.flags == other.flags
            and self.application_id == other.application_id
            and self.hop_by_hop_id == other.hop_by_hop_id
            and self.end_to_end_id == other.end_to_end_id
            and self.avps == other.avps
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        avps = "<not decoded>" if self._avps is None else repr(self._avps)
        return (
            f"Message(command_code={self.command_code}, flags=0x{self.flags:02x}, "
            f"application_id={self.application_id}, hop_by_hop_id={self.hop_by_hop_id}, "
            f"end_to_end_id={self.end_to_end_id}, avps={avps})"
        )

    @property
    def is_request(self) -> bool:
        """R bit."""
        return bool(self.flags & 0x80)

    @property
    def is_proxiable(self) -> bool:
        """P bit."""
        return bool(self.flags & 0x40)

    @property
    def is_error(self) -> bool:
        """E bit."""
        return bool(self.flags & 0x20)

    @property
    def is_retransmitted(self) -> bool:
        """T bit."""
        return bool(self.flags & 0x10)

    @property
    def session_id(self) -> str | None:
        """The Session-Id value, if the message has one and it decoded as text."""
        avp = find_avp(self.avps, AvpCode.SESSION_ID)
        return avp.value if avp is not None and type(avp.value) is str else None

    @property
    def result_code(self) -> int | None:
        """The Result-Code value of an answer, if present."""
        avp = find_avp(self.avps, AvpCode.RESULT_CODE)
        return avp.value if avp is not None and type(avp.value) is int else None

    def find(self, code: int, vendor_id: int = 0) -> Avp | None:
        """Return the first top-level AVP with this code and vendor, or None."""
        return find_avp(self.avps, code, vendor_id)

    def find_all(self, code: int, vendor_id: int = 0) -> list[Avp]:
        """Return every top-level AVP with this code and vendor."""
        return find_avps(self.avps, code, vendor_id)

    def replace(
        self,
        *,
        command_code: int | None = None,
        flags: int | None = None,
        application_id: int | None = None,
        hop_by_hop_id: int | None = None,
        end_to_end_id: int | None = None,
        avps: tuple[Avp, ...] | None = None,
    ) -> Message:
        """Return a copy with some header fields or the AVPs replaced."""
        return Message(
            self.command_code if command_code is None else command_code,
            self.flags if flags is None else flags,
            self.application_id if application_id is None else application_id,
            self.hop_by_hop_id if hop_by_hop_id is None else hop_by_hop_id,
            self.end_to_end_id if end_to_end_id is None else end_to_end_id,
            self.avps if avps is None else avps,
        )


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed 20-octet header, readable even when the AVPs are not."""

    version: int
    length: int
    flags: int
    command_code: int
    application_id: int
    hop_by_hop_id: int
    end_to_end_id: int

    @property
    def is_request(self) -> bool:
        """R bit."""
        return bool(self.flags & CommandFlag.REQUEST)


def decode_header(data: bytes) -> Header:
    """Decode the message header (5015 if fewer than 20 octets)."""
    if len(data) < HEADER_LENGTH:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
            f"{len(data)} octets cannot hold a Diameter header",
        )
    word0, word1, application_id, hop_by_hop_id, end_to_end_id = _HEADER.unpack_from(data)
    return Header(
        version=word0 >> 24,
        length=word0 & 0xFFFFFF,
        flags=word1 >> 24,
        command_code=word1 & 0xFFFFFF,
        application_id=application_id,
        hop_by_hop_id=hop_by_hop_id,
        end_to_end_id=end_to_end_id,
    )


def decode_message(
    data: bytes, options: CodecOptions = DEFAULT_OPTIONS, *, lazy: bool = False
) -> Message:
    """Decode one whole message; raise DiameterError (with Failed-AVP) if it is malformed.

    With ``lazy=True`` only the header is checked now; the AVPs are decoded (and their errors
    raised) when :attr:`Message.avps` is first read.
    """
    if type(data) is not bytes:
        data = bytes(data)
    size = len(data)
    if size < HEADER_LENGTH:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
            f"{size} octets cannot hold a Diameter header",
        )
    word0, word1, application_id, hop_by_hop_id, end_to_end_id = _HEADER.unpack_from(data)
    version = word0 >> 24
    if version != PROTOCOL_VERSION:
        raise DiameterError(
            ResultCode.DIAMETER_UNSUPPORTED_VERSION, f"Diameter version {version} not supported"
        )
    length = word0 & 0xFFFFFF
    if length != size or length & 3:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
            f"Message Length {length} but {size} octets received"
            if length != size
            else f"Message Length {length} is not a multiple of 4",
        )
    flags = word1 >> 24
    if flags & 0xA0 == 0xA0:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_HDR_BITS, "a request must not have the E bit set"
        )
    header = (word1 & 0xFFFFFF, flags, application_id, hop_by_hop_id, end_to_end_id)
    if lazy:
        return Message._lazy(header, data, options)
    notes: list[str] = []
    avps = _decoder_for(options).pull_avps(data, HEADER_LENGTH, size, notes)
    return Message(*header, avps, tolerated=tuple(notes), raw=data)


def encode_message(message: Message) -> bytes:
    """Encode a message (ValueError for a value that cannot be encoded or a message > 16 MiB)."""
    out = bytearray(HEADER_LENGTH)
    for avp in message.avps:
        push_avp_into(avp, out)
    length = len(out)
    if length > MAX_MESSAGE_LENGTH:
        raise ValueError(f"message of {length} octets exceeds the 24-bit Message Length")
    _HEADER.pack_into(
        out,
        0,
        (PROTOCOL_VERSION << 24) | length,
        ((message.flags & 0xFF) << 24) | message.command_code,
        message.application_id,
        message.hop_by_hop_id,
        message.end_to_end_id,
    )
    return bytes(out)


def salvage_message(data: bytes) -> Message | None:
    """Read what can be read of a message that failed to decode, to answer it.

    Returns the header and the well-formed prefix of its top-level AVPs (values left raw), or
    None when not even a header is there.
    """
    if len(data) < HEADER_LENGTH:
        return None
    header = decode_header(data)
    end = min(len(data), max(header.length, HEADER_LENGTH))
    return Message(
        header.command_code,
        header.flags,
        header.application_id,
        header.hop_by_hop_id,
        header.end_to_end_id,
        pull_raw_avps(bytes(data), HEADER_LENGTH, end),
    )


# --- answers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalIdentity:
    """Who we are on the Diameter network, and what we tell peers in CER/CEA."""

    origin_host: str
    origin_realm: str
    host_ip_addresses: tuple[IPv4Address | IPv6Address, ...] = ()
    vendor_id: int = 0
    product_name: str = "ocsd"
    firmware_revision: int | None = None
    origin_state_id: int | None = None
    supported_vendor_ids: tuple[int, ...] = (VendorId.TGPP,)
    origin_avps: tuple[Avp, Avp] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "origin_avps",
            (
                new_avp(AvpCode.ORIGIN_HOST, self.origin_host),
                new_avp(AvpCode.ORIGIN_REALM, self.origin_realm),
            ),
        )


# Answer grammars ocsd can compose for an errored request: the AVPs each answer echoes from
# its request besides Session-Id.  A 5xxx error on a command listed here is answered with the
# command's own grammar and no E bit (RFC 6733 §7.1.5 "SHOULD"); on a command not listed, or
# when the AVPs to echo are missing, with the generic §7.2 grammar and the E bit (§7.1.5 MAY).
ANSWER_ECHO: dict[int, tuple[int, ...]] = {
    CommandCode.CREDIT_CONTROL: (
        AvpCode.AUTH_APPLICATION_ID,
        AvpCode.CC_REQUEST_TYPE,
        AvpCode.CC_REQUEST_NUMBER,
    ),
    CommandCode.CAPABILITIES_EXCHANGE: (),
    CommandCode.DEVICE_WATCHDOG: (),
    CommandCode.DISCONNECT_PEER: (),
    CommandCode.RE_AUTH: (),
    CommandCode.ABORT_SESSION: (),
    CommandCode.SESSION_TERMINATION: (),
}


def make_answer(
    request: Message,
    identity: LocalIdentity,
    result_code: int,
    avps: Iterable[Avp] = (),
    *,
    error_bit: bool = False,
) -> Message:
    """Build the answer to *request*.

    AVP order: Session-Id, Result-Code, Origin-Host, Origin-Realm, *avps*, then the request's
    Proxy-Info AVPs (RFC 6733 §6.2).
    """
    out: list[Avp] = []
    request_avps = request.avps
    session_id = find_avp(request_avps, AvpCode.SESSION_ID)
    if session_id is not None:
        out.append(session_id)
    out.append(new_avp(AvpCode.RESULT_CODE, int(result_code)))
    out.extend(identity.origin_avps)
    out.extend(avps)
    out.extend(find_avps(request_avps, AvpCode.PROXY_INFO))
    flags = request.flags & CommandFlag.PROXIABLE
    if error_bit:
        flags |= CommandFlag.ERROR
    return Message(
        request.command_code,
        int(flags),
        request.application_id,
        request.hop_by_hop_id,
        request.end_to_end_id,
        tuple(out),
    )


def error_avps(error: DiameterError) -> list[Avp]:
    """The Error-Message and Failed-AVP AVPs that describe *error* in an answer."""
    out: list[Avp] = []
    if error.error_message:
        out.append(new_avp(AvpCode.ERROR_MESSAGE, error.error_message))
    if error.failed_avps:
        out.append(new_avp(AvpCode.FAILED_AVP, tuple(error.failed_avps)))
    return out


def answer_for_error(
    request: Message,
    error: DiameterError,
    identity: LocalIdentity,
    extra_avps: Iterable[Avp] = (),
) -> Message:
    """The one place a DiameterError becomes an answer (RFC 6733 §7.1-§7.2, §7.5).

    *request* may be a decoded request, a lazily decoded one whose AVPs turn out malformed
    (what can be read is salvaged), or what :func:`salvage_message` recovered.  The E bit is
    set for 3xxx (protocol errors, §7.1.3 MUST) and whenever the command's own answer
    grammar cannot be composed (see :data:`ANSWER_ECHO`).
    """
    if not request.is_decoded and request.raw is not None:
        try:
            _ = request.avps
        except DiameterError:
            salvaged = salvage_message(request.raw)
            if salvaged is not None:
                request = salvaged
    echo_codes = ANSWER_ECHO.get(request.command_code)
    echoed: list[Avp] = []
    if echo_codes is not None:
        for code in echo_codes:
            found = _decodable(find_avp(request.avps, code))
            if found is not None:
                echoed.append(found)
    error_bit = (
        is_protocol_error(error.result_code) or echo_codes is None or len(echoed) != len(echo_codes)
    )
    avps = [*echoed, *extra_avps, *error_avps(error)]
    answer = make_answer(request, identity, error.result_code, avps, error_bit=error_bit)
    # A Session-Id or Proxy-Info that does not decode is not echoed: the answer itself would be
    # malformed. Without the Session-Id only the generic grammar (§7.2, E bit) fits.
    kept = tuple(
        avp
        for avp in answer.avps
        if avp.code not in (AvpCode.SESSION_ID, AvpCode.PROXY_INFO) or _decodable(avp) is not None
    )
    if len(kept) == len(answer.avps):
        return answer
    return Message(
        answer.command_code,
        answer.flags | CommandFlag.ERROR,
        answer.application_id,
        answer.hop_by_hop_id,
        answer.end_to_end_id,
        kept,
    )


def _decodable(avp: Avp | None) -> Avp | None:
    """Return *avp* typed if it decodes, None if it does not (salvaged AVPs are raw)."""
    if avp is None or type(avp.value) is not bytes:
        return avp
    wire = _encode_one(avp)
    try:
        (typed,) = DEFAULT_OPTIONS.decoder.pull_avps(wire, 0, len(wire), [])
    except DiameterError:
        return None
    return typed


def _encode_one(avp: Avp) -> bytes:
    """Encode one AVP (header, payload, padding)."""
    out = bytearray()
    push_avp_into(avp, out)
    return bytes(out)


_COMMAND_NAMES: dict[int, str] = {
    CommandCode.CAPABILITIES_EXCHANGE: "Capabilities-Exchange",
    CommandCode.RE_AUTH: "Re-Auth",
    CommandCode.ACCOUNTING: "Accounting",
    CommandCode.CREDIT_CONTROL: "Credit-Control",
    CommandCode.ABORT_SESSION: "Abort-Session",
    CommandCode.SESSION_TERMINATION: "Session-Termination",
    CommandCode.DEVICE_WATCHDOG: "Device-Watchdog",
    CommandCode.DISCONNECT_PEER: "Disconnect-Peer",
}


def format_message(message: Message) -> str:
    """A readable, stable dump of a message (for logs, fixtures and test failures)."""
    name = _COMMAND_NAMES.get(message.command_code, f"Command {message.command_code}")
    kind = "Request" if message.is_request else "Answer"
    bits = "".join(
        letter if message.flags & bit else "-"
        for letter, bit in (("R", 0x80), ("P", 0x40), ("E", 0x20), ("T", 0x10))
    )
    lines = [
        f"{name}-{kind} <{message.command_code}> flags {bits} "
        f"app {message.application_id} hbh 0x{message.hop_by_hop_id:08x} "
        f"e2e 0x{message.end_to_end_id:08x}"
    ]
    _format_avps(message.avps, 1, lines)
    return "\n".join(lines) + "\n"


def _format_avps(avps: tuple[Avp, ...], depth: int, lines: list[str]) -> None:
    for avp in avps:
        code = f"{avp.code}" if not avp.vendor_id else f"{avp.code}/{avp.vendor_id}"
        bits = "".join(
            letter if avp.flags & bit else "-"
            for letter, bit in (("V", 0x80), ("M", 0x40), ("P", 0x20))
        )
        head = f"{'  ' * depth}{avp.name} <{code}> {bits}"
        value = avp.value
        if type(value) is tuple:
            lines.append(head)
            _format_avps(value, depth + 1, lines)
        else:
            if isinstance(value, datetime):
                shown = value.isoformat()
            elif isinstance(value, (int, float)):
                shown = str(value)
            else:
                shown = repr(value)
            lines.append(f"{head} {shown}")
