"""The router decides exactly what the reference router decides, on random routing worlds.

Each example draws carriers (enabled or not, with or without trunks, decks shared, missing or in
another currency), decks with effective-dated and banded rates, a route plan of every strategy
with per-prefix strategies and margin thresholds, bindings with caller-ID rules, ported
numbers, quality states, and calls priced through reseller chains; every field of every
decision (routes, their order, skipped carriers and why, the no-route reason) must be equal.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lcr_world import T0, deck, sell_price

from lcr.catalog import Catalog
from lcr.decision import RouteDecision
from lcr.model import (
    Binding,
    BindingKind,
    CallerIdAction,
    CallerIdPool,
    CallerIdRule,
    Carrier,
    NumberRule,
    QualityFloor,
    RouteEntry,
    RoutePlan,
    Trunk,
)
from lcr.portability import PortabilityBuilder
from lcr.quality import Figures, QualityBoard, QualityEntry, QualitySnapshot, QualityState
from lcr.reference import ReferenceRouter
from lcr.router import Router, RouteRequest
from lcr.settings import LcrSettings
from lcr.strategies import names
from rating.currency import ExchangeRate, FxTable
from rating.deck import Band, Rate
from rating.money import Rounding, RoundingScope

DIGITS = "0129"
"""Few digits, so that prefixes, plan entries and numbers often meet."""
CARRIER_IDS = ["a", "b", "c", "d", "e"]
HOUR = 3600

digits = st.one_of(st.text(DIGITS, max_size=1), st.text(DIGITS, max_size=4))
numbers = st.one_of(st.text(DIGITS, min_size=3, max_size=7), st.text(DIGITS, max_size=2))
usually = st.sampled_from([True, True, True, False])


@st.composite
def rates(draw: st.DrawFn, open_ended: bool = False) -> Rate:
    """A rate of any billing, sometimes not yet or no longer in force, sometimes banded.

    ``open_ended``: in force from its start on, every hour of the week.
    """
    start = draw(st.sampled_from([0, 0, 0, T0 - HOUR, T0 + HOUR]))
    end = None if open_ended else draw(st.sampled_from([None, None, None, T0, T0 + 2 * HOUR]))
    if end is not None and end <= start:
        end = None
    band = (
        None
        if open_ended
        else draw(
            st.sampled_from(
                [None, None, None, Band(0b0011111, 0, 43_200), Band(0b1100000, 72_000, 3_600)]
            )
        )
    )
    return Rate(
        draw(st.one_of(st.just(""), digits)),
        "dest",
        draw(st.integers(0, 30_000)),
        draw(st.sampled_from([0, 0, 1_000, 7_000])),
        draw(st.sampled_from([0, 1, 30, 60])),
        draw(st.sampled_from([1, 6, 60])),
        draw(st.sampled_from([0, 0, 5])),
        start,
        end,
        band,
    )


@st.composite
def worlds(
    draw: st.DrawFn, open_ended: bool = False
) -> tuple[Router, ReferenceRouter, list[RouteRequest]]:
    """A catalog, settings, exchange rates, quality and calls, with both routers over them.

    ``open_ended``: every deck has one rate per prefix, in force from its start on and
    unbanded (the decks the router walks without reading rates once every one has started).
    """
    carrier_ids = draw(st.lists(st.sampled_from(CARRIER_IDS), min_size=1, max_size=5, unique=True))
    # Half the worlds are orderly (every carrier usable, every deck with a catch-all rate), so
    # that many calls get several routes; the others go through every way to skip a carrier.
    orderly = draw(st.booleans())
    deck_ids = ["d1", "d2", "d3", "gone"]
    decks = {
        deck_id: deck(
            deck_id,
            draw(
                st.lists(
                    rates(open_ended),
                    min_size=1,
                    max_size=10,
                    unique_by=(lambda r: r.prefix) if open_ended else None,
                ).filter(
                    lambda found: not (open_ended and orderly and "" in {r.prefix for r in found})
                )
            )
            + (
                [Rate("", "any", draw(st.integers(0, 30_000)), 0, 60, 60, 0, 0, None)]
                if orderly
                else []
            ),
            currency=draw(
                st.sampled_from(["USD", "EUR"] if orderly else ["USD", "USD", "EUR", "GBP"])
            ),
        )
        for deck_id in deck_ids[:3]
    }
    rule_ids = ["keep", "hide", "pool", "cut"]
    caller_rules = [
        CallerIdRule("keep"),
        CallerIdRule("hide", CallerIdAction.WITHHOLD, when=draw(st.sampled_from(["", "44"]))),
        CallerIdRule("pool", CallerIdAction.REPLACE, pool_id="p"),
        CallerIdRule("cut", CallerIdAction.REWRITE, strip=2, add="0"),
    ]
    number_rules = st.lists(
        st.sampled_from([NumberRule("0", 1, "44"), NumberRule(add="00"), NumberRule(match="^9")]),
        max_size=2,
    ).map(tuple)
    caller_rule = st.one_of(st.none(), st.sampled_from(rule_ids))
    carriers = [
        Carrier(
            carrier_id,
            deck_id=draw(
                st.sampled_from(deck_ids[:3] if orderly else [*deck_ids[:3], "gone", None])
            ),
            enabled=orderly or draw(usually),
            priority=draw(st.integers(0, 2)),
            weight=draw(st.integers(0, 3)),
            tech_prefix=draw(st.sampled_from(["", "99"])),
            number_rules=draw(number_rules),
            caller_id_rule=draw(caller_rule),
            send_routing_number=draw(st.booleans()),
            scope=draw(st.sampled_from(list(RoundingScope))),
            mode=draw(st.sampled_from(list(Rounding))),
            max_calls=draw(st.sampled_from([0, 10])),
        )
        for carrier_id in carrier_ids
    ]
    trunks = [
        Trunk(
            f"{carrier_id}-t{i}",
            carrier_id,
            address=draw(st.sampled_from(["", f"10.0.0.{i}:5060"])),
            enabled=orderly or draw(usually),
            priority=draw(st.integers(0, 1)),
            weight=draw(st.integers(0, 3)),
            tech_prefix=draw(st.sampled_from([None, "", "11"])),
            number_rules=draw(number_rules),
            caller_id_rule=draw(caller_rule),
            max_cps=draw(st.sampled_from([0, 5])),
        )
        for carrier_id in carrier_ids
        for i in range(draw(st.integers(0, 3)))
    ]
    strategies = st.sampled_from(names())
    entry_ids = carrier_ids if orderly else [*carrier_ids, *carrier_ids, "ghost"]
    entries = draw(
        st.lists(
            st.builds(
                RouteEntry,
                digits,
                st.sampled_from(entry_ids),
                st.integers(0, 2),
                st.integers(0, 3),
            ),
            min_size=1,
            max_size=10,
            unique_by=lambda e: (e.prefix, e.carrier_id),
        )
    )
    plans = [
        RoutePlan(
            plan_id,
            strategy=draw(strategies),
            entries=tuple(entries if plan_id == "main" else entries[::-1][:3]),
            prefix_strategies=tuple(
                draw(st.lists(st.tuples(digits, strategies), max_size=2, unique_by=lambda t: t[0]))
            ),
            typical_duration_s=draw(st.sampled_from([None, 30, 61, 300])),
            min_margin_micros=draw(st.sampled_from([None, 0, 2_000])),
            min_margin_percent=draw(st.sampled_from([None, Decimal(0), Decimal("12.5")])),
            quality_floor=draw(
                st.sampled_from([QualityFloor(), QualityFloor(min_asr=0.4, max_pdd_ms=3_000)])
            ),
        )
        for plan_id in ("main", "other")
    ]
    bindings = [
        Binding(
            BindingKind.ACCOUNT,
            "acct",
            draw(st.sampled_from([None, "main", "main", "other"])),
            draw(caller_rule),
        ),
        Binding(
            BindingKind.TARIFF_PLAN,
            "retail",
            draw(st.sampled_from([None, "main", "other"])),
            draw(caller_rule),
        ),
    ]
    ported = PortabilityBuilder()
    for number, routing in draw(st.lists(st.tuples(numbers, numbers), max_size=3)):
        if number and routing:
            ported.add(number, routing, "net")
    catalog = Catalog(
        carriers=carriers,
        trunks=trunks,
        plans=plans,
        bindings=bindings,
        caller_id_rules=caller_rules,
        pools=[CallerIdPool("p", ("441000", "442000"))],
        decks=decks,
        portability=ported.build(),
    )
    lcr_settings = LcrSettings(
        default_route_plan=draw(st.sampled_from(["", "main", "other"])),
        typical_duration_s=draw(st.sampled_from([60, 120])),
        margin_check_durations_s=draw(st.sampled_from([(), (6,), (6, 600), (120,)])),
        min_margin_micros=draw(st.sampled_from([0, 500])),
        min_margin_percent=draw(st.sampled_from([Decimal(0), Decimal(5)])),
        max_routes=draw(st.integers(1, 6)),
        portability_mode=draw(st.sampled_from(["replace", "prefix"])),
    )
    eur_usd = ExchangeRate("EUR", "USD", Decimal(draw(st.sampled_from(["0.5", "1.1", "1.37"]))), 0)
    fx = FxTable([eur_usd])
    # The customer may pay in a currency the router cannot convert (no JPY rate for it).
    pricing_fx = FxTable([eur_usd, ExchangeRate("USD", "JPY", Decimal(150), 0)])
    states = st.sampled_from(list(QualityState))
    figures = st.builds(
        Figures,
        st.integers(0, 50),
        st.one_of(st.none(), st.sampled_from([0.1, 0.5, 0.9])),
        st.one_of(st.none(), st.sampled_from([10.0, 90.0])),
        st.one_of(st.none(), st.sampled_from([0.5, 0.99])),
        st.one_of(st.none(), st.sampled_from([800.0, 4_000.0])),
    )
    quality = {
        (carrier_id, group): QualityEntry(
            draw(figures),
            draw(states),
            T0 + 60,
            draw(st.booleans()),
        )
        for carrier_id, group in draw(
            st.lists(st.tuples(st.sampled_from(carrier_ids), digits), max_size=4)
        )
    }
    board = QualityBoard(QualitySnapshot(T0, quality))
    common: dict[str, Any] = {"fx": fx, "home_currency": "USD", "quality": board}
    fast = Router(catalog, lcr_settings, **common)
    reference = ReferenceRouter(catalog, lcr_settings, **common)
    requests = []
    # Mostly numbers some plan entry covers.
    covered = st.tuples(st.sampled_from([e.prefix for e in entries]), numbers).map("".join)
    for number in draw(st.lists(st.one_of(covered, covered, numbers), min_size=1, max_size=4)):
        price = None
        if number[:2] and draw(st.booleans()):
            price = sell_price(
                number,
                draw(st.integers(1_000, 60_000)),
                draw(st.sampled_from([(), (Decimal(10),), (Decimal(-20), Decimal(5))])),
                currency=draw(st.sampled_from(["USD", "USD", "EUR", "JPY"])),
                fx=pricing_fx,
            )
        requests.append(
            RouteRequest(
                draw(st.sampled_from(["acct", "acct", "someone"])),
                number,
                T0 + draw(st.sampled_from([0, 90, HOUR + 5, 2 * HOUR, 13 * HOUR])),
                tariff_plan_id=draw(st.sampled_from(["", "retail"])),
                calling=draw(st.sampled_from(["", "441632960001", "0207"])),
                price=price,
                seed=draw(st.integers(0, 2**32 - 1)),
            )
        )
    return fast, reference, requests


def outcome(router: Router | ReferenceRouter, request: RouteRequest) -> RouteDecision | str:
    """The decision, or the error raised."""
    try:
        return router.route(request)
    except Exception as exc:  # compared between the routers, not hidden
        return f"{type(exc).__name__}: {exc}"


def assert_same_decisions(world: tuple[Router, ReferenceRouter, list[RouteRequest]]) -> None:
    """Each request decided by both routers, the fast one twice: the second decision is
    served from what it keeps (typical-call costs, the candidates kept per prefix)."""
    fast, reference, requests = world
    for request in requests:
        expected = outcome(reference, request)
        assert outcome(fast, request) == expected
        assert outcome(fast, request) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_router_decides_as_the_reference(
    world: tuple[Router, ReferenceRouter, list[RouteRequest]],
) -> None:
    assert_same_decisions(world)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(open_ended=True))
def test_router_decides_as_the_reference_on_open_ended_decks(
    world: tuple[Router, ReferenceRouter, list[RouteRequest]],
) -> None:
    assert_same_decisions(world)
