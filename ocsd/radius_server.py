"""RADIUS authorization (RFC 2865) and accounting (RFC 2866) over UDP, with Disconnect (RFC 5176).

Rules of this adapter:

- A datagram from an address that is not a configured client, that does not decode, or whose
  Request Authenticator or Message-Authenticator is wrong is dropped: logged (at most once a
  second per reason and client) and counted by reason. Nothing is answered.
- A retransmission (same client address and port, code, Identifier and Request Authenticator:
  RFC 5080 §2.2.2) gets the cached reply, or nothing while the original is still being worked
  on. Neither moves money.
- Access-Request runs the same authorization as a Diameter CCR-Initial: the account is found
  by User-Name, Calling-Station-Id, or the NAS address with a tech prefix on the called
  number; the Access-Accept carries Session-Timeout and h323-credit-time = the longest time the
  account can pay for (capped), h323-return-code 0; an Access-Reject carries Reply-Message and
  the Cisco prepaid h323-return-code of the reason. The authorization holds the money: the call
  is keyed by its h323-conf-id (or Cisco call-id, or Acct-Session-Id) so that accounting
  continues the same charging session; without a key the hold lapses after ``auth_hold_s``.
- Accounting Start continues (or opens) the session, Interim-Update holds what was used so far
  plus the next grant, Stop debits the final duration (Acct-Session-Time; else the h323 connect
  and disconnect times; else Start to Stop) and queues the CDR. Request numbers come from the
  reported totals, so a later duplicate of an Interim or Stop (Acct-Delay-Time changed, a new
  authenticator) is recognised by the session and moves no money; so is a Stop replayed hours
  later (the store's closed marker), and a Start delayed by ``charging.duplicate_window_s`` or
  more (Acct-Delay-Time) opens no session. Nor does a Start of a call that closed (come
  after its Stop within the duplicate window, or later with an Acct-Delay-Time, the mark of a
  repeat, within ``charging.closed_horizon_s``): it is answered, holds nothing and disconnects
  nothing; an Access-Request of such a call (the same h323-conf-id) within the duplicate
  window is rejected as an unknown session. The
  Accounting-Response is sent only once the step is stored (RFC 2866 §2); a store failure is
  answered with silence so that the NAS retransmits.
- Accounting-On/Off ends every open session of that NAS (those of every worker).
- When a session's money runs out (an interim that cannot hold more) a Disconnect-Request is
  sent to NASes configured with a disconnect port, and the answer is logged and counted.
- Bounded: at most ``max_in_flight`` requests are worked on; beyond that datagrams are dropped
  (counted as overload); the duplicate cache holds at most ``duplicate_cache_size`` replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from ocsd.charging import ChargingService
from ocsd.charging_types import (
    ChargingRequest,
    Denial,
    DenialCode,
    Grant,
    Outcome,
    RequestType,
    UnitRequest,
)
from ocsd.deadline import DeadlineWatch
from ocsd.directory import Candidate
from ocsd.logs import get_logger
from ocsd.master import IdentityKind
from ocsd.metrics import Metrics
from protocols.radius.attribute import (
    Attribute,
    cisco_avpair,
    h323_attribute,
    integer_attribute,
    ipaddr_attribute,
    string_attribute,
)
from protocols.radius.dictionary import Dictionary, default_dictionary, load_dictionary
from protocols.radius.h323 import H323Time, parse_h323_time
from protocols.radius.packet import (
    MAX_PACKET_OCTETS,
    Code,
    DropReason,
    Packet,
    RadiusError,
    RetransmissionKey,
    decode_packet,
    encode_reply,
    encode_request,
    retransmission_key,
    verify_reply,
    verify_request,
)
from protocols.radius.view import AcctStatusType, decode_access, decode_accounting
from rating.money import format_micros

log = get_logger("radius")

PROTOCOL = "radius"
STOP_NUMBER_BASE = 1_000_000_000
"""Request numbers: Start 1, Interim 2 + Acct-Session-Time, Stop this + Acct-Session-Time."""

# Cisco prepaid h323-return-code (Cisco IVR / prepaid RADIUS convention).
H323_SUCCESS = 0
H323_RETURN_CODES: dict[DenialCode, int] = {
    DenialCode.USER_UNKNOWN: 1,
    DenialCode.ACCOUNT_SUSPENDED: 7,
    DenialCode.ACCOUNT_CLOSED: 7,
    DenialCode.FRAUD_SUSPECTED: 7,
    DenialCode.TOO_MANY_SESSIONS: 3,
    DenialCode.CREDIT_LIMIT_REACHED: 12,
    DenialCode.SPEND_CAP_REACHED: 6,
    DenialCode.NO_RATE: 9,
    DenialCode.BELOW_COST: 9,
    DenialCode.DESTINATION_BLOCKED: 9,
    DenialCode.NO_ROUTE: 9,
    DenialCode.RATING_FAILED: 9,
    DenialCode.INVALID_NUMBER: 11,
    DenialCode.INVALID_REQUEST: 11,
    DenialCode.UNKNOWN_SESSION: 11,
    DenialCode.SERVICE_UNAVAILABLE: 8,
}
REPLY_MESSAGES: dict[DenialCode, str] = {
    DenialCode.USER_UNKNOWN: "unknown account",
    DenialCode.ACCOUNT_SUSPENDED: "account suspended",
    DenialCode.ACCOUNT_CLOSED: "account closed",
    DenialCode.FRAUD_SUSPECTED: "call refused",
    DenialCode.TOO_MANY_SESSIONS: "too many calls in progress",
    DenialCode.CREDIT_LIMIT_REACHED: "insufficient credit",
    DenialCode.SPEND_CAP_REACHED: "spend limit reached",
    DenialCode.NO_RATE: "destination not allowed",
    DenialCode.BELOW_COST: "destination not allowed",
    DenialCode.DESTINATION_BLOCKED: "destination blocked",
    DenialCode.NO_ROUTE: "no route",
    DenialCode.RATING_FAILED: "destination not allowed",
    DenialCode.INVALID_NUMBER: "invalid number",
    DenialCode.INVALID_REQUEST: "invalid request",
    DenialCode.UNKNOWN_SESSION: "unknown session",
    DenialCode.SERVICE_UNAVAILABLE: "service unavailable",
}


@dataclass(frozen=True, slots=True)
class RadiusClientSettings:
    """A NAS, gateway or SBC allowed to talk to ocsd."""

    address: str
    """An IP address or CIDR."""
    secret: str
    name: str = ""
    """Names the NAS in logs and CDRs (default: its address)."""
    require_message_authenticator: bool = True
    """Refuse Access-Requests without Message-Authenticator (BlastRADIUS mitigation)."""
    disconnect_port: int = 0
    """Send Disconnect-Requests to this port of the NAS (RFC 5176 uses 3799); 0: never."""

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_network(self.address, strict=False)
        except ValueError:
            raise ValueError(f"client address {self.address!r} is not an IP or CIDR") from None
        if not self.secret:
            raise ValueError("a client needs a shared secret")
        if not 0 <= self.disconnect_port <= 65535:
            raise ValueError("disconnect_port must be a UDP port or 0")


@dataclass(frozen=True, slots=True)
class RadiusSettings:
    """The RADIUS listeners."""

    enabled: bool = True
    listen: str = "127.0.0.1"
    auth_port: int = 1812
    """0 disables authorization."""
    acct_port: int = 1813
    """0 disables accounting."""
    clients: tuple[RadiusClientSettings, ...] = (
        RadiusClientSettings("127.0.0.1", "testing123", "localhost"),
    )
    dictionaries: tuple[str, ...] = ()
    """Extra FreeRADIUS-format dictionary files, loaded after ocsd's own."""
    max_in_flight: int = 4096
    answer_deadline_s: float = 3.0
    """Requests not answered by then are dropped (the NAS retransmits)."""
    duplicate_cache_s: float = 30.0
    duplicate_cache_size: int = 200_000
    auth_hold_s: int = 120
    """How long an authorization holds money while waiting for the call's accounting Start."""
    max_call_s: int = 0
    """The longest call an Access-Accept allows (Session-Timeout, h323-credit-time): what the
    account can pay for, up to this many seconds; 0: ``charging.max_grant_s``."""
    interim_interval_s: int = 0
    """Acct-Interim-Interval sent in Access-Accept (0: not sent)."""
    send_credit_amount: bool = True
    """Send h323-credit-amount and h323-currency (the balance) in Access-Accept."""
    disconnect_timeout_s: float = 2.0
    disconnect_retries: int = 3

    def __post_init__(self) -> None:
        for name in ("auth_port", "acct_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name} must be a UDP port (0 disables it)")
        if self.max_in_flight <= 0 or self.duplicate_cache_size <= 0:
            raise ValueError("max_in_flight and duplicate_cache_size must be positive")
        if self.answer_deadline_s <= 0 or self.duplicate_cache_s <= 0:
            raise ValueError("answer_deadline_s and duplicate_cache_s must be positive")
        if self.auth_hold_s <= 0 or self.interim_interval_s < 0 or self.max_call_s < 0:
            raise ValueError(
                "auth_hold_s must be positive, interim_interval_s and max_call_s not negative"
            )


