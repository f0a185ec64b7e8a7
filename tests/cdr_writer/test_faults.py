"""Exactly-once under faults, against real Redis and a PostgreSQL server of the test's own.

Calls are charged through the Redis balance store (money and CDR in one Lua step), the writer
moves the queue to PostgreSQL, and faults are injected: the writer process killed with
SIGKILL mid-run, PostgreSQL shut down while calls keep ending, a batch written twice. At the
end the books must hold: one CDR row per charged call, the rows' debits equal to the money
that left the balance, rollups equal to the rows, the top-ups in the ledger once, an empty
queue.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import structlog

from balances.model import AccountKind, AccountLimits, LedgerKind, Step, StepKind, StepStatus
from balances.redis_store import RedisBalanceStore
from balances.settings import RedisStoreSettings
from cdr_writer.ledger import new_ledger_entry
from cdr_writer.pg_sink import PgSink
from cdr_writer.row import build_batch
from cdr_writer.settings import CdrWriterSettings
from cdr_writer.writer import CdrWriter
from ocsd.schema import upgrade
from ocsd.sql_store import Database
from tests.balances.backends import delete_redis_keys
from tests.cdr_writer.own_postgres import OwnPostgres, why_not
from tests.cdr_writer.samples import T0_MS, make_cdr

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHARDS = 8
ACCOUNTS = ("alice", "bob", "carol")
TOPUP_MICROS = 10**12


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPostgres]:
    problem = why_not()
    if problem is not None:
        pytest.skip(f"cannot run a PostgreSQL of our own: {problem}")
    server = OwnPostgres()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def records(own_pg: OwnPostgres) -> str:
    """A migrated records database on our own server."""
    url = own_pg.create_database(f"ft_{uuid.uuid4().hex[:10]}")
    with Database(url) as db:
        upgrade(db)
    return url


@pytest.fixture
async def redis_settings(redis_url: str) -> AsyncIterator[RedisStoreSettings]:
    prefix = f"ocsd-test-cdr-{uuid.uuid4().hex[:10]}"
    settings = RedisStoreSettings(url=redis_url, key_prefix=prefix, shards=SHARDS)
    try:
        yield settings
    finally:
        delete_redis_keys(redis_url, prefix)


@dataclass
class Calls:
    """Charges calls and top-ups through the store and remembers what moved."""

    store: RedisBalanceStore
    charged: dict[str, int] = field(default_factory=dict)
    """CDR id -> micro-units that left the balance."""
    topups: int = 0
    count: int = 0

    async def open_accounts(self) -> None:
        for account in ACCOUNTS:
            await self.store.put_account(AccountLimits(account, AccountKind.PREPAID))
            entry = new_ledger_entry(
                account_id=account,
                kind="topup",
                amount_micros=TOPUP_MICROS,
                currency="EUR",
                idempotency_key=f"open-{account}",
                at_ms=T0_MS,
            )
            result = await self.store.ledger(
                account, LedgerKind.TOPUP, TOPUP_MICROS, entry.entry_id, entry.encode(), T0_MS
            )
            assert result.applied
            self.topups += 1

    async def charge(self, calls: int) -> None:
        """End ``calls`` calls (concurrently, 50 at a time)."""
        for first in range(0, calls, 50):
            await asyncio.gather(*(self._one() for _ in range(min(50, calls - first))))

    async def _one(self) -> None:
        number = self.count
        self.count += 1
        account = ACCOUNTS[number % len(ACCOUNTS)]
        start = T0_MS + number * 1000
        cdr = make_cdr(
            number,
            account_id=account,
            start_ms=start,
            end_ms=start + 60_000,
            answer_ms=start + 1_000,
            charge_micros=10_000 + number % 977,
            carrier=("carrierA", "carrierB")[number % 2],
        )
        result = await self.store.step(
            Step(
                kind=StepKind.EVENT,
                account_id=account,
                session_id=f"ft-{number}",
                request_number=0,
                now_ms=cdr.end_ms,
                day_key="2026-03-14",
                month_key="2026-03",
                debit_micros=cdr.charge_micros,
                record=cdr.encode(),
            )
        )
        assert result.status is StepStatus.OK
        self.charged[cdr.cdr_id] = result.debited_micros


async def check_books(url: str, calls: Calls) -> None:
    """One row per charged call; every sum agrees with the money that moved."""
    with Database(url) as db:
        rows = dict(db.query("SELECT cdr_id, debited_micros FROM cdrs"))
        assert len(rows) == len(calls.charged)
        assert rows == calls.charged
        [(n, distinct)] = db.query("SELECT COUNT(*), COUNT(DISTINCT cdr_id) FROM cdrs")
        assert n == distinct == len(calls.charged)
        [(daily_calls, daily_debited)] = db.query(
            "SELECT SUM(calls), SUM(debited_micros) FROM cdr_daily"
        )
        assert (int(daily_calls), int(daily_debited)) == (n, sum(calls.charged.values()))
        assert db.query("SELECT COUNT(*) FROM ledger") == [(calls.topups,)]
        assert db.query("SELECT COUNT(*) FROM cdr_rejects") == [(0,)]
        by_account = dict(
            db.query("SELECT account_id, SUM(debited_micros) FROM cdrs GROUP BY account_id")
        )
    for account in ACCOUNTS:
        state = await calls.store.get_account(account)
        assert state is not None
        # Reconciliation: opening + payments - sum of CDR charges = current balance.
        assert TOPUP_MICROS - int(by_account[account]) == state.balance_micros
    assert await calls.store.queue_depth() == 0


def count_rows(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("SELECT COUNT(*) FROM cdrs").fetchone()
            return int(row[0]) if row else 0
    except psycopg.OperationalError:
        return -1


def wait_for(condition: object, timeout_s: float = 60.0) -> None:
    """Poll an external process's effect (there is no event to wait on across processes)."""
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)


