"""Routing state stores: Redis for several workers and nodes, in-process for one.

Redis layout: every key carries the hash tag ``{<prefix>:lcr}``, so each step is one Lua
script on one slot (Redis Cluster ready; the counters are global per carrier by nature):

===========================  =====  ===================================================
key                          type   content
===========================  =====  ===================================================
``{p:lcr}:calls``            hash   ``c|CARRIER`` / ``t|TRUNK`` -> concurrent calls
``{p:lcr}:slots``            hash   call id -> ``CARRIER|TRUNK`` holding its slot
``{p:lcr}:slot_exp``         zset   call id scored by the slot's expiry (ms)
``{p:lcr}:cps:SECOND``       hash   ``c|CARRIER`` / ``t|TRUNK`` -> calls started (2 s TTL)
``{p:lcr}:probe``            hash   ``CARRIER|GROUP`` -> ``UNTIL_MS|CALL_ID`` probe claim
``{p:lcr}:q:BUCKET``         hash   ``CARRIER|GROUP|F`` -> counter F of the bucket
``{p:lcr}:demoted``          hash   ``CARRIER|GROUP`` -> end of cool-down (ms)
``{p:lcr}:lifted``           hash   ``CARRIER|GROUP`` -> when the demotion was lifted (ms)
===========================  =====  ===================================================

The embedded store keeps the same state in process memory and is not persisted: it serves
the single-process embedded default, quality figures are a 15-minute window that refills
itself after a restart, and concurrent-call slots must not outlive the calls of a stopped
process. Writing them to SQLite on every call would cost more than routing the call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lcr.decision import Route
from lcr.quality import CallOutcome, Counts, Pair, WindowData, bucket_of, window_buckets
from lcr.settings import LcrSettings
from lcr.state import Admission, AdmitCode, HotStoreUnavailable

_FIELDS = "anudpq"
"""Bucket counter letters, in ``Counts.FIELDS`` order."""

_RELEASE = """
local function release(calls, slots, exp, id)
  local slot = redis.call('HGET', slots, id)
  if slot then
    local sep = string.find(slot, '|', 1, true)
    local carrier = string.sub(slot, 1, sep - 1)
    local trunk = string.sub(slot, sep + 1)
    if redis.call('HINCRBY', calls, 'c|' .. carrier, -1) <= 0 then
      redis.call('HDEL', calls, 'c|' .. carrier)
    end
    if trunk ~= '' and redis.call('HINCRBY', calls, 't|' .. trunk, -1) <= 0 then
      redis.call('HDEL', calls, 't|' .. trunk)
    end
    redis.call('HDEL', slots, id)
  end
  redis.call('ZREM', exp, id)
end
local function take(calls, slots, exp, id, carrier, trunk, expiry)
  redis.call('HINCRBY', calls, 'c|' .. carrier, 1)
  if trunk ~= '' then redis.call('HINCRBY', calls, 't|' .. trunk, 1) end
  redis.call('HSET', slots, id, carrier .. '|' .. trunk)
  redis.call('ZADD', exp, expiry, id)
end
"""

ADMIT_LUA = (
    _RELEASE
    + """
-- KEYS: calls, slots, slot_exp, cps (this second), probe
-- ARGV: call id, now ms, slot ttl ms, probe ttl ms, route count, then 7 per route:
--       carrier, trunk, carrier max calls, carrier max cps, trunk max calls, trunk max cps,
--       probe pair ('' when not a probe)
local calls, slots, exp, cps, probes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now = ARGV[1], tonumber(ARGV[2])
local ttl, probe_ttl, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
for _, stale in ipairs(redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 100)) do
  release(calls, slots, exp, stale)
