"""The reference router: the routing rules written as plainly as they read.

``ReferenceRouter.route`` decides exactly what ``lcr.router.Router.route`` decides; the fast
router is tested against it on random decks, plans and numbers. It looks each carrier's rate
up in its own deck and prices the typical call anew for every call, which keeps it easy to
check and slow. ``ocsd`` uses ``lcr.router.Router``; see its module text for the rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

from lcr.catalog import CarrierView, Catalog, CompiledPlan
from lcr.decision import (
    NoRouteReason,
    NumberResolution,
    Route,
    RouteDecision,
    Skipped,
    SkipReason,
    no_route_reason,
)
from lcr.model import Binding, RoutePlan, apply_rules
from lcr.quality import QualityBoard, QualityState
from lcr.request import RouteRequest
from lcr.settings import LcrSettings
from lcr.strategies import Candidate, RankContext
from lcr.strategies.weighted import weighted_order
from rating.billing import RateTerms
from rating.currency import FxTable, NoExchangeRate
from rating.deck import SECONDS_PER_DAY, Rate
from rating.engine import CallPrice
from rating.money import format_micros

_EPOCH_WEEKDAY = 3
"""1970-01-01 was a Thursday (``datetime.weekday()`` numbering)."""


class Margin:
    """What every level pays, in the operator's currency, at the durations checked."""

    __slots__ = ("durations", "labels", "min_micros", "min_percent", "revenues")

    def __init__(
        self,
        durations: tuple[int, ...],
        revenues: list[list[int | Fraction]],
        labels: list[str],
        min_micros: int,
        min_percent: Fraction,
    ) -> None:
        self.durations = durations
        self.revenues = revenues
        self.labels = labels
        self.min_micros = min_micros
        self.min_percent = min_percent


