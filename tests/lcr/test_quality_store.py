"""Routing state stores: one contract, run on the in-process store and on the real Redis.

Capacity slots, calls per second, probes, quality buckets and demotion, driven by outcomes of
ended calls, the way accounting feeds them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from lcr_world import T0, carrier, deck, rate, request, router

from lcr.decision import Route, SkipReason
from lcr.model import RouteEntry
from lcr.quality import CallOutcome, CallResult, QualityBoard, QualityState
from lcr.quality_store import MemoryRoutingState, RedisRoutingState
from lcr.settings import LcrSettings, QualitySettings
from lcr.state import RoutingStateStore, refresh

REDIS_URL = os.environ.get("OCSD_TEST_REDIS", "redis://127.0.0.1:6379/0")
SETTINGS = LcrSettings(
    quality=QualitySettings(min_samples=10, min_asr=0.3, min_ner=0.5, cooldown_s=300)
)


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("redis", id="redis", marks=pytest.mark.integration),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RoutingStateStore]:
    if request.param == "memory":
        yield MemoryRoutingState(SETTINGS)
        return
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=2)
    try:
        await client.ping()
    except Exception as exc:  # the server is simply absent
        await client.aclose()
        if os.environ.get("OCSD_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    state = RedisRoutingState(client, SETTINGS, key_prefix=prefix)
    try:
        yield state
    finally:
        keys = [k async for k in client.scan_iter(match=f"{{{prefix}:lcr}}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def routes(*specs: tuple[str, str, int, int], probe: bool = False) -> list[Route]:
    """(carrier, trunk, carrier max calls, carrier max cps) routes."""
    return [
        Route(
            carrier_id=c,
            trunk_id=t,
            address="",
            number="1",
            caller_id="",
            cost_micros=0,
            rate_micros=0,
            currency="USD",
            margin_micros=None,
            level_margins_micros=(),
            prefix="44",
            destination="",
            group="44",
            probe=probe,
            carrier_max_calls=calls,
            carrier_max_cps=cps,
            trunk_max_calls=1 if t == "tiny" else 0,
        )
        for c, t, calls, cps in specs
    ]


async def test_concurrent_call_limits(store: RoutingStateStore) -> None:
    offer = routes(("a", "a1", 2, 0), ("b", "b1", 0, 0))
    first = await store.admit("call-1", offer, T0)
    second = await store.admit("call-2", offer, T0 + 1)
    assert (first.selected, second.selected) == (0, 0)
    assert await store.concurrent() == {"c|a": 2, "t|a1": 2}
    third = await store.admit("call-3", offer, T0 + 2)
    assert third.selected == 1
    assert third.removed == [(0, SkipReason.OVER_CAPACITY, "carrier at its concurrent-call limit")]
    # A retransmitted authorization takes nothing twice.
    again = await store.admit("call-1", offer, T0 + 3)
    assert again.selected == 0 and again.removed == []
    await store.finish(CallOutcome("a", "44", CallResult.ANSWERED, T0 + 60, 50, call_id="call-1"))
    await store.finish(CallOutcome("a", "44", CallResult.ANSWERED, T0 + 60, 50, call_id="call-1"))
    assert await store.concurrent() == {"c|a": 1, "t|a1": 1, "c|b": 1, "t|b1": 1}
    assert (await store.admit("call-4", offer, T0 + 61)).selected == 0


async def test_calls_per_second_and_trunk_limits(store: RoutingStateStore) -> None:
    offer = routes(("a", "a1", 0, 2), ("b", "tiny", 0, 0))
    codes = [(await store.admit(f"c{i}", offer, T0 + 0.1 * i)).selected for i in range(3)]
    assert codes == [0, 0, 1]
    full = await store.admit("c9", offer, T0 + 0.5)
    assert full.selected is None
    assert [r[2] for r in full.removed] == [
        "carrier at its calls-per-second limit",
        "trunk at its concurrent-call limit",
    ]
    assert (await store.admit("c10", offer, T0 + 1.2)).selected == 0  # a new second


async def test_slots_of_calls_that_never_end_expire(store: RoutingStateStore) -> None:
    offer = routes(("a", "", 1, 0))
    await store.admit("lost", offer, T0)
    assert (await store.admit("next", offer, T0 + 10)).selected is None
    later = T0 + SETTINGS.capacity.slot_ttl_s + 1
    assert (await store.admit("next", offer, later)).selected == 0


async def test_carried_moves_the_slot_after_a_failover(store: RoutingStateStore) -> None:
    await store.admit("x", routes(("a", "a1", 0, 0), ("b", "b1", 0, 0)), T0)
    await store.carried("x", "b", "b1", T0 + 1)
    await store.carried("x", "b", "b1", T0 + 1)
    assert await store.concurrent() == {"c|b": 1, "t|b1": 1}
    await store.finish(CallOutcome("b", "44", CallResult.ANSWERED, T0 + 9, 8, call_id="x"))
    assert await store.concurrent() == {}


async def test_a_bad_carrier_is_demoted_from_real_outcomes_then_probed_and_restored(
    store: RoutingStateStore,
) -> None:
    carriers = [carrier("bad"), carrier("good")]
    decks = {
        "deck-bad": deck("deck-bad", [rate("44", 1_000)]),
        "deck-good": deck("deck-good", [rate("44", 9_000)]),
    }
    board = QualityBoard()
    r = router(
        carriers,
        decks,
        [RouteEntry("44", "bad"), RouteEntry("44", "good")],
        board=board,
        settings=SETTINGS,
    )
    now = float(T0)
    # 12 calls on the cheap carrier: 1 answered, 11 failed in the network.
    for i in range(12):
        decision = r.route(request(at=int(now)))
        assert decision.routes[0].carrier_id == "bad"
        admission = await store.admit(f"call-{i}", decision.routes, now)
        assert admission.selected == 0
        result = CallResult.ANSWERED if i == 0 else CallResult.NETWORK_FAILURE
        await store.finish(
            CallOutcome(
                "bad", "44", result, now + 5, 30 if i == 0 else 0, pdd_ms=2500, call_id=f"call-{i}"
            )
        )
        now += 10
    demoted = await refresh(store, board, SETTINGS, now)
    assert [pair for pair, _ in demoted] == [("bad", "44")] and "ASR" in demoted[0][1]
    entry = board.snapshot.get("bad", "44")
    assert (
        entry is not None and entry.state is QualityState.DEMOTED and entry.figures.attempts == 12
    )
    decision = r.route(request(at=int(now)))
    assert [x.carrier_id for x in decision.routes] == ["good"]
    assert decision.skipped[0].reason is SkipReason.DEMOTED
    # A second worker deciding the same demotion later does not extend it.
    await store.demote([(("bad", "44"), now + 9999)])
    # After the cool-down one call probes; a concurrent one is refused the probe.
    now += 301
    await refresh(store, board, SETTINGS, now)
    probe = r.route(request(at=int(now)))
    assert probe.routes[0].carrier_id == "bad" and probe.routes[0].probe
    assert (await store.admit("probe-1", probe.routes, now)).selected == 0
    other = await store.admit("probe-2", probe.routes, now + 1)
    assert (
        other.removed == [(0, SkipReason.DEMOTED, "another call is probing it")]
        and other.selected == 1
    )
    # The probe is answered: the demotion is lifted and old failures no longer count.
    await store.finish(
        CallOutcome("bad", "44", CallResult.ANSWERED, now + 70, 60, probe=True, call_id="probe-1")
    )
    await refresh(store, board, SETTINGS, now + 71)
    assert (
        board.snapshot.get("bad", "44") is None
        or board.snapshot.get("bad", "44").state is QualityState.OK
    )  # type: ignore[union-attr]
    assert r.route(request(at=int(now + 71))).routes[0].carrier_id == "bad"


async def test_a_failed_probe_extends_the_demotion(store: RoutingStateStore) -> None:
    await store.demote([(("bad", "44"), T0 + 10)])
    offer = routes(("bad", "", 0, 0), probe=True)
    assert (await store.admit("p", offer, T0 + 20)).selected == 0
    await store.finish(
        CallOutcome("bad", "44", CallResult.NETWORK_FAILURE, T0 + 30, probe=True, call_id="p")
    )
    data = await store.window(T0 + 31)
    assert data.demoted[("bad", "44")] == T0 + 30 + 300
    assert (await store.admit("q", offer, T0 + 40)).selected == 0  # the claim was released


async def test_window_reads_every_bucket(store: RoutingStateStore) -> None:
    for minute in range(20):
        await store.finish(
            CallOutcome("a", "44", CallResult.ANSWERED, T0 + 60 * minute, 10, pdd_ms=100)
        )
    data = await store.window(T0 + 60 * 19)
    assert len(data.buckets) == 15
    total = sum(counts.attempts for bucket in data.buckets.values() for counts in bucket.values())
    assert total == 15
