"""Monthly partitions of the PostgreSQL ``cdrs`` table: which months, their names and bounds.

Partitions are by the CDR's start time in UTC, one per calendar month, named
``cdrs_pYYYY_MM``. The writer keeps the previous month, the current one and
``partitions_ahead_months`` more in existence; ``cdrs_default`` takes anything else.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

DEFAULT_PARTITION = "cdrs_default"


def month_of(instant: datetime) -> date:
    """The first day of the UTC month of ``instant``."""
    utc = instant.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def add_months(month: date, count: int) -> date:
    """The first day of the month ``count`` months after ``month`` (negative: before)."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    """The table name of a month's partition."""
    return f"cdrs_p{month.year:04d}_{month.month:02d}"


def partition_bounds(month: date) -> tuple[datetime, datetime]:
    """The start (inclusive) and end (exclusive) of a month's partition, in UTC."""
    following = add_months(month, 1)
    return (
        datetime(month.year, month.month, 1, tzinfo=UTC),
        datetime(following.year, following.month, 1, tzinfo=UTC),
    )


def months_to_keep(now: datetime, ahead: int) -> list[date]:
    """The months whose partitions must exist at ``now``: the previous, current and ``ahead``."""
    current = month_of(now)
    return [add_months(current, offset) for offset in range(-1, ahead + 1)]