class ReferenceRouter:
    """Ranks carriers for calls, plainly; the specification of ``lcr.router.Router``."""

    def __init__(
        self,
        catalog: Catalog,
        settings: LcrSettings | None = None,
        *,
        fx: FxTable | None = None,
        home_currency: str = "USD",
        quality: QualityBoard | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings or LcrSettings()
        self.fx = fx or FxTable()
        self.home_currency = home_currency
        self.quality = quality or QualityBoard()
        self._prefix_mode = self.settings.portability_mode == "prefix"

    # -- numbers and plans -------------------------------------------------------------

    def resolve(self, number: str) -> NumberResolution:
        """Look the dialled number up in the portability table."""
        ported = self.catalog.portability.lookup(number)
        if ported is None:
            return NumberResolution(number, number)
        rating = ported.routing_number + number if self._prefix_mode else ported.routing_number
        return NumberResolution(number, rating, ported.routing_number, ported.carrier_id)

    def plan_for(self, account_id: str, tariff_plan_id: str = "") -> RoutePlan | None:
        """The route plan that applies to an account."""
        compiled = self._compiled_plan(*self.catalog.binding(account_id, tariff_plan_id))
        return compiled.plan if compiled else None

    def _compiled_plan(
        self, account: Binding | None, tariff: Binding | None
    ) -> CompiledPlan | None:
        plans = self.catalog.plans
        for binding in (account, tariff):
            if binding is not None and binding.route_plan_id is not None:
                return plans[binding.route_plan_id]
        default = self.settings.default_route_plan
        return plans.get(default) if default else None

    # -- margins -----------------------------------------------------------------------

    def margin(self, plan: RoutePlan, typical: int, price: CallPrice, at: int) -> Margin:
        """What every level of ``price`` pays at the durations the guard checks."""
        settings = self.settings
        durations = (typical, *(d for d in settings.margin_check_durations_s if d != typical))
        home = self.home_currency
        factors: list[Fraction | None] = []
        for level in price.levels:
            if level.currency == home:
                factors.append(None)
            else:
                factors.append(self.fx.factor(level.currency, home, at)[0])
        revenues: list[list[int | Fraction]] = []
        for duration in durations:
            costs = price.level_costs(duration)
            revenues.append(
                [
                    amount if factor is None else amount * factor
                    for amount, factor in zip(costs, factors, strict=True)
                ]
            )
        labels = [f"level {i} ({lv.seller}->{lv.buyer})" for i, lv in enumerate(price.levels)]
        min_micros = (
            plan.min_margin_micros
            if plan.min_margin_micros is not None
            else settings.min_margin_micros
        )
        percent = (
            plan.min_margin_percent
            if plan.min_margin_percent is not None
            else settings.min_margin_percent
        )
        return Margin(durations, revenues, labels, min_micros, Fraction(percent))

    # -- routing -----------------------------------------------------------------------

    def route(self, request: RouteRequest) -> RouteDecision:
        """Rank the routes of one call."""
        resolution = request.resolution or self.resolve(request.number)
        catalog = self.catalog
        account_binding, tariff_binding = catalog.binding(
            request.account_id, request.tariff_plan_id
        )
        compiled = self._compiled_plan(account_binding, tariff_binding)
        settings = self.settings
        home = self.home_currency
        if compiled is None:
            return RouteDecision(
                resolution, "", "", settings.typical_duration_s, home, (), (), NoRouteReason.NO_PLAN
            )
        plan = compiled.plan
        number = resolution.rating_number
        typical = plan.typical_duration_s or settings.typical_duration_s
        group, entries = compiled.entries_for(number)
        strategy = compiled.strategy_for(number)
        if not entries:
            return RouteDecision(
                resolution,
                plan.plan_id,
                strategy.name,
                typical,
                home,
                (),
                (),
                NoRouteReason.NO_CARRIER,
            )
        at = request.at
        weekday = (at // SECONDS_PER_DAY + _EPOCH_WEEKDAY) % 7
        second = at % SECONDS_PER_DAY
        margin: Margin | None = None
        skipped: list[Skipped] = []
        if request.price is not None:
            try:
                margin = self.margin(plan, typical, request.price, at)
            except NoExchangeRate as exc:
                skipped.extend(
                    Skipped(e.carrier_id, SkipReason.NO_EXCHANGE_RATE, str(exc)) for e in entries
                )
                return RouteDecision(
                    resolution,
                    plan.plan_id,
                    strategy.name,
                    typical,
                    home,
                    (),
                    tuple(skipped),
                    no_route_reason(s.reason for s in skipped),
                )
        snapshot = self.quality.snapshot.entries
        carriers = catalog.carriers
        decks = catalog.decks
        candidates: list[Candidate] = []
        details: dict[str, tuple[CarrierView, Rate, RateTerms, int, list[int]]] = {}
        for entry in entries:
            view = carriers.get(entry.carrier_id)
            if view is None:
                skipped.append(Skipped(entry.carrier_id, SkipReason.UNKNOWN_CARRIER))
                continue
            carrier = view.carrier
            if not carrier.enabled:
                skipped.append(Skipped(carrier.carrier_id, SkipReason.DISABLED))
                continue
            if view.trunks and not view.enabled_trunks:
                skipped.append(
                    Skipped(carrier.carrier_id, SkipReason.DISABLED, "every trunk is disabled")
                )
                continue
            deck = decks.get(carrier.deck_id) if carrier.deck_id else None
            if deck is None:
                skipped.append(Skipped(carrier.carrier_id, SkipReason.NO_DECK))
                continue
            rate = deck.lookup(number, at, weekday, second)
            if rate is None:
                skipped.append(
                    Skipped(carrier.carrier_id, SkipReason.NO_RATE, f"no rate for {number}")
                )
                continue
            quality = snapshot.get((carrier.carrier_id, group))
            if quality is not None and quality.state is QualityState.DEMOTED:
                until = datetime.fromtimestamp(quality.demoted_until or 0, UTC)
                skipped.append(
                    Skipped(carrier.carrier_id, SkipReason.DEMOTED, f"until {until:%H:%M:%S}Z")
                )
                continue
            terms = RateTerms(
                rate.rate_micros,
                rate.connect_fee_micros,
                rate.first_block_s,
                rate.increment_s,
                rate.grace_s,
                carrier.scope,
                carrier.mode,
            )
            cost = terms.cost(typical)
            to_home: Fraction | None = None
            if deck.currency != home:
                try:
                    to_home = self.fx.factor(deck.currency, home, at)[0]
                except NoExchangeRate as exc:
                    skipped.append(
                        Skipped(carrier.carrier_id, SkipReason.NO_EXCHANGE_RATE, str(exc))
                    )
                    continue
            cost_home: int | Fraction = cost if to_home is None else cost * to_home
            level_margins: list[int] = []
            if margin is not None:
                failure = self.check_margin(
                    margin, terms, typical, cost_home, to_home, level_margins
                )
                if failure:
                    skipped.append(Skipped(carrier.carrier_id, SkipReason.BELOW_MARGIN, failure))
                    continue
            candidate = Candidate(carrier, entry, cost_home, quality)
            candidates.append(candidate)
            details[carrier.carrier_id] = (view, rate, terms, cost, level_margins)
        if not candidates:
            return RouteDecision(
                resolution,
                plan.plan_id,
                strategy.name,
                typical,
                home,
                (),
                tuple(skipped),
                no_route_reason(s.reason for s in skipped),
            )
        context = RankContext(request.seed, plan.quality_floor, settings.quality)
        ranked, left = strategy.rank(candidates, context)
        skipped.extend(Skipped(c.carrier_id, reason, detail) for c, reason, detail in left)
        routes = self._routes(
            ranked, details, resolution, request, account_binding, tariff_binding, group, skipped
        )
        return RouteDecision(
            resolution,
            plan.plan_id,
            strategy.name,
            typical,
            home,
            routes,
            tuple(skipped),
            None if routes else no_route_reason(s.reason for s in skipped),
        )

    def check_margin(
        self,
        margin: Margin,
        terms: RateTerms,
        typical: int,
        cost_home: int | Fraction,
        to_home: Fraction | None,
        level_margins: list[int],
    ) -> str:
        """Return why the carrier fails the margin guard ('' when it passes)."""
        for index, duration in enumerate(margin.durations):
            if duration == typical:
                cost = cost_home
            else:
                raw = terms.cost(duration)
                cost = raw if to_home is None else raw * to_home
            for level, revenue in enumerate(margin.revenues[index]):
                left = revenue - cost
                if index == 0:
                    level_margins.append(int(left // 1))
                short = left < margin.min_micros
                if not short and margin.min_percent:
                    short = left * 100 < margin.min_percent * revenue
                if short:
                    return (
                        f"{margin.labels[level]} pays {_money(revenue)} {self.home_currency} "
                        f"for {duration}s, the carrier costs {_money(cost)}"
                        + (
                            f" (minimum margin {format_micros(margin.min_micros)}"
                            f"{f' / {margin.min_percent}%' if margin.min_percent else ''})"
                            if margin.min_micros or margin.min_percent
                            else ""
                        )
                    )
        return ""

    def _routes(
        self,
        ranked: list[Candidate],
        details: dict[str, tuple[CarrierView, Rate, RateTerms, int, list[int]]],
        resolution: NumberResolution,
        request: RouteRequest,
        account_binding: Binding | None,
        tariff_binding: Binding | None,
        group: str,
        skipped: list[Skipped],
    ) -> tuple[Route, ...]:
        catalog = self.catalog
        limit = self.settings.max_routes
        caller_rule = None
        for binding in (account_binding, tariff_binding):
            if binding is not None and binding.caller_id_rule is not None:
                caller_rule = binding.caller_id_rule
                break
        calling = catalog.apply_caller_id(caller_rule, request.calling)
        routes: list[Route] = []
        for candidate in ranked:
            view, rate, terms, cost, level_margins = details[candidate.carrier_id]
            carrier = view.carrier
            deck = catalog.decks[carrier.deck_id or ""]
            base = (
                resolution.rating_number
                if carrier.send_routing_number and resolution.ported
                else resolution.dialled
            )
            carrier_number = apply_rules(carrier.number_rules, base)
            quality = candidate.quality
            figures = quality.figures if quality is not None else None
            trunks = view.enabled_trunks
            if len(trunks) > 1:
                trunks = tuple(
                    sorted(
                        weighted_order(
                            trunks, lambda t: t.weight, lambda t: t.trunk_id, request.seed
                        ),
                        key=lambda t: t.priority,
                    )
                )
            for trunk in trunks or (None,):
                if len(routes) >= limit:
                    skipped.append(
                        Skipped(
                            carrier.carrier_id,
                            SkipReason.BEYOND_MAX_ROUTES,
                            f"max_routes is {limit}",
                            trunk.trunk_id if trunk else "",
                        )
                    )
                    continue
                number = carrier_number
                tech = carrier.tech_prefix
                caller_id = calling
                if trunk is not None:
                    number = apply_rules(trunk.number_rules, number)
                    if trunk.tech_prefix is not None:
                        tech = trunk.tech_prefix
                rule = (
                    trunk.caller_id_rule if trunk is not None else None
                ) or carrier.caller_id_rule
                caller_id = catalog.apply_caller_id(rule, calling)
                routes.append(
                    Route(
                        carrier_id=carrier.carrier_id,
                        trunk_id=trunk.trunk_id if trunk else "",
                        address=trunk.address if trunk else "",
                        number=tech + number,
                        caller_id=caller_id,
                        cost_micros=cost,
                        rate_micros=rate.rate_micros,
                        currency=deck.currency,
                        margin_micros=level_margins[0] if level_margins else None,
                        level_margins_micros=tuple(level_margins),
                        prefix=rate.prefix,
                        destination=rate.destination,
                        group=group,
                        asr=figures.asr if figures else None,
                        acd_s=figures.acd_s if figures else None,
                        ner=figures.ner if figures else None,
                        pdd_ms=figures.pdd_ms if figures else None,
                        samples=figures.attempts if figures else 0,
                        probe=quality is not None and quality.state is QualityState.PROBE,
                        carrier_max_calls=carrier.max_calls,
                        carrier_max_cps=carrier.max_cps,
                        trunk_max_calls=trunk.max_calls if trunk else 0,
                        trunk_max_cps=trunk.max_cps if trunk else 0,
                        terms=terms,
                    )
                )
        return tuple(routes)


def _money(amount: int | Fraction) -> str:
    """Format an exact amount of micro-units (rounded down to a micro-unit for display)."""
    return format_micros(int(amount // 1))
