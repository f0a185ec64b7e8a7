"""The rate deck CSV format: parsing and validation, all-or-nothing, errors naming the line.

The first line is a header; columns are matched by name, case-insensitively, in any order,
with the names carriers commonly use accepted as aliases (``docs/`` and
``config/rates.sample.csv`` describe the format). Required: a prefix and a rate per minute.
Optional: destination, connection fee, first block, increment, grace, a combined ``billing``
column such as ``30/6``, effective from / to, weekdays and a time-of-day band.

Nothing is half-parsed: ``parse_deck_csv`` returns every row or raises ``DeckFormatError``
listing every problem found (up to a limit), each as ``file:line: message``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo

from rating.deck import ALL_WEEKDAYS, SECONDS_PER_DAY, WEEKDAY_NAMES, Band, Rate
from rating.money import MoneyFormatError, parse_micros

MAX_ERRORS = 50
MAX_PREFIX_DIGITS = 20

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "prefix": ("prefix", "code", "dial code", "dialcode", "dial_code", "dialing code", "digits"),
    "destination": ("destination", "description", "name", "country", "dest", "destination name"),
    "rate": ("rate", "price", "rate per minute", "rate_per_minute", "per minute", "cost"),
    "connect_fee": (
        "connect_fee",
        "connection fee",
        "connection_fee",
        "connect fee",
        "setup fee",
        "setup_fee",
        "connection",
    ),
    "first_block": ("first_block", "first block", "minimum", "min", "initial", "first_block_s"),
    "increment": ("increment", "interval", "billing increment", "increment_s"),
    "grace": ("grace", "grace_s", "grace period", "free seconds"),
    "billing": ("billing", "billing interval", "billing increments", "min/inc"),
    "effective_from": (
        "effective_from",
        "effective from",
        "effective date",
        "effective",
        "start date",
        "valid from",
        "start",
    ),
    "effective_to": ("effective_to", "effective to", "end date", "valid to", "expires", "end"),
    "weekdays": ("weekdays", "days", "day of week", "days of week"),
    "time_from": ("time_from", "time from", "from time", "start time", "peak start"),
    "time_to": ("time_to", "time to", "to time", "end time", "peak end"),
}
_ALIAS_TO_COLUMN = {alias: column for column, names in COLUMN_ALIASES.items() for alias in names}


class DeckFormatError(ValueError):
    """A deck file that cannot be imported; ``errors`` lists every ``file:line: message``."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        more = "" if len(errors) < MAX_ERRORS else f"\n(stopped after {MAX_ERRORS} errors)"
        super().__init__("\n".join(errors) + more)


@dataclass(frozen=True, slots=True)
class DeckDefaults:
    """Values for columns a file does not have."""

    first_block_s: int = 60
    increment_s: int = 60
    grace_s: int = 0
    connect_fee_micros: int = 0
    effective_from: int = 0
    """UTC epoch seconds; rows without their own date start here."""
    timezone: tzinfo = UTC
    """The zone of dates and times written without an offset."""


@dataclass(frozen=True, slots=True)
class DeckRow:
    """A parsed row and the line it came from."""

    line: int
    rate: Rate


@dataclass(slots=True)
class _Problems:
    filename: str
    errors: list[str] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{self.filename}:{line}: {message}")

    def full(self) -> bool:
        return len(self.errors) >= MAX_ERRORS


