"""The Diameter peer state machine (RFC 6733 §5), sans-IO: one object per transport connection.

Inputs: :meth:`Peer.start`, :meth:`Peer.receive_data`, :meth:`Peer.handle_timer`,
:meth:`Peer.connection_lost` and the API calls :meth:`Peer.send_request`,
:meth:`Peer.send_answer`, :meth:`Peer.reject_request`, :meth:`Peer.close`.  Outputs:
:meth:`Peer.data_to_send`, :meth:`Peer.get_timer`, :meth:`Peer.next_event`.  Time is always
passed in (``now``, seconds on the caller's monotonic clock); nothing here reads a clock, sleeps
or touches a socket.

Rules
=====

One connection, one peer, two roles: the RESPONDER (ocsd) waits for CER, the INITIATOR (load
generator, tests) sends it.  There is no election (§5.6.4): each connection is its own peer.

=========  ===========================================  =======================  ==========
state      received / happened                          we do                    next state
=========  ===========================================  =======================  ==========
IDLE       start() as responder                         arm capabilities timer   WAIT_CER
IDLE       start() as initiator                         send CER                 WAIT_CEA
WAIT_CER   CER from an allowed host at an allowed       CEA 2001, PeerOpened     OPEN
           address with an application in common
WAIT_CER   CER from an unknown host or address          CEA 3010 (E bit)         CLOSED
WAIT_CER   CER with no application in common            CEA 5010                 CLOSED
WAIT_CER   any other request (see below)                answer 3010 (E bit)      CLOSED
WAIT_CER   an answer; capabilities timer                -                        CLOSED
WAIT_CEA   CEA 2001 from an allowed host/address        PeerOpened               OPEN
WAIT_CEA   CEA with another Result-Code; anything       -                        CLOSED
           else (§5.6 I-Rcv-Non-CEA); timer
OPEN       CER (§5.6 R-Rcv-CER)                          checks again, CEA        OPEN/CLOSED
OPEN       DWR                                          DWA 2001                 OPEN
OPEN       DPR                                          DPA 2001, PeerClosed     CLOSED
OPEN       application request                          RequestReceived          OPEN
OPEN       answer                                       AnswerReceived /         OPEN
                                                        AnswerDropped
OPEN       watchdog: no traffic for Tw                  send DWR                 OPEN
OPEN       watchdog: DWR unanswered for Tw              PeerClosed               CLOSED
OPEN       close()                                      send DPR                 CLOSING
CLOSING    DPA; DPR (crossing); DPA timer               (DPA to a DPR)           CLOSED
CLOSING    requests, answers                            as in OPEN               CLOSING
any        framing error; connection_lost(); stall      PeerClosed               CLOSED
=========  ===========================================  =======================  ==========

Choices where RFC 6733 leaves room, and why:

- A request other than CER before the capabilities exchange: §5.6 has no transition for it on
  a responder.  We answer 3010 DIAMETER_UNKNOWN_PEER with the E bit (the sender is not a peer
  yet, and a readable answer helps whoever configured it) and close.
- A second CER in OPEN is processed like the first (§5.6 "R-Rcv-CER, R-Snd-CEA"); it must come
  from the same Origin-Host, and failing the checks closes the connection as on the first.
- Watchdog (RFC 3539 §3.4, simplified): any received message counts as liveness and resets the
  idle timer; after Tw (``watchdog_interval_s`` ± ``watchdog_jitter_s``, re-drawn from the
  injected rng each time) without traffic we send a DWR; if another Tw passes with nothing
  received, the connection is declared dead and closed.  RFC 3539's SUSPECT/REOPEN states are
  left to the caller, which reconnects.
- Requests the peer will not pass up: a command not in ``request_commands`` is answered 3001,
  an application we do not serve 3007, and more than ``max_pending_requests`` unanswered
  requests 3004 DIAMETER_TOO_BUSY so the client fails over (§7.1.3).
- Hop-by-hop ids start at a random value and increase per connection; end-to-end ids come
  from an :class:`EndToEndIdGenerator` (§3: low 12 bits of the start time in the top 12 bits,
  a random 20-bit counter below), which a process should share between its connections.

Bounds: messages are at most ``max_message_bytes``; a message must complete within
``stall_timeout_s`` of its first octet; at most ``max_pending_requests`` received requests wait
for an answer and at most ``max_outstanding_requests`` sent requests wait for theirs.  The peer
queues nothing else: ``data_to_send()`` hands over everything produced so far.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from protocols.diameter.avp import Avp, find_avp, find_avps, new_avp, zeroed_avp
from protocols.diameter.constants import (
    ApplicationId,
    AvpCode,
    CommandCode,
    DisconnectCause,
    ResultCode,
    is_success,
)
from protocols.diameter.datatypes.address import OtherAddress
from protocols.diameter.datatypes.identity import same_identity
from protocols.diameter.errors import DiameterError, LocalProtocolError
from protocols.diameter.framing import FrameReader
from protocols.diameter.message import (
    DEFAULT_OPTIONS,
    CodecOptions,
    LocalIdentity,
    Message,
    answer_for_error,
    decode_header,
    decode_message,
    encode_message,
    make_answer,
    salvage_message,
)

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_REQUEST = 0x80


class PeerRole(Enum):
    """Which side of the capabilities exchange this connection is."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


