"""The peer state machine, driven in memory: a softswitch (initiator) and ocsd (responder)
exchange bytes, the clock is injected, nothing sleeps."""

import random
import struct

import pytest
from diameter_testkit import (
    OCS,
    SWITCH,
    SWITCH_ADDRESS,
    PeerPair,
    ccr_message,
    client_config,
    drain,
    server_config,
)

from protocols.diameter.avp import Avp, grouped, new_avp
from protocols.diameter.constants import (
    ApplicationId,
    AvpCode,
    CommandCode,
    DisconnectCause,
    ResultCode,
)
from protocols.diameter.errors import DiameterError, LocalProtocolError
from protocols.diameter.message import (
    Message,
    decode_message,
    encode_message,
    make_answer,
)
from protocols.diameter.peer import (
    TRANSITIONS,
    AllowedPeer,
    AnswerDropped,
    AnswerReceived,
    CloseReason,
    EndToEndIdGenerator,
    MessageRejected,
    Peer,
    PeerClosed,
    PeerConfig,
    PeerOpened,
    PeerRole,
    PeerState,
    RequestReceived,
    RequestTimedOut,
)


def open_pair(**kwargs: object) -> PeerPair:
    pair = PeerPair(**kwargs).start()  # type: ignore[arg-type]
    assert pair.server.is_open and pair.client.is_open
    pair.take_server_events()
    pair.take_client_events()
    return pair


def closed(events: list[object]) -> PeerClosed:
    found = [event for event in events if isinstance(event, PeerClosed)]
    assert len(found) == 1, events
    return found[0]


def cer(avps: list[Avp], hop_by_hop: int = 1) -> bytes:
    message = Message(CommandCode.CAPABILITIES_EXCHANGE, 0x80, 0, hop_by_hop, 2, tuple(avps))
    return encode_message(message)


def base_cer_avps() -> list[Avp]:
    return [
        new_avp(AvpCode.ORIGIN_HOST, "scscf.ims.example.net"),
        new_avp(AvpCode.ORIGIN_REALM, "ims.example.net"),
        new_avp(AvpCode.HOST_IP_ADDRESS, SWITCH.host_ip_addresses[0]),
        new_avp(AvpCode.VENDOR_ID, 0),
        new_avp(AvpCode.PRODUCT_NAME, "kamailio"),
    ]


def responder(**changes: object) -> Peer:
    peer = Peer(server_config(**changes), PeerRole.RESPONDER, SWITCH_ADDRESS, rng=random.Random(1))
    peer.start(0.0)
    return peer


def answers(data: bytes) -> list[Message]:
    out: list[Message] = []
    while data:
        length = struct.unpack("!I", data[:4])[0] & 0xFFFFFF
        out.append(decode_message(data[:length]))
        data = data[length:]
    return out


# --- capabilities exchange ---------------------------------------------------------------


def test_capabilities_exchange_opens_both_sides() -> None:
    pair = PeerPair().start()
    (server_opened,) = pair.take_server_events()
    (client_opened,) = pair.take_client_events()
    assert isinstance(server_opened, PeerOpened)
    assert isinstance(client_opened, PeerOpened)
    switch = server_opened.capabilities
    assert switch.origin_host == "scscf.ims.example.net"
    assert switch.origin_realm == "ims.example.net"
    assert switch.host_ip_addresses == SWITCH.host_ip_addresses
    assert switch.vendor_id == 10415
    assert switch.product_name == "softswitch"
    assert switch.origin_state_id == 42
    assert switch.auth_application_ids == (4,)
    assert switch.common_application_ids == (4,)
    assert switch.supported_vendor_ids == (10415,)
    ocs = client_opened.capabilities
    assert ocs.origin_host == "ocs.example.net"
    assert ocs.firmware_revision == 100
    assert ocs.origin_state_id == OCS.origin_state_id
    assert pair.server.remote == switch
    assert pair.server.state is PeerState.OPEN


