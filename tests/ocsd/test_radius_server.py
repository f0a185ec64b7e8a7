"""The RADIUS server with FreeRADIUS's radclient as the client, and with bad input.

Money and CDRs are checked against hand-computed values (rates in ``tests/ocsd/world.py``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from balances.settings import DEFAULT_MAX_RECORD_QUEUE
from cdr_writer.record import CdrKind
from ocsd.metrics import Metrics
from ocsd.radius_server import RadiusClientSettings, RadiusServer, RadiusSettings
from protocols.radius.attribute import (
    Attribute,
    h323_attribute,
    integer_attribute,
    string_attribute,
)
from protocols.radius.packet import Code, decode_packet, encode_request
from tests.ocsd.live_daemon import FakeNas
from tests.ocsd.world import World, world_fixture

SECRET = "s3cret-for-tests"
RADCLIENT = shutil.which("radclient")


@pytest.fixture(
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param("redis", id="redis", marks=pytest.mark.integration),
    ]
)
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, max_record_queue: int
) -> AsyncIterator[World]:
    if request.param == "redis":
        request.getfixturevalue("redis_available")
    async for value in world_fixture(request.param, tmp_path, max_record_queue):
        yield value


@pytest.fixture
def max_record_queue() -> int:
    """The store's record queue bound (a test parametrizes it to make it small)."""
    return DEFAULT_MAX_RECORD_QUEUE


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def server(world: World) -> AsyncIterator[RadiusServer]:
    settings = RadiusSettings(
        listen="127.0.0.1",
        auth_port=free_udp_port(),
        acct_port=free_udp_port(),
        clients=(
            RadiusClientSettings(
                "127.0.0.1/32", SECRET, "nas-1", require_message_authenticator=False
            ),
        ),
    )
    radius = RadiusServer(settings, world.service, Metrics(), clock=world.clock)
    await radius.start()
    yield radius
    radius.stop_listening()
    await radius.drain(2)
    await radius.close()


