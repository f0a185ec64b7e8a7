"""Routing master data on SQLite and on the real PostgreSQL: stored, audited, loaded, routed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from balances.model import AccountKind, AccountStatus
from lcr.model import (
    Binding,
    BindingKind,
    CallerIdAction,
    CallerIdRule,
    Carrier,
    NumberRule,
    QualityFloor,
    RouteEntry,
    RoutePlan,
    Trunk,
)
from lcr.router import Router, RouteRequest
from lcr.settings import LcrSettings
from ocsd.lcr_store import LcrStore
from ocsd.master import Account, Tenant
from ocsd.master_store import MasterDataError
from ocsd.schema import upgrade
from ocsd.sql_store import Database
from rating.deck_csv import DeckDefaults, parse_deck_csv
from rating.plan import TariffPlan

T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


@pytest.fixture
def store(records_url: str) -> Iterator[LcrStore]:
    with Database(records_url) as db:
        upgrade(db)
        yield LcrStore(db, actor="tester")


def rows(text: str) -> list:  # type: ignore[type-arg]
    return parse_deck_csv(text.encode(), filename="c.csv", defaults=DeckDefaults(effective_from=T0))


@pytest.fixture
def world(store: LcrStore) -> LcrStore:
    store.import_deck("sell", "USD", rows("prefix,rate\n44,0.02\n"), effective_from=T0)
    store.add_plan(TariffPlan("retail", deck_id="sell"))
    store.add_tenant(Tenant("op", None, "", "USD", None))
    store.add_account(
        Account(
            "acct",
            "op",
            "",
            AccountKind.PREPAID,
            "USD",
            0,
            None,
            None,
            None,
            "UTC",
            "retail",
            AccountStatus.ACTIVE,
        )
    )
    store.add_caller_id_rule(CallerIdRule("plus", CallerIdAction.REWRITE, add="+"))
    store.add_carrier(
        Carrier(
            "acme",
            currency="USD",
            tech_prefix="9901",
            number_rules=(NumberRule(when="44", strip=2, add="0044"),),
        )
    )
    store.add_carrier(Carrier("globex", currency="USD", caller_id_rule="plus"))
    store.import_carrier_deck(
        "acme", rows("prefix,rate,connect_fee\n44,0.005,0.001\n"), effective_from=T0
    )
    store.import_carrier_deck(
        "globex", rows("prefix,rate\n44,0.004\n447,0.03\n"), effective_from=T0
    )
    store.add_trunk(Trunk("acme-1", "acme", address="192.0.2.10:5060", max_calls=50))
    store.add_route_plan(RoutePlan("wholesale", strategy="least_cost", typical_duration_s=60))
    store.add_route_entry("wholesale", RouteEntry("44", "acme"))
    store.add_route_entry("wholesale", RouteEntry("44", "globex", priority=1))
    store.bind(Binding(BindingKind.TARIFF_PLAN, "retail", "wholesale"))
    return store


def route(store: LcrStore, number: str) -> list[tuple[str, str, str]]:
    decks = {d: store.load_deck(d) for d in store.deck_ids()}
    router = Router(store.load_catalog(decks), LcrSettings(), home_currency="USD")
    decision = router.route(
        RouteRequest("acct", number, T0 + 10, tariff_plan_id="retail", calling="441632960001")
    )
    return [(r.carrier_id, r.number, r.caller_id) for r in decision.routes]


def test_routing_data_round_trips_and_routes(world: LcrStore) -> None:
    assert world.get_carrier("acme").deck_id == "carrier.acme"  # type: ignore[union-attr]
    assert world.get_carrier("acme").number_rules == (NumberRule(when="44", strip=2, add="0044"),)  # type: ignore[union-attr]
    # 60 s: globex 0.004 < acme 0.005 + 0.001 fee.
    assert route(world, "442071234567") == [
        ("globex", "442071234567", "+441632960001"),
        ("acme", "990100442071234567", "441632960001"),
    ]
    # Mobile: globex's 447 rate (0.03/min) costs more than the call sells for: skipped.
    assert [c for c, _, _ in route(world, "447700900123")] == ["acme", "globex"]


def test_changes_are_audited_field_by_field(world: LcrStore) -> None:
    world.update_carrier("acme", enabled=False, max_calls=30)
    world.update_trunk("acme-1", address="192.0.2.11")
    world.update_route_plan(
        "wholesale", strategy="quality", quality_floor=QualityFloor(min_asr=0.3)
    )
    world.set_prefix_strategy("wholesale", "447", "priority")
    carrier = world.get_carrier("acme")
    assert carrier is not None and not carrier.enabled and carrier.max_calls == 30
    fields = {(e[3], e[5], e[6], e[7]) for e in world.audit_entries(limit=500)}
    assert ("carrier", "enabled", "True", "False") in fields
    assert ("carrier", "max_calls", "0", "30") in fields
    assert ("trunk", "address", "192.0.2.10:5060", "192.0.2.11") in fields
    assert ("route_plan", "strategy", "least_cost", "quality") in fields
    assert ("route_plan", "floor_min_asr", "0.0", "0.3") in fields
    assert ("route_plan", "strategy 447", None, "priority") in fields
    assert ("carrier", "deck_id", None, "carrier.acme") in fields
    assert ("plan", "route_plan_id", None, "wholesale") in fields
    plan = world.route_plans()["wholesale"]
    assert plan.strategy == "quality" and plan.prefix_strategies == (("447", "priority"),)
    world.remove_route_entry("wholesale", "44", "globex")
    assert [e.carrier_id for e in world.route_plans()["wholesale"].entries] == ["acme"]


@pytest.mark.parametrize(
    ("action", "message"),
    [
        pytest.param(lambda s: s.add_carrier(Carrier("acme")), "exists", id="duplicate-carrier"),
        pytest.param(
            lambda s: s.add_carrier(Carrier("x", currency="XXX")), "unknown currency", id="currency"
        ),
        pytest.param(
            lambda s: s.add_carrier(Carrier("x", currency="EUR", deck_id="carrier.acme")),
            "bills in EUR",
            id="deck-currency",
        ),
        pytest.param(
            lambda s: s.add_trunk(Trunk("t", "ghost")), "no carrier", id="trunk-of-nobody"
        ),
        pytest.param(
            lambda s: s.add_route_entry("wholesale", RouteEntry("33", "ghost")),
            "no carrier",
            id="entry-carrier",
        ),
        pytest.param(
            lambda s: s.add_route_entry("wholesale", RouteEntry("44", "acme")),
            "already routes",
            id="entry-twice",
        ),
        pytest.param(
            lambda s: s.add_route_plan(RoutePlan("p2", strategy="cheapest")),
            "unknown routing strategy",
            id="strategy",
        ),
        pytest.param(
            lambda s: s.bind(Binding(BindingKind.ACCOUNT, "nobody", "wholesale")),
            "no account",
            id="bind-account",
        ),
        pytest.param(
            lambda s: s.bind(Binding(BindingKind.ACCOUNT, "acct", "nothing")),
            "no route plan",
            id="bind-plan",
        ),
        pytest.param(
            lambda s: s.add_caller_id_rule(
                CallerIdRule("r", CallerIdAction.REPLACE, pool_id="none")
            ),
            "no caller-ID pool",
            id="pool",
        ),
        pytest.param(
            lambda s: s.update_carrier("acme", priority=-1), "must not be negative", id="bad-update"
        ),
    ],
)
def test_inconsistent_changes_are_refused(world: LcrStore, action, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MasterDataError, match=message):
        action(world)


def test_portability_bulk_import_replace_then_update(world: LcrStore) -> None:
    numbers = [(f"4477009{i:05d}", f"44740000{i % 7}", f"net{i % 3}") for i in range(20_000)]
    count, removed = world.import_portability(iter(numbers), source="full.csv")
    assert (count, removed) == (20_000, 0)
    index = world.load_portability()
    assert len(index) == 20_000
    found = index.lookup("447700912345")
    assert found is not None and (found.routing_number, found.carrier_id) == ("447400004", "net0")
    changes = [
        ("447700912345", "", ""),
        ("447700900001", "447400009", "net9"),
        ("15550001", "1555999", ""),
    ]
    count, removed = world.import_portability(iter(changes), mode="update")
    assert (count, removed) == (3, 0)
    index = world.load_portability()
    assert len(index) == 20_000 and index.lookup("447700912345") is None
    assert index.lookup("447700900001").routing_number == "447400009"  # type: ignore[union-attr]
    assert index.lookup("15550001") is not None
    count, removed = world.import_portability(iter(numbers[:10]))
    assert (count, removed) == (10, 19_990)
    with pytest.raises(MasterDataError, match="row 2"):
        world.import_portability(iter([("1", "2", ""), ("12ab", "3", "")]))
    assert len(world.load_portability()) == 10
    audit = world.audit_entries("portability")
    assert len(audit) == 3


def test_pools_and_caller_id_rules(world: LcrStore) -> None:
    assert world.add_pool_numbers("uk", ["+442070000001", "442070000002", "442070000001"]) == 2
    world.add_caller_id_rule(CallerIdRule("pool", CallerIdAction.REPLACE, pool_id="uk"))
    world.bind(Binding(BindingKind.ACCOUNT, "acct", None, "pool"))
    assert world.pools()["uk"].numbers == ("442070000001", "442070000002")
    decks = {d: world.load_deck(d) for d in world.deck_ids()}
    router = Router(world.load_catalog(decks), LcrSettings(), home_currency="USD")
    decision = router.route(
        RouteRequest(
            "acct", "442071234567", T0 + 10, tariff_plan_id="retail", calling="441632960001"
        )
    )
    assert decision.ok
    assert {r.caller_id for r in decision.routes} <= {
        "442070000001",
        "442070000002",
        "+442070000001",
        "+442070000002",
    }
    assert world.update_route_plan(
        "wholesale", min_margin_percent=Decimal("12.5")
    ).min_margin_percent == Decimal("12.5")
