"""Cross-checks with python-diameter, an independent encoder/decoder, in both directions.

- python-diameter builds messages with its own typed command classes; we decode them and
  check the values (CER, CEA, DWR, DWA, DPR, DPA, CCR-I/U/T/E with MSCC and IMS-Information,
  CCA).
- we build messages; python-diameter decodes them and we check the values it sees.
- the same AVPs in the same order, encoded by both, are byte-identical.

python-diameter is not the specification in a few places (no M bit on Origin-Host in CCR/CCA,
DiameterIdentity as OctetString, Access-Network-Information as UTF8String, the RFC 4740
SIP-Method inside Event-Type); where that matters the test says so.
"""

import random
from datetime import UTC, datetime
from ipaddress import IPv4Address

import pytest
from diameter.message import Message as PMessage
from diameter.message import MessageHeader
from diameter.message.avp import Avp as PAvp
from diameter.message.avp.grouped import (
    CcMoney,
    GrantedServiceUnit,
    MultipleServicesCreditControl,
    RequestedServiceUnit,
    ServiceInformation,
    TimeStamps,
    UsedServiceUnit,
    VendorSpecificApplicationId,
)
from diameter.message.avp.grouped import (
    CostInformation as PCostInformation,
)
from diameter.message.avp.grouped import (
    EventType as PEventType,
)
from diameter.message.avp.grouped import (
    FinalUnitIndication as PFinalUnitIndication,
)
from diameter.message.avp.grouped import (
    ImsInformation as PImsInformation,
)
from diameter.message.avp.grouped import (
    RedirectServer as PRedirectServer,
)
from diameter.message.avp.grouped import (
    SubscriptionId as PSubscriptionId,
)
from diameter.message.avp.grouped import (
    UnitValue as PUnitValue,
)
from diameter.message.commands import (
    CapabilitiesExchangeAnswer,
    CapabilitiesExchangeRequest,
    DeviceWatchdogAnswer,
    DeviceWatchdogRequest,
    DisconnectPeerAnswer,
    DisconnectPeerRequest,
)
from diameter.message.commands import (
    CreditControlAnswer as PCreditControlAnswer,
)
from diameter.message.commands import (
    CreditControlRequest as PCreditControlRequest,
)
from diameter_testkit import OCS, SWITCH, PeerPair, ccr_message, client_config, drain, server_config

from protocols.diameter.avp import Avp
from protocols.diameter.constants import (
    CcRequestType,
    CheckBalanceResult,
    DisconnectCause,
    FinalUnitAction,
    NodeFunctionality,
    RedirectAddressType,
    ReportingReason,
    RequestedAction,
    ResultCode,
    RoleOfNode,
    SubscriptionIdType,
)
from protocols.diameter.dictionary import lookup
from protocols.diameter.errors import DiameterError
from protocols.diameter.gy import (
    CostInformation,
    CreditControlAnswer,
    FinalUnitIndication,
    GrantedUnits,
    MsccAnswer,
    RedirectServer,
    UnitValue,
    decode_cca,
    decode_ccr,
    encode_cca,
    encode_ccr,
)
from protocols.diameter.message import (
    STRICT_OPTIONS,
    Message,
    decode_message,
    encode_message,
)
from protocols.diameter.peer import Peer, PeerClosed, PeerOpened, PeerRole

STAMP = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TGPP = 10415


def header(
    request: bool, proxiable: bool = False, hbh: int = 0x1111, e2e: int = 0x2222
) -> MessageHeader:
    result = MessageHeader(hop_by_hop_identifier=hbh, end_to_end_identifier=e2e)
    result.is_request = request
    result.is_proxyable = proxiable
    return result


