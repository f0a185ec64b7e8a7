"""Gy/Ro views: CCR decoding and validation, every tolerance switch both ways, CCA encoding,
RAR/ASR and their answers."""

import struct
from dataclasses import FrozenInstanceError, fields, replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from diameter_testkit import OCS, ccr_avps, ccr_message

from protocols.diameter.avp import Avp, grouped, new_avp
from protocols.diameter.constants import (
    AvpCode,
    CcRequestType,
    CcSessionFailover,
    CheckBalanceResult,
    CreditControlFailureHandling,
    FinalUnitAction,
    MultipleServicesIndicator,
    NodeFunctionality,
    ReAuthRequestType,
    RedirectAddressType,
    ReportingReason,
    RequestedAction,
    ResultCode,
    RoleOfNode,
    SubscriptionIdType,
    TariffChangeUsage,
    TerminationCause,
    TgppAvpCode,
    VendorId,
)
from protocols.diameter.dictionary import lookup
from protocols.diameter.errors import DiameterError
from protocols.diameter.gy import (
    DEFAULT_GY_OPTIONS,
    STRICT_GY_OPTIONS,
    AbortSessionRequest,
    CostInformation,
    CreditControlAnswer,
    CreditControlRequest,
    EventType,
    FinalUnitIndication,
    GrantedUnits,
    GyOptions,
    ImsInformation,
    Money,
    MsccAnswer,
    MsccRequest,
    ReAuthRequest,
    RedirectServer,
    RequestedUnits,
    ServiceContext,
    SessionAnswer,
    SubscriptionId,
    UnitValue,
    UsedUnits,
    decode_asr,
    decode_cca,
    decode_ccr,
    decode_rar,
    decode_session_answer,
    encode_asr,
    encode_cca,
    encode_ccr,
    encode_rar,
    encode_session_answer,
    parse_service_context_id,
)
from protocols.diameter.message import (
    CodecOptions,
    Message,
    answer_for_error,
    decode_message,
    encode_message,
)

TGPP = VendorId.TGPP
STAMP = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def wire(message: Message, lazy: bool = True) -> Message:
    """The message as the peer hands it over: decoded from octets."""
    return decode_message(encode_message(message), lazy=lazy)


def ccr_with(avps: list[Avp]) -> Message:
    return wire(ccr_message().replace(avps=tuple(avps)))


def without(code: int, vendor_id: int = 0) -> list[Avp]:
    return [avp for avp in ccr_avps() if (avp.code, avp.vendor_id) != (code, vendor_id)]


def replaced(code: int, new: Avp | list[Avp]) -> list[Avp]:
    out: list[Avp] = []
    for avp in ccr_avps():
        if avp.code == code and avp.vendor_id == 0:
            out.extend(new if isinstance(new, list) else [new])
        else:
            out.append(avp)
    return out


def error_of(message: Message, options: GyOptions = DEFAULT_GY_OPTIONS) -> DiameterError:
    with pytest.raises(DiameterError) as caught:
        decode_ccr(message, options)
    return caught.value


# --- decoding ----------------------------------------------------------------------------


def test_voice_ccr_update() -> None:
    ccr = decode_ccr(wire(ccr_message(hop_by_hop=3, end_to_end=4)))
    assert ccr == CreditControlRequest(
        session_id="scscf.ims.example.net;1700000000;42",
        origin_host="scscf.ims.example.net",
        origin_realm="ims.example.net",
        destination_realm="example.net",
        service_context_id="32260@3gpp.org",
        request_type=CcRequestType.UPDATE_REQUEST,
        request_number=1,
        auth_application_id=4,
        service_context=ServiceContext("32260", "3gpp.org"),
        event_timestamp=STAMP,
        subscription_ids=(SubscriptionId(SubscriptionIdType.END_USER_E164, "441234567890"),),
        multiple_services_indicator=MultipleServicesIndicator.MULTIPLE_SERVICES_SUPPORTED,
        mscc=(
            MsccRequest(
                rating_group=100,
                requested=RequestedUnits(cc_time=60),
                used=(UsedUnits(cc_time=57, reporting_reason=ReportingReason.QUOTA_EXHAUSTED),),
            ),
        ),
        ims=ImsInformation(
            event_type=EventType(sip_method="INVITE"),
            role_of_node=RoleOfNode.ORIGINATING_ROLE,
            node_functionality=NodeFunctionality.S_CSCF,
            calling_party_addresses=("sip:+441234567890@ims.example.net",),
            called_party_address="tel:+33123456789",
            ims_charging_identifier="icid-0001",
        ),
    )
    assert ccr.tolerated == ()
    assert ccr.message is not None and ccr.message.hop_by_hop_id == 3
    assert ccr.subscription(SubscriptionIdType.END_USER_E164) == "441234567890"
    assert ccr.subscription(SubscriptionIdType.END_USER_IMSI) is None
    assert (
        ccr.ims is not None and ccr.ims.calling_party_address == ccr.ims.calling_party_addresses[0]
    )
    assert ccr.ims.requested_party_address is None
    assert not ccr.is_event


