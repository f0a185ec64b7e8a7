"""Composition of the CDR writer: its sink from the records URL, its queue from the store.

The writer runs either as its own process (``ocsd cdr-writer``) or as one task of the daemon
beside the servers; both build it here::

    writer = build_cdr_writer(config, store)      # the daemon's BalanceStore
    task = asyncio.create_task(writer.run(stop))  # stop: an asyncio.Event set at shutdown

At shutdown set ``stop`` after the servers have drained, await the task (it finishes the
batch in hand or leaves it queued), then close the sink with ``await writer.sink.close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime

from balances.model import QueuedRecord
from balances.store import BackendUnavailable, BalanceStore
from cdr_writer.pg_sink import PgSink
from cdr_writer.sink import CdrSink, SinkUnavailable
from cdr_writer.sqlite_sink import SqliteSink, sqlite_file
from cdr_writer.writer import CdrWriter
from ocsd.config import Config
from ocsd.logs import get_logger

log = get_logger("cdr_service")


def open_store(config: Config) -> BalanceStore:
    """The balance store whose queue the writer reads: the embedded file, or Redis."""
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
        )
    )


def open_cdr_sink(config: Config) -> CdrSink:
    """The sink of the records database: PostgreSQL, or the embedded SQLite file."""
    url = config.records_url
    settings = config.cdr_writer
    if url.startswith("sqlite:"):
        return SqliteSink(sqlite_file(url))
    return PgSink(
        url,
        partitions_ahead_months=settings.partitions_ahead_months,
        connect_timeout_s=settings.connect_timeout_s,
        statement_timeout_ms=settings.statement_timeout_ms,
        application_name=f"ocsd-cdr-writer@{config.node}"[:63],
    )


def build_cdr_writer(
    config: Config, store: BalanceStore, sink: CdrSink | None = None
) -> CdrWriter[QueuedRecord]:
    """A writer reading ``store``'s queue into the records database of ``config``."""
    settings = config.cdr_writer
    return CdrWriter(
        store,
        sink or open_cdr_sink(config),
        settings,
        settings.consumer_name(config.node),
        queue_errors=(BackendUnavailable, ConnectionError, TimeoutError, OSError),
    )


async def drain(writer: CdrWriter[QueuedRecord], stop: asyncio.Event) -> int:
    """Write until the queue is empty (or ``stop``); return the records written."""
    delay = writer.settings.retry_initial_ms / 1000
    while not writer.ready and not stop.is_set():
        try:
            await writer.sink.prepare(datetime.now(UTC))
            writer.ready = True
        except SinkUnavailable as exc:
            log.warning("records database unavailable", error=str(exc), retry_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, writer.settings.retry_max_ms / 1000)
    total = 0
    while not stop.is_set():
        written = await writer.step(stop)
        total += written
        if written == 0 and await writer.check_depth() == 0:
            break
    return total


async def run_cdr_writer(
    config: Config, store: BalanceStore, *, until_empty: bool = False
) -> CdrWriter[QueuedRecord]:
    """Run a writer until SIGTERM/SIGINT (or, ``until_empty``, until the queue is empty)."""
    writer = build_cdr_writer(config, store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        if until_empty:
            await drain(writer, stop)
        else:
            await writer.run(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await writer.sink.close()
        with contextlib.suppress(BackendUnavailable):
            await store.close()
    return writer
