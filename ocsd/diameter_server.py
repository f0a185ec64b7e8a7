"""Diameter Gy/Ro credit control over TCP (RFC 6733, RFC 4006/8506, 3GPP TS 32.299).

Rules of this adapter:

- One sans-IO ``Peer`` per connection does CER/CEA (only configured peers: Origin-Host and
  source address), DWR/DWA, DPR/DPA and the error answers of malformed messages; this module
  moves bytes, runs timers on the loop clock and answers requests.
- Each CCR is answered as soon as its charging step is done; many are in flight per peer.
  At most ``max_in_flight_per_peer`` are worked on at once: beyond that a request is answered
  3004 (DIAMETER_TOO_BUSY) at once. A request not answered within ``request_deadline_s`` is
  answered 3004 too, so that the client fails over to another node (the step itself is
  idempotent: a retransmission there gets the original answer).
- A peer that sends half a message and stalls is dropped after ``stall_timeout_s``.
- Business outcomes become Result-Codes in exactly one table, ``RESULT_CODES`` below.
  A store failure (SERVICE_UNAVAILABLE) is answered 3004, not 5012: 3004 is transient and
  lets a softswitch with several OCS peers fail over (RFC 4006 §5.7); 5012 is final and
  would make it apply its failure handling to the whole session.
- Server-initiated requests: ASR (abort a session: fraud, administrative block) and RAR
  (re-authorize: e.g. after a top-up), both matched to their answers.
- Shutdown: stop listening, DPR to every open peer, wait for DPA (bounded), then close.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, cast

from lcr.delivery import RouteAvp
from ocsd.charging import ChargingService
from ocsd.charging_types import (
    ChargingRequest,
    Denial,
    DenialCode,
    EventAction,
    Grant,
    Outcome,
    RequestType,
    UnitGrant,
    UnitRequest,
)
from ocsd.deadline import DeadlineWatch
from ocsd.directory import Candidate
from ocsd.logs import get_logger
from ocsd.master import IdentityKind
from ocsd.metrics import Metrics
from protocols.diameter.avp import Avp, pull_raw_avps
from protocols.diameter.constants import (
    HEADER_LENGTH,
    AvpCode,
    CcRequestType,
    CcSessionFailover,
    CheckBalanceResult,
    CommandCode,
    CommandFlag,
    CreditControlFailureHandling,
    DisconnectCause,
    FinalUnitAction,
    RequestedAction,
    ResultCode,
    SubscriptionIdType,
    TgppAvpCode,
)
from protocols.diameter.errors import DiameterError
from protocols.diameter.gy import (
    STRICT_GY_OPTIONS,
    AbortSessionRequest,
    CostInformation,
    CreditControlAnswer,
    CreditControlRequest,
    FinalUnitIndication,
    GrantedUnits,
    GyOptions,
    MsccAnswer,
    ReAuthRequest,
    UnitValue,
    decode_ccr,
    decode_session_answer,
    encode_asr,
    encode_cca,
    encode_rar,
)
from protocols.diameter.message import LocalIdentity, Message, decode_message
from protocols.diameter.peer import (
    AllowedPeer,
    AnswerReceived,
    EndToEndIdGenerator,
    MessageRejected,
    Peer,
    PeerClosed,
    PeerConfig,
    PeerOpened,
    PeerRole,
    RequestReceived,
    RequestTimedOut,
)

log = get_logger("diameter")

PROTOCOL = "diameter"

# Outcome -> Result-Code: the one table (RFC 4006 §9, RFC 6733 §7.1).
RESULT_CODES: dict[DenialCode, int] = {
    DenialCode.USER_UNKNOWN: ResultCode.DIAMETER_USER_UNKNOWN,
    DenialCode.ACCOUNT_SUSPENDED: ResultCode.DIAMETER_END_USER_SERVICE_DENIED,
    DenialCode.ACCOUNT_CLOSED: ResultCode.DIAMETER_END_USER_SERVICE_DENIED,
    DenialCode.FRAUD_SUSPECTED: ResultCode.DIAMETER_END_USER_SERVICE_DENIED,
    DenialCode.DESTINATION_BLOCKED: ResultCode.DIAMETER_END_USER_SERVICE_DENIED,
    DenialCode.TOO_MANY_SESSIONS: ResultCode.DIAMETER_END_USER_SERVICE_DENIED,
    DenialCode.NO_ROUTE: ResultCode.DIAMETER_END_USER_SERVICE_DENIED,
    DenialCode.CREDIT_LIMIT_REACHED: ResultCode.DIAMETER_CREDIT_LIMIT_REACHED,
    DenialCode.SPEND_CAP_REACHED: ResultCode.DIAMETER_CREDIT_LIMIT_REACHED,
    DenialCode.RATING_FAILED: ResultCode.DIAMETER_RATING_FAILED,
    DenialCode.NO_RATE: ResultCode.DIAMETER_RATING_FAILED,
    DenialCode.BELOW_COST: ResultCode.DIAMETER_RATING_FAILED,
    DenialCode.INVALID_NUMBER: ResultCode.DIAMETER_RATING_FAILED,
    DenialCode.UNKNOWN_SESSION: ResultCode.DIAMETER_UNKNOWN_SESSION_ID,
    DenialCode.INVALID_REQUEST: ResultCode.DIAMETER_UNABLE_TO_COMPLY,
    DenialCode.SERVICE_UNAVAILABLE: ResultCode.DIAMETER_TOO_BUSY,
}
"""5031 (rating failed) answers carry Failed-AVP: the AVP naming the destination."""

ISO_4217_NUMERIC: dict[str, int] = {
    "USD": 840,
    "EUR": 978,
    "GBP": 826,
    "CHF": 756,
    "JPY": 392,
    "CAD": 124,
    "AUD": 36,
    "INR": 356,
    "BRL": 986,
    "ZAR": 710,
    "MXN": 484,
    "NGN": 566,
    "PLN": 985,
    "SEK": 752,
    "NOK": 578,
    "DKK": 208,
    "CZK": 203,
    "HUF": 348,
    "RON": 946,
    "TRY": 949,
    "AED": 784,
    "SAR": 682,
    "ILS": 376,
    "SGD": 702,
    "HKD": 344,
    "CNY": 156,
    "KRW": 410,
    "NZD": 554,
    "KES": 404,
    "EGP": 818,
    "MAD": 504,
    "PHP": 608,
    "IDR": 360,
    "MYR": 458,
    "THB": 764,
}


@dataclass(frozen=True, slots=True)
class DiameterPeerSettings:
    """A softswitch allowed to connect."""

    origin_host: str
    """Its Diameter identity; ``*`` accepts any identity from ``addresses``."""
    addresses: tuple[str, ...] = ("127.0.0.1",)
    """Addresses or CIDRs its connections may come from."""

    def __post_init__(self) -> None:
        for address in self.addresses:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(f"peer address {address!r} is not an IP or CIDR") from None


@dataclass(frozen=True, slots=True)
class GyToleranceSettings:
    """What sloppiness from clients is accepted (and logged); each false is strict."""

    unknown_service_context: bool = True
    application_id_in_vendor_specific: bool = True
    first_of_repeated: bool = True
    ignore_unknown_mandatory: bool = False
    """RFC 6733 §3: an unknown AVP with the M bit is answered 5001; true ignores it."""
    missing_ims_information: bool = True
    default_requested_action: bool = True
    ietf_sip_method: bool = True
    unknown_enum_values: bool = True

    def options(self) -> GyOptions:
        """The Gy decoder options these settings stand for."""
        return GyOptions(
            accept_unknown_service_context=self.unknown_service_context,
            application_id_in_vendor_specific=self.application_id_in_vendor_specific,
            first_of_repeated=self.first_of_repeated,
            ignore_unknown_mandatory=self.ignore_unknown_mandatory,
            allow_missing_ims_information=self.missing_ims_information,
            default_requested_action=self.default_requested_action,
            accept_ietf_sip_method=self.ietf_sip_method,
            accept_unknown_enum_values=self.unknown_enum_values,
        )


@dataclass(frozen=True, slots=True)
class DiameterSettings:
    """The Diameter listener and our identity."""

    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = 3868
    origin_host: str = "ocsd.localdomain"
    origin_realm: str = "localdomain"
    host_ip_addresses: tuple[str, ...] = ()
    """Host-IP-Address in CER/CEA; empty: the listen address (127.0.0.1 for 0.0.0.0)."""
    product_name: str = "ocsd"
    vendor_id: int = 0
    peers: tuple[DiameterPeerSettings, ...] = (DiameterPeerSettings("*", ("127.0.0.1",)),)
    watchdog_interval_s: float = 30.0
    capabilities_timeout_s: float = 10.0
    stall_timeout_s: float = 10.0
    """A peer that leaves half a message unfinished this long is dropped."""
    dpa_timeout_s: float = 5.0
    max_message_bytes: int = 65_536
    max_in_flight_per_peer: int = 512
    request_deadline_s: float = 2.0
    strict: bool = False
    """Refuse every sloppiness (overrides ``tolerate``)."""
    tolerate: GyToleranceSettings = field(default_factory=GyToleranceSettings)
    credit_control_failure_handling: Literal["", "terminate", "continue", "retry_and_terminate"] = (
        ""
    )
    """Advertised in every CCA when set (RFC 4006 §8.14)."""
    cc_session_failover: Literal["", "supported", "not_supported"] = ""
    """Advertised in every CCA when set (RFC 4006 §8.4)."""
    abort_timeout_s: float = 5.0
    """How long an ASR or RAR waits for its answer."""

    def __post_init__(self) -> None:
        if not 0 < self.port <= 65535:
            raise ValueError("port must be a TCP port")
        if "." not in self.origin_host:
            raise ValueError("origin_host must be a fully qualified name")
        if self.max_in_flight_per_peer <= 0 or self.request_deadline_s <= 0:
            raise ValueError("max_in_flight_per_peer and request_deadline_s must be positive")
        for address in self.host_ip_addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"host_ip_addresses: {address!r} is not an address") from None


_CCFH = {
    "terminate": CreditControlFailureHandling.TERMINATE,
    "continue": CreditControlFailureHandling.CONTINUE,
    "retry_and_terminate": CreditControlFailureHandling.RETRY_AND_TERMINATE,
}
_CCSF = {
    "supported": CcSessionFailover.FAILOVER_SUPPORTED,
    "not_supported": CcSessionFailover.FAILOVER_NOT_SUPPORTED,
}
_REQUEST_TYPES = {
    CcRequestType.INITIAL_REQUEST: RequestType.INITIAL,
    CcRequestType.UPDATE_REQUEST: RequestType.UPDATE,
    CcRequestType.TERMINATION_REQUEST: RequestType.TERMINATE,
    CcRequestType.EVENT_REQUEST: RequestType.EVENT,
}
_COMMANDS = {kind: f"ccr_{kind.name.split('_')[0].lower()}" for kind in CcRequestType}
"""The metrics label of each request type (ccr_initial, ...), worked out once."""
_ACTIONS = {
    RequestedAction.DIRECT_DEBITING: EventAction.DIRECT_DEBIT,
    RequestedAction.REFUND_ACCOUNT: EventAction.REFUND,
    RequestedAction.CHECK_BALANCE: EventAction.CHECK_BALANCE,
    RequestedAction.PRICE_ENQUIRY: EventAction.PRICE_ENQUIRY,
}


def charging_request(ccr: CreditControlRequest, peer_address: str) -> ChargingRequest:
    """The protocol-neutral form of a CCR."""
    identities: list[Candidate] = []
    for subscription in ccr.subscription_ids:
        data = subscription.data.strip()
        if subscription.type == SubscriptionIdType.END_USER_E164:
            identities.append(Candidate(IdentityKind.E164, data.removeprefix("+")))
        elif subscription.type == SubscriptionIdType.END_USER_SIP_URI:
            uri = data.lower()
            for scheme in ("sip:", "sips:", "tel:"):
                uri = uri.removeprefix(scheme)
            identities.append(Candidate(IdentityKind.SIP_URI, uri))
            user = uri.split("@", 1)[0].split(";", 1)[0].removeprefix("+")
            if user.isdigit():
                identities.append(Candidate(IdentityKind.E164, user))
        else:
            identities.append(Candidate(IdentityKind.USERNAME, data))
    if ccr.user_name:
        identities.append(Candidate(IdentityKind.USERNAME, ccr.user_name))
    ims = ccr.ims
    calling = ims.calling_party_address if ims else None
    called = None
    if ims is not None:
        called = ims.called_party_address or ims.requested_party_address
    units: list[UnitRequest] = []
    for mscc in ccr.mscc:
        used = messages = 0
        for reported in mscc.used:
            used += reported.cc_time or 0
            messages += reported.cc_service_specific_units or 0
        requested = mscc.requested
        requested_s = requested.cc_time if requested is not None else None
        if requested is not None and requested.cc_service_specific_units:
            messages += requested.cc_service_specific_units
        units.append(
            UnitRequest(
                rating_group=mscc.rating_group or 0,
                service_id=mscc.service_identifiers[0] if mscc.service_identifiers else None,
                requested_s=requested_s,
                used_s=used,
                units=messages,
            )
        )
    if not units:
        requested = ccr.requested
        units.append(
            UnitRequest(
                rating_group=0,
                service_id=ccr.service_identifier,
                requested_s=requested.cc_time if requested is not None else None,
                used_s=sum(u.cc_time or 0 for u in ccr.used),
                units=((requested.cc_service_specific_units or 0) if requested is not None else 0)
                + sum(u.cc_service_specific_units or 0 for u in ccr.used),
            )
        )
    cause = ""
    if ims is not None and ims.cause_code is not None:
        cause = (
            f"SIP;cause={ims.cause_code}"
            if ims.cause_code >= 100
            else (f"3GPP;Cause-Code={ims.cause_code}")
        )
    elif ccr.termination_cause is not None:
        cause = f"Diameter;Termination-Cause={int(ccr.termination_cause)}"
    extra: dict[str, str] = {"origin_realm": ccr.origin_realm}
    if ims is not None and ims.ims_charging_identifier:
        extra["icid"] = ims.ims_charging_identifier
    event_time = ccr.event_timestamp.timestamp() if ccr.event_timestamp else None
    return ChargingRequest(
        session_id=ccr.session_id,
        request_number=ccr.request_number,
        request_type=_REQUEST_TYPES[ccr.request_type],
        protocol=PROTOCOL,
        peer=ccr.origin_host,
        identities=tuple(identities),
        source_ip=peer_address,
        calling=calling,
        called=called,
        event_time=event_time
        if ccr.request_type is CcRequestType.INITIAL_REQUEST or ccr.is_event
        else None,
        end_time=event_time if ccr.request_type is CcRequestType.TERMINATION_REQUEST else None,
        units=tuple(units),
        action=_ACTIONS.get(ccr.requested_action) if ccr.requested_action is not None else None,
        hangup_cause=cause,
        extra=extra,
        repeated=ccr.message is not None and bool(ccr.message.flags & CommandFlag.RETRANSMITTED),
    )


def _route_report(ccr: CreditControlRequest, vendor: int) -> dict[str, str]:
    """What the switch says it used (OCSD-Route-Index, -Carrier or -Trunk echoed at the top
    level of a CCR-U/T) and the post-dial delay it saw (OCSD-Route-PDD), as request extras
    (``route_used`` & co)."""
    extra: dict[str, str] = {}
    message = ccr.message
    if ccr.request_type is CcRequestType.INITIAL_REQUEST or message is None:
        return extra
    raw = message.raw
    if raw is None:
        avps = message.avps
    elif vendor.to_bytes(4, "big") not in raw:
        return extra  # no AVP of that vendor: skip the walk (most requests)
    else:
        avps = pull_raw_avps(raw, HEADER_LENGTH, len(raw))  # headers only, nothing typed
    for avp in avps:
        if avp.vendor_id != vendor or not isinstance(avp.value, bytes):
            continue
        if avp.code == RouteAvp.INDEX and len(avp.value) == 4:
            extra["route_used"] = str(int.from_bytes(avp.value, "big"))
        elif avp.code == RouteAvp.CARRIER and avp.value:
            extra["route_carrier"] = avp.value.decode("utf-8", "replace").strip()
        elif avp.code == RouteAvp.TRUNK and avp.value:
            extra["route_trunk"] = avp.value.decode("utf-8", "replace").strip()
        elif avp.code == RouteAvp.PDD and len(avp.value) == 4:
            extra["route_pdd_ms"] = str(int.from_bytes(avp.value, "big"))
    return extra


def _cost(micros: int, currency: str) -> CostInformation | None:
    code = ISO_4217_NUMERIC.get(currency)
    if code is None:
        return None
    return CostInformation(UnitValue.from_decimal(Decimal(micros) / 1_000_000), code)


def _rating_failed_avp(ccr: CreditControlRequest) -> tuple[Avp, ...]:
    """The AVP that named the destination, for 5031's Failed-AVP (none if it cannot be read)."""
    message = ccr.message
    if message is None:
        return ()
    try:
        avps = message.avps
    except DiameterError:
        # An AVP the Gy view skipped does not decode: answer without Failed-AVP.
        return ()
    for code in (TgppAvpCode.SERVICE_INFORMATION, AvpCode.SUBSCRIPTION_ID):
        for avp in avps:
            if avp.code == code:
                return (avp,)
    return ()