FULL = CreditControlRequest(
    session_id="s;1",
    origin_host="scscf.ims.example.net",
    origin_realm="ims.example.net",
    destination_realm="example.net",
    service_context_id="ext.01.208.12.32260@3gpp.org",
    request_type=CcRequestType.TERMINATION_REQUEST,
    request_number=7,
    destination_host="ocs.example.net",
    service_context=ServiceContext("32260", "3gpp.org", "12", "208", "01", "ext"),
    event_timestamp=STAMP,
    subscription_ids=(
        SubscriptionId(SubscriptionIdType.END_USER_SIP_URI, "sip:alice@example.net"),
        SubscriptionId(SubscriptionIdType.END_USER_IMSI, "208011234567890"),
        SubscriptionId(SubscriptionIdType.END_USER_NAI, "alice@example.net"),
        SubscriptionId(SubscriptionIdType.END_USER_PRIVATE, "account-17"),
    ),
    user_name="alice",
    origin_state_id=99,
    termination_cause=TerminationCause.DIAMETER_LOGOUT,
    multiple_services_indicator=MultipleServicesIndicator.MULTIPLE_SERVICES_SUPPORTED,
    mscc=(
        MsccRequest(
            rating_group=100,
            service_identifiers=(1, 2),
            requested=RequestedUnits(),
            used=(
                UsedUnits(
                    cc_time=30,
                    cc_total_octets=10,
                    cc_input_octets=4,
                    cc_output_octets=6,
                    cc_service_specific_units=1,
                    cc_money=Money(UnitValue(125, -2), 978),
                    tariff_change_usage=TariffChangeUsage.UNIT_BEFORE_TARIFF_CHANGE,
                    reporting_reason=ReportingReason.FINAL,
                    event_charging_timestamps=(STAMP,),
                ),
                UsedUnits(
                    cc_time=5, tariff_change_usage=TariffChangeUsage.UNIT_AFTER_TARIFF_CHANGE
                ),
            ),
            reporting_reason=ReportingReason.FINAL,
            trigger_types=(1, 2),
        ),
        MsccRequest(rating_group=200, requested=RequestedUnits(cc_service_specific_units=3)),
    ),
    ims=ImsInformation(
        event_type=EventType(sip_method="BYE", event="presence", expires=60),
        role_of_node=RoleOfNode.TERMINATING_ROLE,
        node_functionality=NodeFunctionality.AS,
        user_session_id="call-1@host",
        calling_party_addresses=("tel:+441234567890", "sip:alice@example.net"),
        called_party_address="tel:+33123456789",
        requested_party_addresses=("tel:0123456789",),
        called_asserted_identities=("tel:+33123456780",),
        ims_charging_identifier="icid",
        sip_request_timestamp=STAMP,
        sip_response_timestamp=STAMP,
        originating_ioi="orig.example",
        terminating_ioi="term.example",
        access_network_information=(b"3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=2080112",),
        cause_code=-1,
        alternate_charged_party_address="tel:+1",
        number_portability_routing_information="rn=123",
        carrier_select_routing_information="cic=456",
        ims_visited_network_identifier="visited.example",
    ),
)


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(FULL, id="ccr-t-every-field"),
        pytest.param(
            replace(
                FULL,
                request_type=CcRequestType.EVENT_REQUEST,
                requested_action=RequestedAction.CHECK_BALANCE,
                mscc=(),
                termination_cause=None,
                requested=RequestedUnits(cc_money=Money(UnitValue(5), 978)),
                used=(UsedUnits(cc_service_specific_units=1),),
                service_identifier=4,
            ),
            id="ccr-e-top-level-units",
        ),
        pytest.param(
            replace(
                FULL,
                request_type=CcRequestType.INITIAL_REQUEST,
                request_number=0,
                ims=None,
                service_context_id="32251@3gpp.org",
                service_context=ServiceContext("32251", "3gpp.org"),
            ),
            id="ccr-i-ps-context",
        ),
    ],
)
def test_encode_ccr_and_decode_ccr_agree(view: CreditControlRequest) -> None:
    decoded = decode_ccr(wire(encode_ccr(view)))
    assert replace(decoded, tolerated=()) == view
    if view.service_context_id.startswith("32251"):
        assert decoded.tolerated == (
            "Service-Context-Id '32251@3gpp.org' is not a known 3GPP context",
        )
    else:
        assert decoded.tolerated == ()


