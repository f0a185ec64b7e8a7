"""DiameterIdentity (RFC 6733 §4.3.1): an FQDN or realm, carried as ASCII.

Internationalised names travel in their IDNA (punycode) form, so a payload that is not ASCII is
5004.  Identities compare case-insensitively (they are DNS names); :func:`same_identity` does it.
"""

from __future__ import annotations

from protocols.diameter.constants import ResultCode
from protocols.diameter.errors import DiameterError


def pull_diameter_identity(data: bytes) -> str:
    """Decode an identity; non-ASCII octets are 5004."""
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_AVP_VALUE,
            f"DiameterIdentity is not ASCII at byte {exc.start}",
        ) from None


def push_diameter_identity(value: str) -> bytes:
    """Encode an identity (ValueError unless ASCII)."""
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"DiameterIdentity must be ASCII (use IDNA): {value!r}") from None


def same_identity(left: str, right: str) -> bool:
    """Compare two identities the way DNS names compare."""
    return left.lower() == right.lower()