def test_cea_carries_our_capabilities_and_flags() -> None:
    peer = responder()
    peer.receive_data(cer([*base_cer_avps(), new_avp(AvpCode.AUTH_APPLICATION_ID, 4)]), 1.0)
    (cea,) = answers(peer.data_to_send())
    assert cea.command_code == CommandCode.CAPABILITIES_EXCHANGE
    assert not cea.is_request and not cea.is_error and not cea.is_proxiable
    assert [(avp.code, avp.flags) for avp in cea.avps] == [
        (AvpCode.RESULT_CODE, 0x40),
        (AvpCode.ORIGIN_HOST, 0x40),
        (AvpCode.ORIGIN_REALM, 0x40),
        (AvpCode.HOST_IP_ADDRESS, 0x40),
        (AvpCode.VENDOR_ID, 0x40),
        (AvpCode.PRODUCT_NAME, 0x00),
        (AvpCode.ORIGIN_STATE_ID, 0x40),
        (AvpCode.SUPPORTED_VENDOR_ID, 0x40),
        (AvpCode.AUTH_APPLICATION_ID, 0x40),
        (AvpCode.FIRMWARE_REVISION, 0x00),
    ]
    assert cea.result_code == ResultCode.DIAMETER_SUCCESS
    assert cea.find(AvpCode.SUPPORTED_VENDOR_ID) == new_avp(AvpCode.SUPPORTED_VENDOR_ID, 10415)
    assert (cea.hop_by_hop_id, cea.end_to_end_id) == (1, 2)


@pytest.mark.parametrize(
    ("server", "client_address", "detail"),
    [
        pytest.param(
            server_config(allowed_peers=(AllowedPeer.of("other.example.net", SWITCH_ADDRESS),)),
            SWITCH_ADDRESS,
            "not a configured peer",
            id="unknown-origin-host",
        ),
        pytest.param(server_config(), "198.51.100.7", "not a configured peer", id="wrong-address"),
    ],
)
def test_unknown_peer_gets_3010_and_is_closed(
    server: PeerConfig, client_address: str, detail: str
) -> None:
    pair = PeerPair(server=server, client_address=client_address).start()
    server_closed = closed(pair.take_server_events())
    assert server_closed.reason is CloseReason.UNKNOWN_PEER
    assert detail in server_closed.detail
    client_closed = closed(pair.take_client_events())
    assert client_closed.reason is CloseReason.CAPABILITIES_REJECTED
    assert "3010" in client_closed.detail
    assert pair.server.is_closed and pair.client.is_closed


def test_unknown_peer_cea_has_the_e_bit() -> None:
    peer = Peer(server_config(), PeerRole.RESPONDER, "198.51.100.7", rng=random.Random(1))
    peer.start(0.0)
    peer.receive_data(cer([*base_cer_avps(), new_avp(AvpCode.AUTH_APPLICATION_ID, 4)]), 1.0)
    (cea,) = answers(peer.data_to_send())
    assert cea.is_error
    assert cea.result_code == ResultCode.DIAMETER_UNKNOWN_PEER
    assert cea.find(AvpCode.ERROR_MESSAGE) is not None


def test_no_common_application_gets_5010() -> None:
    pair = PeerPair(client=client_config(application_ids=(16777238,))).start()
    assert closed(pair.take_server_events()).reason is CloseReason.NO_COMMON_APPLICATION
    client_closed = closed(pair.take_client_events())
    assert client_closed.reason is CloseReason.CAPABILITIES_REJECTED
    assert "5010" in client_closed.detail