def _decode(data: bytes, filename: str, encoding: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DeckFormatError(
            [
                f"{filename}:{line}: not valid {encoding} text (byte 0x{data[exc.start]:02x}); "
                "convert the file or pass its encoding"
            ]
        ) from None


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


_PREFIX_RE = re.compile(rf"^\+?(\d{{1,{MAX_PREFIX_DIGITS}}})$")
_BILLING_RE = re.compile(r"^\s*(\d+)\s*[/+x:]\s*(\d+)\s*$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_prefix(text: str) -> str:
    """Return the digits of a prefix (a leading ``+`` is dropped), or raise ValueError."""
    match = _PREFIX_RE.match(text.strip())
    if not match:
        raise ValueError(f"prefix {text!r} must be 1-{MAX_PREFIX_DIGITS} digits")
    return match.group(1)


def parse_seconds(text: str, what: str, *, minimum: int = 0) -> int:
    """Parse a whole number of seconds (at least ``minimum``)."""
    cleaned = text.strip()
    if not cleaned.isdigit():
        raise ValueError(f"{what} {text!r} must be a whole number of seconds")
    value = int(cleaned)
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum} s")
    return value


def parse_instant(text: str, zone: tzinfo) -> int:
    """Parse an ISO date or date-time into UTC epoch seconds (local to ``zone`` if naive)."""
    cleaned = text.strip().replace("Z", "+00:00")
    try:
        if len(cleaned) == 10:
            moment = datetime.combine(date.fromisoformat(cleaned), time(0), tzinfo=zone)
        else:
            moment = datetime.fromisoformat(cleaned)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except ValueError:
        raise ValueError(f"date {text!r} is not YYYY-MM-DD or an ISO 8601 date-time") from None
    return int(moment.timestamp())


def parse_weekdays(text: str) -> int:
    """Parse ``mon-fri``, ``sat,sun``, ``all`` or ``1-5`` (1 = Monday) into a weekday mask."""
    cleaned = text.strip().lower()
    if cleaned in ("", "all", "*", "daily"):
        return ALL_WEEKDAYS
    mask = 0
    for part in re.split(r"[,\s]+", cleaned):
        if not part:
            continue
        ends = part.split("-")
        if len(ends) > 2:
            raise ValueError(f"weekdays {text!r}: cannot read {part!r}")
        days = [_weekday(e, text) for e in ends]
        if len(days) == 1:
            mask |= 1 << days[0]
        else:
            day = days[0]
            while True:
                mask |= 1 << day
                if day == days[1]:
                    break
                day = (day + 1) % 7
    return mask


def _weekday(token: str, text: str) -> int:
    token = token.strip()[:3]
    if token in WEEKDAY_NAMES:
        return WEEKDAY_NAMES.index(token)
    if token.isdigit() and 1 <= int(token) <= 7:
        return int(token) - 1
    raise ValueError(f"weekdays {text!r}: {token!r} is not a day (mon..sun or 1..7)")


def parse_time_of_day(text: str, *, end: bool = False) -> int:
    """Parse ``HH:MM[:SS]`` into seconds after midnight; ``24:00`` is allowed as an end."""
    match = _TIME_RE.match(text.strip())
    if not match:
        raise ValueError(f"time {text!r} is not HH:MM")
    hours, minutes, secs = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    value = hours * 3600 + minutes * 60 + secs
    limit = SECONDS_PER_DAY if end else SECONDS_PER_DAY - 1
    if minutes > 59 or secs > 59 or value > limit:
        raise ValueError(f"time {text!r} is not a time of day")
    return value


def parse_deck_csv(
    data: bytes,
    *,
    filename: str = "<deck>",
    defaults: DeckDefaults | None = None,
    encoding: str = "utf-8",
) -> list[DeckRow]:
    """Parse and validate a whole deck file; return every row or raise ``DeckFormatError``."""
    defaults = defaults or DeckDefaults()
    text = _decode(data, filename, encoding)
    problems = _Problems(filename)
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(first_line))
    try:
        header = next(reader)
    except StopIteration:
        raise DeckFormatError([f"{filename}:1: the file is empty"]) from None
    columns: dict[str, int] = {}
    for position, name in enumerate(header):
        key = _ALIAS_TO_COLUMN.get(name.strip().lower())
        if key is None:
            problems.add(1, f"unknown column {name.strip()!r}")
        elif key in columns:
            problems.add(1, f"column {name.strip()!r} repeats {key!r}")
        else:
            columns[key] = position
    for required in ("prefix", "rate"):
        if required not in columns:
            problems.add(1, f"missing column {required!r}")
    if problems.errors:
        raise DeckFormatError(problems.errors)

    rows: list[DeckRow] = []
    destinations: dict[str, str] = {}
    for record in reader:
        line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        if problems.full():
            break
        if len(record) != len(header):
            problems.add(line, f"expected {len(header)} fields, found {len(record)}")
            continue
        try:
            rate = _parse_row(record, columns, defaults, destinations)
        except (ValueError, MoneyFormatError) as exc:
            problems.add(line, str(exc))
            continue
        rows.append(DeckRow(line, rate))
    if not rows and not problems.errors:
        problems.add(2, "the file has a header but no rates")
    if not problems.full():
        _check_overlaps(rows, problems)
    if problems.errors:
        raise DeckFormatError(problems.errors)
    return rows


