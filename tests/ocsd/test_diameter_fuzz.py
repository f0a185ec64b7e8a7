"""Hypothesis against the live Diameter server over TCP: random and mutated frames.

The server (production loop: uvloop when installed) runs in a thread of its own on the embedded
store; hypothesis drives plain blocking sockets. Each example opens a connection, completes
CER/CEA, sends the fuzzed octets and then a DWR probe. The property: within a bound, the
server either answers every request among what was sent (the probe included, unless a
length field swallowed it) with messages that decode, or closes the connection. A half
message it waits ``stall_timeout_s`` for, a framing error, an answer it discards: all end one
of those two ways. Afterwards the server must still serve a fresh peer
(CER/CEA and a CCR-I answered 2001), and nothing may be left behind: no task in the server's
task set, no entry in ``server.connections``, no more charging sessions than CCRs sent, the
test process's file descriptors back to their count, and no exception ever reached the
server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocsd.daemon import new_event_loop
from ocsd.diameter_server import DiameterPeerSettings, DiameterServer, DiameterSettings
from ocsd.metrics import Metrics
from protocols.diameter.avp import Avp, new_avp
from protocols.diameter.constants import (
    AvpCode,
    CcRequestType,
    CommandCode,
    RequestedAction,
    ResultCode,
)
from protocols.diameter.errors import DiameterError
from protocols.diameter.framing import FrameReader
from protocols.diameter.gy import decode_cca, encode_ccr
from protocols.diameter.message import LocalIdentity, Message, decode_message, encode_message
from protocols.diameter.peer import AllowedPeer, Peer, PeerConfig, PeerRole
from tests.ocsd.diameter_client import CLIENT_HOST, CLIENT_REALM, ccr
from tests.ocsd.world import World, make_world

T = TypeVar("T")
STALL_S = 0.1
BOUND_S = 3.0  # stall timeout, charging and scheduling on a loaded CI machine, generously
PROBE_HOP_BY_HOP = 0xD0D0D0D0
MAX_MESSAGE_BYTES = 65_536  # DiameterSettings' default, which the server below keeps
_WORD = struct.Struct("!I")


# --- the server in a thread ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """A DiameterServer on its own event loop thread; call() runs a coroutine there."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.loop_errors: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: DiameterServer | None = None
        self.world: World | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="diameter-fuzz", daemon=True)

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.address is not None
        return self.server.address[1]

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(self._main())
        except BaseException as exc:  # reported by stop()
            self.failure = exc
            self.ready.set()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        loop.set_exception_handler(lambda _, context: self.loop_errors.append(context))
        self._stop = asyncio.Event()
        world = await make_world("embedded", self.tmp_path)
        self.world = world
        await world.topup("alice", 10**12)
        settings = DiameterSettings(
            port=free_port(),
            peers=(DiameterPeerSettings("*", ("127.0.0.1",)),),
            stall_timeout_s=STALL_S,
            capabilities_timeout_s=2.0,
            max_in_flight_per_peer=16,
            request_deadline_s=1.0,
        )
        self.server = DiameterServer(settings, world.service, Metrics())
        await self.server.start()
        self.ready.set()
        try:
            await self._stop.wait()
        finally:
            self.server.stop_listening()
            await self.server.drain(2)
            await self.server.close()
            await world.store.close()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 10.0) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(30)
        if self.failure is not None:
            raise self.failure
        assert self.server is not None, "the server did not start"

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)
        if self.failure is not None:
            raise self.failure


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path)
    server.start()
    yield server
    server.stop()


# --- a blocking client -----------------------------------------------------------------------


def _capabilities_request() -> bytes:
    identity = LocalIdentity(
        origin_host=CLIENT_HOST,
        origin_realm=CLIENT_REALM,
        host_ip_addresses=(ipaddress.ip_address("127.0.0.1"),),
        product_name="fuzz-switch",
    )
    peer = Peer(
        PeerConfig(identity=identity, allowed_peers=(AllowedPeer.of("*", "127.0.0.0/8"),)),
        PeerRole.INITIATOR,
        "127.0.0.1",
        rng=random.Random(7),
    )
    peer.start(0.0)
    return peer.data_to_send()


CER = _capabilities_request()