def test_5010_cea_uses_the_cea_grammar() -> None:
    peer = responder()
    peer.receive_data(cer([*base_cer_avps(), new_avp(AvpCode.ACCT_APPLICATION_ID, 3)]), 1.0)
    (cea,) = answers(peer.data_to_send())
    assert not cea.is_error
    assert cea.result_code == ResultCode.DIAMETER_NO_COMMON_APPLICATION
    assert cea.find(AvpCode.HOST_IP_ADDRESS) is not None
    assert peer.is_closed


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(
            [
                grouped(
                    AvpCode.VENDOR_SPECIFIC_APPLICATION_ID,
                    [new_avp(AvpCode.VENDOR_ID, 10415), new_avp(AvpCode.AUTH_APPLICATION_ID, 4)],
                )
            ],
            id="only-in-vendor-specific",
        ),
        pytest.param([new_avp(AvpCode.AUTH_APPLICATION_ID, 0xFFFFFFFF)], id="relay"),
        pytest.param([new_avp(AvpCode.ACCT_APPLICATION_ID, 4)], id="as-acct"),
    ],
)
def test_common_application_forms(extra: list[Avp]) -> None:
    peer = responder()
    peer.receive_data(cer([*base_cer_avps(), *extra]), 1.0)
    (cea,) = answers(peer.data_to_send())
    assert cea.result_code == ResultCode.DIAMETER_SUCCESS
    (opened,) = drain(peer)
    assert isinstance(opened, PeerOpened)
    assert opened.capabilities.common_application_ids == (4,)


def test_cer_without_origin_host_gets_5005() -> None:
    peer = responder()
    peer.receive_data(cer(base_cer_avps()[1:]), 1.0)
    (cea,) = answers(peer.data_to_send())
    assert cea.result_code == ResultCode.DIAMETER_MISSING_AVP
    failed = cea.find(AvpCode.FAILED_AVP)
    assert failed is not None and failed.avps == (Avp(AvpCode.ORIGIN_HOST, 0, 0x40, ""),)
    assert closed(list(drain(peer))).reason is CloseReason.CAPABILITIES_REJECTED


def test_request_before_cer_is_answered_3010_and_closed() -> None:
    peer = responder()
    peer.receive_data(encode_message(ccr_message(hop_by_hop=5)), 1.0)
    (answer,) = answers(peer.data_to_send())
    assert answer.is_error
    assert answer.result_code == ResultCode.DIAMETER_UNKNOWN_PEER
    assert answer.hop_by_hop_id == 5
    assert answer.session_id == "scscf.ims.example.net;1700000000;42"
    rejected, peer_closed = drain(peer)
    assert isinstance(rejected, MessageRejected)
    assert isinstance(peer_closed, PeerClosed)
    assert peer_closed.reason is CloseReason.PROTOCOL_ERROR


def test_initiator_closes_on_anything_but_cea() -> None:
    client = Peer(client_config(), PeerRole.INITIATOR, "192.0.2.10", rng=random.Random(3))
    client.start(0.0)
    assert client.state is PeerState.WAIT_CEA
    client.data_to_send()
    dwr = Message(CommandCode.DEVICE_WATCHDOG, 0x80, 0, 9, 9, OCS.origin_avps)
    client.receive_data(encode_message(dwr), 1.0)
    assert closed(list(drain(client))).reason is CloseReason.PROTOCOL_ERROR
    assert client.data_to_send() == b""


def test_cea_with_failure_closes_the_initiator() -> None:
    client = Peer(client_config(), PeerRole.INITIATOR, "192.0.2.10", rng=random.Random(3))
    client.start(0.0)
    sent = answers(client.data_to_send())[0]
    cea = make_answer(sent, OCS, ResultCode.DIAMETER_NO_COMMON_SECURITY)
    client.receive_data(encode_message(cea), 1.0)
    peer_closed = closed(list(drain(client)))
    assert peer_closed.reason is CloseReason.CAPABILITIES_REJECTED
    assert "5017" in peer_closed.detail


def test_capabilities_timeout() -> None:
    peer = responder(capabilities_timeout_s=3.0)
    assert peer.get_timer() == 3.0
    peer.handle_timer(2.9)
    assert not peer.is_closed
    peer.handle_timer(3.0)
    assert closed(list(drain(peer))).reason is CloseReason.CAPABILITIES_TIMEOUT
    assert peer.get_timer() is None