async def radclient(
    server: RadiusServer, kind: str, attributes: str, secret: str = SECRET
) -> tuple[int, str]:
    if RADCLIENT is None:
        if os.environ.get("OCSD_REQUIRE_SERVICES") == "1":
            pytest.fail("radclient (freeradius-utils) is not installed")
        pytest.skip("radclient (freeradius-utils) is not installed")
    host, port = server.addresses["auth" if kind == "auth" else "acct"]
    process = await asyncio.create_subprocess_exec(
        RADCLIENT,
        "-x",
        "-r",
        "1",
        "-t",
        "2",
        f"{host}:{port}",
        kind,
        secret,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate(attributes.encode())
    return process.returncode or 0, out.decode()


def metric(server: RadiusServer, name: str, **labels: str) -> float:
    value = server.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


pytestmark = pytest.mark.integration


async def test_access_accept_with_the_time_the_balance_pays_for(
    world: World, server: RadiusServer
) -> None:
    await world.topup("alice", 25_000)
    code, out = await radclient(
        server,
        "auth",
        'User-Name = "alice", Called-Station-Id = "442071234567", '
        'h323-conf-id = "h323-conf-id=1 2 3 4"',
    )
    assert code == 0, out
    assert "Received Access-Accept" in out
    # 0.025 at 0.010/min pays two minutes.
    assert "Session-Timeout = 120" in out
    assert 'h323-credit-time = "h323-credit-time=120"' in out
    assert 'h323-return-code = "h323-return-code=0"' in out
    assert 'h323-credit-amount = "h323-credit-amount=0.025"' in out


@pytest.mark.parametrize(
    ("user", "to", "message", "return_code"),
    [
        pytest.param("nobody", "4420", "unknown account", 1, id="unknown"),
        pytest.param("mallory", "4420", "account suspended", 7, id="suspended"),
        pytest.param("alice", "4420", "insufficient credit", 12, id="no-credit"),
        pytest.param("alice", "8613800000000", "destination not allowed", 9, id="no-rate"),
    ],
)
async def test_access_reject_says_why(
    world: World, server: RadiusServer, user: str, to: str, message: str, return_code: int
) -> None:
    code, out = await radclient(server, "auth", f'User-Name = "{user}", Called-Station-Id = "{to}"')
    assert "Received Access-Reject" in out, out
    assert f'Reply-Message = "{message}"' in out
    assert f'h323-return-code = "h323-return-code={return_code}"' in out
    assert code != 0


async def test_an_emergency_call_is_accepted_without_a_limit_and_not_charged(
    world: World, server: RadiusServer
) -> None:
    # mallory is suspended and has no money: 112 still goes through, unmetered.
    call = 'User-Name = "mallory", Called-Station-Id = "112", Acct-Session-Id = "sos-1"'
    code, out = await radclient(server, "auth", call)
    assert code == 0 and "Received Access-Accept" in out, out
    assert "Session-Timeout" not in out and "h323-credit-time" not in out
    assert 'h323-return-code = "h323-return-code=0"' in out
    for attributes in (
        "Acct-Status-Type = Start",
        "Acct-Status-Type = Stop, Acct-Session-Time = 300",
    ):
        code, out = await radclient(server, "acct", f"{call}, {attributes}")
        assert code == 0 and "Received Accounting-Response" in out, out
    assert await world.cdrs() == []


async def test_a_full_call_start_interim_stop(world: World, server: RadiusServer) -> None:
    await world.topup("alice", 1_000_000)
    base = (
        'User-Name = "alice", Acct-Session-Id = "call-7", Called-Station-Id = "442071234567", '
        'Calling-Station-Id = "441632960001", '
        'h323-redirect-number = "h323-redirect-number=441632960099", '
    )
    for attributes in (
        "Acct-Status-Type = Start",
        "Acct-Status-Type = Interim-Update, Acct-Session-Time = 60",
        "Acct-Status-Type = Stop, Acct-Session-Time = 125, "
        'h323-disconnect-cause = "h323-disconnect-cause=10", '
        'Cisco-AVPair = "release-source=4"',
    ):
        code, out = await radclient(server, "acct", base + attributes)
        assert code == 0 and "Received Accounting-Response" in out, out
    # 125 s bills 180 s at 0.010/min.
    assert await world.balance("alice") == 970_000
    [(cdr, record)] = await world.cdrs()
    assert (cdr.kind, cdr.duration_s, cdr.billed_s, cdr.charge_micros) == (
        CdrKind.CALL,
        125,
        180,
        30_000,
    )
    # Cisco sends the Q.850 cause in hex; release-source 4: the called party hung up.
    assert (cdr.hangup_cause, cdr.q850_cause, cdr.hangup_side) == ("Q.850;cause=16", 16, "callee")
    assert cdr.diversion == "441632960099"
    assert cdr.peer == "nas-1" and cdr.protocol == "radius"
    assert record.amount_micros == 30_000
    # A later copy of the Stop (Acct-Delay-Time changed: a new authenticator) moves nothing.
    code, out = await radclient(
        server,
        "acct",
        base + "Acct-Status-Type = Stop, Acct-Session-Time = 125, Acct-Delay-Time = 30",
    )
    assert "Received Accounting-Response" in out
    assert await world.balance("alice") == 970_000
    assert len(await world.cdrs()) == 1


async def test_a_stop_replayed_hours_later_moves_no_money(
    world: World, server: RadiusServer
) -> None:
    await world.topup("alice", 1_000_000)
    base = 'User-Name = "alice", Acct-Session-Id = "call-8", Called-Station-Id = "442071234567", '
    for attributes in (
        "Acct-Status-Type = Start",
        "Acct-Status-Type = Stop, Acct-Session-Time = 125",
    ):
        _, out = await radclient(server, "acct", base + attributes)
        assert "Received Accounting-Response" in out, out
    assert await world.balance("alice") == 970_000
    # A proxy replays its detail file after an outage: the Stop again, hours later.
    for hours in (1, 30):
        world.clock.advance(hours * 3_600)
        await world.other_call_ends()
        _, out = await radclient(
            server,
            "acct",
            base + "Acct-Status-Type = Stop, Acct-Session-Time = 125, "
            f"Acct-Delay-Time = {hours * 3_600}",
        )
        assert "Received Accounting-Response" in out, out
    assert await world.balance("alice") == 970_000
    assert len(await world.cdrs_of("alice")) == 1


async def test_a_detail_file_replayed_a_day_later_moves_no_money(
    world: World, server: RadiusServer
) -> None:
    await world.topup("alice", 1_000_000)
    base = 'User-Name = "alice", Acct-Session-Id = "call-10", Called-Station-Id = "442071234567", '
    records = (
        "Acct-Status-Type = Start",
        "Acct-Status-Type = Interim-Update, Acct-Session-Time = 60",
        "Acct-Status-Type = Stop, Acct-Session-Time = 125",
    )
    for attributes in records:
        _, out = await radclient(server, "acct", base + attributes)
        assert "Received Accounting-Response" in out, out
    assert await world.balance("alice") == 970_000
    # The proxy's detail file, Start to Stop, replayed 30 hours later (the proxy adds the
    # time the packets waited to Acct-Delay-Time).
    world.clock.advance(30 * 3_600)
    await world.other_call_ends()
    for attributes in records:
        _, out = await radclient(server, "acct", base + attributes + ", Acct-Delay-Time = 108000")
        assert "Received Accounting-Response" in out, out
    assert await world.balance("alice") == 970_000
    assert len(await world.cdrs_of("alice")) == 1


async def test_a_late_start_and_stop_of_an_unseen_call_are_charged_once(
    world: World, server: RadiusServer
) -> None:
    await world.topup("alice", 1_000_000)
    base = 'User-Name = "alice", Acct-Session-Id = "call-11", Called-Station-Id = "442071234567", '
    for attributes in (
        "Acct-Status-Type = Start",
        "Acct-Status-Type = Stop, Acct-Session-Time = 125",
    ):
        _, out = await radclient(server, "acct", base + attributes + ", Acct-Delay-Time = 7200")
        assert "Received Accounting-Response" in out, out
    assert await world.balance("alice") == 970_000
    [(cdr, _)] = await world.cdrs()
    assert "no_start" in cdr.flags and cdr.duration_s == 125


async def test_a_late_stop_after_the_reaper_moves_no_money(
    world: World, server: RadiusServer
) -> None:
    await world.topup("alice", 1_000_000)
    base = 'User-Name = "alice", Acct-Session-Id = "call-9", Called-Station-Id = "442071234567", '
    for attributes in (
        "Acct-Status-Type = Start",
        "Acct-Status-Type = Interim-Update, Acct-Session-Time = 60",
    ):
        _, out = await radclient(server, "acct", base + attributes)
        assert "Received Accounting-Response" in out, out
    world.clock.advance(4 * 3_600)
    assert await world.service.reap() == 1
    assert await world.balance("alice") == 990_000
    # The NAS's Stop was lost on the way and comes from its buffer an hour later: the call
    # was closed (and charged for what it reported) by the reaper; the Stop is answered and
    # logged, and moves nothing.
    world.clock.advance(3_600)
    _, out = await radclient(
        server,
        "acct",
        base + "Acct-Status-Type = Stop, Acct-Session-Time = 900, Acct-Delay-Time = 3600",
    )
    assert "Received Accounting-Response" in out, out
    assert await world.balance("alice") == 990_000
    [(cdr, _)] = await world.cdrs()
    assert cdr.kind is CdrKind.REAPED
    assert metric(server, "ocsd_denials_total", protocol="radius", reason="unknown_session") == 1


async def test_authorize_then_account_is_one_session(world: World, server: RadiusServer) -> None:
    await world.topup("alice", 1_000_000)
    conf = 'h323-conf-id = "h323-conf-id=AA BB CC DD"'
    _, out = await radclient(
        server, "auth", f'User-Name = "alice", Called-Station-Id = "33123456", {conf}'
    )
    assert "Access-Accept" in out
    for attributes in (
        "Acct-Status-Type = Start",
        "Acct-Status-Type = Stop, Acct-Session-Time = 61",
    ):
        _, out = await radclient(
            server,
            "acct",
            f'User-Name = "alice", Acct-Session-Id = "x", Called-Station-Id = "33123456", '
            f"{conf}, {attributes}",
        )
        assert "Accounting-Response" in out
    # France 1/1 at 0.020/min: 61 s cost 0.020333.. -> 0.020334 (rounded up).
    assert await world.balance("alice") == 1_000_000 - 20_334
    assert len(await world.cdrs()) == 1


async def test_a_stop_without_start_is_charged_once(world: World, server: RadiusServer) -> None:
    await world.topup("alice", 1_000_000)
    stop = (
        'User-Name = "alice", Acct-Session-Id = "lost-start", Called-Station-Id = "4420", '
        "Acct-Status-Type = Stop, Acct-Session-Time = 30"
    )
    for delay in ("", ", Acct-Delay-Time = 5"):
        _, out = await radclient(server, "acct", stop + delay)
        assert "Accounting-Response" in out
    assert await world.balance("alice") == 990_000
    [(cdr, _)] = await world.cdrs()
    assert "no_start" in cdr.flags


async def test_accounting_on_closes_the_nas_sessions(world: World, server: RadiusServer) -> None:
    await world.topup("alice", 1_000_000)
    _, out = await radclient(
        server,
        "acct",
        'User-Name = "alice", Acct-Session-Id = "c1", Called-Station-Id = "4420", '
        "Acct-Status-Type = Start",
    )
    assert "Accounting-Response" in out
    _, out = await radclient(server, "acct", "Acct-Status-Type = Accounting-On")
    assert "Accounting-Response" in out
    [(cdr, _)] = await world.cdrs()
    assert cdr.hangup_cause == "nas restart"


async def test_accounting_on_ends_the_sessions_another_worker_opened(
    world: World, server: RadiusServer
) -> None:
    await world.topup("alice", 1_000_000)
    # The Start reaches one worker, the NAS's Accounting-On after its reboot another one:
    # same store, a charging service that never saw the session.
    other = RadiusServer(server.settings, world.new_service(), Metrics(), clock=world.clock)
    start = (
        'User-Name = "alice", Acct-Session-Id = "c2", Called-Station-Id = "4420", '
        "Acct-Status-Type = Start"
    )
    _, out = await radclient(server, "acct", start)
    assert "Accounting-Response" in out
    world.clock.advance(90)
    _, out = await radclient(
        server, "acct", start.replace("Start", "Interim-Update") + ", Acct-Session-Time = 90"
    )
    assert "Accounting-Response" in out
    world.clock.advance(30)
    await other._close_nas("nas-1", "nas restart")
    [(cdr, _)] = await world.cdrs()
    assert cdr.session_id.endswith(":c2") and cdr.hangup_cause == "nas restart"
    # What the NAS reported is charged (90 s, billed in whole minutes at 0.010/min: 0.020);
    # the rest of the hold is freed.
    assert await world.balance("alice") == 1_000_000 - 20_000
    assert not await world.service.store.open_sessions(10)


@pytest.fixture
async def nas_server(world: World) -> AsyncIterator[tuple[RadiusServer, FakeNas]]:
    """A server whose NAS takes Disconnect-Requests (a test can see none was sent)."""
    nas = await FakeNas(secret=SECRET.encode()).open()
    settings = RadiusSettings(
        listen="127.0.0.1",
        auth_port=free_udp_port(),
        acct_port=free_udp_port(),
        clients=(
            RadiusClientSettings(
                "127.0.0.1/32",
                SECRET,
                "nas-1",
                require_message_authenticator=False,
                disconnect_port=nas.port,
            ),
        ),
    )
    server = RadiusServer(settings, world.service, Metrics(), clock=world.clock)
    await server.start()
    try:
        yield server, nas
    finally:
        server.stop_listening()
        await server.drain(2)
        await server.close()
        nas.close()


async def test_a_call_whose_money_runs_out_is_disconnected(
    world: World, nas_server: tuple[RadiusServer, FakeNas]
) -> None:
    server, nas = nas_server
    # 0.025 pays for two minutes at 0.010/min (60/60).
    await world.topup("alice", 25_000)
    call = (
        'User-Name = "alice", Called-Station-Id = "442071234567", '
        'h323-conf-id = "h323-conf-id=5 6 7 8", Acct-Session-Id = "money-1"'
    )
    _, out = await radclient(server, "auth", call)
    assert "Session-Timeout = 120" in out
    _, out = await radclient(server, "acct", call + ", Acct-Status-Type = Start")
    assert "Accounting-Response" in out
    assert not nas.requests
    # The switch did not cut the call at Session-Timeout: its next interim finds the
    # money gone, and the NAS is asked to end the call.
    world.clock.advance(130)
    _, out = await radclient(
        server, "acct", call + ", Acct-Status-Type = Interim-Update, Acct-Session-Time = 130"
    )
    assert "Accounting-Response" in out
    for _ in range(50):
        if nas.requests:
            break
        await asyncio.sleep(0.05)
    [request] = nas.requests
    assert nas.values(request, "Acct-Session-Id") == ["money-1"]
    assert nas.values(request, "User-Name") == ["alice"]
    assert metric(server, "ocsd_denials_total", protocol="radius", reason="credit_exhausted") == 1


async def test_wrong_secret_and_unknown_client_are_dropped(
    world: World, server: RadiusServer
) -> None:
    _, out = await radclient(
        server, "acct", 'User-Name = "alice", Acct-Status-Type = Start', secret="wrong"
    )
    assert "No reply" in out
    assert (
        metric(server, "ocsd_drops_total", protocol="radius", reason="bad_request_authenticator")
        >= 1
    )


async def _send_raw(server: RadiusServer, kind: str, data: bytes) -> bytes | None:
    host, port = server.addresses[kind]
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect((host, port))
    try:
        await loop.sock_sendall(sock, data)
        try:
            return await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.5)
        except TimeoutError:
            return None
    finally:
        sock.close()


