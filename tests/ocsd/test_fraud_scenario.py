"""A burst of calls to a premium range from one account, from the first call to the audit log.

The account may call the range (it opted in), but after the threshold its calls are refused,
the range is blocked for it, it is suspended, its live Diameter and RADIUS calls are cut, an
alert goes out, and the records tell the story. Runs on SQLite and on the real PostgreSQL,
with the embedded counters and with the real Redis.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from balances.model import AccountKind, AccountStatus
from fraud.counter_store import RedisCounterStore
from fraud.counters import CounterStore
from fraud.decision_sink import SqlDecisionLog
from fraud.embedded_counter_store import EmbeddedCounterStore
from fraud.guard import FraudGuard
from fraud.listing import ListEntry, ListKind, Scope
from fraud.model import CallAttempt, CallUsage
from fraud.response import Responder
from fraud.rule import Action, CallRateRule, Rules
from fraud.rule_store import FraudStore
from ocsd.config import Config
from ocsd.fraud_setup import RecordsFraudActions, load_fraud_engine
from ocsd.master import Account, Tenant
from ocsd.master_store import MasterStore
from ocsd.schema import upgrade
from ocsd.sql_store import Database
from rating.deck_csv import DeckDefaults, parse_deck_csv
from rating.plan import TariffPlan

REDIS_URL = os.environ.get("OCSD_TEST_REDIS", "redis://127.0.0.1:6379/0")
T0 = 1_767_225_600.0
PREMIUM = "88216"
"""Numbers in +882 16: a high-risk range by default."""

CUT = (
    Action.REFUSE,
    Action.BLOCK_DESTINATION,
    Action.SUSPEND_ACCOUNT,
    Action.TERMINATE_SESSIONS,
    Action.ALERT,
)


@pytest.fixture
def records(records_url: str) -> Iterator[str]:
    with Database(records_url) as db:
        upgrade(db)
        master = MasterStore(db, actor="tester")
        rows = parse_deck_csv(
            b"prefix,rate\n882,1.50\n", filename="d.csv", defaults=DeckDefaults(effective_from=0)
        )
        master.import_deck("retail", "USD", rows, effective_from=0)
        master.add_plan(TariffPlan("retail", deck_id="retail"))
        master.add_tenant(Tenant("op", None, "Operator", "USD", None))
        master.add_account(
            Account(
                "alice",
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
        FraudStore(db, actor="tester").add_entry(
            ListEntry(ListKind.OPT_IN, Scope.ACCOUNT, "alice", "882", note="premium reseller")
        )
    yield records_url


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.integration)])
async def counters(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CounterStore]:
    if request.param == "embedded":
        yield EmbeddedCounterStore(tmp_path / "fraud.sqlite3", now_ms=int(T0 * 1000))
        return
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        if os.environ.get("OCSD_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis not reachable: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    prefix = f"t{uuid.uuid4().hex[:12]}"
    try:
        yield RedisCounterStore.from_url(REDIS_URL, key_prefix=prefix, shards=16)
    finally:
        keys = list(client.scan_iter(match=f"{{{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


class Switches:
    """The daemon's side of ``terminate_sessions``: which live call is on which protocol."""

    def __init__(self) -> None:
        self.live = {"diam-1": ("diameter", "alice"), "rad-1": ("radius", "alice")}
        self.sent: list[tuple[str, str]] = []
        self.alerts: list[Mapping[str, Any]] = []

    async def terminate(self, account_id: str, reason: str) -> int:
        ended = [s for s, (_, owner) in self.live.items() if owner == account_id]
        for session in ended:
            protocol, _ = self.live.pop(session)
            message = "ASR" if protocol == "diameter" else "Disconnect-Request"
            self.sent.append((message, session))
        return len(ended)