def test_second_cer_in_open_is_answered_and_keeps_the_peer_open() -> None:
    pair = open_pair()
    again = cer([*base_cer_avps(), new_avp(AvpCode.AUTH_APPLICATION_ID, 4)], hop_by_hop=77)
    pair.server.receive_data(again, pair.now)
    (cea,) = answers(pair.server.data_to_send())
    assert cea.result_code == ResultCode.DIAMETER_SUCCESS
    assert pair.server.is_open
    assert list(drain(pair.server)) == []


def test_second_cer_with_another_origin_host_closes() -> None:
    pair = open_pair()
    avps = [new_avp(AvpCode.ORIGIN_HOST, "imposter.example.net"), *base_cer_avps()[1:]]
    pair.server.receive_data(cer([*avps, new_avp(AvpCode.AUTH_APPLICATION_ID, 4)]), pair.now)
    (cea,) = answers(pair.server.data_to_send())
    assert cea.result_code == ResultCode.DIAMETER_UNKNOWN_PEER
    assert closed(list(drain(pair.server))).reason is CloseReason.UNKNOWN_PEER


# --- watchdog ----------------------------------------------------------------------------


def test_watchdog_both_directions_keeps_the_connection() -> None:
    pair = open_pair()
    for _ in range(6):
        pair.advance(30.0)
    assert pair.server.is_open and pair.client.is_open
    assert pair.take_server_events() == []
    assert pair.take_client_events() == []


def test_watchdog_sends_dwr_after_tw_of_silence() -> None:
    pair = open_pair()
    timer = pair.server.get_timer()
    assert timer is not None and 28.0 <= timer - pair.now <= 32.0
    pair.drop_to_client = True
    pair.advance(timer - pair.now)
    pair.drop_to_client = False
    assert pair.server.is_open


def test_watchdog_expiry_closes_the_peer() -> None:
    pair = open_pair()
    pair.drop_to_server = True  # the softswitch's DWAs never arrive
    pair.drop_to_client = True
    pair.advance(80.0)
    peer_closed = closed(pair.take_server_events())
    assert peer_closed.reason is CloseReason.WATCHDOG_EXPIRED


def test_any_traffic_counts_as_liveness() -> None:
    pair = open_pair()
    for _ in range(10):
        pair.advance(20.0)
        pair.client.send_request(ccr_message(), pair.now)
        pair.pump()
        for event in pair.take_server_events():
            assert isinstance(event, RequestReceived)
            answer = make_answer(event.message, OCS, ResultCode.DIAMETER_SUCCESS)
            pair.server.send_answer(answer, pair.now)
        pair.pump()
    assert pair.server.is_open
    assert all(isinstance(event, AnswerReceived) for event in pair.take_client_events())


def test_jitter_comes_from_the_injected_rng() -> None:
    timers = set()
    for seed in range(5):
        peer = Peer(server_config(), PeerRole.RESPONDER, SWITCH_ADDRESS, rng=random.Random(seed))
        timers.add(peer._watchdog_interval)
        again = Peer(server_config(), PeerRole.RESPONDER, SWITCH_ADDRESS, rng=random.Random(seed))
        assert again._watchdog_interval == peer._watchdog_interval
    assert len(timers) == 5
    assert all(28.0 <= interval <= 32.0 for interval in timers)


# --- disconnect --------------------------------------------------------------------------


def test_dpr_from_the_softswitch() -> None:
    pair = open_pair()
    pair.client.close(pair.now, DisconnectCause.BUSY)
    assert pair.client.state is PeerState.CLOSING
    pair.pump()
    server_closed = closed(pair.take_server_events())
    assert server_closed.reason is CloseReason.REMOTE_DISCONNECT
    assert server_closed.disconnect_cause == DisconnectCause.BUSY
    assert closed(pair.take_client_events()).reason is CloseReason.LOCAL_DISCONNECT
    assert pair.server.is_closed and pair.client.is_closed


def test_dpr_from_ocsd() -> None:
    pair = open_pair()
    pair.server.close(pair.now, DisconnectCause.REBOOTING)
    pair.pump()
    assert closed(pair.take_client_events()).disconnect_cause == DisconnectCause.REBOOTING
    assert closed(pair.take_server_events()).reason is CloseReason.LOCAL_DISCONNECT


