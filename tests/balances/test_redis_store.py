"""What only the Redis backend has: its key layout, one round trip per step, pipelining,
timeouts, and a server that goes away and comes back.

Tests that stop or flush a server start their own throwaway ``redis-server``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.resources
import signal
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import hiredis
import pytest
import redis
import redis.asyncio.connection

from balances.model import (
    AccountLimits,
    DenyReason,
    Hold,
    LedgerKind,
    StepResult,
    StepStatus,
)
from balances.redis_store import RedisBalanceStore
from balances.settings import RedisStoreSettings
from balances.store import BackendUnavailable
from tests.balances.backends import ThrowawayRedis, delete_redis_keys
from tests.balances.test_contract import T0, close, event, hold

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[ThrowawayRedis]:
    found = ThrowawayRedis()
    try:
        found.start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
async def shared(redis_url: str) -> AsyncIterator[RedisBalanceStore]:
    """A store on the shared Redis, with its own prefix."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    store = RedisBalanceStore(RedisStoreSettings(url=redis_url, key_prefix=prefix, shards=8))
    try:
        yield store
    finally:
        await store.close()
        delete_redis_keys(redis_url, prefix)


async def _funded(store: RedisBalanceStore, account_id: str = "acct") -> None:
    await store.put_account(AccountLimits(account_id))
    await store.ledger(account_id, LedgerKind.TOPUP, 10**9, "opening", b"", T0)


def test_scripts_are_package_data() -> None:
    lua = importlib.resources.files("balances").joinpath("lua")
    names = {entry.name for entry in lua.iterdir()}
    assert {"common.lua", "hold.lua", "close.lua", "event.lua", "ledger.lua"} <= names


async def test_keys_of_an_account_share_one_hash_tag(shared: RedisBalanceStore) -> None:
    account_id = "carrier:7%b"
    await _funded(shared, account_id)
    await shared.step(hold("s1", 0, Hold("v", 100), account_id=account_id, new=True))
    await shared.step(hold("s2", 0, Hold("v", 100), account_id=account_id, new=True))
    await shared.step(close("s1", 1, 40, account_id=account_id))
    await shared.step(event("e1", 5, account_id=account_id))
    prefix = shared.settings.key_prefix
    tag = f"{{{prefix}:{zlib.crc32(account_id.encode()) % 8}}}"
    client = redis.Redis.from_url(shared.settings.url)
    try:
        keys = {k.decode() for k in client.scan_iter(match=f"*{prefix}*", count=1000)}
        assert keys == {
            f"{tag}:a:carrier%3A7%25b",
            f"{tag}:l:carrier%3A7%25b",
            f"{tag}:s:carrier%3A7%25b:s1",
            f"{tag}:s:carrier%3A7%25b:s2",
            f"{tag}:s:carrier%3A7%25b:e1",
            f"{tag}:deadlines",
            f"{tag}:records",
            f"{prefix}:sidx:s2",
        }
        # tombstones and the index expire by themselves; open sessions never do
        assert 0 < client.pttl(f"{tag}:s:carrier%3A7%25b:s1") <= 600_000 + 60_000
        assert client.pttl(f"{tag}:s:carrier%3A7%25b:s2") == -1
        assert 0 < client.pttl(f"{prefix}:sidx:s2") <= 86_400_000
    finally:
        client.close()


async def test_accounts_spread_over_the_shards(shared: RedisBalanceStore) -> None:
    for n in range(64):
        await shared.put_account(AccountLimits(f"a{n}"))
    client = redis.Redis.from_url(shared.settings.url)
    try:
        prefix = shared.settings.key_prefix
        tags = {k.split(b"}")[0] for k in client.scan_iter(match=f"{{{prefix}:*:a:*")}
        assert len(tags) == 8
    finally:
        client.close()


