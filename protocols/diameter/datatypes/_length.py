"""The one error every fixed-size type raises for a payload of the wrong size."""

from __future__ import annotations

from protocols.diameter.constants import ResultCode
from protocols.diameter.errors import DiameterError


def wrong_length(type_name: str, expected: int, actual: int) -> DiameterError:
    """Return the 5014 error for a *type_name* payload of *actual* instead of *expected* bytes."""
    return DiameterError(
        ResultCode.DIAMETER_INVALID_AVP_LENGTH,
        f"{type_name} payload must be {expected} bytes, got {actual}",
    )