def writer_process(config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``ocsd cdr-writer`` as its own process, its log in ``log``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ocsd", "cdr-writer", "--config", str(config), *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


async def test_a_writer_killed_again_and_again_loses_and_doubles_nothing(
    records: str, redis_settings: RedisStoreSettings, tmp_path: Path
) -> None:
    config = tmp_path / "ocsd.yaml"
    config.write_text(
        f"""
data_dir: {tmp_path / "data"}
stores:
  records_url: {records}
  hot_url: {redis_settings.url}
  redis_key_prefix: {redis_settings.key_prefix}
  redis_shards: {SHARDS}
cdr_writer:
  consumer: ft-writer
  batch_size: 300
  read_block_ms: 50
logging:
  level: warning
  format: json
"""
    )
    store = RedisBalanceStore(redis_settings)
    calls = Calls(store)
    await calls.open_accounts()
    await calls.charge(3000)
    kills = 0
    for round_ in range(4):
        before = max(count_rows(records), 0)
        process = writer_process(config, tmp_path / "writer.log")
        try:
            # Kill it while it writes: once rows have started to grow in this run.
            await asyncio.to_thread(wait_for, lambda b=before: count_rows(records) > b)
            process.send_signal(signal.SIGKILL)
            kills += 1
        finally:
            process.kill()
            process.wait(timeout=30)
        # Calls keep ending while the writer is down.
        await calls.charge(400 + 100 * round_)
    assert kills == 4
    assert count_rows(records) < len(calls.charged)
    final = writer_process(config, tmp_path / "writer.log", "--until-empty")
    await asyncio.to_thread(final.wait, timeout=300)
    assert final.returncode == 0, (tmp_path / "writer.log").read_text()
    await check_books(records, calls)
    await store.close()


async def test_postgresql_shut_down_while_calls_end_then_back_loses_nothing(
    records: str, redis_settings: RedisStoreSettings, own_pg: OwnPostgres
) -> None:
    store = RedisBalanceStore(redis_settings)
    calls = Calls(store)
    await calls.open_accounts()
    settings = CdrWriterSettings(
        batch_size=500,
        read_block_ms=20,
        retry_initial_ms=20,
        retry_max_ms=200,
        queue_alarm_depth=300,
        depth_check_interval_s=0.05,
        connect_timeout_s=1,
    )
    queue = RedisBalanceStore(redis_settings)
    writer = CdrWriter(queue, PgSink(records, connect_timeout_s=1), settings, "ft-writer")
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(writer.run(stop))
        await calls.charge(1000)
        await asyncio.to_thread(wait_for, lambda: count_rows(records) > 0)
        await asyncio.to_thread(own_pg.stop)
        # Calls keep ending while PostgreSQL refuses connections.
        await calls.charge(2000)
        await asyncio.to_thread(wait_for, lambda: writer.stats.write_failures >= 2)
        depth_while_down = await store.queue_depth()
        await asyncio.to_thread(own_pg.start)
        await calls.charge(500)
        await asyncio.to_thread(wait_for, lambda: count_rows(records) == len(calls.charged), 120)
        stop.set()
        await asyncio.wait_for(task, 30)
    assert depth_while_down > 0
    assert writer.stats.write_failures >= 2
    assert any(e["event"] == "cdr queue alarm" for e in logs)
    assert any(e.get("reason") == "sink_unavailable" for e in logs)
    await check_books(records, calls)
    await writer.sink.close()
    await queue.close()
    await store.close()


async def test_a_batch_written_twice_and_read_again_is_stored_once(
    records: str, redis_settings: RedisStoreSettings
) -> None:
    store = RedisBalanceStore(redis_settings)
    calls = Calls(store)
    await calls.open_accounts()
    await calls.charge(600)
    # A writer commits a batch and dies before acknowledging it...
    taken = await store.read_records("ft-writer", 250, 0)
    sink = PgSink(records)
    await sink.prepare(datetime.now(UTC))
    first = await sink.write(build_batch(taken, datetime.now(UTC)))
    assert first.cdrs + first.ledger == 250
    # ...the same batch is replayed as is...
    again = await sink.write(build_batch(taken, datetime.now(UTC)))
    assert (again.cdrs, again.ledger) == (0, 0)
    # ...and its successor gets the pending records back first and skips them.
    writer = CdrWriter(store, sink, CdrWriterSettings(batch_size=100), "ft-writer")
    from ocsd.cdr_service import drain

    await drain(writer, asyncio.Event())
    assert writer.stats.duplicates == 250
    await check_books(records, calls)
    await sink.close()
    await store.close()
