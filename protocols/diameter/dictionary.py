"""The AVP dictionary: code, vendor, name, data type and M/V/P flag rules of every AVP we know.

Where the data comes from
-------------------------
- Base protocol AVPs: RFC 6733 §4.5 (AVP table, "MUST"/"MUST NOT" columns); the P bit is
  reserved by RFC 6733 §4.1 ("SHOULD be set to 0") and marked MAY except where RFC 3588 §4.5
  said MUST NOT.  Several RADIUS-derived AVPs Diameter applications reuse (User-Name, Class,
  Session-Timeout, Filter-Id, Called/Calling-Station-Id, Framed-IP-Address) follow RFC 7155
  §4.4 and §10.
- Credit control AVPs: RFC 4006 §8 (the "AVP Flag rules" table) and RFC 8506 §8 for the
  AVPs it added (Subscription-Id-Extension 659-664, User-Equipment-Info-Extension 653-658,
  Redirect-Server-Extension 665-668, QoS-Final-Unit-Indication 669), which we mark M-bit MAY:
  they are sent without it and accepted either way.
- 3GPP AVPs (Vendor-Id 10415): 3GPP TS 32.299 §7.2 table 7.2.0.1 (Ro/Rf charging AVPs of IMS,
  SMS and MMTel) and TS 29.061 §16.4.7 for the 3GPP-* AVPs (V MUST, M MUST NOT).
- Codes, names and data types were cross-checked against the dictionary of python-diameter
  (MIT licence, https://github.com/mensonen/python-diameter) and go-diameter's XML
  dictionaries; the flag rules are taken from the specification tables, which python-diameter
  does not carry.

Rules table format: every row is ``(code, name, data type, must, may, must_not[, enum])``
with the flag letters of the specification tables.  The table is data; nothing else in the
package spells an AVP number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum

from protocols.diameter import constants as c
from protocols.diameter.constants import AvpCode as A
from protocols.diameter.constants import AvpFlag, VendorId
from protocols.diameter.constants import TgppAvpCode as T
from protocols.diameter.datatypes import DataType


class FlagRule(Enum):
    """What a definition says about one AVP flag bit."""

    MUST = "must"
    MAY = "may"
    MUST_NOT = "must-not"


@dataclass(frozen=True, slots=True)
class AvpDefinition:
    """One dictionary entry."""

    code: int
    vendor_id: int
    name: str
    data_type: DataType
    mandatory: FlagRule
    vendor: FlagRule
    protected: FlagRule
    enum: type[IntEnum] | None = None

    @property
    def key(self) -> int:
        """The lookup key (:func:`avp_key`)."""
        return avp_key(self.code, self.vendor_id)

    @property
    def flags_to_send(self) -> int:
        """The AVP flags we set when we send this AVP: M iff MUST, V iff vendor-specific, no P."""
        flags = AvpFlag.MANDATORY if self.mandatory is FlagRule.MUST else 0
        if self.vendor_id:
            flags |= AvpFlag.VENDOR
        return int(flags)

    def flag_violations(self, flags: int) -> list[str]:
        """Describe how *flags* (as received) break this definition's rules."""
        found: list[str] = []
        for bit, letter, rule in (
            (AvpFlag.MANDATORY, "M", self.mandatory),
            (AvpFlag.VENDOR, "V", self.vendor),
            (AvpFlag.PROTECTED, "P", self.protected),
        ):
            if rule is FlagRule.MUST and not flags & bit:
                found.append(f"{self.name}: {letter} bit must be set")
            elif rule is FlagRule.MUST_NOT and flags & bit:
                found.append(f"{self.name}: {letter} bit must not be set")
        return found


def avp_key(code: int, vendor_id: int = 0) -> int:
    """Fold an AVP code and a Vendor-Id into one int (fast dictionary key)."""
    return (vendor_id << 32) | code


_Row = (
    tuple[int, str, DataType, str, str, str]
    | tuple[int, str, DataType, str, str, str, type[IntEnum]]
)

OCTETS = DataType.OCTET_STRING
I32 = DataType.INTEGER32
I64 = DataType.INTEGER64
U32 = DataType.UNSIGNED32
U64 = DataType.UNSIGNED64
GROUPED = DataType.GROUPED
ADDRESS = DataType.ADDRESS
TIME = DataType.TIME
UTF8 = DataType.UTF8_STRING
IDENTITY = DataType.DIAMETER_IDENTITY
URI = DataType.DIAMETER_URI
ENUM = DataType.ENUMERATED
FILTER = DataType.IP_FILTER_RULE

