"""Cross-checks with pyrad, an independent encoder/decoder, in both directions."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from pyrad.dictionary import Dictionary as PyradDictionary
from pyrad.packet import AcctPacket, AuthPacket, CoAPacket

from protocols.radius.attribute import cisco_avpair, encode_attribute, integer_attribute
from protocols.radius.dictionary import default_dictionary
from protocols.radius.packet import (
    Code,
    decode_packet,
    encode_reply,
    encode_request,
    verify_reply,
    verify_request,
)
from protocols.radius.view import decode_access, decode_accounting

SECRET = b"cr0ss-check"
D = default_dictionary()

# pyrad's own dictionary, written for this test (not ocsd's files)
PYRAD_DICTIONARY = """
ATTRIBUTE User-Name 1 string
ATTRIBUTE User-Password 2 string encrypt=1
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE NAS-Port 5 integer
ATTRIBUTE Reply-Message 18 string
ATTRIBUTE Class 25 octets
ATTRIBUTE Session-Timeout 27 integer
ATTRIBUTE Called-Station-Id 30 string
ATTRIBUTE Calling-Station-Id 31 string
ATTRIBUTE Proxy-State 33 octets
ATTRIBUTE Acct-Status-Type 40 integer
ATTRIBUTE Acct-Delay-Time 41 integer
ATTRIBUTE Acct-Input-Octets 42 integer
ATTRIBUTE Acct-Session-Id 44 string
ATTRIBUTE Acct-Session-Time 46 integer
ATTRIBUTE Acct-Terminate-Cause 49 integer
ATTRIBUTE Event-Timestamp 55 date
ATTRIBUTE Message-Authenticator 80 octets
ATTRIBUTE Error-Cause 101 integer
VALUE Acct-Status-Type Start 1
VALUE Acct-Status-Type Stop 2
VENDOR Cisco 9
BEGIN-VENDOR Cisco
ATTRIBUTE Cisco-AVPair 1 string
ATTRIBUTE h323-conf-id 24 string
ATTRIBUTE h323-setup-time 25 string
ATTRIBUTE h323-credit-time 102 string
ATTRIBUTE h323-return-code 103 string
END-VENDOR Cisco
"""


@pytest.fixture(scope="module")
def pyrad_dict() -> PyradDictionary:
    return PyradDictionary(io.StringIO(PYRAD_DICTIONARY))


# -- pyrad encodes, ocsd decodes --------------------------------------------------------


def test_pyrad_access_request(pyrad_dict: PyradDictionary) -> None:
    request = AuthPacket(id=17, secret=SECRET, dict=pyrad_dict)
    request.add_message_authenticator()
    request["User-Name"] = "alice"
    request["User-Password"] = request.PwCrypt("s3cret-pin")
    request["NAS-IP-Address"] = "192.0.2.10"
    request["Calling-Station-Id"] = "4412345678"
    request["h323-conf-id"] = "h323-conf-id=AB CD"
    request["Cisco-AVPair"] = ["xpgk-src-number=1", "call-id=x@y"]
    raw = request.RequestPacket()

    packet = decode_packet(raw)
    verify_request(packet, SECRET, require_message_authenticator=True)
    assert packet.attributes[0][0] == 80  # pyrad puts it first too
    view = decode_access(packet, SECRET)
    assert view.user_name == "alice"
    assert view.user_password == b"s3cret-pin"
    assert str(view.nas_ip_address) == "192.0.2.10"
    assert view.calling_station_id == "4412345678"
    assert view.h323_conf_id == "AB CD"
    assert view.cisco_avpairs == {"xpgk-src-number": "1", "call-id": "x@y"}


def test_pyrad_accounting_request(pyrad_dict: PyradDictionary) -> None:
    request = AcctPacket(id=200, secret=SECRET, dict=pyrad_dict)
    request["Acct-Status-Type"] = "Stop"
    request["Acct-Session-Id"] = "sess-1"
    request["Acct-Session-Time"] = 61
    request["Acct-Input-Octets"] = 4096
    request["Event-Timestamp"] = 1733326282
    request["h323-setup-time"] = "h323-setup-time=15:31:22.123 UTC Wed Dec 4 2024"
    raw = request.RequestPacket()

    packet = decode_packet(raw)
    verify_request(packet, SECRET)
    view = decode_accounting(packet)
    assert view.status_type == 2
    assert view.session_id == "sess-1"
    assert view.session_time_s == 61
    assert view.input_octets == 4096
    assert view.event_timestamp == datetime(2024, 12, 4, 15, 31, 22, tzinfo=UTC)
    assert view.h323_setup_time is not None
    assert view.h323_setup_time.time == datetime(2024, 12, 4, 15, 31, 22, 123000, UTC)


@pytest.mark.parametrize("code", [pytest.param(40, id="disconnect"), pytest.param(43, id="coa")])
def test_pyrad_dynamic_authorization_request(pyrad_dict: PyradDictionary, code: int) -> None:
    request = CoAPacket(code=code, id=5, secret=SECRET, dict=pyrad_dict)
    request.add_message_authenticator()
    request["Acct-Session-Id"] = "sess-1"
    request["User-Name"] = "alice"
    packet = decode_packet(request.RequestPacket())
    verify_request(packet, SECRET, require_message_authenticator=True)
    assert packet.get_str("Acct-Session-Id") == "sess-1"


@pytest.mark.parametrize(
    ("factory", "request_code", "reply_code"),
    [
        pytest.param(AuthPacket, Code.ACCESS_REQUEST, Code.ACCESS_ACCEPT, id="access-accept"),
        pytest.param(AuthPacket, Code.ACCESS_REQUEST, Code.ACCESS_REJECT, id="access-reject"),
        pytest.param(AcctPacket, Code.ACCOUNTING_REQUEST, Code.ACCOUNTING_RESPONSE, id="acct"),
        pytest.param(CoAPacket, Code.DISCONNECT_REQUEST, Code.DISCONNECT_NAK, id="disc-nak"),
        pytest.param(CoAPacket, Code.COA_REQUEST, Code.COA_ACK, id="coa-ack"),
    ],
)
def test_pyrad_replies_verify(
    pyrad_dict: PyradDictionary, factory: type, request_code: Code, reply_code: Code
) -> None:
    """ocsd sends the request, pyrad answers (with Message-Authenticator), ocsd verifies."""
    ours = encode_request(request_code, 77, [(1, b"alice"), (33, b"proxy")], SECRET)
    theirs = factory(packet=ours, secret=SECRET, dict=pyrad_dict)
    reply = theirs.CreateReply()
    reply.code = reply_code
    reply.message_authenticator = True
    reply["Session-Timeout"] = 30
    reply_raw = reply.ReplyPacket()
    request = decode_packet(ours)
    answer = decode_packet(reply_raw)
    verify_reply(answer, request, SECRET, require_message_authenticator=True)
    assert answer.get_int("Session-Timeout") == 30
    assert answer.values("Proxy-State") == [b"proxy"]


# -- ocsd encodes, pyrad decodes ----------------------------------------------------------


def test_our_access_request_in_pyrad(pyrad_dict: PyradDictionary) -> None:
    raw = encode_request(
        Code.ACCESS_REQUEST,
        9,
        [(1, b"bob"), *encode_attribute(D, "NAS-Port", 7), cisco_avpair("k", "v")],
        SECRET,
        user_password="0123456789abcdefXYZ",
    )
    theirs = AuthPacket(packet=raw, secret=SECRET, dict=pyrad_dict)
    assert theirs.verify_message_authenticator()
    assert theirs["User-Name"] == ["bob"]
    assert theirs["NAS-Port"] == [7]
    assert theirs["Cisco-AVPair"] == ["k=v"]
    assert theirs.PwDecrypt(theirs["User-Password"][0]) == "0123456789abcdefXYZ"


@pytest.mark.parametrize(
    ("code", "factory", "verify"),
    [
        pytest.param(Code.ACCOUNTING_REQUEST, AcctPacket, "VerifyAcctRequest", id="acct"),
        pytest.param(Code.DISCONNECT_REQUEST, CoAPacket, "VerifyCoARequest", id="disconnect"),
        pytest.param(Code.COA_REQUEST, CoAPacket, "VerifyCoARequest", id="coa"),
    ],
)
def test_our_signed_requests_in_pyrad(
    pyrad_dict: PyradDictionary, code: Code, factory: type, verify: str
) -> None:
    attributes = [
        *encode_attribute(D, "Acct-Session-Id", "s-9"),
        *encode_attribute(D, "Event-Timestamp", 1733326282),
        *encode_attribute(D, "h323-credit-time", 30),
    ]
    raw = encode_request(code, 3, attributes, SECRET, message_authenticator=True)
    theirs = factory(packet=raw, secret=SECRET, dict=pyrad_dict)
    assert getattr(theirs, verify)()
    assert theirs.verify_message_authenticator()
    assert theirs["Acct-Session-Id"] == ["s-9"]
    assert theirs["Event-Timestamp"] == [1733326282]
    assert theirs["h323-credit-time"] == ["h323-credit-time=30"]
    bad = factory(packet=raw, secret=b"wrong", dict=pyrad_dict)
    assert not getattr(bad, verify)()


@pytest.mark.parametrize(
    ("factory", "request_code", "reply_code"),
    [
        pytest.param(AuthPacket, 1, Code.ACCESS_ACCEPT, id="access-accept"),
        pytest.param(AuthPacket, 1, Code.ACCESS_CHALLENGE, id="access-challenge"),
        pytest.param(AcctPacket, 4, Code.ACCOUNTING_RESPONSE, id="acct"),
        pytest.param(AcctPacket, 12, Code.ACCOUNTING_RESPONSE, id="status-server-acct"),
        pytest.param(CoAPacket, 40, Code.DISCONNECT_ACK, id="disc-ack"),
        pytest.param(CoAPacket, 43, Code.COA_NAK, id="coa-nak"),
    ],
)
def test_our_replies_in_pyrad(
    pyrad_dict: PyradDictionary, factory: type, request_code: int, reply_code: Code
) -> None:
    theirs = factory(code=request_code, id=101, secret=SECRET, dict=pyrad_dict)
    if request_code in (1, 12, 40, 43):
        theirs.add_message_authenticator()
    theirs["User-Name"] = "carol"
    theirs["Proxy-State"] = b"ps-1"
    request = decode_packet(theirs.RequestPacket())
    verify_request(request, SECRET)
    attributes = [
        integer_attribute(27, 600),
        *encode_attribute(D, "h323-credit-time", 600),
        *encode_attribute(D, "h323-return-code", 0),
    ]
    raw = encode_reply(request, reply_code, attributes, SECRET)
    reply = theirs.CreateReply(packet=raw)
    assert theirs.VerifyReply(reply, raw, enforce_ma=True)
    assert reply["Session-Timeout"] == [600]
    assert reply["h323-credit-time"] == ["h323-credit-time=600"]
    assert reply["h323-return-code"] == ["h323-return-code=0"]
    assert reply["Proxy-State"] == [b"ps-1"]
