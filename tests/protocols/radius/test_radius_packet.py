"""RADIUS packet codec: known answers, authenticators, bad input, encoding limits."""

from __future__ import annotations

import hashlib
import hmac
from ipaddress import IPv4Address

import pytest
from radius_fixtures import (
    RADCLIENT_ACCESS_REQUEST,
    RADCLIENT_ACCOUNTING_REQUEST,
    RADCLIENT_COA_REQUEST,
    RADCLIENT_DISCONNECT_REQUEST,
    RADCLIENT_SECRET,
    RADCLIENT_STATUS_SERVER,
    RFC_7_1_ACCEPT,
    RFC_7_1_REQUEST,
    RFC_7_2_REQUEST,
    RFC_SECRET,
)

from protocols.radius.attribute import (
    MalformedAttribute,
    cisco_avpair,
    encode_attribute,
    h323_attribute,
    integer_attribute,
    ipaddr_attribute,
    string_attribute,
    vendor_attribute,
)
from protocols.radius.dictionary import default_dictionary
from protocols.radius.packet import (
    MAX_PACKET_OCTETS,
    Code,
    DropReason,
    Packet,
    RadiusError,
    decode_packet,
    decrypt_user_password,
    encode_reply,
    encode_request,
    encrypt_user_password,
    retransmission_key,
    verify_reply,
    verify_request,
)

SECRET = b"s3cr3t"
D = default_dictionary()


def _with_header(code: int, body: bytes, identifier: int = 1, length: int | None = None) -> bytes:
    size = 20 + len(body) if length is None else length
    return bytes((code, identifier)) + size.to_bytes(2, "big") + bytes(16) + body


def _acct(attributes: list[tuple[int, bytes]], secret: bytes = SECRET, **kw: object) -> bytes:
    return encode_request(Code.ACCOUNTING_REQUEST, 9, attributes, secret, **kw)  # type: ignore[arg-type]


# -- known answers ---------------------------------------------------------------------


def test_rfc2865_7_1_request_decodes() -> None:
    packet = decode_packet(RFC_7_1_REQUEST)
    assert packet.code is Code.ACCESS_REQUEST
    assert packet.identifier == 0
    assert packet.get_str("User-Name") == "nemo"
    assert packet.get("NAS-IP-Address") == IPv4Address("192.168.1.16")
    assert packet.get_int("NAS-Port") == 3
    assert packet.user_password(RFC_SECRET) == b"arctangent"
    verify_request(packet, RFC_SECRET)  # no Message-Authenticator, none required


def test_rfc2865_7_1_accept_is_byte_exact() -> None:
    request = decode_packet(RFC_7_1_REQUEST)
    attributes = [integer_attribute(6, 1), integer_attribute(15, 0)]
    attributes.append(ipaddr_attribute(14, "192.168.1.3"))
    reply = encode_reply(
        request, Code.ACCESS_ACCEPT, attributes, RFC_SECRET, message_authenticator=False
    )
    assert reply == RFC_7_1_ACCEPT
    verify_reply(decode_packet(reply), request, RFC_SECRET)


def test_rfc2865_7_1_password_is_byte_exact() -> None:
    request = decode_packet(RFC_7_1_REQUEST)
    hidden = encrypt_user_password(b"arctangent", RFC_SECRET, request.authenticator)
    assert hidden == request.values("User-Password")[0]