async def _send_many(server: RadiusServer, kind: str, data: bytes, count: int) -> list[bytes]:
    """Send the same datagram ``count`` times from one socket (a client retransmitting)."""
    host, port = server.addresses[kind]
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect((host, port))
    replies: list[bytes] = []
    try:
        for _ in range(count):
            await loop.sock_sendall(sock, data)
        while True:
            try:
                replies.append(await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.5))
            except TimeoutError:
                return replies
    finally:
        sock.close()


def _accounting(status: int, session: str) -> bytes:
    return encode_request(
        Code.ACCOUNTING_REQUEST,
        7,
        [
            string_attribute(1, "alice"),
            integer_attribute(40, status),
            string_attribute(44, session),
            string_attribute(30, "4420"),
        ],
        SECRET.encode(),
    )


def _call_packet(code: Code, identifier: int, conf_id: str, *extra: Attribute) -> bytes:
    """A request of one call of alice's to London, keyed by its h323-conf-id."""
    attributes = [
        string_attribute(1, "alice"),
        string_attribute(30, "442071234567"),
        h323_attribute("h323-conf-id", conf_id),
        *extra,
    ]
    return encode_request(code, identifier, attributes, SECRET.encode())


async def _closed_call(world: World, server: RadiusServer, conf_id: str) -> None:
    """Authorize, start and stop a 61 s call (0.02), then let the duplicate window pass."""
    await world.topup("alice", 1_000_000)
    accept = await _send_raw(server, "auth", _call_packet(Code.ACCESS_REQUEST, 1, conf_id))
    assert accept is not None and decode_packet(accept).code is Code.ACCESS_ACCEPT
    start = _call_packet(Code.ACCOUNTING_REQUEST, 2, conf_id, integer_attribute(40, 1))
    stop = _call_packet(
        Code.ACCOUNTING_REQUEST, 3, conf_id, integer_attribute(40, 2), integer_attribute(46, 61)
    )
    for packet in (start, stop):
        reply = await _send_raw(server, "acct", packet)
        assert reply is not None and decode_packet(reply).code is Code.ACCOUNTING_RESPONSE
    assert await world.balance("alice") == 980_000
    world.clock.advance(world.service.settings.duplicate_window_s + 3_600)
    await world.other_call_ends()


