"""SIGTERM during load loses no CDR and answers or DPR-closes every peer.

A real ``ocsd serve`` (embedded store, one worker) takes full calls (CCR-I, CCR-U, CCR-T)
from several Diameter peers at once, and in the second test RADIUS accounting (Start, Stop)
from several NASes too. While the calls run it receives SIGTERM, as systemd sends it. Then:

- every Diameter request sent got an answer (2001, or 3004 once shutdown started), except
  one that crossed ocsd's DPR on the wire; every peer received that DPR, answered it (DPA)
  and saw its connection closed by ocsd;
- the process exits 0 within a bound;
- every call whose CCR-T was answered 2001 (or whose RADIUS Stop was answered) has exactly
  one CDR, no call has two, and the money moved equals the sum of the CDR debits
  (``ocsd account reconcile`` agrees), after ``ocsd cdr-writer --until-empty`` wrote what the
  daemon's writer left queued.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from balances.embedded_store import EmbeddedBalanceStore
from protocols.diameter.constants import CcRequestType, DisconnectCause, ResultCode
from protocols.diameter.errors import LocalProtocolError
from protocols.diameter.gy import decode_cca, encode_ccr
from protocols.diameter.message import Message
from protocols.diameter.peer import CloseReason, PeerClosed
from protocols.radius.packet import Code
from tests.ocsd.diameter_client import Client, ccr, connect
from tests.ocsd.live_daemon import (
    LiveDaemon,
    RadiusPeer,
    prepare,
    trace_closes,
    wait_until_async,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PEERS = 6
NASES = 4
CALLS_BEFORE_SIGTERM = 40
"""Calls finished (CCR-T or Stop answered) before the signal: the load is well under way."""
EXIT_WITHIN_S = 25.0
TOPUP_MICROS = 1_000_000_000
TOO_BUSY = ResultCode.DIAMETER_TOO_BUSY


@dataclass
class Ledger:
    """What the switches saw: per call, the answer of each request."""

    outcomes: dict[str, dict[str, int | None]] = field(
        default_factory=lambda: collections.defaultdict(dict)
    )
    finished: int = 0
    """Calls whose final request was answered 2001 (or Accounting-Response)."""
    unanswered: list[tuple[int, str, str]] = field(default_factory=list)
    """(peer, session, request) sent but never answered: they crossed the DPR."""
    busy_after: float | None = None
    """When the first 3004 came back."""
    signalled: float | None = None
    """When SIGTERM was sent."""

    def charged(self) -> set[str]:
        """Calls whose CCR-T was answered 2001 or whose Stop was answered."""
        return {s for s, o in self.outcomes.items() if o.get("T") == ResultCode.DIAMETER_SUCCESS}


NOT_SENT = -1


async def exchange(client: Client, message: Message, timeout_s: float = 20.0) -> int | None:
    """Send one request; its Result-Code, None if the connection closed first, or NOT_SENT
    when the peer was already closed (a switch does not send on a closed connection)."""
    loop = asyncio.get_running_loop()
    try:
        sent = client.peer.send_request(message, loop.time())
    except LocalProtocolError:
        return NOT_SENT
    answer: asyncio.Future[Message] = loop.create_future()
    client.answers[sent.hop_by_hop_id] = answer
    client._pump()
    closed = asyncio.ensure_future(client.closed.wait())
    try:
        await asyncio.wait({answer, closed}, timeout=timeout_s, return_when="FIRST_COMPLETED")
    finally:
        closed.cancel()
    if answer.done():
        return int(decode_cca(answer.result()).result_code)
    if not client.closed.is_set():
        raise AssertionError(f"no answer within {timeout_s} s on an open connection")
    return None


async def drive_diameter(client: Client, peer: int, ledger: Ledger) -> None:
    """Full calls one after the other until ocsd says it is going away."""
    number = 0
    while not client.closed.is_set():
        number += 1
        session = f"load{peer}.test.example;{number}"
        steps = (
            ("I", ccr(CcRequestType.INITIAL_REQUEST, 0, session=session, requested=60)),
            ("U", ccr(CcRequestType.UPDATE_REQUEST, 1, session=session, used=30, requested=60)),
            ("T", ccr(CcRequestType.TERMINATION_REQUEST, 2, session=session, used=20)),
        )
        for name, request in steps:
            code = await exchange(client, encode_ccr(request))
            if code == NOT_SENT:
                return
            ledger.outcomes[session][name] = code
            if code is None:
                ledger.unanswered.append((peer, session, name))
                return
            assert code in (ResultCode.DIAMETER_SUCCESS, TOO_BUSY), (session, name, code)
            if code == TOO_BUSY:
                if ledger.busy_after is None:
                    ledger.busy_after = time.monotonic()
                # A switch fails over to another OCS; this one waits for the DPR.
                await client.closed.wait()
                return
        ledger.finished += 1


async def drive_radius(nas: RadiusPeer, index: int, ledger: Ledger) -> None:
    """Start then Stop, call after call, until ocsd stops answering."""
    number = 0
    while True:
        number += 1
        acct = f"nas{index}-call{number}"
        call = [
            ("User-Name", "alice"),
            ("Called-Station-Id", "442071234567"),
            ("Acct-Session-Id", acct),
        ]
        session = f"radius:127.0.0.1:{acct}"
        for name, extra in (
            ("Start", [("Acct-Status-Type", 1)]),
            ("T", [("Acct-Status-Type", 2), ("Acct-Session-Time", 50)]),
        ):
            # Until the signal a slow answer is retransmitted as long as it takes; after it,
            # three tries.
            reply = await nas.request(
                Code.ACCOUNTING_REQUEST,
                [*call, *extra],
                timeout_s=1.0,
                tries=3,
                keep_trying=lambda: ledger.signalled is None,
            )
            if reply is None:
                # Dropped once ocsd stopped listening: the NAS would retransmit elsewhere.
                ledger.outcomes[session][name] = None
                return
            assert reply.code is Code.ACCOUNTING_RESPONSE
            ledger.outcomes[session][name] = ResultCode.DIAMETER_SUCCESS
        ledger.finished += 1


def balance(daemon: LiveDaemon) -> int:
    async def read() -> int:
        store = EmbeddedBalanceStore(str(daemon.data / "hot.sqlite3"))
        try:
            state = await store.get_account("alice")
            assert state is not None
            return state.balance_micros
        finally:
            await store.close()

    return asyncio.run(read())


async def run_load(tmp_path: Path, *, nases: int) -> None:
    # Deadlines far above any stall of a loaded machine: a 3004 or a dropped datagram can
    # then only come from the shutdown.
    daemon = prepare(
        tmp_path,
        workers=1,
        radius=["answer_deadline_s: 20"],
        diameter=["request_deadline_s: 20"],
    )
    await daemon.acli("account", "topup", "alice", str(TOPUP_MICROS // 1_000_000))
    clients: list[Client] = []
    radius: list[RadiusPeer] = []
    try:
        await asyncio.to_thread(daemon.start)
        for peer in range(PEERS):
            clients.append(
                await connect("127.0.0.1", daemon.diameter_port, f"load{peer}.test.example")
            )
        closes = [trace_closes(c) for c in clients]
        for _ in range(nases):
            radius.append(await RadiusPeer("127.0.0.1", daemon.auth_port, daemon.acct_port).open())
        ledger = Ledger()
        drivers = [
            asyncio.ensure_future(drive_diameter(c, i, ledger)) for i, c in enumerate(clients)
        ] + [asyncio.ensure_future(drive_radius(n, i, ledger)) for i, n in enumerate(radius)]

        await wait_until_async(
            lambda: ledger.finished >= CALLS_BEFORE_SIGTERM or any(d.done() for d in drivers),
            "the load to get under way",
        )
        assert not any(d.done() for d in drivers), [d.exception() for d in drivers if d.done()]
        signalled = ledger.signalled = time.monotonic()
        daemon.signal()
        finished_before = ledger.finished
        await asyncio.wait_for(asyncio.gather(*drivers), EXIT_WITHIN_S)
        status = await asyncio.to_thread(daemon.wait, EXIT_WITHIN_S)
        took = time.monotonic() - signalled
        assert status == 0, daemon.log.read_text()[-3000:]
        assert took < EXIT_WITHIN_S
        events = daemon.log_events()
        assert events[-1]["event"] == "stopped", events[-3:]
    finally:
        for client in clients:
            client.writer.close()
            if client._task is not None:
                client._task.cancel()
        for nas in radius:
            nas.close()
        await asyncio.to_thread(daemon.kill)

    # Every peer was told with a DPR, answered it, and its connection was closed by ocsd.
    for peer, (client, closed) in enumerate(zip(clients, closes, strict=True)):
        assert closed == [
            PeerClosed(CloseReason.REMOTE_DISCONNECT, "DPR received", DisconnectCause.REBOOTING)
        ], (peer, closed)
        assert client._task is not None and client._task.done()
    server_closes = [e for e in events if e["event"] == "peer closed"]
    assert len(server_closes) == PEERS
    assert all(e["reason"] == "local-disconnect" for e in server_closes), server_closes
    # A request goes unanswered only when it crossed the DPR: at most one per peer.
    assert len({peer for peer, _, _ in ledger.unanswered}) == len(ledger.unanswered)
    # The load was cut in the middle: calls finished after the signal or were refused, and
    # refused (3004) only once shutdown had started.
    assert ledger.finished > finished_before or ledger.busy_after is not None
    assert ledger.busy_after is None or ledger.busy_after >= signalled

    # The records: what the daemon's writer left queued goes in now.
    await daemon.acli("cdr-writer", "--until-empty")
    with sqlite3.connect(daemon.data / "ocsd.sqlite3") as db:
        rows = db.execute("SELECT session_id, debited_micros FROM cdrs").fetchall()
    per_call = collections.Counter(session for session, _ in rows)
    charged = ledger.charged()
    assert charged, "no call finished"
    missing = sorted(s for s in charged if per_call[s] == 0)
    assert not missing, f"{len(missing)} answered calls without a CDR: {missing[:5]}"
    twice = sorted(s for s, n in per_call.items() if n > 1)
    assert not twice, f"calls with more than one CDR: {twice[:5]}"
    strangers = sorted(set(per_call) - set(ledger.outcomes))
    assert not strangers, f"CDRs of calls nobody made: {strangers[:5]}"
    # The money moved is what the CDRs say, to the micro-unit.
    debited = sum(amount for _, amount in rows)
    assert debited > 0
    assert TOPUP_MICROS - await asyncio.to_thread(balance, daemon) == debited
    done = await asyncio.to_thread(daemon.run_cli, "account", "reconcile", "alice")
    assert done.returncode == 0, done.stdout + done.stderr


async def test_sigterm_during_diameter_load(tmp_path: Path) -> None:
    await run_load(tmp_path, nases=0)


async def test_sigterm_during_diameter_and_radius_accounting_load(tmp_path: Path) -> None:
    await run_load(tmp_path, nases=NASES)


async def test_a_second_sigterm_ends_a_slow_shutdown_at_once(tmp_path: Path) -> None:
    # A switch that stopped reading: our DPR gets no DPA, so a graceful stop waits for it.
    daemon = prepare(tmp_path, diameter=["dpa_timeout_s: 30"])
    client: Client | None = None
    try:
        await asyncio.to_thread(daemon.start)
        client = await connect("127.0.0.1", daemon.diameter_port)
        assert client._task is not None
        client._task.cancel()
        daemon.signal(signal.SIGTERM)
        await wait_until_async(lambda: daemon.events("shutting down"), "the first SIGTERM taken")
        await asyncio.sleep(1.0)
        assert daemon.process is not None and daemon.process.poll() is None, "not waiting"
        signalled = time.monotonic()
        daemon.signal(signal.SIGTERM)
        status = await asyncio.to_thread(daemon.wait, 10)
        assert status == 1 and time.monotonic() - signalled < 3
        assert daemon.events("forced exit")
    finally:
        if client is not None:
            client.writer.close()
        await asyncio.to_thread(daemon.kill)
