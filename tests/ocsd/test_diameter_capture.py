"""Wireshark reads a captured Diameter conversation with ocsd and finds nothing wrong with it.

The server runs in-process on a free port while tshark captures the loopback. The
conversation covers every kind of message ocsd sends: CEA, CCA for CCR-I/U/T and an event,
business refusals (5030) and protocol errors (5005 with Failed-AVP, 5014 echoing an AVP of a
bad length, 3001 with the E bit), ASR and RAR of ours, a DWR of ours (short watchdog) and the
DWA to the switch's, DPA to the switch's DPR and a DPR of ours at shutdown. tshark must
decode every message, mark none malformed and raise no expert info at warning or error
level: Wireshark checks the lengths and flags of every AVP against its own dictionary, so a
finding there is a bug in our encoding. The one expected finding is the deliberately broken
request and the offending AVP our answer must echo in Failed-AVP (RFC 6733 §7.1.5, 5014).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ocsd.diameter_server import DiameterPeerSettings, DiameterServer, DiameterSettings
from ocsd.metrics import Metrics
from protocols.diameter.avp import new_avp
from protocols.diameter.constants import (
    AvpCode,
    CcRequestType,
    CommandCode,
    RequestedAction,
    ResultCode,
)
from protocols.diameter.framing import FrameReader
from protocols.diameter.gy import encode_ccr
from protocols.diameter.message import Message, decode_message, encode_message
from tests.ocsd.diameter_client import CLIENT_HOST, CLIENT_REALM, Client, ccr, connect
from tests.ocsd.world import World, world_fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TSHARK = shutil.which("tshark")
INI, UPD, TRM, EVT = (
    CcRequestType.INITIAL_REQUEST,
    CcRequestType.UPDATE_REQUEST,
    CcRequestType.TERMINATION_REQUEST,
    CcRequestType.EVENT_REQUEST,
)
# Wireshark's expert severities (epan/proto.h PI_*): note 0x400000, warning 0x600000, error
# 0x800000. Notes are informational (e.g. "answer in frame N"); warnings and errors are not.
PI_WARN = 0x600000
_HEADER = struct.Struct("!II")


@dataclass(frozen=True)
class Frame:
    """One Diameter message seen on the client's side of the connection."""

    sent: bool
    command_code: int
    is_request: bool
    hop_by_hop_id: int
    data: bytes


@dataclass
class Tap:
    """Every message a test client sends and receives, and a way to wait for one."""

    frames: list[Frame] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, sent: bool, reader: FrameReader, data: bytes) -> None:
        for frame in reader.feed(data):
            flags_command = _HEADER.unpack_from(frame, 4)[0]
            hop_by_hop = _HEADER.unpack_from(frame, 12)[0]
            self.frames.append(
                Frame(sent, flags_command & 0xFFFFFF, bool(frame[4] & 0x80), hop_by_hop, frame)
            )
        self.arrived.set()

    async def wait_for(self, match: Callable[[Frame], bool], timeout_s: float = 5.0) -> Frame:
        async def first() -> Frame:
            while True:
                for frame in self.frames:
                    if match(frame):
                        return frame
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(first(), timeout_s)


def tap(client: Client, into: Tap) -> None:
    """Record what the client's peer receives and what its stream writer sends."""
    incoming, outgoing = FrameReader(1 << 20), FrameReader(1 << 20)
    receive, write = client.peer.receive_data, client.writer.write

    def receive_data(data: bytes, now: float) -> None:
        into.record(False, incoming, data)
        receive(data, now)

    def write_data(data: bytes | bytearray | memoryview) -> None:
        into.record(True, outgoing, bytes(data))
        write(data)

    client.peer.receive_data = receive_data  # type: ignore[method-assign]
    client.writer.write = write_data  # type: ignore[method-assign]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async for value in world_fixture("embedded", tmp_path):
        yield value