async def _nothing_held_and_one_cdr(world: World) -> None:
    state = await world.store.get_account("alice")
    assert state is not None
    assert (state.balance_micros, state.held_micros, state.sessions) == (980_000, 0, 0)
    world.clock.advance(4 * 3_600)
    assert await world.service.reap() == 0
    assert len(await world.cdrs_of("alice")) == 1


async def test_a_start_replayed_after_its_call_closed_opens_nothing(
    world: World, nas_server: tuple[RadiusServer, FakeNas]
) -> None:
    server, nas = nas_server
    await _closed_call(world, server, "h323-conf-id=AB 01")
    # The Start again, as a proxy replays it from its detail file (the NAS had retransmitted
    # it once: Acct-Delay-Time 3 s): answered, since the record is stored; nothing moves.
    start = _call_packet(
        Code.ACCOUNTING_REQUEST,
        4,
        "h323-conf-id=AB 01",
        integer_attribute(40, 1),
        integer_attribute(41, 3),
    )
    reply = await _send_raw(server, "acct", start)
    assert reply is not None and decode_packet(reply).code is Code.ACCOUNTING_RESPONSE
    result = {"protocol": "radius", "command": "accounting", "result": "closed_session"}
    assert metric(server, "ocsd_requests_total", **result) == 1
    assert metric(server, "ocsd_denials_total", protocol="radius", reason="unknown_session") == 0
    await _nothing_held_and_one_cdr(world)
    assert not nas.requests, "no call is left to disconnect"


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        pytest.param(lambda d: d[:15], "truncated", id="truncated"),
        pytest.param(
            lambda d: d[:2] + (19).to_bytes(2, "big") + d[4:], "bad_length", id="length-below-20"
        ),
        pytest.param(lambda d: d[:20] + b"\x01\x01" + d[22:], "bad_attribute", id="bad-attribute"),
        pytest.param(
            lambda d: d[:-1] + bytes([d[-1] ^ 1]), "bad_request_authenticator", id="tampered"
        ),
        pytest.param(lambda d: d + bytes(5000), "too_large", id="oversized"),
        pytest.param(lambda d: bytes([99]) + d[1:], "unknown_code", id="unknown-code"),
    ],
)
async def test_bad_packets_are_dropped_with_a_reason_and_others_still_answered(
    world: World, server: RadiusServer, mangle: object, reason: str
) -> None:
    good = _accounting(1, "fine")
    bad = mangle(good)  # type: ignore[operator]
    before = metric(server, "ocsd_drops_total", protocol="radius", reason=reason)
    assert await _send_raw(server, "acct", bad) is None
    assert metric(server, "ocsd_drops_total", protocol="radius", reason=reason) == before + 1
    await world.topup("alice", 100_000)
    reply = await _send_raw(server, "acct", good)
    assert reply is not None and decode_packet(reply).code is Code.ACCOUNTING_RESPONSE