class _Writes:
    """Counts writes to Redis sockets and the commands in them (each write: one round trip)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.commands: list[bytes] = []
        cls = redis.asyncio.connection.AbstractConnection
        send = cls.send_packed_command

        async def counting(conn: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            reader = hiredis.Reader()
            reader.feed(command if isinstance(command, bytes) else b"".join(command))
            while (request := reader.gets()) is not False:
                self.commands.append(request[0].upper())
            await send(conn, command, check_health)

        monkeypatch.setattr(cls, "send_packed_command", counting)


def _commandstats(url: str) -> dict[str, int]:
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def test_one_round_trip_per_step(
    server: ThrowawayRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisBalanceStore(RedisStoreSettings(url=server.url, key_prefix="rt", shards=8))
    try:
        await _funded(store)
        await store.step(event("warm-up", 1))  # the scripts are loaded once (NOSCRIPT)
        writes = _Writes(monkeypatch)
        redis.Redis.from_url(server.url).config_resetstat()
        trips = store.round_trips
        steps = 0
        for n in range(10):
            await store.step(hold(f"s{n}", 0, Hold("v", 100), new=True))
            await store.step(hold(f"s{n}", 1, Hold("v", 200), expected=0))
            await store.step(close(f"s{n}", 2, 50, expected=1))
            steps += 3
        assert store.round_trips - trips == steps
        assert writes.count == steps
        # each write: the step's script, plus the index write of an opening hold and the
        # index deletion queued by the close before it
        assert sorted(set(writes.commands)) == [b"DEL", b"EVALSHA", b"SET"]
        assert writes.commands.count(b"EVALSHA") == steps
        assert writes.commands.count(b"SET") == 10
        assert writes.commands.count(b"DEL") == 9  # the last one waits for the next write
        # and the server ran one script per step
        assert _commandstats(server.url)["evalsha"] == steps
    finally:
        await store.close()


async def test_concurrent_steps_share_round_trips(server: ThrowawayRedis) -> None:
    store = RedisBalanceStore(RedisStoreSettings(url=server.url, key_prefix="rt", shards=8))
    try:
        await _funded(store)
        await store.step(event("warm-up", 1))
        trips = store.round_trips
        results = await asyncio.gather(
            *(store.step(hold(f"s{n}", 0, Hold("v", 100), new=True)) for n in range(200))
        )
        assert {r.status for r in results} == {StepStatus.OK}
        assert store.round_trips - trips == 1
        state = await store.get_account("acct")
        assert state is not None and (state.sessions, state.held_micros) == (200, 20_000)
    finally:
        await store.close()


async def test_a_malformed_step_fails_alone(shared: RedisBalanceStore) -> None:
    await _funded(shared)
    bad = dataclasses.replace(hold("bad", 0, Hold("v", 100), new=True), state=None)
    results = await asyncio.gather(
        *(shared.step(hold(f"s{n}", 0, Hold("v", 100), new=True)) for n in range(5)),
        shared.step(bad),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert [type(r) for r in results[-1:]] == [TypeError]
    assert {r.status for r in results[:-1] if isinstance(r, StepResult)} == {StepStatus.OK}


async def test_steps_beyond_the_queue_bound_are_refused(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    settings = RedisStoreSettings(url=redis_url, key_prefix=prefix, shards=8, max_waiting=5)
    store = RedisBalanceStore(settings)
    try:
        await _funded(store)
        results = await asyncio.gather(
            *(store.step(hold(f"s{n}", 0, Hold("v", 100), new=True)) for n in range(50)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, BackendUnavailable) for r in results) == 45
        state = await store.get_account("acct")
        assert state is not None and state.sessions == 5
    finally:
        await store.close()
        delete_redis_keys(redis_url, prefix)


async def test_a_frozen_server_is_unavailable_then_the_retry_is_exact(
    server: ThrowawayRedis,
) -> None:
    settings = RedisStoreSettings(url=server.url, key_prefix="to", shards=8, timeout_ms=200)
    store = RedisBalanceStore(settings)
    try:
        await _funded(store)
        await store.step(hold("s1", 0, Hold("v", 100), new=True))
        server.signal(signal.SIGSTOP)
        try:
            with pytest.raises(BackendUnavailable):
                await store.step(close("s1", 1, 70))
            with pytest.raises(BackendUnavailable):
                await store.get_account("acct")
        finally:
            server.signal(signal.SIGCONT)
        # the close may or may not have run: its retry is answered exactly once either way
        retry = await store.step(close("s1", 1, 70))
        assert retry.status in (StepStatus.OK, StepStatus.DUPLICATE)
        assert retry.debited_micros == 70
        state = await store.get_account("acct")
        assert state is not None and state.balance_micros == 10**9 - 70
    finally:
        await store.close()


async def test_a_restarted_server_gets_the_scripts_again(server: ThrowawayRedis) -> None:
    settings = RedisStoreSettings(url=server.url, key_prefix="rs", shards=8, timeout_ms=300)
    store = RedisBalanceStore(settings)
    try:
        await _funded(store)
        server.stop()
        with pytest.raises(BackendUnavailable):
            await store.step(event("e1", 10))
        server.start()
        await _funded(store)  # a server without persistence comes back empty
        assert (await store.step(event("e1", 10))).status is StepStatus.OK
        redis.Redis.from_url(server.url).script_flush()
        assert (await store.step(event("e2", 10))).status is StepStatus.OK
        state = await store.get_account("acct")
        assert state is not None and state.balance_micros == 10**9 - 20
    finally:
        await store.close()


async def test_no_server_is_unavailable() -> None:
    settings = RedisStoreSettings(url="redis://127.0.0.1:1/0", timeout_ms=200)
    store = RedisBalanceStore(settings)
    try:
        with pytest.raises(BackendUnavailable):
            await store.get_account("acct")
    finally:
        await store.close()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="key_prefix"):
        RedisStoreSettings(key_prefix="a{b}")
    with pytest.raises(ValueError, match="shards"):
        RedisStoreSettings(shards=0)
    with pytest.raises(ValueError, match="url"):
        RedisStoreSettings(url="http://localhost")
    with pytest.raises(ValueError, match="max_record_queue"):
        RedisStoreSettings(max_record_queue=-1)


def _in_another_shard(account_id: str, shards: int) -> str:
    mine = zlib.crc32(account_id.encode()) % shards
    return next(f"b{n}" for n in range(100) if zlib.crc32(f"b{n}".encode()) % shards != mine)


async def test_one_busy_account_may_fill_the_whole_queue(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    # Eight shards, room for four records: one account's shard may hold all four.
    settings = RedisStoreSettings(url=redis_url, key_prefix=prefix, shards=8, max_record_queue=4)
    store = RedisBalanceStore(settings)
    try:
        await _funded(store, "acct")  # one record
        for n in range(2):
            await store.ledger("acct", LedgerKind.TOPUP, 1, f"more-{n}", b"", T0)
        opened = await store.step(hold("s1", 0, Hold("v", 0), new=True))
        assert opened.status is StepStatus.OK, "three records of four: room left"
        await store.ledger("acct", LedgerKind.TOPUP, 1, "fourth", b"", T0)
        refused = await store.step(hold("s2", 0, Hold("v", 0), new=True))
        assert (refused.status, refused.reason) == (
            StepStatus.DENIED,
            DenyReason.RECORD_QUEUE_FULL,
        )
        # The call that was up still ends, and its record is queued past the bound.
        closed = await store.step(close("s1", 1, 0, record=b"cdr"))
        assert closed.status is StepStatus.OK
        assert await store.queue_depth() == 5
    finally:
        await store.close()
        delete_redis_keys(redis_url, prefix)


async def test_the_bound_is_the_whole_queues(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    settings = RedisStoreSettings(
        url=redis_url, key_prefix=prefix, shards=8, max_record_queue=2, queue_look_s=0.05
    )
    store = RedisBalanceStore(settings)
    busy = _in_another_shard("acct", 8)
    try:
        await store.put_account(AccountLimits("acct"))
        await _funded(store, busy)
        await store.ledger(busy, LedgerKind.TOPUP, 1, "second", b"", T0)
        # acct's own stream is empty, but the queue as a whole is full: once the store has
        # looked (in the background of the steps), acct's new calls are refused too.
        await store.step(hold("s0", 0, Hold("v", 0), new=True))
        await asyncio.sleep(0.5)
        refused = await store.step(hold("s1", 0, Hold("v", 0), new=True))
        assert (refused.status, refused.reason) == (
            StepStatus.DENIED,
            DenyReason.RECORD_QUEUE_FULL,
        )
        # The writer catches up: room again at the next look.
        await store.ack_records(await store.read_records("c", 10, 0))
        await asyncio.sleep(0.5)
        await store.step(hold("s2", 0, Hold("v", 0), new=True))  # starts a look
        await asyncio.sleep(0.5)
        assert (await store.step(hold("s3", 0, Hold("v", 0), new=True))).status is StepStatus.OK
    finally:
        await store.close()
        delete_redis_keys(redis_url, prefix)


async def test_closed_markers_share_the_slot_expire_and_stay_compact(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    store = RedisBalanceStore(RedisStoreSettings(url=redis_url, key_prefix=prefix, shards=1))
    horizon = 2 * 86_400_000
    client = redis.Redis.from_url(redis_url)
    try:
        await _funded(store)
        calls = 1_000
        for n in range(calls):
            await store.step(hold(f"call-{n}", 0, Hold("v", 100), new=True))
            step = dataclasses.replace(close(f"call-{n}", 1, 40), closed_ttl_ms=horizon)
            assert (await store.step(step)).status is StepStatus.OK
        hour = (T0 + 1_000) // 3_600_000
        markers = sorted(k.decode() for k in client.scan_iter(match=f"{{{prefix}:0}}:c:*"))
        assert markers == [f"{{{prefix}:0}}:c:{hour}:{n}" for n in sorted(range(16), key=str)]
        for key in markers:
            # the end of the hour (less than an hour away), the horizon, the grace
            assert horizon < client.pttl(key) <= 3_600_000 + horizon + 60_000
            assert client.object("encoding", key) == b"listpack"
        used = sum(client.memory_usage(key, samples=0) or 0 for key in markers)
        assert used / calls < 40, f"{used / calls:.1f} bytes per closed marker"
    finally:
        client.close()
        await store.close()
        delete_redis_keys(redis_url, prefix)