# RFC 6733 §4.5 and RFC 7155 (RADIUS-derived AVPs used by Diameter applications).
_BASE: tuple[_Row, ...] = (
    (A.USER_NAME, "User-Name", UTF8, "M", "P", "V"),
    (A.FRAMED_IP_ADDRESS, "Framed-IP-Address", OCTETS, "M", "P", "V"),
    (A.FILTER_ID, "Filter-Id", UTF8, "M", "P", "V"),
    (A.CLASS, "Class", OCTETS, "M", "P", "V"),
    (A.SESSION_TIMEOUT, "Session-Timeout", U32, "M", "P", "V"),
    (A.CALLED_STATION_ID, "Called-Station-Id", UTF8, "M", "P", "V"),
    (A.CALLING_STATION_ID, "Calling-Station-Id", UTF8, "M", "P", "V"),
    (A.PROXY_STATE, "Proxy-State", OCTETS, "M", "", "PV"),
    (A.ACCT_SESSION_ID, "Acct-Session-Id", OCTETS, "M", "P", "V"),
    (A.ACCT_MULTI_SESSION_ID, "Acct-Multi-Session-Id", UTF8, "M", "P", "V"),
    (A.EVENT_TIMESTAMP, "Event-Timestamp", TIME, "M", "P", "V"),
    (A.ACCT_INTERIM_INTERVAL, "Acct-Interim-Interval", U32, "M", "P", "V"),
    (A.HOST_IP_ADDRESS, "Host-IP-Address", ADDRESS, "M", "P", "V"),
    (A.AUTH_APPLICATION_ID, "Auth-Application-Id", U32, "M", "P", "V"),
    (A.ACCT_APPLICATION_ID, "Acct-Application-Id", U32, "M", "P", "V"),
    (A.VENDOR_SPECIFIC_APPLICATION_ID, "Vendor-Specific-Application-Id", GROUPED, "M", "P", "V"),
    (A.REDIRECT_HOST_USAGE, "Redirect-Host-Usage", ENUM, "M", "P", "V"),
    (A.REDIRECT_MAX_CACHE_TIME, "Redirect-Max-Cache-Time", U32, "M", "P", "V"),
    (A.SESSION_ID, "Session-Id", UTF8, "M", "P", "V"),
    (A.ORIGIN_HOST, "Origin-Host", IDENTITY, "M", "P", "V"),
    (A.SUPPORTED_VENDOR_ID, "Supported-Vendor-Id", U32, "M", "P", "V"),
    (A.VENDOR_ID, "Vendor-Id", U32, "M", "P", "V"),
    (A.FIRMWARE_REVISION, "Firmware-Revision", U32, "", "", "MVP"),
    (A.RESULT_CODE, "Result-Code", U32, "M", "P", "V"),
    (A.PRODUCT_NAME, "Product-Name", UTF8, "", "", "MVP"),
    (A.SESSION_BINDING, "Session-Binding", U32, "M", "P", "V"),
    (A.SESSION_SERVER_FAILOVER, "Session-Server-Failover", ENUM, "M", "P", "V"),
    (A.MULTI_ROUND_TIME_OUT, "Multi-Round-Time-Out", U32, "M", "P", "V"),
    (A.DISCONNECT_CAUSE, "Disconnect-Cause", ENUM, "M", "P", "V", c.DisconnectCause),
    (A.AUTH_REQUEST_TYPE, "Auth-Request-Type", ENUM, "M", "P", "V"),
    (A.AUTH_GRACE_PERIOD, "Auth-Grace-Period", U32, "M", "P", "V"),
    (A.AUTH_SESSION_STATE, "Auth-Session-State", ENUM, "M", "P", "V", c.AuthSessionState),
    (A.ORIGIN_STATE_ID, "Origin-State-Id", U32, "M", "P", "V"),
    (A.FAILED_AVP, "Failed-AVP", GROUPED, "M", "P", "V"),
    (A.PROXY_HOST, "Proxy-Host", IDENTITY, "M", "", "PV"),
    (A.ERROR_MESSAGE, "Error-Message", UTF8, "", "P", "MV"),
    (A.ROUTE_RECORD, "Route-Record", IDENTITY, "M", "", "PV"),
    (A.DESTINATION_REALM, "Destination-Realm", IDENTITY, "M", "P", "V"),
    (A.PROXY_INFO, "Proxy-Info", GROUPED, "M", "", "PV"),
    (A.RE_AUTH_REQUEST_TYPE, "Re-Auth-Request-Type", ENUM, "M", "P", "V", c.ReAuthRequestType),
    (A.ACCOUNTING_SUB_SESSION_ID, "Accounting-Sub-Session-Id", U64, "M", "P", "V"),
    (A.AUTHORIZATION_LIFETIME, "Authorization-Lifetime", U32, "M", "P", "V"),
    (A.REDIRECT_HOST, "Redirect-Host", URI, "M", "P", "V"),
    (A.DESTINATION_HOST, "Destination-Host", IDENTITY, "M", "P", "V"),
    (A.ERROR_REPORTING_HOST, "Error-Reporting-Host", IDENTITY, "", "P", "MV"),
    (A.TERMINATION_CAUSE, "Termination-Cause", ENUM, "M", "P", "V", c.TerminationCause),
    (A.ORIGIN_REALM, "Origin-Realm", IDENTITY, "M", "P", "V"),
    (A.EXPERIMENTAL_RESULT, "Experimental-Result", GROUPED, "M", "P", "V"),
    (A.EXPERIMENTAL_RESULT_CODE, "Experimental-Result-Code", U32, "M", "P", "V"),
    (A.INBAND_SECURITY_ID, "Inband-Security-Id", U32, "M", "P", "V"),
    (A.ACCOUNTING_RECORD_TYPE, "Accounting-Record-Type", ENUM, "M", "P", "V"),
    (A.ACCOUNTING_REALTIME_REQUIRED, "Accounting-Realtime-Required", ENUM, "M", "P", "V"),
    (A.ACCOUNTING_RECORD_NUMBER, "Accounting-Record-Number", U32, "M", "P", "V"),
    # RFC 4740 §9.8; some Ro clients put it in Event-Type instead of the 3GPP SIP-Method.
    (A.SIP_METHOD, "SIP-Method", UTF8, "M", "P", "V"),
)