@pytest.mark.parametrize("max_record_queue", [pytest.param(1, id="bound-1")])
async def test_a_full_record_queue_leaves_new_calls_unanswered_and_ends_calls_up(
    world: World, server: RadiusServer
) -> None:
    await world.topup("alice", 1_000_000)
    await world.cdrs()
    reply = await _send_raw(server, "acct", _accounting(1, "up"))
    assert reply is not None and decode_packet(reply).code is Code.ACCOUNTING_RESPONSE
    await world.topup("alice", 1_000)  # its record waits: the queue is full
    before = metric(server, "ocsd_drops_total", protocol="radius", reason="backend_unavailable")
    assert await _send_raw(server, "acct", _accounting(1, "new")) is None
    after = metric(server, "ocsd_drops_total", protocol="radius", reason="backend_unavailable")
    assert after == before + 1
    stop = encode_request(
        Code.ACCOUNTING_REQUEST,
        8,
        [
            string_attribute(1, "alice"),
            integer_attribute(40, 2),
            string_attribute(44, "up"),
            string_attribute(30, "4420"),
            integer_attribute(46, 61),
        ],
        SECRET.encode(),
    )
    reply = await _send_raw(server, "acct", stop)
    assert reply is not None and decode_packet(reply).code is Code.ACCOUNTING_RESPONSE
    assert [cdr.session_id for cdr, _ in await world.cdrs()] == ["radius:127.0.0.1:up"]
    assert await world.balance("alice") == 1_001_000 - 20_000


