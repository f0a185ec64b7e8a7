"""The AVP dictionary: consistent rows, flag rules as the specifications say, and the same
codes/names/types as python-diameter's independent dictionary (where they overlap)."""

from typing import Any

import pytest
from diameter.message.avp import avp as pd_avp
from diameter.message.avp.dictionary import AVP_DICTIONARY, AVP_VENDOR_DICTIONARY

from protocols.diameter.constants import AvpCode, AvpFlag, TgppAvpCode, VendorId
from protocols.diameter.datatypes import DataType
from protocols.diameter.dictionary import (
    DEFINITIONS,
    AvpDefinition,
    FlagRule,
    avp_name,
    by_name,
    definition,
    lookup,
)

M = int(AvpFlag.MANDATORY)
V = int(AvpFlag.VENDOR)


def test_every_constant_has_a_definition_and_back() -> None:
    ietf = {d.code for d in DEFINITIONS.values() if d.vendor_id == 0}
    tgpp = {d.code for d in DEFINITIONS.values() if d.vendor_id == VendorId.TGPP}
    assert ietf == {int(code) for code in AvpCode}
    assert tgpp == {int(code) for code in TgppAvpCode}


def test_names_are_unique_per_vendor() -> None:
    names = [(d.name.lower(), d.vendor_id) for d in DEFINITIONS.values()]
    assert len(names) == len(set(names))
    assert by_name("SIP-Method", 0).code == AvpCode.SIP_METHOD
    assert by_name("SIP-Method", VendorId.TGPP).code == TgppAvpCode.SIP_METHOD
    with pytest.raises(KeyError, match="give the vendor id"):
        by_name("SIP-Method")


@pytest.mark.parametrize("entry", list(DEFINITIONS.values()), ids=lambda d: d.name)
def test_vendor_rule_matches_vendor_id(entry: AvpDefinition) -> None:
    expected = FlagRule.MUST if entry.vendor_id else FlagRule.MUST_NOT
    assert entry.vendor is expected


@pytest.mark.parametrize(
    ("code", "vendor_id", "flags"),
    [
        pytest.param(AvpCode.SESSION_ID, 0, M, id="Session-Id-M"),
        pytest.param(AvpCode.ERROR_MESSAGE, 0, 0, id="Error-Message-no-M"),
        pytest.param(AvpCode.PRODUCT_NAME, 0, 0, id="Product-Name-no-M"),
        pytest.param(AvpCode.FIRMWARE_REVISION, 0, 0, id="Firmware-Revision-no-M"),
        pytest.param(AvpCode.USER_EQUIPMENT_INFO, 0, 0, id="User-Equipment-Info-M-may"),
        pytest.param(AvpCode.SUBSCRIPTION_ID_EXTENSION, 0, 0, id="RFC8506-addition"),
        pytest.param(AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL, 0, M, id="MSCC-M"),
        pytest.param(TgppAvpCode.SERVICE_INFORMATION, VendorId.TGPP, V | M, id="TS32299-VM"),
        pytest.param(TgppAvpCode.SESSION_PRIORITY, VendorId.TGPP, V, id="Session-Priority-V"),
        pytest.param(TgppAvpCode.TGPP_MS_TIMEZONE, VendorId.TGPP, V, id="TS29061-V"),
    ],
)
def test_flags_we_send(code: int, vendor_id: int, flags: int) -> None:
    assert definition(code, vendor_id).flags_to_send == flags


@pytest.mark.parametrize(
    ("name", "flags", "violations"),
    [
        pytest.param("Session-Id", M, [], id="ok"),
        pytest.param("Session-Id", 0, ["Session-Id: M bit must be set"], id="missing-M"),
        pytest.param("Session-Id", M | V, ["Session-Id: V bit must not be set"], id="V-on-ietf"),
        pytest.param("Error-Message", M, ["Error-Message: M bit must not be set"], id="extra-M"),
        pytest.param("Proxy-Host", M | 0x20, ["Proxy-Host: P bit must not be set"], id="P"),
    ],
)
def test_flag_violations(name: str, flags: int, violations: list[str]) -> None:
    assert by_name(name).flag_violations(flags) == violations