def _parse_row(
    record: list[str],
    columns: dict[str, int],
    defaults: DeckDefaults,
    destinations: dict[str, str],
) -> Rate:
    def cell(name: str) -> str:
        position = columns.get(name)
        return record[position].strip() if position is not None else ""

    prefix = parse_prefix(cell("prefix"))
    raw_rate = cell("rate")
    if not raw_rate:
        raise ValueError("rate is empty")
    if raw_rate.lstrip().startswith("-"):
        raise ValueError(f"rate {raw_rate!r} is negative")
    rate_micros = parse_micros(raw_rate)
    fee_text = cell("connect_fee")
    if fee_text.startswith("-"):
        raise ValueError(f"connection fee {fee_text!r} is negative")
    connect_fee = parse_micros(fee_text) if fee_text else defaults.connect_fee_micros
    first_block = defaults.first_block_s
    increment = defaults.increment_s
    billing = cell("billing")
    if billing:
        match = _BILLING_RE.match(billing)
        if not match:
            raise ValueError(f"billing {billing!r} is not FIRST/INCREMENT such as 60/60")
        first_block, increment = int(match.group(1)), int(match.group(2))
    if cell("first_block"):
        first_block = parse_seconds(cell("first_block"), "first block")
    if cell("increment"):
        increment = parse_seconds(cell("increment"), "increment", minimum=1)
    if increment < 1:
        raise ValueError("increment must be at least 1 s")
    grace = parse_seconds(cell("grace"), "grace") if cell("grace") else defaults.grace_s
    start = (
        parse_instant(cell("effective_from"), defaults.timezone)
        if cell("effective_from")
        else defaults.effective_from
    )
    end = parse_instant(cell("effective_to"), defaults.timezone) if cell("effective_to") else None
    if end is not None and end <= start:
        raise ValueError("effective_to must be after effective_from")
    band = None
    weekdays_text, from_text, to_text = cell("weekdays"), cell("time_from"), cell("time_to")
    if weekdays_text or from_text or to_text:
        if bool(from_text) != bool(to_text):
            raise ValueError("a time band needs both time_from and time_to")
        weekdays = parse_weekdays(weekdays_text)
        start_s = parse_time_of_day(from_text) if from_text else 0
        end_s = parse_time_of_day(to_text, end=True) if to_text else SECONDS_PER_DAY
        if start_s == end_s:
            raise ValueError("time_from and time_to must differ")
        if end_s == SECONDS_PER_DAY and start_s == 0 and weekdays == ALL_WEEKDAYS:
            band = None
        else:
            band = Band(weekdays, start_s, end_s)
    destination = cell("destination")
    # One string object per distinct name: a million-row deck repeats a few hundred names.
    destination = destinations.setdefault(destination, destination)
    return Rate(
        prefix=prefix,
        destination=destination,
        rate_micros=rate_micros,
        connect_fee_micros=connect_fee,
        first_block_s=first_block,
        increment_s=increment,
        grace_s=grace,
        effective_from=start,
        effective_to=end,
        band=band,
    )


def _periods_overlap(a: Rate, b: Rate) -> bool:
    a_end = a.effective_to if a.effective_to is not None else 1 << 62
    b_end = b.effective_to if b.effective_to is not None else 1 << 62
    return a.effective_from < b_end and b.effective_from < a_end


def _check_overlaps(rows: list[DeckRow], problems: _Problems) -> None:
    by_prefix: dict[str, list[DeckRow]] = {}
    for row in rows:
        by_prefix.setdefault(row.rate.prefix, []).append(row)
    for prefix, same in by_prefix.items():
        if len(same) == 1:
            continue
        for i, first in enumerate(same):
            for second in same[i + 1 :]:
                a, b = first.rate, second.rate
                if not _periods_overlap(a, b):
                    continue
                if a.band is not None and b.band is not None and not a.band.overlaps(b.band):
                    continue
                kind = (
                    "duplicate prefix"
                    if a.band is None and b.band is None and a.effective_from == b.effective_from
                    else "overlapping rates for prefix"
                )
                problems.add(second.line, f"{kind} {prefix} (also on line {first.line})")
                if problems.full():
                    return
