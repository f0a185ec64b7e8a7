"""CDR batches into PostgreSQL with COPY, idempotent on the CDR key, in one transaction.

One batch, one transaction:

1. ``COPY cdrs FROM STDIN`` inside a savepoint, the rows built while they stream (the
   server inserts the first rows while the next ones are decoded). COPY inserts every row or
   none: when it succeeds no row of the batch was stored before, and the ``cdr_daily``
   rollups are the sums of the whole batch.
2. Only if COPY met a key already stored (a batch replayed after a crash between commit and
   acknowledgement, or taken over from another writer), the savepoint is rolled back and the
   slow path runs: ``COPY cdr_stage`` (a session-local temporary table emptied at every
   commit, without keys), then ``INSERT INTO cdrs SELECT ... ON CONFLICT DO NOTHING
   RETURNING cdr_id``: the rollups add only the rows that returned.
3. The rollup columns of the rows really inserted go to ``cdr_daily_stage`` (binary COPY,
   another session-local temporary table) and one ``INSERT ... SELECT ... GROUP BY ... ON
   CONFLICT DO UPDATE`` adds them to ``cdr_daily``: PostgreSQL sums them in C, where
   summing in Python and sending arrays cost the writer a third of its time.
4. Ledger entries and rejected records, each idempotent on its own key.

The connections run in the writer's event loop (psycopg's async API), one per batch being
written (the writer may write two at once). A lost connection is dropped and another opened
on the next call; errors are sorted into ``SinkUnavailable`` (retry
the same batch) and ``SinkDataError`` (SQLSTATE classes 22, 23, 54: the data is refused).
"""

from __future__ import annotations

import contextlib
import operator
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper

from cdr_writer.partition import (
    DEFAULT_PARTITION,
    months_to_keep,
    partition_bounds,
    partition_name,
)
from cdr_writer.row import (
    CDR_COLUMN_NAMES,
    CDR_COLUMNS,
    CDR_INDEX,
    LEDGER_COLUMN_NAMES,
    REJECT_COLUMN_NAMES,
    Batch,
    CdrRow,
)
from cdr_writer.sink import SinkDataError, SinkUnavailable, WriteResult

_COLUMNS = ", ".join(CDR_COLUMN_NAMES)
_CREATE_STAGE = "CREATE TEMPORARY TABLE IF NOT EXISTS cdr_stage (LIKE cdrs) ON COMMIT DELETE ROWS"
_COPY_CDRS = f"COPY cdrs ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_STAGE = f"COPY cdr_stage ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
JSONB_OID = 3802
_BINARY_TYPES = {"text": "text", "int": "int4", "bigint": "int8", "ts": "timestamptz"}
_COPY_TYPES: list[int | str] = [
    JSONB_OID if c.kind == "json" else _BINARY_TYPES[c.kind] for c in CDR_COLUMNS
]


class _JsonText(str):
    """Registers ``_JsonTextDumper``; rows carry plain ``str``."""


class _JsonTextDumper(Dumper):
    """JSON text made by the row builder, sent in jsonb's binary form (version 1 + text)."""

    format = pq.Format.BINARY
    oid = JSONB_OID

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + str(obj).encode()