async def test_a_premium_burst_is_stopped_and_the_records_tell_the_story(
    records: str, counters: CounterStore
) -> None:
    config = Config()
    config = replace(
        config,
        fraud=replace(
            config.fraud,
            rules=replace(Rules(), calls_per_minute=CallRateRule(True, 4, 60, CUT)),
        ),
    )
    with Database(records) as db:
        engine = load_fraud_engine(config, db)
    switches = Switches()
    reloads: list[int] = []

    async def reload() -> None:
        reloads.append(1)

    actions = RecordsFraudActions(
        records, terminate=switches.terminate, alert=switches.alerts.append, on_change=reload
    )
    decisions = SqlDecisionLog(lambda: Database(records), node="node-a")
    now = [T0]
    responder = Responder(actions, decisions, clock=lambda: now[0])
    guard = FraudGuard(engine, counters, responder, clock=lambda: now[0])

    # Two calls are up: one over Diameter, one over RADIUS.
    for session in ("diam-1", "rad-1"):
        verdict = await guard.check(CallAttempt("alice", f"{PREMIUM}000{session[-1]}", T0, session))
        assert not verdict.refused
    # Then the burst: 4 attempts a minute are allowed, the rest refused.
    outcomes = []
    for i in range(6):
        now[0] = T0 + 1 + i
        attempt = CallAttempt("alice", f"{PREMIUM}1234{i}", now[0], f"burst-{i}", peer="sbc1")
        verdict = await guard.check(attempt)
        outcomes.append(verdict.refused)
        if not verdict.refused:
            # The call is set up and fails at once (short call).
            await guard.record_end(CallUsage("alice", f"burst-{i}", attempt.called, now[0]))
    assert outcomes == [False, False, True, True, True, True]
    refusal = verdict.refusal
    assert refusal is not None and refusal.rule_id == "calls_per_minute"
    assert refusal.refusal.value == "fraud"  # -> DenialCode.FRAUD_SUSPECTED

    await guard.close()
    await decisions.close()
    await actions.close()

    # Live calls were cut once, whatever the number of refusals.
    assert switches.sent == [("ASR", "diam-1"), ("Disconnect-Request", "rad-1")]
    assert len(switches.alerts) == 1
    assert switches.alerts[0]["rule"] == "calls_per_minute"
    assert reloads, "the daemon was told to reload after the block and the suspension"

    with Database(records) as db:
        master = MasterStore(db)
        account = master.get_account("alice")
        assert account is not None and account.status is AccountStatus.SUSPENDED
        store = FraudStore(db)
        (blocked,) = store.entries(kind=ListKind.BLOCKED)
        assert blocked.entry.owner == "alice" and blocked.entry.value == "882"
        assert blocked.created_by == "fraud"
        # The audit log: who suspended the account and blocked the range, and how to undo.
        story = master.audit_entries(entity="account", entity_id="alice", limit=1)
        assert story[0][2:8] == ("fraud", "account", "alice", "status", "active", "suspended")
        (change,) = [c for c in store.changes() if c[2] == "fraud"]
        assert change[3:8] == ("fraud_list", "alice", "blocked", None, "882")
        decided = store.decisions(account_id="alice")
        assert len(decided) == 4, "one decision per refused call"
        last = decided[-1]
        assert last["rule_id"] == "calls_per_minute"
        assert last["details"] == {"calls": 5, "max_calls": 4, "window_s": 60}
        assert (
            last["actions"] == "refuse,block_destination,suspend_account,terminate_sessions,alert"
        )
        assert last["suppressed"] == ""
        assert "ocsd account set alice --status active" in "\n".join(last["undo"])
        assert "ocsd fraud unblock --account alice 882" in "\n".join(last["undo"])
        assert all(d["suppressed"] for d in decided[:-1]), "the repeats were not acted upon"

        # After the reload, the blocked range is refused outright.
        reloaded = load_fraud_engine(config, db)
    later = reloaded.screen(CallAttempt("alice", f"{PREMIUM}99", T0 + 3600))
    assert later.refusal is not None and later.refusal.rule_id == "deny_destination"
