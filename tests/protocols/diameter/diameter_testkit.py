"""Shared helpers of the Diameter tests: identities, peer configurations, an in-memory peer
pair with an injected clock, and a realistic CCR built with our own API."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import Any

from protocols.diameter.avp import Avp, grouped, new_avp
from protocols.diameter.constants import (
    ApplicationId,
    AvpCode,
    CommandCode,
    TgppAvpCode,
    VendorId,
)
from protocols.diameter.message import LocalIdentity, Message
from protocols.diameter.peer import (
    AllowedPeer,
    Event,
    Peer,
    PeerConfig,
    PeerRole,
)

TGPP = VendorId.TGPP
OCS_ADDRESS = "192.0.2.10"
SWITCH_ADDRESS = "192.0.2.20"
OCS = LocalIdentity(
    origin_host="ocs.example.net",
    origin_realm="example.net",
    host_ip_addresses=(IPv4Address(OCS_ADDRESS),),
    vendor_id=0,
    product_name="ocsd",
    firmware_revision=100,
    origin_state_id=1_700_000_000,
)
SWITCH = LocalIdentity(
    origin_host="scscf.ims.example.net",
    origin_realm="ims.example.net",
    host_ip_addresses=(IPv4Address(SWITCH_ADDRESS),),
    vendor_id=10415,
    product_name="softswitch",
    origin_state_id=42,
)


def server_config(**changes: Any) -> PeerConfig:
    config = PeerConfig(
        identity=OCS,
        allowed_peers=(AllowedPeer.of("scscf.ims.example.net", "192.0.2.16/28"),),
    )
    return replace(config, **changes)


def client_config(**changes: Any) -> PeerConfig:
    config = PeerConfig(
        identity=SWITCH,
        allowed_peers=(AllowedPeer.of("ocs.example.net", OCS_ADDRESS),),
    )
    return replace(config, **changes)


class PeerPair:
    """A softswitch (initiator) and ocsd (responder) wired back to back in memory."""

    def __init__(
        self,
        server: PeerConfig | None = None,
        client: PeerConfig | None = None,
        *,
        client_address: str = SWITCH_ADDRESS,
        server_address: str = OCS_ADDRESS,
        now: float = 1_000.0,
    ) -> None:
        self.now = now
        self.server = Peer(
            server or server_config(), PeerRole.RESPONDER, client_address, rng=random.Random(1)
        )
        self.client = Peer(
            client or client_config(), PeerRole.INITIATOR, server_address, rng=random.Random(2)
        )
        self.server_events: list[Event] = []
        self.client_events: list[Event] = []
        self.drop_to_client = False
        self.drop_to_server = False

    def start(self) -> PeerPair:
        self.server.start(self.now)
        self.client.start(self.now)
        self.pump()
        return self

    def pump(self) -> None:
        """Deliver bytes both ways until nothing moves; collect events."""
        while True:
            to_server = self.client.data_to_send()
            to_client = self.server.data_to_send()
            if not to_server and not to_client:
                break
            if to_server and not self.drop_to_server:
                self.server.receive_data(to_server, self.now)
            if to_client and not self.drop_to_client:
                self.client.receive_data(to_client, self.now)
        self.server_events.extend(drain(self.server))
        self.client_events.extend(drain(self.client))

    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing every timer that falls due on the way."""
        target = self.now + seconds
        while True:
            timers = [
                timer
                for timer in (self.server.get_timer(), self.client.get_timer())
                if timer is not None and timer <= target
            ]
            if not timers:
                break
            self.now = max(self.now, min(timers))
            for peer in (self.server, self.client):
                timer = peer.get_timer()
                if timer is not None and timer <= self.now:
                    peer.handle_timer(self.now)
            self.pump()
        self.now = target

    def take_server_events(self) -> list[Event]:
        events, self.server_events = self.server_events, []
        return events

    def take_client_events(self) -> list[Event]:
        events, self.client_events = self.client_events, []
        return events


def drain(peer: Peer) -> Iterator[Event]:
    while (event := peer.next_event()) is not None:
        yield event


def ccr_avps(
    *,
    request_type: int = 2,
    request_number: int = 1,
    session_id: str = "scscf.ims.example.net;1700000000;42",
) -> list[Avp]:
    """The AVPs of a realistic IMS voice CCR-U: one MSCC, IMS-Information."""
    return [
        new_avp(AvpCode.SESSION_ID, session_id),
        new_avp(AvpCode.ORIGIN_HOST, "scscf.ims.example.net"),
        new_avp(AvpCode.ORIGIN_REALM, "ims.example.net"),
        new_avp(AvpCode.DESTINATION_REALM, "example.net"),
        new_avp(AvpCode.AUTH_APPLICATION_ID, 4),
        new_avp(AvpCode.SERVICE_CONTEXT_ID, "32260@3gpp.org"),
        new_avp(AvpCode.CC_REQUEST_TYPE, request_type),
        new_avp(AvpCode.CC_REQUEST_NUMBER, request_number),
        new_avp(AvpCode.EVENT_TIMESTAMP, datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
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
            [
                grouped(
                    TgppAvpCode.IMS_INFORMATION,
                    [
                        grouped(
                            TgppAvpCode.EVENT_TYPE,
                            [new_avp(TgppAvpCode.SIP_METHOD, "INVITE", TGPP)],
                            TGPP,
                        ),
                        new_avp(TgppAvpCode.ROLE_OF_NODE, 0, TGPP),
                        new_avp(TgppAvpCode.NODE_FUNCTIONALITY, 0, TGPP),
                        new_avp(
                            TgppAvpCode.CALLING_PARTY_ADDRESS,
                            "sip:+441234567890@ims.example.net",
                            TGPP,
                        ),
                        new_avp(TgppAvpCode.CALLED_PARTY_ADDRESS, "tel:+33123456789", TGPP),
                        new_avp(TgppAvpCode.IMS_CHARGING_IDENTIFIER, "icid-0001", TGPP),
                    ],
                    TGPP,
                )
            ],
            TGPP,
        ),
    ]


def ccr_message(hop_by_hop: int = 0, end_to_end: int = 0, **changes: Any) -> Message:
    return Message(
        CommandCode.CREDIT_CONTROL,
        0xC0,
        ApplicationId.CREDIT_CONTROL,
        hop_by_hop,
        end_to_end,
        tuple(ccr_avps(**changes)),
    )