# RFC 4006 §8 table, RFC 8506 §8 additions.
_CREDIT_CONTROL: tuple[_Row, ...] = (
    (A.CC_CORRELATION_ID, "CC-Correlation-Id", OCTETS, "", "PM", "V"),
    (A.CC_INPUT_OCTETS, "CC-Input-Octets", U64, "M", "P", "V"),
    (A.CC_MONEY, "CC-Money", GROUPED, "M", "P", "V"),
    (A.CC_OUTPUT_OCTETS, "CC-Output-Octets", U64, "M", "P", "V"),
    (A.CC_REQUEST_NUMBER, "CC-Request-Number", U32, "M", "P", "V"),
    (A.CC_REQUEST_TYPE, "CC-Request-Type", ENUM, "M", "P", "V", c.CcRequestType),
    (A.CC_SERVICE_SPECIFIC_UNITS, "CC-Service-Specific-Units", U64, "M", "P", "V"),
    (A.CC_SESSION_FAILOVER, "CC-Session-Failover", ENUM, "M", "P", "V", c.CcSessionFailover),
    (A.CC_SUB_SESSION_ID, "CC-Sub-Session-Id", U64, "M", "P", "V"),
    (A.CC_TIME, "CC-Time", U32, "M", "P", "V"),
    (A.CC_TOTAL_OCTETS, "CC-Total-Octets", U64, "M", "P", "V"),
    (A.CHECK_BALANCE_RESULT, "Check-Balance-Result", ENUM, "M", "P", "V", c.CheckBalanceResult),
    (A.COST_INFORMATION, "Cost-Information", GROUPED, "M", "P", "V"),
    (A.COST_UNIT, "Cost-Unit", UTF8, "M", "P", "V"),
    (A.CURRENCY_CODE, "Currency-Code", U32, "M", "P", "V"),
    (A.CREDIT_CONTROL, "Credit-Control", ENUM, "M", "P", "V", c.CreditControl),
    (
        A.CREDIT_CONTROL_FAILURE_HANDLING,
        "Credit-Control-Failure-Handling",
        ENUM,
        "M",
        "P",
        "V",
        c.CreditControlFailureHandling,
    ),
    (
        A.DIRECT_DEBITING_FAILURE_HANDLING,
        "Direct-Debiting-Failure-Handling",
        ENUM,
        "M",
        "P",
        "V",
        c.DirectDebitingFailureHandling,
    ),
    (A.EXPONENT, "Exponent", I32, "M", "P", "V"),
    (A.FINAL_UNIT_INDICATION, "Final-Unit-Indication", GROUPED, "M", "P", "V"),
    (A.GRANTED_SERVICE_UNIT, "Granted-Service-Unit", GROUPED, "M", "P", "V"),
    (A.RATING_GROUP, "Rating-Group", U32, "M", "P", "V"),
    (
        A.REDIRECT_ADDRESS_TYPE,
        "Redirect-Address-Type",
        ENUM,
        "M",
        "P",
        "V",
        c.RedirectAddressType,
    ),
    (A.REDIRECT_SERVER, "Redirect-Server", GROUPED, "M", "P", "V"),
    (A.REDIRECT_SERVER_ADDRESS, "Redirect-Server-Address", UTF8, "M", "P", "V"),
    (A.REQUESTED_ACTION, "Requested-Action", ENUM, "M", "P", "V", c.RequestedAction),
    (A.REQUESTED_SERVICE_UNIT, "Requested-Service-Unit", GROUPED, "M", "P", "V"),
    (A.RESTRICTION_FILTER_RULE, "Restriction-Filter-Rule", FILTER, "M", "P", "V"),
    (A.SERVICE_IDENTIFIER, "Service-Identifier", U32, "M", "P", "V"),
    (A.SERVICE_PARAMETER_INFO, "Service-Parameter-Info", GROUPED, "", "PM", "V"),
    (A.SERVICE_PARAMETER_TYPE, "Service-Parameter-Type", U32, "", "PM", "V"),
    (A.SERVICE_PARAMETER_VALUE, "Service-Parameter-Value", OCTETS, "", "PM", "V"),
    (A.SUBSCRIPTION_ID, "Subscription-Id", GROUPED, "M", "P", "V"),
    (A.SUBSCRIPTION_ID_DATA, "Subscription-Id-Data", UTF8, "M", "P", "V"),
    (A.UNIT_VALUE, "Unit-Value", GROUPED, "M", "P", "V"),
    (A.USED_SERVICE_UNIT, "Used-Service-Unit", GROUPED, "M", "P", "V"),
    (A.VALUE_DIGITS, "Value-Digits", I64, "M", "P", "V"),
    (A.VALIDITY_TIME, "Validity-Time", U32, "M", "P", "V"),
    (A.FINAL_UNIT_ACTION, "Final-Unit-Action", ENUM, "M", "P", "V", c.FinalUnitAction),
    (
        A.SUBSCRIPTION_ID_TYPE,
        "Subscription-Id-Type",
        ENUM,
        "M",
        "P",
        "V",
        c.SubscriptionIdType,
    ),
    (A.TARIFF_TIME_CHANGE, "Tariff-Time-Change", TIME, "M", "P", "V"),
    (A.TARIFF_CHANGE_USAGE, "Tariff-Change-Usage", ENUM, "M", "P", "V", c.TariffChangeUsage),
    (A.G_S_U_POOL_IDENTIFIER, "G-S-U-Pool-Identifier", U32, "M", "P", "V"),
    (A.CC_UNIT_TYPE, "CC-Unit-Type", ENUM, "M", "P", "V", c.CcUnitType),
    (
        A.MULTIPLE_SERVICES_INDICATOR,
        "Multiple-Services-Indicator",
        ENUM,
        "M",
        "P",
        "V",
        c.MultipleServicesIndicator,
    ),
    (
        A.MULTIPLE_SERVICES_CREDIT_CONTROL,
        "Multiple-Services-Credit-Control",
        GROUPED,
        "M",
        "P",
        "V",
    ),
    (A.G_S_U_POOL_REFERENCE, "G-S-U-Pool-Reference", GROUPED, "M", "P", "V"),
    (A.USER_EQUIPMENT_INFO, "User-Equipment-Info", GROUPED, "", "PM", "V"),
    (
        A.USER_EQUIPMENT_INFO_TYPE,
        "User-Equipment-Info-Type",
        ENUM,
        "",
        "PM",
        "V",
        c.UserEquipmentInfoType,
    ),
    (A.USER_EQUIPMENT_INFO_VALUE, "User-Equipment-Info-Value", OCTETS, "", "PM", "V"),
    (A.SERVICE_CONTEXT_ID, "Service-Context-Id", UTF8, "M", "P", "V"),
    (A.USER_EQUIPMENT_INFO_EXTENSION, "User-Equipment-Info-Extension", GROUPED, "", "PM", "V"),
    (A.USER_EQUIPMENT_INFO_IMEISV, "User-Equipment-Info-IMEISV", OCTETS, "", "PM", "V"),
    (A.USER_EQUIPMENT_INFO_MAC, "User-Equipment-Info-MAC", OCTETS, "", "PM", "V"),
    (A.USER_EQUIPMENT_INFO_EUI64, "User-Equipment-Info-EUI64", OCTETS, "", "PM", "V"),
    (
        A.USER_EQUIPMENT_INFO_MODIFIEDEUI64,
        "User-Equipment-Info-ModifiedEUI64",
        OCTETS,
        "",
        "PM",
        "V",
    ),
    (A.USER_EQUIPMENT_INFO_IMEI, "User-Equipment-Info-IMEI", OCTETS, "", "PM", "V"),
    (A.SUBSCRIPTION_ID_EXTENSION, "Subscription-Id-Extension", GROUPED, "", "PM", "V"),
    (A.SUBSCRIPTION_ID_E164, "Subscription-Id-E164", UTF8, "", "PM", "V"),
    (A.SUBSCRIPTION_ID_IMSI, "Subscription-Id-IMSI", UTF8, "", "PM", "V"),
    (A.SUBSCRIPTION_ID_SIP_URI, "Subscription-Id-SIP-URI", UTF8, "", "PM", "V"),
    (A.SUBSCRIPTION_ID_NAI, "Subscription-Id-NAI", UTF8, "", "PM", "V"),
    (A.SUBSCRIPTION_ID_PRIVATE, "Subscription-Id-Private", UTF8, "", "PM", "V"),
    (A.REDIRECT_SERVER_EXTENSION, "Redirect-Server-Extension", GROUPED, "", "PM", "V"),
    (A.REDIRECT_ADDRESS_IPADDRESS, "Redirect-Address-IPAddress", ADDRESS, "", "PM", "V"),
    (A.REDIRECT_ADDRESS_URL, "Redirect-Address-URL", UTF8, "", "PM", "V"),
    (A.REDIRECT_ADDRESS_SIP_URI, "Redirect-Address-SIP-URI", UTF8, "", "PM", "V"),
    (A.QOS_FINAL_UNIT_INDICATION, "QoS-Final-Unit-Indication", GROUPED, "", "PM", "V"),
)