def test_eager_and_lazy_messages_give_the_same_view() -> None:
    lazy = decode_ccr(wire(ccr_message(), lazy=True))
    eager = decode_ccr(wire(ccr_message(), lazy=False))
    built = decode_ccr(ccr_message())  # an in-memory message is encoded first
    assert lazy == eager == built


def test_decoded_views_are_frozen_like_constructed_ones() -> None:
    # The fast path builds the views without their __init__: they must still be the same
    # immutable, hashable values.
    decoded = decode_ccr(wire(encode_ccr(FULL)))
    assert decoded.mscc[0].used[0] == FULL.mscc[0].used[0]
    assert hash(replace(decoded, tolerated=(), message=None)) == hash(replace(FULL, message=None))
    views: list[object] = [
        decoded,
        decoded.mscc[0],
        decoded.mscc[0].requested,
        decoded.mscc[0].used[0],
        decoded.subscription_ids[0],
        decoded.ims,
        decoded.ims.event_type if decoded.ims else None,
    ]
    for view in views:
        with pytest.raises(FrozenInstanceError):
            setattr(view, fields(view)[0].name, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param("32260@3gpp.org", ServiceContext("32260", "3gpp.org"), id="bare"),
        pytest.param("8.32260@3gpp.org", ServiceContext("32260", "3gpp.org", "8"), id="release"),
        pytest.param(
            "ext.001.208.12.32260@3gpp.org",
            ServiceContext("32260", "3gpp.org", "12", "208", "001", "ext"),
            id="ts-32299-form",
        ),
        pytest.param("voice@operator.net", ServiceContext("voice", "operator.net"), id="other"),
        pytest.param("nocontext", None, id="no-at"),
        pytest.param("@3gpp.org", None, id="empty-local"),
    ],
)
def test_parse_service_context_id(text: str, parsed: ServiceContext | None) -> None:
    assert parse_service_context_id(text) == parsed


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "failed"),
    [
        pytest.param(AvpCode.SESSION_ID, Avp(263, 0, 0x40, ""), id="Session-Id"),
        pytest.param(AvpCode.ORIGIN_HOST, Avp(264, 0, 0x40, ""), id="Origin-Host"),
        pytest.param(AvpCode.ORIGIN_REALM, Avp(296, 0, 0x40, ""), id="Origin-Realm"),
        pytest.param(AvpCode.DESTINATION_REALM, Avp(283, 0, 0x40, ""), id="Destination-Realm"),
        pytest.param(AvpCode.AUTH_APPLICATION_ID, Avp(258, 0, 0x40, 0), id="Auth-Application-Id"),
        pytest.param(AvpCode.SERVICE_CONTEXT_ID, Avp(461, 0, 0x40, ""), id="Service-Context-Id"),
        pytest.param(AvpCode.CC_REQUEST_TYPE, Avp(416, 0, 0x40, 0), id="CC-Request-Type"),
        pytest.param(AvpCode.CC_REQUEST_NUMBER, Avp(415, 0, 0x40, 0), id="CC-Request-Number"),
    ],
)
def test_missing_mandatory_avp_is_5005_with_a_zeroed_failed_avp(code: int, failed: Avp) -> None:
    error = error_of(ccr_with(without(code)))
    assert error.result_code == ResultCode.DIAMETER_MISSING_AVP
    # The Failed-AVP travels in the answer; decode it back to compare typed values.
    answer = decode_message(encode_message(answer_for_error(ccr_message(), error, OCS)))
    failed_avp = answer.find(AvpCode.FAILED_AVP)
    assert failed_avp is not None
    assert failed_avp.avps == (failed,)
    assert lookup(code) is not None


