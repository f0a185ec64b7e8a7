"""A separate process driving a balance store, for the concurrency and crash tests.

Run as ``python -m tests.balances.store_worker '<json>'`` from the repository root; the JSON
names the backend, its settings and what to do. Results are one JSON line on stdout.

Modes:

- ``calls``: ``sessions`` concurrent calls on one prepaid account, each an opening hold, a
  few updates and a close at a random cost (sometimes more than held); after every step the
  balance the store reports must not be below zero.
- ``hold``: open ``sessions`` sessions, print what they hold, then wait to be killed.
- ``traffic``: calls one after another in ``sessions`` concurrent lanes until killed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from balances.model import Hold, Step, StepKind, StepResult, StepStatus
from balances.settings import EmbeddedStoreSettings, RedisStoreSettings
from balances.store import BalanceStore
from tests.balances.backends import open_store

T0 = 1_714_550_400_000
DEADLINE_MS = T0 + 10_000


@dataclass
class Tally:
    """What one worker did."""

    steps: int = 0
    opened: int = 0
    closes: int = 0
    debited: int = 0
    overruns: int = 0
    violations: list[str] = field(default_factory=list)


def _step(kind: StepKind, account_id: str, session_id: str, number: int, **kw: Any) -> Step:
    return Step(
        kind=kind,
        account_id=account_id,
        session_id=session_id,
        request_number=number,
        now_ms=T0 + number,
        day_key="2024-05-01",
        month_key="2024-05",
        deadline_ms=DEADLINE_MS,
        **kw,
    )


class Worker:
    """Drives calls on one account and checks every answer."""

    def __init__(self, store: BalanceStore, account_id: str, name: str, seed: int) -> None:
        self.store = store
        self.account_id = account_id
        self.name = name
        self.random = random.Random(seed)
        self.tally = Tally()

    def check(self, result: StepResult, what: str) -> None:
        self.tally.steps += 1
        if result.status is StepStatus.OK and result.balance_micros < 0:
            self.tally.violations.append(f"{what}: balance {result.balance_micros}")

    async def call(self, session_id: str, spread_s: float = 0.0) -> None:
        rnd = self.random
        await asyncio.sleep(rnd.random() * spread_s)
        opening = await self.store.step(
            _step(
                StepKind.HOLD,
                self.account_id,
                session_id,
                0,
                holds=(Hold("voice", rnd.randint(2_000, 6_000), 1_000),),
                new_session=True,
            )
        )
        self.check(opening, f"{session_id} open")
        if opening.status is not StepStatus.OK:
            return
        self.tally.opened += 1
        held = opening.holds[0]
        used = 0
        number = 0
        for _ in range(rnd.randint(0, 3)):
            await asyncio.sleep(rnd.random() / 1000)
            used = min(held, used + rnd.randint(0, 1_500))
            update = await self.store.step(
                _step(
                    StepKind.HOLD,
                    self.account_id,
                    session_id,
                    number + 1,
                    holds=(Hold("voice", used + 3_000, used + 500, keep_micros=used),),
                    expected_version=number,
                )
            )
            self.check(update, f"{session_id} update")
            if update.status is not StepStatus.OK:
                self.tally.violations.append(f"{session_id} update: {update.status}")
                return
            number += 1
            held = update.holds[0]
            if held < used:
                self.tally.violations.append(f"{session_id}: hold {held} below keep {used}")
        await asyncio.sleep(self.random.random() / 1000)
        cost = used + self.random.randint(0, 4_000)
        if self.random.random() < 0.2:
            cost += 50_000  # far more than held: stopped at zero once the money runs low
        closing = await self.store.step(
            _step(
                StepKind.CLOSE,
                self.account_id,
                session_id,
                number + 1,
                debit_micros=cost,
                expected_version=number,
                record=f"{session_id}:{cost}".encode(),
            )
        )
        self.check(closing, f"{session_id} close")
        if closing.status is not StepStatus.OK:
            self.tally.violations.append(f"{session_id} close: {closing.status}")
            return
        if not 0 <= closing.debited_micros <= cost:
            self.tally.violations.append(f"{session_id}: debited {closing.debited_micros}")
        self.tally.closes += 1
        self.tally.debited += closing.debited_micros
        self.tally.overruns += closing.debited_micros < cost
        state = await self.store.get_account(self.account_id)
        if state is None or state.balance_micros < 0:
            self.tally.violations.append(f"account after {session_id}: {state}")


def _settings(spec: dict[str, Any]) -> Any:
    if spec["backend"] == "embedded":
        return EmbeddedStoreSettings(**spec["settings"])
    return RedisStoreSettings(**spec["settings"])


async def main(spec: dict[str, Any]) -> None:
    store = open_store(spec["backend"], spec.get("path", ""), _settings(spec))
    worker = Worker(store, spec["account_id"], spec["name"], spec.get("seed", 0))
    sessions = spec["sessions"]
    name = spec["name"]
    try:
        if spec["mode"] == "calls":
            # every worker starts at the same moment, whatever its start-up took
            await asyncio.sleep(max(0.0, spec.get("start_at", 0) - time.time()))
            await asyncio.gather(*(worker.call(f"{name}-{n}", 0.5) for n in range(sessions)))
            print(json.dumps(worker.tally.__dict__), flush=True)
        elif spec["mode"] == "hold":
            results = [
                await store.step(
                    _step(
                        StepKind.HOLD,
                        spec["account_id"],
                        f"{name}-{n}",
                        7,
                        holds=(Hold("voice", 1_000),),
                        new_session=True,
                    )
                )
                for n in range(sessions)
            ]
            print(json.dumps([r.holds[0] for r in results]), flush=True)
            await asyncio.sleep(3600)
        else:

            async def lane(lane_id: int) -> None:
                for n in range(10**9):
                    await worker.call(f"{name}-{lane_id}-{n}")
                    if n == 2 and lane_id == 0:
                        print(json.dumps({"running": True}), flush=True)

            await asyncio.gather(*(lane(n) for n in range(sessions)))
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
