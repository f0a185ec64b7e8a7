"""Which balance store backend the configuration selects."""

from __future__ import annotations

from balances.store import BalanceStore
from ocsd.config import Config


def open_balance_store(config: Config) -> BalanceStore:
    """The embedded SQLite store, or Redis for a ``redis://`` hot store URL."""
    stores = config.stores
    if stores.hot_url == "embedded":
        from balances.embedded_store import EmbeddedBalanceStore

        config.data_path.mkdir(parents=True, exist_ok=True)
        return EmbeddedBalanceStore(str(config.embedded_hot_path))
    from balances.redis_store import RedisBalanceStore
    from balances.settings import RedisStoreSettings

    return RedisBalanceStore(
        RedisStoreSettings(
            url=stores.hot_url,
            key_prefix=stores.redis_key_prefix,
            shards=stores.redis_shards,
            timeout_ms=stores.redis_timeout_ms,
            pool_size=stores.redis_pool_size,
            closed_slices=stores.redis_closed_slices,
        )
    )
