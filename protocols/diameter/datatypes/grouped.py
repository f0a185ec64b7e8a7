"""Grouped (RFC 6733 §4.4): the payload is a list of AVPs, each padded to 32 bits.

The list codec is shared with the message body, so it lives in :mod:`protocols.diameter.avp`;
these are the family's pull/push entry points.  Errors in a member raise 5014/5004/5001 with
the member, wrapped in its parents, as Failed-AVP.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocols.diameter.avp import Avp, AvpDecoder, push_avps
from protocols.diameter.message import DEFAULT_OPTIONS, CodecOptions


def pull_grouped(data: bytes, options: CodecOptions = DEFAULT_OPTIONS) -> tuple[Avp, ...]:
    """Decode a Grouped payload into its member AVPs."""
    decoder: AvpDecoder = options.decoder
    return decoder.pull_avps(bytes(data), 0, len(data), [])


def push_grouped(members: Iterable[Avp]) -> bytes:
    """Encode member AVPs as a Grouped payload."""
    return push_avps(members)
