"""The embedded balance store: ``balances.engine`` over one SQLite file, no server needed.

Each step is one ``BEGIN IMMEDIATE`` transaction: it reads the account and the session, works
the step out with ``engine.apply_step`` and writes the account, the session (or its tombstone)
and the record in the same transaction, so several processes on one file (the daemon, a CLI
doing a top-up, the workers of a test) are safe: SQLite serialises their writers.

The methods are ``async`` but run synchronously on the caller's thread: a step costs tens of
microseconds, less than a hop to a worker thread would, and SQLite admits one writer at a
time anyway. While another process holds the write lock a step waits (blocking the loop) up to
``busy_timeout_ms``, then raises ``BackendUnavailable``.

Durability: the database runs in WAL mode. With ``synchronous=NORMAL`` (the default) a crash
of any process loses nothing, but a power loss or OS crash may roll back the last committed
transactions — each one whole, money and record together, so the books still balance and a
retransmitted request is then simply done again. ``synchronous=FULL`` syncs every commit.

The record queue is the ``records`` table: appended in the step's transaction, handed out by
``read_records`` (which remembers the consumer and when), deleted by ``ack_records``. Triggers
keep its length in ``record_count``, which the steps the bound may refuse
(``engine.needs_queue_room``) compare with ``max_record_queue``. Claiming records another
consumer left unacknowledged uses the wall clock (``claim_idle_ms``); steps never read a
clock. Tombstones and closed markers past their expiry are deleted by
``expired_sessions`` (the reaper's call). A closed marker is a row of ``closed_markers`` keyed
by the 8-byte digest of account and session (``engine.marker_digest``) as one integer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any, TypeVar

import msgpack

from balances.engine import (
    AccountRow,
    ClosedMarker,
    NewRecord,
    SessionRow,
    apply_ledger,
    apply_step,
    check_ledger,
    check_limits,
    check_step,
    marker_digest,
    needs_queue_room,
    reads_marker,
)
from balances.model import (
    AccountKind,
    AccountLimits,
    AccountState,
    AccountStatus,
    LedgerKind,
    LedgerResult,
    OpenSession,
    QueuedRecord,
    RecordKind,
    Step,
    StepKind,
    StepResult,
)
from balances.settings import EmbeddedStoreSettings
from balances.store import BackendUnavailable

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    balance_micros INTEGER NOT NULL,
    held_micros INTEGER NOT NULL,
    credit_limit_micros INTEGER NOT NULL,
    daily_cap_micros INTEGER NOT NULL,
    monthly_cap_micros INTEGER NOT NULL,
    day_key TEXT NOT NULL,
    day_spent_micros INTEGER NOT NULL,
    month_key TEXT NOT NULL,
    month_spent_micros INTEGER NOT NULL,
    sessions INTEGER NOT NULL,
    max_sessions INTEGER NOT NULL,
    bundles BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    account_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    open INTEGER NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    deadline_ms INTEGER NOT NULL,
    state BLOB NOT NULL,
    holds BLOB NOT NULL,
    bundle_holds BLOB NOT NULL,
    result BLOB NOT NULL,
    context BLOB NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, session_id)
);
CREATE INDEX IF NOT EXISTS sessions_deadline ON sessions (deadline_ms) WHERE open = 1;
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_ms) WHERE open = 0;
CREATE INDEX IF NOT EXISTS sessions_by_id ON sessions (session_id) WHERE open = 1;
CREATE TABLE IF NOT EXISTS closed_markers (
    digest INTEGER PRIMARY KEY,
    request_number INTEGER NOT NULL,
    debited_micros INTEGER NOT NULL,
    context BLOB NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS closed_markers_expiry ON closed_markers (expires_ms);
CREATE TABLE IF NOT EXISTS ledger_keys (
    account_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    balance_micros INTEGER NOT NULL,
    PRIMARY KEY (account_id, idempotency_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    record_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    account_id TEXT NOT NULL,
    amount_micros INTEGER NOT NULL,
    balance_micros INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    consumer TEXT,
    delivered_ms INTEGER
);
CREATE INDEX IF NOT EXISTS records_by_consumer ON records (consumer, record_id);
CREATE TABLE IF NOT EXISTS record_count (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    n INTEGER NOT NULL
);
INSERT OR IGNORE INTO record_count (id, n) SELECT 0, count(*) FROM records
"""
# The queue's length, kept by triggers so that the bound costs one row read per opening step
# (count(*) walks the table); created with the count above in one transaction.
_COUNT_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS records_counted_in AFTER INSERT ON records "
    "BEGIN UPDATE record_count SET n = n + 1 WHERE id = 0; END",
    "CREATE TRIGGER IF NOT EXISTS records_counted_out AFTER DELETE ON records "
    "BEGIN UPDATE record_count SET n = n - 1 WHERE id = 0; END",
)

