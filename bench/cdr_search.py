"""Latency of CDR searches on a table of 10,000,000 generated CDRs (PostgreSQL).

    python bench/cdr_search.py [--rows 10000000] [--runs 500]
                               [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--keep]

A scratch database gets the real schema (migration 2: monthly partitions, the same
indexes), then ``--rows`` CDRs generated server-side with ``generate_series`` over 90 days
(January to March 2026, time-ordered like real traffic): 10,000 accounts under 50
resellers, one tenth of the traffic on 10 large accounts, called numbers over 200 prefixes,
20 carriers. Searches are the SQL ``ocsd cdr search`` runs (``cdr_writer.search``), first
page of 50, newest first, timed from the client over many runs with random accounts and
windows:

- account + 1 day, account + 7 days, account + 30 days (the ``ocsd cdr search --account``
  case), on ordinary and on large accounts, and the next page through a cursor;
- a reseller's subtree + 1 hour; a called-number prefix + 1 day.

The scratch database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from cdr_writer.partition import add_months, month_of, partition_bounds, partition_name  # noqa: E402
from cdr_writer.search import CdrQuery, cursor_after, search_sql  # noqa: E402
from ocsd.schema import upgrade  # noqa: E402
from ocsd.sql_store import Database  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 90
CHUNK = 1_000_000

GENERATE = """
INSERT INTO cdrs (cdr_id, start_at, kind, session_id, request_number, account_id, tenant_path,
    protocol, peer, node, answer_at, end_at, timezone, duration_s, billed_s, charge_micros,
    debited_micros, balance_after_micros, currency, charge_unrounded, calling_raw, called_raw,
    calling, called, diversion, caller_ip, carrier, trunk, routing_number, prefix, destination,
    deck_id, deck_version, rate_micros, connect_fee_micros, bundle_id, bundle_s, fx_rate,
    levels, carrier_cost_micros, carrier_currency, hangup_cause, sip_status, q850_cause,
    hangup_side, flags, trace, extra, problems, record_id, queued_at, written_at)
SELECT
    lpad(to_hex(i), 12, '0') || '-7000-8000-'
        || lpad(to_hex(i * 2654435761 %% 281474976710655), 12, '0'),
    s,
    'call',
    'sbc.example.net;' || i,
    2,
    a,
    '/op/r' || (n %% 50) || '/',
    'diameter', 'sbc1.example.net', 'ocs1',
    s + interval '2 s', s + make_interval(secs => d), 'Europe/London', d, (d + 59) / 60 * 60,
    d * 200, d * 200, 1000000, 'EUR', '',
    'sip:+4420' || lpad(n::text, 7, '0') || '@example.net',
    '+' || p || lpad((i %% 9999999)::text, 7, '0'),
    '4420' || lpad(n::text, 7, '0'), p || lpad((i %% 9999999)::text, 7, '0'), '', '192.0.2.1',
    'carrier' || lpad((i %% 20)::text, 2, '0'), 't1', '', p, 'dest ' || p,
    'wholesale', 12, 12000, 0, '', 0, '0.92',
    '[{"seller":"op","buyer":"r1","plan_id":"wholesale","currency":"USD","amount_micros":1}]',
    NULL, '', '16', 200, 16, 'caller', '', 'prefix ' || p || E'\\n60/60 billing', '{}', '',
    '', s + make_interval(secs => d), s + make_interval(secs => d)
