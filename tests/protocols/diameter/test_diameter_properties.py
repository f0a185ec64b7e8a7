"""Property tests (hypothesis): decoding never fails with anything but our protocol error, and
encode(decode(x)) == x for every well-formed message."""

import random
import struct
from ipaddress import IPv4Address, IPv6Address

from diameter_testkit import PeerPair, ccr_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.diameter.avp import Avp
from protocols.diameter.datatypes import DataType
from protocols.diameter.datatypes.address import OtherAddress
from protocols.diameter.datatypes.timestamp import pull_time
from protocols.diameter.dictionary import DEFINITIONS, AvpDefinition
from protocols.diameter.errors import DiameterError
from protocols.diameter.framing import FrameReader
from protocols.diameter.gy import CreditControlAnswer, decode_ccr, encode_cca
from protocols.diameter.message import (
    STRICT_OPTIONS,
    Message,
    decode_message,
    encode_message,
)
from protocols.diameter.peer import PeerClosed

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ASCII = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20)
KNOWN = [d for d in DEFINITIONS.values() if d.data_type is not DataType.GROUPED]
GROUPS = [d for d in DEFINITIONS.values() if d.data_type is DataType.GROUPED]
UNKNOWN_CODES = st.integers(min_value=100_000, max_value=2**32 - 1)

VALUES = {
    DataType.OCTET_STRING: st.binary(max_size=24),
    DataType.INTEGER32: st.integers(-(2**31), 2**31 - 1),
    DataType.ENUMERATED: st.integers(-(2**31), 2**31 - 1),
    DataType.INTEGER64: st.integers(-(2**63), 2**63 - 1),
    DataType.UNSIGNED32: st.integers(0, 2**32 - 1),
    DataType.UNSIGNED64: st.integers(0, 2**64 - 1),
    DataType.FLOAT32: st.floats(width=32, allow_nan=False),
    DataType.FLOAT64: st.floats(allow_nan=False),
    DataType.TIME: st.binary(min_size=4, max_size=4).map(pull_time),
    DataType.ADDRESS: st.one_of(
        st.builds(IPv4Address, st.integers(0, 2**32 - 1)),
        st.builds(IPv6Address, st.integers(0, 2**128 - 1)),
        st.builds(OtherAddress, st.integers(3, 65535), st.binary(max_size=16)),
    ),
    DataType.UTF8_STRING: st.text(max_size=20),
    DataType.DIAMETER_IDENTITY: ASCII,
    DataType.DIAMETER_URI: ASCII,
    DataType.IP_FILTER_RULE: ASCII,
}
# M and P as the sender likes, reserved bits too; V goes with the vendor (a zero Vendor-Id
# with the V bit is legal on the wire and kept).
FLAGS = st.sampled_from([0x00, 0x40, 0x20, 0x60, 0x41, 0x03])


@st.composite
def known_avp(draw: st.DrawFn) -> Avp:
    definition: AvpDefinition = draw(st.sampled_from(KNOWN))
    flags = draw(FLAGS) | (0x80 if definition.vendor_id else 0)
    return Avp(definition.code, definition.vendor_id, flags, draw(VALUES[definition.data_type]))


@st.composite
def unknown_avp(draw: st.DrawFn) -> Avp:
    vendor_id = draw(st.sampled_from([0, 0, 9999, 10415]))
    flags = draw(FLAGS) | (0x80 if vendor_id or draw(st.booleans()) else 0)
    return Avp(draw(UNKNOWN_CODES), vendor_id, flags, draw(st.binary(max_size=24)))


def grouped_of(children: st.SearchStrategy[tuple[Avp, ...]]) -> st.SearchStrategy[Avp]:
    @st.composite
    def build(draw: st.DrawFn) -> Avp:
        definition: AvpDefinition = draw(st.sampled_from(GROUPS))
        flags = draw(FLAGS) | (0x80 if definition.vendor_id else 0)
        return Avp(definition.code, definition.vendor_id, flags, draw(children))

    return build()


AVPS = st.recursive(
    st.one_of(known_avp(), unknown_avp()),
    lambda inner: grouped_of(st.lists(inner, max_size=4).map(tuple)),
    max_leaves=12,
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    flags = draw(st.sampled_from([0x80, 0xC0, 0x40, 0x00, 0x20, 0x60, 0x90, 0x8F]))
    return Message(
        draw(st.integers(0, 2**24 - 1)),
        flags,
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**32 - 1)),
        tuple(draw(st.lists(AVPS, max_size=8))),
    )


@SETTINGS
@given(messages())
def test_encode_decode_round_trip(message: Message) -> None:
    octets = encode_message(message)
    decoded = decode_message(octets)
    assert decoded == message
    assert encode_message(decoded) == octets
    assert decode_message(octets, lazy=True) == message


SAMPLES = [
    encode_message(ccr_message(hop_by_hop=1, end_to_end=2)),
    encode_message(
        encode_cca(
            decode_ccr(ccr_message()), CreditControlAnswer(2001), PeerPair().server.config.identity
        )
    ),
]


def decode_or_protocol_error(data: bytes) -> None:
    for options in (None, STRICT_OPTIONS):
        try:
            message = decode_message(data) if options is None else decode_message(data, options)
        except DiameterError as error:
            assert 1000 <= error.result_code < 6000
            continue
        assert isinstance(message, Message)
    try:
        lazy = decode_message(data, lazy=True)
        decode_ccr(lazy)
    except DiameterError:
        pass


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_our_error(data: bytes) -> None:
    decode_or_protocol_error(data)


@st.composite
def framed_noise(draw: st.DrawFn) -> bytes:
    body = draw(st.binary(max_size=200))
    body += bytes(-len(body) % 4) if draw(st.booleans()) else b""
    flags = draw(st.sampled_from([0x80, 0xC0, 0x40]))
    code = draw(st.sampled_from([272, 257, 280, 282, 258, 9999]))
    head = struct.pack("!IIIII", (1 << 24) | (20 + len(body)), (flags << 24) | code, 4, 1, 2)
    return head + body


@SETTINGS
@given(framed_noise())
def test_random_avps_behind_a_valid_header_decode_or_raise_our_error(data: bytes) -> None:
    decode_or_protocol_error(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "byte", "cut", "insert"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut" and len(data) > 24:
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    if draw(st.booleans()) and len(data) >= 4:  # keep the Message Length consistent
        struct.pack_into("!I", data, 0, (1 << 24) | len(data))
    return bytes(data)


@SETTINGS
@given(mutated())
def test_mutated_frames_decode_or_raise_our_error(data: bytes) -> None:
    decode_or_protocol_error(data)


@SETTINGS
@given(st.lists(st.sampled_from(SAMPLES), min_size=1, max_size=4), st.randoms())
def test_framing_any_chunking(frames: list[bytes], rng: random.Random) -> None:
    stream = b"".join(frames)
    reader = FrameReader()
    out: list[bytes] = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 64)
        out.extend(reader.feed(stream[pos : pos + step]))
        pos += step
    assert out == frames
    assert not reader.pending


@SETTINGS
@given(st.lists(st.one_of(mutated(), st.binary(max_size=64)), max_size=4))
def test_an_open_peer_survives_anything(chunks: list[bytes]) -> None:
    pair = PeerPair().start()
    server = pair.server
    for chunk in chunks:
        server.receive_data(chunk, pair.now)
        server.data_to_send()
    events = []
    while (event := server.next_event()) is not None:
        events.append(event)
    if server.is_closed:
        assert any(isinstance(event, PeerClosed) for event in events)