@pytest.mark.parametrize(
    ("avp", "code"),
    [
        pytest.param(new_avp(AvpCode.CC_REQUEST_TYPE, 9), AvpCode.CC_REQUEST_TYPE, id="type"),
        pytest.param(new_avp(AvpCode.CC_REQUEST_TYPE, 0), AvpCode.CC_REQUEST_TYPE, id="type-0"),
    ],
)
def test_bad_request_type_is_5004(avp: Avp, code: int) -> None:
    error = error_of(ccr_with(replaced(code, avp)))
    assert error.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    assert error.failed_avps == (avp,)


def test_bad_requested_action_is_5004() -> None:
    avps = [*replaced(AvpCode.CC_REQUEST_TYPE, new_avp(AvpCode.CC_REQUEST_TYPE, 4))]
    avps.append(new_avp(AvpCode.REQUESTED_ACTION, 7))
    error = error_of(ccr_with(avps))
    assert error.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    assert error.failed_avps == (new_avp(AvpCode.REQUESTED_ACTION, 7),)


def test_other_application_is_3007() -> None:
    error = error_of(ccr_with(replaced(AvpCode.AUTH_APPLICATION_ID, new_avp(258, 16777238))))
    assert error.result_code == ResultCode.DIAMETER_APPLICATION_UNSUPPORTED
    assert error.failed_avps == (new_avp(258, 16777238),)
    header = error_of(wire(ccr_message().replace(application_id=16777238)))
    assert header.result_code == ResultCode.DIAMETER_APPLICATION_UNSUPPORTED


def test_not_a_ccr_is_3001() -> None:
    answer = ccr_message().replace(flags=0x40)
    assert error_of(answer).result_code == ResultCode.DIAMETER_COMMAND_UNSUPPORTED


def test_subscription_id_without_data_is_5005_inside_its_parent() -> None:
    broken = grouped(AvpCode.SUBSCRIPTION_ID, [new_avp(AvpCode.SUBSCRIPTION_ID_TYPE, 0)])
    error = error_of(ccr_with(replaced(AvpCode.SUBSCRIPTION_ID, broken)))
    assert error.result_code == ResultCode.DIAMETER_MISSING_AVP
    assert error.failed_avps == (Avp(443, 0, 0x40, (Avp(444, 0, 0x40, b""),)),)
    no_type = grouped(AvpCode.SUBSCRIPTION_ID, [new_avp(AvpCode.SUBSCRIPTION_ID_DATA, "1")])
    error = error_of(ccr_with(replaced(AvpCode.SUBSCRIPTION_ID, no_type)))
    assert error.failed_avps == (Avp(443, 0, 0x40, (Avp(450, 0, 0x40, bytes(4)),)),)


def test_malformed_avp_is_reported_by_the_codec() -> None:
    message = ccr_message()
    octets = bytearray(encode_message(message))
    at = octets.find(struct.pack("!II", AvpCode.CC_TIME, (0x40 << 24) | 12) + struct.pack("!I", 57))
    octets[at + 4 : at + 8] = struct.pack("!I", (0x40 << 24) | 10)
    error = error_of(decode_message(bytes(octets), lazy=True))
    assert error.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    (mscc,) = error.failed_avps
    assert mscc.code == AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL
    assert mscc.avps[0].code == AvpCode.USED_SERVICE_UNIT
    assert mscc.avps[0].avps == (Avp(AvpCode.CC_TIME, 0, 0x40, b"\x00\x00"),)


def test_grouped_without_last_padding_goes_through_the_codec() -> None:
    octets = encode_message(ccr_message(session_id="odd"))
    # Rebuild the message with a Subscription-Id whose length leaves out its last padding.
    data = struct.pack("!II", AvpCode.SUBSCRIPTION_ID_DATA, (0x40 << 24) | 11) + b"441\x00"
    kind = struct.pack("!III", AvpCode.SUBSCRIPTION_ID_TYPE, (0x40 << 24) | 12, 0)
    body = kind + data
    subscription = struct.pack("!II", AvpCode.SUBSCRIPTION_ID, (0x40 << 24) | (8 + len(body) - 1))
    octets += subscription + body
    octets = struct.pack("!I", (1 << 24) | len(octets)) + octets[4:]
    ccr = decode_ccr(decode_message(octets, lazy=True))
    assert ccr.subscription_ids[-1] == SubscriptionId(SubscriptionIdType.END_USER_E164, "441")
    assert "grouped AVP length excludes the padding of its last member" in ccr.tolerated


