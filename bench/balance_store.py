"""Balance store benchmark: HOLD + CLOSE steps per second in one process, with latencies.

    python bench/balance_store.py --backend redis --url redis://127.0.0.1:6379/0 \\
        --concurrency 256 --seconds 10
    python bench/balance_store.py --backend embedded --concurrency 64 --seconds 10

``concurrency`` calls run at once, each one an opening HOLD followed by a CLOSE with a cost,
on ``accounts`` funded prepaid accounts; concurrent steps are pipelined by the store. Prints
steps per second, p50/p99 latency of a step as its caller sees it, and for Redis the round
trips (pipelined writes) and commands per step. Redis data goes under a key prefix of its own,
deleted at the end (never FLUSHDB); the embedded file is a temporary one unless ``--path``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from balances.embedded_store import EmbeddedBalanceStore
from balances.model import AccountLimits, Hold, LedgerKind, Step, StepKind, StepStatus
from balances.redis_store import RedisBalanceStore
from balances.settings import RedisStoreSettings
from balances.store import BalanceStore

DAY, MONTH = "2024-05-01", "2024-05"


def _percentile(sorted_ns: list[int], fraction: float) -> float:
    if not sorted_ns:
        return 0.0
    return sorted_ns[min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))] / 1000


async def _setup(store: BalanceStore, accounts: int) -> None:
    for n in range(accounts):
        await store.put_account(AccountLimits(f"bench-{n}"))
        await store.ledger(f"bench-{n}", LedgerKind.TOPUP, 10**14, "funding", b"", 0)


async def _lane(
    store: BalanceStore,
    lane: int,
    accounts: int,
    stop_at: float,
    latencies: list[int],
    counts: dict[str, int],
) -> None:
    clock = time.perf_counter_ns
    run_id = uuid.uuid4().hex[:6]
    n = 0
    record = b"x" * 300  # about the size of an encoded CDR
    while time.monotonic() < stop_at:
        account_id = f"bench-{(lane + n * 7919) % accounts}"
        session_id = f"{run_id}-{lane}-{n}"
        now_ms = int(time.time() * 1000)
        opening = Step(
            kind=StepKind.HOLD,
            account_id=account_id,
            session_id=session_id,
            request_number=0,
            now_ms=now_ms,
            day_key=DAY,
            month_key=MONTH,
            holds=(Hold("voice", 600_000, 10_000),),
            new_session=True,
            state=b"s" * 200,
            deadline_ms=now_ms + 120_000,
        )
        started = clock()
        result = await store.step(opening)
        latencies.append(clock() - started)
        counts[result.status.value] = counts.get(result.status.value, 0) + 1
        if result.status is StepStatus.OK:
            closing = Step(
                kind=StepKind.CLOSE,
                account_id=account_id,
                session_id=session_id,
                request_number=1,
                now_ms=now_ms,
                day_key=DAY,
                month_key=MONTH,
                debit_micros=12_345,
                expected_version=0,
                record=record,
            )
            started = clock()
            result = await store.step(closing)
            latencies.append(clock() - started)
            counts[result.status.value] = counts.get(result.status.value, 0) + 1
        n += 1


async def _server_cpu(url: str) -> float:
    """CPU seconds the Redis server used so far (everything it serves, not only us)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _cleanup_redis(url: str, prefix: str) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        for pattern in (f"{{{prefix}:*", f"{prefix}:*"):
            batch: list[Any] = []
            async for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await client.unlink(*batch)
                    batch.clear()
            if batch:
                await client.unlink(*batch)
    finally:
        await client.aclose()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    temporary: tempfile.TemporaryDirectory[str] | None = None
    store: BalanceStore
    if args.backend == "redis":
        store = RedisBalanceStore(
            RedisStoreSettings(
                url=args.url,
                key_prefix=prefix,
                shards=args.shards,
                pool_size=args.pool_size,
                max_batch=args.max_batch,
                timeout_ms=2_000,
            )
        )
    else:
        path = args.path
        if path is None:
            temporary = tempfile.TemporaryDirectory()
            path = os.path.join(temporary.name, "hot.sqlite3")
        store = EmbeddedBalanceStore(path)
    try:
        await _setup(store, args.accounts)
        latencies: list[int] = []
        counts: dict[str, int] = {}
        # warm up (connections, scripts), then measure
        await asyncio.gather(
            *(
                _lane(store, n, args.accounts, time.monotonic() + 0.5, [], {})
                for n in range(args.concurrency)
            )
        )
        trips = getattr(store, "round_trips", 0)
        commands = getattr(getattr(store, "_pipe", None), "commands", 0)
        server_cpu = await _server_cpu(args.url) if args.backend == "redis" else 0.0
        cpu = time.process_time()
        started = time.monotonic()
        stop_at = started + args.seconds
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled")
            profiler.start()
        await asyncio.gather(
            *(
                _lane(store, n, args.accounts, stop_at, latencies, counts)
                for n in range(args.concurrency)
            )
        )
        elapsed = time.monotonic() - started
        cpu = time.process_time() - cpu
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        steps = len(latencies)
        latencies.sort()
        result: dict[str, Any] = {
            "backend": args.backend,
            "python": platform.python_version(),
            "concurrency": args.concurrency,
            "accounts": args.accounts,
            "seconds": round(elapsed, 2),
            "steps": steps,
            "steps_per_s": round(steps / elapsed),
            "p50_us": round(_percentile(latencies, 0.50), 1),
            "p99_us": round(_percentile(latencies, 0.99), 1),
            "client_cpu_us_per_step": round(cpu / steps * 1e6, 1) if steps else 0,
            "cpu_bound_steps_per_s": round(steps / cpu) if cpu else 0,
            "statuses": counts,
        }
        if args.backend == "redis":
            trips = getattr(store, "round_trips", 0) - trips
            commands = getattr(getattr(store, "_pipe", None), "commands", 0) - commands
            result["round_trips_per_step"] = round(trips / steps, 3) if steps else 0
            result["steps_per_round_trip"] = round(steps / trips, 1) if trips else 0
            result["commands_per_step"] = round(commands / steps, 3) if steps else 0
            server_cpu = await _server_cpu(args.url) - server_cpu
            result["server_cpu_us_per_step"] = round(server_cpu / steps * 1e6, 1) if steps else 0
        return result
    finally:
        await store.close()
        if args.backend == "redis":
            await _cleanup_redis(args.url, prefix)
        if temporary is not None:
            temporary.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("redis", "embedded"), default="redis")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--path", default=None, help="embedded: SQLite file (default: temp)")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=256)
    parser.add_argument("--pool-size", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the measured run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        result = uvloop.run(run(args))
    else:
        result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
