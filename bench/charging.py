"""The charging service alone (no protocol): call steps per second and CPU per step.

    python bench/charging.py --backend redis --concurrency 256 --seconds 10 [--updates 1]

Each simulated call is INITIAL, ``--updates`` UPDATEs and TERMINATE through
``ChargingService.handle`` against a real balance store, with the master data of the test
world (tests/ocsd/world.py). Prints steps/s, latency percentiles, CPU µs per step, and Redis
round trips per step (commands the server counted, divided by steps).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from ocsd.charging import ChargingService, ChargingSettings
from ocsd.charging_types import ChargingRequest, Grant, RequestType, UnitRequest
from ocsd.directory import Candidate
from ocsd.master import IdentityKind
from tests.ocsd.world import REDIS_URL, build_master, delete_prefix, load_directory, open_store

ALICE = (Candidate(IdentityKind.E164, "441632960001"),)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def redis_calls() -> int:
    info = redis.Redis.from_url(REDIS_URL).info("commandstats")
    return sum(int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_evalsha"))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="ocsd-bench-charging-"))
    build_master(folder / "records.sqlite3")
    directory = load_directory(folder / "records.sqlite3")
    store, prefix = open_store(args.backend, folder)
    for account in directory.accounts.values():
        await store.put_account(account.limits())
    from balances.model import LedgerKind

    await store.ledger("alice", LedgerKind.TOPUP, 10**14, uuid.uuid4().hex, b"bench", 0)
    service = ChargingService(ChargingSettings(), store, lambda: directory, node="bench")
    latencies: list[float] = []
    serial = itertools.count()
    deadline = time.monotonic() + args.seconds
    steps = 0

    async def step(request: ChargingRequest) -> None:
        nonlocal steps
        started = time.perf_counter()
        outcome = await service.handle(request)
        latencies.append(time.perf_counter() - started)
        steps += 1
        assert isinstance(outcome, Grant), outcome

    async def call_loop() -> None:
        while time.monotonic() < deadline:
            session = f"bench-{next(serial)}"
            common: dict[str, Any] = {
                "session_id": session,
                "protocol": "bench",
                "peer": "bench",
                "identities": ALICE,
                "called": "442071234567",
            }
            await step(
                ChargingRequest(
                    request_number=0,
                    request_type=RequestType.INITIAL,
                    units=(UnitRequest(requested_s=600),),
                    **common,
                )
            )
            for n in range(1, args.updates + 1):
                await step(
                    ChargingRequest(
                        request_number=n,
                        request_type=RequestType.UPDATE,
                        units=(UnitRequest(requested_s=600, used_s=60),),
                        **common,
                    )
                )
            await step(
                ChargingRequest(
                    request_number=args.updates + 1,
                    request_type=RequestType.TERMINATE,
                    units=(UnitRequest(used_s=30),),
                    **common,
                )
            )

    evals_before = redis_calls() if args.backend == "redis" else 0
    cpu_before = cpu_s()
    started = time.perf_counter()
    await asyncio.gather(*(call_loop() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    cpu = cpu_s() - cpu_before
    evals = (redis_calls() - evals_before) if args.backend == "redis" else None
    await store.close()
    if prefix:
        await delete_prefix(prefix)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3)

    return {
        "conditions": {
            "backend": args.backend,
            "concurrency": args.concurrency,
            "steps_per_call": args.updates + 2,
        },
        "steps": steps,
        "steps_per_s": round(steps / elapsed),
        "cpu_us_per_step": round(cpu / steps * 1e6, 1),
        "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "p99.9": pct(0.999)},
        "redis_scripts_per_step": round(evals / steps, 3) if evals is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=("redis", "embedded"), default="redis")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--updates", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        result = asyncio.run(run(args))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    else:
        result = asyncio.run(run(args))
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>22}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