def test_dpa_timeout() -> None:
    pair = open_pair()
    pair.drop_to_server = True
    pair.client.close(pair.now)
    pair.pump()
    pair.advance(4.9)
    assert pair.client.state is PeerState.CLOSING
    pair.advance(0.2)
    assert closed(pair.take_client_events()).reason is CloseReason.DPA_TIMEOUT


def test_crossing_dprs_close_both() -> None:
    pair = open_pair()
    pair.client.close(pair.now)
    pair.server.close(pair.now)
    pair.pump()
    assert pair.client.is_closed and pair.server.is_closed


def test_close_before_open_and_twice() -> None:
    peer = responder()
    peer.close(1.0)
    assert closed(list(drain(peer))).reason is CloseReason.LOCAL_DISCONNECT
    peer.close(2.0)
    assert list(drain(peer)) == []
    peer.receive_data(b"ignored after close", 3.0)
    assert peer.data_to_send() == b""


def test_connection_lost() -> None:
    pair = open_pair()
    pair.server.connection_lost(pair.now)
    assert closed(list(drain(pair.server))).reason is CloseReason.TRANSPORT_LOST
    assert pair.server.send_answer(make_answer(ccr_message(), OCS, 2001), pair.now) is False


# --- requests and answers ----------------------------------------------------------------


def test_answers_are_matched_by_hop_by_hop_id() -> None:
    pair = open_pair()
    first = pair.client.send_request(ccr_message(request_number=1), pair.now)
    second = pair.client.send_request(ccr_message(request_number=2), pair.now)
    assert second.hop_by_hop_id == (first.hop_by_hop_id + 1) & 0xFFFFFFFF
    assert first.end_to_end_id != second.end_to_end_id
    assert pair.client.outstanding_requests == 2
    pair.pump()
    received = pair.take_server_events()
    assert [event.message for event in received] == [first, second]  # type: ignore[union-attr]
    assert pair.server.pending_requests == 2
    for event in reversed(received):
        assert isinstance(event, RequestReceived)
        answer = make_answer(event.message, OCS, ResultCode.DIAMETER_SUCCESS)
        pair.server.send_answer(answer, pair.now)
    pair.pump()
    matched = pair.take_client_events()
    assert [(event.request, event.message.hop_by_hop_id) for event in matched] == [  # type: ignore[union-attr]
        (second, second.hop_by_hop_id),
        (first, first.hop_by_hop_id),
    ]
    assert pair.client.outstanding_requests == 0
    assert pair.server.pending_requests == 0


def test_unmatched_answer_is_dropped_with_an_event() -> None:
    pair = open_pair()
    stray = make_answer(ccr_message(hop_by_hop=123456), OCS, ResultCode.DIAMETER_SUCCESS)
    pair.client.receive_data(encode_message(stray), pair.now)
    (dropped,) = drain(pair.client)
    assert isinstance(dropped, AnswerDropped)
    assert dropped.message.hop_by_hop_id == 123456


def test_end_to_end_id_can_be_kept_for_retransmissions() -> None:
    pair = open_pair()
    sent = pair.client.send_request(
        ccr_message(end_to_end=0xABCDEF), pair.now, keep_end_to_end_id=True
    )
    assert sent.end_to_end_id == 0xABCDEF


def test_end_to_end_ids_follow_rfc_6733() -> None:
    ids = EndToEndIdGenerator(start_time_s=1_700_000_123.9, rng=random.Random(5))
    first = ids.next()
    assert first >> 20 == 1_700_000_123 & 0xFFF
    assert ids.next() == (first & 0xFFF00000) | ((first + 1) & 0xFFFFF)


