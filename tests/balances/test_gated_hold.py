"""A HOLD with a gate folded in front of it (Redis): one script, one round trip, and a gate
that trips leaves the account and the session as they were."""

from __future__ import annotations

import dataclasses
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from balances.embedded_store import EmbeddedBalanceStore
from balances.model import AccountLimits, DenyReason, Hold, LedgerKind, StepGate, StepStatus
from balances.redis_store import LuaGate, RedisBalanceStore
from balances.settings import RedisStoreSettings
from tests.balances.backends import delete_redis_keys
from tests.balances.test_contract import HORIZON, T0, TTL, close, hold

pytestmark = pytest.mark.integration

# A gate of the documented shape: counts attempts in one key of the account's slot and trips
# once they pass a limit.
ATTEMPTS = LuaGate(
    source="""
local function attempts(keys, kbase, argv, abase)
  local n = redis.call('INCR', keys[kbase + 1])
  local trips = 0
  if n > tonumber(argv[abase + 1]) then
    trips = 1
  end
  return {trips, n}
end
""",
    function="attempts",
)
SHARDS = 8


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisBalanceStore]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    settings = RedisStoreSettings(url=redis_url, key_prefix=prefix, shards=SHARDS)
    found = RedisBalanceStore(settings, gate=ATTEMPTS)
    await found.put_account(AccountLimits("acct"))
    await found.ledger("acct", LedgerKind.TOPUP, 1_000_000, "opening", b"", T0)
    try:
        yield found
    finally:
        await found.close()
        delete_redis_keys(redis_url, prefix)


def tag(store: RedisBalanceStore, account_id: str = "acct") -> str:
    shard = zlib.crc32(account_id.encode()) % SHARDS
    return f"{{{store.settings.key_prefix}:{shard}}}"


def gate(store: RedisBalanceStore, limit: int) -> StepGate:
    return StepGate((f"{tag(store)}:attempts",), (limit,))


async def test_the_hold_runs_behind_an_open_gate_in_one_round_trip(
    store: RedisBalanceStore,
) -> None:
    step = dataclasses.replace(hold("s1", 0, Hold("v", 400), new=True), gate=gate(store, 2))
    await store.step(dataclasses.replace(step, session_id="warm-up"))
    trips = store.round_trips
    result = await store.step(step)
    assert store.round_trips - trips == 1
    assert result.status is StepStatus.OK and result.holds == (400,)
    assert list(result.gate) == [0, 2], "the gate's reply comes back with the hold's"
    state = await store.get_account("acct")
    assert state is not None and state.held_micros == 800


async def test_a_tripped_gate_holds_nothing_and_opens_no_session(
    store: RedisBalanceStore,
) -> None:
    admitted = await store.step(
        dataclasses.replace(hold("s1", 0, Hold("v", 400), new=True), gate=gate(store, 1))
    )
    assert admitted.status is StepStatus.OK
    trips = store.round_trips
    refused = await store.step(
        dataclasses.replace(hold("s2", 0, Hold("v", 400), new=True), gate=gate(store, 1))
    )
    assert store.round_trips - trips == 1
    assert refused.status is StepStatus.GATED and list(refused.gate) == [1, 2]
    state = await store.get_account("acct")
    assert state is not None
    assert (state.held_micros, state.sessions, state.balance_micros) == (400, 1, 1_000_000)
    assert await store.get_session("acct", "s2") is None
    assert await store.find_session_account("s2") is None
    # The session id is free: the same call may come again once the gate lets it through.
    again = await store.step(
        dataclasses.replace(hold("s2", 0, Hold("v", 400), new=True), gate=gate(store, 10))
    )
    assert again.status is StepStatus.OK
    closed = await store.step(close("s2", 1, 100, expected=0))
    assert closed.status is StepStatus.OK and closed.debited_micros == 100


async def test_the_gate_runs_before_the_holds_own_checks(store: RedisBalanceStore) -> None:
    # A repeated opening hold is a duplicate; the gate counted it all the same.
    step = dataclasses.replace(hold("s1", 0, Hold("v", 400), new=True), gate=gate(store, 10))
    assert (await store.step(step)).status is StepStatus.OK
    repeated = await store.step(step)
    assert repeated.status is StepStatus.DUPLICATE and list(repeated.gate) == [0, 2]
    poor = dataclasses.replace(
        hold("s2", 0, Hold("v", 10**7, 10**7), new=True), gate=gate(store, 10)
    )
    denied = await store.step(poor)
    assert denied.status is StepStatus.DENIED and list(denied.gate) == [0, 3]