# 3GPP TS 32.299 §7.2 table 7.2.0.1: "V,M" MUST, "P" MAY unless noted.
_TGPP_RO: tuple[_Row, ...] = (
    (
        T.ACCESS_NETWORK_CHARGING_IDENTIFIER_VALUE,
        "Access-Network-Charging-Identifier-Value",
        OCTETS,
        "VM",
        "P",
        "",
    ),
    (T.SERVER_NAME, "Server-Name", UTF8, "VM", "P", ""),
    (T.SERVER_CAPABILITIES, "Server-Capabilities", GROUPED, "VM", "P", ""),
    (T.MANDATORY_CAPABILITY, "Mandatory-Capability", U32, "VM", "P", ""),
    (T.OPTIONAL_CAPABILITY, "Optional-Capability", U32, "VM", "P", ""),
    (T.SESSION_PRIORITY, "Session-Priority", ENUM, "V", "", "M", c.SessionPriority),
    (T.EVENT_TYPE, "Event-Type", GROUPED, "VM", "P", ""),
    (T.SIP_METHOD, "SIP-Method", UTF8, "VM", "P", ""),
    (T.EVENT, "Event", UTF8, "VM", "P", ""),
    (T.CONTENT_TYPE, "Content-Type", UTF8, "VM", "P", ""),
    (T.CONTENT_LENGTH, "Content-Length", U32, "VM", "P", ""),
    (T.CONTENT_DISPOSITION, "Content-Disposition", UTF8, "VM", "P", ""),
    (T.ROLE_OF_NODE, "Role-Of-Node", ENUM, "VM", "P", "", c.RoleOfNode),
    (T.USER_SESSION_ID, "User-Session-Id", UTF8, "VM", "P", ""),
    (T.CALLING_PARTY_ADDRESS, "Calling-Party-Address", UTF8, "VM", "P", ""),
    (T.CALLED_PARTY_ADDRESS, "Called-Party-Address", UTF8, "VM", "P", ""),
    (T.TIME_STAMPS, "Time-Stamps", GROUPED, "VM", "P", ""),
    (T.SIP_REQUEST_TIMESTAMP, "SIP-Request-Timestamp", TIME, "VM", "P", ""),
    (T.SIP_RESPONSE_TIMESTAMP, "SIP-Response-Timestamp", TIME, "VM", "P", ""),
    (T.APPLICATION_SERVER, "Application-Server", UTF8, "VM", "P", ""),
    (
        T.APPLICATION_PROVIDED_CALLED_PARTY_ADDRESS,
        "Application-Provided-Called-Party-Address",
        UTF8,
        "VM",
        "P",
        "",
    ),
    (T.INTER_OPERATOR_IDENTIFIER, "Inter-Operator-Identifier", GROUPED, "VM", "P", ""),
    (T.ORIGINATING_IOI, "Originating-IOI", UTF8, "VM", "P", ""),
    (T.TERMINATING_IOI, "Terminating-IOI", UTF8, "VM", "P", ""),
    (T.IMS_CHARGING_IDENTIFIER, "IMS-Charging-Identifier", UTF8, "VM", "P", ""),
    (T.SDP_SESSION_DESCRIPTION, "SDP-Session-Description", UTF8, "VM", "P", ""),
    (T.SDP_MEDIA_COMPONENT, "SDP-Media-Component", GROUPED, "VM", "P", ""),
    (T.SDP_MEDIA_NAME, "SDP-Media-Name", UTF8, "VM", "P", ""),
    (T.SDP_MEDIA_DESCRIPTION, "SDP-Media-Description", UTF8, "VM", "P", ""),
    (T.SERVED_PARTY_IP_ADDRESS, "Served-Party-IP-Address", ADDRESS, "VM", "P", ""),
    (T.APPLICATION_SERVER_INFORMATION, "Application-Server-Information", GROUPED, "VM", "P", ""),
    (T.TRUNK_GROUP_ID, "Trunk-Group-Id", GROUPED, "VM", "P", ""),
    (T.INCOMING_TRUNK_GROUP_ID, "Incoming-Trunk-Group-Id", UTF8, "VM", "P", ""),
    (T.OUTGOING_TRUNK_GROUP_ID, "Outgoing-Trunk-Group-Id", UTF8, "VM", "P", ""),
    (T.BEARER_SERVICE, "Bearer-Service", OCTETS, "VM", "P", ""),
    (T.SERVICE_ID, "Service-Id", UTF8, "VM", "P", ""),
    (T.ASSOCIATED_URI, "Associated-URI", UTF8, "VM", "P", ""),
    (T.CAUSE_CODE, "Cause-Code", I32, "VM", "P", ""),
    (T.NODE_FUNCTIONALITY, "Node-Functionality", ENUM, "VM", "P", "", c.NodeFunctionality),
    (T.SERVICE_SPECIFIC_DATA, "Service-Specific-Data", UTF8, "VM", "P", ""),
    (T.ORIGINATOR, "Originator", ENUM, "VM", "P", ""),
    (T.TIME_QUOTA_THRESHOLD, "Time-Quota-Threshold", U32, "VM", "P", ""),
    (T.VOLUME_QUOTA_THRESHOLD, "Volume-Quota-Threshold", U32, "VM", "P", ""),
    (T.TRIGGER_TYPE, "Trigger-Type", ENUM, "VM", "P", "", c.TriggerType),
    (T.QUOTA_HOLDING_TIME, "Quota-Holding-Time", U32, "VM", "P", ""),
    (T.REPORTING_REASON, "Reporting-Reason", ENUM, "VM", "P", "", c.ReportingReason),
    (T.SERVICE_INFORMATION, "Service-Information", GROUPED, "VM", "P", ""),
    (T.PS_INFORMATION, "PS-Information", GROUPED, "VM", "P", ""),
    (T.IMS_INFORMATION, "IMS-Information", GROUPED, "VM", "P", ""),
    (T.QUOTA_CONSUMPTION_TIME, "Quota-Consumption-Time", U32, "VM", "P", ""),
    (T.MEDIA_INITIATOR_FLAG, "Media-Initiator-Flag", ENUM, "VM", "P", ""),
    (T.NUMBER_OF_PARTICIPANTS, "Number-Of-Participants", U32, "VM", "P", ""),
    (T.EXPIRES, "Expires", U32, "VM", "P", ""),
    (T.MESSAGE_BODY, "Message-Body", GROUPED, "VM", "P", ""),
    (T.ADDRESS_DATA, "Address-Data", UTF8, "VM", "P", ""),
    (T.ADDRESS_DOMAIN, "Address-Domain", GROUPED, "VM", "P", ""),
    (T.ADDRESS_TYPE, "Address-Type", ENUM, "VM", "P", ""),
    (T.DOMAIN_NAME, "Domain-Name", UTF8, "VM", "P", ""),
    (T.RECIPIENT_ADDRESS, "Recipient-Address", GROUPED, "VM", "P", ""),
    (T.UNIT_QUOTA_THRESHOLD, "Unit-Quota-Threshold", U32, "VM", "P", ""),
    (T.SERVICE_SPECIFIC_INFO, "Service-Specific-Info", GROUPED, "VM", "P", ""),
    (T.CALLED_ASSERTED_IDENTITY, "Called-Asserted-Identity", UTF8, "VM", "P", ""),
    (T.REQUESTED_PARTY_ADDRESS, "Requested-Party-Address", UTF8, "VM", "P", ""),
    (T.SERVICE_SPECIFIC_TYPE, "Service-Specific-Type", U32, "VM", "P", ""),
    (T.EVENT_CHARGING_TIMESTAMP, "Event-Charging-TimeStamp", TIME, "VM", "P", ""),
    (T.ACCESS_NETWORK_INFORMATION, "Access-Network-Information", OCTETS, "VM", "P", ""),
    (T.TRIGGER, "Trigger", GROUPED, "VM", "P", ""),
    (T.BASE_TIME_INTERVAL, "Base-Time-Interval", U32, "VM", "P", ""),
    (T.ENVELOPE, "Envelope", GROUPED, "VM", "P", ""),
    (T.ENVELOPE_END_TIME, "Envelope-End-Time", TIME, "VM", "P", ""),
    (T.ENVELOPE_REPORTING, "Envelope-Reporting", ENUM, "VM", "P", "", c.EnvelopeReporting),
    (T.ENVELOPE_START_TIME, "Envelope-Start-Time", TIME, "VM", "P", ""),
    (T.TIME_QUOTA_MECHANISM, "Time-Quota-Mechanism", GROUPED, "VM", "P", ""),
    (T.TIME_QUOTA_TYPE, "Time-Quota-Type", ENUM, "VM", "P", "", c.TimeQuotaType),
    (T.EARLY_MEDIA_DESCRIPTION, "Early-Media-Description", GROUPED, "VM", "P", ""),
    (T.SDP_TIMESTAMPS, "SDP-TimeStamps", GROUPED, "VM", "P", ""),
    (T.SDP_OFFER_TIMESTAMP, "SDP-Offer-Timestamp", TIME, "VM", "P", ""),
    (T.SDP_ANSWER_TIMESTAMP, "SDP-Answer-Timestamp", TIME, "VM", "P", ""),
    (T.ALTERNATE_CHARGED_PARTY_ADDRESS, "Alternate-Charged-Party-Address", UTF8, "VM", "P", ""),
    (
        T.IMS_COMMUNICATION_SERVICE_IDENTIFIER,
        "IMS-Communication-Service-Identifier",
        UTF8,
        "VM",
        "P",
        "",
    ),
    (T.MEDIA_INITIATOR_PARTY, "Media-Initiator-Party", UTF8, "VM", "P", ""),
    (T.SMS_INFORMATION, "SMS-Information", GROUPED, "VM", "P", ""),
    (T.DATA_CODING_SCHEME, "Data-Coding-Scheme", I32, "VM", "P", ""),
    (T.DESTINATION_INTERFACE, "Destination-Interface", GROUPED, "VM", "P", ""),
    (T.INTERFACE_ID, "Interface-Id", UTF8, "VM", "P", ""),
    (T.INTERFACE_PORT, "Interface-Port", UTF8, "VM", "P", ""),
    (T.INTERFACE_TEXT, "Interface-Text", UTF8, "VM", "P", ""),
    (T.INTERFACE_TYPE, "Interface-Type", ENUM, "VM", "P", ""),
    (T.SM_MESSAGE_TYPE, "SM-Message-Type", ENUM, "VM", "P", "", c.SmMessageType),
    (T.ORIGINATOR_SCCP_ADDRESS, "Originator-SCCP-Address", ADDRESS, "VM", "P", ""),
    (T.ORIGINATOR_INTERFACE, "Originator-Interface", GROUPED, "VM", "P", ""),
    (T.RECIPIENT_SCCP_ADDRESS, "Recipient-SCCP-Address", ADDRESS, "VM", "P", ""),
    (T.REPLY_PATH_REQUESTED, "Reply-Path-Requested", ENUM, "VM", "P", ""),
    (T.SM_DISCHARGE_TIME, "SM-Discharge-Time", TIME, "VM", "P", ""),
    (T.SM_PROTOCOL_ID, "SM-Protocol-ID", OCTETS, "VM", "P", ""),
    (T.SM_STATUS, "SM-Status", OCTETS, "VM", "P", ""),
    (T.SM_USER_DATA_HEADER, "SM-User-Data-Header", OCTETS, "VM", "P", ""),
    (T.SMS_NODE, "SMS-Node", ENUM, "VM", "P", ""),
    (T.SMSC_ADDRESS, "SMSC-Address", ADDRESS, "VM", "P", ""),
    (T.CLIENT_ADDRESS, "Client-Address", ADDRESS, "VM", "P", ""),
    (T.NUMBER_OF_MESSAGES_SENT, "Number-Of-Messages-Sent", U32, "VM", "P", ""),
    (
        T.LOW_BALANCE_INDICATION,
        "Low-Balance-Indication",
        ENUM,
        "VM",
        "P",
        "",
        c.LowBalanceIndication,
    ),
    (T.REMAINING_BALANCE, "Remaining-Balance", GROUPED, "VM", "P", ""),
    (T.REFUND_INFORMATION, "Refund-Information", OCTETS, "VM", "P", ""),
    (
        T.CARRIER_SELECT_ROUTING_INFORMATION,
        "Carrier-Select-Routing-Information",
        UTF8,
        "VM",
        "P",
        "",
    ),
    (
        T.NUMBER_PORTABILITY_ROUTING_INFORMATION,
        "Number-Portability-Routing-Information",
        UTF8,
        "VM",
        "P",
        "",
    ),
    (T.RECIPIENT_INFO, "Recipient-Info", GROUPED, "VM", "P", ""),
    (T.ORIGINATOR_RECEIVED_ADDRESS, "Originator-Received-Address", GROUPED, "VM", "P", ""),
    (T.RECIPIENT_RECEIVED_ADDRESS, "Recipient-Received-Address", GROUPED, "VM", "P", ""),
    (T.SM_SERVICE_TYPE, "SM-Service-Type", ENUM, "VM", "P", ""),
    (T.MMTEL_INFORMATION, "MMTel-Information", GROUPED, "VM", "P", ""),
    (T.MMTEL_SSERVICE_TYPE, "MMTel-SService-Type", U32, "VM", "P", ""),
    (T.SERVICE_MODE, "Service-Mode", U32, "VM", "P", ""),
    (T.SUBSCRIBER_ROLE, "Subscriber-Role", ENUM, "VM", "P", "", c.SubscriberRole),
    (T.NUMBER_OF_DIVERSIONS, "Number-Of-Diversions", U32, "VM", "P", ""),
    (T.ASSOCIATED_PARTY_ADDRESS, "Associated-Party-Address", UTF8, "VM", "P", ""),
    (T.SDP_TYPE, "SDP-Type", ENUM, "VM", "P", ""),
    (T.CHANGE_TIME, "Change-Time", TIME, "VM", "P", ""),
    (T.START_TIME, "Start-Time", TIME, "VM", "P", ""),
    (T.STOP_TIME, "Stop-Time", TIME, "VM", "P", ""),
    (T.SUPPLEMENTARY_SERVICE, "Supplementary-Service", GROUPED, "VM", "P", ""),
    (T.PARTICIPANT_ACTION_TYPE, "Participant-Action-Type", ENUM, "VM", "P", ""),
    (T.LOCAL_SEQUENCE_NUMBER, "Local-Sequence-Number", U32, "VM", "P", ""),
    (T.NODE_ID, "Node-Id", UTF8, "VM", "P", ""),
    (T.SIP_REQUEST_TIMESTAMP_FRACTION, "SIP-Request-Timestamp-Fraction", U32, "VM", "P", ""),
    (T.SIP_RESPONSE_TIMESTAMP_FRACTION, "SIP-Response-Timestamp-Fraction", U32, "VM", "P", ""),
    (T.ONLINE_CHARGING_FLAG, "Online-Charging-Flag", ENUM, "VM", "P", ""),
    (T.CUG_INFORMATION, "CUG-Information", OCTETS, "VM", "P", ""),
    (T.ACCOUNT_EXPIRATION, "Account-Expiration", TIME, "VM", "P", ""),
    (T.OUTGOING_SESSION_ID, "Outgoing-Session-Id", UTF8, "VM", "P", ""),
    (T.INITIAL_IMS_CHARGING_IDENTIFIER, "Initial-IMS-Charging-Identifier", UTF8, "VM", "P", ""),
    (T.IMS_EMERGENCY_INDICATOR, "IMS-Emergency-Indicator", ENUM, "VM", "P", ""),
    (
        T.IMS_APPLICATION_REFERENCE_IDENTIFIER,
        "IMS-Application-Reference-Identifier",
        UTF8,
        "VM",
        "P",
        "",
    ),
    (T.IP_REALM_DEFAULT_INDICATION, "IP-Realm-Default-Indication", ENUM, "VM", "P", ""),
    (T.LOCAL_GW_INSERTED_INDICATION, "Local-GW-Inserted-Indication", ENUM, "VM", "P", ""),
    (T.TRANSCODER_INSERTED_INDICATION, "Transcoder-Inserted-Indication", ENUM, "VM", "P", ""),
    (T.TRANSIT_IOI_LIST, "Transit-IOI-List", UTF8, "VM", "P", ""),
    (T.STATUS_AS_CODE, "Status-AS-Code", ENUM, "VM", "P", ""),
    (T.NNI_INFORMATION, "NNI-Information", GROUPED, "VM", "P", ""),
    (T.NNI_TYPE, "NNI-Type", ENUM, "VM", "P", ""),
    (T.NEIGHBOUR_NODE_ADDRESS, "Neighbour-Node-Address", ADDRESS, "VM", "P", ""),
    (T.RELATIONSHIP_MODE, "Relationship-Mode", ENUM, "VM", "P", ""),
    (T.SESSION_DIRECTION, "Session-Direction", ENUM, "VM", "P", ""),
    (T.FROM_ADDRESS, "From-Address", UTF8, "VM", "P", ""),
    (T.ACCESS_TRANSFER_INFORMATION, "Access-Transfer-Information", GROUPED, "VM", "P", ""),
    (T.ACCESS_TRANSFER_TYPE, "Access-Transfer-Type", ENUM, "VM", "P", ""),
    (T.RELATED_IMS_CHARGING_IDENTIFIER, "Related-IMS-Charging-Identifier", UTF8, "VM", "P", ""),
    (
        T.RELATED_IMS_CHARGING_IDENTIFIER_NODE,
        "Related-IMS-Charging-Identifier-Node",
        ADDRESS,
        "VM",
        "P",
        "",
    ),
    (T.IMS_VISITED_NETWORK_IDENTIFIER, "IMS-Visited-Network-Identifier", UTF8, "VM", "P", ""),
    (T.TAD_IDENTIFIER, "TAD-Identifier", ENUM, "VM", "P", ""),
    (T.REASON_HEADER, "Reason-Header", UTF8, "VM", "P", ""),
    (T.INSTANCE_ID, "Instance-Id", UTF8, "VM", "P", ""),
    (T.ROUTE_HEADER_RECEIVED, "Route-Header-Received", UTF8, "VM", "P", ""),
    (T.ROUTE_HEADER_TRANSMITTED, "Route-Header-Transmitted", UTF8, "VM", "P", ""),
    (T.SM_DEVICE_TRIGGER_INDICATOR, "SM-Device-Trigger-Indicator", ENUM, "VM", "P", ""),
    (T.SM_SEQUENCE_NUMBER, "SM-Sequence-Number", U32, "VM", "P", ""),
    (T.SMS_RESULT, "SMS-Result", U32, "VM", "P", ""),
)