# --- tolerance switches ------------------------------------------------------------------


def vsai_only() -> list[Avp]:
    vsai = grouped(
        AvpCode.VENDOR_SPECIFIC_APPLICATION_ID,
        [new_avp(AvpCode.VENDOR_ID, 10415), new_avp(AvpCode.AUTH_APPLICATION_ID, 4)],
    )
    return [vsai if avp.code == AvpCode.AUTH_APPLICATION_ID else avp for avp in ccr_avps()]


def unknown_mandatory() -> list[Avp]:
    return [*ccr_avps(), Avp(4711, 9999, 0xC0, b"\x01\x02")]


def repeated_number() -> list[Avp]:
    return [*ccr_avps(), new_avp(AvpCode.CC_REQUEST_NUMBER, 9)]


def event_without_action() -> list[Avp]:
    return replaced(AvpCode.CC_REQUEST_TYPE, new_avp(AvpCode.CC_REQUEST_TYPE, 4))


def ietf_sip_method() -> list[Avp]:
    avps = ccr_avps()
    service = avps[-1]
    ims = service.avps[0]
    members = tuple(
        grouped(TgppAvpCode.EVENT_TYPE, [new_avp(AvpCode.SIP_METHOD, "INVITE")], TGPP)
        if m.code == TgppAvpCode.EVENT_TYPE
        else m
        for m in ims.avps
    )
    avps[-1] = service._replace(value=(ims._replace(value=members),))
    return avps


def unknown_role() -> list[Avp]:
    avps = ccr_avps()
    service = avps[-1]
    ims = service.avps[0]
    members = tuple(
        new_avp(TgppAvpCode.ROLE_OF_NODE, 9, TGPP) if m.code == TgppAvpCode.ROLE_OF_NODE else m
        for m in ims.avps
    )
    avps[-1] = service._replace(value=(ims._replace(value=members),))
    return avps


@pytest.mark.parametrize(
    ("avps", "note", "switch", "result_code"),
    [
        pytest.param(
            replaced(AvpCode.SERVICE_CONTEXT_ID, new_avp(461, "voice@operator.net")),
            "Service-Context-Id 'voice@operator.net' is not a known 3GPP context",
            "accept_unknown_service_context",
            ResultCode.DIAMETER_INVALID_AVP_VALUE,
            id="service-context",
        ),
        pytest.param(
            vsai_only(),
            "Auth-Application-Id given only in Vendor-Specific-Application-Id",
            "application_id_in_vendor_specific",
            ResultCode.DIAMETER_MISSING_AVP,
            id="application-in-vsai",
        ),
        pytest.param(
            repeated_number(),
            "CC-Request-Number repeated, the first one was used",
            "first_of_repeated",
            ResultCode.DIAMETER_AVP_OCCURS_TOO_MANY_TIMES,
            id="repeated",
        ),
        pytest.param(
            unknown_mandatory(),
            "unknown mandatory AVP 4711/9999 ignored",
            "ignore_unknown_mandatory",
            ResultCode.DIAMETER_AVP_UNSUPPORTED,
            id="unknown-mandatory",
        ),
        pytest.param(
            without(TgppAvpCode.SERVICE_INFORMATION, TGPP),
            "IMS-Information missing",
            "allow_missing_ims_information",
            ResultCode.DIAMETER_MISSING_AVP,
            id="no-ims-information",
        ),
        pytest.param(
            event_without_action(),
            "EVENT_REQUEST without Requested-Action read as DIRECT_DEBITING",
            "default_requested_action",
            ResultCode.DIAMETER_MISSING_AVP,
            id="event-without-action",
        ),
        pytest.param(
            ietf_sip_method(),
            "Event-Type has the RFC 4740 SIP-Method (393), read as 3GPP's",
            "accept_ietf_sip_method",
            ResultCode.DIAMETER_AVP_NOT_ALLOWED,
            id="ietf-sip-method",
        ),
        pytest.param(
            unknown_role(),
            "Role-Of-Node value 9 unknown, kept as a number",
            "accept_unknown_enum_values",
            ResultCode.DIAMETER_INVALID_AVP_VALUE,
            id="unknown-enum",
        ),
    ],
)
def test_tolerance_switch(avps: list[Avp], note: str, switch: str, result_code: int) -> None:
    message = ccr_with(avps)
    assert note in decode_ccr(message).tolerated
    strict = replace(DEFAULT_GY_OPTIONS, **{switch: False})
    assert error_of(message, strict).result_code == result_code
    assert error_of(message, STRICT_GY_OPTIONS).result_code == result_code