@dataclass(frozen=True, slots=True)
class _Client:
    name: str
    secret: bytes
    require_message_authenticator: bool
    disconnect_port: int


@dataclass(slots=True)
class _Attrs:
    """Attribute numbers resolved once from the dictionary."""

    dictionary: Dictionary
    session_timeout: int = field(init=False)
    reply_message: int = field(init=False)
    interim_interval: int = field(init=False)
    acct_session_id: int = field(init=False)
    user_name: int = field(init=False)
    nas_ip: int = field(init=False)
    calling: int = field(init=False)
    called: int = field(init=False)
    success: Attribute = field(init=False)
    """h323-return-code 0, in every Access-Accept."""
    rejections: dict[DenialCode, tuple[Attribute, ...]] = field(init=False)
    """The Reply-Message and h323-return-code of an Access-Reject, by reason."""

    def __post_init__(self) -> None:
        d = self.dictionary
        self.success = h323_attribute("h323-return-code", H323_SUCCESS, d)
        self.rejections = {
            code: (
                string_attribute(d.attribute("Reply-Message").number, REPLY_MESSAGES[code]),
                h323_attribute("h323-return-code", H323_RETURN_CODES[code], d),
            )
            for code in REPLY_MESSAGES.keys() & H323_RETURN_CODES.keys()
        }
        self.session_timeout = d.attribute("Session-Timeout").number
        self.reply_message = d.attribute("Reply-Message").number
        self.interim_interval = d.attribute("Acct-Interim-Interval").number
        self.acct_session_id = d.attribute("Acct-Session-Id").number
        self.user_name = d.attribute("User-Name").number
        self.nas_ip = d.attribute("NAS-IP-Address").number
        self.calling = d.attribute("Calling-Station-Id").number
        self.called = d.attribute("Called-Station-Id").number