def test_lookup_helpers() -> None:
    assert lookup(AvpCode.SESSION_ID) is by_name("session-id")
    assert lookup(AvpCode.SESSION_ID, VendorId.TGPP) is None
    assert lookup(TgppAvpCode.ROLE_OF_NODE, VendorId.TGPP) is by_name("Role-Of-Node")
    assert avp_name(99999) == "AVP 99999"
    assert avp_name(99999, 10415) == "AVP 99999/10415"
    with pytest.raises(KeyError, match="99999"):
        definition(99999)


# python-diameter names data types by its classes; DiameterIdentity/URI/IPFilterRule are
# OctetString or UTF8String there and Enumerated is Integer32.
_COMPATIBLE = {
    DataType.OCTET_STRING: {"AvpOctetString"},
    DataType.UTF8_STRING: {"AvpUtf8String"},
    DataType.DIAMETER_IDENTITY: {"AvpOctetString", "AvpUtf8String"},
    DataType.DIAMETER_URI: {"AvpOctetString", "AvpUtf8String"},
    DataType.IP_FILTER_RULE: {"AvpOctetString", "AvpUtf8String"},
    DataType.INTEGER32: {"AvpInteger32"},
    DataType.ENUMERATED: {"AvpInteger32"},
    DataType.INTEGER64: {"AvpInteger64"},
    DataType.UNSIGNED32: {"AvpUnsigned32"},
    DataType.UNSIGNED64: {"AvpUnsigned64"},
    DataType.FLOAT32: {"AvpFloat32"},
    DataType.FLOAT64: {"AvpFloat64"},
    DataType.GROUPED: {"AvpGrouped"},
    DataType.TIME: {"AvpTime"},
    DataType.ADDRESS: {"AvpAddress"},
}

# Where we follow the specification and python-diameter differs (name or type), with why.
_KNOWN_DIFFERENCES = {
    "Acct-Multi-Session-Id": "python-diameter calls it Accounting-Multi-Session-Id",
    "Access-Network-Information": "TS 32.299 §7.2: OctetString (python-diameter: UTF8String)",
    "From-Address": "TS 32.299 §7.2: UTF8String (python-diameter: Address)",
    "Result-Code": "RFC 6733 §7.1: Unsigned32 (python-diameter: Integer32)",
    "Session-Binding": "RFC 6733 §8.17: Unsigned32 (python-diameter: Integer32)",
    "Authorization-Lifetime": "RFC 6733 §8.9: Unsigned32 (python-diameter: Integer32)",
    "Inband-Security-Id": "RFC 6733 §6.10: Unsigned32 (python-diameter: Integer32)",
    "Number-Of-Participants": "TS 32.299 §7.2: Unsigned32 (python-diameter: Integer32)",
    "Service-Mode": "TS 32.299 §7.2: Unsigned32 (python-diameter: Integer32)",
    "MMTel-SService-Type": "TS 32.299 §7.2 spells it SService (python-diameter: Service)",
    "IP-Realm-Default-Indication": "TS 32.299 §7.2 name (python-diameter: ...-Indicator)",
    "Local-GW-Inserted-Indication": "TS 32.299 §7.2 name (python-diameter: ...-Indicator)",
    "Transcoder-Inserted-Indication": "TS 32.299 §7.2 name (python-diameter: ...-Indicator)",
}


def _python_diameter_entry(code: int, vendor_id: int) -> Any:
    if vendor_id:
        return AVP_VENDOR_DICTIONARY.get(vendor_id, {}).get(code)
    return AVP_DICTIONARY.get(code)


@pytest.mark.parametrize("entry", list(DEFINITIONS.values()), ids=lambda d: d.name)
def test_agrees_with_python_diameter(entry: AvpDefinition) -> None:
    theirs = _python_diameter_entry(entry.code, entry.vendor_id)
    if theirs is None or entry.name in _KNOWN_DIFFERENCES:
        return
    assert theirs["name"].lower().replace("3gpp-", "") == entry.name.lower().replace("3gpp-", "")
    assert theirs["type"].__name__ in _COMPATIBLE[entry.data_type]
    assert issubclass(theirs["type"], pd_avp.Avp)
