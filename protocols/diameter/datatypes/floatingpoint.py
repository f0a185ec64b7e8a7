"""Float32 and Float64 (RFC 6733 §4.2): IEEE 754 big-endian, fixed size (5014 otherwise)."""

from __future__ import annotations

import struct

from protocols.diameter.datatypes._length import wrong_length

FLOAT32 = struct.Struct("!f")
FLOAT64 = struct.Struct("!d")


def pull_float32(data: bytes) -> float:
    """Decode a single-precision float."""
    if len(data) != 4:
        raise wrong_length("Float32", 4, len(data))
    return float(FLOAT32.unpack(data)[0])


def pull_float64(data: bytes) -> float:
    """Decode a double-precision float."""
    if len(data) != 8:
        raise wrong_length("Float64", 8, len(data))
    return float(FLOAT64.unpack(data)[0])


def push_float32(value: float) -> bytes:
    """Encode a single-precision float (ValueError when it overflows)."""
    try:
        return FLOAT32.pack(value)
    except (struct.error, OverflowError):
        raise ValueError(f"{value!r} does not fit in Float32") from None


def push_float64(value: float) -> bytes:
    """Encode a double-precision float."""
    return FLOAT64.pack(value)