def pd_ccr(request_type: int, number: int, *, event_action: int | None = None) -> bytes:
    """A CCR as python-diameter's CreditControlRequest class builds it."""
    ccr = PCreditControlRequest()
    ccr.header.hop_by_hop_identifier = 0xABC
    ccr.header.end_to_end_identifier = 0xDEF
    ccr.header.application_id = 4  # python-diameter leaves it 0
    ccr.session_id = "scscf.ims.example.net;1700000000;42"
    ccr.origin_host = b"scscf.ims.example.net"
    ccr.origin_realm = b"ims.example.net"
    ccr.destination_realm = b"example.net"
    ccr.auth_application_id = 4
    ccr.service_context_id = "ext.01.208.12.32260@3gpp.org"
    ccr.cc_request_type = request_type
    ccr.cc_request_number = number
    ccr.event_timestamp = STAMP
    ccr.user_name = "alice"
    ccr.subscription_id = [
        PSubscriptionId(subscription_id_type=0, subscription_id_data="441234567890"),
        PSubscriptionId(subscription_id_type=2, subscription_id_data="sip:alice@example.net"),
    ]
    if event_action is not None:
        ccr.requested_action = event_action
        ccr.requested_service_unit = RequestedServiceUnit(cc_service_specific_units=1)
    else:
        ccr.multiple_services_indicator = 1
        ccr.multiple_services_credit_control = [
            MultipleServicesCreditControl(
                requested_service_unit=RequestedServiceUnit(cc_time=60),
                used_service_unit=[
                    UsedServiceUnit(cc_time=57, reporting_reason=3),
                    UsedServiceUnit(cc_total_octets=2**33),
                ],
                service_identifier=[1000],
                rating_group=100,
            )
        ]
    if request_type == 3:
        ccr.termination_cause = 1
    ccr.service_information = ServiceInformation(
        ims_information=PImsInformation(
            event_type=PEventType(sip_method="INVITE"),
            role_of_node=0,
            node_functionality=6,
            user_session_id="call-1@switch",
            calling_party_address=["sip:+441234567890@ims.example.net"],
            called_party_address="tel:+33123456789",
            requested_party_address=["tel:0123456789"],
            time_stamps=TimeStamps(sip_request_timestamp=STAMP, sip_response_timestamp=STAMP),
            ims_charging_identifier="icid-0001",
            access_network_information=["3GPP-E-UTRAN-FDD"],
            cause_code=0,
        )
    )
    return ccr.as_bytes()


# --- python-diameter -> us ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_type", "number", "action"),
    [
        pytest.param(CcRequestType.INITIAL_REQUEST, 0, None, id="ccr-i"),
        pytest.param(CcRequestType.UPDATE_REQUEST, 1, None, id="ccr-u"),
        pytest.param(CcRequestType.TERMINATION_REQUEST, 2, None, id="ccr-t"),
        pytest.param(CcRequestType.EVENT_REQUEST, 0, RequestedAction.DIRECT_DEBITING, id="ccr-e"),
        pytest.param(CcRequestType.EVENT_REQUEST, 0, RequestedAction.CHECK_BALANCE, id="ccr-e-bal"),
    ],
)
def test_we_read_python_diameter_ccrs(request_type: int, number: int, action: int | None) -> None:
    raw = pd_ccr(request_type, number, event_action=action)
    message = decode_message(raw, lazy=True)
    ccr = decode_ccr(message)
    # python-diameter puts the RFC 4740 SIP-Method (393) in Event-Type, not TS 32.299's 824.
    assert ccr.tolerated == ("Event-Type has the RFC 4740 SIP-Method (393), read as 3GPP's",)
    assert (message.hop_by_hop_id, message.end_to_end_id) == (0xABC, 0xDEF)
    assert ccr.session_id == "scscf.ims.example.net;1700000000;42"
    assert ccr.origin_host == "scscf.ims.example.net"
    assert ccr.destination_realm == "example.net"
    assert ccr.service_context is not None and ccr.service_context.release == "12"
    assert ccr.request_type == request_type
    assert ccr.request_number == number
    assert ccr.event_timestamp == STAMP
    assert ccr.user_name == "alice"
    assert [(s.type, s.data) for s in ccr.subscription_ids] == [
        (SubscriptionIdType.END_USER_E164, "441234567890"),
        (SubscriptionIdType.END_USER_SIP_URI, "sip:alice@example.net"),
    ]
    if action is None:
        (mscc,) = ccr.mscc
        assert mscc.rating_group == 100
        assert mscc.service_identifiers == (1000,)
        assert mscc.requested is not None and mscc.requested.cc_time == 60
        assert [(u.cc_time, u.cc_total_octets, u.reporting_reason) for u in mscc.used] == [
            (57, None, ReportingReason.QUOTA_EXHAUSTED),
            (None, 2**33, None),
        ]
        assert ccr.requested_action is None
    else:
        assert ccr.requested_action == action
        assert ccr.requested is not None and ccr.requested.cc_service_specific_units == 1
    assert ccr.termination_cause == (1 if request_type == 3 else None)
    ims = ccr.ims
    assert ims is not None
    assert ims.event_type is not None and ims.event_type.sip_method == "INVITE"
    assert ims.role_of_node is RoleOfNode.ORIGINATING_ROLE
    assert ims.node_functionality is NodeFunctionality.AS
    assert ims.user_session_id == "call-1@switch"
    assert ims.calling_party_address == "sip:+441234567890@ims.example.net"
    assert ims.called_party_address == "tel:+33123456789"
    assert ims.requested_party_address == "tel:0123456789"
    assert ims.sip_request_timestamp == ims.sip_response_timestamp == STAMP
    assert ims.ims_charging_identifier == "icid-0001"
    assert ims.access_network_information == (b"3GPP-E-UTRAN-FDD",)
    assert ims.cause_code == 0
    # The codec keeps every octet python-diameter produced.
    assert encode_message(decode_message(raw)) == raw


