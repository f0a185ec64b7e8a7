"""Property tests: decoding never fails with anything but RadiusError; encodings round-trip."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from radius_fixtures import (
    RADCLIENT_ACCESS_REQUEST,
    RADCLIENT_ACCOUNTING_REQUEST,
    RADCLIENT_COA_REQUEST,
    RADCLIENT_SECRET,
    RFC_7_1_REQUEST,
)

from protocols.radius.attribute import MalformedAttribute
from protocols.radius.packet import (
    Code,
    Packet,
    RadiusError,
    decode_packet,
    encode_reply,
    encode_request,
    verify_request,
)
from protocols.radius.view import decode_access, decode_accounting

SECRET = b"fuzz"
SEEDS = [
    RFC_7_1_REQUEST,
    RADCLIENT_ACCESS_REQUEST,
    RADCLIENT_ACCOUNTING_REQUEST,
    RADCLIENT_COA_REQUEST,
]


def _exercise(packet: Packet) -> None:
    """Everything the server does with a decoded packet: only our errors may come out."""
    with contextlib.suppress(RadiusError):
        verify_request(packet, RADCLIENT_SECRET)
    decode_accounting(packet)
    decode_access(packet, RADCLIENT_SECRET)
    for definition in ("User-Name", "NAS-IP-Address", "Event-Timestamp", "Framed-IPv6-Prefix"):
        with contextlib.suppress(MalformedAttribute):
            packet.get_all(definition)
    packet.avpairs()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    try:
        packet = decode_packet(data)
    except RadiusError:
        return
    _exercise(packet)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
    if draw(st.booleans()) and len(data) >= 4:
        data[2:4] = len(data).to_bytes(2, "big")  # keep the Length field consistent
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_mutated_packets(data: bytes) -> None:
    try:
        packet = decode_packet(data)
    except RadiusError:
        return
    _exercise(packet)


attribute = st.tuples(st.integers(1, 255), st.binary(max_size=40)).filter(lambda a: a[0] != 80)


@settings(max_examples=200, deadline=None)
@given(
    code=st.sampled_from([Code.ACCESS_REQUEST, Code.ACCOUNTING_REQUEST, Code.COA_REQUEST]),
    identifier=st.integers(0, 255),
    attributes=st.lists(attribute, max_size=20),
    ma=st.booleans(),
)
def test_request_round_trip(
    code: Code, identifier: int, attributes: list[tuple[int, bytes]], ma: bool
) -> None:
    raw = encode_request(code, identifier, attributes, SECRET, message_authenticator=ma)
    packet = decode_packet(raw)
    assert (packet.code, packet.identifier) == (code, identifier)
    assert [a for a in packet.attributes if a[0] != 80] == attributes
    assert packet.raw == raw
    if code is not Code.ACCESS_REQUEST or ma:
        verify_request(packet, SECRET)
    again = encode_request(
        code,
        identifier,
        [a for a in packet.attributes if a[0] != 80],
        SECRET,
        message_authenticator=ma,
        authenticator=None if code is not Code.ACCESS_REQUEST else packet.authenticator,
    )
    assert again == raw  # encode(decode(x)) == x


@settings(max_examples=100, deadline=None)
@given(attributes=st.lists(attribute, max_size=20))
def test_reply_round_trip(attributes: list[tuple[int, bytes]]) -> None:
    request = decode_packet(RADCLIENT_ACCOUNTING_REQUEST)
    raw = encode_reply(request, Code.ACCOUNTING_RESPONSE, attributes, SECRET)
    reply = decode_packet(raw)
    assert list(reply.attributes[1:]) == attributes
