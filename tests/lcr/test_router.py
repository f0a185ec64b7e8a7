"""The router: pricing carriers on a typical call, the margin guard, skips and no-route reasons."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lcr_world import T0, carrier, deck, rate, request, router, sell_price, usd_eur

from lcr.decision import NoRouteReason, SkipReason
from lcr.model import (
    Binding,
    BindingKind,
    CallerIdAction,
    CallerIdPool,
    CallerIdRule,
    NumberRule,
    RouteEntry,
    Trunk,
)
from lcr.portability import PortabilityBuilder
from lcr.quality import Figures, QualityBoard, QualityEntry, QualitySnapshot, QualityState
from lcr.router import Router
from lcr.settings import LcrSettings

NUMBER = "447700900123"


def three_carriers() -> tuple[list, dict, list]:  # type: ignore[type-arg]
    carriers = [carrier("cheap"), carrier("mid"), carrier("dear")]
    decks = {
        "deck-cheap": deck("deck-cheap", [rate("44", 5_000)]),
        "deck-mid": deck("deck-mid", [rate("447", 8_000), rate("44", 1_000)]),
        "deck-dear": deck("deck-dear", [rate("4477", 12_000)]),
    }
    entries = [RouteEntry("44", c.carrier_id) for c in carriers]
    return carriers, decks, entries


def test_least_cost_ranks_by_cost_per_typical_call_and_reports_margins() -> None:
    r = router(*three_carriers())
    decision = r.route(request(price=sell_price(NUMBER, 20_000)))
    assert decision.ok and decision.plan_id == "plan" and decision.strategy == "least_cost"
    assert [x.carrier_id for x in decision.routes] == ["cheap", "mid", "dear"]
    first = decision.routes[0]
    # 120 s at 0.005/min = 0.010 against 0.040 sold: 0.030 margin.
    assert (first.cost_micros, first.rate_micros, first.margin_micros) == (10_000, 5_000, 30_000)
    assert decision.routes[1].prefix == "447" and decision.routes[2].prefix == "4477"
    assert first.group == "44" and first.level_margins_micros == (30_000,)


@pytest.mark.parametrize(
    ("typical_s", "expected"),
    [
        pytest.param(30, ["fee", "plain"], id="short-call-per-second-billing-wins"),
        pytest.param(600, ["fee", "plain"], id="long-call-low-rate-wins"),
        pytest.param(60, ["plain", "fee"], id="one-minute-fee-dominates"),
    ],
)
def test_least_cost_counts_connection_fee_and_increments(
    typical_s: int, expected: list[str]
) -> None:
    carriers = [carrier("plain"), carrier("fee")]
    decks = {
        # 60/60 at 0.010/min, no fee.
        "deck-plain": deck("deck-plain", [rate("44", 10_000)]),
        # 1/1 at 0.006/min plus a 0.005 connection fee.
        "deck-fee": deck("deck-fee", [rate("44", 6_000, fee=5_000, billing=(1, 1))]),
    }
    costs = {30: (10_000, 8_000), 60: (10_000, 11_000), 600: (100_000, 65_000)}
    plain, fee = costs[typical_s]
    r = router(
        carriers,
        decks,
        [RouteEntry("44", "plain"), RouteEntry("44", "fee")],
        plan_kw={"typical_duration_s": typical_s},
    )
    decision = r.route(request())
    assert [x.carrier_id for x in decision.routes] == expected
    by_id = {x.carrier_id: x.cost_micros for x in decision.routes}
    assert by_id == {"plain": plain, "fee": fee}
    assert decision.typical_duration_s == typical_s


# Operator sells at 0.020/min (0.040 per 120 s); the chain below marks up (or down).
@pytest.mark.parametrize(
    ("markups", "carrier_per_min", "settings", "skipped_level"),
    [
        pytest.param((), 19_000, {}, None, id="direct-account-profitable"),
        pytest.param((), 20_000, {}, None, id="direct-account-break-even-allowed"),
        pytest.param((), 21_000, {}, 0, id="direct-account-loses"),
        pytest.param((), 19_000, {"min_margin_micros": 3_000}, 0, id="absolute-minimum-margin"),
        pytest.param((), 18_000, {"min_margin_micros": 4_000}, None, id="absolute-minimum-met"),
        pytest.param((), 19_000, {"min_margin_percent": Decimal(10)}, 0, id="percent-minimum"),
        pytest.param(
            (), 18_000, {"min_margin_percent": Decimal(10)}, None, id="percent-minimum-met"
        ),
        pytest.param((Decimal(20),), 21_000, {}, 0, id="reseller-marks-up-operator-loses"),
        pytest.param((Decimal(-10),), 19_000, {}, 1, id="reseller-sells-below-carrier-cost"),
        pytest.param((Decimal(10), Decimal(-20)), 19_000, {}, 2, id="second-reseller-below"),
        pytest.param(
            (Decimal(10), Decimal(-5)), 19_000, {}, None, id="second-reseller-still-above"
        ),
        pytest.param(
            (Decimal(50), Decimal(50)),
            19_000,
            {"min_margin_percent": Decimal(5)},
            None,
            id="percent-at-every-level",
        ),
    ],
)
def test_the_margin_guard_at_every_reseller_level(
    markups: tuple[Decimal, ...],
    carrier_per_min: int,
    settings: dict,
    skipped_level: int | None,  # type: ignore[type-arg]
) -> None:
    r = router(
        [carrier("c")],
        {"deck-c": deck("deck-c", [rate("44", carrier_per_min)])},
        [RouteEntry("44", "c")],
        settings=LcrSettings(**settings),
    )
    decision = r.route(request(price=sell_price(NUMBER, 20_000, markups)))
    if skipped_level is None:
        assert decision.ok, decision.skipped
        assert len(decision.routes[0].level_margins_micros) == len(markups) + 1
    else:
        assert decision.no_route is NoRouteReason.NO_PROFITABLE_ROUTE
        (skip,) = decision.skipped
        assert skip.reason is SkipReason.BELOW_MARGIN
        assert skip.detail.startswith(f"level {skipped_level} ")


def test_the_margin_is_also_checked_at_the_configured_durations() -> None:
    # A 0.025 connection fee: fine on a 120 s call sold at 0.020/min (0.035 against 0.040),
    # a loss on a 6 s call (0.0255 against the 60 s minimum of 0.020).
    decks = {"deck-c": deck("deck-c", [rate("44", 5_000, fee=25_000, billing=(1, 1))])}
    price = sell_price(NUMBER, 20_000)
    plain = router([carrier("c")], decks, [RouteEntry("44", "c")])
    assert plain.route(request(price=price)).ok
    strict = router(
        [carrier("c")],
        decks,
        [RouteEntry("44", "c")],
        settings=LcrSettings(margin_check_durations_s=(6,)),
    )
    decision = strict.route(request(price=price))
    assert decision.no_route is NoRouteReason.NO_PROFITABLE_ROUTE
    assert "for 6s" in decision.skipped[0].detail


def test_a_carrier_deck_in_another_currency_is_converted_exactly() -> None:
    carriers = [carrier("eur"), carrier("usd")]
    decks = {
        # 0.016 EUR/min at 0.5 USD per EUR = 0.008 USD/min: cheaper than 0.010 USD.
        "deck-eur": deck("deck-eur", [rate("44", 16_000)], currency="EUR"),
        "deck-usd": deck("deck-usd", [rate("44", 10_000)]),
    }
    r = router(
        carriers, decks, [RouteEntry("44", "eur"), RouteEntry("44", "usd")], fx=usd_eur("0.5")
    )
    decision = r.route(request(price=sell_price(NUMBER, 20_000)))
    assert [x.carrier_id for x in decision.routes] == ["eur", "usd"]
    assert decision.routes[0].currency == "EUR" and decision.routes[0].cost_micros == 32_000
    assert decision.routes[0].margin_micros == 40_000 - 16_000
    no_fx = router(carriers, decks, [RouteEntry("44", "eur"), RouteEntry("44", "usd")])
    skipped = no_fx.route(request()).skipped
    assert [(s.carrier_id, s.reason) for s in skipped] == [("eur", SkipReason.NO_EXCHANGE_RATE)]


def demoted_board(state: QualityState) -> QualityBoard:
    entry = QualityEntry(Figures(50, 0.05, 20.0, 0.3, None), state, T0 + 60, enough=True)
    return QualityBoard(QualitySnapshot(T0, {("cheap", "44"): entry}))


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("no-plan", NoRouteReason.NO_PLAN, id="no-plan"),
        pytest.param("no-entry", NoRouteReason.NO_CARRIER, id="no-entry-for-destination"),
        pytest.param("no-rate", NoRouteReason.NO_CARRIER, id="no-carrier-has-a-rate"),
        pytest.param("disabled", NoRouteReason.ALL_UNAVAILABLE, id="all-disabled"),
        pytest.param("trunks-disabled", NoRouteReason.ALL_UNAVAILABLE, id="every-trunk-disabled"),
        pytest.param("demoted", NoRouteReason.ALL_UNAVAILABLE, id="all-demoted"),
        pytest.param("margin", NoRouteReason.NO_PROFITABLE_ROUTE, id="all-below-margin"),
        pytest.param(
            "margin-and-disabled", NoRouteReason.NO_PROFITABLE_ROUTE, id="money-reason-first"
        ),
    ],
)
def test_no_route_reasons(case: str, expected: NoRouteReason) -> None:
    carriers = [carrier("cheap", enabled=case not in ("disabled", "margin-and-disabled"))]
    decks = {"deck-cheap": deck("deck-cheap", [rate("33" if case == "no-rate" else "44", 5_000)])}
    entries = [RouteEntry("33" if case == "no-entry" else "44", "cheap")]
    trunks = [Trunk("t1", "cheap", enabled=False)] if case == "trunks-disabled" else []
    if case == "margin-and-disabled":
        carriers.append(carrier("dear"))
        decks["deck-dear"] = deck("deck-dear", [rate("44", 50_000)])
        entries.append(RouteEntry("44", "dear"))
    if case == "margin":
        decks["deck-cheap"] = deck("deck-cheap", [rate("44", 50_000)])
    board = demoted_board(QualityState.DEMOTED) if case == "demoted" else None
    bindings = [Binding(BindingKind.ACCOUNT, "someone-else", "plan")] if case == "no-plan" else ()
    r = router(carriers, decks, entries, trunks=trunks, board=board, bindings=bindings)
    decision = r.route(request(price=sell_price(NUMBER, 20_000)))
    assert decision.no_route is expected and decision.routes == ()


def test_all_over_capacity_after_admission() -> None:
    r = router(*three_carriers())
    decision = r.route(request())
    removed = [(i, SkipReason.OVER_CAPACITY, "full") for i in range(len(decision.routes))]
    after = decision.without(removed)
    assert after.no_route is NoRouteReason.ALL_OVER_CAPACITY
    assert [s.carrier_id for s in after.skipped] == ["cheap", "mid", "dear"]
    partly = decision.without(removed[:1])
    assert partly.ok and [x.carrier_id for x in partly.routes] == ["mid", "dear"]


def test_a_demoted_carrier_is_skipped_and_its_probe_is_offered_after_the_cooldown() -> None:
    demoted = router(*three_carriers(), board=demoted_board(QualityState.DEMOTED)).route(request())
    assert [x.carrier_id for x in demoted.routes] == ["mid", "dear"]
    assert demoted.skipped[0].reason is SkipReason.DEMOTED
    probing = router(*three_carriers(), board=demoted_board(QualityState.PROBE)).route(request())
    assert probing.routes[0].carrier_id == "cheap" and probing.routes[0].probe
    assert probing.routes[0].asr == 0.05 and probing.routes[0].samples == 50


def test_a_router_follows_the_snapshots_swapped_into_its_quality_board() -> None:
    board = QualityBoard()
    r = router(*three_carriers(), board=board)
    first = r.route(request())
    assert [x.carrier_id for x in first.routes] == ["cheap", "mid", "dear"]
    board.snapshot = demoted_board(QualityState.DEMOTED).snapshot
    demoted = r.route(request())
    assert [x.carrier_id for x in demoted.routes] == ["mid", "dear"]
    assert demoted.skipped[0].reason is SkipReason.DEMOTED
    board.snapshot = QualitySnapshot(T0 + 600)
    assert r.route(request()) == first


def test_the_margin_guard_holds_for_each_call_to_the_same_prefixes() -> None:
    r = router(*three_carriers())
    rich = r.route(request(price=sell_price(NUMBER, 20_000)))
    assert [x.carrier_id for x in rich.routes] == ["cheap", "mid", "dear"]
    # 0.010/min sold: 0.020 for 120 s, less than "dear" costs (0.024).
    poor = r.route(request(price=sell_price(NUMBER, 10_000)))
    assert [x.carrier_id for x in poor.routes] == ["cheap", "mid"]
    assert [(s.carrier_id, s.reason) for s in poor.skipped] == [("dear", SkipReason.BELOW_MARGIN)]
    assert r.route(request(price=sell_price(NUMBER, 20_000))) == rich
    assert r.route(request(price=sell_price(NUMBER, 10_000))) == poor


def test_plan_binding_order_account_then_tariff_plan_then_default() -> None:
    carriers, decks, entries = three_carriers()
    bindings = [Binding(BindingKind.TARIFF_PLAN, "retail", "plan")]
    r = router(carriers, decks, entries, bindings=bindings)
    assert r.plan_for("acct") is None
    assert r.plan_for("acct", "retail") is not None
    assert r.route(request(tariff_plan_id="retail")).ok
    default = router(
        carriers, decks, entries, bindings=bindings, settings=LcrSettings(default_route_plan="plan")
    )
    assert default.route(request()).plan_id == "plan"


def test_a_strategy_per_prefix_overrides_the_plans() -> None:
    carriers, decks, entries = three_carriers()
    carriers = [
        carrier("cheap", priority=3),
        carrier("mid", priority=1),
        carrier("dear", priority=2),
    ]
    r = router(carriers, decks, entries, plan_kw={"prefix_strategies": (("4477", "priority"),)})
    assert [x.carrier_id for x in r.route(request()).routes] == ["mid", "dear", "cheap"]
    assert r.route(request()).strategy == "priority"
    other = r.route(request("447600900123"))
    assert other.strategy == "least_cost"


def test_the_longest_entry_prefix_decides_the_candidates() -> None:
    carriers, decks, entries = three_carriers()
    entries.append(RouteEntry("4477", "dear"))
    r = router(carriers, decks, entries)
    decision = r.route(request())
    assert [x.carrier_id for x in decision.routes] == ["dear"] and decision.routes[
        0
    ].group == "4477"
    assert [x.carrier_id for x in r.route(request("447600900123")).routes] == ["cheap", "mid"]


def test_numbers_are_translated_per_carrier_and_trunk() -> None:
    carriers = [
        carrier(
            "a", tech_prefix="9901#", number_rules=(NumberRule(when="44", strip=2, add="0044"),)
        ),
        carrier("b"),
    ]
    trunks = [
        Trunk("a1", "a", address="192.0.2.1:5060", priority=0),
        Trunk(
            "a2",
            "a",
            address="192.0.2.2",
            priority=1,
            tech_prefix="77",
            number_rules=(NumberRule(match="^0044", replace="+44"),),
        ),
        Trunk("a3", "a", enabled=False),
    ]
    decks = {
        "deck-a": deck("deck-a", [rate("44", 1_000)]),
        "deck-b": deck("deck-b", [rate("44", 2_000)]),
    }
    r = router(carriers, decks, [RouteEntry("44", "a"), RouteEntry("44", "b")], trunks=trunks)
    decision = r.route(request())
    got = [(x.carrier_id, x.trunk_id, x.address, x.number) for x in decision.routes]
    assert got == [
        ("a", "a1", "192.0.2.1:5060", "9901#00447700900123"),
        ("a", "a2", "192.0.2.2", "77+447700900123"),
        ("b", "", "", NUMBER),
    ]


def test_max_routes_cuts_the_list_and_says_so() -> None:
    r = router(*three_carriers(), settings=LcrSettings(max_routes=2))
    decision = r.route(request())
    assert [x.carrier_id for x in decision.routes] == ["cheap", "mid"]
    assert [(s.carrier_id, s.reason) for s in decision.skipped] == [
        ("dear", SkipReason.BEYOND_MAX_ROUTES)
    ]


@pytest.mark.parametrize(
    ("mode", "routing", "rating_number", "sent"),
    [
        pytest.param("replace", "447400000000", "447400000000", "447400000000", id="lrn"),
        pytest.param("prefix", "1616", "1616447700900123", "1616447700900123", id="routing-prefix"),
    ],
)
def test_a_ported_number_is_priced_on_its_routing_number(
    mode: str, routing: str, rating_number: str, sent: str
) -> None:
    builder = PortabilityBuilder()
    builder.add(NUMBER, routing, "vodafone-uk")
    carriers = [carrier("a", send_routing_number=True), carrier("b")]
    decks = {
        "deck-a": deck("deck-a", [rate("447", 9_000), rate("4474", 1_000), rate("1616", 1_000)]),
        "deck-b": deck("deck-b", [rate("447", 2_000), rate("4474", 5_000), rate("1616", 5_000)]),
    }
    entries = [
        RouteEntry("447", "a"),
        RouteEntry("447", "b"),
        RouteEntry("16", "a"),
        RouteEntry("16", "b"),
    ]
    r = router(
        carriers,
        decks,
        entries,
        portability=builder.build(),
        settings=LcrSettings(portability_mode=mode),
    )  # type: ignore[arg-type]
    decision = r.route(request())
    resolution = decision.resolution
    assert (resolution.routing_number, resolution.rating_number, resolution.ported_carrier) == (
        routing,
        rating_number,
        "vodafone-uk",
    )
    assert [x.carrier_id for x in decision.routes] == ["a", "b"]
    assert decision.routes[0].number == sent  # carrier a wants the routing number
    assert decision.routes[1].number == NUMBER  # carrier b the dialled one
    unported = r.route(request("447700900999"))
    assert not unported.resolution.ported and [x.carrier_id for x in unported.routes] == ["b", "a"]


def test_caller_id_account_rule_then_carrier_or_trunk_rule() -> None:
    rules = [
        CallerIdRule("intl", CallerIdAction.REWRITE, strip=0, add="+"),
        CallerIdRule("pool", CallerIdAction.REPLACE, pool_id="uk"),
        CallerIdRule("hide", CallerIdAction.WITHHOLD),
        CallerIdRule("national", CallerIdAction.REWRITE, strip=3, add="0", when="+44"),
    ]
    carriers = [
        carrier("a", caller_id_rule="national"),
        carrier("b"),
        carrier("c", caller_id_rule="hide"),
    ]
    trunks = [Trunk("b1", "b", caller_id_rule="pool")]
    decks = {
        f"deck-{c}": deck(f"deck-{c}", [rate("44", 1_000 * (i + 1))]) for i, c in enumerate("abc")
    }
    r = router(
        carriers,
        decks,
        [RouteEntry("44", c) for c in "abc"],
        trunks=trunks,
        bindings=[Binding(BindingKind.ACCOUNT, "acct", "plan", caller_id_rule="intl")],
        caller_id_rules=rules,
        pools=[CallerIdPool("uk", ("442070000001", "442070000002", "442070000003"))],
    )
    decision = r.route(request(calling="441632960001"))
    by_carrier = {x.carrier_id: x.caller_id for x in decision.routes}
    assert by_carrier["a"] == "01632960001"
    assert by_carrier["b"] in ("442070000001", "442070000002", "442070000003")
    assert by_carrier["c"] == ""
    again = r.route(request(calling="441632960001", seed=99))
    assert {x.carrier_id: x.caller_id for x in again.routes} == by_carrier
    assert r.route(request(calling="")).routes[0].caller_id == ""


def test_unknown_carriers_and_missing_decks_are_skipped_with_reasons() -> None:
    r = router(
        [carrier("nodeck", deck_id=None), carrier("ok")],
        {"deck-ok": deck("deck-ok", [rate("44", 1_000)])},
        [RouteEntry("44", "ghost"), RouteEntry("44", "nodeck"), RouteEntry("44", "ok")],
    )
    decision = r.route(request())
    assert [(s.carrier_id, s.reason) for s in decision.skipped] == [
        ("ghost", SkipReason.UNKNOWN_CARRIER),
        ("nodeck", SkipReason.NO_DECK),
    ]


def test_a_rebuilt_router_reuses_the_deck_index_only_over_the_same_decks() -> None:
    carriers, decks, entries = three_carriers()
    first = router(carriers, decks, entries)
    same = router(carriers, dict(decks), entries[:2])
    again = Router(same.catalog, LcrSettings(), reuse=first)
    assert again._union is first._union
    changed = dict(decks, **{"deck-mid": deck("deck-mid", [rate("44", 2_000)])})
    rebuilt = Router(router(carriers, changed, entries).catalog, LcrSettings(), reuse=first)
    assert rebuilt._union is not first._union
    assert [r.cost_micros for r in rebuilt.route(request()).routes] == [4_000, 10_000, 24_000]
