"""Composition of the CDR writer: its sink from the records URL, its queue from the store.

The writer runs either as its own process (``ocsd cdr-writer``) or as a component of the
daemon beside the servers (``cdr_writer.in_daemon``, the default); both build it here. In the
daemon, ``install`` is a ``SERVER_HOOKS`` entry: it adds a ``CdrWriterComponent`` to the first
worker's extensions, which starts the writer on the server's balance store once the store is
open and, at shutdown, stops it after the listeners have drained (the batch in hand is
finished or left queued) and closes its connection. The store itself is the daemon's to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from typing import Any

from balances.model import QueuedRecord
from balances.store import BackendUnavailable, BalanceStore
from cdr_writer.pg_sink import PgSink
from cdr_writer.sink import CdrSink, SinkUnavailable
from cdr_writer.sqlite_sink import SqliteSink, sqlite_file
from cdr_writer.writer import CdrWriter
from ocsd.config import Config
from ocsd.logs import get_logger
from ocsd.stores import open_balance_store

log = get_logger("cdr_service")


def open_store(config: Config) -> BalanceStore:
    """The balance store whose queue the writer reads: the embedded file, or Redis."""
    return open_balance_store(config)


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


STOP_DEADLINE_S = 10.0
"""How long a stopping writer may take to finish the batch in hand before it is cancelled
(the batch then stays in the queue, unacknowledged)."""


class CdrWriterComponent:
    """The CDR writer as an extension of ``ocsd.daemon.Server``."""

    def __init__(self) -> None:
        self.writer: CdrWriter[QueuedRecord] | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, server: Any) -> None:
        """Start writing from the server's balance store."""
        assert server.store is not None
        self.writer = build_cdr_writer(server.config, server.store)
        self._task = asyncio.create_task(self.writer.run(self._stop), name="cdr-writer")

    async def stop_accepting(self, server: Any) -> None:
        """Nothing to refuse: the writer takes no requests."""

    async def stop(self, server: Any) -> None:
        """Let the batch in hand finish (or stay queued), then close the connection."""
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, STOP_DEADLINE_S)
            except TimeoutError:
                log.warning("cdr writer cancelled at shutdown; its batch stays queued")
        if self.writer is not None:
            await self.writer.sink.close()


def install(server: Any) -> None:
    """``SERVER_HOOKS`` entry: the writer runs in the first worker when ``in_daemon``."""
    if server.config.cdr_writer.in_daemon and server.worker <= 1:
        server.extensions.append(CdrWriterComponent())
