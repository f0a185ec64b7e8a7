"""DiameterURI (RFC 6733 §4.3.1): ``aaa://`` / ``aaas://`` FQDN [port] [transport] [protocol].

The wire form is ASCII text; decoding keeps the text (non-ASCII is 5004).  :func:`parse_uri`
splits it into its parts for the rare caller that needs them (Redirect-Host handling).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protocols.diameter.constants import ResultCode
from protocols.diameter.errors import DiameterError

_URI = re.compile(
    r"^(?P<scheme>aaas?)://(?P<fqdn>\[[0-9A-Fa-f:.]+\]|[^:;/\s]+)"
    r"(?::(?P<port>\d{1,5}))?"
    r"(?P<params>(?:;[A-Za-z]+=[A-Za-z0-9.\-]+)*)$"
)


@dataclass(frozen=True, slots=True)
class DiameterUri:
    """The parts of a DiameterURI, defaults filled in as RFC 6733 §4.3.1 says."""

    secure: bool
    fqdn: str
    port: int
    transport: str
    protocol: str


def pull_diameter_uri(data: bytes) -> str:
    """Decode a DiameterURI payload as text (non-ASCII is 5004)."""
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_AVP_VALUE,
            f"DiameterURI is not ASCII at byte {exc.start}",
        ) from None


def push_diameter_uri(value: str) -> bytes:
    """Encode a DiameterURI (ValueError unless ASCII)."""
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"DiameterURI must be ASCII: {value!r}") from None


def parse_uri(text: str) -> DiameterUri:
    """Split a DiameterURI; raise 5004 when it does not follow the RFC 6733 grammar."""
    match = _URI.match(text)
    if match is None:
        raise DiameterError(ResultCode.DIAMETER_INVALID_AVP_VALUE, f"not a DiameterURI: {text!r}")
    secure = match["scheme"] == "aaas"
    params: dict[str, str] = {}
    for part in filter(None, match["params"].split(";")):
        key, _, val = part.partition("=")
        params[key.lower()] = val.lower()
    port = int(match["port"]) if match["port"] else (5658 if secure else 3868)
    if port > 65535:
        raise DiameterError(ResultCode.DIAMETER_INVALID_AVP_VALUE, f"bad port in {text!r}")
    return DiameterUri(
        secure=secure,
        fqdn=match["fqdn"],
        port=port,
        transport=params.get("transport", "tcp"),
        protocol=params.get("protocol", "diameter"),
    )
