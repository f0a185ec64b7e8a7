"""The pure evaluator: one table per stage, every rule tripping and not tripping."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal

import pytest
from fraud_helpers import ALERT, REFUSE, T0, all_rules, engine, entry, quiet_rules

from fraud.counters import CounterValues, OpKind
from fraud.engine import FraudEngine
from fraud.listing import ListEntry, ListKind, Scope
from fraud.model import CallAttempt, CallUsage, Stage
from fraud.rule import (
    Action,
    CallRateRule,
    ConcurrentRule,
    MatchRule,
    MinutesRule,
    NewCountryRule,
    Refusal,
    Rules,
    ShortCallRule,
    SpendRule,
)

A = Scope.ACCOUNT
ACTIONS = (Action.REFUSE, Action.ALERT)


def attempt(**changes: object) -> CallAttempt:
    base = CallAttempt(
        account_id="alice",
        called="442071234567",
        now=T0,
        session_id="s1",
        calling="33612345678",
        source_ip="10.0.0.1",
        peer="sbc1",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


ATTEMPT_CASES = [
    # caller equals callee
    pytest.param(
        {"caller_is_callee": MatchRule(True, ACTIONS)},
        [],
        {"calling": "442071234567"},
        {},
        ("caller_is_callee",),
        id="caller-is-callee",
    ),
    pytest.param(
        {"caller_is_callee": MatchRule(True, ACTIONS)},
        [],
        {},
        {},
        (),
        id="caller-differs",
    ),
    # source address of the peer
    pytest.param(
        {"peer_ip": MatchRule(True, ACTIONS)},
        [entry(ListKind.IP, "10.9.0.0/16", Scope.PEER, "sbc1")],
        {},
        {},
        ("peer_ip",),
        id="peer-outside-its-networks",
    ),
    pytest.param(
        {"peer_ip": MatchRule(True, ACTIONS)},
        [entry(ListKind.IP, "10.0.0.0/24", Scope.PEER, "sbc1")],
        {},
        {},
        (),
        id="peer-inside-its-networks",
    ),
    pytest.param(
        {"peer_ip": MatchRule(True, ACTIONS)},
        [entry(ListKind.IP, "10.9.0.0/16", Scope.PEER, "other")],
        {},
        {},
        (),
        id="peer-without-list",
    ),
    # source address of the account's calls
    pytest.param(
        {"account_ip": MatchRule(True, ACTIONS)},
        [entry(ListKind.IP, "192.0.2.0/24", A, "alice")],
        {"caller_ip": "198.51.100.7"},
        {},
        ("account_ip",),
        id="caller-outside-account-networks",
    ),
    pytest.param(
        {"account_ip": MatchRule(True, ACTIONS)},
        [entry(ListKind.IP, "192.0.2.0/24", A, "alice")],
        {"caller_ip": "192.0.2.7"},
        {},
        (),
        id="caller-inside-account-networks",
    ),
    pytest.param(
        {"account_ip": MatchRule(True, ACTIONS)},
        [entry(ListKind.IP, "10.0.0.0/8", A, "alice")],
        {},
        {},
        (),
        id="source-address-when-no-caller-address",
    ),
    # Do-Not-Call
    pytest.param(
        {"dnc": MatchRule(True, ACTIONS)},
        [entry(ListKind.DNC, "442071234567")],
        {},
        {},
        ("dnc",),
        id="dnc-global",
    ),
    pytest.param(
        {"dnc": MatchRule(True, ACTIONS)},
        [entry(ListKind.DNC, "442071234567", A, "bob")],
        {},
        {},
        (),
        id="dnc-of-another-account",
    ),
    pytest.param(
        {"dnc": MatchRule(True, ACTIONS)},
        [entry(ListKind.DNC, "4420712345")],
        {},
        {},
        (),
        id="dnc-is-exact",
    ),
    # destination lists
    pytest.param(
        {"deny_destination": MatchRule(True, ACTIONS)},
        [entry(ListKind.DENY, "44")],
        {},
        {},
        ("deny_destination",),
        id="deny-prefix",
    ),
    pytest.param(
        {"deny_destination": MatchRule(True, ACTIONS)},
        [entry(ListKind.DENY, "44"), entry(ListKind.ALLOW, "4420", A, "alice")],
        {},
        {},
        (),
        id="account-allow-overrides-deny",
    ),
    pytest.param(
        {"deny_destination": MatchRule(True, ACTIONS)},
        [entry(ListKind.BLOCKED, "4420712", A, "alice")],
        {},
        {},
        ("deny_destination",),
        id="blocked-destination",
    ),
    # high-risk ranges
    pytest.param(
        {"high_risk_destination": MatchRule(True, ACTIONS)},
        [entry(ListKind.HIGH_RISK, "882")],
        {"called": "88216123456"},
        {},
        ("high_risk_destination",),
        id="high-risk-without-opt-in",
    ),
    pytest.param(
        {"high_risk_destination": MatchRule(True, ACTIONS)},
        [entry(ListKind.HIGH_RISK, "882"), entry(ListKind.OPT_IN, "882", A, "alice")],
        {"called": "88216123456"},
        {},
        (),
        id="high-risk-opted-in",
    ),
    pytest.param(
        {"high_risk_destination": MatchRule(True, ACTIONS)},
        [entry(ListKind.HIGH_RISK, "882"), entry(ListKind.OPT_IN, "88299", A, "alice")],
        {"called": "88216123456"},
        {},
        ("high_risk_destination",),
        id="high-risk-opted-in-elsewhere",
    ),
    # velocity
    pytest.param(
        {"calls_per_minute": CallRateRule(True, 10, 60, ACTIONS)},
        [],
        {},
        {"calls:60": 11},
        ("calls_per_minute",),
        id="calls-per-minute-over",
    ),
    pytest.param(
        {"calls_per_minute": CallRateRule(True, 10, 60, ACTIONS)},
        [],
        {},
        {"calls:60": 10},
        (),
        id="calls-per-minute-at-limit",
    ),
    pytest.param(
        {"concurrent_calls": ConcurrentRule(True, 5, ACTIONS)},
        [],
        {},
        {"live": 6},
        ("concurrent_calls",),
        id="concurrent-over",
    ),
    pytest.param(
        {"concurrent_calls": ConcurrentRule(True, 5, ACTIONS)},
        [],
        {},
        {"live": 5},
        (),
        id="concurrent-at-limit",
    ),
    pytest.param(
        {"concurrent_calls": ConcurrentRule(True, 5, ACTIONS)},
        [],
        {"session_id": ""},
        {"live": 9},
        (),
        id="concurrent-needs-a-session",
    ),
    # spend
    pytest.param(
        {"spend_per_hour": SpendRule(True, Decimal(10), 3600, ACTIONS)},
        [],
        {},
        {"spend:3600": 10_000_000},
        ("spend_per_hour",),
        id="spend-per-hour-reached",
    ),
    pytest.param(
        {"spend_per_hour": SpendRule(True, Decimal(10), 3600, ACTIONS)},
        [],
        {},
        {"spend:3600": 9_999_999},
        (),
        id="spend-per-hour-below",
    ),
    pytest.param(
        {"spend_per_day": SpendRule(True, Decimal("50.5"), 86_400, ACTIONS)},
        [],
        {},
        {"spend:86400": 50_500_000},
        ("spend_per_day",),
        id="spend-per-day-reached",
    ),
    pytest.param(
        {"country_spend_per_hour": SpendRule(True, Decimal(5), 3600, ACTIONS)},
        [],
        {},
        {"cc:GB:spend:3600": 5_000_000},
        ("country_spend_per_hour",),
        id="country-spend-reached",
    ),
    pytest.param(
        {"country_spend_per_hour": SpendRule(True, Decimal(5), 3600, ACTIONS)},
        [],
        {},
        {"cc:FR:spend:3600": 9_000_000},
        (),
        id="country-spend-other-country",
    ),
    pytest.param(
        {"country_minutes_per_hour": MinutesRule(True, 60, 3600, ACTIONS)},
        [],
        {},
        {"cc:GB:secs:3600": 3600},
        ("country_minutes_per_hour",),
        id="country-minutes-reached",
    ),
    pytest.param(
        {"country_minutes_per_hour": MinutesRule(True, 60, 3600, ACTIONS)},
        [],
        {},
        {"cc:GB:secs:3600": 3599},
        (),
        id="country-minutes-below",
    ),
    # short calls
    pytest.param(
        {"short_calls": ShortCallRule(True, 6, 20, 300, ACTIONS)},
        [],
        {},
        {"short:6:300": 20},
        ("short_calls",),
        id="short-call-burst",
    ),
    pytest.param(
        {"short_calls": ShortCallRule(True, 6, 20, 300, ACTIONS)},
        [],
        {},
        {"short:6:300": 19},
        (),
        id="short-calls-below",
    ),
    # new country
    pytest.param(
        {"new_country": NewCountryRule(True, 1, ACTIONS)},
        [],
        {},
        {"countries?GB": 0, "countries#": 3},
        ("new_country",),
        id="new-country",
    ),
    pytest.param(
        {"new_country": NewCountryRule(True, 1, ACTIONS)},
        [],
        {},
        {"countries?GB": 1, "countries#": 3},
        (),
        id="known-country",
    ),
    pytest.param(
        {"new_country": NewCountryRule(True, 1, ACTIONS)},
        [],
        {},
        {"countries?GB": 0, "countries#": 0},
        (),
        id="new-account-has-no-history",
    ),
    pytest.param(
        {"new_country": NewCountryRule(True, 1, ACTIONS)},
        [entry(ListKind.ALLOW, "44", A, "alice")],
        {},
        {"countries?GB": 0, "countries#": 3},
        (),
        id="new-country-explicitly-allowed",
    ),
    # a disabled rule never trips
    pytest.param(
        {"calls_per_minute": CallRateRule(False, 10, 60, ACTIONS)},
        [],
        {},
        {"calls:60": 99},
        (),
        id="disabled",
    ),
]


@pytest.mark.parametrize(("rules", "entries", "changes", "counters", "expected"), ATTEMPT_CASES)
def test_attempt_rules(
    rules: dict[str, object],
    entries: list[ListEntry],
    changes: dict[str, object],
    counters: Mapping[str, int],
    expected: tuple[str, ...],
) -> None:
    checker = engine(quiet_rules(**rules), entries)
    verdict = checker.check(attempt(**changes), CounterValues(counters))
    assert tuple(h.rule_id for h in verdict.hits) == expected
    assert verdict.refused is bool(expected)
    assert verdict.stage is Stage.ATTEMPT
    if expected:
        hit = verdict.hits[0]
        assert hit.actions == ACTIONS
        assert hit.message
        assert hit.values


@pytest.mark.parametrize(
    ("rule_id", "refusal"),
    [
        pytest.param("deny_destination", Refusal.DESTINATION, id="deny"),
        pytest.param("dnc", Refusal.DESTINATION, id="dnc"),
        pytest.param("high_risk_destination", Refusal.DESTINATION, id="high-risk"),
        pytest.param("calls_per_minute", Refusal.FRAUD, id="velocity"),
    ],
)
def test_refusal_kind(rule_id: str, refusal: Refusal) -> None:
    checker = engine(
        all_rules(),
        [
            entry(ListKind.DENY, "4420"),
            entry(ListKind.DNC, "88216000"),
            entry(ListKind.HIGH_RISK, "8821"),
        ],
    )
    called = {
        "deny_destination": "442071234567",
        "dnc": "88216000",
        "high_risk_destination": "88216123",
        "calls_per_minute": "33123456",
    }[rule_id]
    verdict = checker.check(
        attempt(called=called, source_ip="", peer=""),
        CounterValues({"calls:60": 11, "countries?FR": 1}),
    )
    assert verdict.refusal is not None
    assert verdict.refusal.rule_id == rule_id
    assert verdict.refusal.refusal is refusal


def test_alert_only_hits_let_the_call_through() -> None:
    checker = engine(quiet_rules(calls_per_minute=CallRateRule(True, 1, 60, ALERT)))
    verdict = checker.check(attempt(), CounterValues({"calls:60": 5}))
    assert [h.rule_id for h in verdict.hits] == ["calls_per_minute"]
    assert not verdict.refused
    assert verdict.outcome == "alert"


def test_screen_reads_no_counters() -> None:
    checker = engine(all_rules(), [entry(ListKind.DENY, "44")])
    verdict = checker.screen(attempt(source_ip="", peer=""))
    assert [h.rule_id for h in verdict.hits] == ["deny_destination"]
    assert verdict.counters == {}


def test_the_attempt_plan_counts_the_attempt_and_gates_refusing_rules() -> None:
    rules = all_rules()
    rules = dataclasses.replace(rules, spend_per_day=SpendRule(True, Decimal(50), 86_400, ALERT))
    plan = engine(rules).attempt_plan(attempt(called="18765551234"))
    assert plan is not None
    assert plan.now_ms == int(T0 * 1000)
    ops = {op.label: op for op in plan.ops}
    assert set(ops) == {
        "calls:60",
        "spend:3600",
        "spend:86400",
        "short:6:300",
        "cc:JM:spend:3600",
        "cc:JM:secs:3600",
        "countries?JM",
        "countries#",
        "countries!JM",
        "live",
    }
    assert ops["calls:60"].add == 1 and ops["calls:60"].trip_at == 11
    assert ops["spend:3600"].trip_at == 10_000_000
    assert ops["spend:86400"].trip_at == -1, "an alert-only rule does not gate"
    assert ops["cc:JM:secs:3600"].trip_at == 3600
    assert ops["short:6:300"].trip_at == 20
    assert ops["live"].kind is OpKind.LIVE_ADD and ops["live"].member == "s1"
    assert ops["live"].trip_at == 6
    assert ops["countries?JM"].trip_at == -1
    assert ops["countries!JM"].kind is OpKind.SET_NEW
    assert ops["countries!JM"].add == 1 and ops["countries!JM"].trip_at == 1


def test_no_plan_without_counter_rules_or_when_disabled() -> None:
    assert engine(quiet_rules()).attempt_plan(attempt()) is None
    off = engine(all_rules(), enabled=False)
    assert off.attempt_plan(attempt()) is None
    assert off.check(attempt(calling="442071234567"), None).hits == ()


def usage(**changes: object) -> CallUsage:
    base = CallUsage(
        account_id="alice",
        session_id="s1",
        called="88216123456",
        now=T0 + 60,
        spend_micros=2_000_000,
        seconds=60,
        final=True,
        duration_s=60,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


USAGE_ACTIONS = (Action.SUSPEND_ACCOUNT, Action.TERMINATE_SESSIONS, Action.ALERT)

USAGE_CASES = [
    pytest.param(
        {"spend_per_hour": SpendRule(True, Decimal(10), 3600, USAGE_ACTIONS)},
        {},
        {"spend:3600": 11_000_000},
        ("spend_per_hour",),
        id="spend-reached-mid-call",
    ),
    pytest.param(
        {"spend_per_hour": SpendRule(True, Decimal(10), 3600, USAGE_ACTIONS)},
        {"spend_micros": 0},
        {"spend:3600": 11_000_000},
        (),
        id="nothing-spent-nothing-trips",
    ),
    pytest.param(
        {"country_spend_per_hour": SpendRule(True, Decimal(1), 3600, USAGE_ACTIONS)},
        {},
        {"cc:+882:spend:3600": 2_000_000},
        ("country_spend_per_hour",),
        id="country-spend",
    ),
    pytest.param(
        {"country_minutes_per_hour": MinutesRule(True, 1, 3600, USAGE_ACTIONS)},
        {},
        {"cc:+882:secs:3600": 60},
        ("country_minutes_per_hour",),
        id="country-minutes",
    ),
    pytest.param(
        {"short_calls": ShortCallRule(True, 6, 3, 300, USAGE_ACTIONS)},
        {"duration_s": 2, "seconds": 2},
        {"short:6:300": 3},
        ("short_calls",),
        id="short-call-burst",
    ),
    pytest.param(
        {"short_calls": ShortCallRule(True, 6, 3, 300, USAGE_ACTIONS)},
        {"duration_s": 60},
        {"short:6:300": 3},
        (),
        id="long-call-is-not-short",
    ),
]


@pytest.mark.parametrize(("rules", "changes", "counters", "expected"), USAGE_CASES)
def test_usage_rules(
    rules: dict[str, object],
    changes: dict[str, object],
    counters: Mapping[str, int],
    expected: tuple[str, ...],
) -> None:
    verdict = engine(quiet_rules(**rules)).check_usage(usage(**changes), CounterValues(counters))
    assert tuple(h.rule_id for h in verdict.hits) == expected
    assert verdict.stage is Stage.USAGE
    assert not verdict.refused, "a usage report never refuses"
    for hit in verdict.hits:
        assert hit.actions == USAGE_ACTIONS


@pytest.mark.parametrize(
    ("changes", "labels"),
    [
        pytest.param(
            {},
            {
                "spend:3600",
                "spend:86400",
                "cc:+882:spend:3600",
                "cc:+882:secs:3600",
                "live",
                "countries?+882",
            },
            id="answered-call",
        ),
        pytest.param(
            {"duration_s": 2, "seconds": 2, "spend_micros": 0},
            {"cc:+882:secs:3600", "short:6:300", "live", "countries?+882"},
            id="short-call",
        ),
        pytest.param(
            {"duration_s": 0, "seconds": 0, "spend_micros": 0},
            {"short:6:300", "live"},
            id="unanswered-counts-short",
        ),
        pytest.param(
            {"duration_s": 0, "seconds": 0, "spend_micros": 0, "connected": False},
            {"live"},
            id="refused-by-ocsd",
        ),
        pytest.param(
            {"final": False, "duration_s": 0},
            {
                "spend:3600",
                "spend:86400",
                "cc:+882:spend:3600",
                "cc:+882:secs:3600",
                "live",
                "countries?+882",
            },
            id="interim",
        ),
    ],
)
def test_usage_plan(changes: dict[str, object], labels: set[str]) -> None:
    plan = engine(all_rules()).usage_plan(usage(**changes))
    assert plan is not None
    assert {op.label for op in plan.ops} == labels
    live = next(op for op in plan.ops if op.name == "live")
    final = changes.get("final", True)
    assert live.kind is (OpKind.LIVE_REMOVE if final else OpKind.LIVE_TOUCH)
    assert all(op.trip_at == -1 for op in plan.ops), "usage is never gated"


def test_account_overrides_apply_to_that_account_only() -> None:
    checker = engine(
        quiet_rules(calls_per_minute=CallRateRule(True, 10, 60, REFUSE)),
        overrides={
            "": {"calls_per_minute": {"max_calls": 20}},
            "alice": {"calls_per_minute": {"max_calls": "5", "actions": ["alert"]}},
            "bob": {"calls_per_minute": {"enabled": False}},
        },
    )
    counters = CounterValues({"calls:60": 15})
    alice = checker.check(attempt(), counters)
    carol = checker.check(attempt(account_id="carol"), counters)
    bob = checker.check(attempt(account_id="bob"), counters)
    assert [h.actions for h in alice.hits] == [ALERT]
    assert carol.hits == (), "the global override raised the limit to 20"
    assert bob.hits == ()
    assert checker.rules_for("alice").calls_per_minute.max_calls == 5
    assert checker.problems == ()


def test_bad_overrides_are_reported_not_applied() -> None:
    checker = engine(
        Rules(),
        overrides={"alice": {"calls_per_minute": {"max_cals": 5}, "nope": {"enabled": False}}},
    )
    assert checker.rules_for("alice") == checker.rules
    assert len(checker.problems) == 2
    assert "calls_per_minute.max_cals: unknown setting" in checker.problems[0]
    assert "no rule 'nope'" in checker.problems[1]


def test_block_target_prefers_the_high_risk_range() -> None:
    checker = engine(entries=[entry(ListKind.HIGH_RISK, "8821")])
    assert checker.block_target("88216123") == "8821"
    assert checker.block_target("442071234567") == "442071234567"
    short = FraudEngine(block_prefix_digits=5)
    assert short.block_target("442071234567") == "44207"
