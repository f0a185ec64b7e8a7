"""Several worker processes against the real Redis: the counters and limits stay exact."""

from __future__ import annotations

import asyncio
import multiprocessing
from decimal import Decimal
from typing import Any

import pytest
from fraud_helpers import REFUSE, T0, engine, quiet_rules

from fraud.counter_store import RedisCounterStore
from fraud.engine import FraudEngine
from fraud.guard import FraudGuard
from fraud.model import CallAttempt, CallUsage
from fraud.rule import CallRateRule, ConcurrentRule, MinutesRule, NewCountryRule, SpendRule

pytestmark = pytest.mark.integration

WORKERS = 4


def counting_engine() -> FraudEngine:
    return engine(
        quiet_rules(
            calls_per_minute=CallRateRule(True, 10**6, 60, REFUSE),
            spend_per_hour=SpendRule(True, Decimal(10**6), 3600, REFUSE),
            country_minutes_per_hour=MinutesRule(True, 10**6, 3600, REFUSE),
            concurrent_calls=ConcurrentRule(True, 10**6, REFUSE),
            new_country=NewCountryRule(True, 1, REFUSE),
        )
    )


def limiting_engine() -> FraudEngine:
    return engine(
        quiet_rules(
            calls_per_minute=CallRateRule(True, 100, 60, REFUSE),
            concurrent_calls=ConcurrentRule(True, 25, REFUSE),
        )
    )


async def _work(kind: str, url: str, prefix: str, worker: int, calls: int) -> int:
    checker = counting_engine() if kind == "count" else limiting_engine()
    store = RedisCounterStore.from_url(url, key_prefix=prefix, shards=16)
    guard = FraudGuard(checker, store)
    admitted = 0
    try:
        for i in range(calls):
            session = f"w{worker}-{i}"
            now = T0 + i * 0.01
            attempt = CallAttempt("alice", "18765551234", now, session)
            verdict = await guard.check(attempt)
            admitted += not verdict.refused
            if kind == "count":
                await guard.record_end(
                    CallUsage("alice", session, "18765551234", now, 1000, 10, True, 10)
                )
        await guard.settle()
    finally:
        await store.close()
    return admitted


def _worker(
    kind: str, url: str, prefix: str, worker: int, calls: int, barrier: Any, results: Any
) -> None:
    barrier.wait()
    results.put(asyncio.run(_work(kind, url, prefix, worker, calls)))


def run_workers(kind: str, url: str, prefix: str, calls: int) -> list[int]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_worker, args=(kind, url, prefix, w, calls, barrier, results))
        for w in range(WORKERS)
    ]
    for process in processes:
        process.start()
    out = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return out


async def peek(url: str, prefix: str, checker: FraudEngine) -> dict[str, int]:
    store = RedisCounterStore.from_url(url, key_prefix=prefix, shards=16)
    plan = checker.attempt_plan(CallAttempt("alice", "18765551234", T0 + 5, "probe"))
    assert plan is not None
    values = await store.peek(plan)
    await store.close()
    return dict(values.values)


async def test_counters_add_up_across_workers(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    calls = 150
    admitted = await asyncio.to_thread(run_workers, "count", url, prefix, calls)
    total = WORKERS * calls
    assert sum(admitted) == total
    values = await peek(url, prefix, counting_engine())
    assert values["calls:60"] == total + 1, "the probe counts itself"
    assert values["spend:3600"] == total * 1000
    assert values["cc:JM:secs:3600"] == total * 10
    assert values["live"] == 1, "every call ended; only the probe counts itself"
    assert values["countries?JM"] == 1 and values["countries#"] == 1


async def test_limits_hold_across_workers(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    # 4 workers x 60 attempts with no call ending: 25 may be up at once, and the first 100
    # attempts in the minute are counted whatever their outcome.
    admitted = await asyncio.to_thread(run_workers, "limit", url, prefix, 60)
    assert sum(admitted) == 25
    values = await peek(url, prefix, limiting_engine())
    assert values["calls:60"] == WORKERS * 60 + 1
    assert values["live"] == 26, "25 live calls, plus the probe counting itself"
