"""The fraud controls composed from the configuration and the records database.

What the daemon wires (and ``ocsd fraud test`` uses):

- ``load_fraud_engine(config, db)``: the engine from the ``fraud:`` section, the range files
  and the database's lists and overrides; ``refresh_fraud_engine`` builds it again and swaps
  it into the ``FraudGuard`` when the change marker moved (poll it with the master data) or
  on SIGHUP (``force``);
- ``open_counter_store(config)``: Redis when ``stores.hot_url`` is a Redis URL (same key prefix
  and shards as the balance store), else the embedded store in ``<data_dir>/fraud.sqlite3``;
  ``fraud_folds`` says whether the counter step can then ride in the balance store's hold;
- ``RecordsFraudActions``: the actions backed by the records database (blocks and suspensions
  audited with the actor ``fraud``), cutting live calls and alerting through callbacks the
  daemon gives (Diameter ASR / RADIUS Disconnect-Request, the webhook sender). The counter
  store's ``live_sessions(account, now_ms)`` names the sessions to cut, across every worker
  and node.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from balances.model import AccountStatus
from balances.store import BalanceStore
from fraud.counter_store import FUNCTION_NAME, RedisCounterStore
from fraud.counters import CounterStore
from fraud.embedded_counter_store import EmbeddedCounterStore
from fraud.engine import FraudEngine
from fraud.guard import FraudGuard
from fraud.list_loader import load_range_files
from fraud.listing import ListError
from fraud.rule_store import FraudStore
from ocsd.config import Config
from ocsd.logs import get_logger
from ocsd.master_store import MasterStore
from ocsd.sql_store import Database, DatabaseError

log = get_logger("fraud")

FRAUD_ACTOR = "fraud"
"""Who the audit log says made the changes fraud actions make."""


def load_fraud_engine(config: Config, db: Database) -> FraudEngine:
    """Build the engine; raises ``ListError`` for a bad range file."""
    data = FraudStore(db).snapshot()
    extra = load_range_files(config.fraud.lists.high_risk_files)
    engine = FraudEngine.build(config.fraud, data, extra)
    for problem in engine.problems:
        log.error("fraud rule override not applied", problem=problem)
    return engine


def refresh_fraud_engine(
    guard: FraudGuard, config: Config, db: Database, *, force: bool = False
) -> bool:
    """Rebuild the engine and swap it in when the database changed (or ``force``, on
    SIGHUP); a failure keeps the engine in force. Returns whether a new engine is in force."""
    try:
        if not force and FraudStore(db).change_marker() == guard.engine.marker:
            return False
        engine = load_fraud_engine(config, db)
    except (DatabaseError, ListError) as exc:
        log.error("fraud rules not reloaded; keeping those in force", error=str(exc))
        return False
    guard.swap(engine)
    log.info(
        "fraud rules reloaded",
        marker=engine.marker,
        enabled=engine.enabled,
        lists=engine.lists.counts(),
        accounts_with_overrides=len(engine.account_rules),
    )
    return True


def open_counter_store(config: Config) -> CounterStore:
    """The counter store the configuration names."""
    stores = config.stores
    if stores.hot_url == "embedded":
        return EmbeddedCounterStore(config.embedded_fraud_path)
    return RedisCounterStore.from_url(
        stores.hot_url,
        key_prefix=stores.redis_key_prefix,
        shards=stores.redis_shards,
        timeout_ms=stores.redis_timeout_ms,
        pool_size=stores.redis_pool_size,
    )


def fraud_folds(store: BalanceStore, guard: FraudGuard | None) -> bool:
    """Whether the fraud counter step can ride in the balance store's opening hold: both on
    the same Redis with the same key prefix and shards (so the counters' keys carry the
    account's hash tag and the step stays on one slot), the store built with the counters'
    function. Then an authorization costs one round trip with or without fraud checks."""
    from balances.redis_store import RedisBalanceStore

    if guard is None:
        return False
    counters = guard.store
    return (
        isinstance(store, RedisBalanceStore)
        and store.gate is not None
        and store.gate.function == FUNCTION_NAME
        and isinstance(counters, RedisCounterStore)
        and counters.key_prefix == store.settings.key_prefix
        and counters.shards == store.settings.shards
        and counters.url in (None, store.settings.url)
    )


class RecordsFraudActions:
    """``FraudActions`` that change the records database, on a thread of their own."""

    def __init__(
        self,
        records_url: str,
        *,
        terminate: Callable[[str, str], Awaitable[int]],
        alert: Callable[[Mapping[str, Any]], object] | None = None,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.records_url = records_url
        self._terminate = terminate
        self._alert = alert
        self._on_change = on_change
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="fraud-actions"
        )
        self._db: Database | None = None

    def _database(self) -> Database:
        if self._db is None:
            self._db = Database(self.records_url)
        return self._db

    async def _in_thread(self, work: Callable[[Database], bool]) -> bool:
        loop = asyncio.get_running_loop()
        changed = await loop.run_in_executor(self._executor, lambda: work(self._database()))
        if changed and self._on_change is not None:
            await self._on_change()
        return changed

    async def block_destination(self, account_id: str, prefix: str, reason: str) -> None:
        """Add the prefix to the account's blocked list."""
        await self._in_thread(
            lambda db: FraudStore(db, actor=FRAUD_ACTOR).block(account_id, prefix, reason)
        )

    async def suspend_account(self, account_id: str, reason: str) -> None:
        """Suspend the account (audited; ``ocsd account set A --status active`` undoes)."""

        def suspend(db: Database) -> bool:
            master = MasterStore(db, actor=FRAUD_ACTOR)
            account = master.get_account(account_id)
            if account is None or account.status is not AccountStatus.ACTIVE:
                return False
            master.update_account(account_id, status=AccountStatus.SUSPENDED)
            return True

        await self._in_thread(suspend)

    async def terminate_sessions(self, account_id: str, reason: str) -> int:
        """Ask the daemon to cut the account's live calls."""
        return await self._terminate(account_id, reason)

    async def alert(self, event: Mapping[str, Any]) -> None:
        """Hand the alert to the webhook sender (it never waits)."""
        if self._alert is not None:
            self._alert(event)

    async def close(self) -> None:
        """Close the connection and the thread."""
        loop = asyncio.get_running_loop()

        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await loop.run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)


__all__ = [
    "FRAUD_ACTOR",
    "RecordsFraudActions",
    "fraud_folds",
    "load_fraud_engine",
    "open_counter_store",
    "refresh_fraud_engine",
]
