"""Accounting and access views, Cisco h323 time strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from radius_fixtures import (
    RADCLIENT_ACCESS_REQUEST,
    RADCLIENT_ACCOUNTING_REQUEST,
    RADCLIENT_SECRET,
)

from protocols.radius.attribute import (
    cisco_avpair,
    encode_attribute,
    integer_attribute,
    string_attribute,
    vendor_attribute,
)
from protocols.radius.dictionary import default_dictionary, load_dictionary
from protocols.radius.h323 import H323Time, format_h323_time, parse_h323_time, strip_vsa_name
from protocols.radius.packet import Code, decode_packet, encode_request
from protocols.radius.view import AcctStatusType, decode_access, decode_accounting

SECRET = b"s3cr3t"
D = default_dictionary()


def _enc(name: str, value: object) -> tuple[int, bytes]:
    (attribute,) = encode_attribute(D, name, value)  # type: ignore[arg-type]
    return attribute


def stop_request() -> bytes:
    """A Cisco-style Stop with ~20 attributes, Cisco VSAs among them."""
    attributes = [
        _enc("User-Name", "4412345678"),
        _enc("NAS-IP-Address", "10.0.0.1"),
        _enc("Acct-Status-Type", 2),
        _enc("Acct-Session-Id", "0000001F"),
        _enc("Acct-Session-Time", 125),
        _enc("Acct-Delay-Time", 0),
        _enc("Acct-Input-Octets", 7),
        _enc("Acct-Input-Gigawords", 1),
        _enc("Acct-Output-Octets", 20000),
        _enc("Acct-Terminate-Cause", 1),
        _enc("Event-Timestamp", 1733326345),
        _enc("Calling-Station-Id", "4412345678"),
        _enc("Called-Station-Id", "33123456789"),
        _enc("h323-conf-id", "12345678 9ABCDEF0 12345678 9ABCDEF0"),
        _enc("h323-setup-time", "15:31:22.123 UTC Wed Dec 4 2024"),
        _enc("h323-connect-time", "*15:31:25.500 UTC Wed Dec 4 2024"),
        _enc("h323-disconnect-time", "16:32:30.000 CET Wed Dec 4 2024"),
        _enc("h323-disconnect-cause", "10"),
        _enc("h323-remote-address", "192.0.2.7"),
        _enc("h323-call-origin", "answer"),
        cisco_avpair("call-id", "abc@192.0.2.7"),
        cisco_avpair("session-protocol", "sipv2"),
    ]
    return encode_request(Code.ACCOUNTING_REQUEST, 42, attributes, SECRET)


def test_accounting_view_of_a_stop() -> None:
    view = decode_accounting(decode_packet(stop_request()))
    assert view.status_type is AcctStatusType.STOP
    assert view.session_id == "0000001F"
    assert view.session_time_s == 125
    assert view.delay_time_s == 0
    assert view.input_octets == (1 << 32) + 7  # RFC 2869 Gigawords
    assert view.output_octets == 20000
    assert view.terminate_cause == 1
    assert view.event_timestamp == datetime(2024, 12, 4, 15, 32, 25, tzinfo=UTC)
    assert view.user_name == "4412345678"
    assert view.calling_station_id == "4412345678"
    assert view.called_station_id == "33123456789"
    assert view.nas_ip_address == IPv4Address("10.0.0.1")
    assert view.h323_conf_id == "12345678 9ABCDEF0 12345678 9ABCDEF0"
    assert view.h323_setup_time == H323Time(datetime(2024, 12, 4, 15, 31, 22, 123000, UTC))
    assert view.h323_connect_time == H323Time(
        datetime(2024, 12, 4, 15, 31, 25, 500000, UTC), synchronized=False
    )
    assert view.h323_disconnect_time is not None
    assert view.h323_disconnect_time.time == datetime(2024, 12, 4, 15, 32, 30, tzinfo=UTC)
    assert view.h323_disconnect_cause == "10"
    assert view.h323_disconnect_cause_q850 == 16
    assert view.h323_remote_address == "192.0.2.7"
    assert view.h323_call_origin == "answer"
    assert view.cisco_avpairs == {"call-id": "abc@192.0.2.7", "session-protocol": "sipv2"}
    assert view.raw_unknown == ()
    assert view.malformed == ()


def test_accounting_view_keeps_unknown_and_reports_malformed() -> None:
    attributes = [
        integer_attribute(40, 3),
        (46, b"\x00\x01\x02"),  # Acct-Session-Time of 3 octets
        _enc("h323-setup-time", "not a time"),
        (101, b"INVITE"),  # a SIP proxy's own numbering
        (224, b"\x01"),
        vendor_attribute(311, 1, b"ms"),
        (26, (9).to_bytes(4, "big") + b"\x18\x20x"),  # sub-attribute length runs past the end
        string_attribute(44, "first"),
        string_attribute(44, "second"),
    ]
    packet = decode_packet(encode_request(Code.ACCOUNTING_REQUEST, 1, attributes, SECRET))
    view = decode_accounting(packet)
    assert view.status_type is AcctStatusType.INTERIM_UPDATE
    assert view.session_time_s is None and view.h323_setup_time is None
    assert view.malformed == ("Acct-Session-Time", "h323-setup-time")
    assert view.session_id == "first"
    assert view.raw_unknown == (
        (0, 101, b"INVITE"),
        (0, 224, b"\x01"),
        (311, 1, b"ms"),
        (0, 26, (9).to_bytes(4, "big") + b"\x18\x20x"),
    )


@pytest.mark.parametrize(
    ("raw", "name", "field"),
    [
        pytest.param((40, b"\0\0\x02"), "Acct-Status-Type", "status_type", id="status-3"),
        pytest.param((40, b"\0\0\0\0\x02"), "Acct-Status-Type", "status_type", id="status-5"),
        pytest.param((55, b"\x67"), "Event-Timestamp", "event_timestamp", id="timestamp-1"),
        pytest.param((55, b""), "Event-Timestamp", "event_timestamp", id="timestamp-0"),
        pytest.param((41, b"\0" * 8), "Acct-Delay-Time", "delay_time_s", id="integer-8"),
    ],
)
def test_accounting_view_reports_a_wrong_length_integer_and_reads_a_later_good_one(
    raw: tuple[int, bytes], name: str, field: str
) -> None:
    good = (raw[0], b"\0\0\0\x02")
    attributes = [raw, string_attribute(44, "s"), good]
    view = decode_accounting(
        decode_packet(encode_request(Code.ACCOUNTING_REQUEST, 1, attributes, SECRET))
    )
    assert view.malformed == (name,)
    expected = {
        "status_type": AcctStatusType.STOP,
        "event_timestamp": datetime.fromtimestamp(2, UTC),
        "delay_time_s": 2,
    }[field]
    assert getattr(view, field) == expected
    assert view.session_id == "s"


def test_accounting_view_of_unknown_status_type() -> None:
    packet = decode_packet(
        encode_request(Code.ACCOUNTING_REQUEST, 1, [(40, b"\0\0\0\x63")], SECRET)
    )
    assert decode_accounting(packet).status_type == 99


def test_accounting_view_follows_an_operator_dictionary(tmp_path: Path) -> None:
    """A switch that sends the conference id as IETF attribute 250 instead of Cisco 24."""
    (tmp_path / "dictionary.switch").write_text("ATTRIBUTE h323-conf-id 250 string\n")
    dictionary = load_dictionary(tmp_path / "dictionary.switch")
    raw = encode_request(Code.ACCOUNTING_REQUEST, 1, [(250, b"conf-1"), (40, b"\0\0\0\1")], SECRET)
    view = decode_accounting(decode_packet(raw, dictionary))
    assert view.h323_conf_id == "conf-1"
    assert view.status_type is AcctStatusType.START


def test_accounting_view_of_freeradius_capture() -> None:
    view = decode_accounting(decode_packet(RADCLIENT_ACCOUNTING_REQUEST))
    assert view.status_type is AcctStatusType.STOP
    assert view.session_id == "abc"
    assert view.session_time_s == 60
    assert view.event_timestamp == datetime(2024, 12, 4, 15, 31, 22, tzinfo=UTC)
    assert view.h323_setup_time == H323Time(
        datetime(2024, 12, 4, 15, 31, 22, 123000, UTC), synchronized=False
    )


def test_access_view() -> None:
    packet = decode_packet(RADCLIENT_ACCESS_REQUEST)
    view = decode_access(packet, RADCLIENT_SECRET)
    assert view.user_name == "alice"
    assert view.user_password == b"secret"
    assert view.calling_station_id == "4412345"
    assert view.nas_ip_address == IPv4Address("10.1.2.3")
    assert view.cisco_avpairs == {"h323-ivr-out": "x"}
    assert view.h323_conf_id == "1 2 3 4"
    assert view.raw_unknown == ((0, 80, packet.values("Message-Authenticator")[0]),)
    assert decode_access(packet).user_password is None  # no secret, no password


def test_access_view_of_a_bad_password() -> None:
    raw = encode_request(Code.ACCESS_REQUEST, 1, [(2, b"short"), (1, b"bob")], SECRET)
    view = decode_access(decode_packet(raw), SECRET)
    assert view.user_password is None
    assert view.malformed == ("User-Password",)
    assert view.user_name == "bob"


@pytest.mark.parametrize(
    ("text", "expected", "synchronized"),
    [
        pytest.param("15:31:22.123 UTC Wed Dec 4 2024", datetime(2024, 12, 4, 15, 31, 22, 123000, UTC), True, id="utc"),  # noqa: E501
        pytest.param("*15:31:22.123 UTC Wed Dec 4 2024", datetime(2024, 12, 4, 15, 31, 22, 123000, UTC), False, id="not-authoritative"),  # noqa: E501
        pytest.param(".15:31:22.123 UTC Wed Dec 4 2024", datetime(2024, 12, 4, 15, 31, 22, 123000, UTC), False, id="ntp-lost"),  # noqa: E501
        pytest.param("09:33:37.657 UTC Mon Dec 08 2015", datetime(2015, 12, 8, 9, 33, 37, 657000, UTC), True, id="zero-padded-day"),  # noqa: E501
        pytest.param("*16:02:41.681 PST Fri Dec 31 1999", datetime(2000, 1, 1, 0, 2, 41, 681000, UTC), False, id="pst"),  # noqa: E501
        pytest.param("15:31:22 GMT Wed Dec  4 2024", datetime(2024, 12, 4, 15, 31, 22, tzinfo=UTC), True, id="no-ms-two-spaces"),  # noqa: E501
        pytest.param("15:31:22.1 UTC Dec 4 2024", datetime(2024, 12, 4, 15, 31, 22, 100000, UTC), True, id="no-weekday"),  # noqa: E501
    ],
)  # fmt: skip
def test_parse_h323_time(text: str, expected: datetime, synchronized: bool) -> None:
    assert parse_h323_time(text) == H323Time(expected, synchronized)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("15:31:22.123 XYZ Wed Dec 4 2024", id="unknown-zone"),
        pytest.param("15:31:22.123 UTC Wed Foo 4 2024", id="unknown-month"),
        pytest.param("25:31:22.123 UTC Wed Dec 4 2024", id="hour-25"),
        pytest.param("15:31:22.123 UTC Wed Feb 30 2024", id="feb-30"),
        pytest.param("15:31 UTC Wed Dec 4 2024", id="no-seconds"),
        pytest.param("15:31:22.12x UTC Wed Dec 4 2024", id="bad-fraction"),
        pytest.param("15:31:22.123 UTC Wed Dec 4 20x4", id="bad-year"),
    ],
)
def test_bad_h323_time(text: str) -> None:
    with pytest.raises(ValueError):
        parse_h323_time(text)


def test_h323_time_with_own_zone_table() -> None:
    zones = {"IST": timezone(timedelta(hours=5, minutes=30))}
    parsed = parse_h323_time("10:00:00.000 IST Wed Dec 4 2024", zones)
    assert parsed.time == datetime(2024, 12, 4, 4, 30, tzinfo=UTC)


def test_format_h323_time_round_trips() -> None:
    moment = datetime(2024, 12, 4, 15, 31, 22, 123456, UTC)
    assert format_h323_time(moment) == "15:31:22.123 UTC Wed Dec 4 2024"
    assert format_h323_time(moment, synchronized=False).startswith("*")
    assert parse_h323_time(format_h323_time(moment)).time == moment.replace(microsecond=123000)
    with pytest.raises(ValueError):
        format_h323_time(datetime(2024, 1, 1))


def test_strip_vsa_name() -> None:
    assert strip_vsa_name("h323-conf-id=abc", "h323-conf-id") == "abc"
    assert strip_vsa_name("abc", "h323-conf-id") == "abc"
    assert strip_vsa_name("h323-conf-idx", "h323-conf-id") == "h323-conf-idx"
