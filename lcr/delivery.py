"""Route delivery: the ranked routes as RADIUS Cisco-AVPairs, Diameter AVPs and HTTP JSON.

Pure encoders; the protocol adapters put their output in the answer. ``docs/routing.md``
documents every format.

RADIUS (RFC 2865 §5.26 Vendor-Specific, Cisco vendor 9, Cisco-AVPair type 1), one value per
attribute, in route order:

- ``ocsd`` format: ``ocsd-route-count=N`` then ``ocsd-route-I=CARRIER;TRUNK;NUMBER;CLI;HOST``
  for I = 1..N (fields never contain ``;``; an empty CLI means withheld);
- ``sippy`` format, which the Sippy B2BUA follows route by route:
  ``h323-ivr-in=Routing:NUMBER@HOST[;cli=CLI][;credit-time=S]`` (only routes with an address).

Diameter (RFC 6733 §4.1): one grouped ``OCSD-Route`` AVP per route, vendor-specific (V set,
M clear so a peer that does not know them ignores them, §4.1 and §6.1.8 of RFC 6733).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lcr.decision import RouteDecision
from rating.money import format_micros

CISCO_VENDOR_ID = 9
CISCO_AVPAIR = 1
RADIUS_VENDOR_SPECIFIC = 26
MAX_AVPAIR_BYTES = 247
"""253 bytes of attribute value less the vendor id (4) and vendor type/length (2)."""


class RouteAvp:
    """Codes of the vendor-specific route AVPs (under ``DeliverySettings.diameter_vendor_id``)."""

    ROUTE = 1001
    """Grouped: one route, in the order to try."""
    INDEX = 1002
    """Unsigned32: 1-based position."""
    CARRIER = 1003
    """UTF8String."""
    TRUNK = 1004
    """UTF8String (may be empty)."""
    NUMBER = 1005
    """UTF8String: the called number to send (rules and tech prefix applied)."""
    CALLER_ID = 1006
    """UTF8String: the calling number to present (empty: withheld)."""
    ADDRESS = 1007
    """UTF8String: ``host[:port]`` of the trunk (may be empty)."""
    COST = 1008
    """Unsigned64: micro-units of a typical call's cost to us."""
    CURRENCY = 1009
    """UTF8String: ISO 4217 code of the cost."""
    PDD = 1010
    """Unsigned32, reported by the switch: the call's post-dial delay in milliseconds."""


FLAG_VENDOR = 0x80


# -- RADIUS ----------------------------------------------------------------------------------


def radius_avpairs(
    decision: RouteDecision, fmt: str = "ocsd", credit_time_s: int | None = None
) -> list[str]:
    """The Cisco-AVPair values that carry the routes (``fmt``: ocsd, sippy or both)."""
    if fmt not in ("ocsd", "sippy", "both"):
        raise ValueError(f"unknown RADIUS route format {fmt!r}")
    values: list[str] = []
    routes = decision.routes
    if fmt in ("ocsd", "both"):
        values.append(f"ocsd-route-count={len(routes)}")
        for index, route in enumerate(routes, 1):
            values.append(
                f"ocsd-route-{index}={route.carrier_id};{route.trunk_id};{route.number};"
                f"{route.caller_id};{route.address}"
            )
    if fmt in ("sippy", "both"):
        for route in routes:
            if not route.address:
                continue
            entry = f"h323-ivr-in=Routing:{route.number}@{route.address}"
            if route.caller_id:
                entry += f";cli={route.caller_id}"
            if credit_time_s is not None:
                entry += f";credit-time={credit_time_s}"
            values.append(entry)
    for value in values:
        if len(value.encode()) > MAX_AVPAIR_BYTES:
            raise ValueError(f"Cisco-AVPair longer than {MAX_AVPAIR_BYTES} bytes: {value[:40]}...")
    return values


def encode_cisco_avpairs(values: Iterable[str]) -> bytes:
    """Vendor-Specific attributes (type 26) holding each value as a Cisco-AVPair."""
    out = bytearray()
    for value in values:
        data = value.encode()
        if len(data) > MAX_AVPAIR_BYTES:
            raise ValueError(f"Cisco-AVPair longer than {MAX_AVPAIR_BYTES} bytes")
        out += struct.pack(
            "!BBIBB",
            RADIUS_VENDOR_SPECIFIC,
            len(data) + 8,
            CISCO_VENDOR_ID,
            CISCO_AVPAIR,
            len(data) + 2,
        )
        out += data
    return bytes(out)


def parse_route_report(avpairs: Iterable[str]) -> dict[str, str]:
    """What an accounting request says about the route used, from its Cisco-AVPairs.

    Reads ``ocsd-carrier=``, ``ocsd-trunk=`` and ``ocsd-route-used=`` (1-based index of the
    route taken), as the switch echoes them; other pairs are ignored.
    """
    found: dict[str, str] = {}
    for pair in avpairs:
        key, sep, value = pair.partition("=")
        if sep and key in ("ocsd-carrier", "ocsd-trunk", "ocsd-route-used"):
            found[key.removeprefix("ocsd-")] = value.strip()
    return found


