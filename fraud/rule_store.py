"""Fraud lists, rule overrides and decisions in the records database (SQLite or PostgreSQL).

Every change to a list or an override is written with its audit entry (who, when, what
before, what after) in the same transaction, into the shared ``audit_log``: its highest id is
the change marker the daemon polls, so a change made with ``ocsd fraud ...`` on any node is in
force everywhere at the next reload. Decisions go to ``fraud_decisions`` in batches.

The store talks to a small ``SqlDatabase`` protocol (``ocsd.sql_store.Database`` is one): SQL
with ``?`` placeholders and aware UTC datetimes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from fraud.engine import FraudData
from fraud.listing import ListEntry, ListError, ListKind, Scope, check_entry, display_prefix
from fraud.model import Decision
from fraud.rule import RULE_IDS, RuleError, Rules, override_rule, rule_settings

LIST_ENTITY = "fraud_list"
RULE_ENTITY = "fraud_rule"
GLOBAL_ID = "*"


class FraudStoreError(ValueError):
    """A change that cannot be made; the message says why."""


class SqlDatabase(Protocol):
    """What the store needs from a database connection."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the rows changed."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query; return every row."""

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run a query; return its first row."""

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows fast."""

    def transaction(self) -> AbstractContextManager[None]:
        """All or nothing."""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A list entry with who added it and when."""

    entry: ListEntry
    created_at: datetime
    created_by: str


def _now() -> datetime:
    return datetime.now(UTC)


def entity_id(scope: Scope, owner: str) -> str:
    """How a list's owner is named in the audit log: ``*``, the account, or ``peer:NAME``."""
    if scope is Scope.GLOBAL:
        return GLOBAL_ID
    return owner if scope is Scope.ACCOUNT else f"peer:{owner}"


DECISION_COLUMNS = (
    "at",
    "node",
    "account_id",
    "rule_id",
    "stage",
    "actions",
    "suppressed",
    "message",
    "details",
    "session_id",
    "called",
    "target",
    "undo",
)


