"""Which balance store backend the configuration selects."""

from __future__ import annotations

from balances.store import BalanceStore
from ocsd.config import Config


def open_balance_store(config: Config) -> BalanceStore:
    """The embedded SQLite store, or Redis for a ``redis://`` hot store URL (built with the
    fraud counters' function, so that an opening hold can carry their step)."""
    stores = config.stores
    if stores.hot_url == "embedded":
        from balances.embedded_store import EmbeddedBalanceStore
        from balances.settings import EmbeddedStoreSettings

        config.data_path.mkdir(parents=True, exist_ok=True)
        return EmbeddedBalanceStore(
            str(config.embedded_hot_path),
            EmbeddedStoreSettings(max_record_queue=stores.max_record_queue),
        )
    from balances.redis_store import LuaGate, RedisBalanceStore
    from balances.settings import RedisStoreSettings
    from fraud.counter_store import FUNCTION_NAME, FUNCTION_SOURCE

    return RedisBalanceStore(
        RedisStoreSettings(
            url=stores.hot_url,
            key_prefix=stores.redis_key_prefix,
            shards=stores.redis_shards,
            timeout_ms=stores.redis_timeout_ms,
            pool_size=stores.redis_pool_size,
            closed_slices=stores.redis_closed_slices,
            max_record_queue=stores.max_record_queue,
        ),
        # The fraud counters ride in the opening hold (see ocsd.fraud_setup.fraud_folds).
        gate=LuaGate(FUNCTION_SOURCE, FUNCTION_NAME),
    )
