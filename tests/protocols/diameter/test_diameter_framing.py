"""FrameReader: whole messages out of a byte stream, bounded, tested whole, byte by byte
and with trailing bytes."""

import struct

import pytest

from protocols.diameter.constants import ResultCode
from protocols.diameter.errors import DiameterError
from protocols.diameter.framing import FrameReader


def frame(body_size: int, marker: int = 0) -> bytes:
    length = 20 + body_size
    return struct.pack("!IIIII", (1 << 24) | length, 0x80000118, 4, marker, marker) + bytes(
        body_size
    )


A = frame(12, 1)
B = frame(0, 2)
C = frame(100, 3)


def test_whole_messages_in_one_chunk() -> None:
    reader = FrameReader()
    assert reader.feed(A + B + C) == [A, B, C]
    assert not reader.pending
    assert reader.buffered_bytes == 0


def test_one_byte_at_a_time() -> None:
    reader = FrameReader()
    out: list[bytes] = []
    stream = A + B + C
    for index in range(len(stream)):
        out.extend(reader.feed(stream[index : index + 1]))
        complete = index + 1 in (len(A), len(A + B), len(stream))
        assert reader.pending is not complete
    assert out == [A, B, C]


@pytest.mark.parametrize("cut", [1, 3, 4, 19, 20, 21, len(A) - 1])
def test_trailing_bytes_are_kept_for_the_next_feed(cut: int) -> None:
    reader = FrameReader()
    assert reader.feed(A + C[:cut]) == [A]
    assert reader.pending
    assert reader.buffered_bytes == cut
    assert reader.feed(C[cut:] + B) == [C, B]
    assert not reader.pending


def test_empty_feed() -> None:
    reader = FrameReader()
    assert reader.feed(b"") == []
    assert not reader.pending


def test_maximum_size_is_accepted_and_one_more_is_not() -> None:
    biggest = frame(80)
    assert FrameReader(max_message_bytes=100).feed(biggest) == [biggest]
    with pytest.raises(DiameterError) as caught:
        FrameReader(max_message_bytes=99).feed(biggest[:4])
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH


def test_oversized_length_is_refused_as_soon_as_the_length_is_known() -> None:
    reader = FrameReader(max_message_bytes=1000)
    header = struct.pack("!I", (1 << 24) | 5000)
    for byte in header[:3]:
        assert reader.feed(bytes([byte])) == []
    with pytest.raises(DiameterError, match="exceeds the maximum"):
        reader.feed(header[3:])


@pytest.mark.parametrize("length", [0, 1, 19])
def test_length_below_header_is_refused(length: int) -> None:
    with pytest.raises(DiameterError, match="shorter than the Diameter header") as caught:
        FrameReader().feed(A + struct.pack("!I", (1 << 24) | length) + bytes(30))
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH


def test_buffer_never_exceeds_one_message() -> None:
    reader = FrameReader(max_message_bytes=200)
    message = frame(180)
    for index in range(len(message) - 1):
        reader.feed(message[index : index + 1])
        assert reader.buffered_bytes < 200
    assert reader.feed(message[-1:]) == [message]


def test_configuration_must_allow_a_header() -> None:
    with pytest.raises(ValueError):
        FrameReader(max_message_bytes=10)
    assert FrameReader(4096).max_message_bytes == 4096