def _dwr(hop_by_hop: int) -> bytes:
    return encode_message(
        Message(
            CommandCode.DEVICE_WATCHDOG,
            0x80,
            0,
            hop_by_hop,
            hop_by_hop,
            (
                new_avp(AvpCode.ORIGIN_HOST, CLIENT_HOST),
                new_avp(AvpCode.ORIGIN_REALM, CLIENT_REALM),
            ),
        )
    )


PROBE = _dwr(PROBE_HOP_BY_HOP)


def read_until(
    sock: socket.socket, done: Callable[[bytes], bool], bound_s: float
) -> tuple[list[bytes], bool]:
    """Frames read until one satisfies ``done``, and whether the connection closed first.

    Fails the example if neither happens within ``bound_s``.
    """
    reader = FrameReader(1 << 24)
    frames: list[bytes] = []
    deadline = time.monotonic() + bound_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"neither an answer nor a close within {bound_s} s; got {frames!r}")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return frames, True
        except TimeoutError:
            continue
        if not data:
            return frames, True
        for frame in reader.feed(data):
            frames.append(frame)
            if done(frame):
                return frames, False


def open_peer(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND_S)
    sock.sendall(CER)
    frames, closed = read_until(sock, lambda f: _command(f) == CommandCode.CAPABILITIES_EXCHANGE, 5)
    assert not closed, "CER refused"
    assert decode_message(frames[-1]).result_code == ResultCode.DIAMETER_SUCCESS
    return sock


def _command(frame: bytes) -> int:
    return int(_WORD.unpack_from(frame, 4)[0]) & 0xFFFFFF


def _hop_by_hop(frame: bytes) -> int:
    value: int = _WORD.unpack_from(frame, 12)[0]
    return value


def exchange(port: int, payload: bytes) -> None:
    """The property, for one payload sent after a valid CER.

    The server cuts the stream as our FrameReader does. If the payload and the probe frame
    cleanly, every request among the frames (usually the probe last; a payload whose length
    field runs on swallows it) must be answered, or the peer dropped. If a frame is left
    half-sent or the framing fails, the peer must be dropped (stall timeout, framing error).
    Answers to answers are not expected: they are discarded.
    """
    reader = FrameReader(MAX_MESSAGE_BYTES)
    try:
        frames_sent = reader.feed(payload + PROBE)
        requests: int | None = sum(1 for f in frames_sent if f[4] & 0x80)
    except DiameterError:
        requests = None
    if reader.pending:
        requests = None
    answers = 0

    def all_answered(frame: bytes) -> bool:
        nonlocal answers
        answers += not frame[4] & 0x80
        return requests is not None and answers >= requests

    with contextlib.closing(open_peer(port)) as sock:
        try:
            sock.sendall(payload)
            sock.sendall(PROBE)
        except (ConnectionResetError, BrokenPipeError):
            return  # dropped already
        frames, _closed = read_until(sock, all_answered, BOUND_S)
        for frame in frames:
            try:
                decode_message(frame)
            except DiameterError as exc:  # pragma: no cover - the failure being looked for
                pytest.fail(f"the server sent a message that does not decode: {exc}: {frame!r}")


# --- frames to mutate ------------------------------------------------------------------------

INI, UPD, TRM, EVT = (
    CcRequestType.INITIAL_REQUEST,
    CcRequestType.UPDATE_REQUEST,
    CcRequestType.TERMINATION_REQUEST,
    CcRequestType.EVENT_REQUEST,
)


def _request(message: Message) -> Message:
    return message.replace(hop_by_hop_id=0x1000, end_to_end_id=0x2000)


BASES: list[Message] = [
    _request(encode_ccr(ccr(INI, 0, session="fuzz;1"))),
    _request(encode_ccr(ccr(UPD, 1, session="fuzz;1", used=30))),
    _request(encode_ccr(ccr(TRM, 2, session="fuzz;1", used=30, requested=None))),
    _request(
        encode_ccr(
            ccr(EVT, 0, session="fuzz;ev", requested=10, action=RequestedAction.DIRECT_DEBITING)
        )
    ),
    decode_message(_dwr(0x1000)),
]