async def test_a_gated_opening_hold_reads_the_closed_marker_behind_the_gates_keys(
    store: RedisBalanceStore,
) -> None:
    opening = dataclasses.replace(
        hold("s1", 0, Hold("v", 400), new=True), closed_ttl_ms=HORIZON, gate=gate(store, 10)
    )
    assert (await store.step(opening)).status is StepStatus.OK
    closed = await store.step(close("s1", 1, 100, expected=0, closed_ttl_ms=HORIZON))
    assert closed.status is StepStatus.OK
    later = T0 + 10 * TTL
    trips = store.round_trips
    again = await store.step(dataclasses.replace(opening, now_ms=later, deadline_ms=later + 60_000))
    assert store.round_trips - trips == 1
    assert again.status is StepStatus.ALREADY_CLOSED and list(again.gate) == [0, 2]
    state = await store.get_account("acct")
    assert state is not None
    assert (state.balance_micros, state.held_micros, state.sessions) == (999_900, 0, 0)
    fresh = dataclasses.replace(opening, session_id="s2", now_ms=later, deadline_ms=later + 1)
    assert (await store.step(fresh)).status is StepStatus.OK


async def test_gate_keys_must_share_the_accounts_slot(store: RedisBalanceStore) -> None:
    elsewhere = StepGate((f"{store.settings.key_prefix}:global:attempts",), (1,))
    with pytest.raises(ValueError, match="slot"):
        await store.step(dataclasses.replace(hold("s1", 0, Hold("v", 1), new=True), gate=elsewhere))
    client = redis.Redis.from_url(store.settings.url)
    try:
        assert client.get(f"{store.settings.key_prefix}:global:attempts") is None
    finally:
        client.close()


async def test_a_store_without_a_gate_refuses_a_gated_step(redis_url: str, tmp_path: Path) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    plain = RedisBalanceStore(RedisStoreSettings(url=redis_url, key_prefix=prefix, shards=8))
    embedded = EmbeddedBalanceStore(str(tmp_path / "hot.sqlite3"))
    step = dataclasses.replace(
        hold("s1", 0, Hold("v", 1), new=True), gate=StepGate((f"{{{prefix}:0}}:x",), ())
    )
    try:
        for store in (plain, embedded):
            with pytest.raises(ValueError, match="gate"):
                await store.step(step)
        with pytest.raises(ValueError, match="HOLD"):
            await plain.step(dataclasses.replace(close("s1", 1, 0), gate=step.gate))
    finally:
        await plain.close()
        await embedded.close()
        delete_redis_keys(redis_url, prefix)


@pytest.mark.parametrize("where", ["own-shard", "other-shard"])
async def test_a_full_queue_refuses_a_gated_opening_hold(redis_url: str, where: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    settings = RedisStoreSettings(
        url=redis_url, key_prefix=prefix, shards=SHARDS, max_record_queue=1
    )
    store = RedisBalanceStore(settings, gate=ATTEMPTS)
    mine = zlib.crc32(b"acct") % SHARDS
    other = next(f"b{n}" for n in range(100) if zlib.crc32(f"b{n}".encode()) % SHARDS != mine)
    try:
        await store.put_account(AccountLimits("acct"))
        # One top-up is the queue's one record: in the account's own shard (the script sees
        # it), or in another (the store's look at the whole queue sees it).
        owner = "acct" if where == "own-shard" else other
        if owner != "acct":
            await store.put_account(AccountLimits(owner))
        await store.ledger(owner, LedgerKind.TOPUP, 1_000_000, "opening", b"", T0)
        await store.queue_depth()
        step = dataclasses.replace(hold("s1", 0, Hold("v", 400), new=True), gate=gate(store, 5))
        refused = await store.step(step)
        assert refused.status is StepStatus.DENIED and list(refused.gate) == [0, 1]
        assert refused.reason is DenyReason.RECORD_QUEUE_FULL
        state = await store.get_account("acct")
        assert state is not None and (state.held_micros, state.sessions) == (0, 0)
    finally:
        await store.close()
        delete_redis_keys(redis_url, prefix)