def test_rfc2865_7_2_chap_request_decodes() -> None:
    packet = decode_packet(RFC_7_2_REQUEST)
    assert packet.get_str("User-Name") == "flopsy"
    assert packet.get_int("NAS-Port") == 20
    assert D.value_name("Service-Type", packet.get_int("Service-Type") or 0) == "Framed-User"
    assert len(packet.values("CHAP-Password")[0]) == 17
    assert packet.user_password(RFC_SECRET) is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(RADCLIENT_ACCESS_REQUEST, Code.ACCESS_REQUEST, id="access-request-ma"),
        pytest.param(RADCLIENT_ACCOUNTING_REQUEST, Code.ACCOUNTING_REQUEST, id="accounting"),
        pytest.param(RADCLIENT_STATUS_SERVER, Code.STATUS_SERVER, id="status-server"),
        pytest.param(RADCLIENT_DISCONNECT_REQUEST, Code.DISCONNECT_REQUEST, id="disconnect"),
        pytest.param(RADCLIENT_COA_REQUEST, Code.COA_REQUEST, id="coa-ma"),
    ],
)
def test_freeradius_requests_verify(raw: bytes, code: Code) -> None:
    packet = decode_packet(raw)
    assert packet.code is code
    verify_request(packet, RADCLIENT_SECRET, require_message_authenticator=True)
    with pytest.raises(RadiusError) as caught:
        verify_request(packet, b"wrong", require_message_authenticator=True)
    assert caught.value.reason in (
        DropReason.BAD_REQUEST_AUTHENTICATOR,
        DropReason.BAD_MESSAGE_AUTHENTICATOR,
    )


def test_freeradius_access_request_values() -> None:
    packet = decode_packet(RADCLIENT_ACCESS_REQUEST)
    assert [t for t, _ in packet.attributes].count(80) == 1
    assert packet.user_password(RADCLIENT_SECRET) == b"secret"
    assert packet.get_str("Calling-Station-Id") == "4412345"
    assert packet.avpairs() == {"h323-ivr-out": "x"}
    assert packet.get_str("h323-conf-id") == "h323-conf-id=1 2 3 4"


def test_message_authenticator_known_answer() -> None:
    """RFC 3579 section 3.2 computed independently with hmac over the zeroed packet."""
    raw = RADCLIENT_STATUS_SERVER
    zeroed = raw[:22] + bytes(16) + raw[38:]
    assert hmac.new(RADCLIENT_SECRET, zeroed, "md5").digest() == raw[22:38]
    verify_request(decode_packet(raw), RADCLIENT_SECRET)


def test_accounting_request_authenticator_known_answer() -> None:
    """RFC 2866 section 3 computed independently with hashlib."""
    raw = RADCLIENT_ACCOUNTING_REQUEST
    expected = hashlib.md5(raw[:4] + bytes(16) + raw[20:] + RADCLIENT_SECRET).digest()
    assert expected == raw[4:20]


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", DropReason.TRUNCATED, id="empty"),
        pytest.param(RFC_7_1_REQUEST[:19], DropReason.TRUNCATED, id="short-header"),
        pytest.param(RFC_7_1_REQUEST[:-1], DropReason.TRUNCATED, id="shorter-than-length"),
        pytest.param(_with_header(4, b"", length=19), DropReason.BAD_LENGTH, id="length-19"),
        pytest.param(_with_header(4, b"", length=0), DropReason.BAD_LENGTH, id="length-0"),
        pytest.param(
            _with_header(4, bytes(4100), length=4097), DropReason.BAD_LENGTH, id="length-4097"
        ),
        pytest.param(_with_header(99, b""), DropReason.UNKNOWN_CODE, id="code-99"),
        pytest.param(_with_header(0, b""), DropReason.UNKNOWN_CODE, id="code-0"),
        pytest.param(_with_header(13, b""), DropReason.UNKNOWN_CODE, id="status-client"),
        pytest.param(_with_header(4, b"\x01\x00"), DropReason.BAD_ATTRIBUTE, id="attr-len-0"),
        pytest.param(_with_header(4, b"\x01\x01"), DropReason.BAD_ATTRIBUTE, id="attr-len-1"),
        pytest.param(_with_header(4, b"\x01\x05ab"), DropReason.BAD_ATTRIBUTE, id="attr-past-end"),
        pytest.param(_with_header(4, b"\x01"), DropReason.BAD_ATTRIBUTE, id="attr-header-cut"),
        pytest.param(
            _with_header(4, b"\x01\x03a\x01", length=24) + b"\x03b",
            DropReason.BAD_ATTRIBUTE,
            id="attr-runs-into-padding",
        ),
    ],
)
def test_bad_packets_are_dropped_with_reason(data: bytes, reason: DropReason) -> None:
    with pytest.raises(RadiusError) as caught:
        decode_packet(data)
    assert caught.value.reason is reason