def test_python_diameter_ccr_breaks_strict_flag_rules() -> None:
    # python-diameter sends Origin-Host without the M bit RFC 6733 §4.5 requires: the reason
    # the flag rules are only enforced when asked.
    with pytest.raises(DiameterError) as caught:
        decode_message(pd_ccr(1, 0), STRICT_OPTIONS)
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_BITS


def test_we_read_a_python_diameter_cca() -> None:
    cca = PCreditControlAnswer()
    cca.header.hop_by_hop_identifier = 5
    cca.session_id = "s;1"
    cca.result_code = 2001
    cca.origin_host = b"ocs.example.net"
    cca.origin_realm = b"example.net"
    cca.cc_request_type = 2
    cca.cc_request_number = 1
    cca.credit_control_failure_handling = 1
    cca.check_balance_result = 0
    cca.cost_information = PCostInformation(
        unit_value=PUnitValue(value_digits=125, exponent=-4), currency_code=978, cost_unit="min"
    )
    cca.add_multiple_services_credit_control(
        granted_service_unit=GrantedServiceUnit(
            cc_time=60, cc_money=CcMoney(unit_value=PUnitValue(value_digits=5), currency_code=978)
        ),
        rating_group=100,
        validity_time=120,
        result_code=2001,
        final_unit_indication=PFinalUnitIndication(
            final_unit_action=1,
            redirect_server=PRedirectServer(
                redirect_address_type=3, redirect_server_address="sip:topup@example.net"
            ),
        ),
    )
    answer = decode_cca(decode_message(cca.as_bytes()))
    assert answer.result_code == 2001
    assert answer.check_balance_result is CheckBalanceResult.ENOUGH_CREDIT
    assert answer.cost_information == CostInformation(UnitValue(125, -4), 978, "min")
    (mscc,) = answer.mscc
    assert mscc.granted is not None and mscc.granted.cc_time == 60
    assert mscc.granted.cc_money is not None and mscc.granted.cc_money.currency_code == 978
    assert (mscc.rating_group, mscc.validity_time, mscc.result_code) == (100, 120, 2001)
    assert mscc.final_unit_indication == FinalUnitIndication(
        FinalUnitAction.REDIRECT,
        redirect_server=RedirectServer(RedirectAddressType.SIP_URI, "sip:topup@example.net"),
    )


def pd_cer() -> bytes:
    cer = CapabilitiesExchangeRequest()
    cer.header.hop_by_hop_identifier = 1
    cer.header.end_to_end_identifier = 2
    cer.origin_host = b"scscf.ims.example.net"
    cer.origin_realm = b"ims.example.net"
    cer.host_ip_address = ["192.0.2.20"]
    cer.vendor_id = 10415
    cer.product_name = "Kamailio"
    cer.origin_state_id = 7
    cer.supported_vendor_id = [10415]
    cer.vendor_specific_application_id = [
        VendorSpecificApplicationId(vendor_id=10415, auth_application_id=4)
    ]
    cer.firmware_revision = 501
    return cer.as_bytes()


def test_our_responder_accepts_a_python_diameter_cer_and_it_reads_our_cea() -> None:
    server = Peer(server_config(), PeerRole.RESPONDER, "192.0.2.20", rng=random.Random(1))
    server.start(0.0)
    server.receive_data(pd_cer(), 1.0)
    (opened,) = drain(server)
    assert isinstance(opened, PeerOpened)
    capabilities = opened.capabilities
    assert capabilities.origin_host == "scscf.ims.example.net"
    assert capabilities.host_ip_addresses == (IPv4Address("192.0.2.20"),)
    assert capabilities.product_name == "Kamailio"
    assert capabilities.vendor_specific_application_ids == ((10415, 4, None),)
    assert capabilities.common_application_ids == (4,)
    assert capabilities.firmware_revision == 501
    cea = PMessage.from_bytes(server.data_to_send())
    assert isinstance(cea, CapabilitiesExchangeAnswer)
    assert cea.result_code == 2001
    assert cea.origin_host == b"ocs.example.net"
    assert cea.host_ip_address == [(1, "192.0.2.10")]
    assert cea.product_name == "ocsd"
    assert cea.auth_application_id == [4]
    assert cea.supported_vendor_id == [10415]
    assert cea.origin_state_id == OCS.origin_state_id
    assert cea.firmware_revision == 100
    assert (cea.header.hop_by_hop_identifier, cea.header.end_to_end_identifier) == (1, 2)