def test_tolerated_values_are_what_was_accepted() -> None:
    event = decode_ccr(ccr_with(event_without_action()))
    assert event.requested_action is RequestedAction.DIRECT_DEBITING
    assert event.is_event
    repeated = decode_ccr(ccr_with(repeated_number()))
    assert repeated.request_number == 1
    role = decode_ccr(ccr_with(unknown_role()))
    assert role.ims is not None and role.ims.role_of_node == 9
    method = decode_ccr(ccr_with(ietf_sip_method()))
    assert method.ims is not None and method.ims.event_type == EventType(sip_method="INVITE")


def test_strict_failed_avps_point_at_the_culprit() -> None:
    repeated = error_of(ccr_with(repeated_number()), STRICT_GY_OPTIONS)
    assert repeated.failed_avps == (new_avp(AvpCode.CC_REQUEST_NUMBER, 9),)
    role = error_of(ccr_with(unknown_role()), STRICT_GY_OPTIONS)
    (service,) = role.failed_avps
    assert service.code == TgppAvpCode.SERVICE_INFORMATION
    assert service.avps[0].code == TgppAvpCode.IMS_INFORMATION
    assert service.avps[0].avps == (new_avp(TgppAvpCode.ROLE_OF_NODE, 9, TGPP),)
    ims = error_of(ccr_with(without(TgppAvpCode.SERVICE_INFORMATION, TGPP)), STRICT_GY_OPTIONS)
    assert ims.failed_avps == (Avp(873, TGPP, 0xC0, (Avp(876, TGPP, 0xC0, ()),)),)


def test_codec_notes_reach_the_view() -> None:
    eager = decode_message(encode_message(ccr_message().replace(avps=tuple(unknown_mandatory()))))
    ccr = decode_ccr(eager)
    assert "unknown mandatory AVP 4711/9999 kept" in ccr.tolerated
    strict_codec = GyOptions(codec=CodecOptions(reject_unknown_mandatory=True))
    lazy = ccr_with(unknown_mandatory())
    assert error_of(lazy, strict_codec).result_code == ResultCode.DIAMETER_AVP_UNSUPPORTED


def test_subscription_id_inside_service_information() -> None:
    avps = ccr_avps()
    service = avps[-1]
    extra = grouped(
        AvpCode.SUBSCRIPTION_ID,
        [new_avp(AvpCode.SUBSCRIPTION_ID_TYPE, 3), new_avp(AvpCode.SUBSCRIPTION_ID_DATA, "a@b")],
    )
    avps[-1] = service._replace(value=(extra, *service.avps))
    ccr = decode_ccr(ccr_with(avps))
    assert ccr.subscription_ids[-1] == SubscriptionId(SubscriptionIdType.END_USER_NAI, "a@b")


# --- CCA ---------------------------------------------------------------------------------

