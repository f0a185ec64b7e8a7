"""The AVP-list codec: typed decoding, exact flags on encode, and every error with the
Failed-AVP content RFC 6733 §7.1.5/§7.5 asks for."""

import struct
from datetime import UTC, datetime
from ipaddress import IPv4Address

import pytest

from protocols.diameter.avp import (
    Avp,
    AvpDecoder,
    new_avp,
    pull_raw_avps,
    push_avp,
    push_avps,
    zeroed_avp,
)
from protocols.diameter.constants import AvpCode, ResultCode, TgppAvpCode, VendorId
from protocols.diameter.datatypes import DataType
from protocols.diameter.datatypes.address import push_address
from protocols.diameter.datatypes.floatingpoint import push_float32, push_float64
from protocols.diameter.datatypes.integer import (
    push_integer32,
    push_integer64,
    push_unsigned32,
    push_unsigned64,
)
from protocols.diameter.datatypes.timestamp import push_time
from protocols.diameter.dictionary import DEFINITIONS, AvpDefinition
from protocols.diameter.errors import DiameterError

TGPP = VendorId.TGPP
LENIENT = AvpDecoder(reject_unknown_mandatory=False, enforce_flag_rules=False, max_depth=16)
STRICT = AvpDecoder(reject_unknown_mandatory=True, enforce_flag_rules=True, max_depth=16)


def raw_avp(code: int, flags: int, payload: bytes, vendor_id: int | None = None) -> bytes:
    """Hand-build one AVP, padding included, trusting nothing of the codec."""
    if vendor_id is not None:
        header = struct.pack("!III", code, (flags << 24) | (12 + len(payload)), vendor_id)
    else:
        header = struct.pack("!II", code, (flags << 24) | (8 + len(payload)))
    return header + payload + bytes(-len(payload) % 4)


def decode(data: bytes, decoder: AvpDecoder = LENIENT) -> tuple[tuple[Avp, ...], list[str]]:
    notes: list[str] = []
    return decoder.pull_avps(data, 0, len(data), notes), notes


def decode_error(data: bytes, decoder: AvpDecoder = LENIENT) -> DiameterError:
    with pytest.raises(DiameterError) as caught:
        decode(data, decoder)
    return caught.value


# --- encoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("avp", "wire"),
    [
        pytest.param(
            new_avp(AvpCode.SESSION_ID, "a;1"),
            raw_avp(263, 0x40, b"a;1"),
            id="utf8-padded",
        ),
        pytest.param(
            new_avp(AvpCode.AUTH_APPLICATION_ID, 4),
            raw_avp(258, 0x40, b"\x00\x00\x00\x04"),
            id="unsigned32",
        ),
        pytest.param(
            new_avp(AvpCode.CC_TOTAL_OCTETS, 2**40),
            raw_avp(421, 0x40, push_unsigned64(2**40)),
            id="unsigned64",
        ),
        pytest.param(
            new_avp(AvpCode.EXPONENT, -2),
            raw_avp(429, 0x40, push_integer32(-2)),
            id="integer32",
        ),
        pytest.param(
            new_avp(AvpCode.VALUE_DIGITS, -(2**40)),
            raw_avp(447, 0x40, push_integer64(-(2**40))),
            id="integer64",
        ),
        pytest.param(
            new_avp(AvpCode.ERROR_MESSAGE, "bad"),
            raw_avp(281, 0x00, b"bad"),
            id="no-M-bit",
        ),
        pytest.param(
            new_avp(TgppAvpCode.ROLE_OF_NODE, 1, TGPP),
            raw_avp(829, 0xC0, push_integer32(1), TGPP),
            id="vendor-enumerated",
        ),
        pytest.param(
            new_avp(TgppAvpCode.SESSION_PRIORITY, 2, TGPP),
            raw_avp(650, 0x80, push_integer32(2), TGPP),
            id="vendor-M-must-not",
        ),
        pytest.param(
            new_avp(AvpCode.HOST_IP_ADDRESS, IPv4Address("192.0.2.1")),
            raw_avp(257, 0x40, push_address(IPv4Address("192.0.2.1"))),
            id="address",
        ),
        pytest.param(
            new_avp(AvpCode.EVENT_TIMESTAMP, datetime(2024, 5, 1, 12, tzinfo=UTC)),
            raw_avp(55, 0x40, push_time(datetime(2024, 5, 1, 12, tzinfo=UTC))),
            id="time",
        ),
        pytest.param(
            new_avp(
                AvpCode.SUBSCRIPTION_ID,
                (
                    new_avp(AvpCode.SUBSCRIPTION_ID_TYPE, 0),
                    new_avp(AvpCode.SUBSCRIPTION_ID_DATA, "4412"),
                ),
            ),
            raw_avp(
                443,
                0x40,
                raw_avp(450, 0x40, push_integer32(0)) + raw_avp(444, 0x40, b"4412"),
            ),
            id="grouped",
        ),
        pytest.param(Avp(99999, 0, 0, b"\x01"), raw_avp(99999, 0, b"\x01"), id="unknown-raw"),
        pytest.param(Avp(1234, 0, 0x80, b"xy"), raw_avp(1234, 0x80, b"xy", 0), id="V-bit-vendor-0"),
    ],
)
def test_encode(avp: Avp, wire: bytes) -> None:
    assert push_avp(avp) == wire
    assert decode(wire)[0] == (avp,)
    assert push_avps([avp, avp]) == wire + wire