# 3GPP TS 29.061 §16.4.7: the 3GPP-* AVPs are V MUST, M MUST NOT.
_TGPP_GI: tuple[_Row, ...] = (
    (T.TGPP_CHARGING_ID, "3GPP-Charging-Id", OCTETS, "V", "P", "M"),
    (T.TGPP_IMSI_MCC_MNC, "3GPP-IMSI-MCC-MNC", UTF8, "V", "P", "M"),
    (T.TGPP_SGSN_MCC_MNC, "3GPP-SGSN-MCC-MNC", UTF8, "V", "P", "M"),
    (T.TGPP_RAT_TYPE, "3GPP-RAT-Type", OCTETS, "V", "P", "M"),
    (T.TGPP_USER_LOCATION_INFO, "3GPP-User-Location-Info", OCTETS, "V", "P", "M"),
    (T.TGPP_MS_TIMEZONE, "3GPP-MS-TimeZone", OCTETS, "V", "P", "M"),
)


def _rule(letter: str, must: str, may: str, must_not: str) -> FlagRule:
    if letter in must:
        return FlagRule.MUST
    if letter in must_not:
        return FlagRule.MUST_NOT
    if letter in may:
        return FlagRule.MAY
    # The specification tables leave a bit unlisted only when it is irrelevant; accept it.
    return FlagRule.MAY