def test_octets_past_length_are_padding() -> None:
    packet = decode_packet(RFC_7_1_REQUEST + b"\xff" * 30)
    assert packet == decode_packet(RFC_7_1_REQUEST)
    assert packet.raw == RFC_7_1_REQUEST


def test_max_size_packet_decodes() -> None:
    body = b"".join(bytes((1, 255)) + bytes(253) for _ in range(15)) + bytes((1, 251)) + bytes(249)
    data = _with_header(4, body)
    assert len(data) == MAX_PACKET_OCTETS
    assert len(decode_packet(data).attributes) == 16


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param(lambda raw: raw[:-1] + bytes((raw[-1] ^ 1,)), DropReason.BAD_REQUEST_AUTHENTICATOR, id="attribute-changed"),  # noqa: E501
        pytest.param(lambda raw: raw[:4] + bytes(16) + raw[20:], DropReason.BAD_REQUEST_AUTHENTICATOR, id="zero-authenticator"),  # noqa: E501
    ],
)  # fmt: skip
def test_tampered_accounting_request(tamper: object, reason: DropReason) -> None:
    raw = _acct([string_attribute(44, "abc"), integer_attribute(40, 2)])
    packet = decode_packet(tamper(raw))  # type: ignore[operator]
    with pytest.raises(RadiusError) as caught:
        verify_request(packet, SECRET)
    assert caught.value.reason is reason


def test_accounting_request_with_message_authenticator() -> None:
    raw = _acct([string_attribute(44, "abc")], message_authenticator=True)
    verify_request(decode_packet(raw), SECRET)
    # a wrong MA under a recomputed, valid Request Authenticator
    bad = bytearray(raw)
    bad[22] ^= 0xFF
    bad[4:20] = hashlib.md5(bytes(bad[:4]) + bytes(16) + bytes(bad[20:]) + SECRET).digest()
    with pytest.raises(RadiusError) as caught:
        verify_request(decode_packet(bytes(bad)), SECRET)
    assert caught.value.reason is DropReason.BAD_MESSAGE_AUTHENTICATOR


