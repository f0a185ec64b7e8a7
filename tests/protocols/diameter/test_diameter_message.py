"""Messages: header checks, lazy decoding, byte-exact round trips, and how answers and error
answers are built."""

import struct
from ipaddress import IPv4Address

import pytest

from protocols.diameter.avp import Avp, grouped, new_avp, push_avps
from protocols.diameter.constants import (
    ApplicationId,
    AvpCode,
    CommandCode,
    ResultCode,
)
from protocols.diameter.errors import DiameterError
from protocols.diameter.message import (
    STRICT_OPTIONS,
    LocalIdentity,
    Message,
    answer_for_error,
    decode_header,
    decode_message,
    encode_message,
    make_answer,
    salvage_message,
)

OCS = LocalIdentity(
    origin_host="ocs.example.net",
    origin_realm="example.net",
    host_ip_addresses=(IPv4Address("192.0.2.10"),),
)
PROXY_INFO = grouped(
    AvpCode.PROXY_INFO,
    [new_avp(AvpCode.PROXY_HOST, "dra.example.net"), new_avp(AvpCode.PROXY_STATE, b"\x01")],
)
CCR_AVPS = (
    new_avp(AvpCode.SESSION_ID, "scscf;1;2"),
    new_avp(AvpCode.ORIGIN_HOST, "scscf.ims.example.net"),
    new_avp(AvpCode.ORIGIN_REALM, "ims.example.net"),
    new_avp(AvpCode.DESTINATION_REALM, "example.net"),
    new_avp(AvpCode.AUTH_APPLICATION_ID, 4),
    new_avp(AvpCode.SERVICE_CONTEXT_ID, "32260@3gpp.org"),
    new_avp(AvpCode.CC_REQUEST_TYPE, 1),
    new_avp(AvpCode.CC_REQUEST_NUMBER, 0),
    PROXY_INFO,
)
CCR = Message(CommandCode.CREDIT_CONTROL, 0xC0, ApplicationId.CREDIT_CONTROL, 7, 9, CCR_AVPS)


def header(length: int, flags: int = 0xC0, version: int = 1, code: int = 272) -> bytes:
    return struct.pack("!IIIII", (version << 24) | length, (flags << 24) | code, 4, 7, 9)


def error_of(data: bytes) -> DiameterError:
    with pytest.raises(DiameterError) as caught:
        decode_message(data)
    return caught.value


def test_round_trip() -> None:
    wire = encode_message(CCR)
    assert wire[:4] == struct.pack("!I", (1 << 24) | len(wire))
    decoded = decode_message(wire)
    assert decoded == CCR
    assert decoded.raw == wire
    assert encode_message(decoded) == wire
    assert decoded.is_request
    assert decoded.is_proxiable
    assert not decoded.is_error
    assert not decoded.is_retransmitted
    assert decoded.session_id == "scscf;1;2"
    assert decoded.result_code is None
    assert decoded.find(AvpCode.CC_REQUEST_TYPE) == new_avp(AvpCode.CC_REQUEST_TYPE, 1)
    assert decoded.find_all(AvpCode.PROXY_INFO) == [PROXY_INFO]


def test_reserved_header_bits_are_kept() -> None:
    message = Message(280, 0x8F, 0, 1, 2, ())
    assert decode_message(encode_message(message)).flags == 0x8F


@pytest.mark.parametrize(
    ("data", "result_code"),
    [
        pytest.param(b"", ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH, id="empty"),
        pytest.param(header(20)[:19], ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH, id="19-octets"),
        pytest.param(header(24), ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH, id="length-too-big"),
        pytest.param(
            header(20) + bytes(4), ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH, id="trailing"
        ),
        pytest.param(
            header(22) + bytes(2), ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH, id="not-4-aligned"
        ),
        pytest.param(
            header(20, version=2), ResultCode.DIAMETER_UNSUPPORTED_VERSION, id="version-2"
        ),
        pytest.param(header(20, flags=0xA0), ResultCode.DIAMETER_INVALID_HDR_BITS, id="R-and-E"),
    ],
)
def test_header_errors(data: bytes, result_code: int) -> None:
    assert error_of(data).result_code == result_code
    with pytest.raises(DiameterError):
        decode_message(data, lazy=True)


