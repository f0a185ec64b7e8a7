"""What the fraud checks add to an authorization: median and p99, embedded and Redis.

    python bench/fraud.py [--redis redis://127.0.0.1:6379/0] [--checks 20000]

Every rule is enabled (with thresholds the traffic stays under, so each check runs every rule
to the end), with realistic lists: the default high-risk ranges, 10,000 global DNC numbers,
1,000 global deny prefixes, per-account allow/deny/DNC/opt-in lists and CIDRs for a tenth of
the 1,000 accounts. Calls go round-robin over the accounts to numbers in 40 countries.

Figures:

- ``engine``: the pure evaluation (lists, plan, verdict), no store;
- ``embedded``: ``FraudGuard.check`` on the embedded store (what the single-node default adds);
- ``redis``: ``FraudGuard.check`` on Redis with its own round trip (one EVALSHA), next to a
  bare PING on the same client, the round trips per check, and Redis's own time per script;
- ``authorize``: the opening hold of a call on the Redis balance store three ways, interleaved
  call by call: alone (no fraud checks), after ``FraudGuard.check`` (its own round trip), and
  with the counter step folded into the hold (``screen`` + one gated HOLD + ``conclude``, what
  the charging service does on Redis); the median of each minus the hold's alone is what the
  fraud checks add to an authorization, with the Redis round trips per authorization.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from balances.model import (  # noqa: E402
    AccountLimits,
    Hold,
    LedgerKind,
    Step,
    StepGate,
    StepKind,
    StepStatus,
)
from balances.redis_store import LuaGate, RedisBalanceStore  # noqa: E402
from balances.settings import RedisStoreSettings  # noqa: E402
from fraud.counter_store import (  # noqa: E402
    FUNCTION_NAME,
    FUNCTION_SOURCE,
    RedisCounterStore,
)
from fraud.counters import CounterStore, CounterValues  # noqa: E402
from fraud.embedded_counter_store import EmbeddedCounterStore  # noqa: E402
from fraud.engine import FraudData, FraudEngine  # noqa: E402
from fraud.guard import FraudGuard  # noqa: E402
from fraud.listing import ListEntry, ListKind, Scope  # noqa: E402
from fraud.model import CallAttempt, CallUsage  # noqa: E402
from fraud.rule import (  # noqa: E402
    Action,
    CallRateRule,
    ConcurrentRule,
    MatchRule,
    MinutesRule,
    NewCountryRule,
    Rules,
    ShortCallRule,
    SpendRule,
)
from fraud.settings import FraudSettings  # noqa: E402

ACCOUNTS = [f"acct{i:04d}" for i in range(1000)]
DESTINATIONS = [
    "442071234567",
    "33142278186",
    "4930123456",
    "34911234567",
    "390612345678",
    "31201234567",
    "3222345678",
    "41441234567",
    "43122345678",
    "4687654321",
    "4722123456",
    "4533123456",
    "358912345678",
    "48221234567",
    "420221234567",
    "36112345678",
    "40211234567",
    "351211234567",
    "302101234567",
    "353112345678",
    "12125551234",
    "14165551234",
    "18765551234",
    "5511912345678",
    "525512345678",
    "541112345678",
    "56221234567",
    "5712345678",
    "51112345678",
    "61212345678",
    "6421234567",
    "81312345678",
    "82212345678",
    "8613812345678",
    "85212345678",
    "6561234567",
    "919812345678",
    "971501234567",
    "27211234567",
    "2348012345678",
]
REFUSE_ALERT = (Action.REFUSE, Action.ALERT)


def rules() -> Rules:
    """Every rule on, thresholds the benchmark's traffic stays under."""
    big = 10**9
    return Rules(
        caller_is_callee=MatchRule(True, REFUSE_ALERT),
        peer_ip=MatchRule(True, REFUSE_ALERT),
        account_ip=MatchRule(True, REFUSE_ALERT),
        dnc=MatchRule(True, REFUSE_ALERT),
        deny_destination=MatchRule(True, REFUSE_ALERT),
        high_risk_destination=MatchRule(True, REFUSE_ALERT),
        calls_per_minute=CallRateRule(True, big, 60, REFUSE_ALERT),
        concurrent_calls=ConcurrentRule(True, big, REFUSE_ALERT),
        spend_per_hour=SpendRule(True, Decimal(big), 3600, REFUSE_ALERT),
        spend_per_day=SpendRule(True, Decimal(big), 86_400, REFUSE_ALERT),
        country_spend_per_hour=SpendRule(True, Decimal(big), 3600, REFUSE_ALERT),
        country_minutes_per_hour=MinutesRule(True, big, 3600, REFUSE_ALERT),
        short_calls=ShortCallRule(True, 6, big, 300, REFUSE_ALERT),
        new_country=NewCountryRule(True, big, REFUSE_ALERT),
    )