_ACCOUNT_COLUMNS = (
    "account_id, kind, status, balance_micros, held_micros, credit_limit_micros, "
    "daily_cap_micros, monthly_cap_micros, day_key, day_spent_micros, month_key, "
    "month_spent_micros, sessions, max_sessions, bundles"
)
_SESSION_COLUMNS = (
    "account_id, session_id, open, version, kind, deadline_ms, state, holds, bundle_holds, "
    "result, context, expires_ms"
)
_RECORD_COLUMNS = "record_id, kind, account_id, amount_micros, balance_micros, at_ms, payload"
_TOMBSTONE_PURGE_BATCH = 1000

_KINDS = {k.value: k for k in AccountKind}
_STATUSES = {s.value: s for s in AccountStatus}
_STEP_KINDS = {k.value: k for k in StepKind}
_RECORD_KINDS = {k.value: k for k in RecordKind}


def _pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value)
    return packed


def _account(row: tuple[Any, ...] | None) -> AccountRow | None:
    if row is None:
        return None
    return AccountRow(
        account_id=row[0],
        kind=_KINDS[row[1]],
        status=_STATUSES[row[2]],
        balance_micros=row[3],
        held_micros=row[4],
        credit_limit_micros=row[5],
        daily_cap_micros=row[6],
        monthly_cap_micros=row[7],
        day_key=row[8],
        day_spent_micros=row[9],
        month_key=row[10],
        month_spent_micros=row[11],
        sessions=row[12],
        max_sessions=row[13],
        bundles=msgpack.unpackb(row[14]) or {},
    )


def _session(row: tuple[Any, ...] | None) -> SessionRow | None:
    if row is None:
        return None
    bundle_holds = {b: (p, s) for b, (p, s) in (msgpack.unpackb(row[8]) or {}).items()}
    return SessionRow(
        account_id=row[0],
        session_id=row[1],
        open=bool(row[2]),
        version=row[3],
        kind=_STEP_KINDS[row[4]],
        deadline_ms=row[5],
        state=row[6],
        holds=msgpack.unpackb(row[7]) or {},
        bundle_holds=bundle_holds,
        result=row[9],
        context=row[10],
        expires_ms=row[11],
    )


def _digest(account_id: str, session_id: str) -> int:
    return int.from_bytes(marker_digest(account_id, session_id), "big", signed=True)


def _open_session(row: tuple[Any, ...]) -> OpenSession:
    return OpenSession(
        account_id=row[0],
        session_id=row[1],
        version=row[3],
        deadline_ms=row[5],
        state=row[6],
        holds=dict(msgpack.unpackb(row[7]) or {}),
    )


def _queued(row: tuple[Any, ...]) -> QueuedRecord:
    return QueuedRecord(
        record_id=str(row[0]),
        kind=_RECORD_KINDS[row[1]],
        payload=row[6],
        account_id=row[2],
        amount_micros=row[3],
        balance_micros=row[4],
        at_ms=row[5],
    )