end
local held = redis.call('HGET', slots, id)
local selected = -1
local codes = {}
for i = 0, n - 1 do
  local b = 6 + i * 7
  local carrier, trunk = ARGV[b], ARGV[b + 1]
  local cmax, cps_max = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local tmax, tps_max, pair = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5]), ARGV[b + 6]
  local mine = held == (carrier .. '|' .. trunk)
  local code = 0
  if not mine then
    if cmax > 0 and tonumber(redis.call('HGET', calls, 'c|' .. carrier) or '0') >= cmax then
      code = 2
    elseif trunk ~= '' and tmax > 0
        and tonumber(redis.call('HGET', calls, 't|' .. trunk) or '0') >= tmax then
      code = 4
    elseif cps_max > 0 and tonumber(redis.call('HGET', cps, 'c|' .. carrier) or '0') >= cps_max then
      code = 3
    elseif trunk ~= '' and tps_max > 0
        and tonumber(redis.call('HGET', cps, 't|' .. trunk) or '0') >= tps_max then
      code = 5
    end
  end
  if code == 0 and pair ~= '' then
    local claim = redis.call('HGET', probes, pair)
    if claim then
      local sep = string.find(claim, '|', 1, true)
      if tonumber(string.sub(claim, 1, sep - 1)) > now and string.sub(claim, sep + 1) ~= id then
        code = 6
      end
    end
    if code == 0 then redis.call('HSET', probes, pair, (now + probe_ttl) .. '|' .. id) end
  end
  if code == 0 and selected < 0 then
    selected = i
    if not held then
      take(calls, slots, exp, id, carrier, trunk, now + ttl)
      redis.call('HINCRBY', cps, 'c|' .. carrier, 1)
      if trunk ~= '' then redis.call('HINCRBY', cps, 't|' .. trunk, 1) end
      redis.call('PEXPIRE', cps, 2000)
      held = carrier .. '|' .. trunk
    end
  end
  codes[i + 1] = code
end
table.insert(codes, selected)
return codes
"""
)

CARRIED_LUA = (
    _RELEASE
    + """
-- KEYS: calls, slots, slot_exp; ARGV: call id, carrier, trunk, expiry ms
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held == ARGV[2] .. '|' .. ARGV[3] then return 0 end
release(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
take(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
return 1
"""
)

FINISH_LUA = (
    _RELEASE
    + """
-- KEYS: calls, slots, slot_exp, bucket, demoted, lifted, probe
-- ARGV: call id, pair ('' when no carrier), bucket ttl ms, probe ('0'/'1'), probe passed
--       ('0'/'1'), now ms, cool-down ms, then 6 counters (attempts, answered, user failures,
--       seconds, pdd ms, pdd samples)
if ARGV[1] ~= '' then release(KEYS[1], KEYS[2], KEYS[3], ARGV[1]) end
local pair = ARGV[2]
if pair == '' then return 0 end
local letters = {'a', 'n', 'u', 'd', 'p', 'q'}
for i = 1, 6 do
  local value = tonumber(ARGV[7 + i])
  if value ~= 0 then redis.call('HINCRBY', KEYS[4], pair .. '|' .. letters[i], value) end
end
redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[3]))
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[7], pair)
  if ARGV[5] == '1' then
    redis.call('HDEL', KEYS[5], pair)
    redis.call('HSET', KEYS[6], pair, ARGV[6])
  else
    redis.call('HSET', KEYS[5], pair, tonumber(ARGV[6]) + tonumber(ARGV[7]))
  end
