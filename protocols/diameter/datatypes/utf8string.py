"""UTF8String (RFC 6733 §4.3.1): text encoded in UTF-8; invalid UTF-8 is 5004."""

from __future__ import annotations

from protocols.diameter.constants import ResultCode
from protocols.diameter.errors import DiameterError


def pull_utf8_string(data: bytes) -> str:
    """Decode the payload, refusing byte sequences that are not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_AVP_VALUE,
            f"UTF8String is not valid UTF-8 at byte {exc.start}",
        ) from None


def push_utf8_string(value: str) -> bytes:
    """Encode *value* as UTF-8 (lone surrogates cannot be encoded and raise ValueError)."""
    return value.encode("utf-8")
