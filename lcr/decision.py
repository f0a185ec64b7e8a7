"""What routing answers: the ranked routes, the carriers left out and why, or why none is left.

The answer's types are named tuples: immutable like frozen dataclasses, but built several times
faster, and the router builds several of them for every call.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import NamedTuple

from rating.billing import RateTerms


class SkipReason(enum.Enum):
    """Why a carrier (or one of its trunks) is not offered for a call."""

    UNKNOWN_CARRIER = "unknown_carrier"
    DISABLED = "disabled"
    DEMOTED = "demoted"
    """Quality below the thresholds; retried after the cool-down with one probe call."""
    NO_DECK = "no_deck"
    NO_RATE = "no_rate"
    NO_EXCHANGE_RATE = "no_exchange_rate"
    BELOW_MARGIN = "below_margin"
    """Costs more than a level of the chain pays, or leaves less than the minimum margin."""
    BELOW_QUALITY_FLOOR = "below_quality_floor"
    OVER_CAPACITY = "over_capacity"
    BEYOND_MAX_ROUTES = "beyond_max_routes"


class NoRouteReason(enum.Enum):
    """Why a call gets no route at all; the charging service refuses it with this reason."""

    NO_PLAN = "no_plan"
    """No route plan applies to the account."""
    NO_CARRIER = "no_carrier"
    """The plan has no carrier for the destination, or none of them has a rate for it."""
    NO_PROFITABLE_ROUTE = "no_profitable_route"
    """Every carrier that could carry it costs more than the call earns (margin guard)."""
    ALL_OVER_CAPACITY = "all_over_capacity"
    ALL_UNAVAILABLE = "all_unavailable"
    """Every carrier is disabled, demoted or below the plan's quality floor."""


_UNAVAILABLE = frozenset({SkipReason.DISABLED, SkipReason.DEMOTED, SkipReason.BELOW_QUALITY_FLOOR})


def no_route_reason(reasons: Iterable[SkipReason]) -> NoRouteReason:
    """The reason a call has no route, from the reasons its carriers were skipped.

    Money first: when any carrier was left out for its cost the call is unprofitable; then
    capacity; then carriers that exist but may not be used; else there is no carrier.
    """
    seen = set(reasons)
    if SkipReason.BELOW_MARGIN in seen:
        return NoRouteReason.NO_PROFITABLE_ROUTE
    if SkipReason.OVER_CAPACITY in seen:
        return NoRouteReason.ALL_OVER_CAPACITY
    if seen & _UNAVAILABLE:
        return NoRouteReason.ALL_UNAVAILABLE
    return NoRouteReason.NO_CARRIER


class NumberResolution(NamedTuple):
    """The dialled number after the portability lookup."""

    dialled: str
    rating_number: str
    """The number to rate and route on: the dialled one, or where it was ported to."""
    routing_number: str = ""
    """The routing number of a ported number (empty: not ported)."""
    ported_carrier: str = ""

    @property
    def ported(self) -> bool:
        """Whether the number was found in the portability table."""
        return bool(self.routing_number)


class Route(NamedTuple):
    """One way to complete the call, in the order the switch should try them."""

    carrier_id: str
    trunk_id: str
    address: str
    """The trunk's ``host[:port]`` (empty when the switch knows the trunk by name)."""
    number: str
    """The called number to send: manipulated, with the tech prefix."""
    caller_id: str
    """The calling number to present (empty: withheld)."""
    cost_micros: int
    """What a typical call costs us on this carrier, in ``currency``."""
    rate_micros: int
    """The carrier's price per minute, in ``currency``."""
    currency: str
    margin_micros: int | None
    """What a typical call leaves the operator, in its currency (rounded down); None when the
    call was not priced."""
    level_margins_micros: tuple[int, ...]
    """What each level of the reseller chain pays minus the carrier's cost, top first."""
    prefix: str
    """The carrier deck's prefix that priced the call."""
    destination: str
    group: str
    """The destination group of the quality statistics (the route plan's prefix)."""
    asr: float | None = None
    acd_s: float | None = None
    ner: float | None = None
    pdd_ms: float | None = None
    samples: int = 0
    probe: bool = False
    """The carrier is demoted and this call is its probe after the cool-down."""
    carrier_max_calls: int = 0
    carrier_max_cps: int = 0
    trunk_max_calls: int = 0
    trunk_max_cps: int = 0
    terms: RateTerms | None = None
    """The carrier's billing terms for the call: its cost for any duration (the CDR's)."""


class Skipped(NamedTuple):
    """A carrier (or trunk) left out, and why."""

    carrier_id: str
    reason: SkipReason
    detail: str = ""
    trunk_id: str = ""


class RouteDecision(NamedTuple):
    """The routing answer for one call."""

    resolution: NumberResolution
    plan_id: str
    strategy: str
    typical_duration_s: int
    home_currency: str
    routes: tuple[Route, ...]
    skipped: tuple[Skipped, ...]
    no_route: NoRouteReason | None

    @property
    def ok(self) -> bool:
        """Whether the call has at least one route."""
        return self.no_route is None

    def without(self, removed: Iterable[tuple[int, SkipReason, str]]) -> RouteDecision:
        """The decision with routes removed (by index) after admission, e.g. over capacity."""
        gone = {index: (reason, detail) for index, reason, detail in removed}
        if not gone:
            return self
        kept = tuple(r for i, r in enumerate(self.routes) if i not in gone)
        skipped = self.skipped + tuple(
            Skipped(self.routes[i].carrier_id, reason, detail, self.routes[i].trunk_id)
            for i, (reason, detail) in sorted(gone.items())
        )
        no_route = self.no_route
        if not kept and no_route is None:
            no_route = no_route_reason(reason for reason, _ in gone.values())
        return self._replace(routes=kept, skipped=skipped, no_route=no_route)
