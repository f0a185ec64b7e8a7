"""CDRs per second into PostgreSQL through the CDR writer (read, decode, COPY, commit, ack).

    python bench/cdr_writer.py [--records 200000] [--queue memory|redis|both]
                               [--pg postgresql://postgres@127.0.0.1:5432/postgres]
                               [--redis redis://127.0.0.1:6379/0] [--batch 5000]

The queue is filled first, then the writer (its ``run`` loop) drains it; the figure is
records written and acknowledged per second of draining, with the CPU time the writer's
process and its PostgreSQL session spent per CDR. CDRs are realistic: 10,000 accounts under 50
resellers, each calling 4 of 200 destination prefixes, each destination routed over 2 of 20
carriers, two reseller levels, a trace of three lines, time-ordered ids. All in one UTC day,
so the daily rollups are upserted as in production (about 80,000 keys for the day).

- ``memory``: a queue in memory implementing the writer's ``RecordQueue`` (the writer and
  PostgreSQL alone);
- ``redis``: the Redis balance store: every CDR is charged by an EVENT step (its Lua script
  debits and appends to the shard's stream), then read with XREADGROUP and acknowledged by
  the writer: the production path.

A scratch database is created and dropped; Redis keys live under a unique prefix and are
deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from cdr_writer.pg_sink import PgSink  # noqa: E402
from cdr_writer.record import Cdr, CdrKind, LevelAmount, new_cdr_id  # noqa: E402
from cdr_writer.settings import CdrWriterSettings  # noqa: E402
from cdr_writer.writer import CdrWriter  # noqa: E402
from ocsd.schema import upgrade  # noqa: E402
from ocsd.sql_store import Database  # noqa: E402

T0_MS = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)


class Kind:
    """Like ``balances.model.RecordKind.CDR``."""

    value = "cdr"


@dataclass(frozen=True, slots=True)
class Record:
    record_id: str
    kind: Kind
    payload: bytes
    account_id: str
    amount_micros: int
    balance_micros: int
    at_ms: int


class MemoryQueue:
    """A pre-filled queue in memory (``RecordQueue``) for one consumer acknowledging in order."""

    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.acked = 0
        self.delivered = 0

    async def read_records(
        self, consumer: str, count: int, block_ms: int, *, new_only: bool = False
    ) -> list[Record]:
        first = self.delivered if new_only else self.acked
        chunk = self.records[first : first + count]
        self.delivered = max(self.delivered, first + len(chunk))
        if not chunk:
            await asyncio.sleep(block_ms / 1000)
        return chunk

    async def ack_records(self, records: Sequence[Record]) -> None:
        self.acked += len(records)

    async def queue_depth(self) -> int:
        return len(self.records) - self.acked


def make_cdrs(count: int, seed: int = 7) -> list[Cdr]:
    rnd = random.Random(seed)
    prefixes = [f"{cc}{n}" for cc in ("44", "33", "49", "1", "34") for n in range(10, 50)]
    cdrs = []
    # An account calls a few destinations; routing sends each over one of two carriers.
    favourites = [[rnd.choice(prefixes) for _ in range(4)] for _ in range(10_000)]
    for i in range(count):
        account = rnd.randrange(10_000)
        prefix = rnd.choice(favourites[account])
        start = T0_MS + i * 10 + rnd.randrange(10)
        duration = rnd.choice((0, 5, 32, 65, 128, 311, 1800))
        charge = duration * 200 + rnd.randrange(1000)
        cdrs.append(
            Cdr(
                cdr_id=new_cdr_id(start + duration * 1000),
                kind=CdrKind.CALL,
                session_id=f"sbc{account % 7}.example.net;{i};{rnd.getrandbits(32):08x}",
                request_number=rnd.randrange(1, 9),
                account_id=f"acct{account:05d}",
                tenant_path=("op", f"r{account % 50}"),
                protocol="diameter" if i % 3 else "radius",
                peer=f"sbc{account % 7}.example.net",
                node="ocs1",
                start_ms=start,
                end_ms=start + duration * 1000,
                timezone="Europe/London",
                duration_s=duration,
                billed_s=(duration + 59) // 60 * 60,
                charge_micros=charge,
                currency="EUR",
                calling_raw=f"sip:+4420{account:07d}@example.net",
                called_raw=f"+{prefix}{rnd.randrange(10**7):07d}",
                calling=f"4420{account:07d}",
                called=f"{prefix}{rnd.randrange(10**7):07d}",
                caller_ip=f"192.0.2.{account % 250}",
                answer_ms=start + 2000 if duration else None,
                carrier=f"carrier{(prefixes.index(prefix) * 2 + rnd.randrange(2)) % 20:02d}",
                trunk="t1",
                prefix=prefix,
                destination=f"dest {prefix}",
                deck_id="wholesale",
                deck_version=12,
                rate_micros=12_000,
                connect_fee_micros=0,
                fx_rate="0.92",
                levels=(
                    LevelAmount("op", f"r{account % 50}", "wholesale", "USD", charge * 8 // 10),
                    LevelAmount(f"r{account % 50}", f"acct{account:05d}", "retail", "EUR", charge),
                ),
                hangup_cause=rnd.choice(("16", "17", "19", "31")),
                hangup_side="caller",
                sip_status=200 if duration else 486,
                q850_cause=16,
                trace=(f"prefix {prefix}", "60/60 billing", "retail: +20%"),
                extra={"icid": f"{i:x}"} if i % 2 else {},
            )
        )
    return cdrs


def scratch_database(admin_url: str) -> str:
    name = f"ocsd_bench_cdr_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    with Database(url) as db:
        upgrade(db)
    return url


def drop_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(slots=True)
class Drained:
    """One drain of the queue: wall-clock seconds and where the CPU went."""

    count: int
    elapsed_s: float
    python_cpu_s: float
    """The writer's process (reading the queue, building rows, COPY, acknowledging)."""
    pg_cpu_s: float | None
    """The writer's PostgreSQL server processes (None when they are not on this machine)."""

    def line(self, label: str) -> str:
        per = 1e6 / self.count
        pg = "?" if self.pg_cpu_s is None else f"{self.pg_cpu_s * per:.1f}"
        return (
            f"{label}: {self.count} CDRs in {self.elapsed_s:.2f} s = "
            f"{self.count / self.elapsed_s:,.0f} CDRs/s\n"
            f"  CPU per CDR: writer process {self.python_cpu_s * per:.1f} us, "
            f"PostgreSQL server processes {pg} us"
        )


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a local process has used, None if it is not local."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drain(writer: CdrWriter[object], total: int) -> Drained:  # type: ignore[type-var]
    sink = writer.sink
    assert isinstance(sink, PgSink)
    await sink.prepare(datetime.now(UTC))
    writer.ready = True
    pg_before = {pid: process_cpu_s(pid) for pid in await sink.backend_pids()}
    cpu_before = time.process_time()
    started = time.perf_counter()
    stop = asyncio.Event()
    running = asyncio.create_task(writer.run(stop))
    while writer.stats.records < total and not running.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    await running
    python_cpu = time.process_time() - cpu_before
    pg_after = {pid: process_cpu_s(pid) for pid in await sink.backend_pids()}
    if writer.stats.write_failures:
        print(f"  ({writer.stats.write_failures} writes failed and were retried)")
    pg_cpu: float | None = 0.0
    for pid, after in pg_after.items():
        before = pg_before.get(pid, 0.0)
        if pg_cpu is None or after is None or before is None:
            pg_cpu = None
        else:
            pg_cpu += after - before
    assert writer.stats.records == total, (writer.stats.records, total)
    return Drained(total, elapsed, python_cpu, pg_cpu)


