"""Grouped AVPs: members decoded by the AVP-list codec, errors wrapped in their parents,
unknown members kept byte for byte, bounded nesting, and the strictness switches."""

import struct

import pytest

from protocols.diameter.avp import Avp, AvpDecoder, find_avp, find_avps, grouped, new_avp, push_avp
from protocols.diameter.constants import AvpCode, ResultCode, TgppAvpCode, VendorId
from protocols.diameter.datatypes.grouped import pull_grouped, push_grouped
from protocols.diameter.datatypes.integer import push_unsigned32
from protocols.diameter.errors import DiameterError
from protocols.diameter.message import STRICT_OPTIONS

TGPP = VendorId.TGPP
LENIENT = AvpDecoder(reject_unknown_mandatory=False, enforce_flag_rules=False, max_depth=16)
STRICT = AvpDecoder(reject_unknown_mandatory=True, enforce_flag_rules=True, max_depth=16)


def raw_avp(code: int, flags: int, payload: bytes, vendor_id: int | None = None) -> bytes:
    if vendor_id is not None:
        header = struct.pack("!III", code, (flags << 24) | (12 + len(payload)), vendor_id)
    else:
        header = struct.pack("!II", code, (flags << 24) | (8 + len(payload)))
    return header + payload + bytes(-len(payload) % 4)


def decode(data: bytes, decoder: AvpDecoder = LENIENT) -> tuple[tuple[Avp, ...], list[str]]:
    notes: list[str] = []
    return decoder.pull_avps(data, 0, len(data), notes), notes


MSCC = grouped(
    AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL,
    [
        grouped(AvpCode.REQUESTED_SERVICE_UNIT, []),
        grouped(
            AvpCode.USED_SERVICE_UNIT,
            [
                new_avp(AvpCode.CC_TIME, 57),
                new_avp(TgppAvpCode.REPORTING_REASON, 3, TGPP),
            ],
        ),
        new_avp(AvpCode.RATING_GROUP, 100),
    ],
)


def test_nested_round_trip_and_navigation() -> None:
    wire = push_avp(MSCC)
    (decoded,), notes = decode(wire)
    assert decoded == MSCC
    assert notes == []
    assert push_avp(decoded) == wire
    used = decoded.find(AvpCode.USED_SERVICE_UNIT)
    assert used is not None
    assert used.find(AvpCode.CC_TIME) == new_avp(AvpCode.CC_TIME, 57)
    assert used.find(TgppAvpCode.REPORTING_REASON) is None
    assert used.find_all(TgppAvpCode.REPORTING_REASON, TGPP)[0].value == 3
    assert decoded.find(AvpCode.REQUESTED_SERVICE_UNIT) == Avp(437, 0, 0x40, ())
    assert new_avp(AvpCode.CC_TIME, 1).avps == ()
    assert find_avp(decoded.avps, AvpCode.RATING_GROUP) == new_avp(AvpCode.RATING_GROUP, 100)
    assert find_avps(decoded.avps, 12345) == []


def test_error_inside_is_wrapped_in_every_parent() -> None:
    bad_time = raw_avp(AvpCode.CC_TIME, 0x40, b"\x00\x39")
    wire = raw_avp(
        AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL,
        0x40,
        raw_avp(AvpCode.RATING_GROUP, 0x40, push_unsigned32(100))
        + raw_avp(AvpCode.USED_SERVICE_UNIT, 0x40, bad_time),
    )
    with pytest.raises(DiameterError) as caught:
        decode(wire)
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert caught.value.failed_avps == (
        Avp(456, 0, 0x40, (Avp(446, 0, 0x40, (Avp(420, 0, 0x40, b"\x00\x39"),)),)),
    )


def test_member_overrunning_its_parent_is_5014() -> None:
    inner = struct.pack("!II", AvpCode.CC_TIME, (0x40 << 24) | 12) + b"\x00\x00"
    wire = raw_avp(AvpCode.USED_SERVICE_UNIT, 0x40, inner)
    with pytest.raises(DiameterError) as caught:
        decode(wire)
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert caught.value.failed_avps == (Avp(446, 0, 0x40, (Avp(420, 0, 0x40, bytes(4)),)),)


def test_unknown_members_are_kept_byte_for_byte() -> None:
    unknown = raw_avp(77777, 0x80, b"\x01\x02\x03", 9999)
    wire = raw_avp(AvpCode.USED_SERVICE_UNIT, 0x40, unknown + raw_avp(420, 0x40, bytes(4)))
    (decoded,), notes = decode(wire)
    assert decoded.avps[0] == Avp(77777, 9999, 0x80, b"\x01\x02\x03")
    assert notes == []
    assert push_avp(decoded) == wire