def test_raw_payload_of_a_known_avp_is_sent_as_is() -> None:
    # How a Failed-AVP quotes an AVP that could not be decoded.
    quoted = Avp(AvpCode.AUTH_APPLICATION_ID, 0, 0x40, b"\x00\x00\x04")
    assert push_avp(quoted) == raw_avp(258, 0x40, b"\x00\x00\x04")


def test_raw_prefix_decoding_stops_at_the_first_bad_header() -> None:
    good = raw_avp(263, 0x40, b"s;1") + raw_avp(1234, 0x80, b"v", 7)
    bad = struct.pack("!II", 415, (0x40 << 24) | 300)
    assert pull_raw_avps(good + bad, 0, len(good + bad)) == (
        Avp(263, 0, 0x40, b"s;1"),
        Avp(1234, 7, 0x80, b"v"),
    )


@pytest.mark.parametrize(
    "avp",
    [
        pytest.param(new_avp(AvpCode.AUTH_APPLICATION_ID, -1), id="u32-negative"),
        pytest.param(new_avp(AvpCode.AUTH_APPLICATION_ID, 2**32), id="u32-overflow"),
        pytest.param(new_avp(AvpCode.ORIGIN_HOST, "ocs.exämple"), id="identity-non-ascii"),
        pytest.param(new_avp(AvpCode.SESSION_ID, 5), id="int-in-string-avp"),
        pytest.param(Avp(99999, 0, 0, 5), id="int-in-unknown-avp"),
        pytest.param(new_avp(AvpCode.SESSION_ID, 1.5), id="float-in-string-avp"),
        pytest.param(new_avp(AvpCode.SESSION_ID, object()), id="object"),  # type: ignore[arg-type]
    ],
)
def test_encode_refuses_what_the_type_cannot_carry(avp: Avp) -> None:
    with pytest.raises(ValueError):
        push_avp(avp)


def test_zeroed_avp_has_minimum_size() -> None:
    assert zeroed_avp(AvpCode.CC_REQUEST_NUMBER) == Avp(415, 0, 0x40, bytes(4))
    assert zeroed_avp(AvpCode.SESSION_ID) == Avp(263, 0, 0x40, b"")
    assert zeroed_avp(AvpCode.SUBSCRIPTION_ID) == Avp(443, 0, 0x40, ())
    assert zeroed_avp(TgppAvpCode.IMS_INFORMATION, TGPP) == Avp(876, TGPP, 0xC0, ())
    assert zeroed_avp(99999) == Avp(99999, 0, 0, b"")


# --- the inline decoder agrees with the data type modules --------------------------------

SAMPLES: dict[DataType, tuple[bytes, object]] = {
    DataType.OCTET_STRING: (b"\x00\xff", b"\x00\xff"),
    DataType.INTEGER32: (push_integer32(-7), -7),
    DataType.ENUMERATED: (push_integer32(3), 3),
    DataType.INTEGER64: (push_integer64(-(2**40)), -(2**40)),
    DataType.UNSIGNED32: (push_unsigned32(2**32 - 1), 2**32 - 1),
    DataType.UNSIGNED64: (push_unsigned64(2**64 - 1), 2**64 - 1),
    DataType.FLOAT32: (push_float32(1.5), 1.5),
    DataType.FLOAT64: (push_float64(-2.25), -2.25),
    DataType.GROUPED: (b"", ()),
    DataType.ADDRESS: (push_address(IPv4Address("10.1.2.3")), IPv4Address("10.1.2.3")),
    DataType.TIME: (
        push_time(datetime(2030, 1, 1, tzinfo=UTC)),
        datetime(2030, 1, 1, tzinfo=UTC),
    ),
    DataType.UTF8_STRING: ("é".encode(), "é"),
    DataType.DIAMETER_IDENTITY: (b"ocs.example", "ocs.example"),
    DataType.DIAMETER_URI: (b"aaa://ocs.example", "aaa://ocs.example"),
    DataType.IP_FILTER_RULE: (b"permit in ip from any to any", "permit in ip from any to any"),
}


