"""The fraud function folded into another script (the balance reservation), as documented."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from fraud_helpers import REFUSE, T0, engine, quiet_rules

from fraud.counter_store import FUNCTION_SOURCE, hash_tag, plan_args, plan_keys
from fraud.counters import CounterValues
from fraud.model import CallAttempt
from fraud.rule import CallRateRule, ConcurrentRule

pytestmark = pytest.mark.integration

RESERVATION = (
    FUNCTION_SOURCE
    + """
-- KEYS[1]: the account's balance hash; ARGV[1]: the amount to hold. The fraud keys and
-- arguments follow the reservation's own.
local fraud = fraud_counters(KEYS, 1, ARGV, 1)
if fraud[1] == 0 then
  redis.call('HINCRBY', KEYS[1], 'held', ARGV[1])
end
return fraud
"""
)


async def test_the_reservation_skips_its_hold_when_the_gate_trips(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    client = aioredis.Redis.from_url(url)
    script = client.register_script(RESERVATION)
    checker = engine(
        quiet_rules(
            calls_per_minute=CallRateRule(True, 2, 60, REFUSE),
            concurrent_calls=ConcurrentRule(True, 10, REFUSE),
        )
    )
    balance = f"{hash_tag('alice', prefix, 16)}:balance:alice"
    outcomes = []
    try:
        for i in range(4):
            attempt = CallAttempt("alice", "442071234567", T0 + i, f"s{i}")
            plan = checker.attempt_plan(attempt)
            assert plan is not None
            keys = [balance, *plan_keys(plan, prefix, 16)]
            assert len({k.split("}")[0] for k in keys}) == 1, "one hash slot"
            reply = await script(keys=keys, args=[1000, *plan_args(plan)])
            counters = CounterValues.from_reply(plan, reply)
            verdict = checker.check(attempt, counters)
            assert (counters.gate_trips > 0) is verdict.refused
            outcomes.append((verdict.refused, counters.live_registered))
        assert outcomes == [(False, True), (False, True), (True, False), (True, False)]
        assert await client.hget(balance, "held") == b"2000", "held for the two admitted calls"
    finally:
        await client.aclose()