class PeerState(Enum):
    """States of the peer state machine (RFC 6733 §5.6, one connection)."""

    IDLE = "idle"
    WAIT_CER = "wait-cer"
    WAIT_CEA = "wait-cea"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class CloseReason(Enum):
    """Why a peer connection ended."""

    LOCAL_DISCONNECT = "local-disconnect"
    REMOTE_DISCONNECT = "remote-disconnect"
    DPA_TIMEOUT = "dpa-timeout"
    WATCHDOG_EXPIRED = "watchdog-expired"
    CAPABILITIES_TIMEOUT = "capabilities-timeout"
    UNKNOWN_PEER = "unknown-peer"
    NO_COMMON_APPLICATION = "no-common-application"
    CAPABILITIES_REJECTED = "capabilities-rejected"
    PROTOCOL_ERROR = "protocol-error"
    FRAMING_ERROR = "framing-error"
    STALLED = "stalled"
    TRANSPORT_LOST = "transport-lost"


class _Input(Enum):
    START_RESPONDER = "start-responder"
    START_INITIATOR = "start-initiator"
    CAPABILITIES_ACCEPTED = "capabilities-accepted"
    CAPABILITIES_REFUSED = "capabilities-refused"
    DPR_RECEIVED = "dpr-received"
    DPA_RECEIVED = "dpa-received"
    CLOSE_CALLED = "close-called"
    ABORTED = "aborted"


_S = PeerState
_I = _Input

# The transitions of the table above, as data.  ABORTED (timeouts, framing errors, protocol
# violations, lost transport, close() before OPEN) leads from every live state to CLOSED.
TRANSITIONS: dict[tuple[PeerState, _Input], PeerState] = {
    (_S.IDLE, _I.START_RESPONDER): _S.WAIT_CER,
    (_S.IDLE, _I.START_INITIATOR): _S.WAIT_CEA,
    (_S.WAIT_CER, _I.CAPABILITIES_ACCEPTED): _S.OPEN,
    (_S.WAIT_CER, _I.CAPABILITIES_REFUSED): _S.CLOSED,
    (_S.WAIT_CEA, _I.CAPABILITIES_ACCEPTED): _S.OPEN,
    (_S.WAIT_CEA, _I.CAPABILITIES_REFUSED): _S.CLOSED,
    (_S.OPEN, _I.CAPABILITIES_ACCEPTED): _S.OPEN,
    (_S.OPEN, _I.CAPABILITIES_REFUSED): _S.CLOSED,
    (_S.OPEN, _I.DPR_RECEIVED): _S.CLOSED,
    (_S.OPEN, _I.CLOSE_CALLED): _S.CLOSING,
    (_S.CLOSING, _I.DPR_RECEIVED): _S.CLOSED,
    (_S.CLOSING, _I.DPA_RECEIVED): _S.CLOSED,
    **{(state, _I.ABORTED): _S.CLOSED for state in PeerState if state is not _S.CLOSED},
}