def _access(ma: bool = True, extra: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    return encode_request(
        Code.ACCESS_REQUEST,
        3,
        [string_attribute(1, "alice"), *extra],
        SECRET,
        user_password="pw",
        message_authenticator=ma,
    )


@pytest.mark.parametrize(
    ("raw", "kwargs", "reason"),
    [
        pytest.param(_access(ma=False), {"require_message_authenticator": True}, DropReason.MISSING_MESSAGE_AUTHENTICATOR, id="required"),  # noqa: E501
        pytest.param(_access(ma=False, extra=((33, b"ps"),)), {}, DropReason.MISSING_MESSAGE_AUTHENTICATOR, id="proxy-state-blastradius"),  # noqa: E501
        pytest.param(_access(ma=False, extra=((79, b"\x02\x00\x00\x05\x01"),)), {}, DropReason.MISSING_MESSAGE_AUTHENTICATOR, id="eap-message"),  # noqa: E501
        pytest.param(_access()[:30] + bytes((_access()[30] ^ 1,)) + _access()[31:], {}, DropReason.BAD_MESSAGE_AUTHENTICATOR, id="ma-flipped"),  # noqa: E501
        pytest.param(encode_request(Code.STATUS_SERVER, 1, [], SECRET, message_authenticator=False), {}, DropReason.MISSING_MESSAGE_AUTHENTICATOR, id="status-server"),  # noqa: E501
        pytest.param(_access() + b"", {"secret": b"other"}, DropReason.BAD_MESSAGE_AUTHENTICATOR, id="wrong-secret"),  # noqa: E501
        pytest.param(RFC_7_1_ACCEPT, {}, DropReason.NOT_A_REQUEST, id="reply-on-request-port"),
    ],
)  # fmt: skip
def test_access_request_checks(raw: bytes, kwargs: dict[str, object], reason: DropReason) -> None:
    secret = kwargs.pop("secret", SECRET)
    with pytest.raises(RadiusError) as caught:
        verify_request(decode_packet(raw), secret, **kwargs)  # type: ignore[arg-type]
    assert caught.value.reason is reason


def test_access_request_proxy_state_allowed_when_limit_off() -> None:
    raw = _access(ma=False, extra=((33, b"ps"),))
    verify_request(decode_packet(raw), SECRET, limit_proxy_state=False)


@pytest.mark.parametrize(
    "ma_attributes",
    [
        pytest.param(b"\x50\x12" + bytes(16) + b"\x50\x12" + bytes(16), id="two"),
        pytest.param(b"\x50\x10" + bytes(14), id="short"),
    ],
)
def test_invalid_message_authenticator_shapes(ma_attributes: bytes) -> None:
    raw = _with_header(1, ma_attributes + b"\x01\x03a")
    with pytest.raises(RadiusError) as caught:
        verify_request(decode_packet(raw), SECRET)
    assert caught.value.reason is DropReason.BAD_MESSAGE_AUTHENTICATOR


# -- replies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_raw", "code"),
    [
        pytest.param(_access(), Code.ACCESS_ACCEPT, id="accept"),
        pytest.param(_access(), Code.ACCESS_REJECT, id="reject"),
        pytest.param(_access(), Code.ACCESS_CHALLENGE, id="challenge"),
        pytest.param(_acct([string_attribute(44, "x")]), Code.ACCOUNTING_RESPONSE, id="acct"),
        pytest.param(RADCLIENT_STATUS_SERVER, Code.ACCESS_ACCEPT, id="status-server"),
        pytest.param(RADCLIENT_DISCONNECT_REQUEST, Code.DISCONNECT_ACK, id="disconnect-ack"),
        pytest.param(RADCLIENT_DISCONNECT_REQUEST, Code.DISCONNECT_NAK, id="disconnect-nak"),
        pytest.param(RADCLIENT_COA_REQUEST, Code.COA_ACK, id="coa-ack"),
        pytest.param(RADCLIENT_COA_REQUEST, Code.COA_NAK, id="coa-nak"),
    ],
)
def test_reply_round_trip(request_raw: bytes, code: Code) -> None:
    secret = RADCLIENT_SECRET if request_raw[0] in (12, 40, 43) else SECRET
    request = decode_packet(request_raw)
    reply_raw = encode_reply(request, code, [integer_attribute(27, 60)], secret)
    reply = decode_packet(reply_raw)
    assert reply.code is code and reply.identifier == request.identifier
    assert reply.attributes[0][0] == 80  # Message-Authenticator first
    assert reply.get_int("Session-Timeout") == 60
    verify_reply(reply, request, secret, require_message_authenticator=True)
    with pytest.raises(RadiusError) as caught:
        verify_reply(reply, request, b"other")
    assert caught.value.reason is DropReason.BAD_RESPONSE_AUTHENTICATOR


def _reference_accounting_response(request_raw: bytes, secret: bytes) -> bytes:
    """An Accounting-Response built with hmac and hashlib alone (RFC 2866 §3, RFC 3579 §3.2)."""
    header = bytes((5, request_raw[1])) + (20 + 18).to_bytes(2, "big")
    mac = hmac.new(secret, header + bytes(16) + b"\x50\x12" + bytes(16), "md5").digest()
    body = b"\x50\x12" + mac
    return header + hashlib.md5(header + request_raw[4:20] + body + secret).digest() + body


