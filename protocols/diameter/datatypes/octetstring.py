"""OctetString (RFC 6733 §4.2): arbitrary bytes, any length."""

from __future__ import annotations


def pull_octet_string(data: bytes) -> bytes:
    """Return the payload itself."""
    return bytes(data)


def push_octet_string(value: bytes) -> bytes:
    """Return *value* as the payload."""
    return bytes(value)