_APPLICATION = -1  # any command other than the base protocol's
# Where each received message is legal; anywhere else it is handled as described above.
LEGAL_STATES: dict[tuple[int, bool], frozenset[PeerState]] = {
    (CommandCode.CAPABILITIES_EXCHANGE, True): frozenset({_S.WAIT_CER, _S.OPEN}),
    (CommandCode.CAPABILITIES_EXCHANGE, False): frozenset({_S.WAIT_CEA}),
    (CommandCode.DEVICE_WATCHDOG, True): frozenset({_S.OPEN, _S.CLOSING}),
    (CommandCode.DEVICE_WATCHDOG, False): frozenset({_S.OPEN, _S.CLOSING}),
    (CommandCode.DISCONNECT_PEER, True): frozenset({_S.OPEN, _S.CLOSING}),
    (CommandCode.DISCONNECT_PEER, False): frozenset({_S.CLOSING}),
    (_APPLICATION, True): frozenset({_S.OPEN, _S.CLOSING}),
    (_APPLICATION, False): frozenset({_S.OPEN, _S.CLOSING}),
}
_BASE_COMMANDS = frozenset(
    {
        CommandCode.CAPABILITIES_EXCHANGE,
        CommandCode.DEVICE_WATCHDOG,
        CommandCode.DISCONNECT_PEER,
    }
)


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllowedPeer:
    """A peer we talk to: its Origin-Host and the networks its connections may come from.

    An Origin-Host of ``*`` accepts any identity from those networks (a lab on loopback).
    """

    origin_host: str
    networks: tuple[Network, ...]

    @classmethod
    def of(cls, origin_host: str, *addresses: str) -> AllowedPeer:
        """Build from an identity and addresses or CIDR blocks written as text."""
        return cls(origin_host, tuple(ip_network(text, strict=False) for text in addresses))

    def matches(self, origin_host: str, address: Address) -> bool:
        """True when both the identity and the source address are this peer's."""
        identity_ok = self.origin_host == "*" or same_identity(self.origin_host, origin_host)
        return identity_ok and any(address in network for network in self.networks)


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """Settings of a peer connection (durations in seconds on the caller's clock)."""

    identity: LocalIdentity
    allowed_peers: tuple[AllowedPeer, ...]
    application_ids: tuple[int, ...] = (ApplicationId.CREDIT_CONTROL,)
    request_commands: frozenset[int] = frozenset(
        {CommandCode.CREDIT_CONTROL, CommandCode.RE_AUTH, CommandCode.ABORT_SESSION}
    )
    watchdog_interval_s: float = 30.0
    watchdog_jitter_s: float = 2.0
    capabilities_timeout_s: float = 10.0
    dpa_timeout_s: float = 5.0
    stall_timeout_s: float = 10.0
    request_timeout_s: float | None = None
    max_message_bytes: int = 65_536
    max_pending_requests: int = 1_000
    max_outstanding_requests: int = 1_000
    codec: CodecOptions = DEFAULT_OPTIONS
    decode_lazily: bool = False

    def __post_init__(self) -> None:
        if not self.identity.host_ip_addresses:
            raise ValueError("identity.host_ip_addresses: CER/CEA need at least one address")
        if self.watchdog_interval_s - self.watchdog_jitter_s < 4.0:
            raise ValueError(
                "watchdog_interval_s minus watchdog_jitter_s must stay >= 4 s (RFC 3539 §3.4.1)"
            )
        if not self.application_ids:
            raise ValueError("application_ids: advertise at least one application")
        for name in ("capabilities_timeout_s", "dpa_timeout_s", "stall_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_pending_requests < 1 or self.max_outstanding_requests < 1:
            raise ValueError("max_pending_requests and max_outstanding_requests must be >= 1")


class EndToEndIdGenerator:
    """End-to-End Identifiers per RFC 6733 §3, shareable by all connections of a process.

    The top 12 bits are the low 12 bits of *start_time_s* (wall clock, seconds), the low 20
    bits a counter starting at a random value, so ids stay unique across restarts.
    """

    __slots__ = ("_high", "_low")

    def __init__(self, start_time_s: float, rng: random.Random) -> None:
        self._high = (int(start_time_s) & 0xFFF) << 20
        self._low = rng.getrandbits(20)

    def next(self) -> int:
        """Return the next identifier."""
        value = self._high | self._low
        self._low = (self._low + 1) & 0xFFFFF
        return value


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerCapabilities:
    """What the remote peer announced in its CER or CEA."""

    origin_host: str
    origin_realm: str
    host_ip_addresses: tuple[Address | OtherAddress, ...]
    vendor_id: int | None
    product_name: str | None
    origin_state_id: int | None
    firmware_revision: int | None
    auth_application_ids: tuple[int, ...]
    acct_application_ids: tuple[int, ...]
    vendor_specific_application_ids: tuple[tuple[int | None, int | None, int | None], ...]
    supported_vendor_ids: tuple[int, ...]
    common_application_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PeerOpened:
    """The capabilities exchange succeeded; requests may flow."""

    capabilities: PeerCapabilities


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """An application request arrived; answer it with send_answer() or reject_request()."""

    message: Message


@dataclass(frozen=True, slots=True)
class AnswerReceived:
    """The answer to one of our requests arrived."""

    message: Message
    request: Message


@dataclass(frozen=True, slots=True)
class AnswerDropped:
    """An answer matched none of our outstanding requests (late, duplicate or bogus)."""

    message: Message
    reason: str


@dataclass(frozen=True, slots=True)
class RequestTimedOut:
    """No answer to one of our requests within request_timeout_s; it is forgotten."""

    request: Message


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """A received message was refused; requests were answered with *result_code*."""

    command_code: int
    is_request: bool
    hop_by_hop_id: int
    result_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The connection is finished; the caller closes the transport after data_to_send().

    Requests still waiting for an answer in either direction are forgotten with it.
    """

    reason: CloseReason
    detail: str = ""
    disconnect_cause: int | None = None


Event = (
    PeerOpened
    | RequestReceived
    | AnswerReceived
    | AnswerDropped
    | RequestTimedOut
    | MessageRejected
    | PeerClosed
)


@dataclass(slots=True)
class _Outstanding:
    request: Message
    deadline: float | None


# --- the machine -------------------------------------------------------------------------


class Peer:
    """One Diameter peer connection (see the module docstring for the rules).

    *remote_address* is the transport source address the allowed-peer check uses.  *rng*
    drives the watchdog jitter and the first hop-by-hop id (inject a seeded one in tests).
    Pass the process's shared *end_to_end_ids*, built from the wall clock at start-up; without
    one, the connection makes its own with a random high part.
    """

    def __init__(
        self,
        config: PeerConfig,
        role: PeerRole,
        remote_address: str | Address,
        *,
        rng: random.Random | None = None,
        end_to_end_ids: EndToEndIdGenerator | None = None,
    ) -> None:
        self.config = config
        self.role = role
        self.remote_address: Address = (
            ip_address(remote_address) if isinstance(remote_address, str) else remote_address
        )
        self._rng = rng if rng is not None else random.Random()
        self._end_to_end_ids = end_to_end_ids or EndToEndIdGenerator(
            self._rng.getrandbits(12), self._rng
        )
        self._next_hop_by_hop = self._rng.getrandbits(32)
        self._state = PeerState.IDLE
        self._reader = FrameReader(config.max_message_bytes)
        self._outbound: list[bytes] = []
        self._events: deque[Event] = deque()
        self.remote: PeerCapabilities | None = None
        # Timers (absolute times on the caller's clock; None when not armed).
        self._capabilities_deadline: float | None = None
        self._dpa_deadline: float | None = None
        self._partial_since: float | None = None
        self._last_received = 0.0
        self._watchdog_interval = self._draw_watchdog_interval()
        self._dwr_sent_at: float | None = None
        # Requests in both directions.
        self._pending: dict[int, int] = {}  # hop-by-hop id of received requests -> count
        self._pending_count = 0
        self._outstanding: dict[int, _Outstanding] = {}
        self._dpr_hop_by_hop: int | None = None

    # --- state ------------------------------------------------------------------------

    @property
    def state(self) -> PeerState:
        """The current state."""
        return self._state

    @property
    def is_open(self) -> bool:
        """True when application requests may be sent."""
        return self._state is PeerState.OPEN

    @property
    def is_closed(self) -> bool:
        """True once the connection is finished."""
        return self._state is PeerState.CLOSED

    @property
    def pending_requests(self) -> int:
        """Received requests not answered yet."""
        return self._pending_count

    @property
    def outstanding_requests(self) -> int:
        """Sent requests not answered yet."""
        return len(self._outstanding)

    def _transition(self, what: _Input) -> None:
        try:
            self._state = TRANSITIONS[(self._state, what)]
        except KeyError:
            raise RuntimeError(f"no transition from {self._state} on {what}") from None
        if self._state is PeerState.CLOSED:
            self._capabilities_deadline = None
            self._dpa_deadline = None
            self._partial_since = None
            self._dwr_sent_at = None
            self._outstanding.clear()
            self._pending.clear()
            self._pending_count = 0

    def _abort(self, reason: CloseReason, detail: str) -> None:
        if self._state is not PeerState.CLOSED:
            self._transition(_I.ABORTED)
            self._events.append(PeerClosed(reason, detail))

    # --- outputs ----------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Return (and forget) every octet produced since the last call."""
        if not self._outbound:
            return b""
        data = b"".join(self._outbound)
        self._outbound.clear()
        return data

    def next_event(self) -> Event | None:
        """Return the oldest event not handed out yet, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """Return when handle_timer() must next be called, or None."""
        # Asked after every message a server handles: no list, no min() over a generator.
        soonest = self._watchdog_deadline()
        for deadline in (
            self._capabilities_deadline,
            self._dpa_deadline,
            self._stall_deadline(),
            self._first_request_deadline(),
        ):
            if deadline is not None and (soonest is None or deadline < soonest):
                soonest = deadline
        return soonest

    def _stall_deadline(self) -> float | None:
        if self._partial_since is None:
            return None
        return self._partial_since + self.config.stall_timeout_s

    def _watchdog_deadline(self) -> float | None:
        if self._state is not PeerState.OPEN:
            return None
        if self._dwr_sent_at is not None:
            return self._dwr_sent_at + self._watchdog_interval
        return self._last_received + self._watchdog_interval

    def _first_request_deadline(self) -> float | None:
        for outstanding in self._outstanding.values():
            return outstanding.deadline  # insertion order is deadline order
        return None

    def _draw_watchdog_interval(self) -> float:
        jitter = self.config.watchdog_jitter_s
        return self.config.watchdog_interval_s + self._rng.uniform(-jitter, jitter)

    # --- inputs -----------------------------------------------------------------------

    def start(self, now: float) -> None:
        """The transport is up: a responder waits for CER, an initiator sends it."""
        if self._state is not PeerState.IDLE:
            raise LocalProtocolError(f"start() in state {self._state.value}")
        self._last_received = now
        self._capabilities_deadline = now + self.config.capabilities_timeout_s
        if self.role is PeerRole.RESPONDER:
            self._transition(_I.START_RESPONDER)
            return
        self._transition(_I.START_INITIATOR)
        cer = Message(
            CommandCode.CAPABILITIES_EXCHANGE,
            _REQUEST,
            ApplicationId.COMMON_MESSAGES,
            self._hop_by_hop(),
            self._end_to_end_ids.next(),
            tuple(self._capability_avps()),
        )
        self._outbound.append(encode_message(cer))

    def receive_data(self, data: bytes, now: float) -> None:
        """Octets arrived from the transport."""
        if self._state is PeerState.CLOSED or not data:
            return
        if self._state is PeerState.IDLE:
            raise LocalProtocolError("receive_data() before start()")
        self._last_received = now
        try:
            frames = self._reader.feed(data)
        except DiameterError as exc:
            self._abort(CloseReason.FRAMING_ERROR, exc.error_message)
            return
        for frame in frames:
            if self.is_closed:  # an earlier frame ended the connection
                return
            self._receive_frame(frame, now)
        if self.is_closed:
            return
        if self._reader.pending:
            if self._partial_since is None or frames:
                self._partial_since = now
        else:
            self._partial_since = None

    def connection_lost(self, now: float) -> None:
        """The transport closed under us."""
        self._abort(CloseReason.TRANSPORT_LOST, "the transport connection closed")

    def handle_timer(self, now: float) -> None:
        """Act on every timer that has expired at *now*."""
        if self._state is PeerState.CLOSED:
            return
        if self._capabilities_deadline is not None and now >= self._capabilities_deadline:
            self._abort(CloseReason.CAPABILITIES_TIMEOUT, "no capabilities exchange in time")
            return
        if self._dpa_deadline is not None and now >= self._dpa_deadline:
            self._abort(CloseReason.DPA_TIMEOUT, "no DPA in time")
            return
        stall = self._stall_deadline()
        if stall is not None and now >= stall:
            self._abort(CloseReason.STALLED, "a message stopped arriving half-way")
            return
        watchdog = self._watchdog_deadline()
        if watchdog is not None and now >= watchdog:
            if self._dwr_sent_at is not None:
                self._abort(CloseReason.WATCHDOG_EXPIRED, "no answer to DWR")
                return
            self._send_base_request(CommandCode.DEVICE_WATCHDOG, self._origin_state_avps())
            self._dwr_sent_at = now
            self._watchdog_interval = self._draw_watchdog_interval()
        while self._outstanding:
            hop_by_hop, outstanding = next(iter(self._outstanding.items()))
            if outstanding.deadline is None or outstanding.deadline > now:
                break
            del self._outstanding[hop_by_hop]
            self._events.append(RequestTimedOut(outstanding.request))

    # --- API calls --------------------------------------------------------------------

    def send_request(
        self, message: Message, now: float, *, keep_end_to_end_id: bool = False
    ) -> Message:
        """Send an application request; returns it with the identifiers it was sent with."""
        if self._state is not PeerState.OPEN:
            raise LocalProtocolError(f"cannot send a request in state {self._state.value}")
        if not message.is_request:
            raise LocalProtocolError("send_request() needs a message with the R bit")
        if len(self._outstanding) >= self.config.max_outstanding_requests:
            raise LocalProtocolError("too many requests waiting for an answer")
        sent = message.replace(
            hop_by_hop_id=self._hop_by_hop(),
            end_to_end_id=(
                message.end_to_end_id if keep_end_to_end_id else self._end_to_end_ids.next()
            ),
        )
        self._outbound.append(encode_message(sent))
        timeout = self.config.request_timeout_s
        self._outstanding[sent.hop_by_hop_id] = _Outstanding(
            sent, None if timeout is None else now + timeout
        )
        return sent

    def send_answer(self, message: Message, now: float) -> bool:
        """Send the answer to a received request; False if the connection is already gone."""
        if self._state is PeerState.CLOSED:
            return False
        if message.is_request:
            raise LocalProtocolError("send_answer() needs a message without the R bit")
        count = self._pending.get(message.hop_by_hop_id)
        if not count:
            raise LocalProtocolError(
                f"no received request with hop-by-hop id {message.hop_by_hop_id} awaits an answer"
            )
        if count == 1:
            del self._pending[message.hop_by_hop_id]
        else:
            self._pending[message.hop_by_hop_id] = count - 1
        self._pending_count -= 1
        self._outbound.append(encode_message(message))
        return True

    def reject_request(self, request: Message, error: DiameterError, now: float) -> bool:
        """Answer a received request with the error answer for *error* (see answer_for_error)."""
        return self.send_answer(self._error_answer(request, error), now)

    def close(self, now: float, cause: DisconnectCause = DisconnectCause.REBOOTING) -> None:
        """Disconnect: DPR then wait for DPA when open, or just stop before that."""
        if self._state is PeerState.OPEN:
            self._transition(_I.CLOSE_CALLED)
            dpr = self._send_base_request(
                CommandCode.DISCONNECT_PEER, [new_avp(AvpCode.DISCONNECT_CAUSE, int(cause))]
            )
            self._dpr_hop_by_hop = dpr.hop_by_hop_id
            self._dpa_deadline = now + self.config.dpa_timeout_s
        elif self._state in (PeerState.IDLE, PeerState.WAIT_CER, PeerState.WAIT_CEA):
            self._abort(CloseReason.LOCAL_DISCONNECT, "closed before the capabilities exchange")

    # --- receiving --------------------------------------------------------------------

    def _receive_frame(self, frame: bytes, now: float) -> None:
        self._dwr_sent_at = None  # any traffic proves the peer alive (RFC 3539 §3.4.1)
        try:
            header = decode_header(frame)
        except DiameterError as exc:  # pragma: no cover - the reader guarantees 20 octets
            self._abort(CloseReason.FRAMING_ERROR, exc.error_message)
            return
        is_request = header.is_request
        command = header.command_code
        kind = command if command in _BASE_COMMANDS else _APPLICATION
        if self._state not in LEGAL_STATES[(kind, is_request)]:
            self._illegal(frame, command, is_request, header.hop_by_hop_id)
            return
        lazy = self.config.decode_lazily and kind == _APPLICATION
        try:
            message = decode_message(frame, self.config.codec, lazy=lazy)
        except DiameterError as exc:
            self._undecodable(frame, command, is_request, header.hop_by_hop_id, exc)
            return
        if kind == _APPLICATION:
            if is_request:
                self._application_request(message)
            else:
                self._application_answer(message)
        elif command == CommandCode.CAPABILITIES_EXCHANGE:
            if is_request:
                self._receive_cer(message)
            else:
                self._receive_cea(message)
        elif command == CommandCode.DEVICE_WATCHDOG:
            if is_request:
                self._answer_base(message, self._origin_state_avps())
        elif is_request:
            self._receive_dpr(message)
        elif self._dpr_hop_by_hop == message.hop_by_hop_id:
            self._transition(_I.DPA_RECEIVED)
            self._events.append(PeerClosed(CloseReason.LOCAL_DISCONNECT, "DPA received"))
        else:
            self._events.append(AnswerDropped(message, "DPA for a DPR we did not send"))

    def _illegal(self, frame: bytes, command: int, is_request: bool, hop_by_hop: int) -> None:
        state = self._state
        if state is PeerState.WAIT_CER and is_request:
            request = salvage_message(frame)
            assert request is not None
            error = DiameterError(
                ResultCode.DIAMETER_UNKNOWN_PEER,
                "capabilities exchange (CER/CEA) must come first",
            )
            self._outbound.append(encode_message(self._error_answer(request, error)))
            self._events.append(
                MessageRejected(command, True, hop_by_hop, error.result_code, error.error_message)
            )
            self._abort(CloseReason.PROTOCOL_ERROR, f"command {command} before CER")
        elif state in (PeerState.WAIT_CER, PeerState.WAIT_CEA):
            what = "request" if is_request else "answer"
            self._abort(
                CloseReason.PROTOCOL_ERROR,
                f"{what} with command {command} during the capabilities exchange",
            )
        elif is_request:  # a DPA-less state got a request only CER states accept: none left
            self._abort(CloseReason.PROTOCOL_ERROR, f"unexpected request {command}")
        else:
            message = salvage_message(frame)
            assert message is not None
            self._events.append(AnswerDropped(message, f"unexpected answer in {state.value}"))

    def _undecodable(
        self, frame: bytes, command: int, is_request: bool, hop_by_hop: int, error: DiameterError
    ) -> None:
        if is_request:
            request = salvage_message(frame)
            assert request is not None
            answer = self._error_answer(request, error)
            self._outbound.append(encode_message(answer))
        else:
            self._outstanding.pop(hop_by_hop, None)
        self._events.append(
            MessageRejected(command, is_request, hop_by_hop, error.result_code, str(error))
        )
        if command == CommandCode.CAPABILITIES_EXCHANGE and self._state is not PeerState.OPEN:
            self._transition(_I.CAPABILITIES_REFUSED)
            self._events.append(
                PeerClosed(CloseReason.CAPABILITIES_REJECTED, f"malformed CER/CEA: {error}")
            )

    def _application_request(self, message: Message) -> None:
        config = self.config
        hop_by_hop = message.hop_by_hop_id
        error: DiameterError | None = None
        if message.command_code not in config.request_commands:
            error = DiameterError(
                ResultCode.DIAMETER_COMMAND_UNSUPPORTED,
                f"command {message.command_code} is not served here",
            )
        elif (
            message.application_id not in config.application_ids
            and message.application_id != ApplicationId.RELAY
        ):
            error = DiameterError(
                ResultCode.DIAMETER_APPLICATION_UNSUPPORTED,
                f"application {message.application_id} is not served here",
            )
        elif self._pending_count >= config.max_pending_requests:
            error = DiameterError(
                ResultCode.DIAMETER_TOO_BUSY, "too many requests waiting for an answer"
            )
        if error is not None:
            self._outbound.append(encode_message(self._error_answer(message, error)))
            self._events.append(
                MessageRejected(
                    message.command_code, True, hop_by_hop, error.result_code, error.error_message
                )
            )
            return
        self._pending[hop_by_hop] = self._pending.get(hop_by_hop, 0) + 1
        self._pending_count += 1
        self._events.append(RequestReceived(message))

    def _application_answer(self, message: Message) -> None:
        outstanding = self._outstanding.pop(message.hop_by_hop_id, None)
        if outstanding is None:
            self._events.append(
                AnswerDropped(message, "no request with this hop-by-hop id is outstanding")
            )
            return
        self._events.append(AnswerReceived(message, outstanding.request))

    def _receive_dpr(self, message: Message) -> None:
        self._answer_base(message, ())
        cause_avp = message.find(AvpCode.DISCONNECT_CAUSE)
        cause = cause_avp.value if cause_avp is not None and type(cause_avp.value) is int else None
        self._transition(_I.DPR_RECEIVED)
        self._events.append(PeerClosed(CloseReason.REMOTE_DISCONNECT, "DPR received", cause))

    # --- capabilities exchange ----------------------------------------------------------

    def _receive_cer(self, message: Message) -> None:
        try:
            capabilities = self._read_capabilities(message)
        except DiameterError as exc:
            self._refuse_cer(message, exc, CloseReason.CAPABILITIES_REJECTED)
            return
        if self.remote is not None and not same_identity(
            self.remote.origin_host, capabilities.origin_host
        ):
            error = DiameterError(
                ResultCode.DIAMETER_UNKNOWN_PEER, "Origin-Host changed on this connection"
            )
            self._refuse_cer(message, error, CloseReason.UNKNOWN_PEER)
            return
        if not self._allowed(capabilities.origin_host):
            error = DiameterError(
                ResultCode.DIAMETER_UNKNOWN_PEER,
                f"{capabilities.origin_host} at {self.remote_address} is not a configured peer",
            )
            self._refuse_cer(message, error, CloseReason.UNKNOWN_PEER)
            return
        if not capabilities.common_application_ids:
            error = DiameterError(
                ResultCode.DIAMETER_NO_COMMON_APPLICATION,
                "no application in common (we serve "
                + ", ".join(str(app) for app in self.config.application_ids)
                + ")",
            )
            self._refuse_cer(message, error, CloseReason.NO_COMMON_APPLICATION)
            return
        answer = make_answer(
            message,
            self.config.identity,
            ResultCode.DIAMETER_SUCCESS,
            self._capability_avps(with_origin=False),
        )
        self._outbound.append(encode_message(answer))
        self._open(capabilities)

    def _refuse_cer(self, message: Message, error: DiameterError, reason: CloseReason) -> None:
        answer = answer_for_error(
            message, error, self.config.identity, self._capability_avps(with_origin=False)
        )
        self._outbound.append(encode_message(answer))
        self._transition(_I.CAPABILITIES_REFUSED)
        self._events.append(PeerClosed(reason, error.error_message))

    def _receive_cea(self, message: Message) -> None:
        result = message.result_code
        if result is None or not is_success(result):
            self._transition(_I.CAPABILITIES_REFUSED)
            text = message.find(AvpCode.ERROR_MESSAGE)
            detail = f"CEA Result-Code {result}"
            if text is not None and type(text.value) is str:
                detail += f": {text.value}"
            self._events.append(PeerClosed(CloseReason.CAPABILITIES_REJECTED, detail))
            return
        try:
            capabilities = self._read_capabilities(message)
        except DiameterError as exc:
            self._transition(_I.CAPABILITIES_REFUSED)
            self._events.append(PeerClosed(CloseReason.CAPABILITIES_REJECTED, str(exc)))
            return
        if not self._allowed(capabilities.origin_host):
            self._transition(_I.CAPABILITIES_REFUSED)
            self._events.append(
                PeerClosed(
                    CloseReason.UNKNOWN_PEER,
                    f"{capabilities.origin_host} at {self.remote_address} is not a configured peer",
                )
            )
            return
        if not capabilities.common_application_ids:
            self._transition(_I.CAPABILITIES_REFUSED)
            self._events.append(
                PeerClosed(CloseReason.NO_COMMON_APPLICATION, "no application in common")
            )
            return
        self._open(capabilities)

    def _open(self, capabilities: PeerCapabilities) -> None:
        first = self._state is not PeerState.OPEN
        self._transition(_I.CAPABILITIES_ACCEPTED)
        self._capabilities_deadline = None
        self.remote = capabilities
        if first:
            self._events.append(PeerOpened(capabilities))

    def _allowed(self, origin_host: str) -> bool:
        return any(
            allowed.matches(origin_host, self.remote_address)
            for allowed in self.config.allowed_peers
        )

    def _read_capabilities(self, message: Message) -> PeerCapabilities:
        avps = message.avps

        def identity(code: int) -> str:
            avp = find_avp(avps, code)
            if avp is None:
                missing = zeroed_avp(code)
                raise DiameterError(
                    ResultCode.DIAMETER_MISSING_AVP, f"{missing.name} missing", (missing,)
                )
            if type(avp.value) is not str:  # pragma: no cover - decoded eagerly as text
                raise DiameterError(ResultCode.DIAMETER_INVALID_AVP_VALUE, "", (avp,))
            return avp.value

        def unsigned(code: int) -> int | None:
            avp = find_avp(avps, code)
            return avp.value if avp is not None and type(avp.value) is int else None

        def unsigned_all(members: tuple[Avp, ...], code: int) -> tuple[int, ...]:
            return tuple(avp.value for avp in find_avps(members, code) if type(avp.value) is int)

        auth = unsigned_all(avps, AvpCode.AUTH_APPLICATION_ID)
        acct = unsigned_all(avps, AvpCode.ACCT_APPLICATION_ID)
        vendor_specific: list[tuple[int | None, int | None, int | None]] = []
        for vsai in find_avps(avps, AvpCode.VENDOR_SPECIFIC_APPLICATION_ID):
            members = vsai.avps
            vendor = unsigned_all(members, AvpCode.VENDOR_ID)
            inner_auth = unsigned_all(members, AvpCode.AUTH_APPLICATION_ID)
            inner_acct = unsigned_all(members, AvpCode.ACCT_APPLICATION_ID)
            vendor_specific.append(
                (
                    vendor[0] if vendor else None,
                    inner_auth[0] if inner_auth else None,
                    inner_acct[0] if inner_acct else None,
                )
            )
        offered = set(auth) | set(acct)
        for _, inner_auth_id, inner_acct_id in vendor_specific:
            offered.update(app for app in (inner_auth_id, inner_acct_id) if app is not None)
        ours = set(self.config.application_ids)
        if ApplicationId.RELAY in offered:
            common = ours
        else:
            common = ours & offered
        product = find_avp(avps, AvpCode.PRODUCT_NAME)
        return PeerCapabilities(
            origin_host=identity(AvpCode.ORIGIN_HOST),
            origin_realm=identity(AvpCode.ORIGIN_REALM),
            host_ip_addresses=tuple(
                avp.value
                for avp in find_avps(avps, AvpCode.HOST_IP_ADDRESS)
                if isinstance(avp.value, IPv4Address | IPv6Address | OtherAddress)
            ),
            vendor_id=unsigned(AvpCode.VENDOR_ID),
            product_name=(
                product.value if product is not None and type(product.value) is str else None
            ),
            origin_state_id=unsigned(AvpCode.ORIGIN_STATE_ID),
            firmware_revision=unsigned(AvpCode.FIRMWARE_REVISION),
            auth_application_ids=auth,
            acct_application_ids=acct,
            vendor_specific_application_ids=tuple(vendor_specific),
            supported_vendor_ids=unsigned_all(avps, AvpCode.SUPPORTED_VENDOR_ID),
            common_application_ids=tuple(sorted(common)),
        )

    def _capability_avps(self, *, with_origin: bool = True) -> list[Avp]:
        identity = self.config.identity
        avps: list[Avp] = list(identity.origin_avps) if with_origin else []
        avps.extend(new_avp(AvpCode.HOST_IP_ADDRESS, ip) for ip in identity.host_ip_addresses)
        avps.append(new_avp(AvpCode.VENDOR_ID, identity.vendor_id))
        avps.append(new_avp(AvpCode.PRODUCT_NAME, identity.product_name))
        if identity.origin_state_id is not None:
            avps.append(new_avp(AvpCode.ORIGIN_STATE_ID, identity.origin_state_id))
        avps.extend(
            new_avp(AvpCode.SUPPORTED_VENDOR_ID, vendor) for vendor in identity.supported_vendor_ids
        )
        avps.extend(
            new_avp(AvpCode.AUTH_APPLICATION_ID, int(app)) for app in self.config.application_ids
        )
        if identity.firmware_revision is not None:
            avps.append(new_avp(AvpCode.FIRMWARE_REVISION, identity.firmware_revision))
        return avps

    # --- sending helpers --------------------------------------------------------------

    def _hop_by_hop(self) -> int:
        value = self._next_hop_by_hop
        self._next_hop_by_hop = (value + 1) & 0xFFFFFFFF
        return value

    def _origin_state_avps(self) -> list[Avp]:
        state_id = self.config.identity.origin_state_id
        return [] if state_id is None else [new_avp(AvpCode.ORIGIN_STATE_ID, state_id)]

    def _send_base_request(self, command: int, avps: list[Avp]) -> Message:
        request = Message(
            command,
            _REQUEST,
            ApplicationId.COMMON_MESSAGES,
            self._hop_by_hop(),
            self._end_to_end_ids.next(),
            (*self.config.identity.origin_avps, *avps),
        )
        self._outbound.append(encode_message(request))
        return request

    def _answer_base(self, request: Message, avps: list[Avp] | tuple[Avp, ...]) -> None:
        answer = make_answer(request, self.config.identity, ResultCode.DIAMETER_SUCCESS, avps)
        self._outbound.append(encode_message(answer))

    def _error_answer(self, request: Message, error: DiameterError) -> Message:
        return answer_for_error(request, error, self.config.identity)


__all__ = [
    "LEGAL_STATES",
    "TRANSITIONS",
    "AllowedPeer",
    "AnswerDropped",
    "AnswerReceived",
    "CloseReason",
    "EndToEndIdGenerator",
    "Event",
    "MessageRejected",
    "Peer",
    "PeerCapabilities",
    "PeerClosed",
    "PeerConfig",
    "PeerOpened",
    "PeerRole",
    "PeerState",
    "RequestReceived",
    "RequestTimedOut",
]
