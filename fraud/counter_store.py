"""The fraud counters in Redis: one Lua call per check or usage report.

Key layout (every key of an account carries its shard's hash tag, the balance store's scheme,
so one script touches one slot and Redis Cluster works)::

    {<prefix>:<shard>}:fraud:<what>:<account>      shard = crc32(account) % shards

    {ocsd:17}:fraud:w:alice            hash  the account's sliding windows:
                                             calls:60|s, calls:60|t, calls:60|<bucket>, ...
                                             spend:3600|..., spend:86400|..., short:6:300|...
    {ocsd:17}:fraud:cc:JM:alice        hash  the windows of one destination country:
                                             cc:JM:spend:3600|..., cc:JM:secs:3600|...
    {ocsd:17}:fraud:live:alice         zset  session -> expiry (ms)
    {ocsd:17}:fraud:countries:alice    hash  country -> last call (ms)

The account id comes last and what precedes it has a fixed shape, so two accounts' keys never
collide. Every time is the caller's clock (``now_ms``), so expiry inside the windows, live
calls and countries follows it; Redis key expiry only collects idle keys (a country's windows
go an hour after its last call).

The script is the function in ``lua/fraud_counters.lua`` plus one line that calls it; the
balance store can paste the same function into its reservation script (see that file).
"""

from __future__ import annotations

import zlib
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fraud.counters import (
    CounterPlan,
    CounterStoreUnavailable,
    CounterValues,
    OpKind,
    as_if_applied,
    read_only,
)
from fraud.engine import LIVE

FUNCTION_SOURCE = (
    resources.files("fraud").joinpath("lua/fraud_counters.lua").read_text(encoding="utf-8")
)
"""The Lua function ``fraud_counters(keys, kbase, argv, abase)``, to fold into other scripts."""

FUNCTION_NAME = "fraud_counters"

SCRIPT_SOURCE = FUNCTION_SOURCE + "\nreturn fraud_counters(KEYS, 0, ARGV, 0)\n"


def shard_of(account_id: str, shards: int) -> int:
    """The shard of an account: the same stable hash as the balance store."""
    return zlib.crc32(account_id.encode()) % shards


def hash_tag(account_id: str, key_prefix: str, shards: int) -> str:
    """The hash tag every key of the account carries."""
    return f"{{{key_prefix}:{shard_of(account_id, shards)}}}"


def plan_keys(plan: CounterPlan, key_prefix: str, shards: int) -> list[str]:
    """The keys of a plan: the account's windows, live calls, countries, then one hash per
    destination country whose windows the plan uses."""
    base = f"{hash_tag(plan.account_id, key_prefix, shards)}:fraud:"
    account = plan.account_id
    keys = [f"{base}w:{account}", f"{base}{LIVE}:{account}", f"{base}countries:{account}"]
    for group in _groups(plan):
        keys.append(f"{base}cc:{group}:{account}")
    return keys


def _groups(plan: CounterPlan) -> list[str]:
    groups: list[str] = []
    for op in plan.ops:
        if op.group and op.group not in groups:
            groups.append(op.group)
    return groups


_KEY_OF = {
    OpKind.WINDOW.value: "1|",
    OpKind.LIVE_ADD.value: "2|",
    OpKind.LIVE_TOUCH.value: "2|",
    OpKind.LIVE_REMOVE.value: "2|",
    OpKind.LIVE_COUNT.value: "2|",
    OpKind.SET_TEST.value: "3|",
    OpKind.SET_SIZE.value: "3|",
    OpKind.SET_ADD.value: "3|",
    OpKind.SET_NEW.value: "3|",
}
"""The key of each kind of operation (by its code), among the plan's first three."""


def plan_args(plan: CounterPlan) -> list[Any]:
    """The script arguments of a plan (after the caller's own, when folded): the time, the
    buckets per window, then one ``KIND|key|window_ms|add|trip_at|arg`` per operation."""
    groups = _groups(plan)
    args: list[Any] = [plan.now_ms, plan.buckets, len(plan.ops)]
    append = args.append
    key_of = _KEY_OF
    for op in plan.ops:
        code = op.code
        if op.group:
            key = f"{4 + groups.index(op.group)}|"
        else:
            key = key_of[code]
        append(f"{code}|{key}{op.spec}")
    return args


class RedisCounterStore:
    """Counters shared by every worker and node that uses the same Redis."""

    def __init__(self, client: aioredis.Redis, *, key_prefix: str = "ocsd", shards: int = 256):
        self.client = client
        self.key_prefix = key_prefix
        self.shards = shards
        self._script = client.register_script(SCRIPT_SOURCE)
        self.round_trips = 0
        """Commands sent so far (each one round trip), for benches and tests."""
        self.url: str | None = None
        """The server's URL, when the store opened its own pool (``from_url``)."""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key_prefix: str = "ocsd",
        shards: int = 256,
        timeout_ms: int = 500,
        pool_size: int = 16,
    ) -> RedisCounterStore:
        """A store with its own connection pool."""
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_ms / 1000,
            socket_connect_timeout=timeout_ms / 1000,
            max_connections=pool_size,
        )
        store = cls(client, key_prefix=key_prefix, shards=shards)
        store.url = url
        return store

    def keys(self, plan: CounterPlan) -> list[str]:
        """The keys of a plan."""
        return plan_keys(plan, self.key_prefix, self.shards)

    def fold(self, plan: CounterPlan) -> tuple[list[str], list[Any]]:
        """The keys and arguments of ``fraud_counters`` for the plan, to fold into another
        script on the same server (the balance store's gated HOLD): the keys carry the
        account's hash tag, the balance store's."""
        return self.keys(plan), plan_args(plan)

    async def _run(self, plan: CounterPlan) -> CounterValues:
        if not plan.ops:
            return CounterValues()
        self.round_trips += 1
        try:
            reply = await self._script(keys=self.keys(plan), args=plan_args(plan))
        except (TimeoutError, RedisError, OSError) as exc:
            raise CounterStoreUnavailable(f"fraud counters: {exc}") from exc
        return CounterValues.from_reply(plan, reply)

    async def apply(self, plan: CounterPlan) -> CounterValues:
        """Run the plan in one EVALSHA."""
        return await self._run(plan)

    async def peek(self, plan: CounterPlan) -> CounterValues:
        """Read what the plan would read, changing nothing."""
        return as_if_applied(plan, await self._run(read_only(plan)))

    async def live_sessions(self, account_id: str, now_ms: int) -> list[str]:
        """The sessions an account has up, from its live-call set."""
        tag = hash_tag(account_id, self.key_prefix, self.shards)
        key = f"{tag}:fraud:{LIVE}:{account_id}"
        self.round_trips += 1
        try:
            members = await self.client.zrangebyscore(key, f"({now_ms}", "+inf")
        except (TimeoutError, RedisError, OSError) as exc:
            raise CounterStoreUnavailable(f"fraud counters: {exc}") from exc
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def maintain(self, now: float) -> None:
        """Nothing to do: Redis expires the keys."""

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


__all__ = [
    "FUNCTION_NAME",
    "FUNCTION_SOURCE",
    "SCRIPT_SOURCE",
    "RedisCounterStore",
    "hash_tag",
    "plan_args",
    "plan_keys",
    "shard_of",
]
