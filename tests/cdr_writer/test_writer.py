"""The writer loop: acknowledged only after commit, retried while the database is away, never
blocked by bad data; on a queue in memory and the SQLite sink (the logic is the sink's
business, so one real sink is enough here; PostgreSQL is exercised in test_faults)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from cdr_writer.row import CDR_INDEX, Batch
from cdr_writer.settings import CdrWriterSettings
from cdr_writer.sink import SinkDataError, SinkUnavailable, WriteResult
from cdr_writer.sqlite_sink import SqliteSink
from cdr_writer.writer import CdrWriter
from ocsd.schema import upgrade
from ocsd.sql_store import Database
from tests.cdr_writer.samples import Record, cdr_record, make_cdr, raw_record

FAST = CdrWriterSettings(
    batch_size=4,
    read_block_ms=1,
    retry_initial_ms=1,
    retry_max_ms=2,
    depth_check_interval_s=0.001,
    queue_alarm_depth=5,
)


_changes: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}


def changed() -> asyncio.Event:
    """Set by the queue and the sink at every call, so a test waits for a state, not a time."""
    return _changes.setdefault(asyncio.get_running_loop(), asyncio.Event())


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            changed().clear()
            await changed().wait()


class MemoryQueue:
    """A durable queue in memory with consumer-group semantics (pending entries first)."""

    def __init__(self, records: Sequence[Record] = ()) -> None:
        self.entries: dict[str, Record] = {r.record_id: r for r in records}
        self.pending: dict[str, set[str]] = {}
        self.acked: list[str] = []
        self.fail_reads = 0
        self.fail_acks = 0

    def add(self, *records: Record) -> None:
        for record in records:
            self.entries[record.record_id] = record

    async def read_records(
        self, consumer: str, count: int, block_ms: int, *, new_only: bool = False
    ) -> list[Record]:
        await asyncio.sleep(0)
        changed().set()
        if self.fail_reads:
            self.fail_reads -= 1
            raise ConnectionError("queue down")
        mine = self.pending.setdefault(consumer, set())
        taken = {i for ids in self.pending.values() for i in ids}
        out = [] if new_only else [self.entries[i] for i in self.entries if i in mine][:count]
        for record_id in self.entries:
            if len(out) >= count:
                break
            if record_id not in taken:
                mine.add(record_id)
                out.append(self.entries[record_id])
        return out

    async def ack_records(self, records: Sequence[Record]) -> None:
        changed().set()
        if self.fail_acks:
            self.fail_acks -= 1
            raise ConnectionError("queue down")
        for record in records:
            if self.entries.pop(record.record_id, None) is not None:
                self.acked.append(record.record_id)
            for ids in self.pending.values():
                ids.discard(record.record_id)

    async def queue_depth(self) -> int:
        return len(self.entries)


class FlakySink:
    """A real SQLite sink that fails on command."""

    def __init__(self, inner: SqliteSink) -> None:
        self.inner = inner
        self.unavailable = 0
        """Fail this many writes as if the database were down."""
        self.prepare_failures = 0
        self.refuse_cdr_ids: set[str] = set()
        """Refuse any batch holding one of these CDRs as if the database rejected it."""
        self.writes = 0
        self.maintained = 0
        self.turns = 0
        """Turns of the event loop a write takes before it stores (a database answering later)."""
        self.writing = False
        self.committed: set[str] = set()
        """The CDR ids of the batches committed."""

    async def prepare(self, now: datetime) -> None:
        if self.prepare_failures:
            self.prepare_failures -= 1
            raise SinkUnavailable("connection refused")
        await self.inner.prepare(now)

    async def maintain(self, now: datetime) -> list[str]:
        changed().set()
        self.maintained += 1
        return []

    async def write(self, batch: Batch) -> WriteResult:
        changed().set()
        self.writes += 1
        self.writing = True
        try:
            for _ in range(self.turns):
                await asyncio.sleep(0)
            if self.unavailable:
                self.unavailable -= 1
                raise SinkUnavailable("connection refused")
            if {row[0] for row in batch.all_cdr_rows} & self.refuse_cdr_ids:
                raise SinkDataError("value too long for type character varying(64)")
            result = await self.inner.write(batch)
            self.committed.update(row[0] for row in batch.all_cdr_rows)
            return result
        finally:
            self.writing = False

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path}/records.sqlite3")
    upgrade(database)
    return database


@pytest.fixture
async def sink(db: Database, tmp_path: Path) -> AsyncIterator[FlakySink]:
    flaky = FlakySink(SqliteSink(f"{tmp_path}/records.sqlite3"))
    yield flaky
    await flaky.close()


def writer(queue: MemoryQueue, sink: FlakySink, **settings: object) -> CdrWriter[Record]:
    values = {name: getattr(FAST, name) for name in CdrWriterSettings.__dataclass_fields__}
    values.update(settings)
    return CdrWriter(
        queue,
        sink,
        CdrWriterSettings(**values),  # type: ignore[arg-type]
        "writer-1",
        clock=lambda: datetime(2026, 3, 14, 10, tzinfo=UTC).timestamp(),
    )


def stored(db: Database) -> list[str]:
    return [row[0] for row in db.query("SELECT cdr_id FROM cdrs ORDER BY cdr_id")]


async def drain(w: CdrWriter[Record], queue: MemoryQueue, limit: int = 100) -> None:
    await w.sink.prepare(datetime.now(UTC))
    w.ready = True
    for _ in range(limit):
        if not queue.entries:
            return
        await w.step()
    raise AssertionError("the queue did not drain")


async def test_records_are_stored_then_acknowledged(db: Database, sink: FlakySink) -> None:
    cdrs = [make_cdr(i) for i in range(10)]
    queue = MemoryQueue([cdr_record(c) for c in cdrs])
    w = writer(queue, sink)
    await drain(w, queue)
    assert stored(db) == sorted(c.cdr_id for c in cdrs)
    assert len(queue.acked) == 10
    assert (w.stats.records, w.stats.cdrs, w.stats.batches) == (10, 10, 3)


async def test_while_the_database_is_away_the_batch_is_retried_not_acknowledged(
    db: Database, sink: FlakySink
) -> None:
    queue = MemoryQueue([cdr_record(make_cdr(i)) for i in range(3)])
    w = writer(queue, sink)
    sink.unavailable = 3
    with structlog.testing.capture_logs() as logs:
        await drain(w, queue)
    assert w.stats.write_failures == 3
    assert len(stored(db)) == 3
    assert len(queue.acked) == 3
    assert [e["reason"] for e in logs if e.get("reason") == "sink_unavailable"] == [
        "sink_unavailable"
    ] * 3


async def test_told_to_stop_while_the_database_is_away_it_leaves_the_batch_queued(
    db: Database, sink: FlakySink
) -> None:
    queue = MemoryQueue([cdr_record(make_cdr(i)) for i in range(3)])
    w = writer(queue, sink)
    await sink.prepare(datetime.now(UTC))
    sink.unavailable = 10**6
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await until(lambda: sink.writes >= 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert queue.acked == []
    assert len(queue.entries) == 3
    assert stored(db) == []


async def test_a_batch_stored_but_not_acknowledged_is_stored_once(
    db: Database, sink: FlakySink
) -> None:
    records = [cdr_record(make_cdr(i)) for i in range(4)]
    queue = MemoryQueue(records)
    first = writer(queue, sink)
    await sink.prepare(datetime.now(UTC))
    # The writer dies between the commit and the acknowledgement.
    queue.fail_acks = 10**6
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    await until(lambda: first.stats.queue_failures >= 2)
    stop.set()
    await task
    assert len(stored(db)) == 4
    assert queue.acked == []
    # Its successor (same consumer name) gets the pending records back first.
    queue.fail_acks = 0
    second = writer(queue, sink)
    await drain(second, queue)
    assert len(stored(db)) == 4
    assert second.stats.duplicates == 4
    assert second.stats.cdrs == 0
    assert sorted(queue.acked) == sorted(r.record_id for r in records)


async def test_a_record_the_database_refuses_is_kept_aside_and_the_rest_stored(
    db: Database, sink: FlakySink
) -> None:
    cdrs = [make_cdr(i) for i in range(4)]
    poison = cdrs[2]
    sink.refuse_cdr_ids = {poison.cdr_id}
    queue = MemoryQueue([cdr_record(c) for c in cdrs])
    w = writer(queue, sink)
    with structlog.testing.capture_logs() as logs:
        await drain(w, queue)
    assert stored(db) == sorted(c.cdr_id for c in cdrs if c is not poison)
    assert len(queue.acked) == 4
    [(problems, amount)] = db.query("SELECT problems, amount_micros FROM cdr_rejects")
    assert "refused by the records database: value too long" in problems
    assert amount == poison.charge_micros
    assert w.stats.splits == 2
    assert any(e.get("reason") == "refused" for e in logs)


async def test_bad_records_are_counted_and_logged_not_dropped(
    db: Database, sink: FlakySink
) -> None:
    queue = MemoryQueue([cdr_record(make_cdr(0, timezone="Nowhere/Nothing")), raw_record(b"junk")])
    w = writer(queue, sink)
    with structlog.testing.capture_logs() as logs:
        await drain(w, queue)
    assert w.stats.problems == 2
    assert len(stored(db)) == 1
    assert len(db.query("SELECT * FROM cdr_rejects")) == 2
    [event] = [e for e in logs if e.get("reason") == "bad_record"]
    assert event["count"] == 2


async def test_a_deep_queue_raises_the_alarm_until_it_drains(db: Database, sink: FlakySink) -> None:
    queue = MemoryQueue([cdr_record(make_cdr(i)) for i in range(9)])
    w = writer(queue, sink, batch_size=2)
    with structlog.testing.capture_logs() as logs:
        assert await w.check_depth() == 9
        assert w.alarming
        await drain(w, queue)
        await w.check_depth()
    assert not w.alarming
    assert w.queue_depth == 0
    alarms = [e for e in logs if e["event"] == "cdr queue alarm"]
    assert alarms[0]["depth"] == 9 and alarms[0]["threshold"] == 5
    assert any(e["event"] == "cdr queue alarm cleared" for e in logs)
    assert w.describe()["queue_depth"] == 0


async def test_a_queue_that_fails_to_answer_is_retried(db: Database, sink: FlakySink) -> None:
    queue = MemoryQueue([cdr_record(make_cdr(1))])
    queue.fail_reads = 2
    w = writer(queue, sink)
    await drain(w, queue)
    assert w.stats.queue_failures == 2
    assert len(stored(db)) == 1


async def test_run_waits_for_the_database_then_writes_until_stopped(
    db: Database, sink: FlakySink
) -> None:
    queue = MemoryQueue([cdr_record(make_cdr(i)) for i in range(6)])
    sink.prepare_failures = 2
    w = writer(queue, sink, partition_check_interval_s=0.001)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await until(lambda: not queue.entries and sink.maintained >= 1)
    queue.add(cdr_record(make_cdr(7)))
    await until(lambda: not queue.entries)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert w.ready
    assert len(stored(db)) == 7
    assert sink.maintained >= 1


async def test_the_next_batch_is_read_while_one_is_written_and_each_is_stored_once(
    db: Database, sink: FlakySink
) -> None:
    cdrs = [make_cdr(i) for i in range(10)]
    records = [cdr_record(c) for c in cdrs]
    cdr_of = {r.record_id: c.cdr_id for r, c in zip(records, cdrs, strict=True)}
    queue = MemoryQueue(records)
    sink.turns = 5
    reads_while_writing = 0
    acked_uncommitted: list[str] = []
    read, ack = queue.read_records, queue.ack_records

    async def reading(
        consumer: str, count: int, block_ms: int, *, new_only: bool = False
    ) -> list[Record]:
        nonlocal reads_while_writing
        found = await read(consumer, count, block_ms, new_only=new_only)
        reads_while_writing += bool(found) and sink.writing
        return found

    async def acking(batch: Sequence[Record]) -> None:
        acked_uncommitted.extend(
            r.record_id for r in batch if cdr_of[r.record_id] not in sink.committed
        )
        await ack(batch)

    queue.read_records = reading  # type: ignore[method-assign]
    queue.ack_records = acking  # type: ignore[method-assign]
    w = writer(queue, sink, depth_check_interval_s=60)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await until(lambda: not queue.entries)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert reads_while_writing > 0
    assert stored(db) == sorted(c.cdr_id for c in cdrs)
    assert sorted(queue.acked) == sorted(r.record_id for r in records)
    assert acked_uncommitted == []
    assert (w.stats.records, w.stats.cdrs, w.stats.duplicates) == (10, 10, 0)


async def test_ledger_entries_and_cdrs_commit_together(db: Database, sink: FlakySink) -> None:
    from tests.cdr_writer.samples import ledger_record, make_entry

    queue = MemoryQueue([cdr_record(make_cdr(1)), ledger_record(make_entry("k"))])
    w = writer(queue, sink)
    await drain(w, queue)
    assert len(db.query("SELECT * FROM ledger")) == 1
    assert w.stats.ledger == 1
    assert CDR_INDEX["cdr_id"] == 0
