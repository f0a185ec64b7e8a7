"""Several workers on one Redis: requests reach the worker a peer is connected to, and a
killed worker's peers carry on."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest

from ocsd.control_sink import ControlBus, ControlMessage
from protocols.diameter.constants import CcRequestType, CommandCode, ResultCode
from tests.ocsd.diameter_client import Client, ccr, connect
from tests.ocsd.live_daemon import (
    delete_redis_keys,
    prepare,
    redis_prefix,
    wait_until_async,
)

pytestmark = pytest.mark.integration


async def test_a_message_reaches_the_others_and_not_its_sender(redis_available: str) -> None:
    prefix = redis_prefix()
    one, two = ControlBus(redis_available, prefix), ControlBus(redis_available, prefix)
    two._origin = "another-node:1"
    got_one: list[ControlMessage] = []
    got_two: list[ControlMessage] = []

    async def keep_one(m: ControlMessage) -> None:
        got_one.append(m)

    async def keep_two(m: ControlMessage) -> None:
        got_two.append(m)

    one.start(keep_one)
    two.start(keep_two)
    try:
        await asyncio.wait_for(one.subscribed.wait(), 5)
        await asyncio.wait_for(two.subscribed.wait(), 5)
        await one.publish(ControlMessage("terminate", "alice", "fraud"))
        await wait_until_async(lambda: got_two, "the message at the other worker")
        assert got_two == [ControlMessage("terminate", "alice", "fraud")]
        await asyncio.sleep(0.2)
        assert got_one == []
    finally:
        await one.close()
        await two.close()


@pytest.mark.slow
async def test_every_top_up_reauthorizes_whichever_worker_gets_it(
    tmp_path: Path, redis_available: str
) -> None:
    prefix = redis_prefix()
    daemon = prepare(tmp_path, hot_url=redis_available, redis_key_prefix=prefix, workers=2)
    client: Client | None = None
    try:
        await daemon.acli("account", "topup", "alice", "10.00", "--reference", "card-1")
        await asyncio.to_thread(daemon.start)
        client = await connect("127.0.0.1", daemon.diameter_port)
        _, answer = await client.ccr(
            ccr(CcRequestType.INITIAL_REQUEST, 0, session="switch.test.example;rar;1")
        )
        assert answer.result_code == ResultCode.DIAMETER_SUCCESS

        def post() -> None:
            request = urllib.request.Request(
                f"http://127.0.0.1:{daemon.http_port}/v1/accounts/alice/reauthorize",
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200

        # Two workers share the HTTP port: the requests land on either, while only one
        # holds the switch's connection. Each must still end in exactly one RAR.
        asked = 8
        for _ in range(asked):
            await asyncio.to_thread(post)

        def rars() -> list[object]:
            assert client is not None
            return [m for m in client.server_requests if m.command_code == CommandCode.RE_AUTH]

        await wait_until_async(lambda: len(rars()) >= asked, f"{asked} RARs")
        await asyncio.sleep(0.5)
        assert len(rars()) == asked
    finally:
        if client is not None:
            client.writer.close()
        await asyncio.to_thread(daemon.kill)
        delete_redis_keys(prefix, redis_available)


def _owner_of(port: int, client_port: int) -> int:
    """The pid of the process holding our connection's server end."""
    import re
    import subprocess

    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} and dport = :{client_port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"pid=(\d+)", out)
    assert found, out
    return int(found.group(1))


@pytest.mark.slow
async def test_a_killed_worker_is_replaced_and_its_peer_reconnects(
    tmp_path: Path, redis_available: str
) -> None:
    import os
    import signal

    prefix = redis_prefix()
    daemon = prepare(tmp_path, hot_url=redis_available, redis_key_prefix=prefix, workers=2)
    clients: list[Client] = []
    try:
        await daemon.acli("account", "topup", "alice", "10.00", "--reference", "card-1")
        await asyncio.to_thread(daemon.start)
        first = await connect("127.0.0.1", daemon.diameter_port)
        clients.append(first)
        _, answer = await first.ccr(ccr(CcRequestType.INITIAL_REQUEST, 0, session="k;1"))
        assert answer.result_code == ResultCode.DIAMETER_SUCCESS
        local_port = first.writer.get_extra_info("sockname")[1]
        victim = _owner_of(daemon.diameter_port, local_port)
        assert daemon.process is not None and victim != daemon.process.pid
        os.kill(victim, signal.SIGKILL)
        await asyncio.wait_for(first.closed.wait(), 10)

        async def replaced() -> bool:
            return bool(daemon.events("worker started")[2:])

        await wait_until_async(replaced, "a new worker")
        # The switch reconnects and carries on with the call it had up (the session is in
        # the store, not in the dead worker).
        again = await connect("127.0.0.1", daemon.diameter_port)
        clients.append(again)
        _, end = await again.ccr(
            ccr(CcRequestType.TERMINATION_REQUEST, 1, session="k;1", used=60, requested=None)
        )
        assert end.result_code == ResultCode.DIAMETER_SUCCESS
        out = await daemon.acli("account", "show", "alice")
        assert "balance: 9.990000" in out, out
        assert daemon.stop() == 0
    finally:
        for client in clients:
            client.writer.close()
        await asyncio.to_thread(daemon.kill)
        delete_redis_keys(prefix, redis_available)


def _running(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
async def test_workers_stop_when_the_main_process_is_killed(
    tmp_path: Path, redis_available: str
) -> None:
    import os
    import signal
    import socket

    prefix = redis_prefix()
    daemon = prepare(tmp_path, hot_url=redis_available, redis_key_prefix=prefix, workers=2)
    try:
        await asyncio.to_thread(daemon.start)
        workers = [int(event["pid"]) for event in daemon.events("worker started")]
        assert len(workers) == 2 and all(_running(pid) for pid in workers)
        # The OOM killer or an operator's kill -9 takes the main process alone.
        assert daemon.process is not None
        os.kill(daemon.process.pid, signal.SIGKILL)
        await wait_until_async(
            lambda: not any(_running(pid) for pid in workers), "the workers to stop"
        )
        # Nothing holds the Diameter port any more.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", daemon.diameter_port))
    finally:
        await asyncio.to_thread(daemon.kill)
        delete_redis_keys(prefix, redis_available)