async def start_capture(port: int, capture: Path) -> asyncio.subprocess.Process:
    assert TSHARK is not None
    tshark = await asyncio.create_subprocess_exec(
        TSHARK,
        "-i",
        "lo",
        "-f",
        f"tcp port {port}",
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
    return tshark


async def read_capture(capture: Path, port: int) -> list[list[str]]:
    """One row per packet: command codes, R flags, hop-by-hop ids, malformed, expert info."""
    assert TSHARK is not None
    process = await asyncio.create_subprocess_exec(
        TSHARK,
        "-r",
        str(capture),
        "-d",
        f"tcp.port=={port},diameter",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-e",
        "diameter.cmd.code",
        "-e",
        "diameter.flags.request",
        "-e",
        "diameter.hopbyhopid",
        "-e",
        "_ws.malformed",
        "-e",
        "_ws.expert.severity",
        "-e",
        "_ws.expert.message",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return [line.split("\t") for line in out.decode().splitlines()]


def our_messages(frames: list[Frame]) -> list[tuple[int, bool]]:
    return sorted((f.command_code, f.is_request) for f in frames)


async def test_tshark_finds_nothing_wrong_in_a_captured_conversation(
    world: World, tmp_path: Path
) -> None:
    if TSHARK is None or os.geteuid() != 0:
        if os.environ.get("OCSD_REQUIRE_SERVICES") == "1":
            pytest.fail("tshark (run as root) is needed to capture on the loopback")
        pytest.skip("tshark as root is needed to capture on the loopback")
    await world.topup("alice", 1_000_000)
    port = free_port()
    capture = tmp_path / "diameter.pcap"
    tshark = await start_capture(port, capture)
    settings = DiameterSettings(
        port=port,
        peers=(DiameterPeerSettings(CLIENT_HOST, ("127.0.0.1",)),),
        # The shortest watchdog the peer accepts (Tw - jitter >= 4 s): a DWR of ours comes
        # 4-8 s after the last message.
        watchdog_interval_s=6.0,
    )
    server = DiameterServer(settings, world.service, Metrics())
    await server.start()
    frames = Tap()
    try:
        client = await connect("127.0.0.1", port)
        tap(client, frames)
        # A full call and an event.
        _, start = await client.ccr(ccr(INI, 0))
        assert start.result_code == ResultCode.DIAMETER_SUCCESS
        _, update = await client.ccr(ccr(UPD, 1, used=60))
        assert update.result_code == ResultCode.DIAMETER_SUCCESS
        _, debit = await client.ccr(
            ccr(EVT, 0, session="ev;1", requested=30, action=RequestedAction.DIRECT_DEBITING)
        )
        assert debit.result_code == ResultCode.DIAMETER_SUCCESS
        # Refusals: a business outcome, a missing AVP, a command ocsd does not serve.
        _, refused = await client.ccr(ccr(INI, 0, session="nobody;1", subscriber="999"))
        assert refused.result_code == ResultCode.DIAMETER_USER_UNKNOWN
        full = encode_ccr(ccr(INI, 0, session="broken;1"))
        missing = await client.send(
            full.replace(avps=tuple(a for a in full.avps if a.code != AvpCode.CC_REQUEST_NUMBER))
        )
        assert missing.result_code == ResultCode.DIAMETER_MISSING_AVP
        # An Unsigned32 AVP whose length says 10: 5014 with the AVP in Failed-AVP.
        wire = bytearray(encode_message(full.replace(hop_by_hop_id=0xBAD1, end_to_end_id=1)))
        offset = wire.index(struct.pack("!IBBBB", AvpCode.CC_REQUEST_NUMBER, 0x40, 0, 0, 12))
        wire[offset + 7] = 10
        client.writer.write(bytes(wire))
        bad_length = await frames.wait_for(lambda f: f.hop_by_hop_id == 0xBAD1 and not f.sent)
        assert decode_message(bad_length.data).result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
        str_request = Message(
            CommandCode.SESSION_TERMINATION,
            0xC0,
            4,
            0,
            0,
            (
                new_avp(AvpCode.SESSION_ID, "switch.test.example;1;1"),
                new_avp(AvpCode.ORIGIN_HOST, CLIENT_HOST),
                new_avp(AvpCode.ORIGIN_REALM, CLIENT_REALM),
                new_avp(AvpCode.DESTINATION_REALM, "localdomain"),
                new_avp(AvpCode.AUTH_APPLICATION_ID, 4),
                new_avp(AvpCode.TERMINATION_CAUSE, 1),
            ),
        )
        unsupported = await client.send(str_request)
        assert unsupported.result_code == ResultCode.DIAMETER_COMMAND_UNSUPPORTED
        assert unsupported.is_error
        # Requests of ours: ASR and RAR (the client answers 2001).
        assert await server.reauthorize_account("alice") == 1
        assert (
            await server.abort_session("switch.test.example;1;1", CLIENT_HOST, CLIENT_REALM)
            == ResultCode.DIAMETER_SUCCESS
        )
        _, stop = await client.ccr(ccr(TRM, 2, used=20, requested=None))
        assert stop.result_code == ResultCode.DIAMETER_SUCCESS
        # A DWR of ours once the connection is idle, and the DWA to the switch's own DWR.
        dwr = Message(
            CommandCode.DEVICE_WATCHDOG,
            0x80,
            0,
            0x5EED,
            0x5EED,
            (
                new_avp(AvpCode.ORIGIN_HOST, CLIENT_HOST),
                new_avp(AvpCode.ORIGIN_REALM, CLIENT_REALM),
            ),
        )
        client.writer.write(encode_message(dwr))
        await frames.wait_for(
            lambda f: (
                f.command_code == CommandCode.DEVICE_WATCHDOG
                and f.hop_by_hop_id == 0x5EED
                and not f.sent
            )
        )
        await frames.wait_for(
            lambda f: f.command_code == CommandCode.DEVICE_WATCHDOG and f.is_request and not f.sent,
            timeout_s=15,
        )
        # The switch disconnects (DPR/DPA); another is disconnected by us at shutdown.
        await client.close()
        other = await connect("127.0.0.1", port)
        tap(other, frames)
        server.stop_listening()
        await server.drain(2)
        await asyncio.wait_for(other.closed.wait(), 5)
        await other.close()
    finally:
        server.stop_listening()
        await server.close()
        await asyncio.sleep(0.5)  # let dumpcap write the last packets
        tshark.terminate()
        await tshark.wait()

    rows = await read_capture(capture, port)
    seen: list[tuple[int, bool]] = []
    for row in rows:
        codes, requests = row[0], row[1]
        if codes:
            flags = requests.split("|")
            seen.extend(
                (int(code), flag in ("1", "True"))
                for code, flag in zip(codes.split("|"), flags, strict=True)
            )
    # Both connections did CER/CEA before their tap was in place.
    handshakes = [
        (CommandCode.CAPABILITIES_EXCHANGE, True),
        (CommandCode.CAPABILITIES_EXCHANGE, False),
    ]
    expected = [*our_messages(frames.frames), *handshakes, *handshakes]
    assert sorted(seen) == sorted(expected), rows
    assert {code for code, _ in seen} >= {257, 258, 272, 274, 275, 280, 282}
    flagged = [
        row for row in rows if row[3] or any(s and int(s) >= PI_WARN for s in row[4].split("|"))
    ]
    # Only the deliberately broken request is flagged, and our 5014 answer to it: RFC 6733
    # §7.1.5 has the answer carry the offending AVP as received inside Failed-AVP, so
    # Wireshark sees the same bad length there. Nothing else may be flagged.
    assert [(row[0], int(row[2], 16)) for row in flagged] == [("272", 0xBAD1)] * 2, flagged
    assert all(row[5] == "Bad Unsigned32 Length (2)" for row in flagged), flagged