@pytest.mark.parametrize("secret", [SECRET, b"another secret", b"k" * 80])
def test_accounting_response_is_byte_exact_for_every_identifier(secret: bytes) -> None:
    # The reply to an Accounting-Request without attributes reuses its signed part per
    # Identifier and secret; the Response Authenticator is still per request.
    for identifier in range(256):
        for session in ("a", "b"):
            raw = encode_request(
                Code.ACCOUNTING_REQUEST, identifier, [string_attribute(44, session)], secret
            )
            request = decode_packet(raw)
            reply = encode_reply(request, Code.ACCOUNTING_RESPONSE, (), secret)
            assert reply == _reference_accounting_response(raw, secret)
            assert reply == encode_reply(request, Code.ACCOUNTING_RESPONSE, [], secret)
            verify_reply(decode_packet(reply), request, secret, require_message_authenticator=True)


def test_accounting_response_copies_proxy_state() -> None:
    request = decode_packet(_acct([string_attribute(44, "x"), (33, b"p1"), (33, b"p2")]))
    reply = decode_packet(encode_reply(request, Code.ACCOUNTING_RESPONSE, (), SECRET))
    assert [v for t, v in reply.attributes if t == 33] == [b"p1", b"p2"]
    verify_reply(reply, request, SECRET, require_message_authenticator=True)
    bare = encode_reply(request, Code.ACCOUNTING_RESPONSE, (), SECRET, copy_proxy_state=False)
    assert len(bare) == 38
    unsigned = encode_reply(
        request, Code.ACCOUNTING_RESPONSE, (), SECRET, message_authenticator=False
    )
    assert len(unsigned) == 20 + 4 + 4 and decode_packet(unsigned).message_authenticator_at == -1


def test_reply_copies_proxy_state_in_order() -> None:
    request = decode_packet(_access(extra=((33, b"one"), (1, b"x"), (33, b"two"))))
    reply = decode_packet(encode_reply(request, Code.ACCESS_REJECT, [], SECRET))
    assert [v for t, v in reply.attributes if t == 33] == [b"one", b"two"]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        pytest.param(lambda r: r[:1] + b"\x07" + r[2:], DropReason.UNEXPECTED_REPLY, id="other-id"),
        pytest.param(lambda r: b"\x05" + r[1:], DropReason.UNEXPECTED_REPLY, id="wrong-code"),
        pytest.param(lambda r: r[:25] + bytes((r[25] ^ 1,)) + r[26:], DropReason.BAD_RESPONSE_AUTHENTICATOR, id="flipped"),  # noqa: E501
    ],
)  # fmt: skip
def test_reply_checks(mutate: object, reason: DropReason) -> None:
    request = decode_packet(_access())
    reply = encode_reply(request, Code.ACCESS_ACCEPT, [], SECRET)
    with pytest.raises(RadiusError) as caught:
        verify_reply(decode_packet(mutate(reply)), request, SECRET)  # type: ignore[operator]
    assert caught.value.reason is reason


def test_reply_without_message_authenticator_can_be_required() -> None:
    request = decode_packet(_access())
    reply = encode_reply(request, Code.ACCESS_ACCEPT, [], SECRET, message_authenticator=False)
    verify_reply(decode_packet(reply), request, SECRET)
    with pytest.raises(RadiusError) as caught:
        verify_reply(decode_packet(reply), request, SECRET, require_message_authenticator=True)
    assert caught.value.reason is DropReason.MISSING_MESSAGE_AUTHENTICATOR


def test_reply_too_large_is_refused() -> None:
    request = decode_packet(_access())
    attributes = [string_attribute(18, "x" * 253)] * 16
    with pytest.raises(RadiusError) as caught:
        encode_reply(request, Code.ACCESS_REJECT, attributes, SECRET)
    assert caught.value.reason is DropReason.TOO_LARGE


def test_attribute_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        string_attribute(18, "x" * 254)
    with pytest.raises(ValueError, match="does not fit"):
        encode_request(Code.ACCOUNTING_REQUEST, 1, [(18, bytes(254))], SECRET)
    with pytest.raises(ValueError, match="exceeds"):
        encode_attribute(D, "Reply-Message", "x" * 254)
    with pytest.raises(ValueError, match="exceeds"):
        vendor_attribute(9, 1, bytes(248))