def _avp_headers(data: bytes, start: int, end: int, avps: tuple[Avp, ...]) -> list[int]:
    """Offsets of every AVP header, nested ones included (the message is well formed)."""
    offsets: list[int] = []
    pos = start
    for avp in avps:
        offsets.append(pos)
        word = _WORD.unpack_from(data, pos + 4)[0]
        length = word & 0xFFFFFF
        header = 12 if word >> 31 else 8
        if type(avp.value) is tuple:
            offsets.extend(_avp_headers(data, pos + header, pos + length, avp.value))
        pos += (length + 3) & ~3
    assert pos <= end
    return offsets


def _paths(avps: tuple[Avp, ...], prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for index, avp in enumerate(avps):
        out.append((*prefix, index))
        if type(avp.value) is tuple:
            out.extend(_paths(avp.value, (*prefix, index)))
    return out


def _edit(avps: tuple[Avp, ...], path: tuple[int, ...], duplicate: bool) -> tuple[Avp, ...]:
    index, rest = path[0], path[1:]
    if rest:
        avp = avps[index]
        assert type(avp.value) is tuple
        inner = _edit(avp.value, rest, duplicate)
        return (*avps[:index], avp._replace(value=inner), *avps[index + 1 :])
    if duplicate:
        return (*avps[: index + 1], avps[index], *avps[index + 1 :])
    return (*avps[:index], *avps[index + 1 :])


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A real CCR or DWR with AVPs duplicated or removed, then octets changed."""
    message = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(0, 2))):
        paths = _paths(message.avps)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        message = message.replace(avps=_edit(message.avps, path, draw(st.booleans())))
    data = bytearray(encode_message(message))
    headers = _avp_headers(bytes(data), 20, len(data), message.avps)
    for _ in range(draw(st.integers(0 if headers else 1, 3))):
        kind = draw(
            st.sampled_from(
                ["flip", "truncate", "truncate-fixed", "message-length", "avp-length", "append"]
            )
        )
        if kind == "flip" and data:
            bit = draw(st.integers(0, len(data) * 8 - 1))
            data[bit // 8] ^= 1 << (bit % 8)
        elif kind in ("truncate", "truncate-fixed"):
            data = data[: draw(st.integers(0, len(data)))]
            if kind == "truncate-fixed" and len(data) >= 4:
                _WORD.pack_into(data, 0, (data[0] << 24) | len(data))
        elif kind == "message-length" and len(data) >= 4:
            length = draw(
                st.one_of(
                    st.integers(0, 0xFFFFFF),
                    st.integers(max(0, len(data) - 16), len(data) + 16),
                )
            )
            _WORD.pack_into(data, 0, (data[0] << 24) | length)
        elif kind == "avp-length" and headers:
            at = draw(st.sampled_from(headers))
            if at + 8 <= len(data):
                length = draw(st.one_of(st.integers(0, 24), st.integers(0, 0xFFFFFF)))
                _WORD.pack_into(data, at + 4, (data[at + 4] << 24) | length)
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


@st.composite
def framed_garbage(draw: st.DrawFn) -> bytes:
    """A header that frames correctly around random octets (to get past the framing)."""
    body = draw(st.binary(max_size=512))
    body += bytes(-len(body) % 4) if draw(st.booleans()) else b""
    flags = draw(st.sampled_from([0x80, 0xC0, 0x00, 0x40, 0xA0, 0x90])) | draw(st.integers(0, 15))
    command = draw(st.sampled_from([257, 258, 272, 274, 275, 280, 282, 0, 0xFFFFFF]))
    application = draw(st.sampled_from([0, 4, 3, 0xFFFFFFFF]))
    header = struct.pack(
        "!IIIII", (1 << 24) | (20 + len(body)), (flags << 24) | command, application, 7, 7
    )
    return header + body


# --- the tests -------------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def a_call_still_works(live: LiveServer, session: str) -> None:
    with contextlib.closing(open_peer(live.port)) as sock:
        request = encode_ccr(ccr(INI, 0, session=session)).replace(
            hop_by_hop_id=0x4242, end_to_end_id=0x4242
        )
        sock.sendall(encode_message(request))
        frames, closed = read_until(sock, lambda f: _hop_by_hop(f) == 0x4242, BOUND_S)
        assert not closed
        assert decode_cca(decode_message(frames[-1])).result_code == ResultCode.DIAMETER_SUCCESS


def settle(live: LiveServer) -> tuple[int, int]:
    """Wait for the server to finish every connection and task; return (fds, sessions)."""

    async def state() -> tuple[int, int, int]:
        assert live.server is not None and live.world is not None
        # The charging service keeps its sessions in a private map; its size is the bound
        # this test is about (ocsd_open_sessions exports the same number).
        sessions = len(live.world.service._sessions)
        return len(live.server.tasks), len(live.server.connections), sessions

    deadline = time.monotonic() + 5
    while True:
        tasks, connections, sessions = live.call(state())
        if (tasks, connections) == (0, 0) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert (tasks, connections) == (0, 0), f"{tasks} tasks and {connections} connections left"
    return open_fds(), sessions


def nothing_left_behind(live: LiveServer, fds_before: int, ccrs_sent: int) -> None:
    fds, sessions = settle(live)
    assert sessions <= ccrs_sent
    assert fds == fds_before
    assert not live.loop_errors, live.loop_errors


# OCSD_FUZZ_EXAMPLES=5000 fuzzes longer, with fresh random examples each run; CI keeps the
# default: few examples, the same ones every run.
LONG_RUN = int(os.environ.get("OCSD_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=LONG_RUN or 120,
    deadline=None,
    derandomize=not LONG_RUN,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_mutated_frames_are_answered_or_dropped(live: LiveServer) -> None:
    a_call_still_works(live, "warm;1")
    fds_before, _ = settle(live)
    sent = 0

    @FUZZ
    @given(st.lists(mutated_frames(), min_size=1, max_size=3).map(b"".join))
    def example(payload: bytes) -> None:
        nonlocal sent
        sent += 1
        exchange(live.port, payload)

    example()
    a_call_still_works(live, "after;1")
    nothing_left_behind(live, fds_before, ccrs_sent=sent + 2)


def test_random_octets_are_answered_or_dropped(live: LiveServer) -> None:
    a_call_still_works(live, "warm;1")
    fds_before, _ = settle(live)
    sent = 0

    @settings(FUZZ, max_examples=LONG_RUN or 80)
    @given(st.one_of(st.binary(max_size=256), framed_garbage()))
    def example(payload: bytes) -> None:
        nonlocal sent
        sent += 1
        exchange(live.port, payload)

    example()
    a_call_still_works(live, "after;1")
    nothing_left_behind(live, fds_before, ccrs_sent=sent + 2)


def test_an_invalid_session_id_gets_an_answer_that_decodes(live: LiveServer) -> None:
    # Found by the fuzzing above: one flipped bit makes the Session-Id invalid UTF-8.
    request = bytearray(encode_message(BASES[0]))
    at = request.index(b"fuzz;1")
    request[at + 3] = 0xFA
    with contextlib.closing(open_peer(live.port)) as sock:
        sock.sendall(request)
        frames, closed = read_until(sock, lambda f: _hop_by_hop(f) == 0x1000, BOUND_S)
    assert not closed
    answer = decode_message(frames[-1])  # DiameterError 5004: Session-Id is not valid UTF-8
    assert answer.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE


def test_a_refused_ccr_with_a_malformed_repeated_avp_is_answered(live: LiveServer) -> None:
    # Found by the fuzzing above. The Gy view reads the first Origin-Host and tolerates the
    # repeat; the generic codec, which builds the Failed-AVP of a 5031, refuses the second.
    request = encode_ccr(ccr(INI, 0, session="fuzz;5031", called="tel:+8613800000000"))
    data = bytearray(encode_message(request.replace(hop_by_hop_id=0x5031, end_to_end_id=1)))
    data += struct.pack("!IBBBB", AvpCode.ORIGIN_HOST, 0x40, 0, 0, 9) + b"\xff\0\0\0"
    _WORD.pack_into(data, 0, (1 << 24) | len(data))
    with contextlib.closing(open_peer(live.port)) as sock:
        sock.sendall(data)
        frames, closed = read_until(sock, lambda f: _hop_by_hop(f) == 0x5031, BOUND_S)
    assert not closed
    assert decode_message(frames[-1]).result_code == ResultCode.DIAMETER_RATING_FAILED
    assert not live.loop_errors, live.loop_errors