def _definitions(vendor_id: int, rows: Iterable[_Row]) -> Iterable[AvpDefinition]:
    for row in rows:
        code, name, data_type, must, may, must_not = row[:6]
        enum = row[6] if len(row) == 7 else None
        vendor_rule = FlagRule.MUST if vendor_id else FlagRule.MUST_NOT
        if "V" in must or "V" in must_not:
            vendor_rule = _rule("V", must, may, must_not)
        yield AvpDefinition(
            code=int(code),
            vendor_id=vendor_id,
            name=name,
            data_type=data_type,
            mandatory=_rule("M", must, may, must_not),
            vendor=vendor_rule,
            protected=_rule("P", must, may, must_not),
            enum=enum,
        )


def _build() -> dict[int, AvpDefinition]:
    table: dict[int, AvpDefinition] = {}
    for vendor_id, rows in (
        (VendorId.IETF, _BASE),
        (VendorId.IETF, _CREDIT_CONTROL),
        (VendorId.TGPP, _TGPP_RO),
        (VendorId.TGPP, _TGPP_GI),
    ):
        for definition in _definitions(int(vendor_id), rows):
            if definition.key in table:
                raise RuntimeError(f"duplicate dictionary entry {definition.name}")
            table[definition.key] = definition
    return table


DEFINITIONS: Mapping[int, AvpDefinition] = _build()
_BY_NAME: Mapping[tuple[str, int], AvpDefinition] = {
    (d.name.lower(), d.vendor_id): d for d in DEFINITIONS.values()
}


