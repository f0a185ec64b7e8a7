"""Micro-benchmark of the Diameter hot path: one CCR in, one CCA out.

Run from the repository root: ``python bench/diameter_codec.py [--iterations N]``.

The message is a realistic IMS voice CCR-U: Subscription-Id, one Multiple-Services-Credit-Control
(Requested-Service-Unit, Used-Service-Unit with Reporting-Reason, Rating-Group) and
Service-Information/IMS-Information (Event-Type, Role-Of-Node, Node-Functionality, calling and
called party, IMS-Charging-Identifier).  Each figure is the best of
several rounds of CPU time (``time.process_time``), so other load on the machine inflates it
less than wall-clock time would.  If python-diameter is installed, its own decode + CCA
encode of the same message is measured too, as the reference the design brief quotes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols.diameter.avp import Avp, grouped, new_avp
from protocols.diameter.constants import (
    ApplicationId,
    AvpCode,
    CommandCode,
    TgppAvpCode,
    VendorId,
)
from protocols.diameter.gy import (
    CreditControlAnswer,
    GrantedUnits,
    MsccAnswer,
    decode_ccr,
    encode_cca,
)
from protocols.diameter.message import (
    LocalIdentity,
    Message,
    decode_message,
    encode_message,
)
from protocols.diameter.peer import AllowedPeer, Peer, PeerConfig, PeerRole, RequestReceived

TGPP = VendorId.TGPP
OCS = LocalIdentity(
    origin_host="ocs.example.net",
    origin_realm="example.net",
    host_ip_addresses=(IPv4Address("192.0.2.10"),),
)
ANSWER = CreditControlAnswer(
    result_code=2001,
    mscc=(
        MsccAnswer(
            rating_group=100,
            result_code=2001,
            granted=GrantedUnits(cc_time=60),
            validity_time=120,
        ),
    ),
)


def ccr_update() -> bytes:
    """The octets of the benchmark's CCR-U."""
    ims: list[Avp] = [
        grouped(TgppAvpCode.EVENT_TYPE, [new_avp(TgppAvpCode.SIP_METHOD, "INVITE", TGPP)], TGPP),
        new_avp(TgppAvpCode.ROLE_OF_NODE, 0, TGPP),
        new_avp(TgppAvpCode.NODE_FUNCTIONALITY, 0, TGPP),
        new_avp(TgppAvpCode.CALLING_PARTY_ADDRESS, "sip:+441234567890@ims.example.net", TGPP),
        new_avp(TgppAvpCode.CALLED_PARTY_ADDRESS, "tel:+33123456789", TGPP),
        new_avp(TgppAvpCode.IMS_CHARGING_IDENTIFIER, "icid-0001", TGPP),
    ]
    avps = [
        new_avp(AvpCode.SESSION_ID, "scscf.ims.example.net;1700000000;42"),
        new_avp(AvpCode.ORIGIN_HOST, "scscf.ims.example.net"),
        new_avp(AvpCode.ORIGIN_REALM, "ims.example.net"),
        new_avp(AvpCode.DESTINATION_REALM, "example.net"),
        new_avp(AvpCode.AUTH_APPLICATION_ID, ApplicationId.CREDIT_CONTROL),
        new_avp(AvpCode.SERVICE_CONTEXT_ID, "32260@3gpp.org"),
        new_avp(AvpCode.CC_REQUEST_TYPE, 2),
        new_avp(AvpCode.CC_REQUEST_NUMBER, 1),
        new_avp(AvpCode.EVENT_TIMESTAMP, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        grouped(
            AvpCode.SUBSCRIPTION_ID,
            [
                new_avp(AvpCode.SUBSCRIPTION_ID_TYPE, 0),
                new_avp(AvpCode.SUBSCRIPTION_ID_DATA, "441234567890"),
            ],
        ),
        new_avp(AvpCode.MULTIPLE_SERVICES_INDICATOR, 1),
        grouped(
            AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL,
            [
                grouped(AvpCode.REQUESTED_SERVICE_UNIT, [new_avp(AvpCode.CC_TIME, 60)]),
                grouped(
                    AvpCode.USED_SERVICE_UNIT,
                    [
                        new_avp(AvpCode.CC_TIME, 57),
                        new_avp(TgppAvpCode.REPORTING_REASON, 3, TGPP),
                    ],
                ),
                new_avp(AvpCode.RATING_GROUP, 100),
            ],
        ),
        grouped(
            TgppAvpCode.SERVICE_INFORMATION,
            [grouped(TgppAvpCode.IMS_INFORMATION, ims, TGPP)],
            TGPP,
        ),
    ]
    message = Message(
        CommandCode.CREDIT_CONTROL, 0xC0, ApplicationId.CREDIT_CONTROL, 7, 9, tuple(avps)
    )
    return encode_message(message)


def open_responder() -> Peer:
    """An ocsd-side peer, open after a capabilities exchange with a softswitch."""
    switch = LocalIdentity(
        origin_host="scscf.ims.example.net",
        origin_realm="ims.example.net",
        host_ip_addresses=(IPv4Address("192.0.2.20"),),
    )
    server = Peer(
        PeerConfig(
            identity=OCS,
            allowed_peers=(AllowedPeer.of("scscf.ims.example.net", "192.0.2.20"),),
            decode_lazily=True,
        ),
        PeerRole.RESPONDER,
        "192.0.2.20",
    )
    client = Peer(
        PeerConfig(
            identity=switch, allowed_peers=(AllowedPeer.of("ocs.example.net", "192.0.2.10"),)
        ),
        PeerRole.INITIATOR,
        "192.0.2.10",
    )
    server.start(0.0)
    client.start(0.0)
    server.receive_data(client.data_to_send(), 0.0)
    server.data_to_send()
    assert server.is_open
    while server.next_event() is not None:
        pass
    return server


def measure(operation: Callable[[], object], iterations: int, rounds: int = 5) -> float:
    """Best CPU time per call over *rounds* runs of *iterations* calls, in microseconds."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(iterations):
            operation()
        best = min(best, (time.process_time() - start) / iterations)
    return best * 1e6


def python_diameter_cycle(raw: bytes) -> Callable[[], object] | None:
    """python-diameter decoding the CCR and encoding the CCA, if it is installed."""
    try:
        from diameter.message import Message as PMessage
        from diameter.message.avp.grouped import GrantedServiceUnit
    except ImportError:
        return None

    def cycle() -> bytes:
        ccr = PMessage.from_bytes(raw)
        mscc = ccr.multiple_services_credit_control[0]
        _ = (ccr.cc_request_type, mscc.used_service_unit[0].cc_time)
        _ = ccr.service_information.ims_information.calling_party_address
        cca = ccr.to_answer()
        cca.session_id = ccr.session_id
        cca.result_code = 2001
        cca.origin_host = b"ocs.example.net"
        cca.origin_realm = b"example.net"
        cca.cc_request_type = ccr.cc_request_type
        cca.cc_request_number = ccr.cc_request_number
        cca.add_multiple_services_credit_control(
            granted_service_unit=GrantedServiceUnit(cc_time=60),
            rating_group=mscc.rating_group,
            validity_time=120,
            result_code=2001,
        )
        return bytes(cca.as_bytes())

    return cycle


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    iterations = parser.parse_args().iterations

    raw = ccr_update()
    request = decode_ccr(decode_message(raw, lazy=True))

    def decode_and_view() -> object:
        return decode_ccr(decode_message(raw, lazy=True))

    def build_and_encode() -> bytes:
        return encode_message(encode_cca(request, ANSWER, OCS))

    def cycle() -> object:
        view = decode_ccr(decode_message(raw, lazy=True))
        return encode_message(encode_cca(view, ANSWER, OCS))

    server = open_responder()

    def through_the_peer() -> object:
        server.receive_data(raw, 1.0)
        event = server.next_event()
        assert isinstance(event, RequestReceived)
        view = decode_ccr(event.message)
        server.send_answer(encode_cca(view, ANSWER, OCS), 1.0)
        return server.data_to_send()

    rows: list[tuple[str, float]] = [
        (
            "generic decode_message (all AVPs as objects)",
            measure(lambda: decode_message(raw), iterations),
        ),
        ("CCR decode + view (decode_ccr)", measure(decode_and_view, iterations)),
        ("CCA build + encode (encode_cca)", measure(build_and_encode, iterations)),
        ("full cycle: CCR in, CCA out", measure(cycle, iterations)),
        ("full cycle through Peer (framing, events)", measure(through_the_peer, iterations)),
    ]
    reference = python_diameter_cycle(raw)
    if reference is not None:
        rows.append(
            (
                "python-diameter full cycle (reference)",
                measure(reference, max(iterations // 20, 50)),
            )
        )
    print(f"CCR-U: {len(raw)} octets; CCA: {len(build_and_encode())} octets")
    print(f"{'operation':48} {'us/op':>9} {'ops/s':>10}")
    for name, micros in rows:
        print(f"{name:48} {micros:9.1f} {1e6 / micros:10,.0f}")


if __name__ == "__main__":
    main()
