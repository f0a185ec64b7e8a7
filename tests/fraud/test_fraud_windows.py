"""Sliding windows: both stores agree with a plain model, whatever the order of events."""

from __future__ import annotations

import uuid

import pytest
import redis
from fraud_helpers import T0
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.counter_store import SCRIPT_SOURCE, plan_args, plan_keys
from fraud.counters import CounterOp, CounterPlan, OpKind
from fraud.embedded_counter_store import EmbeddedCounterStore

BUCKETS = 6
WIDTH_MS = 10_000  # a 60 s window in 6 buckets
START_MS = int(T0 * 1000)

steps = st.lists(
    st.tuples(st.integers(min_value=-30_000, max_value=150_000), st.integers(0, 5)),
    min_size=1,
    max_size=40,
)


class Model:
    """The window's meaning, written plainly: accepted adds in the last BUCKETS buckets
    ending at the newest bucket seen (or now, if later)."""

    def __init__(self) -> None:
        self.adds: list[tuple[int, int]] = []
        self.newest: int | None = None

    def step(self, now_ms: int, add: int) -> int:
        current = now_ms // WIDTH_MS
        if add and (self.newest is None or current > self.newest - BUCKETS):
            self.adds.append((current, add))
            self.newest = current if self.newest is None else max(self.newest, current)
        end = current if self.newest is None else max(current, self.newest)
        return sum(a for b, a in self.adds if end - BUCKETS < b <= end)


def plan(now_ms: int, add: int) -> CounterPlan:
    op = CounterOp(OpKind.WINDOW, "calls:60", 60, add)
    return CounterPlan("alice", now_ms, (op,), BUCKETS)


def times(moves: list[tuple[int, int]]) -> list[tuple[int, int]]:
    now = START_MS
    out = []
    for delta, add in moves:
        now += delta
        out.append((now, add))
    return out


@settings(max_examples=300, deadline=None)
@given(steps)
def test_the_embedded_window_is_the_model(moves: list[tuple[int, int]]) -> None:
    model = Model()
    store = EmbeddedCounterStore(None)
    for now, add in times(moves):
        assert store.apply_now(plan(now, add)).get("calls:60") == model.step(now, add)


@pytest.mark.integration
@settings(max_examples=60, deadline=None)
@given(steps)
def test_the_redis_window_is_the_model(moves: list[tuple[int, int]]) -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        pytest.skip(f"Redis not reachable: {exc}")
    prefix = f"t{uuid.uuid4().hex[:12]}"
    script = client.register_script(SCRIPT_SOURCE)
    model = Model()
    try:
        for now, add in times(moves):
            p = plan(now, add)
            reply = script(keys=plan_keys(p, prefix, 16), args=plan_args(p))
            assert reply[2] == model.step(now, add)
    finally:
        keys = list(client.scan_iter(match=f"{{{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
