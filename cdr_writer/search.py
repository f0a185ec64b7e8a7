"""CDR searches as SQL: filters, newest first, keyset pagination; daily reports from rollups.

The text is written once for SQLite and PostgreSQL with ``?`` placeholders (the records
database wrapper adapts them). A search is ordered by (start_at, cdr_id) descending, and the
next page starts strictly after the last row seen (the cursor), so a page never repeats or
skips a row however many CDRs arrive meanwhile, and no OFFSET is ever scanned.

Number and tenant filters are prefix searches: ``LIKE 'p%'`` on PostgreSQL (its indexes use
``text_pattern_ops``), a range on SQLite (whose ``LIKE`` ignores case and its indexes).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

Dialect = Literal["sqlite", "postgresql"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

LIST_COLUMNS = (
    "start_at",
    "cdr_id",
    "account_id",
    "calling",
    "called",
    "destination",
    "carrier",
    "duration_s",
    "billed_s",
    "charge_micros",
    "currency",
    "hangup_cause",
    "problems",
)
"""What ``ocsd cdr search`` shows per CDR."""

EXPORT_COLUMNS = (
    "cdr_id",
    "kind",
    "start_at",
    "answer_at",
    "end_at",
    "timezone",
    "account_id",
    "tenant_path",
    "session_id",
    "request_number",
    "protocol",
    "peer",
    "node",
    "calling_raw",
    "called_raw",
    "calling",
    "called",
    "diversion",
    "routing_number",
    "caller_ip",
    "carrier",
    "trunk",
    "prefix",
    "destination",
    "deck_id",
    "deck_version",
    "rate_micros",
    "connect_fee_micros",
    "duration_s",
    "billed_s",
    "bundle_id",
    "bundle_s",
    "charge_micros",
    "charge_unrounded",
    "debited_micros",
    "balance_after_micros",
    "currency",
    "fx_rate",
    "levels",
    "carrier_cost_micros",
    "carrier_currency",
    "hangup_cause",
    "sip_status",
    "q850_cause",
    "hangup_side",
    "flags",
    "problems",
    "extra",
    "trace",
    "record_id",
    "queued_at",
    "written_at",
)
"""Every column, in reading order (CSV export and ``ocsd cdr show``)."""

MONEY_COLUMNS = frozenset(
    {
        "charge_micros",
        "debited_micros",
        "balance_after_micros",
        "rate_micros",
        "connect_fee_micros",
        "carrier_cost_micros",
    }
)


class QueryError(ValueError):
    """A search that cannot be run (a bad cursor, an empty range, ...)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: just after this (start_at, cdr_id)."""

    start_at: datetime
    cdr_id: str

    def encode(self) -> str:
        """The cursor as a short opaque token."""
        micros = (self.start_at - _EPOCH) // timedelta(microseconds=1)
        raw = f"{micros}|{self.cdr_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Rebuild a cursor from ``encode``; raises QueryError on anything else."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            micros, cdr_id = raw.split("|", 1)
            start = _EPOCH + timedelta(microseconds=int(micros))
        except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError):
            raise QueryError(f"not a search cursor: {token!r}") from None
        if not cdr_id:
            raise QueryError(f"not a search cursor: {token!r}")
        return cls(start, cdr_id)


@dataclass(frozen=True, slots=True)
class CdrQuery:
    """Filters of a CDR search; every one given must hold."""

    account_id: str | None = None
    tenant_path: str | None = None
    """The subtree of a tenant: its path from the operator, such as ``/op/r1/``."""
    since: datetime | None = None
    """Started at or after."""
    until: datetime | None = None
    """Started before."""
    calling: str | None = None
    """A number, or a prefix ending in ``*``."""
    called: str | None = None
    destination: str | None = None
    carrier: str | None = None
    hangup_cause: str | None = None
    kind: str | None = None
    min_duration_s: int | None = None
    max_duration_s: int | None = None
    min_charge_micros: int | None = None
    max_charge_micros: int | None = None
    problems_only: bool = False
    extra_conditions: tuple[tuple[str, tuple[Any, ...]], ...] = field(default=())
    """Further ``(sql, params)`` conditions (tests, tools)."""

    def __post_init__(self) -> None:
        if self.since and self.until and self.until <= self.since:
            raise QueryError("the end of the time range must be after its start")
        if self.tenant_path is not None and not (
            self.tenant_path.startswith("/") and self.tenant_path.endswith("/")
        ):
            raise QueryError(f"a tenant path looks like /op/r1/, not {self.tenant_path!r}")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def prefix_condition(column: str, prefix: str, dialect: Dialect) -> tuple[str, list[Any]]:
    """SQL matching the values of ``column`` that start with ``prefix``."""
    if not prefix:
        return "1 = 1", []
    if dialect == "postgresql":
        return f"{column} LIKE ? ESCAPE '\\'", [_escape_like(prefix) + "%"]
    # SQLite compares text by code point: [prefix, prefix with its last character + 1).
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return f"({column} >= ? AND {column} < ?)", [prefix, upper]


def _number(column: str, value: str, dialect: Dialect) -> tuple[str, list[Any]]:
    if value.endswith("*"):
        return prefix_condition(column, value[:-1], dialect)
    return f"{column} = ?", [value]


def where(query: CdrQuery, dialect: Dialect, after: Cursor | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause (without the keyword) of a search, and its parameters."""
    parts: list[str] = []
    params: list[Any] = []

    def add(sql: str, *values: Any) -> None:
        parts.append(sql)
        params.extend(values)

    if query.account_id is not None:
        add("account_id = ?", query.account_id)
    if query.tenant_path is not None:
        sql, values = prefix_condition("tenant_path", query.tenant_path, dialect)
        add(sql, *values)
    if query.since is not None:
        add("start_at >= ?", query.since.astimezone(UTC))
    if query.until is not None:
        add("start_at < ?", query.until.astimezone(UTC))
    for column, value in (("calling", query.calling), ("called", query.called)):
        if value is not None:
            sql, values = _number(column, value, dialect)
            add(sql, *values)
    for column, value in (
        ("destination", query.destination),
        ("carrier", query.carrier),
        ("hangup_cause", query.hangup_cause),
        ("kind", query.kind),
    ):
        if value is not None:
            add(f"{column} = ?", value)
    for column, op, bound in (
        ("duration_s", ">=", query.min_duration_s),
        ("duration_s", "<=", query.max_duration_s),
        ("charge_micros", ">=", query.min_charge_micros),
        ("charge_micros", "<=", query.max_charge_micros),
    ):
        if bound is not None:
            add(f"{column} {op} ?", bound)
    if query.problems_only:
        add("problems <> ''")
    for extra_sql, extra_params in query.extra_conditions:
        add(extra_sql, *extra_params)
    if after is not None:
        add("(start_at, cdr_id) < (?, ?)", after.start_at, after.cdr_id)
    return (" AND ".join(parts) or "1 = 1"), params


