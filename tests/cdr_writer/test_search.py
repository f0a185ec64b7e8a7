"""Searches and reports on SQLite and the real PostgreSQL: same answers, keyset pages."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from cdr_writer.pg_sink import PgSink
from cdr_writer.row import build_batch
from cdr_writer.search import (
    CdrQuery,
    Cursor,
    DailyQuery,
    QueryError,
    cursor_after,
    daily_sql,
    prefix_condition,
    search_sql,
)
from cdr_writer.sink import CdrSink
from cdr_writer.sqlite_sink import SqliteSink, sqlite_file
from ocsd.schema import upgrade
from ocsd.sql_store import Database
from tests.cdr_writer.samples import T0_MS, cdr_record, make_cdr

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
T0 = datetime.fromtimestamp(T0_MS / 1000, UTC)


@functools.cache
def corpus() -> list[Any]:
    """40 calls: two accounts under two resellers, a tie on the start time, odd numbers."""
    cdrs = []
    for i in range(40):
        account, tenants = ("alice", ("op", "r1")) if i % 2 else ("bob", ("op", "r2", "r2a"))
        cdrs.append(
            make_cdr(
                i,
                start_ms=T0_MS + (i // 2) * 60_000,  # pairs share a start time
                end_ms=T0_MS + (i // 2) * 60_000 + 30_000,
                answer_ms=None,
                account_id=account,
                tenant_path=tenants,
                called=("44_20%" if i == 7 else f"44{i:08d}"),
                carrier="carrierB" if i % 5 == 0 else "carrierA",
            )
        )
    return cdrs


@pytest.fixture
def db(records_url: str) -> Iterator[Database]:
    database = Database(records_url)
    upgrade(database)

    async def fill() -> None:
        sink: CdrSink = (
            SqliteSink(sqlite_file(records_url))
            if records_url.startswith("sqlite:")
            else PgSink(records_url)
        )
        await sink.prepare(NOW)
        records = [cdr_record(c, account_id=c.account_id) for c in corpus()]
        await sink.write(build_batch(records, NOW))
        await sink.close()

    import asyncio

    asyncio.run(fill())
    try:
        yield database
    finally:
        database.close()


def ids(db: Database, query: CdrQuery, **options: Any) -> list[str]:
    sql, params = search_sql(query, db.dialect, **options)
    return [row[1] for row in db.query(sql, params)]


def expected(**filters: Any) -> list[str]:
    chosen = [c for c in corpus() if all(f(c) for f in filters.values())]
    chosen.sort(key=lambda c: (c.start_ms, c.cdr_id), reverse=True)
    return [c.cdr_id for c in chosen]


def test_pages_follow_each_other_without_gap_or_repeat(db: Database) -> None:
    seen: list[str] = []
    after: Cursor | None = None
    while True:
        sql, params = search_sql(CdrQuery(), db.dialect, limit=7, after=after)
        rows = db.query(sql, params)
        seen += [row[1] for row in rows]
        if len(rows) < 7:
            break
        after = Cursor.decode(cursor_after(rows[-1]).encode())
    corpus_ids = sorted(c.cdr_id for c in corpus())
    assert sorted(seen) == corpus_ids
    assert len(seen) == len(set(seen)) == 40
    # Ties on the start time are ordered by id, newest start first.
    assert seen == sorted(
        seen,
        key=lambda i: next((c.start_ms, c.cdr_id) for c in corpus() if c.cdr_id == i),
        reverse=True,
    )


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        pytest.param(CdrQuery(account_id="alice"), {"a": lambda c: c.account_id == "alice"},
                     id="account"),
        pytest.param(CdrQuery(tenant_path="/op/"), {}, id="operator"),
        pytest.param(CdrQuery(tenant_path="/op/r2/"), {"a": lambda c: c.account_id == "bob"},
                     id="reseller-subtree"),
        pytest.param(CdrQuery(tenant_path="/op/r2a/"), {"a": lambda c: False},
                     id="a-path-segment-is-whole"),
        pytest.param(CdrQuery(called="44_20*"), {"a": lambda c: c.called == "44_20%"},
                     id="like-wildcards-escaped"),
        pytest.param(CdrQuery(called="4400000001*"), {"a": lambda c: c.called.startswith(
                     "4400000001")}, id="called-prefix"),
        pytest.param(CdrQuery(called="4400000003"), {"a": lambda c: c.called == "4400000003"},
                     id="called-exact"),
        pytest.param(CdrQuery(carrier="carrierB", account_id="bob"),
                     {"a": lambda c: c.carrier == "carrierB" and c.account_id == "bob"},
                     id="carrier-and-account"),
        pytest.param(CdrQuery(since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=8)),
                     {"a": lambda c: T0_MS + 300_000 <= c.start_ms < T0_MS + 480_000},
                     id="time-range"),
        pytest.param(CdrQuery(min_charge_micros=24_010, max_charge_micros=24_012),
                     {"a": lambda c: 24_010 <= c.charge_micros <= 24_012}, id="charge"),
    ],
)  # fmt: skip
def test_filters(db: Database, query: CdrQuery, filters: dict[str, Any]) -> None:
    assert ids(db, query, limit=100) == expected(**filters)


def test_a_search_by_account_and_time_uses_the_index(db: Database) -> None:
    query = CdrQuery(account_id="alice", since=T0, until=T0 + timedelta(hours=1))
    sql, params = search_sql(query, db.dialect, limit=50)
    if db.dialect == "sqlite":
        plan = " ".join(str(r) for r in db.query("EXPLAIN QUERY PLAN " + sql, params))
        assert "cdrs_account_start" in plan
    else:
        # Forty rows say nothing about index choice (bench/cdr_search.py shows the plan on
        # ten million); the time range must prune every partition but its month's.
        plan = " ".join(r[0] for r in db.query("EXPLAIN " + sql, params))
        assert "cdrs_p2026_03" in plan
        assert "cdrs_default" not in plan and "cdrs_p2026_02" not in plan


def test_daily_report(db: Database) -> None:
    sql, params = daily_sql(
        DailyQuery(date(2026, 3, 14), date(2026, 3, 14), by=("account_id", "carrier")),
        db.dialect,
    )
    rows = [
        tuple(int(v) if not isinstance(v, str) else v for v in r) for r in db.query(sql, params)
    ]
    by_key = {(r[0], r[1]): r for r in rows}
    assert by_key[("alice", "carrierA")][3] == 16
    assert by_key[("alice", "carrierB")][3] == 4
    assert by_key[("bob", "carrierB")][3] == 4
    assert by_key[("bob", "carrierA")][3] == 16
    sql, params = daily_sql(
        DailyQuery(date(2026, 3, 14), date(2026, 3, 14), by=("day",), tenant_path="/op/r2/"),
        db.dialect,
    )
    [(day, currency, calls, *_)] = db.query(sql, params)
    assert (str(day), currency, int(calls)) == ("2026-03-14", "EUR", 20)


@pytest.mark.parametrize("token", ["", "abc", Cursor(NOW, "x").encode()[:-3] + "!!!", "fHg"])
def test_a_bad_cursor_is_refused(token: str) -> None:
    with pytest.raises(QueryError):
        Cursor.decode(token)


def test_a_cursor_survives_its_token() -> None:
    cursor = Cursor(NOW + timedelta(microseconds=123_000), "019c-id")
    assert Cursor.decode(cursor.encode()) == cursor


def test_sqlite_prefix_is_a_range_postgresql_a_like() -> None:
    assert prefix_condition("called", "44", "sqlite") == (
        "(called >= ? AND called < ?)",
        ["44", "45"],
    )
    assert prefix_condition("called", "4_%", "postgresql") == (
        "called LIKE ? ESCAPE '\\'",
        ["4\\_\\%%"],
    )