# -- Diameter --------------------------------------------------------------------------------


def _avp(code: int, vendor_id: int, data: bytes) -> bytes:
    length = 12 + len(data)
    header = struct.pack("!IB", code, FLAG_VENDOR) + length.to_bytes(3, "big")
    padding = b"\x00" * (-length % 4)
    return header + struct.pack("!I", vendor_id) + data + padding


def encode_diameter_routes(decision: RouteDecision, vendor_id: int) -> bytes:
    """One grouped ``OCSD-Route`` AVP per route, ready to append to a CCA's AVPs."""
    out = bytearray()
    for index, route in enumerate(decision.routes, 1):
        inner = b"".join(
            (
                _avp(RouteAvp.INDEX, vendor_id, struct.pack("!I", index)),
                _avp(RouteAvp.CARRIER, vendor_id, route.carrier_id.encode()),
                _avp(RouteAvp.TRUNK, vendor_id, route.trunk_id.encode()),
                _avp(RouteAvp.NUMBER, vendor_id, route.number.encode()),
                _avp(RouteAvp.CALLER_ID, vendor_id, route.caller_id.encode()),
                _avp(RouteAvp.ADDRESS, vendor_id, route.address.encode()),
                _avp(RouteAvp.COST, vendor_id, struct.pack("!Q", route.cost_micros)),
                _avp(RouteAvp.CURRENCY, vendor_id, route.currency.encode()),
            )
        )
        out += _avp(RouteAvp.ROUTE, vendor_id, inner)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class DecodedAvp:
    """An AVP as ``decode_avps`` reads it (for tests and for peers that echo routes)."""

    code: int
    flags: int
    vendor_id: int | None
    data: bytes


def decode_avps(data: bytes) -> list[DecodedAvp]:
    """Split a run of AVPs (RFC 6733 §4.1); raise ValueError on a malformed one."""
    out: list[DecodedAvp] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 8:
            raise ValueError("truncated AVP header")
        code, flags = struct.unpack_from("!IB", data, offset)
        length = int.from_bytes(data[offset + 5 : offset + 8], "big")
        header = 12 if flags & FLAG_VENDOR else 8
        if length < header or offset + length > len(data):
            raise ValueError(f"AVP {code} has a bad length {length}")
        vendor = struct.unpack_from("!I", data, offset + 8)[0] if flags & FLAG_VENDOR else None
        out.append(DecodedAvp(code, flags, vendor, data[offset + header : offset + length]))
        offset += length + (-length % 4)
    return out


# -- HTTP ------------------------------------------------------------------------------------


def route_json(decision: RouteDecision) -> dict[str, Any]:
    """The body of ``GET /v1/route`` (see docs/routing.md)."""
    resolution = decision.resolution
    return {
        "ok": decision.ok,
        "no_route": decision.no_route.value if decision.no_route else None,
        "number": resolution.dialled,
        "routing_number": resolution.routing_number or None,
        "ported_carrier": resolution.ported_carrier or None,
        "plan": decision.plan_id or None,
        "strategy": decision.strategy or None,
        "typical_duration_s": decision.typical_duration_s,
        "routes": [
            {
                "index": index,
                "carrier": route.carrier_id,
                "trunk": route.trunk_id or None,
                "address": route.address or None,
                "number": route.number,
                "caller_id": route.caller_id or None,
                "cost": format_micros(route.cost_micros),
                "rate_per_minute": format_micros(route.rate_micros),
                "currency": route.currency,
                "margin": None
                if route.margin_micros is None
                else format_micros(route.margin_micros),
                "margin_currency": decision.home_currency,
                "prefix": route.prefix,
                "destination": route.destination,
                "quality": {
                    "asr": route.asr,
                    "acd_s": route.acd_s,
                    "ner": route.ner,
                    "pdd_ms": route.pdd_ms,
                    "samples": route.samples,
                },
                "probe": route.probe,
            }
            for index, route in enumerate(decision.routes, 1)
        ],
        "skipped": [
            {
                "carrier": skip.carrier_id,
                "trunk": skip.trunk_id or None,
                "reason": skip.reason.value,
                "detail": skip.detail or None,
            }
            for skip in decision.skipped
        ],
    }


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """The parameters of ``GET /v1/route``."""

    to: str
    calling: str = ""
    account: str = ""
    session_id: str = ""
    at: float | None = None


def parse_route_query(params: Mapping[str, str]) -> RouteQuery:
    """Read ``to`` (required), ``from``, ``account``, ``session_id`` and ``at`` (epoch s)."""
    unknown = set(params) - {"to", "from", "account", "session_id", "at"}
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]!r}")
    to = params.get("to", "").strip()
    if not to:
        raise ValueError("parameter 'to' is required")
    at_text = params.get("at")
    at: float | None = None
    if at_text:
        try:
            at = float(at_text)
        except ValueError:
            raise ValueError(f"parameter 'at' must be UTC epoch seconds, not {at_text!r}") from None
    return RouteQuery(
        to=to,
        calling=params.get("from", "").strip(),
        account=params.get("account", "").strip(),
        session_id=params.get("session_id", "").strip(),
        at=at,
    )
