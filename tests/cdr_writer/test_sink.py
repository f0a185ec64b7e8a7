"""The sinks on SQLite and the real PostgreSQL: one row per CDR, however often it is written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cdr_writer.partition import partition_name
from cdr_writer.pg_sink import PgSink
from cdr_writer.row import CDR_COLUMNS, Batch, build_batch
from cdr_writer.sink import CdrSink
from cdr_writer.sqlite_sink import SqliteSink, sqlite_file
from ocsd.schema import upgrade
from ocsd.sql_store import Database
from tests.cdr_writer.samples import (
    T0_MS,
    cdr_record,
    ledger_record,
    make_cdr,
    make_entry,
    raw_record,
)

NOW = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)


@pytest.fixture
def db(records_url: str) -> Iterator[Database]:
    """The records database, migrated."""
    database = Database(records_url)
    upgrade(database)
    try:
        yield database
    finally:
        database.close()


def open_sink(url: str) -> CdrSink:
    if url.startswith("sqlite:"):
        return SqliteSink(sqlite_file(url))
    return PgSink(url, partitions_ahead_months=2)


@pytest.fixture
async def sink(db: Database) -> AsyncIterator[CdrSink]:
    opened = open_sink(db.url)
    await opened.prepare(NOW)
    try:
        yield opened
    finally:
        await opened.close()


def count(db: Database, sql: str, params: tuple[Any, ...] = ()) -> int:
    row = db.query_one(sql, params)
    assert row is not None
    return int(row[0] or 0)


def daily(db: Database) -> list[tuple[Any, ...]]:
    return [
        tuple(str(v) if i == 0 else v for i, v in enumerate(row))
        for row in db.query(
            "SELECT day, account_id, carrier, calls, answered, duration_s, billed_s, "
            "charge_micros, debited_micros FROM cdr_daily ORDER BY day, carrier"
        )
    ]


async def test_a_batch_is_stored_and_a_replay_stores_nothing_more(
    db: Database, sink: CdrSink
) -> None:
    cdrs = [make_cdr(i) for i in range(20)]
    records = [cdr_record(c, amount_micros=c.charge_micros - 1) for c in cdrs]
    records.append(ledger_record(make_entry("pay-1")))
    first = await sink.write(build_batch(records, NOW))
    assert (first.cdrs, first.ledger, first.rejects) == (20, 1, 0)
    rollup = daily(db)
    again = await sink.write(build_batch(records, NOW))
    assert (again.cdrs, again.ledger, again.rejects) == (0, 0, 0)
    assert count(db, "SELECT COUNT(*) FROM cdrs") == 20
    assert count(db, "SELECT COUNT(DISTINCT cdr_id) FROM cdrs") == 20
    assert count(db, "SELECT SUM(debited_micros) FROM cdrs") == sum(
        c.charge_micros - 1 for c in cdrs
    )
    assert count(db, "SELECT COUNT(*) FROM ledger") == 1
    assert daily(db) == rollup
    assert rollup == [
        (
            "2026-03-14",
            "alice",
            "carrierA",
            20,
            20,
            20 * 65,
            20 * 120,
            sum(c.charge_micros for c in cdrs),
            sum(c.charge_micros - 1 for c in cdrs),
        )
    ]


async def test_a_batch_half_stored_before_stores_only_its_other_half(
    db: Database, sink: CdrSink
) -> None:
    records = [cdr_record(make_cdr(i)) for i in range(10)]
    await sink.write(build_batch(records[:4], NOW))
    result = await sink.write(build_batch(records, NOW))
    assert result.cdrs == 6
    assert count(db, "SELECT COUNT(*) FROM cdrs") == 10
    assert daily(db)[0][3] == 10


async def test_a_cdr_twice_in_one_batch_is_one_row_counted_once(
    db: Database, sink: CdrSink
) -> None:
    record = cdr_record(make_cdr(1))
    result = await sink.write(build_batch([record, cdr_record(make_cdr(2)), record], NOW))
    assert result.cdrs == 2
    assert count(db, "SELECT COUNT(*) FROM cdrs") == 2
    assert daily(db)[0][3] == 2


async def test_batches_written_at_once_store_each_cdr_once_and_count_it_once(
    db: Database, sink: CdrSink
) -> None:
    records = [cdr_record(make_cdr(i)) for i in range(30)]
    first, second, _, third = await asyncio.gather(
        sink.write(build_batch(records[:10], NOW)),
        sink.write(build_batch(records[10:20], NOW)),
        sink.maintain(NOW),  # partition upkeep meanwhile, in a transaction of its own
        sink.write(build_batch(records[15:], NOW)),  # five of them also in the second
    )
    assert first.cdrs + second.cdrs + third.cdrs == 30
    assert count(db, "SELECT COUNT(*) FROM cdrs") == 30
    assert sum(row[3] for row in daily(db)) == 30


async def test_bad_records_are_stored_flagged_and_kept_raw(db: Database, sink: CdrSink) -> None:
    too_long = make_cdr(1, called="4" * 100)
    unknown_zone = make_cdr(2, timezone="Atlantis/Capital")
    records = [
        cdr_record(too_long),
        cdr_record(unknown_zone),
        raw_record(b"\xc1 not msgpack", amount_micros=777),
        cdr_record(make_cdr(3)),
    ]
    result = await sink.write(build_batch(records, NOW))
    assert (result.cdrs, result.rejects) == (3, 3)
    problems = dict(db.query("SELECT cdr_id, problems FROM cdrs WHERE problems <> ''"))
    assert "called: 100 characters, limit 64 (cut)" in problems[too_long.cdr_id]
    assert "unknown time zone 'Atlantis/Capital'" in problems[unknown_zone.cdr_id]
    kept = db.query("SELECT item_id, stored_in, amount_micros, payload FROM cdr_rejects")
    by_item = {row[0]: row for row in kept}
    assert bytes(by_item[too_long.cdr_id][3]) == records[0].payload
    assert by_item[too_long.cdr_id][1] == "cdrs"
    [raw] = [row for row in kept if row[1] == ""]
    assert (raw[2], bytes(raw[3])) == (777, b"\xc1 not msgpack")
    again = await sink.write(build_batch(records, NOW))
    assert (again.cdrs, again.rejects) == (0, 0)


async def test_times_come_back_as_written(db: Database, sink: CdrSink) -> None:
    cdr = make_cdr(0, start_ms=T0_MS + 123, answer_ms=T0_MS + 3123)
    await sink.write(build_batch([cdr_record(cdr)], NOW))
    row = db.query_one("SELECT start_at, answer_at, written_at FROM cdrs")
    assert row is not None
    start, answer, written = row
    assert start == datetime.fromtimestamp((T0_MS + 123) / 1000, UTC)
    assert (answer - start).total_seconds() == 3
    assert written == NOW


async def test_an_empty_batch_commits_nothing(db: Database, sink: CdrSink) -> None:
    result = await sink.write(Batch())
    assert (result.cdrs, result.ledger, result.rejects) == (0, 0, 0)


def test_the_schema_has_the_columns_and_sizes_the_writer_fills(db: Database) -> None:
    if db.dialect == "sqlite":
        names = [row[1] for row in db.query("PRAGMA table_info(cdrs)")]
        assert sorted(names) == sorted(c.name for c in CDR_COLUMNS)
        return
    found = dict(
        db.query(
            "SELECT column_name, character_maximum_length FROM information_schema.columns "
            "WHERE table_name = 'cdrs' AND table_schema = current_schema()"
        )
    )
    assert found == {c.name: (c.max_chars or None) for c in CDR_COLUMNS}


@pytest.mark.integration
async def test_partitions_are_made_ahead_and_take_over_rows_parked_in_default(
    pg_url: str,
) -> None:
    with Database(pg_url) as db:
        upgrade(db)
        sink = PgSink(pg_url, partitions_ahead_months=1)
        await sink.prepare(NOW)
        made = {row[0] for row in db.query("SELECT tablename FROM pg_tables")}
        assert {"cdrs_p2026_02", "cdrs_p2026_03", "cdrs_p2026_04"} <= made
        assert "cdrs_p2026_05" not in made
        # A CDR from a month without a partition lands in the default partition...
        may = make_cdr(0, start_ms=T0_MS + 60 * 86_400_000, end_ms=T0_MS + 60 * 86_400_001)
        await sink.write(build_batch([cdr_record(may)], NOW))
        assert count(db, "SELECT COUNT(*) FROM cdrs_default") == 1
        # ...and moves to its month when the partition is made, still one row.
        created = await sink.maintain(datetime(2026, 4, 2, tzinfo=UTC))
        assert created == [partition_name(datetime(2026, 5, 1).date())]
        assert count(db, "SELECT COUNT(*) FROM cdrs_default") == 0
        assert count(db, "SELECT COUNT(*) FROM cdrs_p2026_05") == 1
        again = await sink.write(build_batch([cdr_record(may)], NOW))
        assert again.cdrs == 0
        assert count(db, "SELECT COUNT(*) FROM cdrs") == 1
        await sink.close()


@pytest.mark.integration
async def test_the_sink_reconnects_after_losing_its_connection(pg_url: str) -> None:
    with Database(pg_url) as db:
        upgrade(db)
        sink = PgSink(pg_url)
        await sink.prepare(NOW)
        await sink.write(build_batch([cdr_record(make_cdr(1))], NOW))
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'ocsd-cdr-writer'"
        )
        with pytest.raises(Exception) as caught:
            await sink.write(build_batch([cdr_record(make_cdr(2))], NOW))
        assert type(caught.value).__name__ == "SinkUnavailable"
        result = await sink.write(build_batch([cdr_record(make_cdr(2))], NOW))
        assert result.cdrs == 1
        assert count(db, "SELECT COUNT(*) FROM cdrs") == 2
        await sink.close()


async def test_a_database_without_the_schema_is_unavailable(tmp_path: object) -> None:
    sink = SqliteSink(f"{tmp_path}/empty.sqlite3")
    with pytest.raises(Exception, match="run 'ocsd db upgrade'"):
        await sink.prepare(NOW)
    await sink.close()