def lookup(code: int, vendor_id: int = 0) -> AvpDefinition | None:
    """Return the definition of an AVP, or None when we do not know it."""
    return DEFINITIONS.get((vendor_id << 32) | code)


def by_name(name: str, vendor_id: int | None = None) -> AvpDefinition:
    """Return the definition named *name* (case-insensitive); KeyError if unknown.

    Names are unique per vendor; without *vendor_id* the name must be unique overall.
    """
    key = name.lower()
    if vendor_id is not None:
        return _BY_NAME[(key, vendor_id)]
    found = [d for (n, _), d in _BY_NAME.items() if n == key]
    if len(found) != 1:
        raise KeyError(f"{name!r} names {len(found)} AVPs; give the vendor id")
    return found[0]


def definition(code: int, vendor_id: int = 0) -> AvpDefinition:
    """Return the definition of an AVP we must know; KeyError names the AVP otherwise."""
    found = DEFINITIONS.get((vendor_id << 32) | code)
    if found is None:
        raise KeyError(f"no dictionary entry for AVP {code} (vendor {vendor_id})")
    return found


def avp_name(code: int, vendor_id: int = 0) -> str:
    """Return the AVP's name, or ``AVP <code>/<vendor>`` when it is unknown."""
    found = DEFINITIONS.get((vendor_id << 32) | code)
    if found is not None:
        return found.name
    return f"AVP {code}" if not vendor_id else f"AVP {code}/{vendor_id}"