def test_our_initiator_accepts_a_python_diameter_cea() -> None:
    client = Peer(client_config(), PeerRole.INITIATOR, "192.0.2.10", rng=random.Random(2))
    client.start(0.0)
    cer = PMessage.from_bytes(client.data_to_send())
    assert isinstance(cer, CapabilitiesExchangeRequest)
    assert cer.origin_host == SWITCH.origin_host.encode()
    assert cer.auth_application_id == [4]
    cea = cer.to_answer()
    cea.result_code = 2001
    cea.origin_host = b"ocs.example.net"
    cea.origin_realm = b"example.net"
    cea.host_ip_address = ["192.0.2.10"]
    cea.vendor_id = 0
    cea.product_name = "other-ocs"
    cea.auth_application_id = [4]
    client.receive_data(cea.as_bytes(), 1.0)
    (opened,) = drain(client)
    assert isinstance(opened, PeerOpened)
    assert opened.capabilities.product_name == "other-ocs"


def test_watchdog_and_disconnect_with_python_diameter() -> None:
    pair = PeerPair().start()
    pair.take_server_events()
    server = pair.server
    dwr = DeviceWatchdogRequest()
    dwr.header.hop_by_hop_identifier = 77
    dwr.origin_host = b"scscf.ims.example.net"
    dwr.origin_realm = b"ims.example.net"
    dwr.origin_state_id = 42
    server.receive_data(dwr.as_bytes(), pair.now)
    dwa = PMessage.from_bytes(server.data_to_send())
    assert isinstance(dwa, DeviceWatchdogAnswer)
    assert (dwa.result_code, dwa.header.hop_by_hop_identifier) == (2001, 77)
    assert dwa.origin_state_id == OCS.origin_state_id
    dpr = DisconnectPeerRequest()
    dpr.header.hop_by_hop_identifier = 78
    dpr.origin_host = b"scscf.ims.example.net"
    dpr.origin_realm = b"ims.example.net"
    dpr.disconnect_cause = DisconnectCause.BUSY
    server.receive_data(dpr.as_bytes(), pair.now)
    dpa = PMessage.from_bytes(server.data_to_send())
    assert isinstance(dpa, DisconnectPeerAnswer)
    assert (dpa.result_code, dpa.header.hop_by_hop_identifier) == (2001, 78)
    closed = [event for event in drain(server) if isinstance(event, PeerClosed)]
    assert closed[0].disconnect_cause == DisconnectCause.BUSY


def test_python_diameter_reads_our_dwr_and_dpr_and_we_read_its_answers() -> None:
    pair = PeerPair().start()
    client = pair.client
    assert client.is_open
    client.handle_timer(pair.now + 40.0)
    dwr = PMessage.from_bytes(client.data_to_send())
    assert isinstance(dwr, DeviceWatchdogRequest)
    assert dwr.origin_host == b"scscf.ims.example.net"
    dwa = dwr.to_answer()
    dwa.result_code = 2001
    dwa.origin_host = b"ocs.example.net"
    dwa.origin_realm = b"example.net"
    client.receive_data(dwa.as_bytes(), pair.now + 40.0)
    assert client.is_open
    client.close(pair.now + 41.0, DisconnectCause.DO_NOT_WANT_TO_TALK_TO_YOU)
    dpr = PMessage.from_bytes(client.data_to_send())
    assert isinstance(dpr, DisconnectPeerRequest)
    assert dpr.disconnect_cause == DisconnectCause.DO_NOT_WANT_TO_TALK_TO_YOU
    dpa = dpr.to_answer()
    dpa.result_code = 2001
    dpa.origin_host = b"ocs.example.net"
    dpa.origin_realm = b"example.net"
    client.receive_data(dpa.as_bytes(), pair.now + 41.5)
    assert client.is_closed


# --- us -> python-diameter ---------------------------------------------------------------


def test_python_diameter_reads_our_ccr() -> None:
    view = decode_ccr(decode_message(pd_ccr(2, 1), lazy=True))
    ours = encode_message(encode_ccr(view).replace(hop_by_hop_id=9, end_to_end_id=10))
    theirs = PMessage.from_bytes(ours)
    assert isinstance(theirs, PCreditControlRequest)
    assert theirs.session_id == view.session_id
    assert theirs.cc_request_type == 2
    assert theirs.subscription_id[1].subscription_id_data == "sip:alice@example.net"
    mscc = theirs.multiple_services_credit_control[0]
    assert mscc.rating_group == 100
    assert mscc.used_service_unit[0].cc_time == 57
    assert mscc.used_service_unit[0].reporting_reason == 3
    assert mscc.used_service_unit[1].cc_total_octets == 2**33
    ims = theirs.service_information.ims_information
    assert ims.calling_party_address == ["sip:+441234567890@ims.example.net"]
    assert ims.role_of_node == 0
    assert ims.time_stamps.sip_request_timestamp.timestamp() == STAMP.timestamp()