def entries() -> list[ListEntry]:
    out = [ListEntry(ListKind.DNC, Scope.GLOBAL, "", f"4420{i:08d}") for i in range(10_000)]
    out += [ListEntry(ListKind.DENY, Scope.GLOBAL, "", f"99{i:04d}") for i in range(1000)]
    out += [ListEntry(ListKind.IP, Scope.PEER, "sbc1", "10.0.0.0/8")]
    for account in ACCOUNTS[::10]:
        out += [
            ListEntry(ListKind.DENY, Scope.ACCOUNT, account, "4470"),
            ListEntry(ListKind.ALLOW, Scope.ACCOUNT, account, "447012"),
            ListEntry(ListKind.DNC, Scope.ACCOUNT, account, "33100000000"),
            ListEntry(ListKind.OPT_IN, Scope.ACCOUNT, account, "882"),
            ListEntry(ListKind.IP, Scope.ACCOUNT, account, "10.0.0.0/8"),
            ListEntry(ListKind.IP, Scope.ACCOUNT, account, "2001:db8::/32"),
        ]
    return out


def build_engine() -> FraudEngine:
    return FraudEngine.build(FraudSettings(rules=rules()), FraudData(tuple(entries())))


def attempts(count: int, now: float) -> list[CallAttempt]:
    return [
        CallAttempt(
            account_id=ACCOUNTS[i % len(ACCOUNTS)],
            called=DESTINATIONS[i % len(DESTINATIONS)],
            now=now + i * 0.001,
            session_id=f"bench-{i}",
            calling="33612345678",
            source_ip="10.1.2.3",
            caller_ip="10.9.8.7",
            peer="sbc1",
        )
        for i in range(count)
    ]


def summary(name: str, samples_ns: list[int]) -> str:
    samples = sorted(samples_ns)
    median = statistics.median(samples) / 1000
    p99 = samples[int(len(samples) * 0.99) - 1] / 1000
    return f"{name:<34} median {median:8.1f} us   p99 {p99:8.1f} us   ({len(samples)} runs)"


def bench_engine(engine: FraudEngine, calls: list[CallAttempt]) -> list[int]:
    empty = CounterValues({})
    out = []
    for attempt in calls:
        start = time.perf_counter_ns()
        verdict = engine.screen(attempt)
        if not verdict.refused:
            engine.attempt_plan(attempt)
            verdict = engine.check(attempt, empty, verdict)
        out.append(time.perf_counter_ns() - start)
        assert not verdict.hits, verdict.hits
    return out


async def bench_guard(guard: FraudGuard, calls: list[CallAttempt]) -> list[int]:
    out = []
    for attempt in calls:
        start = time.perf_counter_ns()
        verdict = await guard.check(attempt)
        out.append(time.perf_counter_ns() - start)
        assert not verdict.hits, verdict.hits
    return out


async def bench_ends(guard: FraudGuard, calls: list[CallAttempt]) -> list[int]:
    out = []
    for attempt in calls:
        usage = CallUsage(
            attempt.account_id,
            attempt.session_id,
            attempt.called,
            attempt.now + 60,
            1_000_000,
            60,
            True,
            60,
        )
        start = time.perf_counter_ns()
        await guard.record_end(usage)
        out.append(time.perf_counter_ns() - start)
    return out


async def run_embedded(engine: FraudEngine, calls: list[CallAttempt]) -> list[str]:
    store: CounterStore = EmbeddedCounterStore(None)
    guard = FraudGuard(engine, store)
    await bench_guard(guard, calls[:2000])  # warm-up
    lines = [summary("embedded: check (lists+counters)", await bench_guard(guard, calls))]
    lines.append(summary("embedded: record_end", await bench_ends(guard, calls)))
    await guard.close()
    return lines


def hold_step(attempt: CallAttempt, session: str) -> Step:
    """The opening hold of a call, as the charging service asks for it."""
    now_ms = int(attempt.now * 1000)
    return Step(
        kind=StepKind.HOLD,
        account_id=attempt.account_id,
        session_id=session,
        request_number=0,
        now_ms=now_ms,
        day_key="2026-01-01",
        month_key="2026-01",
        holds=(Hold("1", 120_000),),
        new_session=True,
        state=b"s" * 300,
        deadline_ms=now_ms + 660_000,
        context=b"c" * 20,
    )


