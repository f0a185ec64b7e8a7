"""A real ``ocsd serve`` with every listener on a free port, and the peers end-to-end tests need.

``LiveDaemon`` is written before it starts, so that the test can prepare master data with the
CLI the way an operator would, then ``start()`` it. Peers:

- ``RadiusPeer``: a NAS sending Access- and Accounting-Requests from one UDP socket, with
  retransmissions (the same datagram again, as RFC 5080 expects) on a loaded machine;
- ``FakeNas``: the NAS's Disconnect port (RFC 5176); it answers every Disconnect-Request with
  a Disconnect-ACK signed with the shared secret and keeps what it received;
- Diameter peers come from ``tests.ocsd.diameter_client``; ``trace_closes`` records how one
  connection ended (``PeerClosed``: a DPR from ocsd, a lost transport, ...).

Nothing here sleeps to wait for something: ``wait_until`` polls with a deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from protocols.diameter.peer import PeerClosed
from protocols.radius.attribute import Attribute, encode_attribute
from protocols.radius.dictionary import Dictionary, default_dictionary
from protocols.radius.packet import (
    Code,
    Packet,
    decode_packet,
    encode_reply,
    encode_request,
    verify_reply,
    verify_request,
)
from tests.ocsd.diameter_client import Client
from tests.ocsd.world import REDIS_URL, build_master

ROOT = Path(__file__).resolve().parents[2]
SECRET = "live-daemon-secret"
T = TypeVar("T")


def free_port(kind: int) -> int:
    """A port nobody listens on now (TCP or UDP on the loopback)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], T], what: str, timeout_s: float = 20.0) -> T:
    """Poll ``predicate`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]], what: str, timeout_s: float = 20.0
) -> T:
    """``wait_until`` for code running in an event loop (the loop keeps turning); the
    predicate may be a coroutine function."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class LiveDaemon:
    """One ``ocsd serve`` process: its configuration, data directory, ports and log."""

    tmp_path: Path
    config: Path
    data: Path
    auth_port: int
    acct_port: int
    http_port: int
    diameter_port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    # -- the process ----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["OCSD_DATA_DIR"] = str(self.data)
        env.pop("OCSD_CONFIG", None)
        env.pop("NOTIFY_SOCKET", None)
        env["PYTHONPATH"] = str(ROOT)
        env["OCSD_ACTOR"] = "tester"
        return env

    def start(self, timeout_s: float = 30.0) -> LiveDaemon:
        """Start ``ocsd serve`` and wait until /readyz says so."""
        with self.log.open("ab") as output:
            # The child keeps its own copy of the descriptor.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ocsd", "serve", "--config", str(self.config)],
                cwd=ROOT,
                env=self.env(),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"ocsd exited: {self.log.read_text()[-3000:]}")
            try:
                if self.get("/readyz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"ocsd not ready: {self.log.read_text()[-3000:]}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait for the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    # -- what an operator sees -----------------------------------------------------------

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``ocsd ARGS --config FILE`` as an operator types it."""
        return subprocess.run(
            [sys.executable, "-m", "ocsd", *args, "--config", str(self.config)],
            check=False,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=self.env(),
            timeout=120,
        )

    def cli(self, *args: str) -> str:
        """``run_cli`` that must succeed; its standard output."""
        done = self.run_cli(*args)
        assert done.returncode == 0, f"ocsd {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout

    async def acli(self, *args: str) -> str:
        """``cli`` off the event loop (peers in the loop keep answering meanwhile)."""
        return await asyncio.to_thread(self.cli, *args)

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines so far."""
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        """Log lines whose event is ``name``."""
        return [e for e in self.log_events() if e.get("event") == name]


def prepare(
    tmp_path: Path,
    *,
    radius_clients: Iterable[str] = (),
    hot_url: str = "embedded",
    redis_key_prefix: str = "",
    radius: Iterable[str] = (),
    diameter: Iterable[str] = (),
    extra: str = "",
    workers: int = 1,
) -> LiveDaemon:
    """Write master data and a configuration with free ports; the daemon is not started.

    ``radius_clients`` are YAML flow mappings (the default: 127.0.0.1 with ``SECRET``);
    ``radius`` and ``diameter`` are more ``key: value`` lines of those sections; ``extra`` is
    more top-level YAML (``fraud:``, ``charging:`` ...).
    """
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if not (data / "ocsd.sqlite3").exists():
        build_master(data / "ocsd.sqlite3")
    auth, acct = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    http, diameter_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    clients = list(radius_clients) or [
        f"{{address: 127.0.0.1, secret: {SECRET}, name: nas-1, "
        "require_message_authenticator: false}"
    ]
    stores = f"stores: {{hot_url: {hot_url!r}"
    if redis_key_prefix:
        stores += f", redis_key_prefix: {redis_key_prefix}, redis_shards: 16"
    stores += "}\n"
    config = tmp_path / "ocsd.yaml"
    config.write_text(
        f"data_dir: {data}\n"
        f"workers: {workers}\n"
        "node_id: node-test\n"
        "master_poll_s: 0.5\n"
        "worker_stall_s: 10\n"
        "logging: {level: info, format: json}\n" + stores + "radius:\n"
        f"  auth_port: {auth}\n"
        f"  acct_port: {acct}\n"
        "  clients:\n"
        + "".join(f"    - {c}\n" for c in clients)
        + "".join(f"  {line}\n" for line in radius)
        + "diameter:\n"
        f"  port: {diameter_port}\n"
        "  origin_host: ocs.test.example\n"
        "  origin_realm: test.example\n"
        + "".join(f"  {line}\n" for line in diameter)
        + f"http: {{port: {http}}}\n"
        + extra
    )
    return LiveDaemon(
        tmp_path, config, data, auth, acct, http, diameter_port, tmp_path / "ocsd.log"
    )


def redis_prefix() -> str:
    """A key prefix of this test's own on the shared Redis."""
    return f"ocsdtest{uuid.uuid4().hex[:10]}"


def delete_redis_keys(prefix: str, url: str = REDIS_URL) -> None:
    """Remove the keys a test made (never FLUSHDB: the Redis is shared)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


# -- RADIUS ------------------------------------------------------------------------------


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, asyncio.Future[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) >= 20:
            future = self.waiting.get(data[1])
            if future is not None and not future.done():
                future.set_result(data)


@dataclass
class RadiusPeer:
    """A NAS talking to ocsd from one UDP socket; one request per Identifier at a time."""

    host: str
    auth_port: int
    acct_port: int
    secret: bytes = SECRET.encode()
    dictionary: Dictionary = field(default_factory=default_dictionary)
    _protocol: _Replies | None = None
    _identifiers: asyncio.Queue[int] | None = None

    async def open(self) -> RadiusPeer:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(_Replies, local_addr=("127.0.0.1", 0))
        self._protocol = protocol
        self._identifiers = asyncio.Queue()
        for identifier in range(256):
            self._identifiers.put_nowait(identifier)
        return self

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()

    def attributes(self, values: Iterable[tuple[str, Any]]) -> list[Attribute]:
        out: list[Attribute] = []
        for name, value in values:
            out.extend(encode_attribute(self.dictionary, name, value))
        return out

    async def request(
        self,
        code: Code,
        values: Iterable[tuple[str, Any]],
        *,
        timeout_s: float = 2.0,
        tries: int = 5,
        keep_trying: Callable[[], bool] | None = None,
    ) -> Packet | None:
        """Send a request (retransmitting the same datagram); its verified reply, or None
        after ``tries`` sends, or later while ``keep_trying()`` says so."""
        assert self._protocol is not None and self._identifiers is not None
        identifier = await self._identifiers.get()
        try:
            data = encode_request(code, identifier, self.attributes(values), self.secret)
            request = decode_packet(data, self.dictionary)
            port = self.auth_port if code is Code.ACCESS_REQUEST else self.acct_port
            sent = 0
            while sent < tries or (keep_trying is not None and keep_trying()):
                sent += 1
                future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
                self._protocol.waiting[identifier] = future
                assert self._protocol.transport is not None
                self._protocol.transport.sendto(data, (self.host, port))
                try:
                    raw = await asyncio.wait_for(future, timeout_s)
                except TimeoutError:
                    continue
                finally:
                    self._protocol.waiting.pop(identifier, None)
                reply = decode_packet(raw, self.dictionary)
                verify_reply(reply, request, self.secret)
                return reply
            return None
        finally:
            self._identifiers.put_nowait(identifier)

    def text(self, packet: Packet, name: str) -> str | None:
        """The first value of attribute ``name`` in ``packet`` as text."""
        definition = self.dictionary.attribute(name)
        if definition.vendor:
            for vendor, vendor_type, value in packet.vendor_attributes:
                if vendor == definition.vendor and vendor_type == definition.number:
                    return value.decode()
            return None
        for type_, value in packet.attributes:
            if type_ == definition.number:
                if len(value) == 4 and name in ("Session-Timeout",):
                    return str(int.from_bytes(value, "big"))
                return value.decode(errors="replace")
        return None


class _NasEndpoint(asyncio.DatagramProtocol):
    def __init__(self, nas: FakeNas) -> None:
        self.nas = nas

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.nas.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.nas.received(data, addr)


@dataclass
class FakeNas:
    """The Disconnect port of a NAS (RFC 5176): ACKs what it gets, keeps it for the test."""

    secret: bytes = SECRET.encode()
    dictionary: Dictionary = field(default_factory=default_dictionary)
    requests: list[Packet] = field(default_factory=list)
    port: int = 0
    transport: asyncio.DatagramTransport | None = None

    async def open(self) -> FakeNas:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(
            lambda: _NasEndpoint(self), local_addr=("127.0.0.1", self.port)
        )
        assert self.transport is not None
        self.port = int(self.transport.get_extra_info("sockname")[1])
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        packet = decode_packet(data, self.dictionary)
        # A real NAS drops what it cannot authenticate: so does this one.
        verify_request(packet, self.secret, require_message_authenticator=False)
        if packet.code is not Code.DISCONNECT_REQUEST:
            return
        self.requests.append(packet)
        assert self.transport is not None
        self.transport.sendto(
            encode_reply(packet, Code.DISCONNECT_ACK, [], self.secret), (addr[0], addr[1])
        )

    def values(self, packet: Packet, name: str) -> list[str]:
        """Every value of attribute ``name`` in ``packet`` as text."""
        definition = self.dictionary.attribute(name)
        if definition.vendor:
            return [
                value.decode(errors="replace")
                for vendor, vendor_type, value in packet.vendor_attributes
                if vendor == definition.vendor and vendor_type == definition.number
            ]
        return [
            value.decode(errors="replace")
            for type_, value in packet.attributes
            if type_ == definition.number
        ]


# -- Diameter ----------------------------------------------------------------------------


def trace_closes(client: Client) -> list[PeerClosed]:
    """Record how the client's connection ends (the test client does not keep it)."""
    closes: list[PeerClosed] = []
    next_event = client.peer.next_event

    def traced() -> Any:
        event = next_event()
        if isinstance(event, PeerClosed):
            closes.append(event)
        return event

    client.peer.next_event = traced  # type: ignore[method-assign]
    return closes


async def gather_all(*aws: Awaitable[T]) -> list[T]:
    """``asyncio.gather`` that cancels the others when one fails."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
