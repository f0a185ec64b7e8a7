"""Several processes on one store, and processes killed outright: the books still balance.

- 500 concurrent calls (4 processes of 125) on one prepaid account whose balance pays for a
  fraction of them: no step ever reports a balance below zero, and at the end the opening
  balance minus the CDR amounts in the queue is the balance, to the micro-unit.
- A process killed (SIGKILL) between its holds and its closes: the holds stay counted until
  their deadline, the reaper finds the sessions and closes each exactly once.
- A process killed in the middle of traffic: whatever it left open is reaped, and nothing is
  lost or counted twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from balances.model import (
    AccountLimits,
    LedgerKind,
    QueuedRecord,
    RecordKind,
    Step,
    StepKind,
    StepStatus,
)
from balances.store import BalanceStore
from tests.balances.backends import Backend

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_714_550_400_000
DEADLINE_MS = T0 + 10_000
OPENING = 100_000

pytestmark = pytest.mark.slow


def _spec(backend: Backend, mode: str, name: str, sessions: int, **extra: Any) -> str:
    return json.dumps(
        {
            "backend": backend.name,
            "path": str(backend.path or ""),
            "settings": dataclasses.asdict(backend.settings()),
            "account_id": "acct",
            "mode": mode,
            "name": name,
            "sessions": sessions,
            **extra,
        }
    )


async def _start(spec: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.balances.store_worker",
        spec,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _kill(process: asyncio.subprocess.Process) -> None:
    process.kill()  # SIGKILL: no cleanup of any kind in the child
    await process.wait()
    assert process.returncode == -9
    await process.communicate()


async def _records(store: BalanceStore) -> list[QueuedRecord]:
    found: list[QueuedRecord] = []
    while batch := await store.read_records("check", 500, 0):
        found.extend(batch)
        await store.ack_records(batch)
    return found


async def _open_account(store: BalanceStore) -> None:
    await store.put_account(AccountLimits("acct"))
    result = await store.ledger("acct", LedgerKind.TOPUP, OPENING, "opening", b"", T0)
    assert result.applied


async def _reap(store: BalanceStore, now_ms: int, debit: int) -> int:
    """Close every expired session as the daemon's reaper does; return how many."""
    reaped = 0
    while sessions := await store.expired_sessions(now_ms, 100):
        for session in sessions:
            result = await store.step(
                Step(
                    kind=StepKind.CLOSE,
                    account_id=session.account_id,
                    session_id=session.session_id,
                    request_number=session.version + 1,
                    now_ms=now_ms,
                    day_key="2024-05-01",
                    month_key="2024-05",
                    debit_micros=debit,
                    expected_version=session.version,
                    record=b"reaped",
                )
            )
            assert result.status is StepStatus.OK
            reaped += 1
    return reaped


async def test_500_concurrent_calls_from_4_processes(backend: Backend) -> None:
    store = backend.open()
    await _open_account(store)
    start_at = time.time() + 2.0
    workers = [
        await _start(_spec(backend, "calls", f"w{n}", 125, seed=n, start_at=start_at))
        for n in range(4)
    ]
    watching = True

    async def watch() -> int:
        looks = 0
        while watching:
            state = await store.get_account("acct")
            assert state is not None and state.balance_micros >= 0
            looks += 1
            await asyncio.sleep(0.005)
        return looks

    watcher = asyncio.create_task(watch())
    outputs = [await w.communicate() for w in workers]
    watching = False
    assert await watcher > 0
    tallies = []
    for process, (out, err) in zip(workers, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        tallies.append(json.loads(out))
    assert [v for t in tallies for v in t["violations"]] == []
    opened = sum(t["opened"] for t in tallies)
    closes = sum(t["closes"] for t in tallies)
    debited = sum(t["debited"] for t in tallies)
    assert 0 < opened == closes < 500  # the money ran out: some calls were refused
    assert sum(t["overruns"] for t in tallies) > 0  # and some closes were stopped at zero
    state = await store.get_account("acct")
    assert state is not None
    assert (state.held_micros, state.sessions) == (0, 0)
    assert state.balance_micros >= 0
    records = await _records(store)
    cdrs = [r for r in records if r.kind is RecordKind.CDR]
    assert len(cdrs) == closes
    assert len({r.payload for r in cdrs}) == closes
    assert sum(r.amount_micros for r in cdrs) == debited
    assert OPENING - debited == state.balance_micros
    assert all(r.balance_micros >= 0 for r in cdrs)


async def test_holds_survive_a_killed_process_until_the_reaper(backend: Backend) -> None:
    store = backend.open()
    await _open_account(store)
    child = await _start(_spec(backend, "hold", "k", 20))
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 30)
    held = json.loads(line)
    assert held == [1_000] * 20
    await _kill(child)

    state = await store.get_account("acct")
    assert state is not None
    assert (state.balance_micros, state.held_micros, state.sessions) == (OPENING, 20_000, 20)
    assert await store.expired_sessions(DEADLINE_MS - 1, 100) == []
    found = await store.expired_sessions(DEADLINE_MS, 100)
    assert sorted(s.session_id for s in found) == sorted(f"k-{n}" for n in range(20))
    assert {s.version for s in found} == {7}
    assert all(s.holds == {"voice": 1_000} for s in found)

    assert await _reap(store, DEADLINE_MS, 600) == 20
    assert await _reap(store, DEADLINE_MS, 600) == 0
    # a second reaper that saw the same sessions: its closes are duplicates, nothing moves
    again = await store.step(
        Step(
            kind=StepKind.CLOSE,
            account_id="acct",
            session_id="k-0",
            request_number=8,
            now_ms=DEADLINE_MS,
            day_key="2024-05-01",
            month_key="2024-05",
            debit_micros=600,
            expected_version=7,
        )
    )
    assert (again.status, again.debited_micros) == (StepStatus.DUPLICATE, 600)
    state = await store.get_account("acct")
    assert state is not None
    assert (state.balance_micros, state.held_micros, state.sessions) == (OPENING - 12_000, 0, 0)
    cdrs = [r for r in await _records(store) if r.kind is RecordKind.CDR]
    assert sorted(r.amount_micros for r in cdrs) == [600] * 20


async def test_a_process_killed_mid_traffic_loses_nothing(backend: Backend) -> None:
    store = backend.open()
    await _open_account(store)
    await store.ledger("acct", LedgerKind.TOPUP, 10**9, "plenty", b"", T0)
    child = await _start(_spec(backend, "traffic", "t", 16, seed=7))
    assert child.stdout is not None
    assert json.loads(await asyncio.wait_for(child.stdout.readline(), 30)) == {"running": True}
    await asyncio.sleep(random.uniform(0.05, 0.3))
    await _kill(child)

    state = await store.get_account("acct")
    assert state is not None
    open_sessions = await store.expired_sessions(DEADLINE_MS, 1_000)
    assert state.sessions == len(open_sessions)
    assert state.held_micros == sum(sum(s.holds.values()) for s in open_sessions)
    await _reap(store, DEADLINE_MS, 0)
    state = await store.get_account("acct")
    assert state is not None
    assert (state.held_micros, state.sessions) == (0, 0)
    records = await _records(store)
    credited = sum(r.amount_micros for r in records if r.kind is RecordKind.LEDGER)
    charged = sum(r.amount_micros for r in records if r.kind is RecordKind.CDR)
    assert credited == OPENING + 10**9
    assert charged > 0
    assert credited - charged == state.balance_micros
    payloads = [r.payload for r in records if r.kind is RecordKind.CDR and r.payload != b"reaped"]
    assert len(payloads) == len(set(payloads))
