"""A throwaway ocsd for load tests: its own data directory, ports, Redis prefix and top-up.

Used by ``bench/run`` and the load generators' ``--start-daemon`` modes. The master data is
the test world's (``tests/ocsd/world.py``): subscriber 441632960001 / user name ``alice`` is a
prepaid account that gets a large top-up; calls to 442071234567 cost 0.010/min (60/60).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from balances.model import LedgerKind  # noqa: E402
from tests.ocsd.world import REDIS_URL, build_master, delete_prefix  # noqa: E402


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class BenchDaemon:
    """A running ``ocsd serve`` for a benchmark."""

    process: subprocess.Popen[bytes]
    folder: Path
    backend: str
    workers: int
    prefix: str
    diameter_port: int
    auth_port: int
    acct_port: int
    http_port: int
    writer: subprocess.Popen[bytes] | None = None
    secret: str = "bench-secret"

    def stop(self) -> int:
        if self.writer is not None and self.writer.poll() is None:
            self.writer.send_signal(signal.SIGTERM)
            try:
                self.writer.wait(60)
            except subprocess.TimeoutExpired:
                self.writer.kill()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        code = self.process.wait()
        if self.prefix:
            asyncio.run(delete_prefix(self.prefix))
        return code

    def pids(self) -> list[int]:
        """The main process and its workers."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [self.process.pid, *(int(p) for p in out.stdout.split())]


def start(backend: str = "redis", workers: int = 1, *, log_level: str = "warning") -> BenchDaemon:
    """Start ocsd with the test world's master data and a large top-up for ``alice``."""
    folder = Path(tempfile.mkdtemp(prefix="ocsd-bench-"))
    data = folder / "data"
    data.mkdir()
    build_master(data / "ocsd.sqlite3")
    prefix = f"bench{uuid.uuid4().hex[:8]}" if backend == "redis" else ""
    hot = REDIS_URL if backend == "redis" else "embedded"
    ports = (free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM), free_port())
    config = folder / "ocsd.yaml"
    config.write_text(
        f"data_dir: {data}\n"
        f"workers: {workers}\n"
        f"stores: {{hot_url: '{hot}', redis_key_prefix: '{prefix or 'ocsd'}'}}\n"
        f"logging: {{level: {log_level}, format: json}}\n"
        "fraud: {enabled: false}\n"
        # As in production: the CDR writer is a service of its own, not in the workers.
        "cdr_writer: {in_daemon: false}\n"
        "charging: {max_grant_s: 3600}\n"
        f"diameter: {{port: {ports[0]}, max_in_flight_per_peer: 4096}}\n"
        "radius:\n"
        f"  auth_port: {ports[1]}\n  acct_port: {ports[2]}\n  max_in_flight: 20000\n"
        "  clients:\n"
        "    - {address: 127.0.0.1, secret: bench-secret, require_message_authenticator: false}\n"
        f"http: {{port: {ports[3]}}}\n"
    )
    env = dict(os.environ)
    env.pop("OCSD_CONFIG", None)
    env["PYTHONPATH"] = str(ROOT)
    with (folder / "ocsd.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ocsd", "serve", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    with (folder / "cdr-writer.log").open("wb") as log:
        writer = subprocess.Popen(
            [sys.executable, "-m", "ocsd", "cdr-writer", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    daemon = BenchDaemon(process, folder, backend, workers, prefix, *ports, writer=writer)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError((folder / "ocsd.log").read_text()[-3000:])
        try:
            url = f"http://127.0.0.1:{ports[3]}/readyz"
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            daemon.stop()
            raise RuntimeError("ocsd did not become ready")
        time.sleep(0.2)
    asyncio.run(_topup(daemon, config))
    return daemon


async def _topup(daemon: BenchDaemon, config: Path) -> None:
    from cdr_writer.ledger import new_ledger_entry
    from ocsd.config import load_config
    from ocsd.stores import open_balance_store

    conf, _ = load_config(str(config))
    store = open_balance_store(conf)
    key = uuid.uuid4().hex
    entry = new_ledger_entry(
        account_id="alice",
        kind="topup",
        amount_micros=10**15,
        currency="USD",
        idempotency_key=key,
        at_ms=int(time.time() * 1000),
        reason="benchmark",
    )
    try:
        await store.ledger("alice", LedgerKind.TOPUP, 10**15, key, entry.encode(), entry.at_ms)
    finally:
        await store.close()
