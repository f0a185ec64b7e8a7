"""What a verdict leads to: actions, audit entries with how to undo them, metrics, cooldowns."""

from __future__ import annotations

import pytest
from fraud_helpers import T0, Clock, RecordingActions, RecordingLog

from fraud.metrics import ACTIONS, DECISIONS, DROPPED, MetricRegistry
from fraud.model import Hit, Stage, Verdict
from fraud.response import Responder
from fraud.rule import Action, Refusal

A = Action


def verdict(*actions: Action, rule: str = "calls_per_minute", **values: str | int) -> Verdict:
    hit = Hit(
        rule,
        actions,
        Refusal.FRAUD,
        "61 call attempts in 60 s, more than 60",
        values or {"calls": 61, "max_calls": 60},
        target="88216",
    )
    return Verdict(Stage.ATTEMPT, "alice", "s1", "88216123456", "+882", T0, (hit,))


@pytest.mark.parametrize(
    ("actions", "calls", "undo"),
    [
        pytest.param((A.ALERT,), [("alert", "alice", "calls_per_minute")], [], id="alert-only"),
        pytest.param(
            (A.REFUSE,),
            [],
            [
                "refuse: only this call; to let such calls through, operator: ocsd fraud rule set "
                "calls_per_minute --account alice KEY=VALUE"
            ],
            id="refuse",
        ),
        pytest.param(
            (A.BLOCK_DESTINATION,),
            [("block_destination", "alice", "88216")],
            ["block_destination: operator: ocsd fraud unblock --account alice 88216"],
            id="block-destination",
        ),
        pytest.param(
            (A.SUSPEND_ACCOUNT,),
            [("suspend_account", "alice")],
            ["suspend_account: operator: ocsd account set alice --status active"],
            id="suspend-account",
        ),
        pytest.param(
            (A.TERMINATE_SESSIONS,),
            [("terminate_sessions", "alice")],
            ["terminate_sessions: cannot be undone (the calls were cut)"],
            id="terminate-sessions",
        ),
        pytest.param(
            (A.REFUSE, A.BLOCK_DESTINATION, A.SUSPEND_ACCOUNT, A.TERMINATE_SESSIONS, A.ALERT),
            [
                ("block_destination", "alice", "88216"),
                ("suspend_account", "alice"),
                ("terminate_sessions", "alice"),
                ("alert", "alice", "calls_per_minute"),
            ],
            None,
            id="everything",
        ),
    ],
)
async def test_each_action(
    actions: tuple[Action, ...], calls: list[tuple[str, ...]], undo: list[str] | None
) -> None:
    done = RecordingActions()
    audit = RecordingLog()
    metrics = MetricRegistry()
    responder = Responder(done, audit, metrics, clock=Clock())
    decisions = responder.submit(verdict(*actions))
    assert done.calls == [], "nothing is done on the call's path"
    assert await responder.drain() == 1
    assert done.calls == calls
    assert audit.entries == list(decisions)
    entry = audit.entries[0]
    assert entry.rule_id == "calls_per_minute" and entry.actions == actions
    assert entry.values == {"calls": 61, "max_calls": 60}
    if undo is not None:
        assert list(entry.undo) == undo
    for action in actions:
        assert metrics.value(DECISIONS, rule="calls_per_minute", action=action.value) == 1


async def test_the_alert_carries_the_whole_story() -> None:
    done = RecordingActions()
    responder = Responder(done, node="node-a", clock=Clock())
    responder.submit(verdict(A.SUSPEND_ACCOUNT, A.ALERT))
    await responder.drain()
    event = done.alerts[0]
    assert event["event"] == "fraud.rule_tripped"
    assert event["node"] == "node-a"
    assert event["at"] == "2026-01-01T00:00:00+00:00"
    assert event["actions"] == ["suspend_account", "alert"]
    assert event["values"] == {"calls": 61, "max_calls": 60}
    assert event["undo"] == ["suspend_account: operator: ocsd account set alice --status active"]