end
return 1
"""
)


def _pair_text(pair: Pair) -> str:
    return f"{pair[0]}|{pair[1]}"


def _route_args(route: Route) -> list[Any]:
    return [
        route.carrier_id,
        route.trunk_id,
        route.carrier_max_calls,
        route.carrier_max_cps,
        route.trunk_max_calls,
        route.trunk_max_cps,
        f"{route.carrier_id}|{route.group}" if route.probe else "",
    ]


class RedisRoutingState:
    """Routing state in Redis, shared by every worker and node."""

    def __init__(
        self,
        client: aioredis.Redis,
        settings: LcrSettings,
        *,
        key_prefix: str = "ocsd",
    ) -> None:
        self.client = client
        self.settings = settings
        self.tag = f"{{{key_prefix}:lcr}}"
        self._admit = client.register_script(ADMIT_LUA)
        self._carried = client.register_script(CARRIED_LUA)
        self._finish = client.register_script(FINISH_LUA)

    @classmethod
    def from_url(
        cls, url: str, settings: LcrSettings, *, key_prefix: str = "ocsd", timeout_s: float = 0.5
    ) -> RedisRoutingState:
        """Connect to ``redis://...``."""
        client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, decode_responses=True)
        return cls(client, settings, key_prefix=key_prefix)

    def _key(self, name: str) -> str:
        return f"{self.tag}:{name}"

    def keys(self) -> list[str]:
        """The fixed keys (bucket and per-second keys come and go with their TTL)."""
        return [self._key(n) for n in ("calls", "slots", "slot_exp", "probe", "demoted", "lifted")]

    def admit_call(
        self, call_id: str, routes: Sequence[Route], now: float
    ) -> tuple[list[str], list[Any]]:
        """The keys and arguments of one admit (to fold it into another pipeline)."""
        quality = self.settings.quality
        args: list[Any] = [
            call_id,
            int(now * 1000),
            self.settings.capacity.slot_ttl_s * 1000,
            quality.cooldown_s * 1000,
            len(routes),
        ]
        for route in routes:
            args.extend(_route_args(route))
        keys = [
            self._key("calls"),
            self._key("slots"),
            self._key("slot_exp"),
            self._key(f"cps:{int(now)}"),
            self._key("probe"),
        ]
        return keys, args

    @staticmethod
    def admission(result: Sequence[Any]) -> Admission:
        """Read the script's answer."""
        values = [int(v) for v in result]
        selected = values[-1]
        return Admission.of(values[:-1], None if selected < 0 else selected)

    async def admit(self, call_id: str, routes: Sequence[Route], now: float) -> Admission:
        """Remove routes over capacity, claim probes, take the slot (one EVALSHA)."""
        if not routes:
            return Admission((), None)
        keys, args = self.admit_call(call_id, routes, now)
        try:
            result = await self._admit(keys=keys, args=args)
        except RedisError as exc:
            raise HotStoreUnavailable(f"routing state: {exc}") from exc
        return self.admission(result)

    async def carried(self, call_id: str, carrier_id: str, trunk_id: str, now: float) -> None:
        """Move the call's slot to the route used."""
        expiry = int(now * 1000) + self.settings.capacity.slot_ttl_s * 1000
        try:
            await self._carried(
                keys=[self._key("calls"), self._key("slots"), self._key("slot_exp")],
                args=[call_id, carrier_id, trunk_id, expiry],
            )
        except RedisError as exc:
            raise HotStoreUnavailable(f"routing state: {exc}") from exc

    async def finish(self, outcome: CallOutcome) -> None:
        """Free the slot, count the outcome, settle a probe (one EVALSHA)."""
        quality = self.settings.quality
        bucket = bucket_of(outcome.ended_at, quality)
        pair = f"{outcome.carrier_id}|{outcome.group}" if outcome.carrier_id else ""
        args: list[Any] = [
            outcome.call_id,
            pair,
            (quality.window_s + quality.bucket_s) * 1000,
            int(outcome.probe),
            int(outcome.probe_passed),
            int(outcome.ended_at * 1000),
            quality.cooldown_s * 1000,
            *outcome.counts.as_tuple(),
        ]
        keys = [
            self._key("calls"),
            self._key("slots"),
            self._key("slot_exp"),
            self._key(f"q:{bucket}"),
            self._key("demoted"),
            self._key("lifted"),
            self._key("probe"),
        ]
        try:
            await self._finish(keys=keys, args=args)
        except RedisError as exc:
            raise HotStoreUnavailable(f"routing state: {exc}") from exc

    async def window(self, now: float) -> WindowData:
        """Every bucket of the window and the demotion state, in one pipelined round trip."""
        numbers = list(window_buckets(now, self.settings.quality))
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for number in numbers:
                    pipe.hgetall(self._key(f"q:{number}"))
                pipe.hgetall(self._key("demoted"))
                pipe.hgetall(self._key("lifted"))
                results = await pipe.execute()
        except RedisError as exc:
            raise HotStoreUnavailable(f"routing state: {exc}") from exc
        buckets: dict[int, dict[Pair, Counts]] = {}
        for number, raw in zip(numbers, results, strict=False):
            if raw:
                buckets[number] = _parse_bucket(raw)
        return WindowData(
            buckets,
            {_pair(k): int(v) / 1000 for k, v in results[-2].items()},
            {_pair(k): int(v) / 1000 for k, v in results[-1].items()},
        )

    async def demote(self, pairs: Sequence[tuple[Pair, float]]) -> None:
        """HSETNX each demotion: the first worker to decide wins."""
        if not pairs:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for pair, until in pairs:
                    pipe.hsetnx(self._key("demoted"), _pair_text(pair), int(until * 1000))
                await pipe.execute()
        except RedisError as exc:
            raise HotStoreUnavailable(f"routing state: {exc}") from exc

    async def concurrent(self) -> dict[str, int]:
        """Concurrent calls per carrier (``c|``) and trunk (``t|``)."""
        raw = await self.client.hgetall(self._key("calls"))
        return {str(k): int(v) for k, v in raw.items()}

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