def test_python_diameter_reads_our_cca() -> None:
    request = decode_ccr(decode_message(encode_message(ccr_message(hop_by_hop=3)), lazy=True))
    answer = CreditControlAnswer(
        result_code=2001,
        mscc=(
            MsccAnswer(
                rating_group=100,
                result_code=2001,
                granted=GrantedUnits(cc_time=60),
                validity_time=120,
                final_unit_indication=FinalUnitIndication(FinalUnitAction.TERMINATE),
            ),
            MsccAnswer(rating_group=200, result_code=ResultCode.DIAMETER_CREDIT_LIMIT_REACHED),
        ),
        cost_information=CostInformation(UnitValue(125, -4), 978, "minute"),
    )
    theirs = PMessage.from_bytes(encode_message(encode_cca(request, answer, OCS)))
    assert isinstance(theirs, PCreditControlAnswer)
    assert theirs.header.hop_by_hop_identifier == 3
    assert theirs.result_code == 2001
    assert theirs.origin_host == b"ocs.example.net"
    assert theirs.cc_request_number == 1
    first, second = theirs.multiple_services_credit_control
    assert first.granted_service_unit.cc_time == 60
    assert first.final_unit_indication.final_unit_action == 0
    assert (first.validity_time, second.result_code) == (120, 4012)
    assert theirs.cost_information.unit_value.value_digits == 125
    assert theirs.cost_information.unit_value.exponent == -4


# --- byte for byte -----------------------------------------------------------------------


def to_python_diameter(avp: Avp) -> PAvp:
    """python-diameter's encoding of the same AVP (same value, same flags)."""
    definition = lookup(avp.code, avp.vendor_id)
    mandatory = bool(avp.flags & 0x40)
    if definition is None or type(avp.value) is bytes:
        return PAvp(avp.code, avp.vendor_id, avp.value, avp.flags)  # type: ignore[arg-type]
    value = avp.value
    if type(value) is tuple:
        value = [to_python_diameter(member) for member in value]
    elif definition.data_type.value in ("DiameterIdentity", "OctetString"):
        value = value.encode() if isinstance(value, str) else value
    elif isinstance(value, IPv4Address):
        value = str(value)
    return PAvp.new(avp.code, avp.vendor_id, value=value, is_mandatory=mandatory)


def python_diameter_bytes(message: Message) -> bytes:
    head = MessageHeader(
        command_code=message.command_code,
        application_id=message.application_id,
        hop_by_hop_identifier=message.hop_by_hop_id,
        end_to_end_identifier=message.end_to_end_id,
        command_flags=message.flags,
    )
    return PMessage(head, [to_python_diameter(avp) for avp in message.avps]).as_bytes()


def cca_message() -> Message:
    request = decode_ccr(decode_message(encode_message(ccr_message(hop_by_hop=3)), lazy=True))
    answer = CreditControlAnswer(
        result_code=2001,
        mscc=(
            MsccAnswer(
                rating_group=100,
                service_identifiers=(1, 2),
                result_code=2001,
                granted=GrantedUnits(cc_time=60, cc_total_octets=10, tariff_time_change=STAMP),
                validity_time=120,
                final_unit_indication=FinalUnitIndication(
                    FinalUnitAction.RESTRICT_ACCESS, filter_ids=("topup",)
                ),
                time_quota_threshold=10,
            ),
        ),
        cost_information=CostInformation(UnitValue(-5, 2), 840),
        error_message="ok",
    )
    return encode_cca(request, answer, OCS)


def our_cer() -> bytes:
    client = Peer(client_config(), PeerRole.INITIATOR, "192.0.2.10", rng=random.Random(2))
    client.start(0.0)
    return client.data_to_send()


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(ccr_message(hop_by_hop=1, end_to_end=2), id="ccr-u"),
        pytest.param(cca_message(), id="cca"),
        pytest.param(decode_message(our_cer()), id="cer"),
        pytest.param(decode_message(pd_ccr(3, 2)), id="python-diameter-ccr-t"),
    ],
)
def test_same_avps_same_octets(message: Message) -> None:
    assert encode_message(message) == python_diameter_bytes(message)
