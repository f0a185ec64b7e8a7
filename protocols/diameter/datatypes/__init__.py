"""AVP data types (RFC 6733 §4.2 basic types, §4.3 derived types), one small module per family.

Each module offers ``pull_<type>(data) -> value`` and ``push_<type>(value) -> bytes`` for the
AVP *payload* (no header, no padding).  A ``pull_*`` never guesses: a fixed-size type whose
payload has the wrong length raises :class:`~protocols.diameter.errors.DiameterError` with
Result-Code 5014 (DIAMETER_INVALID_AVP_LENGTH) and an undecodable value raises 5004
(DIAMETER_INVALID_AVP_VALUE); the AVP codec then attaches the offending AVP as Failed-AVP.
A ``push_*`` raises :class:`ValueError` for a value the type cannot carry (a local mistake).

Grouped's payload is a list of AVPs, decoded by the same code as a message body
(:mod:`protocols.diameter.avp`); :mod:`~protocols.diameter.datatypes.grouped` exposes it with
the same pull/push shape.
"""

from __future__ import annotations

from enum import Enum


class DataType(Enum):
    """The AVP data types the dictionary can name."""

    OCTET_STRING = "OctetString"
    INTEGER32 = "Integer32"
    INTEGER64 = "Integer64"
    UNSIGNED32 = "Unsigned32"
    UNSIGNED64 = "Unsigned64"
    FLOAT32 = "Float32"
    FLOAT64 = "Float64"
    GROUPED = "Grouped"
    ADDRESS = "Address"
    TIME = "Time"
    UTF8_STRING = "UTF8String"
    DIAMETER_IDENTITY = "DiameterIdentity"
    DIAMETER_URI = "DiameterURI"
    ENUMERATED = "Enumerated"
    IP_FILTER_RULE = "IPFilterRule"