class ReplyCache:
    """Replies by retransmission key (RFC 5080 section 2.2.2), oldest first.

    An entry is made when a request is taken on (its reply None: still being worked on) and
    gets the reply when it is answered; either way it lives ``ttl_s`` from when it was last
    written. At most ``size`` entries: the oldest go first. Stale entries read as absent and
    are removed from the old end, which is only looked at once its oldest entry can be stale.
    Times are the caller's monotonic clock.
    """

    __slots__ = ("_check_at", "_entries", "size", "ttl_s")

    def __init__(self, ttl_s: float, size: int) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._entries: OrderedDict[RetransmissionKey, tuple[float, bytes | None]] = OrderedDict()
        self._check_at = 0.0
        """No entry is stale before this time (the oldest entry's expiry when last looked at)."""

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: RetransmissionKey, now: float) -> tuple[float, bytes | None] | None:
        """The live entry of ``key``: (expiry, reply or None while in progress), or None."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            return None
        return entry

    def start(self, key: RetransmissionKey, now: float) -> None:
        """``key`` is being worked on (it goes to the new end)."""
        entries = self._entries
        entries.pop(key, None)  # a stale entry of the same key
        entries[key] = (now + self.ttl_s, None)
        while len(entries) > self.size:
            entries.popitem(last=False)
        if now >= self._check_at:
            self._expire(now)

    def answer(self, key: RetransmissionKey, reply: bytes, now: float) -> None:
        """``key`` is answered with ``reply`` (it keeps its place)."""
        entries = self._entries
        entries[key] = (now + self.ttl_s, reply)
        if len(entries) > self.size:  # it was pushed out while in progress
            entries.popitem(last=False)

    def discard(self, key: RetransmissionKey) -> None:
        """Forget ``key`` (it was not answered: a retransmission is worked on again)."""
        self._entries.pop(key, None)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            expiry = entries[oldest][0]
            if expiry > now:
                self._check_at = expiry
                return
            del entries[oldest]
        self._check_at = 0.0


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, server: RadiusServer, kind: str) -> None:
        self.server = server
        self.kind = kind
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        self.server.datagram_received(self.transport, self.kind, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("socket error", endpoint=self.kind, error=str(exc))


class _DisconnectClient(asyncio.DatagramProtocol):
    """Sends Disconnect-Requests and matches their answers by identifier."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[tuple[str, int], asyncio.Future[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) < 20:
            return
        future = self.waiting.get((str(addr[0]), data[1]))
        if future is not None and not future.done():
            future.set_result(data)


_RELEASE_SIDES: dict[str, str] = {
    "1": "caller",  # calling party, PSTN side
    "2": "caller",  # calling party, VoIP side
    "3": "callee",  # called party, PSTN side
    "4": "callee",  # called party, VoIP side
    **{str(n): "switch" for n in range(5, 15)},  # the gateway, its applications, AAA, gatekeeper
}
"""Cisco's ``release-source`` (in a Cisco-AVPair of the Stop): who ended the call."""


def _networks(
    clients: tuple[RadiusClientSettings, ...],
) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, _Client]]:
    """The configured clients, most specific network first."""
    networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, _Client]] = []
    for client in clients:
        network = ipaddress.ip_network(client.address, strict=False)
        networks.append(
            (
                network,
                _Client(
                    client.name or client.address,
                    client.secret.encode(),
                    client.require_message_authenticator,
                    client.disconnect_port,
                ),
            )
        )
    networks.sort(key=lambda item: -item[0].prefixlen)
    return networks