@pytest.mark.parametrize(
    ("rule", "values", "hint"),
    [
        pytest.param(
            "deny_destination",
            {"prefix": "4470", "list": "deny", "scope": "account"},
            "ocsd fraud deny --account alice --remove 4470",
            id="account-deny",
        ),
        pytest.param(
            "deny_destination",
            {"prefix": "4470", "list": "deny", "scope": "global"},
            "ocsd fraud allow --account alice 4470",
            id="global-deny",
        ),
        pytest.param(
            "counter_store",
            {"error": "connection refused"},
            "fraud.actions.counter_failure: static_only",
            id="counters-down",
        ),
        pytest.param(
            "deny_destination",
            {"prefix": "4470", "list": "blocked", "scope": "account"},
            "ocsd fraud unblock --account alice 4470",
            id="blocked",
        ),
        pytest.param(
            "dnc",
            {"number": "4412", "list": "global"},
            "ocsd fraud dnc --global --remove 4412",
            id="dnc",
        ),
        pytest.param(
            "high_risk_destination",
            {"range": "882"},
            "ocsd fraud optin --account alice 882",
            id="high-risk",
        ),
        pytest.param("peer_ip", {"peer": "sbc1"}, "ocsd fraud ip --peer sbc1 <CIDR>", id="peer-ip"),
    ],
)
async def test_how_to_let_refused_calls_through(
    rule: str, values: dict[str, str], hint: str
) -> None:
    responder = Responder(RecordingActions(), clock=Clock())
    (decision,) = responder.submit(verdict(A.REFUSE, rule=rule, **values))
    assert decision.undo[0].endswith(hint)


async def test_repeated_actions_are_suppressed_within_the_cooldown() -> None:
    done = RecordingActions()
    audit = RecordingLog()
    clock = Clock()
    responder = Responder(done, audit, cooldown_s=300, clock=clock)
    actions = (A.SUSPEND_ACCOUNT, A.BLOCK_DESTINATION, A.ALERT)
    responder.submit(verdict(*actions))
    clock.now += 299
    responder.submit(verdict(*actions))
    clock.now += 2
    responder.submit(verdict(*actions))
    await responder.drain()
    assert [c[0] for c in done.calls].count("suspend_account") == 2
    assert [c[0] for c in done.calls].count("alert") == 2
    assert len(audit.entries) == 3, "every decision is audited, repeated or not"
    assert audit.entries[1].suppressed == actions
    assert responder.metrics.value(ACTIONS, action="alert", result="suppressed") == 1


async def test_a_full_queue_drops_and_counts() -> None:
    responder = Responder(RecordingActions(), queue_size=2, clock=Clock(), cooldown_s=0)
    for _ in range(3):
        responder.submit(verdict(A.ALERT))
    assert responder.pending == 2
    assert responder.metrics.value(DROPPED, queue="decisions") == 1


async def test_a_failing_action_does_not_stop_the_others() -> None:
    done = RecordingActions(fail={"suspend_account"})
    audit = RecordingLog()
    responder = Responder(done, audit, clock=Clock())
    responder.submit(verdict(A.SUSPEND_ACCOUNT, A.TERMINATE_SESSIONS, A.ALERT))
    await responder.drain()
    assert [c[0] for c in done.calls] == ["terminate_sessions", "alert"]
    assert audit.entries[0].undo[-1] == "failed: suspend_account"
    assert responder.metrics.value(ACTIONS, action="suspend_account", result="failed") == 1


async def test_the_worker_runs_in_the_background_and_drains_on_close() -> None:
    done = RecordingActions()
    audit = RecordingLog()
    responder = Responder(done, audit, clock=Clock(), cooldown_s=0)
    responder.start()
    for _ in range(5):
        responder.submit(verdict(A.ALERT))
    await responder.close()
    assert len(done.calls) == 5 and len(audit.entries) == 5
    assert responder.pending == 0