def test_concat_attribute_is_split() -> None:
    parts = encode_attribute(D, "EAP-Message", bytes(600))
    assert [len(v) for _, v in parts] == [253, 253, 94]


# -- requests --------------------------------------------------------------------------


def test_encode_request_rules() -> None:
    with pytest.raises(ValueError, match="not a request"):
        encode_request(Code.ACCESS_ACCEPT, 1, [], SECRET)
    with pytest.raises(ValueError, match="computed"):
        encode_request(Code.ACCOUNTING_REQUEST, 1, [], SECRET, authenticator=bytes(16))
    with pytest.raises(ValueError, match="Access-Request"):
        encode_request(Code.ACCOUNTING_REQUEST, 1, [], SECRET, user_password="x")
    with pytest.raises(ValueError, match="identifier"):
        encode_request(Code.ACCESS_REQUEST, 256, [], SECRET)
    one = encode_request(Code.ACCESS_REQUEST, 1, [], SECRET)
    two = encode_request(Code.ACCESS_REQUEST, 1, [], SECRET)
    assert one[4:20] != two[4:20]  # a random Request Authenticator each time
    fixed = encode_request(Code.ACCESS_REQUEST, 1, [], SECRET, authenticator=bytes(range(16)))
    assert fixed[4:20] == bytes(range(16))


@pytest.mark.parametrize(
    "password",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"a", id="one"),
        pytest.param(b"0123456789abcdef", id="sixteen"),
        pytest.param(b"0123456789abcdef0", id="seventeen"),
        pytest.param(bytes(range(1, 129)), id="128"),
    ],
)
def test_password_round_trip(password: bytes) -> None:
    authenticator = bytes(range(16))
    hidden = encrypt_user_password(password, SECRET, authenticator)
    assert len(hidden) % 16 == 0 and hidden
    assert decrypt_user_password(hidden, SECRET, authenticator) == password


def test_password_limits() -> None:
    with pytest.raises(ValueError, match="128"):
        encrypt_user_password(bytes(129), SECRET, bytes(16))
    for size in (0, 15, 144):
        with pytest.raises(MalformedAttribute):
            decrypt_user_password(bytes(size), SECRET, bytes(16))


# -- typed access and tolerance --------------------------------------------------------


def test_unknown_and_renumbered_attributes_are_kept_raw() -> None:
    # a SIP proxy sending Sip-Method-like strings on 101..105, and types nobody defines
    sip = [(101, b"INVITE"), (102, b"200"), (103, b"1 INVITE"), (104, b"tag"), (105, b"tag2")]
    raw = _acct([string_attribute(44, "s1"), *sip, (200, b"\x01"), (254, b"")])
    packet = decode_packet(raw)
    verify_request(packet, SECRET)
    assert packet.attributes[1:] == (*sip, (200, b"\x01"), (254, b""))
    with pytest.raises(MalformedAttribute) as caught:
        packet.get_int("Error-Cause")  # 101 is Error-Cause in RFC 5176, 6 octets here
    assert caught.value.name == "Error-Cause"
    assert packet.get_str("Acct-Session-Id") == "s1"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        pytest.param("Acct-Session-Time", b"\x00\x01\x02", id="integer-3"),
        pytest.param("NAS-IP-Address", b"\x01\x02", id="ipaddr-2"),
        pytest.param("Event-Timestamp", b"", id="date-0"),
        pytest.param("NAS-IPv6-Address", bytes(4), id="ipv6-4"),
        pytest.param("Framed-IPv6-Prefix", b"\x00\x81" + bytes(16), id="prefix-129"),
    ],
)
def test_malformed_value_is_reported_for_that_attribute(name: str, raw: bytes) -> None:
    definition = D.attribute(name)
    packet = decode_packet(_acct([(definition.number, raw), string_attribute(1, "bob")]))
    with pytest.raises(MalformedAttribute) as caught:
        packet.get(name)
    assert caught.value.name == definition.name
    assert packet.get_str("User-Name") == "bob"


