"""One contract for both counter stores: the embedded one and the real Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from fraud_helpers import REFUSE, T0, all_rules, engine, entry, quiet_rules

from fraud.counter_store import RedisCounterStore, hash_tag, plan_keys, shard_of
from fraud.counters import CounterOp, CounterPlan, CounterStore, CounterValues, OpKind
from fraud.embedded_counter_store import EmbeddedCounterStore
from fraud.listing import ListKind, Scope
from fraud.model import CallAttempt, CallUsage
from fraud.rule import Action, NewCountryRule, SpendRule

NOW_MS = int(T0 * 1000)


@pytest.fixture(
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param("redis", id="redis", marks=pytest.mark.integration),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CounterStore]:
    if request.param == "embedded":
        embedded = EmbeddedCounterStore(tmp_path / "fraud.sqlite3", now_ms=NOW_MS)
        yield embedded
        await embedded.close()
    else:
        url, prefix = request.getfixturevalue("redis_prefix")
        remote = RedisCounterStore.from_url(url, key_prefix=prefix, shards=16)
        yield remote
        await remote.close()


def plan(*ops: CounterOp, at_ms: int = NOW_MS, account: str = "alice") -> CounterPlan:
    return CounterPlan(account, at_ms, ops, buckets=6)


def window(name: str, add: int = 0, window_s: int = 60, trip_at: int = -1) -> CounterOp:
    return CounterOp(OpKind.WINDOW, name, window_s, add, "", trip_at)


def live(kind: OpKind, member: str, ttl_s: int = 600, trip_at: int = -1) -> CounterOp:
    return CounterOp(kind, "live", ttl_s, 0, member, trip_at)


async def test_windows_add_and_slide(store: CounterStore) -> None:
    # 60 s in 6 buckets of 10 s.
    assert (await store.apply(plan(window("calls:60", 1)))).get("calls:60") == 1
    assert (await store.apply(plan(window("calls:60", 2), at_ms=NOW_MS + 25_000))).get(
        "calls:60"
    ) == 3
    read = await store.apply(plan(window("calls:60"), at_ms=NOW_MS + 59_000))
    assert read.get("calls:60") == 3
    # The first bucket (T0 .. T0+10 s) has left the window 60 s later.
    slid = await store.apply(plan(window("calls:60"), at_ms=NOW_MS + 60_000))
    assert slid.get("calls:60") == 2
    gone = await store.apply(plan(window("calls:60"), at_ms=NOW_MS + 200_000))
    assert gone.get("calls:60") == 0


async def test_windows_are_per_account_and_per_name(store: CounterStore) -> None:
    await store.apply(plan(window("spend:3600", 5_000_000, 3600)))
    await store.apply(plan(window("spend:3600", 7, 3600), account="bob"))
    await store.apply(plan(window("spend:86400", 1, 86_400)))
    values = await store.apply(
        plan(window("spend:3600", 0, 3600), window("spend:86400", 0, 86_400))
    )
    assert values.values == {"spend:3600": 5_000_000, "spend:86400": 1}


async def test_live_calls(store: CounterStore) -> None:
    values = await store.apply(plan(live(OpKind.LIVE_ADD, "s1")))
    assert values.get("live") == 1 and values.live_registered
    assert (await store.apply(plan(live(OpKind.LIVE_ADD, "s2")))).get("live") == 2
    # A repeated attempt of the same session is not a second call.
    assert (await store.apply(plan(live(OpKind.LIVE_ADD, "s2")))).get("live") == 2
    assert (await store.apply(plan(live(OpKind.LIVE_REMOVE, "s1")))).get("live") == 1
    # s2 is refreshed at +500 s, so it outlives its first expiry (+600 s).
    await store.apply(plan(live(OpKind.LIVE_TOUCH, "s2"), at_ms=NOW_MS + 500_000))
    counted = await store.apply(plan(live(OpKind.LIVE_COUNT, "", 600), at_ms=NOW_MS + 700_000))
    assert counted.get("live") == 1
    assert await store.live_sessions("alice", NOW_MS + 700_000) == ["s2"]
    expired = await store.apply(plan(live(OpKind.LIVE_ADD, "s3"), at_ms=NOW_MS + 1_200_000))
    assert expired.get("live") == 1, "s2 expired: its end was never reported"
    assert await store.live_sessions("alice", NOW_MS + 1_200_000) == ["s3"]
    assert await store.live_sessions("bob", NOW_MS) == []


async def test_the_gate_takes_a_refused_attempt_out_of_the_live_calls(
    store: CounterStore,
) -> None:
    for member in ("s1", "s2"):
        await store.apply(plan(live(OpKind.LIVE_ADD, member, trip_at=3)))
    refused = await store.apply(plan(window("calls:60", 1), live(OpKind.LIVE_ADD, "s3", trip_at=3)))
    assert refused.gate_trips == 1 and not refused.live_registered
    assert refused.get("live") == 3, "the value that tripped is reported"
    after = await store.apply(plan(live(OpKind.LIVE_COUNT, "")))
    assert after.get("live") == 2
    # A rate gate trips the same way and also takes the attempt out.
    for _ in range(2):
        await store.apply(plan(window("calls:60", 1, trip_at=4)))
    both = await store.apply(
        plan(window("calls:60", 1, trip_at=4), live(OpKind.LIVE_ADD, "s4", trip_at=10))
    )
    assert both.gate_trips == 1 and not both.live_registered
    assert both.get("calls:60") == 4


async def test_country_sets(store: CounterStore) -> None:
    test_jm = CounterOp(OpKind.SET_TEST, "countries", 86_400, 0, "JM")
    size = CounterOp(OpKind.SET_SIZE, "countries", 86_400)
    add_jm = CounterOp(OpKind.SET_ADD, "countries", 86_400, 0, "JM")
    assert (await store.apply(plan(test_jm, size))).values == {"countries?JM": 0, "countries#": 0}
    assert (await store.apply(plan(add_jm))).get("countries?JM") == 1
    assert (await store.apply(plan(add_jm))).get("countries?JM") == 0, "not new any more"
    assert (await store.apply(plan(test_jm, size))).values == {"countries?JM": 1, "countries#": 1}
    later = await store.apply(plan(test_jm, size, at_ms=NOW_MS + 86_401_000))
    assert later.values == {"countries?JM": 0, "countries#": 0}, "expired after its ttl"


async def test_peek_changes_nothing(store: CounterStore) -> None:
    checker = engine(all_rules())
    attempt = CallAttempt("alice", "18765551234", T0, "s1")
    plan_ = checker.attempt_plan(attempt)
    assert plan_ is not None
    await store.apply(plan_)
    first = await store.peek(plan_)
    second = await store.peek(plan_)
    assert first == second
    assert first.get("calls:60") == 2, "peek counts the attempt as the check would"
    assert first.get("live") == 2
    assert (await store.apply(plan(live(OpKind.LIVE_COUNT, "")))).get("live") == 1
    same_buckets = dataclasses.replace(plan(window("calls:60")), buckets=plan_.buckets)
    assert (await store.apply(same_buckets)).get("calls:60") == 1


async def test_the_store_gate_agrees_with_the_engine(store: CounterStore) -> None:
    rules = dataclasses.replace(
        all_rules(), spend_per_hour=SpendRule(True, Decimal(3), 3600, (Action.REFUSE,))
    )
    checker = engine(rules)
    usage = CallUsage("alice", "s0", "18765551234", T0, spend_micros=1_000_000, seconds=60)
    outcomes = []
    for i in range(5):
        if i:
            await store.apply(checker.usage_plan(usage))  # type: ignore[arg-type]
        attempt = CallAttempt("alice", "18765551234", T0 + i, f"s{i}")
        plan_ = checker.attempt_plan(attempt)
        assert plan_ is not None
        values = await store.apply(plan_)
        verdict = checker.check(attempt, values)
        assert (values.gate_trips > 0) is verdict.refused
        outcomes.append(verdict.refused)
    assert outcomes == [False, False, False, True, True]


async def test_the_new_country_gate_agrees_with_the_engine(store: CounterStore) -> None:
    rules = quiet_rules(new_country=NewCountryRule(True, 1, REFUSE))
    checker = engine(rules, [entry(ListKind.ALLOW, "33", Scope.ACCOUNT, "alice")])
    gb, jm, fr = "442071234567", "18765551234", "33142278186"

    async def refused(called: str, i: int) -> bool:
        attempt = CallAttempt("alice", called, T0 + i, f"s{i}")
        plan_ = checker.attempt_plan(attempt)
        assert plan_ is not None
        values = await store.apply(plan_)
        verdict = checker.check(attempt, values)
        assert (values.gate_trips > 0) is verdict.refused
        assert values.live_registered is not verdict.refused
        return verdict.refused

    assert not await refused(jm, 0), "no country known yet"
    ended = CallUsage("alice", "s0", jm, T0 + 1, 0, 60, True, 60)
    await store.apply(checker.usage_plan(ended))  # type: ignore[arg-type]
    assert await refused(gb, 2), "a first call to another country"
    assert not await refused(jm, 3), "a country called before"
    assert not await refused(fr, 4), "the account's allow list lets it through"


def test_keys_share_the_accounts_hash_tag() -> None:
    checker = engine(all_rules())
    plan_ = checker.attempt_plan(CallAttempt("alice", "18765551234", T0, "s1"))
    assert plan_ is not None
    keys = plan_keys(plan_, "ocsd", 256)
    tag = hash_tag("alice", "ocsd", 256)
    assert tag == f"{{ocsd:{shard_of('alice', 256)}}}"
    assert all(k.startswith(tag + ":fraud:") and k.endswith(":alice") for k in keys)
    assert keys == [
        f"{tag}:fraud:w:alice",
        f"{tag}:fraud:live:alice",
        f"{tag}:fraud:countries:alice",
        f"{tag}:fraud:cc:JM:alice",
    ]


async def test_embedded_counters_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "fraud.sqlite3"
    first = EmbeddedCounterStore(path, now_ms=NOW_MS)
    await first.apply(
        plan(
            window("spend:3600", 42, 3600),
            CounterOp(OpKind.SET_ADD, "countries", 86_400, 0, "JM"),
            live(OpKind.LIVE_ADD, "s1"),
        )
    )
    await first.close()
    second = EmbeddedCounterStore(path, now_ms=NOW_MS + 1000)
    values = await second.peek(
        plan(
            window("spend:3600", 0, 3600),
            CounterOp(OpKind.SET_TEST, "countries", 86_400, 0, "JM"),
            live(OpKind.LIVE_COUNT, ""),
            at_ms=NOW_MS + 1000,
        )
    )
    assert values == CounterValues({"spend:3600": 42, "countries?JM": 1, "live": 1})
    await second.close()


async def test_embedded_country_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fraud.sqlite3"
    running = EmbeddedCounterStore(path, now_ms=NOW_MS)
    await running.apply(plan(CounterOp(OpKind.SET_ADD, "countries", 86_400, 0, "JM")))
    # Another process (the CLI) sees it without a flush.
    reader = EmbeddedCounterStore(path, now_ms=NOW_MS)
    found = await reader.peek(plan(CounterOp(OpKind.SET_TEST, "countries", 86_400, 0, "JM")))
    assert found.get("countries?JM") == 1
    await reader.close()
    await running.close()


async def test_embedded_maintenance_forgets_expired_counters(tmp_path: Path) -> None:
    store = EmbeddedCounterStore(tmp_path / "fraud.sqlite3", now_ms=NOW_MS)
    await store.apply(plan(window("calls:60", 1), live(OpKind.LIVE_ADD, "s1", ttl_s=60)))
    await store.maintain((NOW_MS + 300_000) / 1000)
    assert store._windows == {} and store._live == {}
    await store.close()


@pytest.mark.integration
async def test_redis_is_one_round_trip(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    client = aioredis.Redis.from_url(url)
    store = RedisCounterStore(client, key_prefix=prefix, shards=16)
    checker = engine(all_rules())
    attempt = CallAttempt("alice", "18765551234", T0, "s1")
    plan_ = checker.attempt_plan(attempt)
    assert plan_ is not None
    await store.apply(plan_)  # loads the script
    calls: list[tuple[object, ...]] = []
    original = client.execute_command

    async def counting(*args: object, **options: object) -> object:
        calls.append(args)
        return await original(*args, **options)

    client.execute_command = counting  # type: ignore[method-assign]
    try:
        await store.apply(plan_)
    finally:
        client.execute_command = original  # type: ignore[method-assign]
        await store.close()
    assert [c[0] for c in calls] == ["EVALSHA"]