def test_unknown_mandatory_member_is_kept_and_noted_by_default() -> None:
    unknown = raw_avp(77777, 0xC0, b"\x01", 9999)
    wire = raw_avp(AvpCode.USED_SERVICE_UNIT, 0x40, unknown)
    (decoded,), notes = decode(wire)
    assert decoded.avps == (Avp(77777, 9999, 0xC0, b"\x01"),)
    assert notes == ["unknown mandatory AVP 77777/9999 kept"]
    assert push_avp(decoded) == wire


def test_unknown_mandatory_member_is_5001_when_strict() -> None:
    unknown = raw_avp(77777, 0xC0, b"\x01", 9999)
    wire = raw_avp(AvpCode.USED_SERVICE_UNIT, 0x40, unknown)
    with pytest.raises(DiameterError) as caught:
        decode(wire, STRICT)
    assert caught.value.result_code == ResultCode.DIAMETER_AVP_UNSUPPORTED
    assert caught.value.failed_avps == (Avp(446, 0, 0x40, (Avp(77777, 9999, 0xC0, b"\x01"),)),)


@pytest.mark.parametrize(
    ("code", "flags", "vendor_id"),
    [
        pytest.param(AvpCode.CC_TIME, 0x00, None, id="M-missing"),
        pytest.param(AvpCode.ERROR_MESSAGE, 0x40, None, id="M-forbidden"),
        pytest.param(AvpCode.CC_TIME, 0x60, None, id="P-forbidden-is-not"),
        pytest.param(AvpCode.PROXY_HOST, 0x60, None, id="P-forbidden"),
        pytest.param(TgppAvpCode.SESSION_PRIORITY, 0xC0, TGPP, id="vendor-M-forbidden"),
        pytest.param(AvpCode.CC_TIME, 0x41, None, id="reserved-with-M"),
    ],
)
def test_flag_rules_are_enforced_only_when_asked(
    code: int, flags: int, vendor_id: int | None
) -> None:
    wire = raw_avp(code, flags, bytes(4), vendor_id)
    decode(wire)  # liberal by default
    if code == AvpCode.CC_TIME and flags == 0x60:
        decode(wire, STRICT)  # P is MAY for CC-Time
        return
    with pytest.raises(DiameterError) as caught:
        decode(wire, STRICT)
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_BITS
    assert caught.value.failed_avps[0].code == code


def test_nesting_is_bounded() -> None:
    wire = b""
    for _ in range(40):
        wire = raw_avp(AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL, 0x40, wire)
    with pytest.raises(DiameterError) as caught:
        decode(wire)
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    shallow = AvpDecoder(reject_unknown_mandatory=False, enforce_flag_rules=False, max_depth=64)
    assert len(decode(wire, shallow)[0]) == 1


def test_last_member_without_padding_is_accepted_and_noted() -> None:
    member = struct.pack("!II", AvpCode.SUBSCRIPTION_ID_DATA, (0x40 << 24) | 10) + b"44"
    header = struct.pack("!II", AvpCode.SUBSCRIPTION_ID, (0x40 << 24) | (8 + len(member)))
    wire = header + member + b"\x00\x00"
    (decoded,), notes = decode(wire)
    assert decoded == Avp(443, 0, 0x40, (Avp(444, 0, 0x40, "44"),))
    assert notes == ["grouped AVP length excludes the padding of its last member"]


def test_failed_avp_may_quote_an_undecodable_avp() -> None:
    quoted = raw_avp(AvpCode.CC_REQUEST_NUMBER, 0x40, b"\x00\x00\x01")
    good = raw_avp(AvpCode.CC_REQUEST_TYPE, 0x40, b"\x00\x00\x00\x02")
    wire = raw_avp(AvpCode.FAILED_AVP, 0x40, quoted + good)
    (decoded,), _ = decode(wire, STRICT)
    assert decoded.avps == (
        Avp(AvpCode.CC_REQUEST_NUMBER, 0, 0x40, b"\x00\x00\x01"),
        Avp(AvpCode.CC_REQUEST_TYPE, 0, 0x40, 2),
    )
    assert push_avp(decoded) == wire


def test_pull_and_push_grouped_payloads() -> None:
    members = MSCC.avps
    payload = push_grouped(members)
    assert push_avp(MSCC) == struct.pack("!II", 456, (0x40 << 24) | (8 + len(payload))) + payload
    assert pull_grouped(payload) == members
    with pytest.raises(DiameterError) as caught:
        pull_grouped(payload[:-2])
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert caught.value.failed_avp is not None
    unknown = raw_avp(77777, 0xC0, b"\x01", 9999)
    assert pull_grouped(unknown) == (Avp(77777, 9999, 0xC0, b"\x01"),)
    with pytest.raises(DiameterError):
        pull_grouped(unknown, STRICT_OPTIONS)
    assert DiameterError(5012).failed_avp is None
