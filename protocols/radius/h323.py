"""Cisco voice VSA values: the h323 time format and ``name=value`` prefixes.

Cisco gateways send times as ``hh:mm:ss.mmm ZONE Day Mon dd yyyy``, for example
``15:31:22.123 UTC Wed Dec 4 2024``. A leading ``*`` says the gateway clock is not
authoritative, a leading ``.`` that it is authoritative but NTP lost synchronisation (Cisco IOS
``show clock`` markers). Zone names are abbreviations; only the unambiguous ones below are
known unless the caller passes its own table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Final, NamedTuple

__all__ = ["H323_ZONES", "H323Time", "format_h323_time", "parse_h323_time", "strip_vsa_name"]

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)

H323_ZONES: Final[Mapping[str, timezone]] = {
    name: timezone(timedelta(hours=hours))
    for name, hours in {
        "UTC": 0, "GMT": 0, "Z": 0, "UT": 0,
        "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6,
        "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10,
        "CET": 1, "CEST": 2, "EET": 2, "EEST": 3, "WET": 0, "WEST": 1,
        "MSK": 3, "JST": 9, "AEST": 10, "AEDT": 11,
    }.items()
}  # fmt: skip
"""Zone abbreviations understood by default (those that mean one offset only)."""


class H323Time(NamedTuple):
    """A gateway timestamp: the instant (UTC) and whether the gateway clock was synchronised."""

    time: datetime
    synchronized: bool = True


def strip_vsa_name(value: str, name: str) -> str:
    """``value`` without a leading ``name=`` (Cisco sends ``h323-conf-id=...``)."""
    if value.startswith(name) and value[len(name) : len(name) + 1] == "=":
        return value[len(name) + 1 :]
    return value


_DateParts = tuple[int, int, int, timezone]
_DATES: dict[bytes, _DateParts] = {}  # b"UTC Wed Dec 4 2024" -> parts; a day's calls share one
_DATES_MAX: Final = 256


def parse_h323_time(text: str | bytes, zones: Mapping[str, timezone] = H323_ZONES) -> H323Time:
    """Parse ``[*|.]hh:mm:ss[.mmm] ZONE [Day] Mon dd yyyy``; ``ValueError`` if it is not one."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    synchronized = True
    marker = raw[:1]
    if marker in {b"*", b"."}:
        synchronized, raw = False, raw[1:]
    clock, _, date_text = raw.strip().partition(b" ")
    date = _DATES.get(date_text) if zones is H323_ZONES else None
    if date is None:
        date = _parse_date(date_text, zones, raw)
        if zones is H323_ZONES:
            if len(_DATES) >= _DATES_MAX:
                _DATES.clear()
            _DATES[date_text] = date
    year, month, day, tz = date
    # the fixed layout hh:mm:ss.mmm that gateways send, then anything else
    if len(clock) == 12 and clock[2] == 58 and clock[5] == 58 and clock[8] == 46:  # ":" "."
        digits = clock.translate(None, b":.")
        if len(digits) != 9 or not digits.isdigit():  # bytes.isdigit: ASCII digits only
            raise ValueError(f"not an h323 time: {raw!r}")
        number = int(digits)
        microsecond = number % 1000 * 1000
        number //= 1000
        hour, minute, second = number // 10000, number // 100 % 100, number % 100
    else:
        hour, minute, second, microsecond = _parse_clock(clock, raw)
    moment = datetime(year, month, day, hour, minute, second, microsecond, tz)
    if tz is not UTC:
        moment = moment.astimezone(UTC)
    return H323Time(moment, synchronized)


def _parse_date(date_text: bytes, zones: Mapping[str, timezone], raw: bytes) -> _DateParts:
    parts = date_text.split()
    if len(parts) == 5:
        zone, _weekday, month, day, year = parts
    elif len(parts) == 4:
        zone, month, day, year = parts
    else:
        raise ValueError(f"not an h323 time: {raw!r}")
    tz = zones.get(zone.decode("ascii", "replace").upper())
    if tz is None:
        raise ValueError(f"unknown time zone {zone!r} in {raw!r}")
    if tz.utcoffset(None) == timedelta(0):
        tz = UTC
    month_number = _MONTHS.get(month.decode("ascii", "replace").lower())
    if month_number is None:
        raise ValueError(f"unknown month {month!r} in {raw!r}")
    if not (day.isdigit() and year.isdigit()):
        raise ValueError(f"bad day or year in {raw!r}")
    # datetime checks the day against the month (no 30 February)
    datetime(int(year), month_number, int(day))
    return (int(year), month_number, int(day), tz)


def _parse_clock(clock: bytes, raw: bytes) -> tuple[int, int, int, int]:
    hms, _, fraction = clock.partition(b".")
    fields = hms.split(b":")
    if len(fields) != 3 or not all(f.isdigit() for f in fields):
        raise ValueError(f"not an h323 time: {raw!r}")
    if fraction and not (fraction.isdigit() and len(fraction) <= 6):
        raise ValueError(f"bad fraction of a second in {raw!r}")
    microsecond = int(fraction.ljust(6, b"0")) if fraction else 0
    return (int(fields[0]), int(fields[1]), int(fields[2]), microsecond)


def format_h323_time(time: datetime, *, synchronized: bool = True) -> str:
    """``time`` in Cisco's format, in UTC, with milliseconds (``*`` prefix when not synced)."""
    if time.tzinfo is None:
        raise ValueError("an h323 time needs a timezone-aware datetime")
    t = time.astimezone(UTC)
    marker = "" if synchronized else "*"
    return (
        f"{marker}{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond // 1000:03d} UTC "
        f"{_DAYS[t.weekday()]} {_MONTH_NAMES[t.month - 1]} {t.day} {t.year}"
    )
