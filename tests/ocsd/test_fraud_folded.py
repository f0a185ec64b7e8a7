"""The fraud counter step folded into the opening hold (Redis): one round trip per
authorization, no money held for a refused call, and the same answers, audit entries and
actions as the checks run on their own before the hold."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest

from balances.redis_store import LuaGate, RedisBalanceStore
from balances.settings import RedisStoreSettings
from fraud.counter_store import FUNCTION_NAME, FUNCTION_SOURCE, RedisCounterStore
from fraud.engine import FraudData, FraudEngine
from fraud.guard import FraudGuard
from fraud.model import CallAttempt
from fraud.response import Responder
from fraud.rule import (
    Action,
    CallRateRule,
    ConcurrentRule,
    MinutesRule,
    NewCountryRule,
    Rules,
    ShortCallRule,
    SpendRule,
)
from fraud.settings import FraudSettings, ListSettings
from ocsd.charging import ChargingService, ChargingSettings
from ocsd.charging_types import (
    ChargingRequest,
    Denial,
    EventAction,
    Grant,
    Outcome,
    RequestType,
    UnitRequest,
)
from ocsd.directory import Candidate
from ocsd.fraud_setup import fraud_folds
from ocsd.master import IdentityKind
from tests.fraud.fraud_helpers import RecordingActions, RecordingLog
from tests.ocsd.world import REDIS_URL, Clock, World, build_master, delete_prefix, load_directory

pytestmark = pytest.mark.integration

SHARDS = 16
UK, FRANCE, GERMANY, CHINA = "+442071234567", "+33142278186", "+4930123456", "+8613812345678"
"""Germany and China have no rate in the test deck."""
REFUSE_ALERT = (Action.REFUSE, Action.ALERT)


def rules(**changes: object) -> Rules:
    """Every counter rule on; the thresholds only the tests' bursts reach."""
    big = 10**6
    base = Rules(
        calls_per_minute=CallRateRule(True, big, 60, REFUSE_ALERT),
        concurrent_calls=ConcurrentRule(True, big, REFUSE_ALERT),
        spend_per_hour=SpendRule(True, Decimal(big), 3600, REFUSE_ALERT),
        spend_per_day=SpendRule(True, Decimal(big), 86_400, REFUSE_ALERT),
        country_spend_per_hour=SpendRule(True, Decimal(big), 3600, REFUSE_ALERT),
        country_minutes_per_hour=MinutesRule(True, big, 3600, REFUSE_ALERT),
        short_calls=ShortCallRule(True, 6, big, 300, REFUSE_ALERT),
        new_country=NewCountryRule(False),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class Node:
    """A worker on Redis: balance store, fraud counters, guard and charging service."""

    world: World
    counters: RedisCounterStore
    guard: FraudGuard
    actions: RecordingActions
    decisions: RecordingLog

    @property
    def service(self) -> ChargingService:
        return self.world.service

    @property
    def store(self) -> RedisBalanceStore:
        assert isinstance(self.world.store, RedisBalanceStore)
        return self.world.store

    def round_trips(self) -> int:
        """Round trips to Redis so far, balance store and fraud counters together."""
        return self.store.round_trips + self.counters.round_trips

    async def held(self, account_id: str) -> tuple[int, int]:
        """Money held and sessions open."""
        state = await self.store.get_account(account_id)
        assert state is not None
        return state.held_micros, state.sessions


async def open_node(tmp_path: Path, fraud_rules: Rules | None, *, fold: bool = True) -> Node:
    records = tmp_path / "records.sqlite3"
    if not records.exists():
        build_master(records)
    directory = load_directory(records)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    store = RedisBalanceStore(
        RedisStoreSettings(url=REDIS_URL, key_prefix=prefix, shards=SHARDS),
        gate=LuaGate(FUNCTION_SOURCE, FUNCTION_NAME),
    )
    counters = RedisCounterStore.from_url(REDIS_URL, key_prefix=prefix, shards=SHARDS)
    clock = Clock()
    actions, decisions = RecordingActions(), RecordingLog()
    engine = FraudEngine.build(
        FraudSettings(
            enabled=fraud_rules is not None,
            rules=fraud_rules or Rules(),
            lists=ListSettings(high_risk_prefixes=()),
        ),
        FraudData(),
    )
    guard = FraudGuard(engine, counters, Responder(actions, decisions, clock=clock), clock=clock)
    service = ChargingService(
        ChargingSettings(),
        store,
        lambda: directory,
        node="test",
        clock=clock,
        fraud=guard if fraud_rules is not None else None,
        fold_fraud=fold and fraud_folds(store, guard),
    )
    world = World(store, directory, clock, service, prefix)
    await world.sync_accounts()
    for account_id in ("alice", "bob"):
        await world.topup(account_id, 5_000_000)
    return Node(world, counters, guard, actions, decisions)


@pytest.fixture
async def nodes(redis_available: str, tmp_path: Path) -> AsyncIterator[list[Node]]:
    opened: list[Node] = []
    yield opened
    for node in opened:
        await node.guard.close()
        await node.store.close()
        await delete_prefix(node.world.prefix)


def initial(session: str, to: str = UK, user: str = "alice") -> ChargingRequest:
    return ChargingRequest(
        session_id=session,
        request_number=0,
        request_type=RequestType.INITIAL,
        protocol="test",
        peer="switch-1",
        identities=(Candidate(IdentityKind.USERNAME, user),),
        calling="441632960001",
        called=to,
        units=(UnitRequest(requested_s=600),),
    )


def terminate(session: str, used_s: int, user: str = "alice") -> ChargingRequest:
    return replace(
        initial(session, user=user),
        request_number=1,
        request_type=RequestType.TERMINATE,
        units=(UnitRequest(used_s=used_s),),
    )


def answer(outcome: Outcome) -> tuple[str, str]:
    """What the switch is told: granted, or the denial's code and message."""
    if isinstance(outcome, Grant):
        return ("granted", str(outcome.units[0].granted_s))
    assert isinstance(outcome, Denial)
    return (outcome.code.value, outcome.message)


async def test_the_daemons_stores_fold_the_counters_into_the_hold(
    nodes: list[Node], tmp_path: Path
) -> None:
    nodes.append(await open_node(tmp_path, rules()))
    node = nodes[0]
    assert node.service.fold_fraud
    plain = RedisBalanceStore(RedisStoreSettings(url=REDIS_URL, key_prefix="x", shards=SHARDS))
    try:
        assert not fraud_folds(plain, node.guard), "a store built without the counters' gate"
    finally:
        await plain.close()
    other = RedisCounterStore.from_url(REDIS_URL, key_prefix="other", shards=SHARDS)
    try:
        guard = FraudGuard(node.guard.engine, other)
        assert not fraud_folds(node.store, guard), "the counters' keys in another slot"
    finally:
        await other.close()


async def test_an_authorization_costs_the_same_round_trips_with_or_without_fraud(
    nodes: list[Node], tmp_path: Path
) -> None:
    folded = await open_node(tmp_path, rules())
    apart = await open_node(tmp_path, rules(), fold=False)
    without = await open_node(tmp_path, None)
    nodes.extend((folded, apart, without))
    trips: dict[str, list[int]] = {}
    for name, node in (("folded", folded), ("apart", apart), ("without", without)):
        await node.service.handle(initial("warm-up"))  # loads the scripts
        trips[name] = []
        for i in range(5):
            before = node.round_trips()
            outcome = await node.service.handle(initial(f"s{i}", UK if i % 2 else FRANCE))
            trips[name].append(node.round_trips() - before)
            assert isinstance(outcome, Grant)
    assert trips["without"] == [1] * 5
    assert trips["folded"] == trips["without"], "the counter step rides in the hold"
    assert trips["apart"] == [2] * 5, "the counter step on its own, before the hold"
    # The counters were kept all the same.
    probe = CallAttempt("alice", UK.lstrip("+"), folded.world.clock(), "probe")
    preview = await folded.guard.preview(probe)
    assert preview.counters["live"] == 7, "the warm-up, five calls and the probe"
    assert preview.counters["calls:60"] == 7


async def test_a_refused_call_holds_no_money_and_opens_no_session(
    nodes: list[Node], tmp_path: Path
) -> None:
    node = await open_node(
        tmp_path, rules(calls_per_minute=CallRateRule(True, 2, 60, REFUSE_ALERT))
    )
    nodes.append(node)
    admitted = [await node.service.handle(initial(f"s{i}")) for i in range(2)]
    assert all(isinstance(o, Grant) for o in admitted)
    held = await node.held("alice")
    balance = await node.world.balance("alice")
    before = node.round_trips()
    refused = await node.service.handle(initial("s2"))
    assert node.round_trips() - before == 1, "refused in the hold's own round trip"
    assert answer(refused) == (
        "fraud_suspected",
        "3 call attempts in 60 s, more than 2",
    )
    assert await node.held("alice") == held, "nothing more held, no session opened"
    assert await node.world.balance("alice") == balance
    assert await node.store.get_session("alice", "s2") is None
    assert await node.store.find_session_account("s2") is None
    assert not node.service.has_session("s2")
    await node.guard.settle()
    assert sorted(await node.counters.live_sessions("alice", int(node.world.clock() * 1000))) == [
        "s0",
        "s1",
    ]
    # The refusal was audited and its actions taken, as before.
    await node.guard.close()
    assert [(d.rule_id, d.session_id) for d in node.decisions.entries] == [
        ("calls_per_minute", "s2")
    ]
    assert node.actions.calls == [("alert", "alice", "calls_per_minute")]
    # The admitted calls end normally and pay.
    for i in range(2):
        node.world.clock.advance(30)
        assert isinstance(await node.service.handle(terminate(f"s{i}", 30)), Grant)
    assert await node.held("alice") == (0, 0)
    cdrs = await node.world.cdrs()
    assert sorted(c.session_id for c, _ in cdrs) == ["s0", "s1"]


async def scenario(node: Node) -> list[tuple[str, str]]:
    """Calls that meet every path of the authorization with fraud checks."""
    service, clock = node.service, node.world.clock
    answers = [answer(await service.handle(initial("a1", UK)))]
    clock.advance(30)
    answers.append(answer(await service.handle(terminate("a1", 30))))
    await node.guard.settle()  # the end of the call is counted: the UK is a known country
    clock.advance(1)
    answers.append(answer(await service.handle(initial("a2", FRANCE))))  # a new country
    answers.append(answer(await service.handle(initial("a3", UK))))
    answers.append(answer(await service.handle(initial("a4", CHINA))))  # no rate, too many calls
    answers.append(answer(await service.handle(initial("b1", GERMANY, "bob"))))  # no rate only
    answers.append(answer(await service.handle(initial("a3", UK))))  # a repeat of a granted call
    await node.guard.settle()
    return answers


async def test_folded_and_apart_answer_audit_and_act_alike(
    nodes: list[Node], tmp_path: Path
) -> None:
    fraud_rules = rules(
        calls_per_minute=CallRateRule(True, 3, 60, REFUSE_ALERT),
        concurrent_calls=ConcurrentRule(True, 0, (Action.ALERT,)),
        new_country=NewCountryRule(True, 1, REFUSE_ALERT),
    )
    folded = await open_node(tmp_path, fraud_rules)
    apart = await open_node(tmp_path, fraud_rules, fold=False)
    nodes.extend((folded, apart))
    assert folded.service.fold_fraud and not apart.service.fold_fraud
    answers = [await scenario(node) for node in (folded, apart)]
    assert answers[0] == answers[1]
    assert [a[0] for a in answers[0]] == [
        "granted",
        "granted",
        "fraud_suspected",  # new_country
        "granted",
        "fraud_suspected",  # calls_per_minute wins over the missing rate
        "no_rate",
        "fraud_suspected",  # the repeat is one attempt too many
    ]
    now_ms = int(folded.world.clock() * 1000)
    live = [
        [await node.counters.live_sessions(user, now_ms) for user in ("alice", "bob")]
        for node in (folded, apart)
    ]
    assert live[0] == live[1]
    assert live[0][1] == [], "bob's call without a rate left the live calls"
    for node in (folded, apart):
        await node.guard.close()
    audits = [
        [(d.rule_id, d.session_id, d.message, dict(d.values)) for d in node.decisions.entries]
        for node in (folded, apart)
    ]
    assert audits[0] == audits[1]
    assert [(rule, session) for rule, session, _, _ in audits[0]] == [
        ("concurrent_calls", "a1"),
        ("concurrent_calls", "a2"),
        ("new_country", "a2"),
        ("concurrent_calls", "a3"),
        ("calls_per_minute", "a4"),
        ("concurrent_calls", "a4"),
        ("new_country", "a4"),
        ("concurrent_calls", "b1"),
        ("calls_per_minute", "a3"),
        ("concurrent_calls", "a3"),
    ]
    assert folded.actions.calls == apart.actions.calls
    # Money: only a3 is up, on both.
    for node in (folded, apart):
        assert (await node.held("alice"))[1] == 1
        assert await node.held("bob") == (0, 0)
    assert await folded.held("alice") == await apart.held("alice")


@pytest.mark.parametrize("policy", ["static_only", "refuse"])
async def test_redis_down_answers_as_the_counter_failure_policy_says(
    policy: Literal["static_only", "refuse"], tmp_path: Path
) -> None:
    dead = "redis://127.0.0.1:9/0"  # the discard port: nothing listens
    build_master(tmp_path / "records.sqlite3")
    directory = load_directory(tmp_path / "records.sqlite3")
    answers = []
    for fold in (True, False):
        store = RedisBalanceStore(
            RedisStoreSettings(url=dead, key_prefix="p", shards=SHARDS),
            gate=LuaGate(FUNCTION_SOURCE, FUNCTION_NAME),
        )
        counters = RedisCounterStore.from_url(dead, key_prefix="p", shards=SHARDS)
        engine = FraudEngine.build(
            FraudSettings(rules=rules(), lists=ListSettings(high_risk_prefixes=()))
        )
        guard = FraudGuard(engine, counters, counter_failure=policy)
        service = ChargingService(
            ChargingSettings(),
            store,
            lambda: directory,
            fraud=guard,
            fold_fraud=fold and fraud_folds(store, guard),
        )
        assert service.fold_fraud is fold
        try:
            answers.append(answer(await service.handle(initial("s1"))))
        finally:
            await guard.close()
            await store.close()
    assert answers[0] == answers[1]
    expected = "fraud_suspected" if policy == "refuse" else "service_unavailable"
    assert answers[0][0] == expected


async def test_a_refusal_the_gate_missed_ends_the_session_it_opened(
    nodes: list[Node], tmp_path: Path
) -> None:
    node = await open_node(tmp_path, rules(new_country=NewCountryRule(True, 1, REFUSE_ALERT)))
    nodes.append(node)
    # Take the new-country rule out of the gate, as a gate that disagreed with the verdict.
    node.guard.engine._default.new_country_gate = -1
    assert isinstance(await node.service.handle(initial("s1", UK)), Grant)
    node.world.clock.advance(30)
    assert isinstance(await node.service.handle(terminate("s1", 30)), Grant)
    await node.guard.settle()
    held, balance = await node.held("alice"), await node.world.balance("alice")
    refused = await node.service.handle(initial("s2", FRANCE))
    assert answer(refused)[0] == "fraud_suspected"
    assert await node.held("alice") == held == (0, 0), "the hold was released at once"
    assert await node.world.balance("alice") == balance, "and nothing was charged"
    assert await node.store.get_session("alice", "s2") is None
    assert not node.service.has_session("s2")
    await node.guard.settle()
    now_ms = int(node.world.clock() * 1000)
    assert await node.counters.live_sessions("alice", now_ms) == []


def debit(session: str, to: str = UK, action: EventAction | None = None) -> ChargingRequest:
    return replace(
        initial(session, to),
        request_type=RequestType.EVENT,
        units=(UnitRequest(requested_s=60),),
        action=action,
    )


async def test_one_off_charges_meet_the_same_rules_as_calls(
    nodes: list[Node], tmp_path: Path
) -> None:
    node = await open_node(
        tmp_path,
        rules(
            calls_per_minute=CallRateRule(True, 2, 60, REFUSE_ALERT),
            spend_per_hour=SpendRule(True, Decimal("0.015"), 3600, REFUSE_ALERT),
        ),
    )
    nodes.append(node)
    balance = await node.world.balance("alice")
    # A direct debit is a call to the fraud rules: two pass, the third is one too many.
    first = await node.service.handle(debit("e1"))
    await node.guard.settle()
    second = await node.service.handle(debit("e2"))
    third = await node.service.handle(debit("e3"))
    assert isinstance(first, Grant) and first.cost_micros == 10_000
    assert isinstance(second, Grant), second
    assert answer(third) == ("fraud_suspected", "3 call attempts in 60 s, more than 2")
    assert await node.world.balance("alice") == balance - 20_000, "the refused one paid nothing"
    # What both cost counted towards the spend rule.
    await node.guard.settle()
    preview = await node.guard.preview(CallAttempt("alice", UK.lstrip("+"), node.world.clock()))
    assert preview.counters["spend:3600"] == 20_000
    # Neither a repeat of a debit nor a refund is screened or counted again.
    assert isinstance(await node.service.handle(debit("e1")), Grant)
    refund = await node.service.handle(debit("r1", action=EventAction.REFUND))
    assert isinstance(refund, Grant) and refund.cost_micros == 10_000
    await node.guard.close()
    # The spend of the second one went over 0.015 an hour (when it was counted); the third
    # was one call too many.
    assert sorted((d.rule_id, d.session_id) for d in node.decisions.entries) == [
        ("calls_per_minute", "e3"),
        ("spend_per_hour", "e2"),
    ]
