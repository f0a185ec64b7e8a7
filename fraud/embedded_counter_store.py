"""The fraud counters for one node without Redis: in memory, saved to a SQLite file.

Each plan runs synchronously inside one call, so it is atomic within the process (the
embedded default runs one process). The same operations give the same answers as the Redis
script; ``tests/fraud/test_counter_store.py`` runs one contract against both.

The state is written to the file by ``maintain`` (every ``embedded_flush_interval_s``) and on
``close``, and a country added to an account's set is written at once: a restart loses at
most a few seconds of window counts, never the countries an account is known to call. Other
processes (``ocsd fraud test``) read the last saved state.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

from fraud.counters import CounterOp, CounterPlan, CounterValues, OpKind, as_if_applied, read_only
from fraud.engine import LIVE

Key = tuple[str, str]

SCHEMA = """
CREATE TABLE IF NOT EXISTS fraud_counters (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, name)
)
"""


class _Window:
    __slots__ = ("buckets", "expires_ms", "newest", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.total = 0
        """The sum of the buckets in the window ending at ``newest``."""
        self.newest = 0
        self.expires_ms = 0


class _Set:
    __slots__ = ("expires_ms", "members")

    def __init__(self) -> None:
        self.members: dict[str, int] = {}
        """Member -> when it was last added (ms)."""
        self.expires_ms = 0


class EmbeddedCounterStore:
    """Counters in this process, persisted to ``path`` (None: memory only)."""

    def __init__(self, path: str | Path | None = None, *, now_ms: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._windows: dict[Key, _Window] = {}
        self._live: dict[Key, dict[str, int]] = {}
        self._sets: dict[Key, _Set] = {}
        self._dirty: set[Key] = set()
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
            self._load(int(time.time() * 1000) if now_ms is None else now_ms)

    # -- persistence ---------------------------------------------------------------------

    def _load(self, now_ms: int) -> None:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT account_id, name, kind, data, expires_ms FROM fraud_counters "
            "WHERE expires_ms > ?",
            (now_ms,),
        ).fetchall()
        for account_id, name, kind, data, expires_ms in rows:
            key = (account_id, name)
            value = json.loads(data)
            if kind == "window":
                window = self._windows[key] = _Window()
                window.buckets = {int(b): int(v) for b, v in value["buckets"].items()}
                window.total = int(value["total"])
                window.newest = int(value["newest"])
                window.expires_ms = int(expires_ms)
            elif kind == "live":
                self._live[key] = {str(m): int(e) for m, e in value.items()}
            elif kind == "set":
                members = self._sets[key] = _Set()
                members.members = {str(m): int(t) for m, t in value.items()}
                members.expires_ms = int(expires_ms)

    def _row(self, key: Key) -> tuple[str, str, int] | None:
        window = self._windows.get(key)
        if window is not None and window.buckets:
            data = {"buckets": window.buckets, "total": window.total, "newest": window.newest}
            return "window", json.dumps(data), window.expires_ms
        live = self._live.get(key)
        if live:
            return "live", json.dumps(live), max(live.values())
        members = self._sets.get(key)
        if members is not None and members.members:
            return "set", json.dumps(members.members), members.expires_ms
        return None

    def _save(self, keys: set[Key]) -> None:
        if self._db is None or not keys:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for key in keys:
                row = self._row(key)
                if row is None:
                    db.execute("DELETE FROM fraud_counters WHERE account_id = ? AND name = ?", key)
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO fraud_counters (account_id, name, kind, data, "
                        "expires_ms) VALUES (?, ?, ?, ?, ?)",
                        (*key, *row),
                    )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def flush(self) -> None:
        """Write every counter changed since the last flush."""
        dirty, self._dirty = self._dirty, set()
        self._save(dirty)

    def expire(self, now_ms: int) -> None:
        """Forget counters whose time has passed."""
        for store in (self._windows, self._sets):
            for key in [k for k, v in store.items() if v.expires_ms <= now_ms]:
                del store[key]
                self._dirty.add(key)
        for key, members in list(self._live.items()):
            for member in [m for m, e in members.items() if e <= now_ms]:
                del members[member]
            if not members:
                del self._live[key]
            self._dirty.add(key)

    # -- operations ----------------------------------------------------------------------

    def _window(self, key: Key, op: CounterOp, now_ms: int, buckets: int) -> int:
        # The same steps as the Lua script: a running total, buckets leaving as time moves.
        window_ms = op.window_s * 1000
        width = math.ceil(window_ms / buckets)
        current = now_ms // width
        # Like a Redis key, a window's expiry only collects it (in ``expire``): what it holds
        # is decided by its buckets alone.
        window = self._windows.get(key)
        total = window.total if window is not None else 0
        newest = window.newest if window is not None else None
        gone: list[int] = []
        if window is not None and newest is not None and current > newest:
            gone = list(range(newest - buckets + 1, min(current - buckets, newest) + 1))
            total -= sum(window.buckets.get(b, 0) for b in gone)
        if op.add and (newest is None or current > newest - buckets):
            if window is None:
                window = self._windows[key] = _Window()
            for bucket in gone:
                window.buckets.pop(bucket, None)
            if newest is None or current > newest:
                newest = current
            window.buckets[current] = window.buckets.get(current, 0) + op.add
            total += op.add
            window.total, window.newest = total, newest
            window.expires_ms = max(window.expires_ms, now_ms + window_ms + width)
            self._dirty.add(key)
        elif newest is not None and newest <= current - buckets:
            total = 0
        return total

    def _live_op(self, key: Key, op: CounterOp, now_ms: int) -> tuple[int, bool]:
        members = self._live.get(key)
        if op.kind is OpKind.LIVE_COUNT:
            alive = sum(1 for e in members.values() if e > now_ms) if members else 0
            return alive + op.add, False
        if members is None:
            members = self._live[key] = {}
        for member in [m for m, e in members.items() if e <= now_ms]:
            del members[member]
        added = False
        if op.kind is OpKind.LIVE_ADD:
            added = op.member not in members
            members[op.member] = now_ms + op.window_s * 1000
        elif op.kind is OpKind.LIVE_TOUCH:
            if op.member in members:
                members[op.member] = now_ms + op.window_s * 1000
        else:
            members.pop(op.member, None)
        self._dirty.add(key)
        count = len(members)
        if not members:
            del self._live[key]
        return count, added

    def _set_op(self, key: Key, op: CounterOp, now_ms: int) -> int:
        members = self._sets.get(key)
        horizon = now_ms - op.window_s * 1000
        if op.kind is OpKind.SET_TEST:
            last = members.members.get(op.member) if members is not None else None
            return int(last is not None and last > horizon)
        if op.kind is OpKind.SET_SIZE:
            if members is None:
                return 0
            return sum(1 for last in members.members.values() if last > horizon)
        if op.kind is OpKind.SET_NEW:
            if members is None:
                return int(op.add <= 0)
            last = members.members.get(op.member)
            if last is not None and last > horizon:
                return 0
            size = sum(1 for last in members.members.values() if last > horizon)
            return int(size >= op.add)
        if members is None:
            members = self._sets[key] = _Set()
        last = members.members.get(op.member)
        new = last is None or last <= horizon
        members.members[op.member] = now_ms
        members.expires_ms = now_ms + op.window_s * 1000
        if new:
            # Rare and long-lived: written at once.
            self._save({key})
        else:
            self._dirty.add(key)
        return int(new)

    def apply_now(self, plan: CounterPlan) -> CounterValues:
        """Run a plan synchronously (what ``apply`` does)."""
        now_ms = plan.now_ms
        account = plan.account_id
        values: dict[str, int] = {}
        trips = 0
        live_registered = False
        live_added: tuple[Key, str] | None = None
        for op in plan.ops:
            key = (account, op.name)
            if op.kind is OpKind.WINDOW:
                value = self._window(key, op, now_ms, plan.buckets)
            elif op.kind in (OpKind.SET_TEST, OpKind.SET_SIZE, OpKind.SET_NEW, OpKind.SET_ADD):
                value = self._set_op(key, op, now_ms)
            else:
                value, added = self._live_op(key, op, now_ms)
                if op.kind is OpKind.LIVE_ADD:
                    live_registered = True
                    if added:
                        live_added = (key, op.member)
            if 0 <= op.trip_at <= value:
                trips += 1
            values[op.label] = value
        if trips and live_added is not None:
            key, member = live_added
            members = self._live.get(key)
            if members is not None:
                members.pop(member, None)
                if not members:
                    del self._live[key]
            live_registered = False
        return CounterValues(values, trips, live_registered)

    async def apply(self, plan: CounterPlan) -> CounterValues:
        """Run the plan's operations atomically (one synchronous pass)."""
        return self.apply_now(plan)

    async def peek(self, plan: CounterPlan) -> CounterValues:
        """Read what the plan would read, changing nothing."""
        return as_if_applied(plan, self.apply_now(read_only(plan)))

    async def live_sessions(self, account_id: str, now_ms: int) -> list[str]:
        """The sessions an account has up."""
        members = self._live.get((account_id, LIVE), {})
        return sorted(m for m, expiry in members.items() if expiry > now_ms)

    async def maintain(self, now: float) -> None:
        """Drop expired counters and save the changed ones."""
        self.expire(int(now * 1000))
        self.flush()

    async def close(self) -> None:
        """Save and close the file."""
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None


__all__ = ["EmbeddedCounterStore"]