class Answerer:
    """Outcome -> CCA, following ``RESULT_CODES``."""

    def __init__(self, settings: DiameterSettings) -> None:
        self.ccfh = _CCFH.get(settings.credit_control_failure_handling)
        self.ccsf = _CCSF.get(settings.cc_session_failover)
        self.route_avps: Callable[[Grant], tuple[Avp, ...]] | None = None
        self._common: dict[str, Any] = {
            "credit_control_failure_handling": self.ccfh,
            "cc_session_failover": self.ccsf,
        }

    def answer(self, ccr: CreditControlRequest, outcome: Outcome) -> CreditControlAnswer:
        """The CCA content for an outcome."""
        common = self._common
        if isinstance(outcome, Denial):
            code = RESULT_CODES[outcome.code]
            failed = _rating_failed_avp(ccr) if code == ResultCode.DIAMETER_RATING_FAILED else ()
            return CreditControlAnswer(
                result_code=code,
                error_message=outcome.message[:200] or None,
                failed_avps=failed,
                **common,
            )
        if outcome.not_applicable:
            # An uncharged (emergency) call: no credit control for it. A CCR-U/T of such a
            # call (the client should send none after 4011) is simply acknowledged.
            opening = ccr.is_event or ccr.request_type is CcRequestType.INITIAL_REQUEST
            return CreditControlAnswer(
                result_code=ResultCode.DIAMETER_CREDIT_CONTROL_NOT_APPLICABLE
                if opening
                else ResultCode.DIAMETER_SUCCESS,
                **common,
            )
        if ccr.is_event:
            return self._event(ccr, outcome, common)
        final = ccr.request_type is CcRequestType.TERMINATION_REQUEST
        cost = (
            _cost(outcome.cost_micros, outcome.currency)
            if final and outcome.cost_micros is not None
            else None
        )
        extra = self.route_avps(outcome) if self.route_avps and outcome.routes else ()
        if final:
            return CreditControlAnswer(
                result_code=ResultCode.DIAMETER_SUCCESS,
                cost_information=cost,
                extra_avps=extra,
                **common,
            )
        if not ccr.mscc:
            unit = outcome.units[0] if outcome.units else None
            if unit is not None and unit.denial is not None:
                return CreditControlAnswer(result_code=RESULT_CODES[unit.denial], **common)
            return CreditControlAnswer(
                result_code=ResultCode.DIAMETER_SUCCESS,
                granted=GrantedUnits(cc_time=unit.granted_s) if unit else None,
                validity_time=unit.validity_s if unit else None,
                final_unit_indication=(
                    FinalUnitIndication(FinalUnitAction.TERMINATE) if unit and unit.final else None
                ),
                extra_avps=extra,
                **common,
            )
        answers = tuple(self._mscc(unit) for unit in outcome.units)
        granted_any = any(unit.denial is None for unit in outcome.units)
        result = ResultCode.DIAMETER_SUCCESS
        if not granted_any and outcome.units:
            codes = {RESULT_CODES[u.denial] for u in outcome.units if u.denial is not None}
            if len(codes) == 1:
                result = ResultCode(codes.pop())
        return CreditControlAnswer(result_code=result, mscc=answers, extra_avps=extra, **common)

    @staticmethod
    def _mscc(unit: UnitGrant) -> MsccAnswer:
        service_ids = (unit.service_id,) if unit.service_id is not None else ()
        if unit.denial is not None:
            return MsccAnswer(
                rating_group=unit.rating_group or None,
                service_identifiers=service_ids,
                result_code=RESULT_CODES[unit.denial],
            )
        return MsccAnswer(
            rating_group=unit.rating_group or None,
            service_identifiers=service_ids,
            result_code=ResultCode.DIAMETER_SUCCESS,
            granted=GrantedUnits(cc_time=unit.granted_s),
            validity_time=unit.validity_s,
            final_unit_indication=(
                FinalUnitIndication(FinalUnitAction.TERMINATE) if unit.final else None
            ),
        )

    @staticmethod
    def _event(
        ccr: CreditControlRequest, outcome: Grant, common: dict[str, Any]
    ) -> CreditControlAnswer:
        cost = (
            _cost(outcome.cost_micros, outcome.currency)
            if outcome.cost_micros is not None
            else None
        )
        if ccr.requested_action is RequestedAction.CHECK_BALANCE:
            return CreditControlAnswer(
                result_code=ResultCode.DIAMETER_SUCCESS,
                check_balance_result=(
                    CheckBalanceResult.ENOUGH_CREDIT
                    if outcome.enough_credit
                    else CheckBalanceResult.NO_CREDIT
                ),
                **common,
            )
        granted = None
        if ccr.requested_action in (None, RequestedAction.DIRECT_DEBITING):
            requested = ccr.requested or (ccr.mscc[0].requested if ccr.mscc else None)
            if requested is not None:
                granted = GrantedUnits(
                    cc_time=requested.cc_time,
                    cc_service_specific_units=requested.cc_service_specific_units,
                )
        return CreditControlAnswer(
            result_code=ResultCode.DIAMETER_SUCCESS,
            cost_information=cost,
            granted=granted,
            **common,
        )


