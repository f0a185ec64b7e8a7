"""The daemon as operators run it: a real ``ocsd serve`` process, real signals, real peers.

Each test starts the daemon on the embedded default (its own data directory and free ports),
talks to it over RADIUS (radclient) and HTTP, and sends it the signals systemd would.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from balances.embedded_store import EmbeddedBalanceStore
from balances.model import LedgerKind
from tests.ocsd.world import build_master

ROOT = Path(__file__).resolve().parents[2]
SECRET = "daemon-test-secret"
RADCLIENT = shutil.which("radclient")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Daemon:
    """A running ``ocsd serve``."""

    process: subprocess.Popen[bytes]
    config: Path
    data: Path
    auth_port: int
    acct_port: int
    http_port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"ocsd exited: {self.log.read_text()[-3000:]}")
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"ocsd not ready: {self.log.read_text()[-3000:]}")

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def ocsd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ocsd", *args, "--config", str(self.config)],
            check=False,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=_env(self.data),
            timeout=60,
        )

    def topup(self, account: str, micros: int, key: str) -> None:
        async def run() -> None:
            store = EmbeddedBalanceStore(str(self.data / "hot.sqlite3"))
            try:
                await store.ledger(account, LedgerKind.TOPUP, micros, key, b"topup", 0)
            finally:
                await store.close()

        asyncio.run(run())

    def balance(self, account: str) -> int:
        async def run() -> int:
            store = EmbeddedBalanceStore(str(self.data / "hot.sqlite3"))
            try:
                state = await store.get_account(account)
                assert state is not None
                return state.balance_micros
            finally:
                await store.close()

        return asyncio.run(run())

    def radclient(self, kind: str, attributes: str, secret: str = SECRET) -> str:
        if RADCLIENT is None:
            if os.environ.get("OCSD_REQUIRE_SERVICES") == "1":
                pytest.fail("radclient (freeradius-utils) is not installed")
            pytest.skip("radclient (freeradius-utils) is not installed")
        port = self.auth_port if kind == "auth" else self.acct_port
        done = subprocess.run(
            [RADCLIENT, "-x", "-r", "2", "-t", "2", f"127.0.0.1:{port}", kind, secret],
            input=attributes,
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout + done.stderr


def _env(data: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["OCSD_DATA_DIR"] = str(data)
    env.pop("OCSD_CONFIG", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_daemon(
    tmp_path: Path, *, workers: int = 1, extra: str = "", env: dict[str, str] | None = None
) -> Daemon:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if not (data / "ocsd.sqlite3").exists():
        build_master(data / "ocsd.sqlite3")
    auth, acct, http = (
        free_port(socket.SOCK_DGRAM),
        free_port(socket.SOCK_DGRAM),
        free_port(socket.SOCK_STREAM),
    )
    config = tmp_path / "ocsd.yaml"
    config.write_text(
        f"data_dir: {data}\n"
        f"workers: {workers}\n"
        "master_poll_s: 0.5\n"
        "worker_stall_s: 4\n"
        "logging: {level: info, format: json}\n"
        "radius:\n"
        f"  auth_port: {auth}\n  acct_port: {acct}\n"
        "  clients:\n"
        f"    - {{address: 127.0.0.1, secret: {SECRET}, require_message_authenticator: false}}\n"
        f"http: {{port: {http}}}\n"
        # A port of its own unless the test sets one: never the well-known one another
        # daemon on the machine may hold.
        + ("" if "diameter:" in extra else f"diameter: {{port: {free_port(socket.SOCK_STREAM)}}}\n")
        + extra
    )
    log = tmp_path / "ocsd.log"
    with log.open("wb") as output:
        # The child keeps its own copy of the descriptor.
        process = subprocess.Popen(
            [sys.executable, "-m", "ocsd", "serve", "--config", str(config)],
            cwd=ROOT,
            env={**_env(data), **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    daemon = Daemon(process, config, data, auth, acct, http, log)
    daemon.wait_ready()
    return daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = start_daemon(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def call(daemon: Daemon, conf_id: str, to: str, stop_after: int | None) -> None:
    base = (
        f'User-Name = "alice", Called-Station-Id = "{to}", h323-conf-id = "h323-conf-id={conf_id}"'
    )
    assert "Access-Accept" in daemon.radclient("auth", base)
    assert "Accounting-Response" in daemon.radclient(
        "acct", base + f', Acct-Session-Id = "{conf_id}", Acct-Status-Type = Start'
    )
    if stop_after is not None:
        hang_up(daemon, conf_id, to, stop_after)


def hang_up(daemon: Daemon, conf_id: str, to: str, seconds: int) -> None:
    out = daemon.radclient(
        "acct",
        f'User-Name = "alice", Called-Station-Id = "{to}", '
        f'h323-conf-id = "h323-conf-id={conf_id}", Acct-Session-Id = "{conf_id}", '
        f"Acct-Status-Type = Stop, Acct-Session-Time = {seconds}",
    )
    assert "Accounting-Response" in out, out


def test_health_metrics_and_a_clean_stop(daemon: Daemon) -> None:
    assert daemon.get("/healthz") == (200, "ok\n")
    status, body = daemon.get("/readyz")
    assert status == 200 and "hot_store: ok" in body and "records: ok" in body
    daemon.topup("alice", 1_000_000, "t1")
    call(daemon, "C1", "442071234567", stop_after=61)
    status, metrics = daemon.get("/metrics")
    assert status == 200
    assert (
        'ocsd_requests_total{command="accounting",protocol="radius",result="stop"} 1.0' in metrics
    )
    assert "ocsd_request_seconds_bucket" in metrics
    assert daemon.stop() == 0
    lines = [
        json.loads(line) for line in daemon.log.read_text().splitlines() if line.startswith("{")
    ]
    events = [line["event"] for line in lines]
    assert "shutting down" in events and events[-1] == "stopped"


def test_a_tariff_change_spares_calls_in_progress(daemon: Daemon, tmp_path: Path) -> None:
    daemon.topup("alice", 1_000_000, "t1")
    call(daemon, "OLD", "442071234567", stop_after=None)
    deck = tmp_path / "new.csv"
    deck.write_text("prefix,destination,rate\n4420,UK London,0.050\n")
    done = daemon.ocsd("tariff", "import", "retail", str(deck), "--mode", "update")
    assert done.returncode == 0, done.stderr
    daemon.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "SIGHUP" not in daemon.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    call(daemon, "NEW", "442071234567", stop_after=60)
    hang_up(daemon, "OLD", "442071234567", 60)
    # The call up before the change keeps 0.010/min; the one after pays 0.050/min.
    assert daemon.balance("alice") == 1_000_000 - 10_000 - 50_000
    assert daemon.stop() == 0


def test_a_second_signal_exits_at_once(daemon: Daemon) -> None:
    daemon.process.send_signal(signal.SIGTERM)
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(20) in (0, 1)


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return {int(p) for p in out.stdout.split()}


def _wait_for(predicate: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_a_killed_worker_is_replaced_and_calls_go_on(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, workers=2)
    try:
        _wait_for(lambda: len(_children(daemon.process.pid)) == 2)
        first = _children(daemon.process.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: len(_children(daemon.process.pid) - first) == 1)
        daemon.wait_ready()
        daemon.topup("alice", 1_000_000, "t1")
        call(daemon, "W1", "442071234567", stop_after=30)
        assert daemon.balance("alice") == 990_000
        assert "worker died" in daemon.log.read_text()
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()


def test_a_stalled_worker_is_killed_and_started_again(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, workers=2)
    try:
        _wait_for(lambda: len(_children(daemon.process.pid)) == 2)
        first = _children(daemon.process.pid)
        stalled = min(first)
        os.kill(stalled, signal.SIGSTOP)
        _wait_for(lambda: stalled not in _children(daemon.process.pid), timeout_s=30)
        _wait_for(lambda: len(_children(daemon.process.pid)) == 2)
        assert "worker stalled" in daemon.log.read_text()
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()


def test_systemd_notifications(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(20)
    daemon = start_daemon(tmp_path, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
    try:
        seen: list[str] = []
        while not any(m.startswith("WATCHDOG=1") for m in seen) or not any(
            "READY=1" in m for m in seen
        ):
            seen.append(listener.recv(4096).decode())
        daemon.process.send_signal(signal.SIGTERM)
        while not any("STOPPING=1" in m for m in seen):
            seen.append(listener.recv(4096).decode())
        assert daemon.process.wait(20) == 0
    finally:
        listener.close()
        if daemon.process.poll() is None:
            daemon.process.kill()


def _events(daemon: Daemon) -> list[dict[str, object]]:
    return [
        json.loads(line) for line in daemon.log.read_text().splitlines() if line.startswith("{")
    ]


def _hup_and_wait(daemon: Daemon, event: str) -> dict[str, object]:
    seen = len([e for e in _events(daemon) if e["event"] == event])
    daemon.process.send_signal(signal.SIGHUP)
    found: list[dict[str, object]] = []

    def logged() -> bool:
        found[:] = [e for e in _events(daemon) if e["event"] == event][seen:]
        return bool(found)

    _wait_for(logged, timeout_s=10)
    return found[0]


def test_sighup_rereads_the_configuration(daemon: Daemon) -> None:
    daemon.topup("alice", 10_000_000, "t1")
    ask = 'User-Name = "alice", Called-Station-Id = "442071234567"'
    # 10.00 at 0.010/min pays for 1000 minutes; an Access-Accept allows at most 3600 s.
    assert "Session-Timeout = 3600" in daemon.radclient("auth", ask)

    text = daemon.config.read_text()
    new_secret = "rotated-secret"
    changed = (
        text.replace(SECRET, new_secret).replace(
            f"auth_port: {daemon.auth_port}", f"auth_port: {free_port(socket.SOCK_DGRAM)}"
        )
        + "charging: {max_grant_s: 1200}\n"
    )
    daemon.config.write_text(changed)
    reloaded = _hup_and_wait(daemon, "configuration reloaded")
    assert reloaded["settings"] == ["charging.max_grant_s", "radius.clients"]
    restart = [
        e for e in _events(daemon) if e["event"] == "settings changed that take effect on restart"
    ]
    assert restart and restart[-1]["settings"] == ["radius.auth_port"]

    # The new cap and the new secret are in force; the port stays the one bound at start.
    answer = daemon.radclient("auth", ask, secret=new_secret)
    assert "Session-Timeout = 1200" in answer, answer
    assert "Access-Accept" not in daemon.radclient("auth", ask)  # the old secret

    # A file that does not validate changes nothing.
    daemon.config.write_text(changed.replace("max_grant_s: 1200", "max_grant_s: -5"))
    refused = _hup_and_wait(daemon, "configuration not reloaded; keeping the one in force")
    assert "max_grant_s" in str(refused["error"])
    answer = daemon.radclient("auth", ask, secret=new_secret)
    assert "Session-Timeout = 1200" in answer
    assert daemon.stop() == 0
