"""Time (RFC 6733 §4.3.1): NTP seconds since 1900-01-01T00:00:00Z in four octets.

Values are timezone-aware UTC datetimes.  Following RFC 6733 (and RFC 4330 §3) the 32-bit
counter is read in two eras: values with the top bit set count from 1900 (1968-01-20 onwards),
values without it count from 2036-02-07T06:28:16Z, when the counter wraps.  The representable
range is therefore 1968-01-20T03:14:08Z to 2104-02-26T09:42:23Z; the mapping is a bijection on
the 2**32 payloads, so decoding and re-encoding gives back the same octets.  Sub-second parts
are dropped when encoding (Time has one-second resolution).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

from protocols.diameter.datatypes._length import wrong_length

TIME = struct.Struct("!I")
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NTP_TO_UNIX_S = 2_208_988_800
_ERA = 1 << 32
_HIGH_BIT = 1 << 31
EARLIEST = UNIX_EPOCH + timedelta(seconds=_HIGH_BIT - NTP_TO_UNIX_S)
LATEST = UNIX_EPOCH + timedelta(seconds=_ERA + _HIGH_BIT - 1 - NTP_TO_UNIX_S)


def ntp_to_unix(ntp_seconds: int) -> int:
    """Return the Unix time of a 32-bit NTP seconds value, applying the era rule."""
    if ntp_seconds & _HIGH_BIT:
        return ntp_seconds - NTP_TO_UNIX_S
    return ntp_seconds + _ERA - NTP_TO_UNIX_S


def unix_to_ntp(unix_seconds: int) -> int:
    """Return the 32-bit NTP seconds value of a Unix time (ValueError outside the range)."""
    ntp = unix_seconds + NTP_TO_UNIX_S
    if _HIGH_BIT <= ntp < _ERA:
        return ntp
    if _ERA <= ntp < _ERA + _HIGH_BIT:
        return ntp - _ERA
    raise ValueError(f"Unix time {unix_seconds} is outside the range of the Time type")


def pull_time(data: bytes) -> datetime:
    """Decode a Time payload into an aware UTC datetime."""
    if len(data) != 4:
        raise wrong_length("Time", 4, len(data))
    return UNIX_EPOCH + timedelta(seconds=ntp_to_unix(TIME.unpack(data)[0]))


def push_time(value: datetime) -> bytes:
    """Encode an aware datetime (naive ones are refused: their instant is unknown)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("Time values must be timezone-aware")
    delta = value - UNIX_EPOCH
    return TIME.pack(unix_to_ntp(delta.days * 86_400 + delta.seconds))