ANSWER = CreditControlAnswer(
    result_code=ResultCode.DIAMETER_SUCCESS,
    mscc=(
        MsccAnswer(
            rating_group=100,
            service_identifiers=(1,),
            result_code=ResultCode.DIAMETER_SUCCESS,
            granted=GrantedUnits(cc_time=60, tariff_time_change=STAMP),
            validity_time=120,
            final_unit_indication=FinalUnitIndication(FinalUnitAction.TERMINATE),
            time_quota_threshold=10,
            volume_quota_threshold=1000,
            quota_holding_time=30,
        ),
        MsccAnswer(
            rating_group=200,
            result_code=ResultCode.DIAMETER_CREDIT_LIMIT_REACHED,
        ),
        MsccAnswer(
            rating_group=300,
            result_code=ResultCode.DIAMETER_SUCCESS,
            granted=GrantedUnits(cc_total_octets=2**33, cc_money=Money(UnitValue(5, -1), 978)),
            final_unit_indication=FinalUnitIndication(
                FinalUnitAction.REDIRECT,
                redirect_server=RedirectServer(
                    RedirectAddressType.SIP_URI, "sip:topup@example.net"
                ),
            ),
        ),
        MsccAnswer(
            rating_group=400,
            final_unit_indication=FinalUnitIndication(
                FinalUnitAction.RESTRICT_ACCESS,
                restriction_filter_rules=("permit out ip from any to 10.0.0.1",),
                filter_ids=("topup-only",),
            ),
        ),
    ),
    cost_information=CostInformation(UnitValue.from_decimal(Decimal("0.0125")), 978, "minute"),
    credit_control_failure_handling=CreditControlFailureHandling.RETRY_AND_TERMINATE,
    cc_session_failover=CcSessionFailover.FAILOVER_SUPPORTED,
)


def test_cca_round_trip_and_layout() -> None:
    request = decode_ccr(wire(ccr_message(hop_by_hop=11, end_to_end=12)))
    cca = encode_cca(request, ANSWER, OCS)
    assert (cca.command_code, cca.flags, cca.application_id) == (272, 0x40, 4)
    assert (cca.hop_by_hop_id, cca.end_to_end_id) == (11, 12)
    assert [avp.code for avp in cca.avps[:7]] == [
        AvpCode.SESSION_ID,
        AvpCode.RESULT_CODE,
        AvpCode.ORIGIN_HOST,
        AvpCode.ORIGIN_REALM,
        AvpCode.AUTH_APPLICATION_ID,
        AvpCode.CC_REQUEST_TYPE,
        AvpCode.CC_REQUEST_NUMBER,
    ]
    decoded = decode_message(encode_message(cca))
    assert decoded == cca
    assert decode_cca(decoded) == ANSWER
    assert decoded.session_id == request.session_id
    assert decoded.find(AvpCode.CC_REQUEST_TYPE) == new_avp(AvpCode.CC_REQUEST_TYPE, 2)


def test_cca_flags_follow_the_dictionary() -> None:
    request = decode_ccr(wire(ccr_message()))
    cca = encode_cca(request, ANSWER, OCS)

    def check(avps: tuple[Avp, ...]) -> int:
        count = 0
        for avp in avps:
            definition = lookup(avp.code, avp.vendor_id)
            assert definition is not None, avp
            assert avp.flags == definition.flags_to_send, definition.name
            count += 1 + check(avp.avps)
        return count

    assert check(cca.avps) > 40


def test_cost_information_is_exact() -> None:
    cost = ANSWER.cost_information
    assert cost is not None
    assert cost.unit_value == UnitValue(125, -4)
    assert cost.unit_value.to_decimal() == Decimal("0.0125")


@pytest.mark.parametrize(
    ("amount", "unit_value"),
    [
        pytest.param(Decimal("0"), UnitValue(0, 0), id="zero"),
        pytest.param(Decimal("12.50"), UnitValue(125, -1), id="trailing-zero"),
        pytest.param(Decimal("-3.001"), UnitValue(-3001, -3), id="negative"),
        pytest.param(Decimal("1E+3"), UnitValue(1, 3), id="positive-exponent"),
    ],
)
def test_unit_value_from_decimal(amount: Decimal, unit_value: UnitValue) -> None:
    assert UnitValue.from_decimal(amount) == unit_value
    assert unit_value.to_decimal() == amount
    with pytest.raises(ValueError):
        UnitValue.from_decimal(Decimal("NaN"))


def test_cca_for_a_balance_check_and_errors() -> None:
    request = decode_ccr(ccr_with(event_without_action()))
    failed = (new_avp(AvpCode.SUBSCRIPTION_ID, ()),)
    answer = CreditControlAnswer(
        result_code=ResultCode.DIAMETER_USER_UNKNOWN,
        check_balance_result=CheckBalanceResult.NO_CREDIT,
        granted=GrantedUnits(cc_service_specific_units=1),
        validity_time=30,
        final_unit_indication=FinalUnitIndication(FinalUnitAction.TERMINATE),
        error_message="no such subscriber",
        failed_avps=failed,
        extra_avps=(Avp(5000, 99999, 0x80, b"route:carrier-a"),),
    )
    cca = decode_message(encode_message(encode_cca(request, answer, OCS)))
    assert cca.find(5000, 99999) == Avp(5000, 99999, 0x80, b"route:carrier-a")
    decoded = decode_cca(cca)
    assert decoded == replace(answer, extra_avps=())
    assert cca.find(AvpCode.CC_REQUEST_TYPE) == new_avp(AvpCode.CC_REQUEST_TYPE, 4)


