"""Both balance store backends behind one factory, each on its own file or key prefix."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from balances.embedded_store import EmbeddedBalanceStore
from balances.settings import EmbeddedStoreSettings, RedisStoreSettings
from balances.store import BalanceStore

TEST_SHARDS = 8


def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete every key a store with this prefix may have written; return how many."""
    import redis

    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        for pattern in (f"{{{prefix}:*", f"{prefix}:*"):
            batch: list[bytes] = []
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += client.unlink(*batch)
    finally:
        client.close()
    return deleted


@dataclass
class Backend:
    """Opens stores on one backend's data: every store opened shares the same accounts."""

    name: str
    path: Path | None = None
    redis_url: str = ""
    prefix: str = ""
    opened: list[BalanceStore] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Any:
        """The settings a store of this backend is opened with (picklable, for subprocesses)."""
        if self.name == "embedded":
            return EmbeddedStoreSettings(**overrides)
        base: dict[str, Any] = {
            "url": self.redis_url,
            "key_prefix": self.prefix,
            "shards": TEST_SHARDS,
        }
        return RedisStoreSettings(**{**base, **overrides})

    def open(self, **overrides: Any) -> BalanceStore:
        """A new store instance on the same data."""
        store = open_store(self.name, str(self.path), self.settings(**overrides))
        self.opened.append(store)
        return store


def open_store(name: str, path: str, settings: Any) -> BalanceStore:
    """Open a store of the named backend."""
    if name == "embedded":
        return EmbeddedBalanceStore(path, settings)
    from balances.redis_store import RedisBalanceStore

    return RedisBalanceStore(settings)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThrowawayRedis:
    """A private redis-server (no persistence) that a test may stop, freeze or restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1.0)
        try:
            for _ in range(200):
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.025)
            raise RuntimeError(f"redis-server on port {self.port} did not start")
        finally:
            client.close()

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