FROM (
    SELECT i,
        %(start)s::timestamptz + make_interval(secs => i * %(step)s) AS s,
        CASE WHEN i %% 10 = 0 THEN (i / 10) %% 10 ELSE 10 + (i * 7919) %% 9990 END AS n,
        (ARRAY[0, 5, 32, 65, 128, 311, 1800])[1 + i %% 7] AS d,
        (ARRAY['44','33','49','1','34'])[1 + i %% 5] || (10 + (i * 31) %% 40) AS p
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
) g, LATERAL (SELECT 'acct' || lpad(n::text, 5, '0') AS a) acct
"""


def timed(conn: psycopg.Connection[tuple[object, ...]], sql: str, params: list[object]) -> float:
    started = time.perf_counter()
    conn.execute(sql.replace("%", "%%").replace("?", "%s"), params).fetchall()
    return (time.perf_counter() - started) * 1000


def report(label: str, times: list[float]) -> None:
    times.sort()
    p50 = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"  {label:<44} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({len(times)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    name = f"ocsd_bench_search_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    try:
        with Database(url) as db:
            upgrade(db)
        with psycopg.connect(url, autocommit=True) as conn:
            month = month_of(START)
            for _ in range(4):
                low, high = partition_bounds(month)
                conn.execute(
                    f"CREATE TABLE {partition_name(month)} PARTITION OF cdrs "
                    f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
                )
                month = add_months(month, 1)
            step = DAYS * 86_400 / args.rows
            print(f"generating {args.rows:,} CDRs over {DAYS} days in {name} ...")
            started = time.perf_counter()
            for first in range(1, args.rows + 1, CHUNK):
                last = min(first + CHUNK - 1, args.rows)
                conn.execute(
                    GENERATE,
                    {"start": START, "step": step, "first": first, "last": last},
                )
                print(f"  {last:,} rows, {time.perf_counter() - started:.0f} s", flush=True)
            conn.execute("VACUUM ANALYZE cdrs")
            size = conn.execute(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) "
                "FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid "
                "WHERE i.inhparent = 'cdrs'::regclass"
            ).fetchone()
            print(f"  done in {time.perf_counter() - started:.0f} s; cdrs with indexes: "
                  f"{size[0] if size else '?'}")  # fmt: skip

            rnd = random.Random(11)

            def window(days: float) -> tuple[datetime, datetime]:
                end = START + timedelta(days=rnd.uniform(days, DAYS))
                return end - timedelta(days=days), end

            def ordinary() -> str:
                return f"acct{10 + rnd.randrange(9990):05d}"

            def large() -> str:
                return f"acct{rnd.randrange(10):05d}"

            print(f"searches, first page of 50, newest first ({args.runs} runs each):")
            cases = [
                ("account + 1 day", ordinary, 1.0),
                ("account + 7 days", ordinary, 7.0),
                ("account + 30 days", ordinary, 30.0),
                ("large account (100k CDRs) + 1 day", large, 1.0),
                ("large account (100k CDRs) + 30 days", large, 30.0),
            ]
            for label, account, days in cases:
                times = []
                for _ in range(args.runs):
                    since, until = window(days)
                    query = CdrQuery(account_id=account(), since=since, until=until)
                    sql, params = search_sql(query, "postgresql", limit=50)
                    times.append(timed(conn, sql, params))
                report(label, times)
            times = []
            for _ in range(args.runs):
                since, until = window(30.0)
                query = CdrQuery(account_id=large(), since=since, until=until)
                sql, params = search_sql(query, "postgresql", limit=50)
                rows = conn.execute(sql.replace("?", "%s"), params).fetchall()
                sql, params = search_sql(
                    query, "postgresql", limit=50, after=cursor_after(rows[-1])
                )
                times.append(timed(conn, sql, params))
            report("large account + 30 days, next page (cursor)", times)
            for label, make in (
                ("reseller subtree + 1 hour", lambda: CdrQuery(
                    tenant_path=f"/op/r{rnd.randrange(50)}/", since=window(1 / 24)[0],
                    until=None)),
                ("called prefix + 1 day", lambda: CdrQuery(
                    called=f"44{10 + rnd.randrange(40)}*", since=window(1.0)[0], until=None)),
            ):  # fmt: skip
                times = []
                for _ in range(min(args.runs, 200)):
                    query = make()
                    query = CdrQuery(
                        **{**{f: getattr(query, f) for f in ("tenant_path", "called", "since")},
                           "until": query.since + timedelta(days=1 / 24 if query.tenant_path
                                                            else 1)})  # fmt: skip
                    sql, params = search_sql(query, "postgresql", limit=50)
                    times.append(timed(conn, sql, params))
                report(label, times)
            since, until = window(30.0)
            sql, params = search_sql(
                CdrQuery(account_id=ordinary(), since=since, until=until), "postgresql", limit=50
            )
            plan = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql.replace("?", "%s"), params
            ).fetchall()
            print("plan of an account + 30 days search:")
            for (line,) in plan:
                print(f"    {line}")
    finally:
        if not args.keep:
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"dropped {name}")


if __name__ == "__main__":
    main()