def test_malformed_request_gets_an_error_answer_with_failed_avp() -> None:
    pair = open_pair()
    good = ccr_message(hop_by_hop=4242)
    wire = bytearray(encode_message(good))
    # Shrink CC-Request-Number's payload to 3 octets: a wrong-length Unsigned32.
    at = wire.find(struct.pack("!II", AvpCode.CC_REQUEST_NUMBER, (0x40 << 24) | 12))
    wire[at + 4 : at + 8] = struct.pack("!I", (0x40 << 24) | 11)
    pair.server.receive_data(bytes(wire), pair.now)
    (answer,) = answers(pair.server.data_to_send())
    assert answer.hop_by_hop_id == 4242
    assert answer.is_error  # the CCA grammar needs the CC-Request-Number we could not read
    assert answer.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert answer.session_id == "scscf.ims.example.net;1700000000;42"
    failed = answer.find(AvpCode.FAILED_AVP)
    assert failed is not None
    assert failed.avps == (Avp(AvpCode.CC_REQUEST_NUMBER, 0, 0x40, b"\x00\x00\x00"),)
    assert answer.find(AvpCode.ERROR_MESSAGE) is not None
    (rejected,) = drain(pair.server)
    assert isinstance(rejected, MessageRejected)
    assert rejected.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert pair.server.is_open


def test_lazily_decoded_request_is_rejected_by_the_adapter() -> None:
    pair = open_pair(server=server_config(decode_lazily=True))
    wire = bytearray(encode_message(ccr_message(hop_by_hop=7)))
    at = wire.find(struct.pack("!II", AvpCode.CC_REQUEST_NUMBER, (0x40 << 24) | 12))
    wire[at + 4 : at + 8] = struct.pack("!I", (0x40 << 24) | 11)
    pair.server.receive_data(bytes(wire), pair.now)
    (received,) = drain(pair.server)
    assert isinstance(received, RequestReceived)
    with pytest.raises(DiameterError) as caught:
        _ = received.message.avps
    assert pair.server.reject_request(received.message, caught.value, pair.now)
    (answer,) = answers(pair.server.data_to_send())
    assert answer.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert answer.session_id == "scscf.ims.example.net;1700000000;42"
    assert pair.server.pending_requests == 0


@pytest.mark.parametrize(
    ("message", "result_code"),
    [
        pytest.param(
            Message(275, 0xC0, 4, 1, 1, (new_avp(AvpCode.SESSION_ID, "s"),)),
            ResultCode.DIAMETER_COMMAND_UNSUPPORTED,
            id="command",
        ),
        pytest.param(
            ccr_message().replace(application_id=16777238),
            ResultCode.DIAMETER_APPLICATION_UNSUPPORTED,
            id="application",
        ),
    ],
)
def test_unserved_requests_are_answered_by_the_peer(message: Message, result_code: int) -> None:
    pair = open_pair()
    pair.server.receive_data(encode_message(message), pair.now)
    (answer,) = answers(pair.server.data_to_send())
    assert answer.is_error
    assert answer.result_code == result_code
    (rejected,) = drain(pair.server)
    assert isinstance(rejected, MessageRejected)


def test_too_many_pending_requests_are_answered_3004() -> None:
    pair = open_pair(server=server_config(max_pending_requests=2))
    for number in range(3):
        pair.client.send_request(ccr_message(request_number=number), pair.now)
    pair.pump()
    events = pair.take_server_events()
    assert [type(event) for event in events] == [RequestReceived, RequestReceived, MessageRejected]
    (busy,) = pair.take_client_events()
    assert isinstance(busy, AnswerReceived)
    assert busy.message.result_code == ResultCode.DIAMETER_TOO_BUSY
    assert busy.message.is_error


def test_request_timeout() -> None:
    pair = open_pair(client=client_config(request_timeout_s=2.0))
    pair.drop_to_server = True
    sent = pair.client.send_request(ccr_message(), pair.now)
    pair.pump()
    pair.advance(2.5)
    (timed_out,) = pair.take_client_events()
    assert timed_out == RequestTimedOut(sent)
    assert pair.client.outstanding_requests == 0


