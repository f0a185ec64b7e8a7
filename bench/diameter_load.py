"""Diameter Gy/Ro load generator: calls (CCR-I, K x CCR-U, CCR-T) from simulated softswitch
peers at a fixed rate or a fixed concurrency, against a running ocsd, printing CCR/s, answers
by Result-Code and latency percentiles.

    python bench/diameter_load.py --port 3868 --peers 4 --subscribers 441632960001,alice \\
        --to tel:+442071234567 --updates 1 --concurrency 256 --seconds 20 [--rate 1500] [--json]

Each peer is one TCP connection that does CER/CEA with its own Origin-Host
(``bench<N>.load.example``) through our sans-IO ``Peer``; then requests are pipelined (many in
flight per connection) and answers matched by hop-by-hop id. A subscriber made of digits is
sent as Subscription-Id END_USER_E164, anything else as User-Name. Every CCR carries an MSCC
with the rating group, Requested-Service-Unit CC-Time and (U and T) Used-Service-Unit CC-Time,
and IMS-Information with the called number.

``--rate`` is in calls per second (each call is ``updates + 2`` CCRs), paced like
radius_load.py; otherwise ``--concurrency`` calls are kept going. A call whose CCR-I is not
answered 2001 ends there, as a switch would. Statistics cover the window after ``--warmup``;
at the end, calls in progress are finished (uncounted) so that no session is left open.

To keep the generator off the critical path, every CCR is encoded once per peer and
subscriber; a request is that template with its Session-Id digits, CC-Request-Number and ids
patched in place. ``generator_cpu_percent`` in the output tells how busy the generator was;
``python bench/diameter_run.py --target raw`` measures its ceiling against a trivial answerer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Sibling modules, after the repository root (bench/fraud.py must not hide the fraud package).
sys.path.append(str(Path(__file__).resolve().parent))

from diameter_wire import IDS, U32, Link, avp_value_offsets, identity, peer_config, result_code

from protocols.diameter.constants import AvpCode, CcRequestType, SubscriptionIdType
from protocols.diameter.gy import (
    CreditControlRequest,
    ImsInformation,
    MsccRequest,
    RequestedUnits,
    SubscriptionId,
    UsedUnits,
    encode_ccr,
)
from protocols.diameter.message import encode_message
from protocols.diameter.peer import PeerRole

REALM = "load.example"
SERIAL_DIGITS = 12
SUCCESS = 2001


@dataclass(frozen=True, slots=True)
class Template:
    """The octets of one CCR and where its per-request fields sit."""

    data: bytes
    serial_at: int
    number_at: int


def build_templates(
    origin_host: str, run: str, subscriber: str, args: argparse.Namespace
) -> tuple[Template, Template, Template]:
    """CCR-I, CCR-U and CCR-T of one peer for one subscriber."""
    session = f"{origin_host};{run};{'0' * SERIAL_DIGITS}"
    if subscriber.isdigit():
        subscriptions: tuple[SubscriptionId, ...] = (
            SubscriptionId(SubscriptionIdType.END_USER_E164, subscriber),
        )
        user_name = None
    else:
        subscriptions, user_name = (), subscriber

    def one(kind: CcRequestType, used: int | None, requested: int | None) -> Template:
        request = CreditControlRequest(
            session_id=session,
            origin_host=origin_host,
            origin_realm=REALM,
            destination_realm=args.destination_realm,
            service_context_id="32260@3gpp.org",
            request_type=kind,
            request_number=0,
            subscription_ids=subscriptions,
            user_name=user_name,
            event_timestamp=datetime.now(UTC),
            mscc=(
                MsccRequest(
                    rating_group=args.rating_group,
                    requested=RequestedUnits(cc_time=requested) if requested else None,
                    used=(UsedUnits(cc_time=used),) if used is not None else (),
                ),
            ),
            ims=ImsInformation(called_party_address=args.to),
        )
        data = encode_message(encode_ccr(request))
        offsets = avp_value_offsets(data)
        serial_at = offsets[AvpCode.SESSION_ID] + len(session) - SERIAL_DIGITS
        return Template(data, serial_at, offsets[AvpCode.CC_REQUEST_NUMBER])

    return (
        one(CcRequestType.INITIAL_REQUEST, None, args.requested),
        one(CcRequestType.UPDATE_REQUEST, args.used, args.requested),
        one(CcRequestType.TERMINATION_REQUEST, args.used, None),
    )


class Stats:
    """Counts and latencies of the measurement window."""

    def __init__(self) -> None:
        self.counting = False
        self.latencies = array("d")
        self.results: dict[str, int] = {}
        self.calls = 0
        self.sent = 0
        self.total = 0  # answers, in the window or not

    def record(self, kind: str, code: int, latency: float) -> None:
        self.total += 1
        if self.counting:
            self.latencies.append(latency)
            key = f"{kind}:{code}"
            self.results[key] = self.results.get(key, 0) + 1

    def lost(self, kind: str, why: str) -> None:
        if self.counting:
            key = f"{kind}:{why}"
            self.results[key] = self.results.get(key, 0) + 1


class Call:
    """One call in progress: which step it is at."""

    __slots__ = ("serial", "step", "templates")

    def __init__(self, serial: int, templates: tuple[Template, Template, Template]) -> None:
        self.serial = serial
        self.step = 0
        self.templates = templates


class Load:
    """The calls of a run and the rules that move them on."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stats = Stats()
        self.serials = itertools.count()
        self.running = True
        self.keep_going = args.rate == 0  # concurrency mode: a finished call starts another
        # step -> (kind, template index, CC-Request-Number)
        self.plan = [("ccr-i", 0, 0)]
        self.plan += [("ccr-u", 1, n) for n in range(1, args.updates + 1)]
        self.plan.append(("ccr-t", 2, args.updates + 1))
        self.links: list[LoadLink] = []
        self.drained = asyncio.Event()

    def check_drained(self) -> None:
        """Once no new calls start: note when nothing is in flight any more."""
        if not self.running and not any(link.waiting for link in self.links):
            self.drained.set()

    def start_call(self, link: LoadLink) -> None:
        serial = next(self.serials)
        templates = link.templates[serial % len(link.templates)]
        self.send_step(link, Call(serial, templates))

    def send_step(self, link: LoadLink, call: Call) -> None:
        kind, index, number = self.plan[call.step]
        template = call.templates[index]
        buf = bytearray(template.data)
        at = template.serial_at
        buf[at : at + SERIAL_DIGITS] = b"%012d" % call.serial
        U32.pack_into(buf, template.number_at, number)
        hop, end = link.next_ids()
        IDS.pack_into(buf, 12, hop, end)
        link.waiting[hop] = (call, kind, time.perf_counter())
        self.stats.sent += 1
        link.send(buf)

    def answered(self, link: LoadLink, call: Call, kind: str, code: int) -> None:
        step = call.step + 1
        if (step == 1 and code != SUCCESS) or step == len(self.plan):
            self.call_ended(link)
            return
        if not self.running and not self.args.finish_calls:
            self.check_drained()
            return
        call.step = step
        self.send_step(link, call)

    def call_ended(self, link: LoadLink) -> None:
        if self.stats.counting:
            self.stats.calls += 1
        if self.running:
            if self.keep_going and not link.closed.done():
                self.start_call(link)
        elif not link.waiting:
            self.check_drained()