class EmbeddedBalanceStore:
    """The ``BalanceStore`` on a SQLite file (created on first use)."""

    def __init__(
        self, path: str | PathLike[str], settings: EmbeddedStoreSettings | None = None
    ) -> None:
        self.settings = settings or EmbeddedStoreSettings()
        self._db = sqlite3.connect(
            path,
            isolation_level=None,
            timeout=self.settings.busy_timeout_ms / 1000,
            check_same_thread=False,
        )
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(self.settings.busy_timeout_ms)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute(f"PRAGMA synchronous = {self.settings.synchronous}")
            self._write(self._create_schema)
        except BaseException:
            self._db.close()
            raise

    def _create_schema(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"balance store schema {version} is newer than this program")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)
        for trigger in _COUNT_TRIGGERS:
            self._db.execute(trigger)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _write(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work`` in one write transaction; SQLite trouble is ``BackendUnavailable``."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                out = work(*args)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise BackendUnavailable(f"embedded store: {exc}") from exc
        return out

    def _read(self, work: Callable[..., T], *args: Any) -> T:
        try:
            return work(*args)
        except sqlite3.OperationalError as exc:
            raise BackendUnavailable(f"embedded store: {exc}") from exc

    # -- accounts ----------------------------------------------------------------------

    async def put_account(self, limits: AccountLimits) -> None:
        """Create an account with a zero balance, or update the limits of an existing one."""
        check_limits(limits)
        self._write(self._put_account, limits)

    def _put_account(self, limits: AccountLimits) -> None:
        new = AccountRow.new(limits)
        self._db.execute(
            f"INSERT INTO accounts ({_ACCOUNT_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (account_id) DO UPDATE SET kind = excluded.kind, "
            "status = excluded.status, credit_limit_micros = excluded.credit_limit_micros, "
            "daily_cap_micros = excluded.daily_cap_micros, "
            "monthly_cap_micros = excluded.monthly_cap_micros, "
            "max_sessions = excluded.max_sessions",
            self._account_values(new),
        )

    @staticmethod
    def _account_values(a: AccountRow) -> tuple[Any, ...]:
        return (
            a.account_id,
            a.kind.value,
            a.status.value,
            a.balance_micros,
            a.held_micros,
            a.credit_limit_micros,
            a.daily_cap_micros,
            a.monthly_cap_micros,
            a.day_key,
            a.day_spent_micros,
            a.month_key,
            a.month_spent_micros,
            a.sessions,
            a.max_sessions,
            _pack(a.bundles),
        )

    def _load_account(self, account_id: str) -> AccountRow | None:
        return _account(
            self._db.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE account_id = ?", (account_id,)
            ).fetchone()
        )

    def _save_account(self, a: AccountRow) -> None:
        self._db.execute(
            "UPDATE accounts SET balance_micros = ?, held_micros = ?, day_key = ?, "
            "day_spent_micros = ?, month_key = ?, month_spent_micros = ?, sessions = ?, "
            "bundles = ? WHERE account_id = ?",
            (
                a.balance_micros,
                a.held_micros,
                a.day_key,
                a.day_spent_micros,
                a.month_key,
                a.month_spent_micros,
                a.sessions,
                _pack(a.bundles),
                a.account_id,
            ),
        )

    async def get_account(self, account_id: str) -> AccountState | None:
        """Return an account's state, or None if the store does not know it."""
        account = self._read(self._load_account, account_id)
        return account.state() if account is not None else None

    # -- steps -------------------------------------------------------------------------

    async def step(self, step: Step) -> StepResult:
        """Run one atomic step (hold, close or event)."""
        check_step(step)
        if step.gate is not None:
            raise ValueError("the embedded store folds no gate into a step")
        return self._write(self._step, step)

    def _step(self, step: Step) -> StepResult:
        db = self._db
        account = self._load_account(step.account_id)
        session = _session(
            db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE account_id = ? AND session_id = ?",
                (step.account_id, step.session_id),
            ).fetchone()
        )
        marker = None
        if reads_marker(step):
            found = db.execute(
                "SELECT request_number, debited_micros, context, expires_ms FROM closed_markers "
                "WHERE digest = ?",
                (_digest(step.account_id, step.session_id),),
            ).fetchone()
            marker = ClosedMarker(*found) if found is not None else None
        bound = self.settings.max_record_queue
        queue_full = False
        if bound and needs_queue_room(step):
            (queued,) = db.execute("SELECT n FROM record_count WHERE id = 0").fetchone()
            queue_full = queued >= bound
        applied = apply_step(account, session, step, marker, queue_full)
        if applied.account is not None:
            self._save_account(applied.account)
        if applied.session is not None:
            s = applied.session
            db.execute(
                f"INSERT OR REPLACE INTO sessions ({_SESSION_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    s.account_id,
                    s.session_id,
                    int(s.open),
                    s.version,
                    s.kind.value,
                    s.deadline_ms,
                    s.state,
                    _pack(s.holds),
                    _pack({b: list(v) for b, v in s.bundle_holds.items()}),
                    s.result,
                    s.context,
                    s.expires_ms,
                ),
            )
        if applied.record is not None:
            self._append(applied.record)
        if applied.marker is not None:
            m = applied.marker
            db.execute(
                "INSERT OR REPLACE INTO closed_markers (digest, request_number, debited_micros, "
                "context, expires_ms) VALUES (?, ?, ?, ?, ?)",
                (
                    _digest(step.account_id, step.session_id),
                    m.request_number,
                    m.debited_micros,
                    m.context,
                    m.expires_ms,
                ),
            )
        return applied.result

    def _append(self, record: NewRecord) -> None:
        self._db.execute(
            "INSERT INTO records (kind, account_id, amount_micros, balance_micros, at_ms, "
            "payload) VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.kind.value,
                record.account_id,
                record.amount_micros,
                record.balance_micros,
                record.at_ms,
                record.payload,
            ),
        )

    async def ledger(
        self,
        account_id: str,
        kind: LedgerKind,
        amount_micros: int,
        idempotency_key: str,
        record: bytes,
        now_ms: int,
    ) -> LedgerResult:
        """Credit (or, negative, debit) an account outside calls and queue its ledger record."""
        check_ledger(account_id, amount_micros, idempotency_key, now_ms)
        return self._write(self._ledger, account_id, amount_micros, idempotency_key, record, now_ms)

    def _ledger(
        self, account_id: str, amount_micros: int, key: str, record: bytes, now_ms: int
    ) -> LedgerResult:
        db = self._db
        seen = db.execute(
            "SELECT balance_micros FROM ledger_keys WHERE account_id = ? AND idempotency_key = ?",
            (account_id, key),
        ).fetchone()
        result, account, new = apply_ledger(
            self._load_account(account_id),
            amount_micros,
            seen[0] if seen is not None else None,
            record,
            now_ms,
        )
        if account is not None and new is not None:
            self._save_account(account)
            db.execute(
                "INSERT INTO ledger_keys (account_id, idempotency_key, balance_micros) "
                "VALUES (?, ?, ?)",
                (account_id, key, account.balance_micros),
            )
            self._append(new)
        return result

    # -- sessions ----------------------------------------------------------------------

    async def get_session(self, account_id: str, session_id: str) -> OpenSession | None:
        """Return an open session of an account."""
        row = self._read(
            lambda: self._db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions "
                "WHERE account_id = ? AND session_id = ? AND open = 1",
                (account_id, session_id),
            ).fetchone()
        )
        return _open_session(row) if row is not None else None

    async def find_session_account(self, session_id: str) -> str | None:
        """Return the account of an open session known only by its id."""
        row = self._read(
            lambda: self._db.execute(
                "SELECT account_id FROM sessions WHERE session_id = ? AND open = 1 LIMIT 1",
                (session_id,),
            ).fetchone()
        )
        return row[0] if row is not None else None

    async def expired_sessions(self, now_ms: int, limit: int) -> list[OpenSession]:
        """Return up to ``limit`` open sessions whose deadline has passed.

        Also deletes tombstones and closed markers that have expired by ``now_ms``.
        """
        return self._write(self._expired_sessions, now_ms, limit)

    def _expired_sessions(self, now_ms: int, limit: int) -> list[OpenSession]:
        db = self._db
        db.execute(
            "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions "
            "WHERE open = 0 AND expires_ms <= ? LIMIT ?)",
            (now_ms, _TOMBSTONE_PURGE_BATCH),
        )
        db.execute(
            "DELETE FROM closed_markers WHERE digest IN (SELECT digest FROM closed_markers "
            "WHERE expires_ms <= ? LIMIT ?)",
            (now_ms, _TOMBSTONE_PURGE_BATCH),
        )
        rows = db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE open = 1 AND deadline_ms <= ? "
            "ORDER BY deadline_ms LIMIT ?",
            (now_ms, limit),
        ).fetchall()
        return [_open_session(row) for row in rows]

    async def count_open_sessions(self) -> int:
        """How many sessions are open."""
        row = self._db.execute("SELECT COUNT(*) FROM sessions WHERE open = 1").fetchone()
        return int(row[0])

    async def open_sessions(self, limit: int) -> list[OpenSession]:
        """Return up to ``limit`` open sessions, soonest deadline first."""
        rows = self._db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE open = 1 ORDER BY deadline_ms LIMIT ?",
            (limit,),
        ).fetchall()
        return [_open_session(row) for row in rows]

    # -- record queue ------------------------------------------------------------------

    async def read_records(
        self, consumer: str, count: int, block_ms: int, *, new_only: bool = False
    ) -> list[QueuedRecord]:
        """Return queued records not yet acknowledged (first those this consumer left).

        ``new_only``: only records no consumer was given yet, neither this consumer's pending
        ones nor any claimed from others: what a reader asks for while it still holds records
        it read before and has not acknowledged (a plain read would hand those back).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_ms / 1000
        while True:
            found: list[QueuedRecord] = []
            if count > 0 and self._read(self._any_record, consumer, new_only):
                found = self._write(self._read_records, consumer, count, new_only)
            if found or count <= 0 or loop.time() >= deadline:
                return found
            await asyncio.sleep(
                min(self.settings.poll_interval_ms / 1000, max(0.0, deadline - loop.time()))
            )

    def _any_record(self, consumer: str, new_only: bool) -> bool:
        """Whether a read would find something (without the write lock: polls stay cheap)."""
        if new_only:
            found = self._db.execute("SELECT 1 FROM records WHERE consumer IS NULL LIMIT 1")
            return found.fetchone() is not None
        now_ms = int(time.time() * 1000)
        row = self._db.execute(
            "SELECT 1 FROM records WHERE consumer IS NULL OR consumer = ? "
            "OR delivered_ms <= ? LIMIT 1",
            (consumer, now_ms - self.settings.claim_idle_ms),
        ).fetchone()
        return row is not None

    def _read_records(self, consumer: str, count: int, new_only: bool) -> list[QueuedRecord]:
        db = self._db
        now_ms = int(time.time() * 1000)
        rows: list[Any] = []
        if not new_only:
            rows = db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE consumer = ? "
                "ORDER BY record_id LIMIT ?",
                (consumer, count),
            ).fetchall()
        if len(rows) < count and not new_only:
            rows += db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE consumer IS NOT NULL "
                "AND consumer != ? AND delivered_ms <= ? ORDER BY record_id LIMIT ?",
                (consumer, now_ms - self.settings.claim_idle_ms, count - len(rows)),
            ).fetchall()
        if len(rows) < count:
            rows += db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE consumer IS NULL "
                "ORDER BY record_id LIMIT ?",
                (count - len(rows),),
            ).fetchall()
        db.executemany(
            "UPDATE records SET consumer = ?, delivered_ms = ? WHERE record_id = ?",
            [(consumer, now_ms, row[0]) for row in rows],
        )
        return [_queued(row) for row in rows]

    async def ack_records(self, records: Sequence[QueuedRecord]) -> None:
        """Remove records from the queue once they are stored for good."""
        ids = [(int(r.record_id),) for r in records]
        if ids:
            self._write(
                lambda: self._db.executemany("DELETE FROM records WHERE record_id = ?", ids)
            )

    async def queue_depth(self) -> int:
        """Return how many records wait in the queue."""
        row = self._read(lambda: self._db.execute("SELECT count(*) FROM records").fetchone())
        return int(row[0])

    async def close(self) -> None:
        """Close the database file."""
        self._db.close()
