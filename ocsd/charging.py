"""The protocol-neutral charging service: identify, rate, hold, charge, with exactly-once steps.

One call, as the service sees it:

- ``INITIAL``: identify the account, normalise the called number, price the call at every
  level of its reseller chain (as of its start, in the account's local time), then ask the
  balance store — in ONE atomic step — to hold the cost of the first grant. The grant is the
  longest duration the hold really pays for, capped by what was asked and the configured
  maximum; when the account's money limited it, the grant is final (final-unit indication).
- ``UPDATE``: add the seconds used, and hold the cost of everything used so far plus the next
  grant (the cost is always computed on the call's total duration, so first block, increments
  and per-call rounding come out exactly as if the call were rated once at the end).
- ``TERMINATE``: the call's cost is debited and its CDR queued in one atomic step; the rest of
  the hold is released.
- ``EVENT``: direct debit, refund, balance check or price enquiry (RFC 4006 §6).

With ``fold_fraud`` (the balance store and the fraud counters share one Redis), the fraud
counter step of an ``INITIAL`` rides in the hold's script (a gate in front of the hold): an
authorization costs one round trip with or without fraud checks, and a call the gate refuses
holds nothing. When the hold will not run (rating fails, or routing must admit the call
first, so that a refused call takes no carrier slot), the counter step runs on its own first,
and a fraud refusal still wins over the other denial, as if the checks had come first.

Every step carries (session id, request number): a repeat gets the original answer rebuilt
from what the store kept, and moves no money. The price of a call is resolved once and kept in
the session state, so a tariff reload or another worker continuing the call changes nothing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import msgpack

from balances.engine import MAX_CLOSED_TTL_MS
from balances.model import (
    AccountStatus,
    BundleHold,
    DenyReason,
    Hold,
    OpenSession,
    Step,
    StepGate,
    StepKind,
    StepResult,
    StepStatus,
)
from balances.store import BackendUnavailable, BalanceStore
from cdr_writer.record import Cdr, CdrKind, LevelAmount, new_cdr_id
from fraud.guard import FraudGuard, PendingCheck
from fraud.model import CallAttempt, CallUsage, Verdict
from fraud.rule import Refusal
from lcr.decision import NoRouteReason, RouteDecision
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
from ocsd.directory import Directory, Identified
from ocsd.logs import get_logger
from ocsd.master import Account
from ocsd.routing import LEGS_KEY, REPORT_KEYS, Routing
from rating.dialplan import NumberFormatError, user_part
from rating.engine import CallPrice, RatingError, RatingFailure, local_position
from rating.plan import BundlePeriod

log = get_logger("charging")

STATE_VERSION = 1
_PACKER = msgpack.Packer(use_bin_type=True, autoreset=True)
"""One packer for the call path: ``msgpack.packb`` builds a Packer (and its 256 KiB buffer)
per call, several times per request. Packing plain values runs in C without releasing the
GIL, so the shared packer is never used by two threads at once."""


def _pack(value: Any) -> bytes:
    """``msgpack.packb(value, use_bin_type=True)``, the same octets, without a new Packer."""
    packed: bytes = _PACKER.pack(value)
    return packed


_PERIOD_CACHE: dict[tuple[str, int], tuple[str, str]] = {}
EVENT_TIME_TOLERANCE_S = 86_400
"""An Event-Timestamp further than this from the clock is not trusted for rating."""
PEER_SCAN_LIMIT = 500_000
"""At most this many open sessions are looked through when a peer restarts."""
MAX_CLOSED_HORIZON_S = MAX_CLOSED_TTL_MS // 1000


@dataclass(frozen=True, slots=True)
class ChargingSettings:
    """Grant sizing and session supervision."""

    default_grant_s: int = 600
    """Seconds granted when a request does not say how many it wants."""
    max_grant_s: int = 3600
    """No grant is larger, whatever the request and the balance."""
    validity_time_s: int = 1800
    """Validity-Time of a grant; a session silent for twice the shorter of this and its
    grant (plus ``reap_grace_s``) is ended by ocsd (RFC 4006 Tcc)."""
    reap_grace_s: int = 30
    reap_interval_s: float = 5.0
    reap_batch: int = 200
    duplicate_window_s: int = 600
    """How long a finished session or event still answers repeats with its original answer."""
    closed_horizon_s: int = 172_800
    """How long the store remembers, in a compact marker, that a session was closed: a stop
    repeated within it (a NAS buffer or a proxy's detail file replayed, a late Stop after the
    reaper) moves no money, and an opening request repeated within it (a CCR-I retransmitted,
    a Start replayed) opens nothing and is told the session is closed; after it, a stop of
    that session is charged as new and an opening request opens it. 0: no marker."""
    session_cache_size: int = 100_000
    """Sessions kept in memory per worker (the store holds them all)."""
    uncharged_numbers: tuple[str, ...] = ("112", "911")
    """Called numbers (as dialled, exactly) that need no credit control: emergency services.
    Such a call goes ahead whoever makes it and whatever the balance, the account's status or
    the fraud rules; Diameter answers 4011, RADIUS accepts without a time limit, nothing is
    charged. ``urn:service:sos`` (RFC 5031, IMS emergency sessions) always counts."""

    def __post_init__(self) -> None:
        if not 0 < self.default_grant_s <= self.max_grant_s:
            raise ValueError("default_grant_s must be positive and at most max_grant_s")
        if self.validity_time_s <= 0 or self.reap_grace_s < 0:
            raise ValueError("validity_time_s must be positive and reap_grace_s not negative")
        if self.reap_interval_s <= 0 or self.reap_batch <= 0:
            raise ValueError("reap_interval_s and reap_batch must be positive")
        if self.duplicate_window_s <= 0 or self.session_cache_size <= 0:
            raise ValueError("duplicate_window_s and session_cache_size must be positive")
        for number in self.uncharged_numbers:
            if not number or number != number.strip() or _dialled(number) != number:
                raise ValueError(
                    f"uncharged_numbers: {number!r} is not a number as dialled (digits, "
                    "* or #, no scheme, + or spaces)"
                )
        if self.closed_horizon_s and not (
            self.duplicate_window_s <= self.closed_horizon_s <= MAX_CLOSED_HORIZON_S
        ):
            raise ValueError(
                "closed_horizon_s must be 0 or between duplicate_window_s and "
                f"{MAX_CLOSED_HORIZON_S}"
            )


_DENY_CODES: dict[DenyReason, DenialCode] = {
    DenyReason.INSUFFICIENT_FUNDS: DenialCode.CREDIT_LIMIT_REACHED,
    DenyReason.DAILY_CAP: DenialCode.SPEND_CAP_REACHED,
    DenyReason.MONTHLY_CAP: DenialCode.SPEND_CAP_REACHED,
    DenyReason.SUSPENDED: DenialCode.ACCOUNT_SUSPENDED,
    DenyReason.CLOSED: DenialCode.ACCOUNT_CLOSED,
    DenyReason.UNKNOWN_ACCOUNT: DenialCode.USER_UNKNOWN,
    DenyReason.TOO_MANY_SESSIONS: DenialCode.TOO_MANY_SESSIONS,
    DenyReason.SESSION_EXISTS: DenialCode.INVALID_REQUEST,
    # The record queue is full (the records database is behind): a condition of this node, not
    # of the account, and transient. Answered like a store outage (Diameter 3004, RADIUS no
    # answer) so that the switch tries another server or later; calls up are not affected.
    DenyReason.RECORD_QUEUE_FULL: DenialCode.SERVICE_UNAVAILABLE,
}

_RATING_CODES: dict[RatingFailure, DenialCode] = {
    RatingFailure.NO_RATE: DenialCode.NO_RATE,
    RatingFailure.BELOW_COST: DenialCode.BELOW_COST,
    RatingFailure.NO_PLAN: DenialCode.RATING_FAILED,
    RatingFailure.NO_EXCHANGE_RATE: DenialCode.RATING_FAILED,
    RatingFailure.BAD_CHAIN: DenialCode.RATING_FAILED,
}


@dataclass(slots=True)
class ServiceUse:
    """One service (rating group) of a session."""

    rating_group: int
    service_id: int | None
    used_s: int = 0
    granted_s: int = 0
    bundle_s: int = 0
    """Bundle seconds held for this service (used and granted)."""
    bundle_short: bool = False
    """The bundle could not give what was asked: assume no more from it."""


@dataclass(slots=True)
class SessionView:
    """What the service knows about an open session (mirrors the store's session state)."""

    session_id: str
    account_id: str
    version: int
    price: CallPrice
    start_ms: int
    timezone: str
    currency: str
    tenant_path: tuple[str, ...]
    protocol: str
    peer: str
    calling_raw: str
    called_raw: str
    calling: str
    caller_ip: str
    diversion: str
    services: dict[str, ServiceUse] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    answer_ms: int | None = None
    _price_state: list[Any] | None = None

    def copy(self) -> SessionView:
        """A working copy to change before the store confirms the step."""
        services = {
            key: ServiceUse(
                u.rating_group, u.service_id, u.used_s, u.granted_s, u.bundle_s, u.bundle_short
            )
            for key, u in self.services.items()
        }
        return SessionView(
            self.session_id,
            self.account_id,
            self.version,
            self.price,
            self.start_ms,
            self.timezone,
            self.currency,
            self.tenant_path,
            self.protocol,
            self.peer,
            self.calling_raw,
            self.called_raw,
            self.calling,
            self.caller_ip,
            self.diversion,
            services,
            dict(self.extra),
            self.answer_ms,
            self._price_state,
        )

    def encode(self) -> bytes:
        """The session state kept by the store."""
        return _pack(
            [
                STATE_VERSION,
                self.session_id,
                self.account_id,
                self.version,
                self._cached_price_state(),
                self.start_ms,
                self.timezone,
                self.currency,
                list(self.tenant_path),
                self.protocol,
                self.peer,
                self.calling_raw,
                self.called_raw,
                self.calling,
                self.caller_ip,
                self.diversion,
                {
                    key: [
                        s.rating_group,
                        s.service_id,
                        s.used_s,
                        s.granted_s,
                        s.bundle_s,
                        s.bundle_short,
                    ]
                    for key, s in self.services.items()
                },
                self.extra,
                self.answer_ms,
            ]
        )

    def _cached_price_state(self) -> list[Any]:
        if self._price_state is None:
            self._price_state = self.price.to_state()
        return self._price_state

    @classmethod
    def decode(cls, data: bytes) -> SessionView:
        """Rebuild a view from ``encode``."""
        (
            version,
            session_id,
            account_id,
            number,
            price,
            start_ms,
            timezone,
            currency,
            tenant_path,
            protocol,
            peer,
            calling_raw,
            called_raw,
            calling,
            caller_ip,
            diversion,
            services,
            extra,
            answer_ms,
        ) = msgpack.unpackb(data, raw=False)
        if version != STATE_VERSION:
            raise ValueError(f"unknown session state version {version}")
        return cls(
            session_id=session_id,
            account_id=account_id,
            version=number,
            price=CallPrice.from_state(price),
            start_ms=start_ms,
            timezone=timezone,
            currency=currency,
            tenant_path=tuple(tenant_path),
            protocol=protocol,
            peer=peer,
            calling_raw=calling_raw,
            called_raw=called_raw,
            calling=calling,
            caller_ip=caller_ip,
            diversion=diversion,
            services={key: ServiceUse(*values) for key, values in services.items()},
            extra=dict(extra),
            answer_ms=answer_ms,
        )


@dataclass(frozen=True, slots=True)
class _Want:
    """What one service asks for in a hold step; kept as the step's context."""

    key: str
    rating_group: int
    service_id: int | None
    used_s: int
    """Total seconds used after this step."""
    want_s: int
    """Seconds wanted on top."""
    desired_micros: int
    bundle_s: int
    """Bundle seconds assumed available for the whole call when sizing the hold."""


class ChargingService:
    """Turns protocol-neutral requests into atomic balance-store steps and answers."""

    def __init__(
        self,
        settings: ChargingSettings,
        store: BalanceStore,
        directory: Callable[[], Directory],
        *,
        node: str = "ocsd",
        clock: Callable[[], float] = time.time,
        routing: Routing | None = None,
        fraud: FraudGuard | None = None,
        fold_fraud: bool = False,
    ) -> None:
        self.settings = settings
        self.routing = routing
        self.fraud = fraud
        self.fold_fraud = fold_fraud
        """Fold the fraud counter step into the hold (the store takes the counters' gate)."""
        self.observe_store: Callable[[str, float], None] | None = None
        """Called with each store step's kind and duration (the store latency metric)."""
        self.store = store
        self._directory = directory
        self.node = node
        self.clock = clock
        self._sessions: OrderedDict[str, SessionView] = OrderedDict()
        self._finished: OrderedDict[tuple[str, int], tuple[float, Outcome]] = OrderedDict()
        self._bundle_short: dict[tuple[str, str, str], bool] = {}

    async def _step(self, step: Step) -> StepResult:
        observe = self.observe_store
        if observe is None:
            return await self.store.step(step)
        started = time.perf_counter()
        try:
            return await self.store.step(step)
        finally:
            observe(step.kind.value, time.perf_counter() - started)

    # -- entry point ---------------------------------------------------------------------

    async def handle(self, request: ChargingRequest) -> Outcome:
        """Answer one request; backend failures become a SERVICE_UNAVAILABLE denial."""
        try:
            if request.request_type is RequestType.INITIAL:
                return await self.start(request)
            if request.request_type is RequestType.UPDATE:
                return await self.update(request)
            if request.request_type is RequestType.TERMINATE:
                return await self.stop(request)
            return await self.event(request)
        except BackendUnavailable as exc:
            log.warning(
                "backend unavailable",
                session_id=request.session_id,
                error=str(exc),
                request_type=request.request_type.value,
            )
            return Denial(DenialCode.SERVICE_UNAVAILABLE, str(exc))

    # -- helpers -------------------------------------------------------------------------

    def _uncharged(self, request: ChargingRequest) -> bool:
        """Whether the call is to a number that needs no credit control (emergency)."""
        called = request.called or ""
        if called[:15].lower() == "urn:service:sos":
            return True
        return _dialled(called) in self.settings.uncharged_numbers

    def _not_applicable(self, request: ChargingRequest) -> Grant:
        """The answer for an uncharged call: no session, no hold, no charge, no CDR."""
        log.info("uncharged call", session_id=request.session_id, called=request.called or "")
        return Grant(not_applicable=True)

    def _identify(self, directory: Directory, request: ChargingRequest) -> Identified | None:
        found = directory.identify(request.identities)
        if found is None and request.source_ip and request.called:
            try:
                digits = directory.dial_plan.normalize(request.called)
            except NumberFormatError:
                digits = request.called
            found = directory.identify_source(request.source_ip, digits)
        return found

    def _start_time(self, request: ChargingRequest, now: float) -> float:
        event = request.event_time
        if event is not None and abs(event - now) <= EVENT_TIME_TOLERANCE_S:
            return event
        return now

    def _periods(self, directory: Directory, timezone: str, now: float) -> tuple[str, str]:
        """The account's local day and month at ``now`` (spend caps, bundles)."""
        # UTC offsets change on whole minutes: one computation per zone and minute.
        key = (timezone, int(now) // 60)
        cache = _PERIOD_CACHE
        found = cache.get(key)
        if found is None:
            local = datetime.fromtimestamp(now, directory._zone_by_name(timezone))
            month = f"{local.year:04d}-{local.month:02d}"
            found = (f"{month}-{local.day:02d}", month)
            if len(cache) > 10_000:
                cache.clear()
            cache[key] = found
        return found

    def _deadline_ms(self, request: ChargingRequest, now: float, grants: Sequence[int]) -> int:
        if request.deadline_s is not None:
            silent = request.deadline_s
        else:
            longest = max(grants, default=0)
            silent = 2 * min(self.settings.validity_time_s, max(longest, 1))
        return int((now + silent + self.settings.reap_grace_s) * 1000)

    def _remember(self, view: SessionView) -> None:
        sessions = self._sessions
        sessions[view.session_id] = view
        sessions.move_to_end(view.session_id)
        while len(sessions) > self.settings.session_cache_size:
            sessions.popitem(last=False)

    def _remember_finished(self, request: ChargingRequest, outcome: Outcome, now: float) -> None:
        finished = self._finished
        finished[(request.session_id, request.request_number)] = (now, outcome)
        horizon = now - self.settings.duplicate_window_s
        while finished:
            oldest = next(iter(finished.values()))
            if oldest[0] >= horizon and len(finished) <= self.settings.session_cache_size:
                break
            finished.popitem(last=False)

    def _recent(self, request: ChargingRequest) -> Outcome | None:
        found = self._finished.get((request.session_id, request.request_number))
        if found is None:
            return None
        outcome = found[1]
        if isinstance(outcome, Grant):
            return Grant(**{**_fields(outcome), "duplicate": True})
        return Denial(outcome.code, outcome.message, outcome.account_id, duplicate=True)

    def _bundle_period(self, price: CallPrice, day: str, month: str) -> str | None:
        if price.bundle is None:
            return None
        return day if price.bundle.period is BundlePeriod.DAY else month

    def _wants(
        self,
        view: SessionView,
        units: Sequence[UnitRequest],
        period: str | None,
        adding: bool,
    ) -> tuple[list[_Want], list[Hold], list[BundleHold]]:
        settings = self.settings
        price = view.price
        bundle = price.bundle
        wants: list[_Want] = []
        holds: list[Hold] = []
        bundle_holds: list[BundleHold] = []
        for unit in units:
            service = view.services.get(unit.key)
            if service is None:
                service = view.services[unit.key] = ServiceUse(unit.rating_group, unit.service_id)
            used = service.used_s + (unit.used_s if adding else 0)
            if adding and unit.total_used_s is not None:
                # Peers that report totals: never count backwards (a late interim).
                used = max(service.used_s, unit.total_used_s)
            asked = unit.requested_s if unit.requested_s is not None else settings.default_grant_s
            want = max(0, min(asked, settings.max_grant_s))
            if bundle is None or period is None:
                assumed = 0
            elif service.bundle_short or self._bundle_short.get(
                (view.account_id, bundle.bundle_id, period)
            ):
                assumed = service.bundle_s
            else:
                assumed = price.billed_seconds(used + want)
            keep = price.cost(used, service.bundle_s)
            desired = price.cost(used + want, assumed)
            # The least worth granting: the first block on a new call, else one increment.
            step = price.base_terms.first_block_s if used == 0 else price.base_terms.increment_s
            minimum = price.cost(used + max(step, 1), assumed) if want else keep
            holds.append(Hold(unit.key, max(desired, keep), max(minimum, keep), keep))
            if bundle is not None and period is not None:
                bundle_holds.append(
                    BundleHold(
                        bundle.bundle_id,
                        period,
                        bundle.seconds,
                        desired_s=max(assumed, service.bundle_s),
                        keep_s=min(service.bundle_s, price.billed_seconds(used)),
                    )
                )
            wants.append(
                _Want(unit.key, unit.rating_group, unit.service_id, used, want, desired, assumed)
            )
        return wants, holds, bundle_holds

    def _grants(
        self, view: SessionView, wants: Sequence[_Want], result: StepResult, now: float
    ) -> tuple[UnitGrant, ...]:
        """The answer of a hold step: pure in the view's price, the wants and the result."""
        price = view.price
        grants: list[UnitGrant] = []
        for index, want in enumerate(wants):
            held = result.holds[index] if index < len(result.holds) else 0
            reason = result.hold_reasons[index] if index < len(result.hold_reasons) else None
            bundle_s = result.bundle_holds[index] if index < len(result.bundle_holds) else 0
            cap = want.used_s + want.want_s
            affordable = price.max_duration(held, cap, bundle_s)
            # A reason: the store could not hold one more step beyond what was used. The rest
            # of an increment already begun is owed, not credit: granting it at every
            # interim would keep a call without money up for ever.
            granted = max(0, affordable - want.used_s) if reason is None else 0
            service = view.services.get(want.key)
            if service is not None:
                service.granted_s = granted
                service.bundle_s = bundle_s
                service.bundle_short = bundle_s < want.bundle_s
            denial = None
            if want.want_s and granted == 0:
                denial = (
                    _DENY_CODES.get(reason, DenialCode.CREDIT_LIMIT_REACHED)
                    if reason
                    else (DenialCode.CREDIT_LIMIT_REACHED)
                )
            money_limited = held < want.desired_micros
            final = bool(want.want_s) and money_limited and granted < want.want_s
            grants.append(
                UnitGrant(
                    rating_group=want.rating_group,
                    service_id=want.service_id,
                    granted_s=granted,
                    validity_s=self.settings.validity_time_s,
                    final=final or denial is not None,
                    denial=denial,
                )
            )
        return tuple(grants)

    @staticmethod
    def _context(wants: Sequence[_Want]) -> bytes:
        return _pack(
            [
                [
                    w.key,
                    w.rating_group,
                    w.service_id,
                    w.used_s,
                    w.want_s,
                    w.desired_micros,
                    w.bundle_s,
                ]
                for w in wants
            ]
        )

    @staticmethod
    def _wants_from_context(context: bytes) -> list[_Want]:
        return [_Want(*item) for item in msgpack.unpackb(context, raw=False)]

    async def _view(self, directory: Directory, request: ChargingRequest) -> SessionView | None:
        view = self._sessions.get(request.session_id)
        if view is not None:
            return view
        account_id: str | None = None
        found = self._identify(directory, request)
        if found is not None:
            account_id = found.account.account_id
        else:
            account_id = await self.store.find_session_account(request.session_id)
        if account_id is None:
            return None
        session = await self.store.get_session(account_id, request.session_id)
        if session is None:
            return None
        view = SessionView.decode(session.state)
        self._remember(view)
        return view

    # -- INITIAL -------------------------------------------------------------------------

    async def start(self, request: ChargingRequest) -> Outcome:
        """Open a session: identify, price, hold the first grant."""
        recent = self._recent(request)
        if recent is not None:
            return recent
        if request.called and self._uncharged(request):
            return self._not_applicable(request)
        directory = self._directory()
        now = self.clock()
        found = self._identify(directory, request)
        if found is None:
            log.info("denied", reason="user_unknown", session_id=request.session_id)
            return Denial(DenialCode.USER_UNKNOWN, "no account for this subscriber")
        account = found.account
        status = directory.account_status(account)
        if status is not AccountStatus.ACTIVE:
            code = (
                DenialCode.ACCOUNT_CLOSED
                if status is AccountStatus.CLOSED
                else DenialCode.ACCOUNT_SUSPENDED
            )
            log.info(
                "denied",
                reason=code.value,
                session_id=request.session_id,
                account=account.account_id,
            )
            return Denial(code, f"account {status.value}", account.account_id)
        called_raw = found.called if found.called is not None else (request.called or "")
        try:
            called = directory.dial_plan.normalize(called_raw)
        except NumberFormatError as exc:
            log.info(
                "denied",
                reason="invalid_number",
                session_id=request.session_id,
                account=account.account_id,
            )
            return Denial(DenialCode.INVALID_NUMBER, str(exc), account.account_id)
        calling = _calling(directory, request)
        pending: PendingCheck | None = None
        if self.fraud is not None:
            pending = self.fraud.screen(
                _attempt(request, account.account_id, called, now, directory, calling),
                fold=self.fold_fraud,
            )
            if pending.folded is None:
                verdict = await self.fraud.complete(pending)
                pending = None
            else:
                verdict = pending.screened
            denial = self._fraud_denial(verdict, request)
            if denial is not None:
                return denial
        try:
            outcome = await self._start_checked(
                request, directory, account, called, calling, now, pending
            )
        except _FraudRefused as refused:
            return refused.denial
        if self.fraud is not None and isinstance(outcome, Denial) and not outcome.duplicate:
            # Refused after the fraud check counted it: it leaves the live calls.
            self.fraud.submit_end(
                CallUsage(
                    account.account_id, request.session_id, called, now, final=True, connected=False
                )
            )
        return outcome

    @staticmethod
    def _fraud_denial(verdict: Verdict, request: ChargingRequest) -> Denial | None:
        hit = verdict.refusal
        if hit is None:
            return None
        code = (
            DenialCode.DESTINATION_BLOCKED
            if hit.refusal is Refusal.DESTINATION
            else DenialCode.FRAUD_SUSPECTED
        )
        log.info(
            "denied",
            reason=code.value,
            rule=hit.rule_id,
            session_id=request.session_id,
            account=verdict.account_id,
        )
        return Denial(code, hit.message, verdict.account_id)

    async def _fraud_first(self, pending: PendingCheck | None, request: ChargingRequest) -> None:
        """Run the fraud counter step that was to ride in the hold on its own, because the
        hold will not run (or must wait); raises ``_FraudRefused`` when the verdict refuses."""
        if pending is None or self.fraud is None:
            return
        denial = self._fraud_denial(await self.fraud.complete(pending), request)
        if denial is not None:
            raise _FraudRefused(denial)

    async def _fraud_folded(
        self,
        pending: PendingCheck,
        result: StepResult,
        request: ChargingRequest,
        view: SessionView,
        now: float,
    ) -> None:
        """The verdict of the counter step that rode in the hold; raises ``_FraudRefused``."""
        assert self.fraud is not None
        verdict = self.fraud.conclude(pending, result.gate)
        denial = self._fraud_denial(verdict, request)
        if denial is None:
            if result.status is not StepStatus.GATED:
                return
            # The gate trips exactly when the verdict refuses (fraud.engine); should the two
            # ever disagree, the call is refused with nothing held, never granted.
            log.error("fraud gate tripped without a refusal", session_id=request.session_id)
            denial = Denial(DenialCode.FRAUD_SUSPECTED, "fraud gate", view.account_id)
        elif result.status is StepStatus.OK:
            # Refused by a rule the gate did not see: end the session just opened, so that
            # nothing stays held (the same guarantee the gate gives).
            log.error("fraud refusal after the hold", session_id=request.session_id)
            await self._close(
                view.copy(),
                request.request_number + 1,
                now,
                CdrKind.CALL,
                "fraud",
                "ocsd",
                expected_version=request.request_number,
            )
        raise _FraudRefused(denial)

    async def _start_checked(
        self,
        request: ChargingRequest,
        directory: Directory,
        account: Account,
        called: str,
        calling: str,
        now: float,
        pending: PendingCheck | None = None,
    ) -> Outcome:
        """Rate, route and hold a call the fraud checks let through (or, with ``pending``,
        whose fraud counter step is to ride in the hold)."""
        start = self._start_time(request, now)
        zone = directory.zone(account)
        weekday, second = local_position(int(start), zone)
        chain = directory.chain(account)
        routing = self.routing if self.routing is not None and self.routing.enabled else None
        if routing is not None:
            # Routing admits the call (a carrier slot, a CPS token) before the hold: the fraud
            # checks must have let it through by then.
            await self._fraud_first(pending, request)
            pending = None
        resolution = routing.resolve(called) if routing is not None else None
        rated_number = resolution.rating_number if resolution is not None else called
        try:
            price = directory.rater.price(chain, rated_number, int(start), weekday, second)
        except RatingError as exc:
            await self._fraud_first(pending, request)
            code = _RATING_CODES[exc.reason]
            log.info(
                "denied",
                reason=code.value,
                session_id=request.session_id,
                account=account.account_id,
                detail=str(exc),
            )
            return Denial(code, str(exc), account.account_id)
        decision: RouteDecision | None = None
        if routing is not None and resolution is not None:
            decision = await routing.authorize(
                request.session_id,
                account.account_id,
                account.plan_id,
                calling,
                int(start),
                price,
                resolution,
                now,
            )
            if (
                not decision.ok
                and decision.no_route is NoRouteReason.NO_PLAN
                and not routing.settings.require_plan
            ):
                decision = None  # no route plan applies: the call goes unrouted
            elif not decision.ok:
                reason = decision.no_route.value if decision.no_route else "no_route"
                log.info(
                    "denied",
                    reason="no_route",
                    detail=reason,
                    session_id=request.session_id,
                    account=account.account_id,
                )
                return Denial(DenialCode.NO_ROUTE, reason, account.account_id)
        view = SessionView(
            session_id=request.session_id,
            account_id=account.account_id,
            version=request.request_number,
            price=price,
            start_ms=int(start * 1000),
            timezone=account.timezone,
            currency=account.currency,
            tenant_path=tuple(p.seller for p in chain),
            protocol=request.protocol,
            peer=request.peer,
            calling_raw=request.calling or "",
            called_raw=request.called or "",
            calling=calling,
            caller_ip=request.caller_ip,
            diversion=request.diversion,
            extra=dict(request.extra),
        )
        if decision is not None:
            view.extra[LEGS_KEY] = Routing.legs_text(decision)
            if resolution is not None and resolution.ported:
                view.extra["dialled"] = called
                if resolution.ported_carrier:
                    view.extra["ported_carrier"] = resolution.ported_carrier
        day, month = self._periods(directory, account.timezone, now)
        period = self._bundle_period(price, day, month)
        wants, holds, bundle_holds = self._wants(view, request.units, period, adding=False)
        provisional = self._deadline_ms(request, now, [w.want_s for w in wants])
        step = Step(
            kind=StepKind.HOLD,
            account_id=account.account_id,
            session_id=request.session_id,
            request_number=request.request_number,
            now_ms=int(now * 1000),
            day_key=day,
            month_key=month,
            holds=tuple(holds),
            bundle_holds=tuple(bundle_holds),
            new_session=True,
            state=view.encode(),
            deadline_ms=provisional,
            context=self._context(wants),
            tombstone_ttl_ms=self.settings.duplicate_window_s * 1000,
            # An opening request repeated after its session closed (a CCR-I retransmitted
            # after a failover, a RADIUS Start replayed from a proxy's detail file) must not
            # open it again; within the duplicate window the tombstone says so anyway.
            closed_ttl_ms=self.settings.closed_horizon_s * 1000 if request.repeated else 0,
        )
        if pending is not None and pending.folded is not None:
            step.gate = StepGate(*pending.folded)
        try:
            result = await self._step(step)
        except BackendUnavailable as exc:
            if pending is not None and self.fraud is not None:
                # The counters could not be read either: the fraud policy for that decides.
                denial = self._fraud_denial(self.fraud.unavailable(pending, str(exc)), request)
                if denial is not None:
                    raise _FraudRefused(denial) from exc
            raise
        if pending is not None:
            await self._fraud_folded(pending, result, request, view, now)
        outcome = self._hold_outcome(view, wants, result, request, now, period)
        if decision is not None and routing is not None:
            if isinstance(outcome, Grant) and not outcome.duplicate:
                return replace(outcome, routes=decision)
            if isinstance(outcome, Denial) and not outcome.duplicate:
                routing.release(request.session_id, now)
        return outcome

    def _hold_outcome(
        self,
        view: SessionView,
        wants: Sequence[_Want],
        result: StepResult,
        request: ChargingRequest,
        now: float,
        period: str | None,
    ) -> Outcome:
        if result.status is StepStatus.DUPLICATE:
            if result.session_state:
                view = SessionView.decode(result.session_state)
            wants = self._wants_from_context(result.context)
            grants = self._grants(view, wants, result, now)
            return Grant(
                grants,
                account_id=view.account_id,
                currency=view.currency,
                balance_micros=result.balance_micros,
                duplicate=True,
            )
        if result.status is StepStatus.UNKNOWN_SESSION:
            self._sessions.pop(request.session_id, None)
            return Denial(DenialCode.UNKNOWN_SESSION, "no such session", view.account_id)
        if result.status is StepStatus.ALREADY_CLOSED:
            # The opening request of a session the store remembers closed, repeated: nothing
            # was held, the call it opened is over (and charged). Answered like any request
            # on a closed session; repeats of it are answered from memory.
            log.debug(
                "denied",
                reason="session_closed",
                session_id=request.session_id,
                account=view.account_id,
                request_number=request.request_number,
            )
            denial = Denial(DenialCode.UNKNOWN_SESSION, "session already closed", view.account_id)
            self._remember_finished(request, denial, now)
            return denial
        if result.status is StepStatus.DENIED:
            assert result.reason is not None
            code = _DENY_CODES[result.reason]
            log.info(
                "denied",
                reason=code.value,
                store_reason=result.reason.value,
                session_id=request.session_id,
                account=view.account_id,
            )
            return Denial(code, result.reason.value, view.account_id)
        if result.status is StepStatus.STALE:
            raise _Stale(result)
        grants = self._grants(view, wants, result, now)
        view.version = request.request_number
        bundle = view.price.bundle
        if bundle is not None and period is not None:
            short = any(s.bundle_short for s in view.services.values())
            self._bundle_short[(view.account_id, bundle.bundle_id, period)] = short
        self._remember(view)
        for grant in grants:
            if grant.denial is not None or grant.final:
                log.info(
                    "final units" if grant.denial is None else "denied",
                    reason=(grant.denial or DenialCode.CREDIT_LIMIT_REACHED).value,
                    session_id=request.session_id,
                    account=view.account_id,
                    rating_group=grant.rating_group,
                    granted_s=grant.granted_s,
                )
        return Grant(
            grants,
            account_id=view.account_id,
            currency=view.currency,
            balance_micros=result.balance_micros,
        )

    # -- UPDATE --------------------------------------------------------------------------

    async def update(self, request: ChargingRequest) -> Outcome:
        """Count what was used and hold the next grant."""
        for attempt in range(2):
            directory = self._directory()
            view = await self._view(directory, request)
            if view is None:
                recent = self._recent(request)
                if recent is not None:
                    return recent
                if request.called and self._uncharged(request):
                    return Grant(not_applicable=True)
                log.info("denied", reason="unknown_session", session_id=request.session_id)
                return Denial(DenialCode.UNKNOWN_SESSION, "no such session")
            now = self.clock()
            day, month = self._periods(directory, view.timezone, now)
            period = self._bundle_period(view.price, day, month)
            working = view.copy()
            if working.answer_ms is None and request.answer_time is not None:
                working.answer_ms = int(request.answer_time * 1000)
            _merge_reports(working, request)
            wants, holds, bundle_holds = self._wants(working, request.units, period, adding=True)
            for want in wants:
                working.services[want.key].used_s = want.used_s
            working.version = request.request_number
            step = Step(
                kind=StepKind.HOLD,
                account_id=view.account_id,
                session_id=request.session_id,
                request_number=request.request_number,
                now_ms=int(now * 1000),
                day_key=day,
                month_key=month,
                holds=tuple(holds),
                bundle_holds=tuple(bundle_holds),
                expected_version=view.version,
                state=working.encode(),
                deadline_ms=self._deadline_ms(request, now, [w.want_s for w in wants]),
                context=self._context(wants),
                tombstone_ttl_ms=self.settings.duplicate_window_s * 1000,
            )
            result = await self._step(step)
            try:
                return self._hold_outcome(working, wants, result, request, now, period)
            except _Stale as stale:
                self._sessions.pop(request.session_id, None)
                if attempt == 0 and stale.result.session_state:
                    self._remember(SessionView.decode(stale.result.session_state))
        return Denial(DenialCode.SERVICE_UNAVAILABLE, "session changed concurrently")

    # -- TERMINATE -----------------------------------------------------------------------

    def _cdr(
        self,
        view: SessionView,
        kind: CdrKind,
        request_number: int,
        end_ms: int,
        hangup_cause: str,
        hangup_side: str,
    ) -> tuple[Cdr, int]:
        price = view.price
        total_used = 0
        charge = 0
        billed = 0
        bundle_s = 0
        level_totals: list[int] = [0] * len(price.levels)
        rating = None
        for service in view.services.values():
            rating = price.rate(service.used_s, service.bundle_s, trace=rating is None)
            total_used += service.used_s
            charge += rating.charge_micros
            billed += rating.billed_s
            bundle_s += rating.bundle_s
            for index, level in enumerate(rating.levels):
                level_totals[index] += level.amount_micros
        if rating is None:
            rating = price.rate(0, 0)
        account_level = price.account_level
        base = next(level for level in reversed(price.levels) if level.rate is not None)
        assert base.rate is not None and base.terms is not None
        flags: list[str] = []
        if kind is CdrKind.REAPED:
            flags.append("reaped")
        if total_used == 0:
            flags.append("no_usage")
        if rating.below_cost_level is not None:
            flags.append("below_cost")
        levels = tuple(
            LevelAmount(lv.seller, lv.buyer, lv.plan_id, lv.currency, level_totals[i], lv.fx_text)
            for i, lv in enumerate(price.levels)
        )
        cdr = Cdr(
            cdr_id=new_cdr_id(end_ms),
            kind=kind,
            session_id=view.session_id,
            request_number=request_number,
            account_id=view.account_id,
            tenant_path=view.tenant_path,
            protocol=view.protocol,
            peer=view.peer,
            node=self.node,
            start_ms=view.start_ms,
            end_ms=end_ms,
            answer_ms=view.answer_ms,
            timezone=view.timezone,
            duration_s=total_used,
            billed_s=billed,
            charge_micros=charge,
            currency=view.currency,
            calling_raw=view.calling_raw,
            called_raw=view.called_raw,
            calling=view.calling,
            called=price.number,
            diversion=view.diversion,
            caller_ip=view.caller_ip,
            prefix=base.rate.prefix,
            destination=base.rate.destination,
            deck_id=base.deck_id or "",
            deck_version=base.rate.version,
            rate_micros=base.terms.rate_micros,
            connect_fee_micros=base.terms.connect_fee_micros,
            bundle_id=price.bundle.bundle_id if price.bundle and bundle_s else "",
            bundle_s=bundle_s,
            fx_rate=account_level.fx_text,
            levels=levels,
            hangup_cause=hangup_cause,
            hangup_side=hangup_side,
            sip_status=_cause_code(hangup_cause, "SIP;cause="),
            q850_cause=_cause_code(hangup_cause, "Q.850;cause="),
            flags=tuple(flags),
            trace=rating.trace,
            extra={k: v for k, v in view.extra.items() if k != LEGS_KEY},
        )
        use = Routing.carrier_use(view.extra, total_used)
        if use is not None:
            cdr = replace(cdr, **use.fields)  # type: ignore[arg-type]
        return cdr, charge

    async def stop(self, request: ChargingRequest) -> Outcome:
        """End a session: debit its cost and queue its CDR atomically."""
        recent = self._recent(request)
        if recent is not None:
            return recent
        for attempt in range(2):
            directory = self._directory()
            view = await self._view(directory, request)
            if view is None:
                if request.called and self._uncharged(request):
                    return Grant(not_applicable=True)
                if request.identities or request.source_ip:
                    # A stop whose session we never saw (a lost start): rate and charge it
                    # once, as a one-off keyed by the same session and request number.
                    return await self._orphan_stop(request)
                log.info("denied", reason="unknown_session", session_id=request.session_id)
                return Denial(DenialCode.UNKNOWN_SESSION, "no such session")
            now = self.clock()
            working = view.copy()
            if working.answer_ms is None and request.answer_time is not None:
                working.answer_ms = int(request.answer_time * 1000)
            _merge_reports(working, request)
            self._count_final_usage(working, request)
            outcome = await self._close(
                working,
                request.request_number,
                now,
                CdrKind.CALL,
                request.hangup_cause,
                request.hangup_side,
                expected_version=view.version,
                end_time=request.end_time,
            )
            self._sessions.pop(request.session_id, None)
            if outcome is not None:
                self._remember_finished(request, outcome, now)
                return outcome
            if attempt == 1:
                break
        return Denial(DenialCode.SERVICE_UNAVAILABLE, "session changed concurrently")

    @staticmethod
    def _count_final_usage(view: SessionView, request: ChargingRequest) -> None:
        """Add the final report's usage; derive it from the end time if none was reported."""
        reported = False
        for unit in request.units:
            service = view.services.get(unit.key)
            if service is None:
                service = view.services[unit.key] = ServiceUse(unit.rating_group, unit.service_id)
            if unit.total_used_s is not None:
                service.used_s = max(service.used_s, unit.total_used_s)
                reported = True
            elif unit.used_s:
                service.used_s += unit.used_s
                reported = True
        if not reported and request.end_time is not None and view.answer_ms is not None:
            total = max(0, int(request.end_time - view.answer_ms / 1000))
            first = next(iter(view.services.values()), None)
            if first is not None:
                first.used_s = max(first.used_s, total)

    async def _orphan_stop(self, request: ChargingRequest) -> Outcome:
        """Charge a stop that arrives without its session, exactly once."""
        directory = self._directory()
        now = self.clock()
        found = self._identify(directory, request)
        if found is None:
            return Denial(DenialCode.USER_UNKNOWN, "no account for this subscriber")
        account = found.account
        called_raw = found.called if found.called is not None else (request.called or "")
        try:
            called = directory.dial_plan.normalize(called_raw)
        except NumberFormatError as exc:
            return Denial(DenialCode.INVALID_NUMBER, str(exc), account.account_id)
        used = 0
        for unit in request.units:
            used += unit.total_used_s if unit.total_used_s is not None else unit.used_s
        end = request.end_time if request.end_time is not None else now
        start = request.answer_time if request.answer_time is not None else end - used
        if request.event_time is not None:
            start = request.event_time
        zone = directory.zone(account)
        weekday, second = local_position(int(start), zone)
        chain = directory.chain(account)
        try:
            # The call happened: price it even if a reseller level now sells below cost.
            price = directory.rater.price(
                chain, called, int(start), weekday, second, check_margins=False
            )
        except RatingError as exc:
            return Denial(_RATING_CODES[exc.reason], str(exc), account.account_id)
        view = SessionView(
            session_id=request.session_id,
            account_id=account.account_id,
            version=request.request_number,
            price=price,
            start_ms=int(start * 1000),
            timezone=account.timezone,
            currency=account.currency,
            tenant_path=tuple(p.seller for p in chain),
            protocol=request.protocol,
            peer=request.peer,
            calling_raw=request.calling or "",
            called_raw=request.called or "",
            calling=request.calling or "",
            caller_ip=request.caller_ip,
            diversion=request.diversion,
            extra={**request.extra, "orphan_stop": "1"},
            services={"0": ServiceUse(0, None, used_s=used)},
            answer_ms=int(start * 1000),
        )
        cdr, charge = self._cdr(
            view,
            CdrKind.CALL,
            request.request_number,
            int(end * 1000),
            request.hangup_cause,
            request.hangup_side,
        )
        # The CDR id stays random (not derived from the session): the store queues one CDR per
        # money move, and a derived id would let the CDR table drop the record of a second
        # debit (after the horizon) instead of showing it.
        cdr = replace(cdr, flags=(*cdr.flags, "no_start"))
        day, month = self._periods(directory, account.timezone, now)
        step = Step(
            kind=StepKind.EVENT,
            account_id=account.account_id,
            session_id=request.session_id,
            request_number=request.request_number,
            now_ms=int(now * 1000),
            day_key=day,
            month_key=month,
            debit_micros=charge,
            require_funds=False,
            record=cdr.encode(),
            context=_pack([charge]),
            tombstone_ttl_ms=self.settings.duplicate_window_s * 1000,
            closed_ttl_ms=self.settings.closed_horizon_s * 1000,
            orphan_stop=True,
        )
        result = await self._step(step)
        if result.status is StepStatus.DENIED:
            assert result.reason is not None
            return Denial(_DENY_CODES[result.reason], result.reason.value, account.account_id)
        original: list[int] = []
        if result.status is StepStatus.DUPLICATE and result.context:
            # [charge] of an orphan stop, [charge, seconds(, 1 if ocsd ended it)] of a close
            original = msgpack.unpackb(result.context, raw=False)
        if result.status in (StepStatus.ALREADY_CLOSED, StepStatus.UNKNOWN_SESSION) or (
            len(original) > 2 and original[2]
        ):
            # Ended before (the reaper, a NAS restart, another stop): what was reported then
            # was charged; this stop's account of the call is not.
            log.warning(
                "stop of a closed session not charged",
                session_id=request.session_id,
                account=account.account_id,
                request_number=request.request_number,
                reported_charge=charge,
            )
            denial = Denial(
                DenialCode.UNKNOWN_SESSION, "session already closed", account.account_id
            )
            self._remember_finished(request, denial, now)
            return denial
        if original:
            charge = original[0]
        elif result.status is not StepStatus.DUPLICATE:
            log.info(
                "stop without start charged",
                session_id=request.session_id,
                account=account.account_id,
                charge=charge,
            )
        outcome = Grant(
            cost_micros=charge,
            debited_micros=result.debited_micros,
            currency=account.currency,
            balance_micros=result.balance_micros,
            account_id=account.account_id,
            duplicate=result.status is StepStatus.DUPLICATE,
        )
        self._remember_finished(request, outcome, now)
        return outcome

    @property
    def open_sessions(self) -> int:
        """Sessions this worker holds in memory."""
        return len(self._sessions)

    def has_session(self, session_id: str) -> bool:
        """Whether this worker holds an open session in memory."""
        return session_id in self._sessions

    def views_of_account(self, account_id: str) -> list[SessionView]:
        """Open sessions of an account this worker holds in memory."""
        return [v for v in self._sessions.values() if v.account_id == account_id]

    def sessions_of_peer(self, peer: str) -> list[str]:
        """Open sessions this worker holds for a peer (a NAS or a Diameter host)."""
        return [v.session_id for v in self._sessions.values() if v.peer == peer]

    async def close_session(
        self, session_id: str, account_id: str | None, cause: str, side: str = "ocsd"
    ) -> Outcome | None:
        """End an open session with what it used so far (peer reboot, administrative end)."""
        view = self._sessions.get(session_id)
        if view is None and account_id is not None:
            session = await self.store.get_session(account_id, session_id)
            view = SessionView.decode(session.state) if session is not None else None
        if view is None:
            return None
        outcome = await self._close(
            view.copy(),
            view.version + 1,
            self.clock(),
            CdrKind.CALL,
            cause,
            side,
            expected_version=view.version,
            by_ocsd=True,
        )
        self._sessions.pop(session_id, None)
        return outcome

    async def _close(
        self,
        view: SessionView,
        request_number: int,
        now: float,
        kind: CdrKind,
        hangup_cause: str,
        hangup_side: str,
        expected_version: int,
        end_time: float | None = None,
        by_ocsd: bool = False,
    ) -> Outcome | None:
        """Debit and queue the CDR; None when the session moved on (stale).

        ``by_ocsd``: ocsd ends the call (reaper, NAS restart) under a request number of its
        own, which the peer may use later: its context says so, and a late stop under that
        number is then told the session was closed, not given this close's answer.
        """
        end_ms = int((end_time if end_time is not None else now) * 1000)
        cdr, charge = self._cdr(view, kind, request_number, end_ms, hangup_cause, hangup_side)
        directory = self._directory()
        day, month = self._periods(directory, view.timezone, now)
        period = self._bundle_period(view.price, day, month)
        bundle_used: tuple[tuple[str, str, int], ...] = ()
        if view.price.bundle is not None and period is not None and cdr.bundle_s:
            bundle_used = ((view.price.bundle.bundle_id, period, cdr.bundle_s),)
        ended: list[int] = [charge, cdr.duration_s, 1] if by_ocsd else [charge, cdr.duration_s]
        context = _pack(ended)
        step = Step(
            kind=StepKind.CLOSE,
            account_id=view.account_id,
            session_id=view.session_id,
            request_number=request_number,
            now_ms=int(now * 1000),
            day_key=day,
            month_key=month,
            debit_micros=charge,
            bundle_used_s=bundle_used,
            expected_version=expected_version,
            record=cdr.encode(),
            context=context,
            tombstone_ttl_ms=self.settings.duplicate_window_s * 1000,
            closed_ttl_ms=self.settings.closed_horizon_s * 1000,
        )
        result = await self._step(step)
        if result.status is StepStatus.STALE:
            return None
        if result.status is StepStatus.UNKNOWN_SESSION:
            return Denial(DenialCode.UNKNOWN_SESSION, "no such session", view.account_id)
        if result.status is StepStatus.DENIED:
            assert result.reason is not None
            return Denial(_DENY_CODES[result.reason], result.reason.value, view.account_id)
        if result.status is StepStatus.DUPLICATE and result.context:
            original = msgpack.unpackb(result.context, raw=False)
            if len(original) > 2 and original[2] and not by_ocsd:
                # A stop under the number ocsd gave its own close (another worker reaped it).
                log.warning(
                    "stop of a closed session not charged",
                    session_id=view.session_id,
                    account=view.account_id,
                    request_number=request_number,
                    reported_charge=charge,
                )
                return Denial(DenialCode.UNKNOWN_SESSION, "session already closed", view.account_id)
            charge = original[0]
        if result.debited_micros < charge and result.status is StepStatus.OK:
            log.warning(
                "prepaid overrun",
                session_id=view.session_id,
                account=view.account_id,
                charge=charge,
                debited=result.debited_micros,
            )
        if self.fraud is not None and result.status is StepStatus.OK:
            self.fraud.submit_end(
                CallUsage(
                    view.account_id,
                    view.session_id,
                    view.price.number,
                    now,
                    spend_micros=charge,
                    seconds=cdr.duration_s,
                    final=True,
                    duration_s=cdr.duration_s,
                )
            )
        if self.routing is not None and result.status is StepStatus.OK:
            use = Routing.carrier_use(view.extra, cdr.duration_s)
            if use is not None:
                self.routing.finished(
                    view.session_id,
                    use,
                    cdr.duration_s,
                    hangup_cause,
                    now,
                    Routing.reported_pdd(view.extra),
                )
        units = tuple(
            UnitGrant(s.rating_group, s.service_id, 0, 0, True) for s in view.services.values()
        )
        return Grant(
            units,
            cost_micros=charge,
            debited_micros=result.debited_micros,
            currency=view.currency,
            balance_micros=result.balance_micros,
            account_id=view.account_id,
            duplicate=result.status is StepStatus.DUPLICATE,
        )

    # -- EVENT ---------------------------------------------------------------------------

    async def event(self, request: ChargingRequest) -> Outcome:
        """A one-off charge, refund, balance check or price enquiry."""
        recent = self._recent(request)
        if recent is not None:
            return recent
        if (
            request.called
            and request.action in (None, EventAction.DIRECT_DEBIT)
            and self._uncharged(request)
        ):
            return self._not_applicable(request)
        directory = self._directory()
        now = self.clock()
        found = self._identify(directory, request)
        if found is None:
            return Denial(DenialCode.USER_UNKNOWN, "no account for this subscriber")
        account = found.account
        called_raw = found.called if found.called is not None else (request.called or "")
        try:
            called = directory.dial_plan.normalize(called_raw)
        except NumberFormatError as exc:
            return Denial(DenialCode.INVALID_NUMBER, str(exc), account.account_id)
        start = self._start_time(request, now)
        zone = directory.zone(account)
        weekday, second = local_position(int(start), zone)
        # A ported number is rated, as a call to it is, at its routing number.
        routing = self.routing if self.routing is not None and self.routing.enabled else None
        resolution = routing.resolve(called) if routing is not None else None
        rated_number = resolution.rating_number if resolution is not None else called
        try:
            price = directory.rater.price(
                directory.chain(account), rated_number, int(start), weekday, second
            )
        except RatingError as exc:
            return Denial(_RATING_CODES[exc.reason], str(exc), account.account_id)
        seconds = sum((u.requested_s or 0) + u.used_s for u in request.units)
        messages = sum(u.units for u in request.units)
        # Time is priced like a call; a message costs what a one-second call costs (a
        # message deck has rate 0 and the price per message as its connection fee).
        cost = price.cost(seconds) if seconds else 0
        cost += messages * price.cost(1) if messages else 0
        action = request.action or EventAction.DIRECT_DEBIT
        if action is EventAction.PRICE_ENQUIRY:
            return Grant(cost_micros=cost, currency=account.currency, account_id=account.account_id)
        screened = False
        if self.fraud is not None and action is EventAction.DIRECT_DEBIT:
            # A one-off charge is a call as the fraud rules see it (lists, velocity, spend),
            # screened before any money moves; refunds, checks and enquiries move none.
            verdict = await self.fraud.complete(
                self.fraud.screen(_attempt(request, account.account_id, called, now, directory))
            )
            denial = self._fraud_denial(verdict, request)
            if denial is not None:
                return denial
            screened = True
        if action is EventAction.CHECK_BALANCE:
            state = await self.store.get_account(account.account_id)
            available = state.available_micros if state else 0
            return Grant(
                cost_micros=cost,
                currency=account.currency,
                balance_micros=state.balance_micros if state else None,
                enough_credit=available >= cost,
                account_id=account.account_id,
            )
        view = SessionView(
            session_id=request.session_id,
            account_id=account.account_id,
            version=request.request_number,
            price=price,
            start_ms=int(start * 1000),
            timezone=account.timezone,
            currency=account.currency,
            tenant_path=tuple(p.seller for p in directory.chain(account)),
            protocol=request.protocol,
            peer=request.peer,
            calling_raw=request.calling or "",
            called_raw=request.called or "",
            calling=request.calling or "",
            caller_ip=request.caller_ip,
            diversion=request.diversion,
            extra=dict(request.extra),
            services={"0": ServiceUse(0, None, used_s=seconds)},
        )
        if resolution is not None and resolution.ported:
            view.extra["dialled"] = called
            if resolution.ported_carrier:
                view.extra["ported_carrier"] = resolution.ported_carrier
        kind = CdrKind.REFUND if action is EventAction.REFUND else CdrKind.EVENT
        cdr, _ = self._cdr(
            view, kind, request.request_number, int(now * 1000), request.hangup_cause, ""
        )
        debit = -cost if action is EventAction.REFUND else cost
        cdr = Cdr(
            **{
                **_fields(cdr),
                "charge_micros": debit,
                "routing_number": rated_number if rated_number != called else "",
                "extra": {**cdr.extra, "units": str(messages)},
            }
        )
        day, month = self._periods(directory, account.timezone, now)
        step = Step(
            kind=StepKind.EVENT,
            account_id=account.account_id,
            session_id=request.session_id,
            request_number=request.request_number,
            now_ms=int(now * 1000),
            day_key=day,
            month_key=month,
            debit_micros=debit,
            require_funds=True,
            record=cdr.encode(),
            context=_pack([debit]),
            tombstone_ttl_ms=self.settings.duplicate_window_s * 1000,
        )
        result = await self._step(step)
        if screened and self.fraud is not None and result.status is not StepStatus.DUPLICATE:
            # It ends as it starts: what it cost, or that it was refused.
            charged = result.status is StepStatus.OK
            self.fraud.submit_end(
                CallUsage(
                    account.account_id,
                    request.session_id,
                    called,
                    now,
                    spend_micros=debit if charged else 0,
                    seconds=seconds if charged else 0,
                    final=True,
                    duration_s=seconds if charged else 0,
                    connected=charged,
                )
            )
        if result.status is StepStatus.DENIED:
            assert result.reason is not None
            code = _DENY_CODES[result.reason]
            log.info(
                "denied",
                reason=code.value,
                store_reason=result.reason.value,
                session_id=request.session_id,
                account=account.account_id,
            )
            return Denial(code, result.reason.value, account.account_id)
        outcome = Grant(
            cost_micros=abs(debit),
            debited_micros=result.debited_micros,
            currency=account.currency,
            balance_micros=result.balance_micros,
            account_id=account.account_id,
            duplicate=result.status is StepStatus.DUPLICATE,
        )
        self._remember_finished(request, outcome, now)
        return outcome

    async def end_sessions_of_peer(self, peer: str, cause: str, side: str) -> int:
        """End every open session of a peer (a NAS that restarted: Accounting-On/Off) with
        what each used so far, those opened by other workers and before a restart included;
        return how many were ended."""
        owners: dict[str, str | None] = dict.fromkeys(self.sessions_of_peer(peer))
        for session in await self.store.open_sessions(PEER_SCAN_LIMIT):
            if session.session_id in owners:
                continue
            try:
                view = SessionView.decode(session.state)
            except (ValueError, TypeError):
                continue
            if view.peer == peer:
                owners[session.session_id] = session.account_id
        ended = 0
        for session_id, account_id in owners.items():
            outcome = await self.close_session(session_id, account_id, cause, side)
            ended += isinstance(outcome, Grant)
        return ended

    # -- reaper --------------------------------------------------------------------------

    async def reap(self) -> int:
        """End sessions whose peers went silent; return how many were ended."""
        now = self.clock()
        expired: list[OpenSession] = await self.store.expired_sessions(
            int(now * 1000), self.settings.reap_batch
        )
        ended = 0
        for session in expired:
            try:
                view = SessionView.decode(session.state)
            except (ValueError, TypeError) as exc:
                log.error(
                    "undecodable session state", session_id=session.session_id, error=str(exc)
                )
                continue
            outcome = await self._close(
                view,
                session.version + 1,
                now,
                CdrKind.REAPED,
                "session timeout",
                "ocsd",
                expected_version=session.version,
                by_ocsd=True,
            )
            self._sessions.pop(session.session_id, None)
            if isinstance(outcome, Grant):
                ended += 1
                log.info(
                    "session reaped",
                    session_id=session.session_id,
                    account=session.account_id,
                    charge=outcome.cost_micros,
                )
        return ended


class _FraudRefused(Exception):
    def __init__(self, denial: Denial) -> None:
        super().__init__("refused by the fraud checks")
        self.denial = denial


class _Stale(Exception):
    def __init__(self, result: StepResult) -> None:
        super().__init__("stale session view")
        self.result = result


def _calling(directory: Directory, request: ChargingRequest) -> str:
    """The calling number normalised, else as received."""
    if not request.calling:
        return ""
    try:
        return directory.dial_plan.normalize(request.calling)
    except NumberFormatError:
        return request.calling


def _attempt(
    request: ChargingRequest,
    account_id: str,
    called: str,
    now: float,
    directory: Directory,
    calling: str | None = None,
) -> CallAttempt:
    """A call (or a one-off charge) as the fraud checks see it."""
    return CallAttempt(
        account_id=account_id,
        called=called,
        now=now,
        session_id=request.session_id,
        calling=_calling(directory, request) if calling is None else calling,
        source_ip=request.source_ip or "",
        caller_ip=request.caller_ip,
        peer=request.peer,
    )


def _dialled(called: str) -> str:
    """A called address as dialled: ``tel:+112;phone-context=x`` and ``sip:112@host`` are
    ``112``."""
    return user_part(called).removeprefix("+")


def _merge_reports(view: SessionView, request: ChargingRequest) -> None:
    """Keep what accounting says about the route used (carrier, trunk, route index) and its
    post-dial delay."""
    for key in REPORT_KEYS:
        value = request.extra.get(key)
        if value:
            view.extra[key] = value


def _cause_code(cause: str, kind: str) -> int:
    """The number in a hang-up cause of this kind (``SIP;cause=486``, ``Q.850;cause=16``)."""
    if not cause.startswith(kind):
        return 0
    digits = cause[len(kind) :].partition(";")[0]
    return int(digits) if digits.isdigit() and len(digits) <= 4 else 0


def _fields(instance: Any) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in instance.__slots__}


__all__ = ["ChargingService", "ChargingSettings", "SessionView"]