async def test_octets_past_the_length_field_are_padding(world: World, server: RadiusServer) -> None:
    reply = await _send_raw(server, "acct", _accounting(1, "padded") + b"\x01\x00junk")
    assert reply is not None and decode_packet(reply).code is Code.ACCOUNTING_RESPONSE


async def test_a_flood_of_retransmissions_moves_money_once(
    world: World, server: RadiusServer
) -> None:
    await world.topup("alice", 1_000_000)
    start = _accounting(1, "flood")
    answered = await _send_many(server, "acct", start, 50)
    assert answered and all(r == answered[0] for r in answered)
    # Copies from other ports are other requests to RFC 5080, the same one to the session.
    others = await asyncio.gather(*(_send_raw(server, "acct", start) for _ in range(10)))
    assert all(r is not None for r in others)
    stop = encode_request(
        Code.ACCOUNTING_REQUEST,
        8,
        [
            string_attribute(1, "alice"),
            integer_attribute(40, 2),
            string_attribute(44, "flood"),
            string_attribute(30, "4420"),
            integer_attribute(46, 61),
        ],
        SECRET.encode(),
    )
    assert await _send_many(server, "acct", stop, 50)
    assert await world.balance("alice") == 980_000
    assert len(await world.cdrs()) == 1
    assert metric(server, "ocsd_drops_total", protocol="radius", reason="retransmission") >= 1