def test_typed_values() -> None:
    attrs = [
        *encode_attribute(D, "Event-Timestamp", 1733326282),
        *encode_attribute(D, "Framed-IPv6-Prefix", "2001:db8::/32"),
        *encode_attribute(D, "NAS-IPv6-Address", "2001:db8::1"),
        *encode_attribute(D, "Acct-Status-Type", D.value("Acct-Status-Type", "Stop")),
        *encode_attribute(D, "h323-credit-time", 3600),
        cisco_avpair("call-id", "a@b"),
        cisco_avpair("call-id", "second"),
        vendor_attribute(9, 1, b"ip:addr-pool*pool1"),
    ]
    packet = decode_packet(_acct(attrs))
    assert str(packet.get("Event-Timestamp")) == "2024-12-04 15:31:22+00:00"
    assert str(packet.get("Framed-IPv6-Prefix")) == "2001:db8::/32"
    assert str(packet.get("NAS-IPv6-Address")) == "2001:db8::1"
    assert packet.get_int("Acct-Status-Type") == 2
    assert packet.get_str("h323-credit-time") == "h323-credit-time=3600"
    assert packet.get_all("Cisco-AVPair") == ["call-id=a@b", "call-id=second", "ip:addr-pool*pool1"]
    assert packet.avpairs() == {"call-id": "a@b", "ip:addr-pool": "pool1"}
    assert packet.has("h323-credit-time") and not packet.has("h323-conf-id")
    assert packet.get("User-Name") is None


def test_vendor_specific_with_several_sub_attributes() -> None:
    value = (9).to_bytes(4, "big") + b"\x18\x05abc" + b"\x1b\x06VOIP"
    packet = decode_packet(_acct([(26, value), (26, (9).to_bytes(4, "big") + b"\x18\x09")]))
    assert packet.vendor_attributes == ((9, 24, b"abc"), (9, 27, b"VOIP"))
    assert packet.nonstandard_vsa_count == 1
    assert packet.attributes[1] == (26, (9).to_bytes(4, "big") + b"\x18\x09")


def test_packet_is_immutable() -> None:
    packet = decode_packet(RFC_7_1_REQUEST)
    with pytest.raises(AttributeError):
        packet.identifier = 5  # type: ignore[misc]
    assert isinstance(packet, Packet)


def test_retransmission_key() -> None:
    packet = decode_packet(RFC_7_1_REQUEST)
    key = retransmission_key(("192.0.2.1", 1645), packet)
    assert key == ("192.0.2.1", 1645, Code.ACCESS_REQUEST, 0, packet.authenticator)
    assert retransmission_key(("2001:db8::1", 1645, 0, 0), packet)[0] == "2001:db8::1"
    other = decode_packet(_access())
    assert retransmission_key(("192.0.2.1", 1645), other) != key


def test_h323_builders() -> None:
    assert h323_attribute("h323-credit-time", 60) == encode_attribute(D, "h323-credit-time", 60)[0]
    assert h323_attribute("h323-return-code", "h323-return-code=0") == h323_attribute(
        "h323-return-code", 0
    )
    assert encode_attribute(D, "h323-currency", "h323-currency=EUR") == (
        vendor_attribute(9, 110, b"h323-currency=EUR"),
    )
    with pytest.raises(ValueError, match="not a Cisco VSA"):
        h323_attribute("User-Name", "x")


def test_package_exports() -> None:
    from protocols import radius

    for name in radius.__all__:
        assert getattr(radius, name) is not None


def test_decode_accepts_buffers() -> None:
    for buffer in (bytearray(RFC_7_1_REQUEST), memoryview(RFC_7_1_REQUEST)):
        packet = decode_packet(buffer)
        assert type(packet.authenticator) is bytes
        assert packet == decode_packet(RFC_7_1_REQUEST)