class RadiusServer:
    """Both RADIUS ports of one worker. (built inside the running event loop)."""

    def __init__(
        self,
        settings: RadiusSettings,
        service: ChargingService,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.service = service
        self.metrics = metrics
        self.clock = clock
        self.dictionary = (
            load_dictionary(*settings.dictionaries)
            if settings.dictionaries
            else default_dictionary()
        )
        self._attrs = _Attrs(self.dictionary)
        self._networks = _networks(settings.clients)
        self._client_cache: dict[str, _Client | None] = {}
        self._replies = ReplyCache(settings.duplicate_cache_s, settings.duplicate_cache_size)
        self._in_flight = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._transports: list[asyncio.DatagramTransport] = []
        self._disconnect: _DisconnectClient | None = None
        self._identifiers = itertools.cycle(range(256))
        self._last_drop_log: dict[tuple[str, str], float] = {}
        self.addresses: dict[str, tuple[str, int]] = {}
        self._closing = False
        self.route_avpairs: Callable[[Any, int], list[str]] | None = None
        """Set when routing is on: the Cisco-AVPair values that carry a grant's routes."""
        self._loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
        self._requests = DeadlineWatch(self._loop, settings.answer_deadline_s)
        """The requests being answered, each dropped once ``answer_deadline_s`` has passed."""

    def reconfigure(self, settings: RadiusSettings) -> None:
        """Take new settings (on reload): clients, secrets, limits and reply options apply
        to the next packet; the ports and dictionaries stay as they were bound."""
        networks = _networks(settings.clients)
        self.settings = settings
        self._networks = networks
        self._client_cache = {}
        self._replies.ttl_s = settings.duplicate_cache_s
        self._replies.size = settings.duplicate_cache_size

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, *, reuse_port: bool = False) -> None:
        """Bind the configured ports."""
        # Kept: in CPython 3.11 each get_running_loop() costs a getpid() system call.
        loop = self._loop = asyncio.get_running_loop()
        self._requests = DeadlineWatch(loop, self.settings.answer_deadline_s)
        for kind, port in (("auth", self.settings.auth_port), ("acct", self.settings.acct_port)):
            if not port:
                continue
            transport, _ = await loop.create_datagram_endpoint(
                lambda kind=kind: _Endpoint(self, kind),  # type: ignore[misc]
                local_addr=(self.settings.listen, port),
                reuse_port=reuse_port or None,
            )
            self._transports.append(transport)
            sockname = transport.get_extra_info("sockname")
            self.addresses[kind] = (sockname[0], sockname[1])
        transport, protocol = await loop.create_datagram_endpoint(
            _DisconnectClient, local_addr=(self.settings.listen, 0)
        )
        self._transports.append(transport)
        self._disconnect = protocol
        log.info("listening", **{k: f"{a[0]}:{a[1]}" for k, a in self.addresses.items()})

    def stop_listening(self) -> None:
        """Stop receiving requests (answers to those in flight still go out)."""
        # The sockets stay open so that answers to requests in flight still go out.
        self._closing = True

    async def drain(self, deadline_s: float) -> None:
        """Wait for requests in flight, then cancel the rest."""
        tasks = {*self._tasks, *self._requests}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline_s)
            for task in pending:
                task.cancel()

    async def close(self) -> None:
        """Close the sockets."""
        self._requests.close()
        for transport in self._transports:
            transport.close()
        self._transports.clear()

    # -- receiving -----------------------------------------------------------------------

    def _client(self, host: str) -> _Client | None:
        cache = self._client_cache
        if host in cache:
            return cache[host]
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        found = next((c for net, c in self._networks if address in net), None)
        if len(cache) > 10_000:
            cache.clear()
        cache[host] = found
        return found

    def _drop(self, reason: str, host: str, detail: str = "") -> None:
        self.metrics.child(self.metrics.drops, PROTOCOL, reason).inc()
        now = time.monotonic()
        key = (reason, host)
        if now - self._last_drop_log.get(key, 0.0) >= 1.0:
            self._last_drop_log[key] = now
            if len(self._last_drop_log) > 10_000:
                self._last_drop_log.clear()
            log.warning("dropped", reason=reason, client=host, detail=detail)

    def datagram_received(
        self, transport: asyncio.DatagramTransport, kind: str, data: bytes, addr: tuple[Any, int]
    ) -> None:
        """Check, deduplicate and dispatch one datagram."""
        host = str(addr[0])
        if self._closing:
            self.metrics.child(self.metrics.drops, PROTOCOL, "shutting_down").inc()
            return
        if len(data) > MAX_PACKET_OCTETS:
            self._drop(DropReason.TOO_LARGE.value, host, f"{len(data)} octets")
            return
        client = self._client(host)
        if client is None:
            self._drop("unknown_client", host)
            return
        try:
            packet = decode_packet(data, self.dictionary)
            expected = Code.ACCESS_REQUEST if kind == "auth" else Code.ACCOUNTING_REQUEST
            if packet.code is not expected and not (
                kind == "auth" and packet.code is Code.STATUS_SERVER
            ):
                raise RadiusError(DropReason.UNKNOWN_CODE, f"{packet.code.name} on {kind} port")
            verify_request(
                packet,
                client.secret,
                require_message_authenticator=client.require_message_authenticator,
            )
        except RadiusError as exc:
            self._drop(exc.reason.value, host, exc.detail)
            return
        key = retransmission_key(addr, packet)
        now = time.monotonic()
        cached = self._replies.get(key, now)
        if cached is not None:
            self.metrics.child(self.metrics.drops, PROTOCOL, "retransmission").inc()
            if cached[1] is not None:
                transport.sendto(cached[1], addr)
            return
        if self._in_flight >= self.settings.max_in_flight:
            self._drop("overload", host)
            return
        self._replies.start(key, now)
        self._in_flight += 1
        self._requests.add(
            self._loop.create_task(self._answer(transport, client, host, packet, addr, key))
        )

    async def _answer(
        self,
        transport: asyncio.DatagramTransport,
        client: _Client,
        host: str,
        packet: Packet,
        addr: tuple[Any, int],
        key: RetransmissionKey,
    ) -> None:
        started = time.perf_counter()
        command = "access" if packet.code is not Code.ACCOUNTING_REQUEST else "accounting"
        try:
            reply: bytes | None
            if packet.code is Code.STATUS_SERVER:
                reply, result = encode_reply(packet, Code.ACCESS_ACCEPT, (), client.secret), "ok"
            elif packet.code is Code.ACCESS_REQUEST:
                reply, result = await self._access(client, host, packet)
            else:
                reply, result = await self._accounting(client, host, packet)
        except asyncio.CancelledError as exc:
            if not self._requests.absorb(exc):
                raise
            self._replies.discard(key)
            self._drop("deadline", host)
            return
        except Exception:
            self._replies.discard(key)
            log.exception("request failed", client=host, code=packet.code.name)
            self._drop("internal_error", host)
            return
        finally:
            self._in_flight -= 1
        if reply is None:
            self._replies.discard(key)
            self._drop(result, host)
            return
        self._replies.answer(key, reply, time.monotonic())
        transport.sendto(reply, addr)
        self.metrics.answered(PROTOCOL, command, result, time.perf_counter() - started)

    # -- identification ------------------------------------------------------------------

    @staticmethod
    def _call_key(
        host: str,
        conf_id: str | None,
        avpairs: dict[str, str],
        session_id: str | None,
        origin: str | None,
    ) -> str | None:
        call = conf_id or avpairs.get("call-id") or session_id
        if not call:
            return None
        call = call.strip().replace(" ", "").lower()
        leg = f"/{origin.strip().lower()}" if origin else ""
        return f"radius:{host}:{call}{leg}"

    @staticmethod
    def _candidates(user_name: str | None, calling: str | None) -> tuple[Candidate, ...]:
        out: list[Candidate] = []
        if user_name:
            out.append(Candidate(IdentityKind.USERNAME, user_name))
            if "@" in user_name:
                out.append(Candidate(IdentityKind.SIP_URI, user_name.lower().removeprefix("sip:")))
            digits = user_name.removeprefix("+")
            if digits.isdigit():
                out.append(Candidate(IdentityKind.E164, digits))
        if calling:
            digits = calling.strip().removeprefix("+")
            if digits.isdigit():
                out.append(Candidate(IdentityKind.E164, digits))
        return tuple(out)

    # -- Access-Request ------------------------------------------------------------------

    async def _access(self, client: _Client, host: str, packet: Packet) -> tuple[bytes | None, str]:
        view = decode_access(packet, client.secret, self.dictionary)
        now = self.clock()
        key = self._call_key(
            host, view.h323_conf_id, view.cisco_avpairs, None, view.h323_call_origin
        )
        session_id = key or f"radius-auth:{host}:{packet.identifier}:{packet.authenticator.hex()}"
        request = ChargingRequest(
            session_id=session_id,
            request_number=0,
            request_type=RequestType.INITIAL,
            protocol=PROTOCOL,
            peer=client.name,
            identities=self._candidates(view.user_name, view.calling_station_id),
            source_ip=host,
            calling=view.calling_station_id,
            called=view.called_station_id,
            diversion=view.h323_redirect_number or "",
            event_time=now,
            # The switch does not come back before the call ends: grant the whole call.
            units=(
                UnitRequest(
                    requested_s=self.settings.max_call_s or self.service.settings.max_grant_s
                ),
            ),
            deadline_s=float(self.settings.auth_hold_s),
            extra=_extra(view.user_name, None, view.h323_conf_id, host),
        )
        outcome = await self.service.handle(request)
        if isinstance(outcome, Denial) and outcome.code is DenialCode.SERVICE_UNAVAILABLE:
            return None, "backend_unavailable"
        if isinstance(outcome, Denial) and outcome.code is DenialCode.INVALID_REQUEST and key:
            # The same call authorized again (a second attempt): continue its session.
            outcome = await self.service.handle(
                ChargingRequest(
                    **{**_fields(request), "request_type": RequestType.UPDATE, "request_number": 0}
                )
            )
        return self._access_reply(packet, client, outcome)

    def _access_reply(
        self, packet: Packet, client: _Client, outcome: Outcome
    ) -> tuple[bytes | None, str]:
        attrs = self._attrs
        if isinstance(outcome, Grant) and outcome.not_applicable:
            # An uncharged (emergency) call: accepted with no time limit.
            unlimited = (attrs.success,)
            return encode_reply(packet, Code.ACCESS_ACCEPT, unlimited, client.secret), "uncharged"
        if isinstance(outcome, Grant) and outcome.units and outcome.units[0].granted_s > 0:
            granted = outcome.units[0].granted_s
            attributes: list[tuple[int, bytes]] = [
                integer_attribute(attrs.session_timeout, granted),
                h323_attribute("h323-credit-time", granted, self.dictionary),
                attrs.success,
            ]
            if self.settings.interim_interval_s:
                attributes.append(
                    integer_attribute(attrs.interim_interval, self.settings.interim_interval_s)
                )
            if self.settings.send_credit_amount and outcome.balance_micros is not None:
                attributes.append(
                    h323_attribute(
                        "h323-credit-amount",
                        format_micros(outcome.balance_micros, 2),
                        self.dictionary,
                    )
                )
                if outcome.currency:
                    attributes.append(
                        h323_attribute("h323-currency", outcome.currency, self.dictionary)
                    )
            if self.route_avpairs is not None and outcome.routes is not None:
                for value in self.route_avpairs(outcome.routes, granted):
                    key, _, rest = value.partition("=")
                    attributes.append(cisco_avpair(key, rest))
            return encode_reply(packet, Code.ACCESS_ACCEPT, attributes, client.secret), "accept"
        code = (
            outcome.code
            if isinstance(outcome, Denial)
            else (
                outcome.units[0].denial
                if outcome.units and outcome.units[0].denial
                else DenialCode.CREDIT_LIMIT_REACHED
            )
        )
        self.metrics.child(self.metrics.denials, PROTOCOL, code.value).inc()
        rejection = attrs.rejections[code]
        return encode_reply(packet, Code.ACCESS_REJECT, rejection, client.secret), code.value

    # -- Accounting-Request --------------------------------------------------------------

    async def _accounting(
        self, client: _Client, host: str, packet: Packet
    ) -> tuple[bytes | None, str]:
        view = decode_accounting(packet, self.dictionary)
        status = view.status_type
        arrival = self.clock()
        delay = view.delay_time_s
        event = arrival - (delay or 0)
        if view.event_timestamp is not None and delay is None:
            event = view.event_timestamp.timestamp()
        ok = encode_reply(packet, Code.ACCOUNTING_RESPONSE, (), client.secret)
        if status is AcctStatusType.START:
            request_type = RequestType.INITIAL
        elif status is AcctStatusType.INTERIM_UPDATE:
            request_type = RequestType.UPDATE
        elif status is AcctStatusType.STOP:
            request_type = RequestType.TERMINATE
        elif status is AcctStatusType.ACCOUNTING_ON or status is AcctStatusType.ACCOUNTING_OFF:
            await self._close_nas(client.name, "nas restart")
            return ok, "nas_restart"
        else:
            return ok, "ignored"
        avpairs = view.cisco_avpairs
        key = self._call_key(
            host, view.h323_conf_id, avpairs, view.session_id, view.h323_call_origin
        )
        if key is None:
            return ok, "no_session_id"
        total = view.session_time_s
        connect = view.h323_connect_time.time.timestamp() if view.h323_connect_time else None
        disconnect = (
            view.h323_disconnect_time.time.timestamp() if view.h323_disconnect_time else None
        )
        if total is None and connect is not None and disconnect is not None:
            total = max(0, int(disconnect - connect))
        # The fields each kind sets; the rest keep ChargingRequest's defaults.
        opening = False
        used: int | None
        answer: float | None = None
        end_time: float | None = None
        cause = side = ""
        if request_type is RequestType.INITIAL:
            answer = connect if connect is not None else event
            opening = not self.service.has_session(key)
            if not opening:
                request_type = RequestType.UPDATE
            number, used = 1, 0
        elif request_type is RequestType.UPDATE:
            used = total or 0
            number = 2 + used
        else:
            number, used, answer = STOP_NUMBER_BASE + (total or 0), total, connect
            end_time = disconnect if disconnect is not None else event
            if view.h323_disconnect_cause_q850 is not None:
                cause = f"Q.850;cause={view.h323_disconnect_cause_q850}"
            elif view.terminate_cause is not None:
                cause = f"RADIUS;Acct-Terminate-Cause={view.terminate_cause}"
            side = _RELEASE_SIDES.get(avpairs.get("release-source", ""), "")
        request = ChargingRequest(
            session_id=key,
            request_number=number,
            request_type=request_type,
            protocol=PROTOCOL,
            peer=client.name,
            identities=self._candidates(view.user_name, view.calling_station_id),
            source_ip=host,
            calling=view.calling_station_id,
            called=view.called_station_id,
            event_time=answer,
            answer_time=answer,
            end_time=end_time,
            units=(UnitRequest(total_used_s=used),),
            hangup_cause=cause,
            hangup_side=side,
            diversion=view.h323_redirect_number or "",
            caller_ip=view.h323_remote_address or "",
            repeated=status is AcctStatusType.START and bool(delay),
            extra=_extra(
                view.user_name,
                view.session_id,
                view.h323_conf_id,
                host,
                avpairs,
                view.h323_setup_time,
            ),
        )
        if status is AcctStatusType.START:
            if opening and (delay or 0) >= self.service.settings.duplicate_window_s:
                # Replayed from a NAS buffer or a proxy's detail file: it continues a session
                # still open but opens none, since the call may have been charged and closed
                # since (its Stop then finds the closed marker); a Stop alone is charged.
                request.request_type = RequestType.UPDATE
                outcome = await self.service.handle(request)
                if isinstance(outcome, Denial) and outcome.code is DenialCode.UNKNOWN_SESSION:
                    log.info("late start opens no session", session_id=key, delay_s=delay)
                    return ok, "late_start"
            else:
                outcome = await self.service.handle(request)
                if (
                    opening
                    and isinstance(outcome, Denial)
                    and outcome.code is DenialCode.INVALID_REQUEST
                ):
                    # Opened elsewhere (another worker, or an authorization this worker forgot).
                    outcome = await self.service.handle(
                        ChargingRequest(**{**_fields(request), "request_type": RequestType.UPDATE})
                    )
                if (
                    opening
                    and isinstance(outcome, Denial)
                    and outcome.code is DenialCode.UNKNOWN_SESSION
                ):
                    # The call is over (this Start is replayed, or came after its Stop) and
                    # was charged: nothing was opened, and there is no call to disconnect.
                    return ok, "closed_session"
            return self._after_hold(outcome, ok, key, client, host, view)
        if status is AcctStatusType.INTERIM_UPDATE:
            return self._after_hold(await self.service.handle(request), ok, key, client, host, view)
        outcome = await self.service.handle(request)
        if isinstance(outcome, Denial):
            if outcome.code is DenialCode.SERVICE_UNAVAILABLE:
                return None, "backend_unavailable"
            self.metrics.child(self.metrics.denials, PROTOCOL, outcome.code.value).inc()
            log.warning("stop not charged", session_id=key, reason=outcome.code.value)
            return ok, outcome.code.value
        return ok, "uncharged" if outcome.not_applicable else "stop"

    def _after_hold(
        self, outcome: Outcome, ok: bytes, key: str, client: _Client, host: str, view: Any
    ) -> tuple[bytes | None, str]:
        if isinstance(outcome, Denial) and outcome.code is DenialCode.SERVICE_UNAVAILABLE:
            return None, "backend_unavailable"
        if isinstance(outcome, Grant) and outcome.not_applicable:
            return ok, "uncharged"
        denied = isinstance(outcome, Denial) or (
            isinstance(outcome, Grant) and bool(outcome.units) and outcome.units[0].denial
        )
        if denied:
            reason = outcome.code.value if isinstance(outcome, Denial) else "credit_exhausted"
            self.metrics.child(self.metrics.denials, PROTOCOL, reason).inc()
            if client.disconnect_port:
                task = asyncio.ensure_future(
                    self.disconnect(
                        host, client, view.session_id, view.user_name, view.h323_conf_id, reason
                    )
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return ok, reason
        return ok, "ok"

    async def _close_nas(self, nas: str, cause: str) -> None:
        ended = await self.service.end_sessions_of_peer(nas, cause, "nas")
        log.info("sessions of a restarted NAS ended", nas=nas, cause=cause, sessions=ended)

    # -- Disconnect-Request (RFC 5176) ---------------------------------------------------

    async def disconnect(
        self,
        host: str,
        client: _Client,
        acct_session_id: str | None,
        user_name: str | None,
        conf_id: str | None,
        reason: str,
    ) -> str:
        """Ask a NAS to end a call; return ack, nak or timeout."""
        sender = self._disconnect
        if sender is None or sender.transport is None or not client.disconnect_port:
            return "not_configured"
        attrs = self._attrs
        attributes: list[tuple[int, bytes]] = []
        if acct_session_id:
            attributes.append(string_attribute(attrs.acct_session_id, acct_session_id))
        if user_name:
            attributes.append(string_attribute(attrs.user_name, user_name))
        if conf_id:
            attributes.append(h323_attribute("h323-conf-id", conf_id, self.dictionary))
        with contextlib.suppress(ValueError):
            attributes.append(ipaddr_attribute(attrs.nas_ip, host))
        identifier = next(self._identifiers)
        data = encode_request(Code.DISCONNECT_REQUEST, identifier, attributes, client.secret)
        request = decode_packet(data, self.dictionary)
        loop = asyncio.get_running_loop()
        outcome = "timeout"
        for _ in range(self.settings.disconnect_retries):
            future: asyncio.Future[bytes] = loop.create_future()
            sender.waiting[(host, identifier)] = future
            sender.transport.sendto(data, (host, client.disconnect_port))
            try:
                raw = await asyncio.wait_for(future, self.settings.disconnect_timeout_s)
            except TimeoutError:
                continue
            finally:
                sender.waiting.pop((host, identifier), None)
            try:
                reply = decode_packet(raw, self.dictionary)
                verify_reply(reply, request, client.secret)
            except RadiusError as exc:
                self._drop(exc.reason.value, host, "disconnect reply")
                continue
            outcome = "ack" if reply.code is Code.DISCONNECT_ACK else "nak"
            break
        self.metrics.child(self.metrics.requests, PROTOCOL, "disconnect", outcome).inc()
        log.info(
            "disconnect",
            nas=client.name,
            acct_session_id=acct_session_id,
            reason=reason,
            result=outcome,
        )
        return outcome

    async def disconnect_session(self, peer: str, extra: dict[str, str], reason: str) -> str:
        """Disconnect a session known from its CDR/session extras (fraud, administration)."""
        host = extra.get("nas_address", "")
        client = self._client(host) if host else None
        if client is None:
            return "not_configured"
        return await self.disconnect(
            host,
            client,
            extra.get("acct_session_id"),
            extra.get("user_name"),
            extra.get("h323_conf_id"),
            reason,
        )

    async def terminate(self, view: Any, reason: str) -> bool:
        """End a live RADIUS session (fraud, administrative block); False if not ours."""
        if view.protocol != PROTOCOL:
            return False
        result = await self.disconnect_session(view.peer, view.extra, reason)
        return result in ("ack", "nak")

    # -- test hooks ----------------------------------------------------------------------

    @staticmethod
    def new_identifier() -> int:
        """A random identifier (for tools that send requests)."""
        return secrets.randbelow(256)


def _extra(
    user_name: str | None,
    acct_session_id: str | None,
    conf_id: str | None,
    host: str,
    avpairs: dict[str, str] | None = None,
    setup: H323Time | None = None,
) -> dict[str, str]:
    extra = {"nas_address": host}
    if user_name:
        extra["user_name"] = user_name
    if acct_session_id:
        extra["acct_session_id"] = acct_session_id
    if conf_id:
        extra["h323_conf_id"] = conf_id
    if avpairs:
        extra.update(_route_report(avpairs, setup))
    return extra


MAX_PDD_MS = 300_000
"""A post-dial delay longer than this is a clock error, not a measurement."""


def _route_report(avpairs: dict[str, str], setup: H323Time | None = None) -> dict[str, str]:
    """What the switch says it used (``ocsd-carrier``, ``ocsd-trunk``, ``ocsd-route-used``)
    and the post-dial delay it saw: ``ocsd-pdd-ms``, else Cisco's ``alert-timepoint`` (when
    the far end started ringing) less the call's h323-setup-time."""
    report: dict[str, str] = {}
    for key, name in (
        ("ocsd-carrier", "route_carrier"),
        ("ocsd-trunk", "route_trunk"),
        ("ocsd-route-used", "route_used"),
    ):
        value = avpairs.get(key)
        if value:
            report[name] = value.strip()
    pdd = avpairs.get("ocsd-pdd-ms", "").strip()
    if pdd.isdigit() and int(pdd) <= MAX_PDD_MS:
        report["route_pdd_ms"] = str(int(pdd))
    elif setup is not None and "alert-timepoint" in avpairs:
        try:
            alert = parse_h323_time(avpairs["alert-timepoint"])
        except ValueError:
            return report
        delay_ms = round((alert.time - setup.time).total_seconds() * 1000)
        if 0 <= delay_ms <= MAX_PDD_MS:
            report["route_pdd_ms"] = str(delay_ms)
    return report


def _fields(instance: Any) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in instance.__slots__}
