"""Fraud lists, overrides and decisions on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from balances.model import AccountKind, AccountStatus
from fraud.decision_sink import SqlDecisionLog
from fraud.embedded_counter_store import EmbeddedCounterStore
from fraud.engine import FraudEngine
from fraud.guard import FraudGuard
from fraud.listing import ListEntry, ListKind, Scope
from fraud.model import CallAttempt, Decision, Stage
from fraud.rule import Action
from fraud.rule_store import FraudStore, FraudStoreError
from fraud.settings import FraudSettings
from ocsd.config import Config
from ocsd.fraud_setup import load_fraud_engine, refresh_fraud_engine
from ocsd.master import Account, Tenant
from ocsd.master_store import MasterStore
from ocsd.schema import upgrade
from ocsd.sql_store import Database
from rating.deck_csv import DeckDefaults, parse_deck_csv
from rating.plan import TariffPlan

T0 = 1_767_225_600.0


@pytest.fixture
def db(records_url: str) -> Iterator[Database]:
    with Database(records_url) as database:
        upgrade(database)
        master = MasterStore(database, actor="tester")
        rows = parse_deck_csv(
            b"prefix,rate\n44,0.01\n", filename="d.csv", defaults=DeckDefaults(effective_from=0)
        )
        master.import_deck("retail", "USD", rows, effective_from=0)
        master.add_plan(TariffPlan("retail", deck_id="retail"))
        master.add_tenant(Tenant("op", None, "Operator", "USD", None))
        for account_id in ("alice", "bob"):
            master.add_account(
                Account(
                    account_id,
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
        yield database


@pytest.fixture
def store(db: Database) -> FraudStore:
    return FraudStore(db, actor="tester")


def test_list_changes_are_audited_and_move_the_change_marker(store: FraudStore) -> None:
    before = store.change_marker()
    store.add_entry(ListEntry(ListKind.DENY, Scope.ACCOUNT, "alice", "+4470", note="ticket 12"))
    store.add_entry(ListEntry(ListKind.DNC, Scope.GLOBAL, "", "441234567"))
    store.add_entry(ListEntry(ListKind.IP, Scope.PEER, "sbc1", "192.0.2.9/24"))
    assert store.change_marker() > before
    stored = {(s.entry.kind, s.entry.owner, s.entry.value) for s in store.entries()}
    assert stored == {
        (ListKind.DENY, "alice", "4470"),
        (ListKind.DNC, "", "441234567"),
        (ListKind.IP, "sbc1", "192.0.2.0/24"),
    }
    (alice,) = store.entries(owner="alice")
    assert alice.created_by == "tester" and alice.entry.note == "ticket 12"
    store.remove_entry(ListKind.DENY, Scope.ACCOUNT, "alice", "4470")
    changes = store.changes()
    assert [(c[2], c[3], c[4], c[5], c[6], c[7]) for c in changes[:2]] == [
        ("tester", "fraud_list", "alice", "deny", "4470", None),
        ("tester", "fraud_list", "peer:sbc1", "ip", None, "192.0.2.0/24"),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param(
            ListEntry(ListKind.DENY, Scope.ACCOUNT, "nobody", "44"),
            "no account 'nobody'",
            id="unknown-account",
        ),
        pytest.param(
            ListEntry(ListKind.OPT_IN, Scope.GLOBAL, "", "882"),
            "account, not global",
            id="global-opt-in",
        ),
        pytest.param(
            ListEntry(ListKind.DENY, Scope.GLOBAL, "", "4x"), "is not a prefix", id="bad-prefix"
        ),
    ],
)
def test_bad_entries_are_refused(store: FraudStore, entry: ListEntry, message: str) -> None:
    with pytest.raises(FraudStoreError, match=message):
        store.add_entry(entry)


def test_duplicates_and_missing_entries(store: FraudStore) -> None:
    store.add_entry(ListEntry(ListKind.DENY, Scope.GLOBAL, "", "44"))
    with pytest.raises(FraudStoreError, match="already on the deny list of \\*"):
        store.add_entry(ListEntry(ListKind.DENY, Scope.GLOBAL, "", "+44"))
    with pytest.raises(FraudStoreError, match="33 is not on the deny list"):
        store.remove_entry(ListKind.DENY, Scope.GLOBAL, "", "33")


def test_blocking_is_idempotent_and_undone_by_unblock(store: FraudStore) -> None:
    assert store.block("alice", "882", "fraud rule calls_per_minute")
    assert not store.block("alice", "882", "again")
    (blocked,) = store.entries(kind=ListKind.BLOCKED)
    assert blocked.entry.note == "fraud rule calls_per_minute"
    store.unblock("alice", "882")
    assert store.entries(kind=ListKind.BLOCKED) == []


def test_overrides_merge_validate_and_clear(store: FraudStore) -> None:
    assert store.set_override(None, "calls_per_minute", {"max_calls": "30"}) == {"max_calls": 30}
    merged = store.set_override("alice", "calls_per_minute", {"max_calls": 5})
    merged = store.set_override("alice", "calls_per_minute", {"actions": "refuse,alert"})
    assert merged == {"max_calls": 5, "actions": ["refuse", "alert"]}
    with pytest.raises(FraudStoreError, match="max_cals: unknown setting"):
        store.set_override("alice", "calls_per_minute", {"max_cals": 1})
    with pytest.raises(FraudStoreError, match="no rule 'nope'"):
        store.set_override("alice", "nope", {"enabled": "false"})
    assert store.overrides() == {
        "": {"calls_per_minute": {"max_calls": 30}},
        "alice": {"calls_per_minute": {"max_calls": 5, "actions": ["refuse", "alert"]}},
    }
    store.clear_override("alice", "calls_per_minute")
    assert "alice" not in store.overrides()
    with pytest.raises(FraudStoreError, match="no override of calls_per_minute for alice"):
        store.clear_override("alice", "calls_per_minute")
    fields = [c[5] for c in store.changes(owner="alice")]
    assert fields == ["calls_per_minute"] * 3


def test_the_snapshot_builds_an_engine(store: FraudStore) -> None:
    store.add_entry(ListEntry(ListKind.BLOCKED, Scope.ACCOUNT, "alice", "4470"))
    store.set_override("alice", "deny_destination", {"actions": "refuse,alert"})
    data = store.snapshot()
    assert data.marker == store.change_marker()
    engine = FraudEngine.build(FraudSettings(), data)
    verdict = engine.screen(CallAttempt("alice", "447012345678", T0))
    assert verdict.refusal is not None
    assert verdict.refusal.rule_id == "deny_destination"
    assert verdict.refusal.actions == (Action.REFUSE, Action.ALERT)
    bob = engine.screen(CallAttempt("bob", "447012345678", T0))
    assert [h.rule_id for h in bob.hits] == ["high_risk_destination"], "4470 is high risk"


async def test_decisions_are_written_off_the_loop_and_read_back(
    db: Database, store: FraudStore, records_url: str
) -> None:
    decision = Decision(
        at=T0,
        account_id="alice",
        rule_id="calls_per_minute",
        actions=(Action.REFUSE, Action.SUSPEND_ACCOUNT),
        message="61 call attempts in 60 s, more than 60",
        values={"calls": 61, "max_calls": 60},
        stage=Stage.ATTEMPT,
        session_id="s1",
        called="88216123",
        target="882",
        undo=("suspend_account: operator: ocsd account set alice --status active",),
    )
    sink = SqlDecisionLog(lambda: Database(records_url), node="node-a")
    await sink.write([decision, decision])
    await sink.close()
    found = store.decisions(account_id="alice")
    assert len(found) == 2
    first = found[0]
    assert first["rule_id"] == "calls_per_minute"
    assert first["actions"] == "refuse,suspend_account"
    assert first["details"] == {"calls": 61, "max_calls": 60}
    assert first["undo"] == ["suspend_account: operator: ocsd account set alice --status active"]
    assert first["node"] == "node-a"
    assert first["at"].timestamp() == T0
    assert store.decisions(rule_id="dnc") == []


async def test_the_engine_is_reloaded_when_the_database_changes(
    db: Database, store: FraudStore, tmp_path: Path
) -> None:
    config = Config()
    guard = FraudGuard(load_fraud_engine(config, db), EmbeddedCounterStore(None))
    first = guard.engine
    assert not refresh_fraud_engine(guard, config, db), "nothing changed"
    assert guard.engine is first
    store.add_entry(ListEntry(ListKind.DENY, Scope.ACCOUNT, "alice", "44"))
    assert refresh_fraud_engine(guard, config, db)
    assert (await guard.check(CallAttempt("alice", "442071234567", T0, "s1"))).refused
    # A broken range file keeps the rules in force.
    bad = tmp_path / "ranges.txt"
    bad.write_text("88x\n")
    broken = replace(
        config,
        fraud=replace(config.fraud, lists=replace(config.fraud.lists, high_risk_files=(str(bad),))),
    )
    in_force = guard.engine
    assert not refresh_fraud_engine(guard, broken, db, force=True)
    assert guard.engine is in_force
