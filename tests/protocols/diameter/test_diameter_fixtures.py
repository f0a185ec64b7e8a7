"""Stored messages (hex with their decoded dump beside them): each decodes to its dump and
re-encodes to the same octets."""

from pathlib import Path

import pytest

from protocols.diameter.constants import CommandCode
from protocols.diameter.framing import FrameReader
from protocols.diameter.gy import decode_ccr
from protocols.diameter.message import decode_message, encode_message, format_message

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = sorted(path.stem for path in FIXTURES.glob("*.hex"))


def load(name: str) -> bytes:
    return bytes.fromhex((FIXTURES / f"{name}.hex").read_text().replace("\n", ""))


def test_there_are_fixtures() -> None:
    assert NAMES == ["cca_ocsd", "ccr_u_voice_python_diameter", "cer_python_diameter"]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_decodes_to_its_dump(name: str) -> None:
    raw = load(name)
    message = decode_message(raw)
    assert format_message(message) == (FIXTURES / f"{name}.txt").read_text()
    assert encode_message(message) == raw
    assert message.tolerated == ()
    if message.command_code == CommandCode.CREDIT_CONTROL and message.is_request:
        assert decode_ccr(decode_message(raw, lazy=True)).request_number == 1


@pytest.mark.parametrize("name", NAMES)
def test_fixture_survives_byte_by_byte_framing(name: str) -> None:
    raw = load(name)
    reader = FrameReader()
    frames: list[bytes] = []
    for index in range(len(raw)):
        frames.extend(reader.feed(raw[index : index + 1]))
    assert frames == [raw]
