"""Routing in the authorization: the charging service's side of least-cost and quality routing.

When ``lcr.enabled`` is set, an initial request is, after identification: looked up in the
portability table (the call is rated and routed on where the number now lives), priced, then
routed (carriers ranked, the margin checked at every reseller level), then admitted (capacity
counters: one round trip to the routing state). A call with no route is refused with its own
reason. The offered routes go back to the switch with the grant and are kept with the session,
so that the CDR can name the carrier that carried the call and its cost next to the sell price,
and the call's outcome feeds the quality statistics when it ends.

A routing-state failure (Redis away) lets the call through without the capacity check:
capacity protects carriers, it is not money.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

from lcr.decision import NumberResolution, RouteDecision
from lcr.delivery import RouteQuery, route_json
from lcr.leg import CarrierLeg, decode_legs, encode_legs, pick_leg
from lcr.quality import CallOutcome, CallResult, QualityBoard, classify_q850, classify_sip
from lcr.router import Router, RouteRequest
from lcr.settings import LcrSettings
from lcr.state import HotStoreUnavailable, RoutingStateStore
from ocsd.directory import Candidate, Directory
from ocsd.logs import get_logger
from ocsd.master import IdentityKind
from rating.dialplan import NumberFormatError
from rating.engine import CallPrice, RatingError, local_position

log = get_logger("routing")

LEGS_KEY = "lcr_legs"
"""Session extra holding the offered routes."""
REPORT_KEYS = ("route_carrier", "route_trunk", "route_used", "route_pdd_ms")
"""Session extras a protocol adapter fills from accounting (what the switch says it used and
the post-dial delay it saw)."""
MAX_PENDING_FINISHES = 10_000


@dataclass(frozen=True, slots=True)
class CarrierUse:
    """The carrier side of a finished call, for the CDR and the statistics."""

    leg: CarrierLeg
    fields: dict[str, object]


class Routing:
    """The router in force, the shared routing state, and the quality board."""

    def __init__(
        self, settings: LcrSettings, state: RoutingStateStore, board: QualityBoard | None = None
    ) -> None:
        self.settings = settings
        self.state = state
        self.board = board or QualityBoard()
        self._router: Router | None = None
        self._finishing: set[asyncio.Task[None]] = set()

    @property
    def router(self) -> Router | None:
        """The router in force; swapped in whole when routing master data changes."""
        return self._router

    @router.setter
    def router(self, router: Router | None) -> None:
        # The router reads the board the quality refresh writes, whoever built it.
        if router is not None:
            router.quality = self.board
        self._router = router

    @property
    def enabled(self) -> bool:
        """Whether calls are routed."""
        return self.settings.enabled and self.router is not None

    def resolve(self, number: str) -> NumberResolution:
        """The portability lookup of a dialled number."""
        if self.router is None:
            return NumberResolution(number, number)
        return self.router.resolve(number)

    async def authorize(
        self,
        session_id: str,
        account_id: str,
        tariff_plan_id: str,
        calling: str,
        at: int,
        price: CallPrice,
        resolution: NumberResolution,
        now: float,
    ) -> RouteDecision:
        """Rank the carriers for a call and take its capacity slot."""
        assert self.router is not None
        decision = self.router.route(
            RouteRequest(
                account_id=account_id,
                number=resolution.rating_number,
                at=at,
                tariff_plan_id=tariff_plan_id,
                calling=calling,
                price=price,
                seed=zlib.crc32(session_id.encode()),
                resolution=resolution,
            )
        )
        if not decision.ok:
            return decision
        try:
            admission = await self.state.admit(session_id, decision.routes, now)
        except HotStoreUnavailable as exc:
            log.warning(
                "routing state unavailable; capacity not checked",
                error=str(exc),
                session_id=session_id,
            )
            return decision
        return decision.without(admission.removed)

    def query(
        self, directory: Directory, query: RouteQuery, now: float
    ) -> tuple[int, dict[str, object]]:
        """``GET /v1/route``: the ranked routes of a call, nothing held (HTTP status, body)."""
        if self.router is None:
            return 503, {"error": "routing is not enabled"}
        account = directory.accounts.get(query.account) if query.account else None
        if account is None and query.calling:
            digits = query.calling.strip().removeprefix("+")
            found = directory.identify([Candidate(IdentityKind.E164, digits)])
            account = found.account if found else None
        if account is None:
            return 404, {"error": "no account: give account= or a known from="}
        try:
            number = directory.dial_plan.normalize(query.to)
        except NumberFormatError as exc:
            return 400, {"error": str(exc)}
        at = int(query.at if query.at is not None else now)
        resolution = self.router.resolve(number)
        weekday, second = local_position(at, directory.zone(account))
        try:
            price = directory.rater.price(
                directory.chain(account), resolution.rating_number, at, weekday, second
            )
        except RatingError as exc:
            return 200, {"ok": False, "no_route": exc.reason.value, "error": str(exc)}
        decision = self.router.route(
            RouteRequest(
                account_id=account.account_id,
                number=resolution.rating_number,
                at=at,
                tariff_plan_id=account.plan_id,
                calling=query.calling,
                price=price,
                seed=zlib.crc32(query.session_id.encode()) if query.session_id else 0,
                resolution=resolution,
            )
        )
        return 200, route_json(decision)

    @staticmethod
    def reported_pdd(extra: dict[str, str]) -> int | None:
        """The post-dial delay the switch reported for the call (ms), if any."""
        text = extra.get("route_pdd_ms", "")
        return int(text) if text.isdigit() else None

    @staticmethod
    def legs_text(decision: RouteDecision) -> str:
        """The offered routes as kept with the session."""
        return encode_legs(decision)

    @staticmethod
    def carrier_use(extra: dict[str, str], duration_s: int) -> CarrierUse | None:
        """The leg that carried a call (as reported, else the first offered) and its CDR fields."""
        text = extra.get(LEGS_KEY)
        if not text:
            return None
        try:
            legs = decode_legs(text)
        except ValueError:
            return None
        used = extra.get("route_used", "")
        leg = pick_leg(
            legs,
            carrier_id=extra.get("route_carrier", ""),
            trunk_id=extra.get("route_trunk", ""),
            index=int(used) if used.isdigit() else 0,
        )
        if leg is None:
            return None
        return CarrierUse(leg, leg.cdr_fields(duration_s))

    def finished(
        self,
        session_id: str,
        use: CarrierUse,
        duration_s: int,
        hangup_cause: str,
        now: float,
        pdd_ms: int | None = None,
    ) -> None:
        """Free the call's slot and count its outcome, off the answer's path."""
        outcome = CallOutcome(
            carrier_id=use.leg.carrier_id,
            group=use.leg.group,
            result=classify(hangup_cause, duration_s),
            ended_at=now,
            duration_s=duration_s,
            probe=use.leg.probe,
            call_id=session_id,
            pdd_ms=pdd_ms,
        )
        self._schedule(outcome)

    def release(self, session_id: str, now: float) -> None:
        """Free the slot of a call refused after admission (counts no outcome)."""
        self._schedule(CallOutcome("", "", CallResult.NETWORK_FAILURE, now, call_id=session_id))

    def _schedule(self, outcome: CallOutcome) -> None:
        if len(self._finishing) >= MAX_PENDING_FINISHES:
            log.warning("routing outcomes backlog full", session_id=outcome.call_id)
            return
        task = asyncio.ensure_future(self._finish(outcome))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(self, outcome: CallOutcome) -> None:
        try:
            await self.state.finish(outcome)
        except HotStoreUnavailable as exc:
            log.warning("routing state unavailable; outcome not counted", error=str(exc))

    async def drain(self) -> None:
        """Wait for outcomes still being recorded."""
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)


def classify(hangup_cause: str, duration_s: int) -> CallResult:
    """An attempt's result from its duration and reported cause (``Q.850;cause=N``, ``SIP;...``)."""
    answered = duration_s > 0
    cause = hangup_cause.lower()
    if "cause=" in cause:
        number = cause.rsplit("cause=", 1)[1].split(";")[0]
        if number.isdigit():
            if cause.startswith("sip"):
                return classify_sip(int(number), answered)
            return classify_q850(int(number), answered)
    return CallResult.ANSWERED if answered else CallResult.NETWORK_FAILURE
