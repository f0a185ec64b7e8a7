"""RADIUS load generator: accounting calls (Start, Interim-Update..., Stop) at a rate or a
concurrency, against a running ocsd, printing requests/s and latency percentiles.

    python bench/radius_load.py --acct-port 1813 --secret testing123 --users bench-0,bench-1 \\
        --to 442071234567 --concurrency 200 --seconds 20 [--auth] [--interims 1] [--json]

Every request is one datagram from one socket per simulated switch; answers are matched by
Identifier. A request not answered within --timeout is retransmitted once (same Identifier and
authenticator, as a NAS does) and then counted as lost.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols.radius.attribute import h323_attribute, integer_attribute, string_attribute
from protocols.radius.packet import Code, encode_request

USER_NAME, CALLED, SESSION_ID, STATUS, SESSION_TIME = 1, 30, 44, 40, 46


class Switch(asyncio.DatagramProtocol):
    """One UDP socket that sends requests and matches answers by Identifier."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, asyncio.Future[bytes]] = {}
        self.ids = itertools.cycle(range(256))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        future = self.waiting.pop(data[1], None) if len(data) >= 20 else None
        if future is not None and not future.done():
            future.set_result(data)

    def free_id(self) -> int:
        for _ in range(256):
            candidate = next(self.ids)
            if candidate not in self.waiting:
                return candidate
        raise RuntimeError("256 requests in flight on one socket")


class Load:
    """Counts and latencies."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.results: Counter[str] = Counter()
        self.calls = 0

    async def request(
        self, switch: Switch, address: tuple[str, int], build: Any, wait_s: float, kind: str
    ) -> bytes | None:
        identifier = switch.free_id()
        data = build(identifier)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        for _ in range(2):
            future: asyncio.Future[bytes] = loop.create_future()
            switch.waiting[identifier] = future
            assert switch.transport is not None
            switch.transport.sendto(data, address)
            try:
                reply = await asyncio.wait_for(future, wait_s)
            except TimeoutError:
                switch.waiting.pop(identifier, None)
                continue
            self.latencies.append(time.perf_counter() - started)
            self.results[f"{kind}:{Code(reply[0]).name}"] += 1
            return reply
        self.results[f"{kind}:lost"] += 1
        return None


async def one_call(
    load: Load, switch: Switch, args: argparse.Namespace, serial: int, secret: bytes
) -> None:
    user = args.users[serial % len(args.users)]
    session = f"bench-{os.getpid()}-{serial}"
    conf = h323_attribute("h323-conf-id", f"{os.getpid():08X} {serial:08X} 0 0")
    common = [string_attribute(USER_NAME, user), string_attribute(CALLED, args.to), conf]
    acct = (args.host, args.acct_port)
    if args.auth:
        await load.request(
            switch,
            (args.host, args.auth_port),
            lambda i: encode_request(Code.ACCESS_REQUEST, i, common, secret),
            args.timeout,
            "auth",
        )

    def accounting(status: int, seconds: int | None) -> Any:
        attributes = [
            *common,
            string_attribute(SESSION_ID, session),
            integer_attribute(STATUS, status),
        ]
        if seconds is not None:
            attributes.append(integer_attribute(SESSION_TIME, seconds))
        return lambda i: encode_request(Code.ACCOUNTING_REQUEST, i, attributes, secret)

    await load.request(switch, acct, accounting(1, None), args.timeout, "start")
    for n in range(1, args.interims + 1):
        await load.request(switch, acct, accounting(3, 30 * n), args.timeout, "interim")
    await load.request(switch, acct, accounting(2, 30 * args.interims + 17), args.timeout, "stop")
    load.calls += 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    secret = args.secret.encode()
    switches = []
    for _ in range(args.sockets):
        _, protocol = await loop.create_datagram_endpoint(Switch, local_addr=("127.0.0.1", 0))
        switches.append(protocol)
    load = Load()
    serial = itertools.count()
    deadline = time.monotonic() + args.seconds
    started = time.perf_counter()

    async def worker(index: int) -> None:
        switch = switches[index % len(switches)]
        while time.monotonic() < deadline:
            await one_call(load, switch, args, next(serial), secret)

    async def paced() -> None:
        interval = 1.0 / args.rate
        tasks: set[asyncio.Task[None]] = set()
        next_at = time.perf_counter()
        index = 0
        while time.monotonic() < deadline:
            switch = switches[index % len(switches)]
            index += 1
            task = asyncio.ensure_future(one_call(load, switch, args, next(serial), secret))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*tasks)

    if args.rate:
        await paced()
    else:
        await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    latencies = sorted(load.latencies)

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    answered = len(latencies)
    return {
        "conditions": {
            "mode": f"rate {args.rate} calls/s" if args.rate else f"concurrency {args.concurrency}",
            "requests_per_call": (2 if not args.auth else 3) + args.interims,
            "seconds": round(elapsed, 1),
        },
        "calls": load.calls,
        "requests_answered": answered,
        "requests_per_s": round(answered / elapsed),
        "latency_ms": {
            "p50": round(pct(0.50), 3),
            "p99": round(pct(0.99), 3),
            "p99.9": round(pct(0.999), 3),
            "mean": round(statistics.fmean(latencies) * 1000, 3) if latencies else 0,
        },
        "results": dict(sorted(load.results.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--auth-port", type=int, default=1812)
    parser.add_argument("--acct-port", type=int, default=1813)
    parser.add_argument("--secret", default="testing123")
    parser.add_argument("--users", type=lambda s: s.split(","), default=["bench-0"])
    parser.add_argument("--to", default="442071234567")
    parser.add_argument("--auth", action="store_true", help="authorize each call first")
    parser.add_argument("--interims", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0, help="calls per second (else concurrency)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--sockets", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