TSHARK = shutil.which("tshark")


async def test_tshark_validates_every_reply_of_a_captured_call(
    world: World, server: RadiusServer, tmp_path: Path
) -> None:
    if TSHARK is None or os.geteuid() != 0:
        if os.environ.get("OCSD_REQUIRE_SERVICES") == "1":
            pytest.fail("tshark (run as root) is needed to capture on the loopback")
        pytest.skip("tshark as root is needed to capture on the loopback")
    await world.topup("alice", 1_000_000)
    ports = [server.addresses["auth"][1], server.addresses["acct"][1]]
    capture = tmp_path / "radius.pcap"
    tshark = await asyncio.create_subprocess_exec(
        TSHARK,
        "-i",
        "lo",
        "-f",
        " or ".join(f"udp port {p}" for p in ports),
        "-w",
        str(capture),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert tshark.stderr is not None
    while b"Capturing on" not in await asyncio.wait_for(tshark.stderr.readline(), 10):
        pass
    # dumpcap reports before its filter is attached; it gives no later signal.
    await asyncio.sleep(1.0)
    base = 'User-Name = "alice", Called-Station-Id = "442071234567"'
    await radclient(server, "auth", base + ', h323-conf-id = "h323-conf-id=CAFE"')
    await radclient(server, "auth", 'User-Name = "nobody", Called-Station-Id = "4420"')
    for status in ("Start", "Stop, Acct-Session-Time = 42"):
        await radclient(
            server,
            "acct",
            base + f', h323-conf-id = "h323-conf-id=CAFE", Acct-Session-Id = "t1", '
            f"Acct-Status-Type = {status}",
        )
    await asyncio.sleep(0.5)
    tshark.terminate()
    await tshark.wait()
    process = await asyncio.create_subprocess_exec(
        TSHARK,
        "-r",
        str(capture),
        "-o",
        f"radius.shared_secret:{SECRET}",
        "-o",
        "radius.validate_authenticator:TRUE",
        "-d",
        f"udp.port=={ports[0]},radius",
        "-d",
        f"udp.port=={ports[1]},radius",
        "-T",
        "fields",
        "-e",
        "radius.code",
        "-e",
        "radius.authenticator.valid",
        "-e",
        "_ws.malformed",
        "-e",
        "_ws.expert.severity",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    rows = [line.split("\t") for line in out.decode().splitlines() if line.strip()]
    codes = [row[0] for row in rows]
    assert codes.count("1") == 2 and codes.count("4") == 2, rows
    replies = [row for row in rows if row[0] in ("2", "3", "5")]
    assert sorted(r[0] for r in replies) == ["2", "3", "5", "5"]
    assert all(row[1] == "1" for row in replies), rows
    assert all(row[2] == "" for row in rows), rows
    # Expert severities: Wireshark's PI_WARN is 0x600000 and PI_ERROR 0x800000; notes and
    # chats (below) are fine.
    assert not any(
        severity and int(severity) >= 0x600000 for row in rows for severity in row[3].split(",")
    ), rows


async def test_a_request_past_its_deadline_is_dropped_and_the_server_goes_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = RadiusSettings(
        listen="127.0.0.1",
        auth_port=0,
        acct_port=free_udp_port(),
        clients=(RadiusClientSettings("127.0.0.1/32", SECRET, "nas-1"),),
        answer_deadline_s=0.05,
    )
    radius = RadiusServer(settings, world.service, Metrics(), clock=world.clock)
    await radius.start()
    handle = world.service.handle

    async def hang_once(request: object) -> object:
        monkeypatch.setattr(world.service, "handle", handle)
        await asyncio.sleep(3600)
        raise AssertionError("not cancelled")

    try:
        await world.topup("alice", 100_000)
        monkeypatch.setattr(world.service, "handle", hang_once)
        assert await _send_raw(radius, "acct", _accounting(1, "slow")) is None
        assert metric(radius, "ocsd_drops_total", protocol="radius", reason="deadline") == 1
        # The NAS retransmits: no longer in progress, it is worked on again and answered.
        reply = await _send_raw(radius, "acct", _accounting(1, "slow"))
        assert reply is not None and decode_packet(reply).code is Code.ACCOUNTING_RESPONSE
    finally:
        radius.stop_listening()
        await radius.drain(2)
        await radius.close()


SETUP = "10:00:00.000 UTC Mon Nov 2 2026"


@pytest.mark.parametrize(
    ("avpairs", "setup", "pdd"),
    [
        pytest.param({"ocsd-pdd-ms": "1800"}, None, "1800", id="reported"),
        pytest.param(
            {"ocsd-pdd-ms": "950", "alert-timepoint": "10:00:04.000 UTC Mon Nov 2 2026"},
            SETUP,
            "950",
            id="reported-wins",
        ),
        pytest.param(
            {"alert-timepoint": "10:00:02.350 UTC Mon Nov 2 2026"}, SETUP, "2350", id="cisco"
        ),
        pytest.param(
            {"alert-timepoint": "10:00:02.350 UTC Mon Nov 2 2026"}, None, None, id="no-setup"
        ),
        pytest.param(
            {"alert-timepoint": "09:59:59.000 UTC Mon Nov 2 2026"}, SETUP, None, id="before-setup"
        ),
        pytest.param(
            {"alert-timepoint": "11:00:00.000 UTC Mon Nov 2 2026"}, SETUP, None, id="clock-error"
        ),
        pytest.param({"alert-timepoint": "soon"}, SETUP, None, id="garbage"),
        pytest.param({"ocsd-pdd-ms": "-5"}, None, None, id="negative"),
    ],
)
def test_the_post_dial_delay_a_switch_reports(
    avpairs: dict[str, str], setup: str | None, pdd: str | None
) -> None:
    from ocsd.radius_server import _route_report
    from protocols.radius.h323 import parse_h323_time

    report = _route_report(avpairs, parse_h323_time(setup) if setup else None)
    assert report.get("route_pdd_ms") == pdd
