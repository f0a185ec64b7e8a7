"""The embedded records database: CDR batches into a SQLite file.

``cdrs`` is a plain table with a unique ``cdr_id``; ``ON CONFLICT DO NOTHING`` skips a CDR stored
before and the rollups count only the rows really inserted, all in one ``BEGIN IMMEDIATE``
transaction. sqlite3 is blocking, so each call runs in a worker thread; one writer uses the
connection at a time. Timestamps are stored as ISO 8601 UTC text, the form
``ocsd.sql_store`` reads back.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from cdr_writer.row import (
    CDR_COLUMN_NAMES,
    CDR_COLUMNS,
    LEDGER_COLUMN_NAMES,
    REJECT_COLUMN_NAMES,
    REJECT_COLUMNS,
    Batch,
    CdrRow,
    daily_rollup,
)
from cdr_writer.sink import SinkDataError, SinkUnavailable, WriteResult

_CDR_TS = tuple(i for i, c in enumerate(CDR_COLUMNS) if c.kind == "ts")
_REJECT_TS = tuple(i for i, c in enumerate(REJECT_COLUMNS) if c.kind == "ts")
_LEDGER_TS = (LEDGER_COLUMN_NAMES.index("at"),)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    # ON CONFLICT DO NOTHING skips only a key stored before; OR IGNORE would also drop a row
    # that breaks a NOT NULL constraint, silently.
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"


_INSERT_CDR = _insert("cdrs", CDR_COLUMN_NAMES)
_INSERT_LEDGER = _insert("ledger", LEDGER_COLUMN_NAMES)
_INSERT_REJECT = _insert("cdr_rejects", REJECT_COLUMN_NAMES)
_UPSERT_DAILY = """
INSERT INTO cdr_daily (day, account_id, destination, carrier, currency, tenant_path, calls,
    answered, duration_s, billed_s, charge_micros, debited_micros)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, account_id, destination, carrier, currency) DO UPDATE SET
    calls = calls + excluded.calls,
    answered = answered + excluded.answered,
    duration_s = duration_s + excluded.duration_s,
    billed_s = billed_s + excluded.billed_s,
    charge_micros = charge_micros + excluded.charge_micros,
    debited_micros = debited_micros + excluded.debited_micros
"""


def _text_times(row: tuple[Any, ...], positions: tuple[int, ...]) -> list[Any]:
    values = list(row)
    for i in positions:
        value = values[i]
        if isinstance(value, datetime):
            values[i] = value.isoformat(sep=" ")
    return values


def sqlite_file(url: str) -> str:
    """The path of a ``sqlite:///abs/path`` or ``sqlite://rel/path`` URL."""
    rest = url.removeprefix("sqlite:")
    rest = rest.removeprefix("//")
    if not rest:
        raise ValueError(f"sqlite URL without a path: {url!r}")
    return rest


class SqliteSink:
    """``CdrSink`` over a SQLite file migrated by ``ocsd db upgrade`` (or on first start)."""

    def __init__(self, path: str, timeout_s: float = 30.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    async def prepare(self, now: datetime) -> None:
        """Open the file and check that the schema has the CDR tables."""
        async with self._lock:
            await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        try:
            conn = self._connect()
            found = {
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN "
                    "('cdrs', 'cdr_daily', 'cdr_rejects', 'ledger')"
                )
            }
        except sqlite3.Error as exc:
            raise SinkUnavailable(f"{self.path}: {exc}") from exc
        if len(found) != 4:
            raise SinkUnavailable(f"{self.path} has no CDR tables: run 'ocsd db upgrade'")

    async def maintain(self, now: datetime) -> list[str]:
        """Nothing to do: SQLite has no partitions."""
        return []

    async def write(self, batch: Batch) -> WriteResult:
        """Store a batch in one transaction (one at a time: they share the connection)."""
        async with self._lock:
            return await asyncio.to_thread(self._write, batch)

    def _write(self, batch: Batch) -> WriteResult:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise SinkUnavailable(f"{self.path}: {exc}") from exc
        try:
            result = self._write_rows(conn, batch)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.InterfaceError):
                raise SinkDataError(str(exc)) from exc
            raise SinkUnavailable(f"{self.path}: {exc}") from exc
        return result

    def _write_rows(self, conn: sqlite3.Connection, batch: Batch) -> WriteResult:
        cursor = conn.cursor()
        inserted: list[CdrRow] = []
        for row in batch.cdr_rows():
            cursor.execute(_INSERT_CDR, _text_times(row, _CDR_TS))
            if cursor.rowcount == 1:
                inserted.append(row)
        totals = daily_rollup(inserted)
        for key in sorted(totals):
            cursor.execute(_UPSERT_DAILY, (*key, *totals[key]))
        batch.finish()
        ledger = 0
        for lrow in batch.ledger_rows:
            cursor.execute(_INSERT_LEDGER, _text_times(lrow, _LEDGER_TS))
            ledger += max(cursor.rowcount, 0)
        rejects = 0
        for rrow in batch.reject_rows:
            cursor.execute(_INSERT_REJECT, _text_times(rrow, _REJECT_TS))
            rejects += max(cursor.rowcount, 0)
        return WriteResult(len(inserted), ledger, rejects)

    async def close(self) -> None:
        """Close the file."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)
