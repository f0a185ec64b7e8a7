"""Both balance store backends behind one factory, each on its own file or key prefix."""

from __future__ import annotations

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