async def run_redis(url: str, engine: FraudEngine, calls: list[CallAttempt]) -> list[str]:
    import redis.asyncio as aioredis

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(url)
    counters = RedisCounterStore(client, key_prefix=prefix, shards=256)
    guard = FraudGuard(engine, counters)
    store = RedisBalanceStore(
        RedisStoreSettings(url=url, key_prefix=prefix, shards=256),
        gate=LuaGate(FUNCTION_SOURCE, FUNCTION_NAME),
    )
    lines: list[str] = []
    for account in ACCOUNTS:
        await store.put_account(AccountLimits(account))
        await store.ledger(account, LedgerKind.TOPUP, 10**12, "opening", b"", 0)

    async def alone(attempt: CallAttempt) -> None:
        result = await store.step(hold_step(attempt, "h-" + attempt.session_id))
        assert result.status is StepStatus.OK, result

    async def apart(attempt: CallAttempt) -> None:
        verdict = await guard.check(replace(attempt, session_id="a-" + attempt.session_id))
        assert not verdict.hits, verdict.hits
        result = await store.step(hold_step(attempt, "a-" + attempt.session_id))
        assert result.status is StepStatus.OK, result

    async def folded(attempt: CallAttempt) -> None:
        attempt = replace(attempt, session_id="f-" + attempt.session_id)
        pending = guard.screen(attempt, fold=True)
        assert pending.folded is not None and not pending.screened.refused
        step = hold_step(attempt, attempt.session_id)
        step.gate = StepGate(*pending.folded)
        result = await store.step(step)
        verdict = guard.conclude(pending, result.gate)
        assert not verdict.hits and result.status is StepStatus.OK, (verdict.hits, result)

    def trips() -> int:
        return store.round_trips + counters.round_trips

    try:
        await bench_guard(guard, calls[:1000])  # warm-up, loads the scripts
        for attempt in calls[:1000]:
            for work in (alone, apart, folded):
                await work(replace(attempt, session_id="w-" + attempt.session_id))
        pings = []
        for _ in range(len(calls)):
            start = time.perf_counter_ns()
            await client.ping()
            pings.append(time.perf_counter_ns() - start)
        await client.config_resetstat()
        counted = trips()
        checks = await bench_guard(guard, calls)
        per_check = (trips() - counted) / len(calls)
        stats = await client.info("commandstats")
        ends = await bench_ends(guard, calls)
        # The three ways to authorize, interleaved call by call so that the load of the
        # machine weighs on each alike.
        samples: dict[str, list[int]] = {"alone": [], "apart": [], "folded": []}
        per_call = dict.fromkeys(samples, 0)
        works = {"alone": alone, "apart": apart, "folded": folded}
        for attempt in calls:
            for name, work in works.items():
                counted = trips()
                start = time.perf_counter_ns()
                await work(attempt)
                samples[name].append(time.perf_counter_ns() - start)
                per_call[name] += trips() - counted
        evalsha = stats.get("cmdstat_evalsha", {})
        lines.append(summary("redis: PING round trip (baseline)", pings))
        lines.append(summary("redis: check, own round trip", checks))
        lines.append(f"{'redis: round trips per check':<34} {per_check:8.2f}")
        lines.append(
            f"{'redis: script time in Redis':<34} "
            f"{evalsha.get('usec_per_call', 0):8.1f} us   (INFO commandstats, per check)"
        )
        lines.append(summary("redis: record_end", ends))
        labels = {
            "alone": "authorize: hold, no fraud",
            "apart": "authorize: check, then hold",
            "folded": "authorize: hold with fraud folded",
        }
        for name, label in labels.items():
            lines.append(summary(label, samples[name]))
        for name, label in labels.items():
            lines.append(
                f"{label + ': trips':<34} {per_call[name] / len(calls):8.2f}"
                "      (Redis round trips per authorization)"
            )
        base = statistics.median(samples["alone"])
        for name in ("apart", "folded"):
            added = statistics.median(samples[name]) - base
            lines.append(
                f"{'added by fraud, ' + name:<34} median {added / 1000:8.1f} us"
                "   (authorization median minus the hold's alone)"
            )
    finally:
        keys = [k async for k in client.scan_iter(match=f"{{{prefix}:*", count=1000)]
        keys += [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i : i + 1000])
        await guard.close()
        await store.close()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' to skip")
    args = parser.parse_args()
    engine = build_engine()
    now = time.time()
    calls = attempts(args.checks, now)
    print(
        f"fraud checks, all {len(Rules.__dataclass_fields__)} rules enabled, "
        f"{len(engine.lists.entries)} list entries, Python {sys.version.split()[0]}"
    )
    bench_engine(engine, calls[:2000])
    print(summary("engine: lists + plan + verdict", bench_engine(engine, calls)))
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        for line in runner.run(run_embedded(engine, calls)):
            print(line)
        if args.redis:
            for line in runner.run(run_redis(args.redis, engine, calls)):
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