def _pair(text: str) -> Pair:
    carrier, _, group = text.partition("|")
    return carrier, group


def _parse_bucket(raw: dict[str, str]) -> dict[Pair, Counts]:
    out: dict[Pair, Counts] = {}
    for name, value in raw.items():
        head, _, letter = name.rpartition("|")
        pair = _pair(head)
        counts = out.get(pair)
        if counts is None:
            counts = out[pair] = Counts()
        index = _FIELDS.find(letter)
        if index >= 0:
            field_name = Counts.FIELDS[index]
            setattr(counts, field_name, getattr(counts, field_name) + int(value))
    return out


class MemoryRoutingState:
    """Routing state in process memory (the embedded default: one process, one node)."""

    def __init__(self, settings: LcrSettings) -> None:
        self.settings = settings
        self.calls: dict[str, int] = {}
        self.slots: dict[str, tuple[str, str, float]] = {}
        self.cps: dict[tuple[int, str], int] = {}
        self.probes: dict[Pair, tuple[float, str]] = {}
        self.buckets: dict[int, dict[Pair, Counts]] = {}
        self.demoted: dict[Pair, float] = {}
        self.lifted: dict[Pair, float] = {}

    def _release(self, call_id: str) -> None:
        slot = self.slots.pop(call_id, None)
        if slot is None:
            return
        carrier, trunk, _ = slot
        for key in (f"c|{carrier}", f"t|{trunk}" if trunk else ""):
            if key:
                left = self.calls.get(key, 0) - 1
                if left > 0:
                    self.calls[key] = left
                else:
                    self.calls.pop(key, None)

    def _take(self, call_id: str, carrier: str, trunk: str, expiry: float) -> None:
        self.calls[f"c|{carrier}"] = self.calls.get(f"c|{carrier}", 0) + 1
        if trunk:
            self.calls[f"t|{trunk}"] = self.calls.get(f"t|{trunk}", 0) + 1
        self.slots[call_id] = (carrier, trunk, expiry)

    async def admit(self, call_id: str, routes: Sequence[Route], now: float) -> Admission:
        """The same rules as the Redis script."""
        for stale in [k for k, v in self.slots.items() if v[2] <= now][:100]:
            self._release(stale)
        second = int(now)
        for old in [k for k in self.cps if k[0] < second - 1]:
            del self.cps[old]
        held = self.slots.get(call_id)
        selected: int | None = None
        codes: list[int] = []
        for index, route in enumerate(routes):
            carrier, trunk = route.carrier_id, route.trunk_id
            mine = held is not None and held[:2] == (carrier, trunk)
            code = AdmitCode.OK
            if not mine:
                if (
                    route.carrier_max_calls
                    and self.calls.get(f"c|{carrier}", 0) >= route.carrier_max_calls
                ):
                    code = AdmitCode.CARRIER_CALLS
                elif (
                    trunk
                    and route.trunk_max_calls
                    and self.calls.get(f"t|{trunk}", 0) >= route.trunk_max_calls
                ):
                    code = AdmitCode.TRUNK_CALLS
                elif (
                    route.carrier_max_cps
                    and self.cps.get((second, f"c|{carrier}"), 0) >= route.carrier_max_cps
                ):
                    code = AdmitCode.CARRIER_CPS
                elif (
                    trunk
                    and route.trunk_max_cps
                    and self.cps.get((second, f"t|{trunk}"), 0) >= route.trunk_max_cps
                ):
                    code = AdmitCode.TRUNK_CPS
            if code == AdmitCode.OK and route.probe:
                pair = (carrier, route.group)
                claim = self.probes.get(pair)
                if claim is not None and claim[0] > now and claim[1] != call_id:
                    code = AdmitCode.PROBE_TAKEN
                else:
                    self.probes[pair] = (now + self.settings.quality.cooldown_s, call_id)
            if code == AdmitCode.OK and selected is None:
                selected = index
                if held is None:
                    self._take(call_id, carrier, trunk, now + self.settings.capacity.slot_ttl_s)
                    for key in (f"c|{carrier}", f"t|{trunk}" if trunk else ""):
                        if key:
                            self.cps[(second, key)] = self.cps.get((second, key), 0) + 1
                    held = self.slots[call_id]
            codes.append(code)
        return Admission.of(codes, selected)

    async def carried(self, call_id: str, carrier_id: str, trunk_id: str, now: float) -> None:
        """Move the call's slot to the route used."""
        held = self.slots.get(call_id)
        if held is not None and held[:2] == (carrier_id, trunk_id):
            return
        self._release(call_id)
        self._take(call_id, carrier_id, trunk_id, now + self.settings.capacity.slot_ttl_s)

    async def finish(self, outcome: CallOutcome) -> None:
        """Free the slot, count the outcome, settle a probe."""
        if outcome.call_id:
            self._release(outcome.call_id)
        if not outcome.carrier_id:
            return
        quality = self.settings.quality
        pair = (outcome.carrier_id, outcome.group)
        bucket = self.buckets.setdefault(bucket_of(outcome.ended_at, quality), {})
        counts = bucket.get(pair)
        if counts is None:
            counts = bucket[pair] = Counts()
        counts.add(outcome.counts)
        oldest = bucket_of(outcome.ended_at, quality) - quality.window_s // quality.bucket_s
        for number in [n for n in self.buckets if n < oldest]:
            del self.buckets[number]
        if outcome.probe:
            self.probes.pop(pair, None)
            if outcome.probe_passed:
                self.demoted.pop(pair, None)
                self.lifted[pair] = outcome.ended_at
            else:
                self.demoted[pair] = outcome.ended_at + quality.cooldown_s

    async def window(self, now: float) -> WindowData:
        """The window's buckets and the demotion state."""
        numbers = window_buckets(now, self.settings.quality)
        buckets = {
            n: {pair: Counts(*c.as_tuple()) for pair, c in self.buckets[n].items()}
            for n in numbers
            if n in self.buckets
        }
        return WindowData(buckets, dict(self.demoted), dict(self.lifted))

    async def demote(self, pairs: Sequence[tuple[Pair, float]]) -> None:
        """Record demotions not already recorded."""
        for pair, until in pairs:
            self.demoted.setdefault(pair, until)

    async def concurrent(self) -> dict[str, int]:
        """Concurrent calls per carrier (``c|``) and trunk (``t|``)."""
        return dict(self.calls)

    async def close(self) -> None:
        """Nothing to release."""


def monotonic_now() -> float:
    """The wall clock (UTC epoch seconds) used for windows shared between nodes."""
    return time.time()