def test_answer_with_error_bit_is_fine() -> None:
    assert decode_message(header(20, flags=0x20)).is_error


def test_lazy_decoding_defers_avp_errors() -> None:
    bad = header(32) + struct.pack("!II", AvpCode.CC_REQUEST_NUMBER, (0x40 << 24) | 11) + bytes(4)
    message = decode_message(bad, lazy=True)
    assert message.command_code == CommandCode.CREDIT_CONTROL
    assert message.hop_by_hop_id == 7
    assert not message.is_decoded
    assert "not decoded" in repr(message)
    with pytest.raises(DiameterError) as caught:
        _ = message.avps
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    good = decode_message(encode_message(CCR), lazy=True)
    assert good.avps == CCR_AVPS
    assert good.is_decoded
    assert good == CCR


def test_tolerated_notes_come_with_the_message() -> None:
    unknown = struct.pack("!IIIB", 77777, (0xC0 << 24) | 13, 9999, 1) + bytes(3)
    wire = header(20 + len(unknown), flags=0x80, code=280) + unknown
    assert decode_message(wire).tolerated == ("unknown mandatory AVP 77777/9999 kept",)
    lazy = decode_message(wire, lazy=True)
    assert lazy.tolerated == ()
    _ = lazy.avps
    assert lazy.tolerated == ("unknown mandatory AVP 77777/9999 kept",)
    with pytest.raises(DiameterError) as caught:
        decode_message(wire, STRICT_OPTIONS)
    assert caught.value.result_code == ResultCode.DIAMETER_AVP_UNSUPPORTED


def test_message_is_immutable_and_replaceable() -> None:
    with pytest.raises(AttributeError):
        CCR.flags = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del CCR.flags  # type: ignore[misc]
    copy = CCR.replace(hop_by_hop_id=99, avps=CCR_AVPS[:1])
    assert copy.hop_by_hop_id == 99
    assert copy.avps == CCR_AVPS[:1]
    assert copy.command_code == CCR.command_code
    assert copy != CCR
    assert CCR != "not a message"
    assert "hop_by_hop_id=7" in repr(CCR)


def test_oversized_message_cannot_be_encoded() -> None:
    huge = Message(272, 0x80, 4, 1, 1, (new_avp(AvpCode.CLASS, bytes(0xFFFFF0)),))
    with pytest.raises(ValueError):
        encode_message(huge)


def test_decode_header_reads_a_header_alone() -> None:
    parsed = decode_header(header(300))
    assert (parsed.version, parsed.length, parsed.command_code) == (1, 300, 272)
    assert parsed.is_request
    with pytest.raises(DiameterError):
        decode_header(b"\x01")


# --- answers -----------------------------------------------------------------------------


def test_make_answer_mirrors_the_request() -> None:
    answer = make_answer(CCR, OCS, ResultCode.DIAMETER_SUCCESS, [new_avp(AvpCode.CC_TIME, 1)])
    assert answer.command_code == CommandCode.CREDIT_CONTROL
    assert answer.flags == 0x40  # R cleared, P kept
    assert (answer.application_id, answer.hop_by_hop_id, answer.end_to_end_id) == (4, 7, 9)
    assert answer.avps == (
        CCR_AVPS[0],
        new_avp(AvpCode.RESULT_CODE, 2001),
        new_avp(AvpCode.ORIGIN_HOST, "ocs.example.net"),
        new_avp(AvpCode.ORIGIN_REALM, "example.net"),
        new_avp(AvpCode.CC_TIME, 1),
        PROXY_INFO,
    )
    assert answer.result_code == 2001


def test_answer_without_session_id() -> None:
    dwr = Message(CommandCode.DEVICE_WATCHDOG, 0x80, 0, 1, 2, ())
    answer = make_answer(dwr, OCS, ResultCode.DIAMETER_SUCCESS)
    assert answer.flags == 0
    assert answer.avps[0] == new_avp(AvpCode.RESULT_CODE, 2001)


