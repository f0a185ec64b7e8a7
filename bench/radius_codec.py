"""Micro-benchmark of the RADIUS codec cycles on the per-call path.

Run from the repository root: ``python bench/radius_codec.py [--seconds 1.0]``. Prints µs/op and
ops/s (one core, this process) for:

- accounting: decode + verify an Accounting-Request Stop (~20 attributes, Cisco VSAs), build
  the accounting view, encode the Accounting-Response (with Message-Authenticator); and the
  same without the view (the codec cycle proper);
- access: decode + verify an Access-Request with Message-Authenticator and PAP, build the
  access view, encode an Access-Accept with Session-Timeout, h323-credit-time,
  h323-return-code and Message-Authenticator;
- and the steps of each on their own.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocols.radius.attribute import (
    cisco_avpair,
    encode_attribute,
    integer_attribute,
)
from protocols.radius.dictionary import default_dictionary
from protocols.radius.packet import (
    Code,
    decode_packet,
    encode_reply,
    encode_request,
    verify_request,
)
from protocols.radius.view import decode_access, decode_accounting

SECRET = b"bench-secret-0123"
D = default_dictionary()


def _attrs(*pairs: tuple[str, object]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for name, value in pairs:
        out.extend(encode_attribute(D, name, value))  # type: ignore[arg-type]
    return out


STOP = encode_request(
    Code.ACCOUNTING_REQUEST,
    42,
    [
        *_attrs(
            ("User-Name", "4412345678"),
            ("NAS-IP-Address", "10.0.0.1"),
            ("Acct-Status-Type", 2),
            ("Acct-Session-Id", "00A1B2C3"),
            ("Acct-Session-Time", 125),
            ("Acct-Delay-Time", 0),
            ("Acct-Input-Octets", 123456),
            ("Acct-Output-Octets", 654321),
            ("Acct-Terminate-Cause", 1),
            ("Event-Timestamp", 1733326345),
            ("Calling-Station-Id", "4412345678"),
            ("Called-Station-Id", "33123456789"),
            ("h323-conf-id", "12345678 9ABCDEF0 12345678 9ABCDEF0"),
            ("h323-setup-time", "15:31:22.123 UTC Wed Dec 4 2024"),
            ("h323-connect-time", "15:31:25.500 UTC Wed Dec 4 2024"),
            ("h323-disconnect-time", "15:33:30.000 UTC Wed Dec 4 2024"),
            ("h323-disconnect-cause", "10"),
            ("h323-remote-address", "192.0.2.7"),
        ),
        cisco_avpair("call-id", "abc@192.0.2.7"),
    ],
    SECRET,
)
ACCESS = encode_request(
    Code.ACCESS_REQUEST,
    7,
    [
        *_attrs(
            ("User-Name", "4412345678"),
            ("NAS-IP-Address", "10.0.0.1"),
            ("Calling-Station-Id", "4412345678"),
            ("Called-Station-Id", "33123456789"),
            ("h323-conf-id", "12345678 9ABCDEF0 12345678 9ABCDEF0"),
            ("h323-call-origin", "answer"),
        ),
        cisco_avpair("call-id", "abc@192.0.2.7"),
    ],
    SECRET,
    user_password="4711",
)
ACCEPT_ATTRIBUTES = [
    integer_attribute(27, 3600),
    *_attrs(("h323-credit-time", 3600), ("h323-return-code", 0)),
]


def accounting_cycle() -> bytes:
    packet = decode_packet(STOP)
    verify_request(packet, SECRET)
    decode_accounting(packet)
    return encode_reply(packet, Code.ACCOUNTING_RESPONSE, (), SECRET)


def accounting_codec_cycle() -> bytes:
    packet = decode_packet(STOP)
    verify_request(packet, SECRET)
    return encode_reply(packet, Code.ACCOUNTING_RESPONSE, (), SECRET)


def access_cycle() -> bytes:
    packet = decode_packet(ACCESS)
    verify_request(packet, SECRET, require_message_authenticator=True)
    decode_access(packet, SECRET)
    return encode_reply(packet, Code.ACCESS_ACCEPT, ACCEPT_ATTRIBUTES, SECRET)


STOP_PACKET = decode_packet(STOP)
ACCESS_PACKET = decode_packet(ACCESS)

CASES: list[tuple[str, Callable[[], object]]] = [
    ("accounting cycle (decode+verify+view+response)", accounting_cycle),
    ("accounting codec cycle (decode+verify+response)", accounting_codec_cycle),
    ("  decode Accounting-Request", lambda: decode_packet(STOP)),
    ("  verify Request Authenticator", lambda: verify_request(STOP_PACKET, SECRET)),
    ("  accounting view", lambda: decode_accounting(STOP_PACKET)),
    (
        "  encode Accounting-Response (+MA)",
        lambda: encode_reply(STOP_PACKET, Code.ACCOUNTING_RESPONSE, (), SECRET),
    ),
    ("access cycle (decode+verify+view+accept)", access_cycle),
    ("  decode Access-Request", lambda: decode_packet(ACCESS)),
    ("  verify Message-Authenticator", lambda: verify_request(ACCESS_PACKET, SECRET)),
    ("  access view (with PAP)", lambda: decode_access(ACCESS_PACKET, SECRET)),
    (
        "  encode Access-Accept (+MA)",
        lambda: encode_reply(ACCESS_PACKET, Code.ACCESS_ACCEPT, ACCEPT_ATTRIBUTES, SECRET),
    ),
]


def measure(func: Callable[[], object], seconds: float) -> float:
    """Best of 5 runs of ~seconds/5 each, in seconds per call."""
    n = 1
    while True:  # calibrate
        start = time.perf_counter()
        for _ in range(n):
            func()
        elapsed = time.perf_counter() - start
        if elapsed > 0.02:
            break
        n *= 2
    per_run = max(int(n * (seconds / 5) / elapsed), 1)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(per_run):
            func()
        best = min(best, (time.perf_counter() - start) / per_run)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per case")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; Stop {len(STOP)} octets, Access {len(ACCESS)}")
    print(f"{'case':50s} {'µs/op':>8s} {'ops/s':>10s}")
    for name, func in CASES:
        per_call = measure(func, args.seconds)
        print(f"{name:50s} {per_call * 1e6:8.2f} {1 / per_call:10.0f}")


if __name__ == "__main__":
    main()