def search_sql(
    query: CdrQuery,
    dialect: Dialect,
    *,
    columns: Sequence[str] = LIST_COLUMNS,
    limit: int | None = 50,
    after: Cursor | None = None,
) -> tuple[str, list[Any]]:
    """A search, newest first; ``limit`` None for every row (export)."""
    for required in ("start_at", "cdr_id"):
        if required not in columns:
            raise QueryError(f"a search returns {required}")
    condition, params = where(query, dialect, after)
    sql = (
        f"SELECT {', '.join(columns)} FROM cdrs WHERE {condition} "
        "ORDER BY start_at DESC, cdr_id DESC"
    )
    if limit is not None:
        if limit <= 0:
            raise QueryError("the page size must be positive")
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def cursor_after(row: Sequence[Any], columns: Sequence[str] = LIST_COLUMNS) -> Cursor:
    """The cursor of the page after ``row`` (the last row of a page)."""
    start = row[columns.index("start_at")]
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    return Cursor(start.astimezone(UTC), row[columns.index("cdr_id")])


REPORT_DIMENSIONS = ("day", "account_id", "destination", "carrier", "currency")
REPORT_MEASURES = (
    "calls",
    "answered",
    "duration_s",
    "billed_s",
    "charge_micros",
    "debited_micros",
)


@dataclass(frozen=True, slots=True)
class DailyQuery:
    """A report from ``cdr_daily``: UTC days ``since`` to ``until`` inclusive."""

    since: date
    until: date
    by: tuple[str, ...] = ("day", "account_id", "currency")
    account_id: str | None = None
    tenant_path: str | None = None
    destination: str | None = None
    carrier: str | None = None

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise QueryError("the report ends before it starts")
        unknown = [d for d in self.by if d not in REPORT_DIMENSIONS]
        if unknown:
            raise QueryError(
                f"cannot group by {', '.join(unknown)}; one of {', '.join(REPORT_DIMENSIONS)}"
            )
        if "currency" not in self.by:
            # Amounts in different currencies are never added together.
            object.__setattr__(self, "by", (*self.by, "currency"))


def daily_sql(query: DailyQuery, dialect: Dialect) -> tuple[str, list[Any]]:
    """The report's SQL: one row per group, measures summed."""
    parts = ["day >= ?", "day <= ?"]
    params: list[Any] = [query.since.isoformat(), query.until.isoformat()]
    for column, value in (
        ("account_id", query.account_id),
        ("destination", query.destination),
        ("carrier", query.carrier),
    ):
        if value is not None:
            parts.append(f"{column} = ?")
            params.append(value)
    if query.tenant_path is not None:
        sql, values = prefix_condition("tenant_path", query.tenant_path, dialect)
        parts.append(sql)
        params.extend(values)
    groups = ", ".join(query.by)
    measures = ", ".join(f"SUM({m})" for m in REPORT_MEASURES)
    sql = (
        f"SELECT {groups}, {measures} FROM cdr_daily WHERE {' AND '.join(parts)} "
        f"GROUP BY {groups} ORDER BY {groups}"
    )
    return sql, params
