"""The checks as the charging service runs them: lists first, one counter step, then actions."""

from __future__ import annotations

from decimal import Decimal

from fraud_helpers import ALERT, REFUSE, T0, Clock, RecordingActions, engine, entry, quiet_rules

from fraud.counters import CounterPlan, CounterStoreUnavailable, CounterValues
from fraud.embedded_counter_store import EmbeddedCounterStore
from fraud.guard import COUNTER_STORE_RULE, FraudGuard
from fraud.listing import ListKind
from fraud.metrics import CHECKS, COUNTER_ERRORS
from fraud.model import CallAttempt, CallUsage
from fraud.response import Responder
from fraud.rule import (
    Action,
    CallRateRule,
    ConcurrentRule,
    MatchRule,
    NewCountryRule,
    SpendRule,
)


class SpyStore(EmbeddedCounterStore):
    """The embedded store, counting its steps, and failing on demand."""

    def __init__(self) -> None:
        super().__init__(None)
        self.applied: list[CounterPlan] = []
        self.down = False

    async def apply(self, plan: CounterPlan) -> CounterValues:
        if self.down:
            raise CounterStoreUnavailable("connection refused")
        self.applied.append(plan)
        return await super().apply(plan)


def attempt(session: str = "s1", called: str = "88216123456", now: float = T0) -> CallAttempt:
    return CallAttempt("alice", called, now, session, source_ip="10.0.0.1", peer="sbc1")


async def test_a_list_refusal_costs_no_counter_step() -> None:
    store = SpyStore()
    guard = FraudGuard(
        engine(
            quiet_rules(
                deny_destination=MatchRule(True, REFUSE),
                calls_per_minute=CallRateRule(True, 5, 60, REFUSE),
            ),
            [entry(ListKind.DENY, "882")],
        ),
        store,
    )
    verdict = await guard.check(attempt())
    assert verdict.refused and verdict.refusal is not None
    assert verdict.refusal.rule_id == "deny_destination"
    assert store.applied == []
    assert guard.metrics.value(CHECKS, stage="attempt", outcome="refuse") == 1


async def test_the_threshold_refuses_after_it_is_reached() -> None:
    store = SpyStore()
    guard = FraudGuard(
        engine(quiet_rules(calls_per_minute=CallRateRule(True, 3, 60, REFUSE))), store
    )
    outcomes = [(await guard.check(attempt(f"s{i}", now=T0 + i))).refused for i in range(5)]
    assert outcomes == [False, False, False, True, True]
    assert len(store.applied) == 5, "one counter step per check"


async def test_a_refusal_the_gate_did_not_see_leaves_the_live_calls() -> None:
    store = SpyStore()
    rules = quiet_rules(
        concurrent_calls=ConcurrentRule(True, 100, ALERT),
        new_country=NewCountryRule(True, 1, REFUSE),
    )
    guard = FraudGuard(engine(rules), store)
    await guard.record_end(CallUsage("alice", "s0", "442071234567", T0, 0, 60, True, 60))
    verdict = await guard.check(attempt("s1"))
    assert verdict.refused and verdict.refusal is not None
    assert verdict.refusal.rule_id == "new_country"
    await guard.settle()
    live = await guard.preview(attempt("probe"))
    assert live.counters["live"] == 1, "only the probe: s1 was taken out"


async def test_counter_store_down_checks_the_lists_only_by_default() -> None:
    store = SpyStore()
    store.down = True
    rules = quiet_rules(
        dnc=MatchRule(True, REFUSE), calls_per_minute=CallRateRule(True, 0, 60, REFUSE)
    )
    guard = FraudGuard(engine(rules, [entry(ListKind.DNC, "4412")]), store)
    allowed = await guard.check(attempt())
    assert not allowed.refused and allowed.degraded
    refused = await guard.check(attempt(called="4412"))
    assert refused.refused, "the lists still apply"
    assert guard.metrics.value(COUNTER_ERRORS, operation="attempt") == 1


async def test_counter_store_down_can_refuse() -> None:
    store = SpyStore()
    store.down = True
    guard = FraudGuard(
        engine(quiet_rules(calls_per_minute=CallRateRule(True, 10, 60, REFUSE))),
        store,
        counter_failure="refuse",
    )
    verdict = await guard.check(attempt())
    assert verdict.refusal is not None and verdict.refusal.rule_id == COUNTER_STORE_RULE


async def test_a_call_that_turns_bad_mid_way_is_cut() -> None:
    store = SpyStore()
    done = RecordingActions()
    responder = Responder(done, clock=Clock())
    cut = (Action.SUSPEND_ACCOUNT, Action.TERMINATE_SESSIONS, Action.ALERT)
    guard = FraudGuard(
        engine(quiet_rules(spend_per_hour=SpendRule(True, Decimal(5), 3600, cut))),
        store,
        responder,
    )
    assert not (await guard.check(attempt())).refused
    quiet = await guard.record_interim(
        CallUsage("alice", "s1", "88216123456", T0 + 60, 3_000_000, 60, duration_s=60)
    )
    assert quiet is not None and quiet.hits == ()
    loud = await guard.record_interim(
        CallUsage("alice", "s1", "88216123456", T0 + 120, 3_000_000, 60, duration_s=120)
    )
    assert loud is not None and [h.rule_id for h in loud.hits] == ["spend_per_hour"]
    await responder.drain()
    assert [c[0] for c in done.calls] == ["suspend_account", "terminate_sessions", "alert"]


async def test_preview_changes_nothing_and_acts_on_nothing() -> None:
    store = SpyStore()
    done = RecordingActions()
    responder = Responder(done, clock=Clock())
    guard = FraudGuard(
        engine(quiet_rules(calls_per_minute=CallRateRule(True, 0, 60, REFUSE))), store, responder
    )
    verdict = await guard.preview(attempt())
    assert verdict.refused and verdict.counters["calls:60"] == 1
    assert store.applied == [] and responder.pending == 0


async def test_swapping_the_engine_takes_effect_at_the_next_check() -> None:
    guard = FraudGuard(engine(quiet_rules()), SpyStore())
    assert not (await guard.check(attempt())).refused
    previous = guard.swap(
        engine(quiet_rules(deny_destination=MatchRule(True, REFUSE)), [entry(ListKind.DENY, "8")])
    )
    assert previous is not guard.engine
    assert (await guard.check(attempt("s2"))).refused


async def test_end_of_call_runs_in_the_background() -> None:
    store = SpyStore()
    guard = FraudGuard(engine(quiet_rules(concurrent_calls=ConcurrentRule(True, 5, REFUSE))), store)
    await guard.check(attempt())
    assert guard.submit_end(CallUsage("alice", "s1", "88216123456", T0 + 30, 0, 30, True, 30))
    await guard.settle()
    probe = await guard.preview(attempt("probe"))
    assert probe.counters["live"] == 1
    await guard.close()