def test_protocol_error_answer_has_the_e_bit() -> None:
    error = DiameterError(ResultCode.DIAMETER_APPLICATION_UNSUPPORTED, "application 5")
    answer = answer_for_error(CCR, error, OCS)
    assert answer.is_error
    assert answer.result_code == 3007
    assert answer.find(AvpCode.ERROR_MESSAGE) == Avp(281, 0, 0, "application 5")
    assert answer.avps[-1] == PROXY_INFO


def test_permanent_failure_on_ccr_uses_the_cca_grammar() -> None:
    failed = (Avp(AvpCode.SUBSCRIPTION_ID, 0, 0x40, ()),)
    error = DiameterError(ResultCode.DIAMETER_MISSING_AVP, "Subscription-Id missing", failed)
    answer = answer_for_error(CCR, error, OCS)
    assert not answer.is_error
    assert [avp.code for avp in answer.avps] == [
        AvpCode.SESSION_ID,
        AvpCode.RESULT_CODE,
        AvpCode.ORIGIN_HOST,
        AvpCode.ORIGIN_REALM,
        AvpCode.AUTH_APPLICATION_ID,
        AvpCode.CC_REQUEST_TYPE,
        AvpCode.CC_REQUEST_NUMBER,
        AvpCode.ERROR_MESSAGE,
        AvpCode.FAILED_AVP,
        AvpCode.PROXY_INFO,
    ]
    assert answer.find(AvpCode.FAILED_AVP) == Avp(279, 0, 0x40, failed)
    decode_message(encode_message(answer))


def test_permanent_failure_without_the_avps_to_echo_uses_the_e_bit_grammar() -> None:
    request = CCR.replace(avps=CCR_AVPS[:6])  # no CC-Request-Type/Number
    error = DiameterError(ResultCode.DIAMETER_MISSING_AVP, "CC-Request-Type missing")
    answer = answer_for_error(request, error, OCS)
    assert answer.is_error
    assert answer.find(AvpCode.AUTH_APPLICATION_ID) is not None


def test_unknown_command_is_answered_with_the_e_bit() -> None:
    request = Message(9999, 0x80, 16777216, 1, 2, (new_avp(AvpCode.SESSION_ID, "x"),))
    error = DiameterError(ResultCode.DIAMETER_COMMAND_UNSUPPORTED, "")
    answer = answer_for_error(request, error, OCS)
    assert answer.is_error
    assert answer.find(AvpCode.ERROR_MESSAGE) is None
    assert answer.command_code == 9999


def test_salvaged_request_can_be_answered() -> None:
    good = push_avps(CCR_AVPS[:2])
    bad = struct.pack("!II", AvpCode.CC_REQUEST_TYPE, (0x40 << 24) | 100)
    data = header(20 + len(good) + len(bad)) + good + bad
    error = error_of(data)
    salvaged = salvage_message(data)
    assert salvaged is not None
    assert salvaged.avps == (
        Avp(263, 0, 0x40, b"scscf;1;2"),
        Avp(264, 0, 0x40, b"scscf.ims.example.net"),
    )
    answer = answer_for_error(salvaged, error, OCS)
    assert answer.is_error
    assert answer.hop_by_hop_id == 7
    wire = encode_message(answer)
    assert decode_message(wire).session_id == "scscf;1;2"
    assert salvage_message(b"\x01\x00") is None


def test_lazily_decoded_malformed_request_can_be_answered() -> None:
    good = push_avps(CCR_AVPS[:1])
    bad = struct.pack("!II", AvpCode.CC_REQUEST_TYPE, (0x40 << 24) | 10) + bytes(4)
    data = header(20 + len(good) + len(bad)) + good + bad
    lazy = decode_message(data, lazy=True)
    error = DiameterError(ResultCode.DIAMETER_INVALID_AVP_LENGTH, "bad")
    answer = answer_for_error(lazy, error, OCS)
    assert answer.avps[0] == Avp(263, 0, 0x40, b"scscf;1;2")
    assert answer.is_error
