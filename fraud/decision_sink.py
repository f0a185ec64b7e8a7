"""Decisions to the records database from the event loop, on a thread of their own.

The database connection is synchronous and belongs to one thread, so the sink owns a
single-thread executor that opens its own connection there; ``write`` hands a batch to it and
waits without blocking the loop. The responder calls it from its worker, never on a call's
path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Protocol

from fraud.model import Decision
from fraud.rule_store import FraudStore, SqlDatabase


class ClosableDatabase(SqlDatabase, Protocol):
    """A database connection the sink may close."""

    def close(self) -> None:
        """Close the connection."""


class SqlDecisionLog:
    """``DecisionLog`` over the records database."""

    def __init__(self, open_db: Callable[[], ClosableDatabase], node: str = "") -> None:
        self._open_db = open_db
        self.node = node
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="fraud-decisions"
        )
        self._store: FraudStore | None = None
        self._db: ClosableDatabase | None = None

    def _write(self, decisions: Sequence[Decision]) -> int:
        if self._store is None:
            self._db = self._open_db()
            self._store = FraudStore(self._db, actor="fraud")
        return self._store.record_decisions(decisions, self.node)

    async def write(self, decisions: Sequence[Decision]) -> None:
        """Store a batch (on the sink's thread)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._write, list(decisions))

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
            self._store = None

    async def close(self) -> None:
        """Close the connection and the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)


__all__ = ["ClosableDatabase", "SqlDecisionLog"]
