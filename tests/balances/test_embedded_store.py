"""What only the embedded backend has: its file, its write lock and its durability settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from balances.embedded_store import EmbeddedBalanceStore
from balances.model import AccountLimits, DenyReason, Hold, LedgerKind, StepStatus
from balances.settings import EmbeddedStoreSettings
from balances.store import BackendUnavailable
from tests.balances.test_contract import T0, close, hold


async def test_everything_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hot.sqlite3"
    store = EmbeddedBalanceStore(path)
    await store.put_account(AccountLimits("acct"))
    await store.ledger("acct", LedgerKind.TOPUP, 1_000, "t1", b"", T0)
    await store.step(hold("s1", 0, Hold("v", 300), new=True, context=b"c"))
    await store.close()

    store = EmbeddedBalanceStore(path)
    try:
        state = await store.get_account("acct")
        assert state is not None and (state.balance_micros, state.held_micros) == (1_000, 300)
        again = await store.step(hold("s1", 0, Hold("v", 300), new=True, context=b"x"))
        assert (again.status, again.context) == (StepStatus.DUPLICATE, b"c")
        assert (await store.ledger("acct", LedgerKind.TOPUP, 1_000, "t1", b"", T0)).duplicate
        assert (await store.step(close("s1", 1, 100))).debited_micros == 100
        assert await store.queue_depth() == 2
    finally:
        await store.close()


async def test_wal_mode_and_synchronous_setting(tmp_path: Path) -> None:
    path = tmp_path / "hot.sqlite3"
    store = EmbeddedBalanceStore(path, EmbeddedStoreSettings(synchronous="FULL"))
    try:
        db = sqlite3.connect(path)
        try:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            db.close()
    finally:
        await store.close()


async def test_a_locked_file_is_unavailable_and_nothing_moves(tmp_path: Path) -> None:
    path = tmp_path / "hot.sqlite3"
    store = EmbeddedBalanceStore(path, EmbeddedStoreSettings(busy_timeout_ms=50))
    try:
        await store.put_account(AccountLimits("acct"))
        await store.ledger("acct", LedgerKind.TOPUP, 1_000, "t1", b"", T0)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process in the middle of a step
            with pytest.raises(BackendUnavailable):
                await store.step(hold("s1", 0, Hold("v", 300), new=True))
            with pytest.raises(BackendUnavailable):
                await store.ledger("acct", LedgerKind.TOPUP, 5, "t2", b"", T0)
            # readers are not blocked by a writer (WAL)
            state = await store.get_account("acct")
            assert state is not None and state.balance_micros == 1_000
            other.execute("ROLLBACK")
        finally:
            other.close()
        result = await store.step(hold("s1", 0, Hold("v", 300), new=True))
        assert result.status is StepStatus.OK
        state = await store.get_account("acct")
        assert state is not None and (state.balance_micros, state.held_micros) == (1_000, 300)
    finally:
        await store.close()


async def test_expired_tombstones_are_deleted_by_the_reaper_call(tmp_path: Path) -> None:
    path = tmp_path / "hot.sqlite3"
    store = EmbeddedBalanceStore(path)
    try:
        await store.put_account(AccountLimits("acct"))
        await store.step(hold("s1", 0, new=True))
        await store.step(close("s1", 1, 0, now_ms=T0))
        assert await store.expired_sessions(T0 + 600_000 - 1, 10) == []
        db = sqlite3.connect(path)
        try:
            assert db.execute("SELECT count(*) FROM sessions").fetchone() == (1,)
            await store.expired_sessions(T0 + 600_000, 10)
            assert db.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
        finally:
            db.close()
    finally:
        await store.close()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        EmbeddedStoreSettings(synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="poll_interval_ms"):
        EmbeddedStoreSettings(poll_interval_ms=0)


async def test_the_queue_of_an_older_file_is_counted_when_it_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "hot.sqlite3"
    store = EmbeddedBalanceStore(path)
    await store.put_account(AccountLimits("acct"))
    await store.ledger("acct", LedgerKind.TOPUP, 1_000, "t1", b"", T0)
    await store.ledger("acct", LedgerKind.TOPUP, 1_000, "t2", b"", T0)
    await store.close()
    with sqlite3.connect(path) as db:  # as a file written before the queue was counted
        db.execute("DROP TRIGGER records_counted_in")
        db.execute("DROP TRIGGER records_counted_out")
        db.execute("DROP TABLE record_count")
    db.close()

    store = EmbeddedBalanceStore(path, EmbeddedStoreSettings(max_record_queue=2))
    try:
        refused = await store.step(hold("s1", 0, Hold("v", 300), new=True))
        assert refused.reason is DenyReason.RECORD_QUEUE_FULL
        await store.ack_records(await store.read_records("w", 1, 0))
        assert (await store.step(hold("s1", 0, Hold("v", 300), new=True))).status is StepStatus.OK
        assert (await store.step(hold("s2", 0, Hold("v", 300), new=True))).status is StepStatus.OK
        await store.step(close("s1", 1, 100))
        refused = await store.step(hold("s3", 0, Hold("v", 300), new=True))
        assert refused.reason is DenyReason.RECORD_QUEUE_FULL
    finally:
        await store.close()
