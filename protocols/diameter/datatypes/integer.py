"""Integer32, Integer64, Unsigned32, Unsigned64 (RFC 6733 §4.2): big-endian, fixed size.

A payload of any other size is 5014; it is never read as 0 or truncated.
"""

from __future__ import annotations

import struct

from protocols.diameter.datatypes._length import wrong_length

INTEGER32 = struct.Struct("!i")
INTEGER64 = struct.Struct("!q")
UNSIGNED32 = struct.Struct("!I")
UNSIGNED64 = struct.Struct("!Q")


def pull_integer32(data: bytes) -> int:
    """Decode a signed 32-bit integer."""
    if len(data) != 4:
        raise wrong_length("Integer32", 4, len(data))
    return int(INTEGER32.unpack(data)[0])


def pull_integer64(data: bytes) -> int:
    """Decode a signed 64-bit integer."""
    if len(data) != 8:
        raise wrong_length("Integer64", 8, len(data))
    return int(INTEGER64.unpack(data)[0])


def pull_unsigned32(data: bytes) -> int:
    """Decode an unsigned 32-bit integer."""
    if len(data) != 4:
        raise wrong_length("Unsigned32", 4, len(data))
    return int(UNSIGNED32.unpack(data)[0])


def pull_unsigned64(data: bytes) -> int:
    """Decode an unsigned 64-bit integer."""
    if len(data) != 8:
        raise wrong_length("Unsigned64", 8, len(data))
    return int(UNSIGNED64.unpack(data)[0])


def _pack(packer: struct.Struct, type_name: str, value: int) -> bytes:
    try:
        return packer.pack(value)
    except struct.error:
        raise ValueError(f"{value!r} does not fit in {type_name}") from None


def push_integer32(value: int) -> bytes:
    """Encode a signed 32-bit integer (ValueError when out of range)."""
    return _pack(INTEGER32, "Integer32", value)


def push_integer64(value: int) -> bytes:
    """Encode a signed 64-bit integer (ValueError when out of range)."""
    return _pack(INTEGER64, "Integer64", value)


def push_unsigned32(value: int) -> bytes:
    """Encode an unsigned 32-bit integer (ValueError when out of range)."""
    return _pack(UNSIGNED32, "Unsigned32", value)


def push_unsigned64(value: int) -> bytes:
    """Encode an unsigned 64-bit integer (ValueError when out of range)."""
    return _pack(UNSIGNED64, "Unsigned64", value)