@pytest.mark.parametrize("entry", list(DEFINITIONS.values()), ids=lambda d: d.name)
def test_every_definition_decodes_and_reencodes(entry: AvpDefinition) -> None:
    payload, value = SAMPLES[entry.data_type]
    wire = raw_avp(
        entry.code,
        entry.flags_to_send,
        payload,
        entry.vendor_id if entry.vendor_id else None,
    )
    avps, notes = decode(wire, STRICT)
    assert avps == (Avp(entry.code, entry.vendor_id, entry.flags_to_send, value),)
    assert notes == []
    assert push_avp(avps[0]) == wire
    assert push_avp(new_avp(entry.code, value, entry.vendor_id)) == wire  # type: ignore[arg-type]


# --- decoding errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "vendor_id", "payload"),
    [
        pytest.param(AvpCode.CC_REQUEST_NUMBER, None, b"\x00\x00\x01", id="u32-3-bytes"),
        pytest.param(AvpCode.CC_REQUEST_NUMBER, None, bytes(8), id="u32-8-bytes"),
        pytest.param(AvpCode.CC_REQUEST_NUMBER, None, b"", id="u32-empty"),
        pytest.param(AvpCode.CC_REQUEST_TYPE, None, b"\x00\x01", id="enumerated-2-bytes"),
        pytest.param(AvpCode.EXPONENT, None, bytes(5), id="i32-5-bytes"),
        pytest.param(AvpCode.CC_TOTAL_OCTETS, None, bytes(4), id="u64-4-bytes"),
        pytest.param(AvpCode.VALUE_DIGITS, None, bytes(9), id="i64-9-bytes"),
        pytest.param(AvpCode.EVENT_TIMESTAMP, None, bytes(3), id="time-3-bytes"),
        pytest.param(AvpCode.HOST_IP_ADDRESS, None, b"\x00\x01\x0a\x00\x00", id="ipv4-3-bytes"),
        pytest.param(TgppAvpCode.ROLE_OF_NODE, TGPP, b"\x00", id="vendor-enumerated-1-byte"),
        pytest.param(TgppAvpCode.TIME_QUOTA_THRESHOLD, TGPP, bytes(6), id="vendor-u32-6"),
    ],
)
def test_wrong_length_fixed_size_is_5014_with_the_avp_as_received(
    code: int, vendor_id: int | None, payload: bytes
) -> None:
    flags = 0xC0 if vendor_id else 0x40
    error = decode_error(raw_avp(code, flags, payload, vendor_id))
    assert error.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert error.failed_avps == (Avp(code, vendor_id or 0, flags, payload),)


def test_avp_length_beyond_the_list_is_5014_with_zeroed_payload() -> None:
    data = struct.pack("!II", AvpCode.CC_REQUEST_NUMBER, (0x40 << 24) | 200) + bytes(8)
    error = decode_error(data)
    assert error.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert error.failed_avps == (Avp(415, 0, 0x40, bytes(4)),)


def test_avp_length_below_header_is_5014() -> None:
    data = struct.pack("!II", AvpCode.SESSION_ID, (0x40 << 24) | 4) + bytes(4)
    error = decode_error(data)
    assert error.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert error.failed_avps == (Avp(263, 0, 0x40, b""),)


def test_vendor_avp_length_below_its_header_is_5014() -> None:
    data = struct.pack("!III", TgppAvpCode.ROLE_OF_NODE, (0xC0 << 24) | 10, TGPP) + bytes(4)
    error = decode_error(data)
    assert error.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert error.failed_avps == (Avp(829, TGPP, 0xC0, bytes(4)),)


def test_truncated_header_is_5014_with_zero_padded_header() -> None:
    data = raw_avp(263, 0x40, b"ab") + struct.pack("!I", AvpCode.CC_REQUEST_TYPE) + b"\x40"
    error = decode_error(data)
    assert error.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert error.failed_avps == (Avp(416, 0, 0x40, b""),)


@pytest.mark.parametrize(
    ("code", "payload"),
    [
        pytest.param(AvpCode.SESSION_ID, b"a\xffb", id="utf8"),
        pytest.param(AvpCode.ORIGIN_HOST, "hö".encode(), id="identity"),
        pytest.param(AvpCode.REDIRECT_HOST, b"aaa://\xff", id="uri"),
    ],
)
def test_undecodable_text_is_5004_with_the_avp_as_received(code: int, payload: bytes) -> None:
    error = decode_error(raw_avp(code, 0x40, payload))
    assert error.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    assert error.failed_avps == (Avp(code, 0, 0x40, payload),)
    assert error.error_message