def test_cca_echoes_proxy_info_last() -> None:
    proxy = grouped(
        AvpCode.PROXY_INFO,
        [new_avp(AvpCode.PROXY_HOST, "dra.example.net"), new_avp(AvpCode.PROXY_STATE, b"\x07")],
    )
    request = decode_ccr(ccr_with([*ccr_avps(), proxy]))
    cca = decode_message(encode_message(encode_cca(request, ANSWER, OCS)))
    assert cca.avps[-1] == proxy


def test_mscc_extra_avps_hook() -> None:
    route = Avp(6000, 99999, 0x80, b"carrier-b")
    answer = CreditControlAnswer(2001, mscc=(MsccAnswer(rating_group=1, extra_avps=(route,)),))
    request = decode_ccr(wire(ccr_message()))
    decoded = decode_cca(decode_message(encode_message(encode_cca(request, answer, OCS))))
    assert decoded.mscc[0].extra_avps == (route,)


def test_encode_cca_without_a_source_message() -> None:
    view = decode_ccr(wire(ccr_message()))
    detached = replace(view, message=None)
    cca = encode_cca(detached, CreditControlAnswer(2001), OCS)
    assert (cca.hop_by_hop_id, cca.flags) == (0, 0x40)


# --- RAR / ASR ---------------------------------------------------------------------------


def test_rar_round_trip_and_answer() -> None:
    rar = ReAuthRequest.build(
        OCS, "s;1", "scscf.ims.example.net", "ims.example.net", rating_group=100
    )
    assert rar.re_auth_request_type is ReAuthRequestType.AUTHORIZE_ONLY
    message = encode_rar(rar)
    assert (message.command_code, message.flags, message.application_id) == (258, 0xC0, 4)
    received = wire(message)
    assert decode_rar(received) == rar
    raa = encode_session_answer(received, OCS, ResultCode.DIAMETER_SUCCESS)
    assert decode_session_answer(wire(raa)) == SessionAnswer(
        "s;1", 2001, "ocs.example.net", "example.net"
    )


def test_asr_round_trip_and_error_answer() -> None:
    asr = AbortSessionRequest.build(OCS, "s;2", "scscf.ims.example.net", "ims.example.net", "bob")
    received = wire(encode_asr(asr))
    assert decode_asr(received) == asr
    error = DiameterError(ResultCode.DIAMETER_UNKNOWN_SESSION_ID, "gone", (new_avp(263, "s;2"),))
    asa = encode_session_answer(received, OCS, error.result_code, error)
    decoded = decode_session_answer(wire(asa))
    assert decoded.result_code == ResultCode.DIAMETER_UNKNOWN_SESSION_ID
    assert decoded.error_message == "gone"
    assert decoded.failed_avps == (new_avp(263, "s;2"),)


def test_rar_validation() -> None:
    rar = encode_rar(ReAuthRequest.build(OCS, "s", "h", "r"))
    no_host = rar.replace(
        avps=tuple(avp for avp in rar.avps if avp.code != AvpCode.DESTINATION_HOST)
    )
    with pytest.raises(DiameterError) as caught:
        decode_rar(wire(no_host))
    assert caught.value.result_code == ResultCode.DIAMETER_MISSING_AVP
    bad_type = rar.replace(
        avps=tuple(
            new_avp(AvpCode.RE_AUTH_REQUEST_TYPE, 5)
            if avp.code == AvpCode.RE_AUTH_REQUEST_TYPE
            else avp
            for avp in rar.avps
        )
    )
    with pytest.raises(DiameterError) as caught:
        decode_rar(wire(bad_type))
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    with pytest.raises(DiameterError):
        decode_rar(ccr_message())
    with pytest.raises(DiameterError):
        decode_asr(ccr_message())