async def bench_memory(url: str, cdrs: list[Cdr], batch: int, in_flight: int) -> Drained:
    records = [
        Record(f"m-{i}", Kind(), c.encode(), c.account_id, c.charge_micros, 0, c.end_ms)
        for i, c in enumerate(cdrs)
    ]
    writer = CdrWriter(
        MemoryQueue(records),  # type: ignore[arg-type]
        PgSink(url),
        CdrWriterSettings(batch_size=batch, batches_in_flight=in_flight),
        "bench",
    )
    drained = await drain(writer, len(records))  # type: ignore[arg-type]
    await writer.sink.close()
    return drained


async def bench_redis(
    url: str, redis_url: str, cdrs: list[Cdr], batch: int, in_flight: int
) -> Drained:
    from balances.model import AccountKind, AccountLimits, Step, StepKind, StepStatus
    from balances.redis_store import RedisBalanceStore
    from balances.settings import RedisStoreSettings

    sys.path.insert(0, str(ROOT / "tests"))
    from tests.balances.backends import delete_redis_keys

    prefix = f"ocsd-bench-cdr-{uuid.uuid4().hex[:8]}"
    # A generous timeout: filling the queue is not what is measured.
    store = RedisBalanceStore(
        RedisStoreSettings(url=redis_url, key_prefix=prefix, timeout_ms=30_000)
    )
    try:
        accounts = sorted({c.account_id for c in cdrs})
        await asyncio.gather(
            *(
                store.put_account(
                    AccountLimits(a, AccountKind.POSTPAID, credit_limit_micros=10**14)
                )
                for a in accounts
            )
        )
        filled = time.perf_counter()
        for first in range(0, len(cdrs), 500):
            results = await asyncio.gather(
                *(
                    store.step(
                        Step(
                            kind=StepKind.EVENT,
                            account_id=c.account_id,
                            session_id=c.session_id,
                            request_number=0,
                            now_ms=c.end_ms,
                            day_key="2026-03-01",
                            month_key="2026-03",
                            debit_micros=c.charge_micros,
                            record=c.encode(),
                        )
                    )
                    for c in cdrs[first : first + 500]
                )
            )
            assert all(r.status is StepStatus.OK for r in results)
        fill_s = time.perf_counter() - filled
        print(f"  (charging {len(cdrs)} CDRs into the Redis streams took {fill_s:.1f} s)")
        writer = CdrWriter(
            store,
            PgSink(url),
            CdrWriterSettings(batch_size=batch, batches_in_flight=in_flight),
            "bench",
        )
        drained = await drain(writer, len(cdrs))  # type: ignore[arg-type]
        await writer.sink.close()
        return drained
    finally:
        await store.close()
        delete_redis_keys(redis_url, prefix)