def test_api_misuse_raises_local_errors() -> None:
    peer = responder()
    with pytest.raises(LocalProtocolError):
        peer.send_request(ccr_message(), 1.0)
    with pytest.raises(LocalProtocolError):
        peer.start(1.0)
    pair = open_pair(client=client_config(max_outstanding_requests=1))
    with pytest.raises(LocalProtocolError, match="R bit"):
        pair.client.send_request(make_answer(ccr_message(), OCS, 2001), pair.now)
    pair.client.send_request(ccr_message(), pair.now)
    with pytest.raises(LocalProtocolError, match="too many"):
        pair.client.send_request(ccr_message(), pair.now)
    with pytest.raises(LocalProtocolError, match="awaits an answer"):
        pair.server.send_answer(make_answer(ccr_message(hop_by_hop=1), OCS, 2001), pair.now)
    with pytest.raises(LocalProtocolError, match="without the R bit"):
        pair.server.send_answer(ccr_message(), pair.now)
    idle = Peer(server_config(), PeerRole.RESPONDER, SWITCH_ADDRESS)
    with pytest.raises(LocalProtocolError):
        idle.receive_data(b"x", 0.0)


# --- bounds ------------------------------------------------------------------------------


def test_framing_error_closes_the_peer() -> None:
    pair = open_pair()
    pair.server.receive_data(struct.pack("!IIIII", (1 << 24) | 12, 0, 0, 0, 0), pair.now)
    peer_closed = closed(list(drain(pair.server)))
    assert peer_closed.reason is CloseReason.FRAMING_ERROR
    assert "shorter than the Diameter header" in peer_closed.detail


def test_oversized_message_closes_the_peer() -> None:
    pair = open_pair(server=server_config(max_message_bytes=256))
    pair.client.send_request(ccr_message(), pair.now)
    pair.pump()
    assert closed(pair.take_server_events()).reason is CloseReason.FRAMING_ERROR


def test_a_stalled_message_closes_the_peer() -> None:
    pair = open_pair()
    wire = encode_message(ccr_message())
    pair.server.receive_data(wire[:100], pair.now)
    pair.advance(5.0)
    pair.server.receive_data(wire[100:200], pair.now)  # trickling does not reset the clock
    pair.advance(5.0)
    assert closed(pair.take_server_events()).reason is CloseReason.STALLED


def test_byte_by_byte_delivery() -> None:
    pair = open_pair()
    wire = encode_message(ccr_message(hop_by_hop=99))
    for index in range(len(wire)):
        pair.server.receive_data(wire[index : index + 1], pair.now)
    (received,) = drain(pair.server)
    assert isinstance(received, RequestReceived)
    assert received.message == ccr_message(hop_by_hop=99)
    assert pair.server.get_timer() is not None


# --- the rules as data -------------------------------------------------------------------


def test_every_live_state_can_be_aborted() -> None:
    for state in PeerState:
        if state is not PeerState.CLOSED:
            assert any(key[0] is state for key in TRANSITIONS)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="host_ip_addresses"):
        PeerConfig(identity=OCS.__class__("a", "b"), allowed_peers=())
    with pytest.raises(ValueError, match="RFC 3539"):
        server_config(watchdog_interval_s=5.0)
    with pytest.raises(ValueError, match="application_ids"):
        server_config(application_ids=())
    with pytest.raises(ValueError, match="dpa_timeout_s"):
        server_config(dpa_timeout_s=0)
    with pytest.raises(ValueError, match="max_pending"):
        server_config(max_pending_requests=0)


def test_allowed_peer_matching() -> None:
    from ipaddress import ip_address

    allowed = AllowedPeer.of("SCSCF.ims.example.net", "192.0.2.0/28", "2001:db8::1")
    assert allowed.matches("scscf.ims.example.net", ip_address("192.0.2.5"))
    assert allowed.matches("scscf.ims.example.net", ip_address("2001:db8::1"))
    assert not allowed.matches("scscf.ims.example.net", ip_address("192.0.2.16"))
    assert not allowed.matches("pcscf.ims.example.net", ip_address("192.0.2.5"))
    assert ApplicationId.RELAY == 0xFFFFFFFF