_INSERT_FROM_STAGE = f"""
INSERT INTO cdrs ({_COLUMNS})
SELECT {_COLUMNS} FROM cdr_stage
ON CONFLICT DO NOTHING
RETURNING cdr_id
"""
_DAILY_STAGE_COLUMNS = (
    ("start_at", "timestamptz"),
    ("account_id", "text"),
    ("destination", "text"),
    ("carrier", "text"),
    ("currency", "text"),
    ("tenant_path", "text"),
    ("duration_s", "int4"),
    ("billed_s", "int4"),
    ("charge_micros", "int8"),
    ("debited_micros", "int8"),
)
_DAILY_STAGE_ROW = operator.itemgetter(*(CDR_INDEX[name] for name, _ in _DAILY_STAGE_COLUMNS))
_DAILY_STAGE_TYPES: list[int | str] = [kind for _, kind in _DAILY_STAGE_COLUMNS]
_CREATE_DAILY_STAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS cdr_daily_stage ("
    + ", ".join(f"{name} {kind}" for name, kind in _DAILY_STAGE_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_COPY_DAILY_STAGE = "COPY cdr_daily_stage FROM STDIN (FORMAT BINARY)"
# Sums per UTC day, account, destination, carrier and currency of the rows the batch really
# inserted. The keys go in sorted, so two writers lock the same rollup rows in the same
# order. A rollup row keeps the tenant path it was made with: later batches change only its
# counters, so PostgreSQL updates it in place (HOT) without touching its indexes.
_UPSERT_DAILY = """
INSERT INTO cdr_daily AS d (day, account_id, destination, carrier, currency, tenant_path,
    calls, answered, duration_s, billed_s, charge_micros, debited_micros)
SELECT (start_at AT TIME ZONE 'UTC')::date, account_id, destination, carrier, currency,
    min(tenant_path), count(*), count(*) FILTER (WHERE duration_s > 0), sum(duration_s),
    sum(billed_s), sum(charge_micros)::bigint, sum(debited_micros)::bigint
FROM cdr_daily_stage
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (day, account_id, destination, carrier, currency) DO UPDATE SET
    calls = d.calls + EXCLUDED.calls,
    answered = d.answered + EXCLUDED.answered,
    duration_s = d.duration_s + EXCLUDED.duration_s,
    billed_s = d.billed_s + EXCLUDED.billed_s,
    charge_micros = d.charge_micros + EXCLUDED.charge_micros,
    debited_micros = d.debited_micros + EXCLUDED.debited_micros
"""
_INSERT_LEDGER = (
    f"INSERT INTO ledger ({', '.join(LEDGER_COLUMN_NAMES)}) "
    f"VALUES ({', '.join('%s' for _ in LEDGER_COLUMN_NAMES)}) ON CONFLICT (entry_id) DO NOTHING"
)
_INSERT_REJECT = (
    f"INSERT INTO cdr_rejects ({', '.join(REJECT_COLUMN_NAMES)}) "
    f"VALUES ({', '.join('%s' for _ in REJECT_COLUMN_NAMES)}) ON CONFLICT (reject_id) DO NOTHING"
)
_PARTITION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('ocsd.cdrs.partitions'))"

DATA_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
"""Data exception, integrity violation, program limit exceeded: the batch, not the server."""


def _failure(exc: psycopg.Error, what: str) -> SinkUnavailable | SinkDataError:
    state = exc.sqlstate or ""
    message = f"{what}: {str(exc).strip() or type(exc).__name__}"
    if state[:2] in DATA_SQLSTATE_CLASSES:
        return SinkDataError(message)
    if state == "42P01":
        message += " (run 'ocsd db upgrade')"
    return SinkUnavailable(message)


async def ensure_partitions(
    conn: psycopg.AsyncConnection[Any], now: datetime, ahead: int
) -> list[str]:
    """Create the monthly partitions that must exist at ``now``; return those created.

    A partition's rows may already sit in ``cdrs_default`` (a CDR that started in a month
    nobody expected): they are moved into the new partition in the same transaction.
    """
    created: list[str] = []
    for month in months_to_keep(now, ahead):
        name = partition_name(month)
        async with conn.transaction():
            await conn.execute(_PARTITION_LOCK)
            cursor = await conn.execute("SELECT to_regclass(%s)", (name,))
            found = await cursor.fetchone()
            if found is not None and found[0] is not None:
                continue
            low, high = partition_bounds(month)
            await conn.execute("CREATE TEMPORARY TABLE cdr_move (LIKE cdrs) ON COMMIT DROP")
            await conn.execute(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
                "WHERE start_at >= %s AND start_at < %s RETURNING *) "
                "INSERT INTO cdr_move SELECT * FROM moved",
                (low, high),
            )
            # DDL takes no parameters; the bounds are our own ISO timestamps.
            await conn.execute(
                f"CREATE TABLE {name} PARTITION OF cdrs "
                f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
            )
            await conn.execute("INSERT INTO cdrs SELECT * FROM cdr_move")
        created.append(name)
    return created


class PgSink:
    """``CdrSink`` over PostgreSQL (schema from ``ocsd db upgrade``).

    Every call takes a connection of its own (opened when none is idle, kept for the next
    call): the writer may write several batches at once, each in its own transaction, and
    partition upkeep never runs inside a batch's transaction.
    """

    def __init__(
        self,
        url: str,
        *,
        partitions_ahead_months: int = 3,
        connect_timeout_s: float = 5.0,
        statement_timeout_ms: int = 60_000,
        application_name: str = "ocsd-cdr-writer",
    ) -> None:
        self.url = url
        self.partitions_ahead_months = partitions_ahead_months
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_ms = statement_timeout_ms
        self.application_name = application_name
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._busy: set[psycopg.AsyncConnection[Any]] = set()

    async def _take(self) -> psycopg.AsyncConnection[Any]:
        """An idle connection, or a new one; give it back with ``_give_back``."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and not conn.broken:
                self._busy.add(conn)
                return conn
            await _close(conn)
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout_s)),
                application_name=self.application_name,
                options=f"-c statement_timeout={self.statement_timeout_ms}",
            )
        except psycopg.Error as exc:
            raise SinkUnavailable(f"cannot connect: {str(exc).strip()}") from exc
        # Binary COPY: the jsonb columns take the JSON text the row builder made.
        conn.adapters.register_dumper(_JsonText, _JsonTextDumper)
        try:
            await conn.execute(_CREATE_STAGE)
            await conn.execute(_CREATE_DAILY_STAGE)
        except psycopg.Error as exc:
            await conn.close()
            raise _failure(exc, "cannot prepare the staging table") from exc
        self._busy.add(conn)
        return conn

    async def _give_back(self, conn: psycopg.AsyncConnection[Any], *, keep: bool) -> None:
        self._busy.discard(conn)
        if keep and not conn.closed and not conn.broken:
            self._idle.append(conn)
        else:
            await _close(conn)

    async def backend_pids(self) -> list[int]:
        """The server processes of the connections open now (benchmarks, logs)."""
        if not self._idle and not self._busy:
            await self._give_back(await self._take(), keep=True)
        return [conn.info.backend_pid for conn in (*self._idle, *self._busy)]

    async def prepare(self, now: datetime) -> None:
        """Connect, check the schema and create the partitions ahead."""
        await self.maintain(now)

    async def maintain(self, now: datetime) -> list[str]:
        """Create the partitions that must exist at ``now``."""
        conn = await self._take()
        keep = False
        try:
            created = await ensure_partitions(conn, now, self.partitions_ahead_months)
            keep = True
            return created
        except psycopg.Error as exc:
            keep = not (conn.broken or conn.closed)
            raise _failure(exc, "partition upkeep failed") from exc
        finally:
            await self._give_back(conn, keep=keep)

    async def write(self, batch: Batch) -> WriteResult:
        """Store a batch in one transaction."""
        conn = await self._take()
        keep = False
        try:
            result = await self._write(conn, batch)
            keep = True
            return result
        except psycopg.Error as exc:
            keep = not (conn.broken or conn.closed)
            raise _failure(exc, "batch not stored") from exc
        finally:
            # Cancelled, the transaction's fate is unknown to us: that connection is closed
            # and the next call starts from a fresh one.
            await self._give_back(conn, keep=keep)

    async def _write(self, conn: psycopg.AsyncConnection[Any], batch: Batch) -> WriteResult:
        inserted: list[CdrRow] = []
        ledger = rejects = 0
        async with conn.transaction(), conn.cursor() as cursor:
            try:
                async with conn.transaction(), cursor.copy(_COPY_CDRS) as copy:
                    copy.set_types(_COPY_TYPES)
                    for row in batch.cdr_rows():
                        await copy.write_row(row)
                inserted = batch.all_cdr_rows
            except psycopg.errors.UniqueViolation:
                inserted = await self._insert_new(cursor, batch.all_cdr_rows)
            if inserted:
                await self._add_daily(cursor, inserted)
            batch.finish()
            if batch.ledger_rows:
                await cursor.executemany(_INSERT_LEDGER, batch.ledger_rows)
                ledger = max(cursor.rowcount, 0)
            if batch.reject_rows:
                await cursor.executemany(_INSERT_REJECT, batch.reject_rows)
                rejects = max(cursor.rowcount, 0)
        return WriteResult(len(inserted), ledger, rejects)

    async def _insert_new(
        self, cursor: psycopg.AsyncCursor[Any], rows: list[CdrRow]
    ) -> list[CdrRow]:
        """The slow path: insert the rows not stored yet, return them."""
        async with cursor.copy(_COPY_STAGE) as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                await copy.write_row(row)
        await cursor.execute(_INSERT_FROM_STAGE)
        new_ids = {cdr_id for (cdr_id,) in await cursor.fetchall()}
        fresh: list[CdrRow] = []
        for row in rows:
            # A CDR twice in one batch is inserted once: count it once.
            if row[0] in new_ids:
                new_ids.discard(row[0])
                fresh.append(row)
        return fresh

    async def _add_daily(self, cursor: psycopg.AsyncCursor[Any], rows: list[CdrRow]) -> None:
        async with cursor.copy(_COPY_DAILY_STAGE) as copy:
            copy.set_types(_DAILY_STAGE_TYPES)
            for row in map(_DAILY_STAGE_ROW, rows):
                await copy.write_row(row)
        await cursor.execute(_UPSERT_DAILY)

    async def close(self) -> None:
        """Close the connections."""
        conns, self._idle = [*self._idle, *self._busy], []
        self._busy.clear()
        for conn in conns:
            await _close(conn)


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    if not conn.closed:
        with contextlib.suppress(psycopg.Error):
            await conn.close()