def settings_line(url: str) -> str:
    with psycopg.connect(url) as conn:
        values = [
            f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
            for name in ("shared_buffers", "synchronous_commit", "max_wal_size")
        ]
        indexes = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'cdrs'"
        ).fetchone()
    return f"PostgreSQL {', '.join(values)}; {indexes[0] if indexes else '?'} indexes on cdrs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--queue", choices=("memory", "redis", "both"), default="both")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=1, help="drains per queue (best, median)")
    parser.add_argument("--in-flight", type=int, default=CdrWriterSettings().batches_in_flight)
    args = parser.parse_args()
    print(f"generating {args.records} CDRs ...")
    cdrs = make_cdrs(args.records)
    size = sum(len(c.encode()) for c in cdrs[:1000]) / 1000
    print(f"  {size:.0f} bytes per encoded CDR; {os.cpu_count()} cores on this machine")
    queues = ("memory", "redis") if args.queue == "both" else (args.queue,)
    for queue in queues:
        rates: list[float] = []
        for _ in range(args.runs):
            url = scratch_database(args.pg)
            try:
                if queue == "memory":
                    drained = asyncio.run(bench_memory(url, cdrs, args.batch, args.in_flight))
                    label = "in-memory queue -> writer -> PostgreSQL"
                else:
                    drained = asyncio.run(
                        bench_redis(url, args.redis, cdrs, args.batch, args.in_flight)
                    )
                    label = "Redis streams (XREADGROUP + ack) -> writer -> PostgreSQL"
                print(drained.line(label))
                print(
                    f"  batch {args.batch}, {args.in_flight} in flight; {settings_line(url)}; "
                    f"load {load_average()}"
                )
                rates.append(drained.count / drained.elapsed_s)
                with psycopg.connect(url) as conn:
                    row = conn.execute(
                        "SELECT count(*), count(DISTINCT cdr_id) FROM cdrs"
                    ).fetchone()
                    count = drained.count
                    assert row == (count, count), row
            finally:
                drop_database(args.pg, url)
        if len(rates) > 1:
            print(
                f"{queue}: {len(rates)} runs, best {max(rates):,.0f} CDRs/s, "
                f"median {statistics.median(rates):,.0f} CDRs/s"
            )


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
