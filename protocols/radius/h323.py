"""Cisco voice VSA values: the h323 time format and ``name=value`` prefixes.

Cisco gateways send times as ``hh:mm:ss.mmm ZONE Day Mon dd yyyy``, for example
``15:31:22.123 UTC Wed Dec 4 2024``. A leading ``*`` says the gateway clock is not
authoritative, a leading ``.`` that it is authoritative but NTP lost synchronisation (Cisco IOS
``show clock`` markers). Zone names are abbreviations; only the unambiguous ones below are
known unless the caller passes its own table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

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


@dataclass(frozen=True, slots=True)
class H323Time:
    """A gateway timestamp: the instant (UTC) and whether the gateway clock was synchronised."""

    time: datetime
    synchronized: bool = True


def strip_vsa_name(value: str, name: str) -> str:
    """``value`` without a leading ``name=`` (Cisco sends ``h323-conf-id=...``)."""
    if value.startswith(name) and value[len(name) : len(name) + 1] == "=":
        return value[len(name) + 1 :]
    return value


def parse_h323_time(text: str, zones: Mapping[str, timezone] = H323_ZONES) -> H323Time:
    """Parse ``[*|.]hh:mm:ss[.mmm] ZONE [Day] Mon dd yyyy``; ``ValueError`` if it is not one."""
    synchronized = True
    text = text.strip()
    if text[:1] in ("*", "."):
        synchronized, text = False, text[1:]
    parts = text.split()
    if len(parts) == 6:
        clock, zone, _weekday, month, day, year = parts
    elif len(parts) == 5:
        clock, zone, month, day, year = parts
    else:
        raise ValueError(f"not an h323 time: {text!r}")
    tz = zones.get(zone.upper())
    if tz is None:
        raise ValueError(f"unknown time zone {zone!r} in {text!r}")
    month_number = _MONTHS.get(month[:3].lower())
    if month_number is None or len(month) != 3:
        raise ValueError(f"unknown month {month!r} in {text!r}")
    hms, _, fraction = clock.partition(".")
    fields = hms.split(":")
    if len(fields) != 3 or not all(f.isdigit() for f in fields) or not day.isdigit():
        raise ValueError(f"not an h323 time: {text!r}")
    if fraction and (not fraction.isdigit() or len(fraction) > 6):
        raise ValueError(f"bad fraction of a second in {text!r}")
    if not year.isdigit():
        raise ValueError(f"bad year in {text!r}")
    microsecond = int(fraction.ljust(6, "0")) if fraction else 0
    local = datetime(
        int(year), month_number, int(day), int(fields[0]), int(fields[1]), int(fields[2]),
        microsecond, tz,
    )  # fmt: skip
    return H323Time(local.astimezone(UTC), synchronized)


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