class FraudStore:
    """Reads and changes the fraud data; every change is audited."""

    def __init__(self, db: SqlDatabase, actor: str = "ocsd") -> None:
        self.db = db
        self.actor = actor

    def _audit(
        self,
        entity: str,
        entity_id_: str,
        field: str,
        before: str | None,
        after: str | None,
        note: str = "",
    ) -> None:
        self.db.execute(
            "INSERT INTO audit_log (at, actor, entity, entity_id, field, before_value, "
            "after_value, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (_now(), self.actor, entity, entity_id_, field, before, after, note),
        )

    def _require_account(self, account_id: str) -> None:
        if self.db.query_one("SELECT 1 FROM accounts WHERE account_id = ?", (account_id,)) is None:
            raise FraudStoreError(f"no account {account_id!r}")

    # -- lists ---------------------------------------------------------------------------

    def add_entry(self, entry: ListEntry, *, exist_ok: bool = False) -> bool:
        """Add a list entry; False when it was there already (an error unless ``exist_ok``)."""
        try:
            entry = check_entry(entry)
        except ListError as exc:
            raise FraudStoreError(str(exc)) from None
        with self.db.transaction():
            if entry.scope is Scope.ACCOUNT:
                self._require_account(entry.owner)
            found = self.db.query_one(
                "SELECT 1 FROM fraud_list_entries WHERE list = ? AND scope = ? AND owner = ? "
                "AND value = ?",
                (entry.kind.value, entry.scope.value, entry.owner, entry.value),
            )
            if found is not None:
                if exist_ok:
                    return False
                raise FraudStoreError(
                    f"{display_prefix(entry.value)} is already on the {entry.kind.value} list "
                    f"of {entity_id(entry.scope, entry.owner)}"
                )
            self.db.execute(
                "INSERT INTO fraud_list_entries (list, scope, owner, value, source, note, "
                "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.kind.value,
                    entry.scope.value,
                    entry.owner,
                    entry.value,
                    entry.source or self.actor,
                    entry.note,
                    _now(),
                    self.actor,
                ),
            )
            self._audit(
                LIST_ENTITY,
                entity_id(entry.scope, entry.owner),
                entry.kind.value,
                None,
                display_prefix(entry.value),
                entry.note,
            )
        return True

    def remove_entry(self, kind: ListKind, scope: Scope, owner: str, value: str) -> None:
        """Remove a list entry (an error when it is not there)."""
        try:
            entry = check_entry(ListEntry(kind, scope, owner, value))
        except ListError as exc:
            raise FraudStoreError(str(exc)) from None
        with self.db.transaction():
            removed = self.db.execute(
                "DELETE FROM fraud_list_entries WHERE list = ? AND scope = ? AND owner = ? "
                "AND value = ?",
                (kind.value, scope.value, entry.owner, entry.value),
            )
            if not removed:
                raise FraudStoreError(
                    f"{display_prefix(entry.value)} is not on the {kind.value} list of "
                    f"{entity_id(scope, entry.owner)}"
                )
            self._audit(
                LIST_ENTITY,
                entity_id(scope, entry.owner),
                kind.value,
                display_prefix(entry.value),
                None,
            )

    def entries(
        self,
        kind: ListKind | None = None,
        scope: Scope | None = None,
        owner: str | None = None,
    ) -> list[StoredEntry]:
        """List entries, filtered."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("list", kind.value if kind else None),
            ("scope", scope.value if scope else None),
            ("owner", owner),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.query(
            "SELECT list, scope, owner, value, source, note, created_at, created_by "
            f"FROM fraud_list_entries {where} ORDER BY scope, owner, list, value",
            params,
        )
        return [
            StoredEntry(
                ListEntry(ListKind(r[0]), Scope(r[1]), r[2], r[3], r[4], r[5]),
                _aware(r[6]),
                r[7],
            )
            for r in rows
        ]

    def block(self, account_id: str, prefix: str, reason: str) -> bool:
        """Block a destination for an account (a fraud action); False if already blocked."""
        return self.add_entry(
            ListEntry(ListKind.BLOCKED, Scope.ACCOUNT, account_id, prefix, self.actor, reason),
            exist_ok=True,
        )

    def unblock(self, account_id: str, prefix: str) -> None:
        """Lift a block."""
        self.remove_entry(ListKind.BLOCKED, Scope.ACCOUNT, account_id, prefix)

    # -- rule overrides ------------------------------------------------------------------

    def _override_row(self, scope: Scope, owner: str, rule_id: str) -> dict[str, object] | None:
        row = self.db.query_one(
            "SELECT settings FROM fraud_rule_overrides WHERE scope = ? AND owner = ? AND "
            "rule_id = ?",
            (scope.value, owner, rule_id),
        )
        return None if row is None else dict(json.loads(row[0]))

    def set_override(
        self, account_id: str | None, rule_id: str, changes: Mapping[str, object]
    ) -> dict[str, object]:
        """Change some settings of a rule for every account (None) or one; return the
        override now in force. Values are checked against the rule's types and limits."""
        if rule_id not in RULE_IDS:
            raise FraudStoreError(f"no rule {rule_id!r}; rules: {', '.join(RULE_IDS)}")
        scope = Scope.GLOBAL if account_id is None else Scope.ACCOUNT
        owner = account_id or ""
        with self.db.transaction():
            if account_id is not None:
                self._require_account(account_id)
            before = self._override_row(scope, owner, rule_id)
            merged: dict[str, object] = {**(before or {}), **changes}
            try:
                checked = override_rule(rule_id, Rules().get(rule_id), merged)
            except RuleError as exc:
                raise FraudStoreError(str(exc)) from None
            stored = {k: v for k, v in rule_settings(checked).items() if k in merged}
            text = json.dumps(stored, sort_keys=True)
            self.db.execute(
                "DELETE FROM fraud_rule_overrides WHERE scope = ? AND owner = ? AND rule_id = ?",
                (scope.value, owner, rule_id),
            )
            self.db.execute(
                "INSERT INTO fraud_rule_overrides (scope, owner, rule_id, settings, updated_at, "
                "updated_by) VALUES (?, ?, ?, ?, ?, ?)",
                (scope.value, owner, rule_id, text, _now(), self.actor),
            )
            self._audit(
                RULE_ENTITY,
                entity_id(scope, owner),
                rule_id,
                None if before is None else json.dumps(before, sort_keys=True),
                text,
            )
        return stored

    def clear_override(self, account_id: str | None, rule_id: str) -> None:
        """Remove a rule override: the configuration (or the global override) applies again."""
        scope = Scope.GLOBAL if account_id is None else Scope.ACCOUNT
        owner = account_id or ""
        with self.db.transaction():
            before = self._override_row(scope, owner, rule_id)
            if before is None:
                raise FraudStoreError(f"no override of {rule_id} for {entity_id(scope, owner)}")
            self.db.execute(
                "DELETE FROM fraud_rule_overrides WHERE scope = ? AND owner = ? AND rule_id = ?",
                (scope.value, owner, rule_id),
            )
            self._audit(
                RULE_ENTITY,
                entity_id(scope, owner),
                rule_id,
                json.dumps(before, sort_keys=True),
                None,
            )

    def overrides(self) -> dict[str, dict[str, dict[str, object]]]:
        """Every override: account id (``""`` for all accounts) -> rule id -> settings."""
        out: dict[str, dict[str, dict[str, object]]] = {}
        for scope, owner, rule_id, settings in self.db.query(
            "SELECT scope, owner, rule_id, settings FROM fraud_rule_overrides "
            "ORDER BY scope, owner, rule_id"
        ):
            key = "" if scope == Scope.GLOBAL.value else owner
            out.setdefault(key, {})[rule_id] = dict(json.loads(settings))
        return out

    # -- snapshot ------------------------------------------------------------------------

    def change_marker(self) -> int:
        """The highest audit id (grows with every change to lists and overrides)."""
        row = self.db.query_one("SELECT MAX(audit_id) FROM audit_log")
        return int(row[0]) if row and row[0] is not None else 0

    def snapshot(self) -> FraudData:
        """Everything the engine needs from the database, read consistently."""
        with self.db.transaction():
            return FraudData(
                tuple(stored.entry for stored in self.entries()),
                self.overrides(),
                self.change_marker(),
            )

    # -- decisions -----------------------------------------------------------------------

    def record_decisions(self, decisions: Sequence[Decision], node: str = "") -> int:
        """Append decisions to the decision log."""
        rows = [
            (
                datetime.fromtimestamp(d.at, UTC),
                node,
                d.account_id,
                d.rule_id,
                d.stage.value,
                ",".join(a.value for a in d.actions),
                ",".join(a.value for a in d.suppressed),
                d.message,
                json.dumps(dict(d.values), sort_keys=True),
                d.session_id,
                d.called,
                d.target,
                "\n".join(d.undo),
            )
            for d in decisions
        ]
        with self.db.transaction():
            return self.db.insert_many("fraud_decisions", DECISION_COLUMNS, rows)

    def decisions(
        self, account_id: str | None = None, rule_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Decisions, newest first."""
        clauses: list[str] = []
        params: list[Any] = []
        if account_id:
            clauses.append("account_id = ?")
            params.append(account_id)
        if rule_id:
            clauses.append("rule_id = ?")
            params.append(rule_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.query(
            f"SELECT decision_id, {', '.join(DECISION_COLUMNS)} FROM fraud_decisions {where} "
            "ORDER BY decision_id DESC LIMIT ?",
            (*params, limit),
        )
        out = []
        for row in rows:
            item = dict(zip(("decision_id", *DECISION_COLUMNS), row, strict=True))
            item["at"] = _aware(item["at"])
            item["details"] = json.loads(item["details"])
            item["undo"] = item["undo"].split("\n") if item["undo"] else []
            out.append(item)
        return out

    def changes(self, owner: str | None = None, limit: int = 50) -> list[tuple[Any, ...]]:
        """Audit entries of list and rule changes, newest first."""
        params: list[Any] = [LIST_ENTITY, RULE_ENTITY]
        extra = ""
        if owner is not None:
            extra = " AND entity_id = ?"
            params.append(owner)
        return self.db.query(
            "SELECT audit_id, at, actor, entity, entity_id, field, before_value, after_value, "
            f"note FROM audit_log WHERE entity IN (?, ?){extra} ORDER BY audit_id DESC LIMIT ?",
            (*params, limit),
        )


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


__all__ = [
    "DECISION_COLUMNS",
    "FraudStore",
    "FraudStoreError",
    "SqlDatabase",
    "StoredEntry",
    "entity_id",
]
