"""Interoperability with FreeRADIUS' radclient: what it sends decodes, what we answer it accepts.

radclient talks to a UDP socket on 127.0.0.1 opened by the test; the codec does the rest.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocols.radius.attribute import encode_attribute, integer_attribute
from protocols.radius.dictionary import default_dictionary
from protocols.radius.packet import Code, decode_packet, encode_reply, verify_request
from protocols.radius.view import decode_access, decode_accounting

RADCLIENT = shutil.which("radclient")
SECRET = b"interop-secret"
D = default_dictionary()

pytestmark = pytest.mark.skipif(RADCLIENT is None, reason="radclient (freeradius-utils) missing")


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def _exchange(
    sock: socket.socket,
    tmp_path: Path,
    *,
    kind: str,
    attributes: str,
    reply: Code,
    reply_attributes: list[tuple[int, bytes]],
) -> tuple[bytes, str, int]:
    assert RADCLIENT is not None
    port = sock.getsockname()[1]
    request_file = tmp_path / "request"
    request_file.write_text(attributes + "\n")
    argv = [RADCLIENT, "-x", "-r", "1", "-t", "3", "-f", str(request_file)]
    argv += [f"127.0.0.1:{port}", kind, SECRET.decode()]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    data, peer = sock.recvfrom(4096)
    packet = decode_packet(data)
    verify_request(packet, SECRET, require_message_authenticator=kind in ("auth", "status"))
    sock.sendto(encode_reply(packet, reply, reply_attributes, SECRET), peer)
    out, _ = proc.communicate(timeout=10)
    return data, out, proc.returncode


def test_access_request_and_accept(udp: socket.socket, tmp_path: Path) -> None:
    reply = [
        integer_attribute(27, 600),
        *encode_attribute(D, "h323-credit-time", 600),
        *encode_attribute(D, "h323-return-code", 0),
    ]
    data, out, rc = _exchange(
        udp,
        tmp_path,
        kind="auth",
        attributes='User-Name = "4412345", User-Password = "pin-1234", '
        'Message-Authenticator = 0x00, Calling-Station-Id = "4412345", '
        'Called-Station-Id = "33123", '
        'h323-conf-id = "h323-conf-id=A B C D", Cisco-AVPair = "call-id=c1@gw"',
        reply=Code.ACCESS_ACCEPT,
        reply_attributes=reply,
    )
    view = decode_access(decode_packet(data), SECRET)
    assert (view.user_name, view.user_password) == ("4412345", b"pin-1234")
    assert view.called_station_id == "33123"
    assert view.h323_conf_id == "A B C D"
    assert view.cisco_avpairs == {"call-id": "c1@gw"}
    assert rc == 0, out
    assert "Received Access-Accept" in out
    assert 'h323-credit-time = "h323-credit-time=600"' in out


def test_accounting_stop_and_response(udp: socket.socket, tmp_path: Path) -> None:
    data, out, rc = _exchange(
        udp,
        tmp_path,
        kind="acct",
        attributes='Acct-Status-Type = Stop, Acct-Session-Id = "s-1", Acct-Session-Time = 42, '
        'h323-disconnect-cause = "h323-disconnect-cause=10", Event-Timestamp = 1733326282',
        reply=Code.ACCOUNTING_RESPONSE,
        reply_attributes=[],
    )
    view = decode_accounting(decode_packet(data))
    assert (view.session_id, view.session_time_s, view.h323_disconnect_cause_q850) == (
        "s-1",
        42,
        16,
    )
    assert rc == 0, out
    assert "Received Accounting-Response" in out


@pytest.mark.parametrize(
    ("kind", "attributes", "reply", "seen"),
    [
        pytest.param("status", "Message-Authenticator = 0x00", Code.ACCESS_ACCEPT, "Access-Accept", id="status"),  # noqa: E501
        pytest.param("disconnect", 'Acct-Session-Id = "s-1"', Code.DISCONNECT_ACK, "Disconnect-ACK", id="disc"),  # noqa: E501
        pytest.param("coa", 'Acct-Session-Id = "s-1", Session-Timeout = 5', Code.COA_ACK, "CoA-ACK", id="coa"),  # noqa: E501
    ],
)  # fmt: skip
def test_other_exchanges(
    udp: socket.socket, tmp_path: Path, *, kind: str, attributes: str, reply: Code, seen: str
) -> None:
    _, out, rc = _exchange(
        udp, tmp_path, kind=kind, attributes=attributes, reply=reply, reply_attributes=[]
    )
    assert rc == 0, out
    assert f"Received {seen}" in out
