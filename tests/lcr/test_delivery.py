"""Route delivery: RADIUS Cisco-AVPairs, Diameter AVPs, HTTP JSON; and the CDR's carrier leg."""

from __future__ import annotations

import json
import struct

import pytest
from diameter.message.avp.avp import Avp
from diameter.message.packer import Unpacker
from lcr_world import carrier, deck, rate, request, router, sell_price

from lcr.decision import RouteDecision
from lcr.delivery import (
    CISCO_VENDOR_ID,
    RouteAvp,
    decode_avps,
    encode_cisco_avpairs,
    encode_diameter_routes,
    parse_route_query,
    parse_route_report,
    radius_avpairs,
    route_json,
)
from lcr.leg import decode_legs, encode_legs, pick_leg
from lcr.model import RouteEntry, Trunk

VENDOR = 32473


def decision() -> RouteDecision:
    carriers = [carrier("acme", tech_prefix="9901"), carrier("globex")]
    trunks = [
        Trunk("acme-1", "acme", address="192.0.2.10:5060"),
        Trunk("acme-2", "acme", address="192.0.2.11", priority=1),
    ]
    decks = {
        "deck-acme": deck("deck-acme", [rate("44", 5_000, fee=1_000, billing=(30, 6))]),
        "deck-globex": deck("deck-globex", [rate("44", 9_000)]),
    }
    r = router(
        carriers, decks, [RouteEntry("44", "acme"), RouteEntry("44", "globex")], trunks=trunks
    )
    return r.route(request(calling="441632960001", price=sell_price("447700900123", 20_000)))


def test_radius_ocsd_format() -> None:
    assert radius_avpairs(decision()) == [
        "ocsd-route-count=3",
        "ocsd-route-1=acme;acme-1;9901447700900123;441632960001;192.0.2.10:5060",
        "ocsd-route-2=acme;acme-2;9901447700900123;441632960001;192.0.2.11",
        "ocsd-route-3=globex;;447700900123;441632960001;",
    ]


def test_radius_sippy_format_lists_routes_with_an_address() -> None:
    assert radius_avpairs(decision(), "sippy", credit_time_s=600) == [
        "h323-ivr-in=Routing:9901447700900123@192.0.2.10:5060;cli=441632960001;credit-time=600",
        "h323-ivr-in=Routing:9901447700900123@192.0.2.11;cli=441632960001;credit-time=600",
    ]
    with pytest.raises(ValueError, match="format"):
        radius_avpairs(decision(), "xml")


def test_cisco_avpair_bytes_follow_rfc2865_vendor_specific() -> None:
    data = encode_cisco_avpairs(["ocsd-route-count=1"])
    assert data[0] == 26 and data[1] == len(data) == 8 + 18
    assert struct.unpack("!I", data[2:6])[0] == CISCO_VENDOR_ID
    assert data[6:8] == bytes([1, 20]) and data[8:] == b"ocsd-route-count=1"
    with pytest.raises(ValueError):
        encode_cisco_avpairs(["x" * 248])


def test_route_report_from_accounting() -> None:
    pairs = ["h323-call-id=1", "ocsd-carrier=acme", "ocsd-trunk=acme-2", "ocsd-route-used=2"]
    assert parse_route_report(pairs) == {"carrier": "acme", "trunk": "acme-2", "route-used": "2"}


def test_diameter_routes_decode_with_an_independent_decoder() -> None:
    data = encode_diameter_routes(decision(), VENDOR)
    unpacker = Unpacker(data)
    groups = []
    while not unpacker.is_done():
        groups.append(Avp.from_unpacker(unpacker))
    assert [g.code for g in groups] == [RouteAvp.ROUTE] * 3
    first = groups[0]
    assert first.vendor_id == VENDOR and first.is_vendor and not first.is_mandatory
    inner = {a.code: a.data for a in decode_avps(first.payload)}
    assert struct.unpack("!I", inner[RouteAvp.INDEX])[0] == 1
    assert inner[RouteAvp.CARRIER] == b"acme" and inner[RouteAvp.TRUNK] == b"acme-1"
    assert inner[RouteAvp.NUMBER] == b"9901447700900123"
    assert inner[RouteAvp.ADDRESS] == b"192.0.2.10:5060"
    # 120 s on 30/6 at 0.005/min + 0.001 = 0.011.
    assert struct.unpack("!Q", inner[RouteAvp.COST])[0] == 11_000
    assert inner[RouteAvp.CURRENCY] == b"USD"
    with pytest.raises(ValueError):
        decode_avps(data[:5] + (10_000).to_bytes(3, "big") + data[8:])
    with pytest.raises(ValueError):
        decode_avps(data[:5])


def test_radius_and_http_deliver_the_same_ranked_routes() -> None:
    chosen = decision()
    body = json.loads(json.dumps(route_json(chosen)))
    from_http = [
        (r["carrier"], r["trunk"] or "", r["number"], r["caller_id"] or "") for r in body["routes"]
    ]
    from_radius = [
        tuple(value.split("=", 1)[1].split(";")[:4])
        for value in radius_avpairs(chosen)
        if value.startswith("ocsd-route-") and not value.startswith("ocsd-route-count")
    ]
    assert from_http == from_radius
    assert body["ok"] and body["no_route"] is None and body["strategy"] == "least_cost"
    assert body["routes"][0]["cost"] == "0.011000" and body["routes"][0]["margin"] == "0.029000"
    assert body["routes"][0]["quality"]["samples"] == 0


def test_route_query_parameters() -> None:
    query = parse_route_query(
        {"to": "+447700900123", "from": "441632960001", "session_id": "abc", "at": "1767225600"}
    )
    assert (query.to, query.calling, query.session_id, query.at) == (
        "+447700900123",
        "441632960001",
        "abc",
        1767225600.0,
    )
    for bad in ({}, {"to": "1", "color": "red"}, {"to": "1", "at": "noon"}):
        with pytest.raises(ValueError):
            parse_route_query(bad)


def test_the_carrier_leg_prices_the_real_duration_for_the_cdr() -> None:
    chosen = decision()
    legs = decode_legs(encode_legs(chosen))
    assert [(leg.carrier_id, leg.trunk_id) for leg in legs] == [
        ("acme", "acme-1"),
        ("acme", "acme-2"),
        ("globex", ""),
    ]
    used = pick_leg(legs, carrier_id="acme", trunk_id="acme-2")
    assert used is not None and used.index == 2
    # 45 s on 30/6: 30 + 3*6 = 48 s at 0.005/min = 0.004 + 0.001 fee.
    assert used.cdr_fields(45) == {
        "carrier": "acme",
        "trunk": "acme-2",
        "routing_number": "",
        "carrier_cost_micros": 5_000,
        "carrier_currency": "USD",
    }
    assert pick_leg(legs, index=3) == legs[2]
    assert pick_leg(legs) == legs[0]
    assert pick_leg(legs, carrier_id="initech") is None
    with pytest.raises(ValueError):
        decode_legs("nonsense")