class LoadLink(Link):
    """A simulated softswitch: one connection, many calls."""

    def __init__(
        self, load: Load, templates: list[tuple[Template, Template, Template]], origin_host: str
    ) -> None:
        super().__init__(peer_config(identity(origin_host, REALM)), PeerRole.INITIATOR)
        self.load = load
        self.templates = templates
        self.waiting: dict[int, tuple[Call, str, float]] = {}

    def on_answer(self, frame: bytes) -> None:
        found = self.waiting.pop(IDS.unpack_from(frame, 12)[0], None)
        if found is None:
            return
        call, kind, sent_at = found
        code = result_code(frame)
        self.load.stats.record(kind, code, time.perf_counter() - sent_at)
        self.load.answered(self, call, kind, code)

    def on_closed(self) -> None:
        for _, kind, _ in self.waiting.values():
            self.load.stats.lost(kind, "closed")
        self.waiting.clear()
        if not self.load.running:
            self.load.check_drained()

    def expire(self, older_than: float) -> None:
        late = [hop for hop, (_, _, sent_at) in self.waiting.items() if sent_at < older_than]
        for hop in late:
            _, kind, _ = self.waiting.pop(hop)
            self.load.stats.lost(kind, "timeout")
            self.load.call_ended(self)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    load = Load(args)
    run_tag = f"{os.getpid()}{int(time.time()) % 1_000_000:06d}"
    links = load.links
    for index in range(args.peers):
        origin_host = f"bench{index}.{REALM}"
        templates = [build_templates(origin_host, run_tag, s, args) for s in args.subscribers]
        _, link = await loop.create_connection(
            lambda origin_host=origin_host, templates=templates: LoadLink(  # type: ignore[misc]
                load, templates, origin_host
            ),
            args.host,
            args.port,
        )
        await asyncio.wait_for(link.opened, 10)
        links.append(link)

    async def expire() -> None:
        while True:
            await asyncio.sleep(min(0.25, args.timeout / 4))
            older_than = time.perf_counter() - args.timeout
            for link in links:
                link.expire(older_than)

    async def paced(until: float) -> None:
        interval = 1.0 / args.rate
        next_at = time.perf_counter()
        index = 0
        while load.running and time.perf_counter() < until:
            now = time.perf_counter()
            while next_at <= now:
                load.start_call(links[index % len(links)])
                index += 1
                next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    marks: dict[str, float] = {}

    def open_window() -> None:
        load.stats.counting = True
        marks["started"], marks["cpu"] = time.perf_counter(), time.process_time()

    expiry = asyncio.ensure_future(expire())
    started = time.perf_counter()
    begin = started + args.warmup
    end = begin + args.seconds
    loop.call_later(args.warmup, open_window)
    if args.rate:
        pacer = asyncio.ensure_future(paced(end))
    else:
        for index in range(args.concurrency):
            load.start_call(links[index % len(links)])
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    load.stats.counting = False
    elapsed = time.perf_counter() - marks["started"]
    cpu = time.process_time() - marks["cpu"]
    load.running = False
    if args.rate:
        await pacer
    # Let calls in progress finish (uncounted) so that no session is left open.
    load.check_drained()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(load.drained.wait(), args.timeout + 1.0)
    expiry.cancel()
    for link in links:
        link.disconnect()
    await asyncio.wait([link.closed for link in links], timeout=5)
    for link in links:
        if link.transport is not None:
            link.transport.close()

    stats = load.stats
    latencies = sorted(stats.latencies)

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    answered = len(latencies)
    return {
        "conditions": {
            "mode": f"rate {args.rate:g} calls/s"
            if args.rate
            else f"concurrency {args.concurrency}",
            "peers": args.peers,
            "requests_per_call": args.updates + 2,
            "seconds": round(elapsed, 1),
        },
        "calls": stats.calls,
        "requests_answered": answered,
        "requests_per_s": round(answered / elapsed) if elapsed else 0,
        "latency_ms": {
            "p50": round(pct(0.50), 3),
            "p99": round(pct(0.99), 3),
            "p99.9": round(pct(0.999), 3),
            "max": round(latencies[-1] * 1000, 3) if latencies else 0,
        },
        "results": dict(sorted(stats.results.items())),
        "requests_total": stats.total,
        "generator_cpu_percent": round(100 * cpu / elapsed) if elapsed else 0,
    }


def parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The command line (diameter_run.py takes it over as a parent)."""
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=add_help,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3868)
    parser.add_argument("--peers", type=int, default=4, help="TCP connections (softswitches)")
    parser.add_argument(
        "--subscribers",
        type=lambda s: s.split(","),
        default=["441632960001"],
        help="E.164 numbers (Subscription-Id) or user names (User-Name), comma separated",
    )
    parser.add_argument("--to", default="tel:+442071234567", help="Called-Party-Address")
    parser.add_argument("--destination-realm", default="localdomain")
    parser.add_argument("--rating-group", type=int, default=100)
    parser.add_argument("--requested", type=int, default=60, help="CC-Time asked per CCR")
    parser.add_argument("--used", type=int, default=30, help="CC-Time reported per U and T")
    parser.add_argument("--updates", type=int, default=1, help="CCR-U per call")
    parser.add_argument("--concurrency", type=int, default=256, help="calls in progress")
    parser.add_argument("--rate", type=float, default=0, help="calls per second (else concurrency)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument(
        "--no-finish-calls",
        dest="finish_calls",
        action="store_false",
        help="at the end, abandon calls in progress instead of finishing them",
    )
    parser.add_argument("--json", action="store_true")
    return parser


def install_uvloop() -> None:
    """uvloop when available, as the daemon uses."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


def main() -> None:
    args = parser().parse_args()
    install_uvloop()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