def raw_avps(data: bytes) -> tuple[Avp, ...]:
    """Decode AVPs encoded elsewhere (route lists) into AVP objects."""
    if not data:
        return ()
    header = struct.pack(
        "!I I I I I",
        (1 << 24) | (20 + len(data)),
        (0x80 << 24) | CommandCode.CREDIT_CONTROL,
        4,
        0,
        0,
    )
    return decode_message(header + data).avps


class _Connection(asyncio.Protocol):
    """One peer's TCP connection."""

    def __init__(self, server: DiameterServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.address = ""
        self.in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        """When ``_timer`` fires (loop time)."""
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._flush_scheduled = False
        self.closed = asyncio.Event()

    # -- transport ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        self.address = str(peername[0]) if peername else "0.0.0.0"
        server = self.server
        self.peer = Peer(
            server.peer_config,
            PeerRole.RESPONDER,
            self.address,
            end_to_end_ids=server.end_to_end_ids,
        )
        self.peer.start(server.now())
        server.connections.add(self)
        self._pump()

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self.peer.receive_data(data, self.server.now())
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and not self.peer.is_closed:
            self.peer.connection_lost(self.server.now())
            self._drain_events()
        self._finish()

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()
        self.server.connections.discard(self)
        self.server.forget(self)
        self.closed.set()

    # -- the state machine's outputs ---------------------------------------------------

    def _pump(self) -> None:
        self._drain_events()
        self._flush()
        self._arm_timer()

    def _flush(self) -> None:
        assert self.peer is not None
        data = self.peer.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _arm_timer(self) -> None:
        """Have ``_on_timer`` called by the peer's next deadline.

        Every message moves the watchdog deadline later, so an armed timer that fires no
        later than the new deadline is kept: it may fire early, and ``handle_timer`` then
        acts on nothing that is not due and the timer is armed again. Replacing it at every
        request cost a cancelled handle and a new one, twice per request.
        """
        peer = self.peer
        assert peer is not None
        when = peer.get_timer()
        timer = self._timer
        if when is None or peer.is_closed:
            if timer is not None:
                timer.cancel()
                self._timer = None
            return
        if timer is not None:
            if self._timer_at <= when:
                return
            timer.cancel()
        self._timer_at = when
        self._timer = self.server.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        assert self.peer is not None
        self.peer.handle_timer(self.server.now())
        self._pump()

    def _drain_events(self) -> None:
        assert self.peer is not None
        server = self.server
        while (event := self.peer.next_event()) is not None:
            if isinstance(event, RequestReceived):
                self._request(event.message)
            elif isinstance(event, AnswerReceived):
                future = self._waiting.pop(event.message.hop_by_hop_id, None)
                if future is not None and not future.done():
                    future.set_result(event.message)
            elif isinstance(event, PeerOpened):
                server.opened(self, event)
            elif isinstance(event, PeerClosed):
                self._flush()
                log.info(
                    "peer closed",
                    peer=self.origin_host or self.address,
                    reason=event.reason.value,
                    detail=event.detail,
                )
                server.metrics.drops.labels(PROTOCOL, f"peer_{event.reason.value}").inc()
                if self.transport is not None:
                    self.transport.close()
            elif isinstance(event, MessageRejected):
                server.metrics.drops.labels(PROTOCOL, f"rejected_{event.result_code}").inc()
                log.info(
                    "message rejected",
                    peer=self.origin_host or self.address,
                    result_code=event.result_code,
                    reason=event.reason,
                )
            elif isinstance(event, RequestTimedOut):
                future = self._waiting.pop(event.request.hop_by_hop_id, None)
                if future is not None and not future.done():
                    future.cancel()

    @property
    def origin_host(self) -> str:
        """The peer's Origin-Host once the capabilities exchange is done."""
        if self.peer is None or self.peer.remote is None:
            return ""
        return self.peer.remote.origin_host

    # -- requests ----------------------------------------------------------------------

    def _request(self, message: Message) -> None:
        server = self.server
        assert self.peer is not None
        if message.command_code != CommandCode.CREDIT_CONTROL:
            self.peer.reject_request(
                message,
                DiameterError(ResultCode.DIAMETER_COMMAND_UNSUPPORTED, "not served by ocsd"),
                server.now(),
            )
            return
        if self.in_flight >= server.settings.max_in_flight_per_peer or server.stopping:
            server.metrics.drops.labels(PROTOCOL, "too_busy").inc()
            self.peer.reject_request(
                message,
                DiameterError(ResultCode.DIAMETER_TOO_BUSY, "too many requests"),
                server.now(),
            )
            return
        self.in_flight += 1
        server.tasks.add(server.loop.create_task(self._answer(message)))

    async def _answer(self, message: Message) -> None:
        server = self.server
        started = time.perf_counter()
        command = "ccr"
        result = "error"
        try:
            try:
                ccr = decode_ccr(message, server.gy_options)
            except DiameterError as error:
                result = str(error.result_code)
                assert self.peer is not None
                self.peer.reject_request(message, error, server.now())
                self._pump()
                return
            if ccr.tolerated:
                log.debug(
                    "tolerated",
                    peer=ccr.origin_host,
                    session_id=ccr.session_id,
                    what=list(ccr.tolerated),
                )
            command = _COMMANDS[ccr.request_type]
            try:
                try:
                    request = charging_request(ccr, self.address)
                    if server.route_vendor is not None:
                        report = _route_report(ccr, server.route_vendor)
                        if report:
                            request.extra = {**request.extra, **report}
                    outcome = await server.service.handle(request)
                except asyncio.CancelledError as exc:
                    if not server.tasks.absorb(exc):
                        raise
                    outcome = Denial(DenialCode.SERVICE_UNAVAILABLE, "answer deadline passed")
                answer = server.answerer.answer(ccr, outcome)
                encoded = encode_cca(ccr, answer, server.identity)
            except TimeoutError:
                # Not the deadline (that is a cancellation): a timeout inside the service.
                outcome = Denial(DenialCode.SERVICE_UNAVAILABLE, "answer deadline passed")
                answer = server.answerer.answer(ccr, outcome)
                encoded = encode_cca(ccr, answer, server.identity)
            except Exception:
                # The per-request boundary: anything unexpected is logged and answered 5012.
                log.exception("request failed", session_id=ccr.session_id)
                answer = CreditControlAnswer(
                    result_code=ResultCode.DIAMETER_UNABLE_TO_COMPLY,
                    error_message="internal error",
                )
                self._send(encode_cca(ccr, answer, server.identity))
                result = "5012"
                return
            result = str(int(answer.result_code))
            if isinstance(outcome, Denial):
                server.metrics.child(server.metrics.denials, PROTOCOL, outcome.code.value).inc()
            self._send(encoded)
        finally:
            self.in_flight -= 1
            server.metrics.answered(PROTOCOL, command, result, time.perf_counter() - started)

    def _send(self, answer: Message) -> None:
        if self.peer is None or self.peer.is_closed:
            return
        self.peer.send_answer(answer, self.server.now())
        # Answers finished in the same turn of the loop leave in one write.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.server.loop.call_soon(self._deferred_pump)

    def _deferred_pump(self) -> None:
        self._flush_scheduled = False
        if self.peer is not None:
            self._pump()

    async def request(self, message: Message, timeout_s: float) -> Message | None:
        """Send a request of ours (ASR, RAR) and wait for its answer."""
        assert self.peer is not None
        if not self.peer.is_open:
            return None
        sent = self.peer.send_request(message, self.server.now())
        future: asyncio.Future[Message] = self.server.loop.create_future()
        self._waiting[sent.hop_by_hop_id] = future
        self._pump()
        try:
            return await asyncio.wait_for(future, timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            return None
        finally:
            self._waiting.pop(sent.hop_by_hop_id, None)

    def disconnect(self) -> None:
        """Start DPR (shutdown)."""
        if self.peer is not None and self.peer.is_open:
            self.peer.close(self.server.now(), DisconnectCause.REBOOTING)
            self._pump()
        elif self.transport is not None:
            self.transport.close()


class DiameterServer:
    """The Diameter listener of one worker. (built inside the running event loop)."""

    def __init__(
        self,
        settings: DiameterSettings,
        service: ChargingService,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.service = service
        self.metrics = metrics
        self.clock = clock
        addresses = settings.host_ip_addresses or (
            "127.0.0.1" if settings.listen in ("0.0.0.0", "::", "") else settings.listen,
        )
        self.identity = LocalIdentity(
            origin_host=settings.origin_host,
            origin_realm=settings.origin_realm,
            host_ip_addresses=tuple(ipaddress.ip_address(a) for a in addresses),
            vendor_id=settings.vendor_id,
            product_name=settings.product_name,
            origin_state_id=int(time.time()),
        )
        self.peer_config = self._peer_config(settings)
        self.gy_options = STRICT_GY_OPTIONS if settings.strict else settings.tolerate.options()
        self.answerer = Answerer(settings)
        self.end_to_end_ids = EndToEndIdGenerator(time.time(), random.Random())
        self.connections: set[_Connection] = set()
        self.by_host: dict[str, _Connection] = {}
        self.stopping = False
        self.route_vendor: int | None = None
        """Set when routes go out in CCAs: the Vendor-Id of the OCSD-Route AVPs, whose index
        or carrier a switch may echo in its CCR-U/T to say which route it used."""
        self.loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
        self.tasks = DeadlineWatch(self.loop, settings.request_deadline_s)
        """The CCRs being answered, each answered 3004 once ``request_deadline_s`` has passed."""
        self._server: asyncio.AbstractServer | None = None
        self.address: tuple[str, int] | None = None

    def _peer_config(self, settings: DiameterSettings) -> PeerConfig:
        return PeerConfig(
            identity=self.identity,
            allowed_peers=tuple(
                AllowedPeer.of(p.origin_host, *p.addresses) for p in settings.peers
            ),
            watchdog_interval_s=settings.watchdog_interval_s,
            capabilities_timeout_s=settings.capabilities_timeout_s,
            dpa_timeout_s=settings.dpa_timeout_s,
            stall_timeout_s=settings.stall_timeout_s,
            max_message_bytes=settings.max_message_bytes,
            max_pending_requests=settings.max_in_flight_per_peer * 2,
            decode_lazily=True,
        )

    def reconfigure(self, settings: DiameterSettings) -> None:
        """Take new settings (on reload): the peer list and timers apply to connections
        made from now on, the Gy options and answer contents to the next request; the
        listening address and our identity stay as they were at start."""
        peer_config = self._peer_config(settings)
        answerer = Answerer(settings)
        self.gy_options = STRICT_GY_OPTIONS if settings.strict else settings.tolerate.options()
        self.settings = settings
        self.peer_config = peer_config
        self.answerer = answerer
        self.tasks.deadline_s = settings.request_deadline_s

    def now(self) -> float:
        """The loop clock the peers' timers run on."""
        return self.loop.time()

    async def start(self, *, reuse_port: bool = False) -> None:
        """Listen."""
        # Kept: in CPython 3.11 each get_running_loop() costs a getpid() system call.
        loop = self.loop = asyncio.get_running_loop()
        self.tasks = DeadlineWatch(loop, self.settings.request_deadline_s)
        self._server = await loop.create_server(
            lambda: _Connection(self),
            self.settings.listen,
            self.settings.port,
            reuse_port=reuse_port or None,
            backlog=512,
        )
        sockname = self._server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])
        log.info(
            "listening",
            address=f"{sockname[0]}:{sockname[1]}",
            origin_host=self.settings.origin_host,
        )

    def opened(self, connection: _Connection, event: PeerOpened) -> None:
        """A peer finished CER/CEA."""
        host = event.capabilities.origin_host
        previous = self.by_host.get(host.lower())
        self.by_host[host.lower()] = connection
        self.metrics.peers.labels(PROTOCOL, "open").set(len(self.by_host))
        log.info("peer open", peer=host, address=connection.address, replaced=previous is not None)

    def forget(self, connection: _Connection) -> None:
        """A connection is gone."""
        host = connection.origin_host.lower()
        if host and self.by_host.get(host) is connection:
            del self.by_host[host]
        self.metrics.peers.labels(PROTOCOL, "open").set(len(self.by_host))

    def stop_listening(self) -> None:
        """Refuse new connections (and new requests: answered 3004)."""
        self.stopping = True
        if self._server is not None:
            self._server.close()

    async def stop_accepting(self, _server: object = None) -> None:
        """Daemon shutdown hook: stop listening."""
        self.stop_listening()

    async def drain(self, deadline_s: float) -> None:
        """Answer what is in flight, then DPR every peer and wait for DPA (bounded)."""
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=deadline_s)
            for task in pending:
                task.cancel()
        for connection in list(self.connections):
            connection.disconnect()
        closing = [c.closed.wait() for c in self.connections]
        if closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*closing), self.settings.dpa_timeout_s + 1.0)

    async def close(self) -> None:
        """Close every transport."""
        self.tasks.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def start_component(self, server: Any) -> None:
        """Daemon hook (start is done by the daemon itself)."""

    async def stop(self, _server: object = None) -> None:
        """Daemon shutdown hook."""
        await self.drain(10.0)
        await self.close()

    # -- requests of ours ----------------------------------------------------------------

    async def abort_session(
        self, session_id: str, origin_host: str, realm: str, user_name: str | None = None
    ) -> int | None:
        """Send an ASR for a session; return the ASA's Result-Code (None: no answer)."""
        connection = self.by_host.get(origin_host.lower())
        if connection is None:
            return None
        request = AbortSessionRequest.build(
            self.identity, session_id, origin_host, realm, user_name=user_name
        )
        answer = await connection.request(encode_asr(request), self.settings.abort_timeout_s)
        code = decode_session_answer(answer).result_code if answer is not None else None
        self.metrics.requests.labels(PROTOCOL, "asr", str(code)).inc()
        log.info("abort session", session_id=session_id, peer=origin_host, result_code=code)
        return code

    async def reauthorize(self, session_id: str, origin_host: str, realm: str) -> int | None:
        """Send a RAR for a session; return the RAA's Result-Code (None: no answer)."""
        connection = self.by_host.get(origin_host.lower())
        if connection is None:
            return None
        request = ReAuthRequest.build(self.identity, session_id, origin_host, realm)
        answer = await connection.request(encode_rar(request), self.settings.abort_timeout_s)
        code = decode_session_answer(answer).result_code if answer is not None else None
        self.metrics.requests.labels(PROTOCOL, "rar", str(code)).inc()
        log.info("re-auth", session_id=session_id, peer=origin_host, result_code=code)
        return code

    async def terminate(self, view: Any, reason: str) -> bool:
        """End a live Diameter session (fraud, administrative block); False if not ours."""
        if view.protocol != PROTOCOL or view.peer.lower() not in self.by_host:
            return False  # not a Diameter call, or its peer is connected to another worker
        realm = view.extra.get("origin_realm", self.settings.origin_realm)
        code = await self.abort_session(view.session_id, view.peer, realm)
        log.info("session aborted", session_id=view.session_id, reason=reason, result_code=code)
        return code is not None

    async def reauthorize_account(self, account_id: str) -> int:
        """RAR every session of an account this worker holds (after a top-up)."""
        sent = 0
        for view in self.service.views_of_account(account_id):
            if view.protocol != PROTOCOL:
                continue
            realm = view.extra.get("origin_realm", self.settings.origin_realm)
            if await self.reauthorize(view.session_id, view.peer, realm) is not None:
                sent += 1
        return sent
