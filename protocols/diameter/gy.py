"""Typed Gy/Ro views: CCR/CCA (RFC 4006/8506 §3, 3GPP TS 32.299 §6.4), RAR/RAA and ASR/ASA.

Plain functions, no IO.  The server adapter calls :func:`decode_ccr` on every request and
:func:`encode_cca` on every answer; both sit on the hot path, so:

- :func:`decode_ccr` reads the CCR straight from its wire octets (``Message.raw``, set by
  ``decode_message``; an in-memory message is encoded first) and builds the view without
  creating an AVP object per AVP.  Anything structurally wrong makes it fall back to the
  generic codec, which raises the exact :class:`DiameterError` with its Failed-AVP; so the
  errors are the codec's, and the fast path only has to be right about well-formed input.
- :func:`encode_cca` builds the answer's AVPs with their dictionary flags, precomputed.

Validation of a CCR (RFC 4006 §3.1 ABNF, RFC 6733 §7.1.5):

- missing Session-Id, Origin-Host, Origin-Realm, Destination-Realm, Auth-Application-Id,
  Service-Context-Id, CC-Request-Type or CC-Request-Number -> 5005 DIAMETER_MISSING_AVP with a
  zero-filled AVP of that code as Failed-AVP (RFC 6733 §7.5);
- CC-Request-Type or Requested-Action out of range -> 5004 with the AVP as Failed-AVP;
- Auth-Application-Id (or the header's application) other than 4 -> 3007
  DIAMETER_APPLICATION_UNSUPPORTED;
- an EVENT_REQUEST without Requested-Action: RFC 4006 §8.41 lets the client omit it only for
  direct debiting, which is also what TS 32.299 §6.4.2 assumes, so by default we read it as
  DIRECT_DEBITING (5005 when ``GyOptions.default_requested_action`` is off).

Tolerance: each sloppiness real softswitches show is a switch in :class:`GyOptions` whose
default accepts it, and everything accepted is listed in ``CreditControlRequest.tolerated``
(together with what the codec tolerated) for the server to log.

Vendor hook: :class:`CreditControlAnswer` and :class:`MsccAnswer` take ``extra_avps``, any
AVPs (e.g. a vendor's route-list AVP for the softswitch) appended as given, in the answer or
inside the MSCC respectively; build them with :func:`protocols.diameter.avp.new_avp`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any, TypeVar, cast

from protocols.diameter.avp import Avp, find_avp, find_avps, zeroed_avp
from protocols.diameter.constants import (
    ApplicationId,
    AvpCode,
    CcRequestType,
    CcSessionFailover,
    CheckBalanceResult,
    CommandCode,
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
from protocols.diameter.datatypes.timestamp import pull_time
from protocols.diameter.dictionary import DEFINITIONS, avp_name, definition
from protocols.diameter.errors import DiameterError
from protocols.diameter.message import (
    DEFAULT_OPTIONS,
    CodecOptions,
    LocalIdentity,
    Message,
    decode_message,
    encode_message,
    error_avps,
    make_answer,
)

E = TypeVar("E", bound=IntEnum)
T = TypeVar("T")
_TGPP = VendorId.TGPP
_T = _TGPP << 32  # the key prefix of 3GPP AVPs
_CREDIT_CONTROL_APP = int(ApplicationId.CREDIT_CONTROL)


# --- options -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GyOptions:
    """Tolerance switches of the Gy view; each defaults to accepting and recording.

    - ``accept_unknown_service_context``: Service-Context-Id other than
      ``[<ext>.][<MNC>.<MCC>.][<release>.]<service>@3gpp.org`` for a service in
      ``service_contexts``; off -> 5004.
    - ``application_id_in_vendor_specific``: Auth-Application-Id given only inside
      Vendor-Specific-Application-Id; off -> 5005.
    - ``first_of_repeated``: an AVP that may appear once appears more often -> the first is
      used; off -> 5009 DIAMETER_AVP_OCCURS_TOO_MANY_TIMES.
    - ``ignore_unknown_mandatory``: an AVP we do not know, with the M bit, that the codec let
      through -> ignored; off -> 5001.  (Unknown AVPs without the M bit are always ignored,
      RFC 6733 §4.1.)
    - ``allow_missing_ims_information``: an IMS service context without IMS-Information,
      the subscriber being identified by Subscription-Id; off -> 5005.
    - ``default_requested_action``: EVENT_REQUEST without Requested-Action read as
      DIRECT_DEBITING; off -> 5005.
    - ``accept_ietf_sip_method``: Event-Type carrying the RFC 4740 SIP-Method (AVP 393)
      instead of TS 32.299's (824, 3GPP) is read as the 3GPP one; off -> 5008.
    - ``accept_unknown_enum_values``: informational enumerations (Subscription-Id-Type,
      Role-Of-Node, Node-Functionality, Reporting-Reason, Termination-Cause, ...) with a value
      from a later 3GPP release are kept as plain ints; off -> 5004.
    """

    accept_unknown_service_context: bool = True
    application_id_in_vendor_specific: bool = True
    first_of_repeated: bool = True
    ignore_unknown_mandatory: bool = True
    allow_missing_ims_information: bool = True
    default_requested_action: bool = True
    accept_ietf_sip_method: bool = True
    accept_unknown_enum_values: bool = True
    service_contexts: frozenset[str] = frozenset({"32260", "32274", "32275"})
    codec: CodecOptions = DEFAULT_OPTIONS


DEFAULT_GY_OPTIONS = GyOptions()
STRICT_GY_OPTIONS = GyOptions(
    accept_unknown_service_context=False,
    application_id_in_vendor_specific=False,
    first_of_repeated=False,
    ignore_unknown_mandatory=False,
    allow_missing_ims_information=False,
    default_requested_action=False,
    accept_ietf_sip_method=False,
    accept_unknown_enum_values=False,
)

IMS_SERVICE = "32260"


# --- request views -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnitValue:
    """A decimal as Value-Digits x 10^Exponent (RFC 4006 §8.8); exact, never a float."""

    value_digits: int
    exponent: int = 0

    @classmethod
    def from_decimal(cls, amount: Decimal) -> UnitValue:
        """Represent *amount* exactly."""
        sign, digits, exponent = amount.normalize().as_tuple()
        if not isinstance(exponent, int):
            raise ValueError(f"{amount} is not a finite number")
        value = int("".join(map(str, digits)) or "0")
        return cls(-value if sign else value, exponent)

    def to_decimal(self) -> Decimal:
        """The exact amount."""
        return Decimal(self.value_digits).scaleb(self.exponent)


@dataclass(frozen=True, slots=True)
class Money:
    """CC-Money: an amount and its ISO 4217 numeric currency code."""

    unit_value: UnitValue
    currency_code: int | None = None


@dataclass(frozen=True, slots=True)
class RequestedUnits:
    """Requested-Service-Unit; all None is "requested, no value" (RFC 4006 §5.1.2)."""

    cc_time: int | None = None
    cc_total_octets: int | None = None
    cc_input_octets: int | None = None
    cc_output_octets: int | None = None
    cc_service_specific_units: int | None = None
    cc_money: Money | None = None

    @property
    def without_value(self) -> bool:
        """True for an empty Requested-Service-Unit: the server picks the quota."""
        return (
            self.cc_time is None
            and self.cc_total_octets is None
            and self.cc_input_octets is None
            and self.cc_output_octets is None
            and self.cc_service_specific_units is None
            and self.cc_money is None
        )


@dataclass(frozen=True, slots=True)
class UsedUnits:
    """One Used-Service-Unit (RFC 4006 §8.19 with the TS 32.299 additions)."""

    cc_time: int | None = None
    cc_total_octets: int | None = None
    cc_input_octets: int | None = None
    cc_output_octets: int | None = None
    cc_service_specific_units: int | None = None
    cc_money: Money | None = None
    tariff_change_usage: TariffChangeUsage | int | None = None
    reporting_reason: ReportingReason | int | None = None
    event_charging_timestamps: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class MsccRequest:
    """A Multiple-Services-Credit-Control of a CCR."""

    rating_group: int | None = None
    service_identifiers: tuple[int, ...] = ()
    requested: RequestedUnits | None = None
    used: tuple[UsedUnits, ...] = ()
    reporting_reason: ReportingReason | int | None = None
    trigger_types: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionId:
    """Subscription-Id: who is charged (E.164, IMSI, SIP URI, NAI or private)."""

    type: SubscriptionIdType | int
    data: str


@dataclass(frozen=True, slots=True)
class EventType:
    """Event-Type (TS 32.299 §7.2): the SIP method or event that is charged."""

    sip_method: str | None = None
    event: str | None = None
    expires: int | None = None


@dataclass(frozen=True, slots=True)
class ImsInformation:
    """The IMS-Information fields a VoIP OCS uses (TS 32.299 §7.2)."""

    event_type: EventType | None = None
    role_of_node: RoleOfNode | int | None = None
    node_functionality: NodeFunctionality | int | None = None
    user_session_id: str | None = None
    calling_party_addresses: tuple[str, ...] = ()
    called_party_address: str | None = None
    requested_party_addresses: tuple[str, ...] = ()
    called_asserted_identities: tuple[str, ...] = ()
    ims_charging_identifier: str | None = None
    sip_request_timestamp: datetime | None = None
    sip_response_timestamp: datetime | None = None
    originating_ioi: str | None = None
    terminating_ioi: str | None = None
    access_network_information: tuple[bytes, ...] = ()
    cause_code: int | None = None
    alternate_charged_party_address: str | None = None
    number_portability_routing_information: str | None = None
    carrier_select_routing_information: str | None = None
    ims_visited_network_identifier: str | None = None

    @property
    def calling_party_address(self) -> str | None:
        """The first Calling-Party-Address."""
        return self.calling_party_addresses[0] if self.calling_party_addresses else None

    @property
    def requested_party_address(self) -> str | None:
        """The first Requested-Party-Address (the number dialled before translation)."""
        return self.requested_party_addresses[0] if self.requested_party_addresses else None


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """Service-Context-Id split per TS 32.299 §7.1.12."""

    service: str
    domain: str
    release: str | None = None
    mcc: str | None = None
    mnc: str | None = None
    extension: str | None = None

    @property
    def is_3gpp(self) -> bool:
        """True for ``...@3gpp.org``."""
        return self.domain.lower() == "3gpp.org"


def parse_service_context_id(text: str) -> ServiceContext | None:
    """Split ``[<ext>.][<MNC>.<MCC>.][<release>.]<service>@<domain>``; None if no ``@``."""
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return None
    parts = local.split(".")
    service = parts.pop()
    release = mcc = mnc = None
    if parts and parts[-1].isdigit():
        release = parts.pop()
    if len(parts) >= 2 and parts[-1].isdigit() and parts[-2].isdigit():
        mcc = parts.pop()
        mnc = parts.pop()
    extension = ".".join(parts) or None
    return ServiceContext(service, domain, release, mcc, mnc, extension)


_SERVICE_CONTEXTS: dict[str, ServiceContext | None] = {}


def _service_context(text: str) -> ServiceContext | None:
    # Every CCR of a deployment carries one of a handful of values: remember them (bounded).
    try:
        return _SERVICE_CONTEXTS[text]
    except KeyError:
        parsed = parse_service_context_id(text)
        if len(_SERVICE_CONTEXTS) < 64:
            _SERVICE_CONTEXTS[text] = parsed
        return parsed


@dataclass(frozen=True, slots=True)
class CreditControlRequest:
    """A CCR, validated; ``message`` is the request it was read from."""

    session_id: str
    origin_host: str
    origin_realm: str
    destination_realm: str
    service_context_id: str
    request_type: CcRequestType
    request_number: int
    auth_application_id: int = _CREDIT_CONTROL_APP
    destination_host: str | None = None
    service_context: ServiceContext | None = None
    requested_action: RequestedAction | None = None
    event_timestamp: datetime | None = None
    subscription_ids: tuple[SubscriptionId, ...] = ()
    user_name: str | None = None
    origin_state_id: int | None = None
    termination_cause: TerminationCause | int | None = None
    multiple_services_indicator: MultipleServicesIndicator | int | None = None
    mscc: tuple[MsccRequest, ...] = ()
    requested: RequestedUnits | None = None
    used: tuple[UsedUnits, ...] = ()
    service_identifier: int | None = None
    ims: ImsInformation | None = None
    tolerated: tuple[str, ...] = ()
    message: Message | None = field(default=None, compare=False, repr=False)
    proxy_infos: tuple[Avp, ...] = field(default=(), compare=False, repr=False)

    @property
    def is_event(self) -> bool:
        """True for a one-off charge (EVENT_REQUEST)."""
        return self.request_type is CcRequestType.EVENT_REQUEST

    def subscription(self, kind: SubscriptionIdType) -> str | None:
        """The first Subscription-Id-Data of this type, if any."""
        for subscription in self.subscription_ids:
            if subscription.type == kind:
                return subscription.data
        return None


# --- CCR: the fast path ------------------------------------------------------------------


def _positional_builder(cls: type[T]) -> Callable[..., T]:
    """A constructor of the frozen, slotted dataclass *cls* taking every field positionally.

    It sets the slots through their descriptors, as ``__init__`` would through
    ``object.__setattr__`` (the frozen guard), at under half the cost: the CCR view builds
    seven such objects per request.  Only for classes without ``__post_init__``.
    """
    members = fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or not all(item.init for item in members):
        raise TypeError(f"{cls.__name__} needs its own __init__")
    names = [item.name for item in members]
    setters = {f"_set_{name}": getattr(cls, name).__set__ for name in names}
    source = (
        f"def build({', '.join(names)}):\n    obj = _new(_cls)\n"
        + "".join(f"    _set_{name}(obj, {name})\n" for name in names)
        + "    return obj\n"
    )
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, **setters}
    exec(source, namespace)  # as dataclasses itself builds __init__
    return cast(Callable[..., T], namespace["build"])


_H2 = struct.Struct("!II")
_H3 = struct.Struct("!III")
_U32 = struct.Struct("!I")
_I32 = struct.Struct("!i")
_U64 = struct.Struct("!Q")
_I64 = struct.Struct("!q")


class _Malformed(Exception):
    """The fast path met something only the generic codec can describe exactly."""


_Slot = tuple[int, int, int, int]  # key, flags, payload start, payload stop


def _u32(buf: bytes, slot: _Slot) -> int:
    start = slot[2]
    if slot[3] - start != 4:
        raise _Malformed
    return int(_U32.unpack_from(buf, start)[0])


def _i32(buf: bytes, slot: _Slot) -> int:
    start = slot[2]
    if slot[3] - start != 4:
        raise _Malformed
    return int(_I32.unpack_from(buf, start)[0])


def _u64(buf: bytes, slot: _Slot) -> int:
    start = slot[2]
    if slot[3] - start != 8:
        raise _Malformed
    return int(_U64.unpack_from(buf, start)[0])


def _i64(buf: bytes, slot: _Slot) -> int:
    start = slot[2]
    if slot[3] - start != 8:
        raise _Malformed
    return int(_I64.unpack_from(buf, start)[0])


def _text(buf: bytes, slot: _Slot) -> str:
    try:
        return buf[slot[2] : slot[3]].decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed from None


def _ascii(buf: bytes, slot: _Slot) -> str:
    try:
        return buf[slot[2] : slot[3]].decode("ascii")
    except UnicodeDecodeError:
        raise _Malformed from None


def _time(buf: bytes, slot: _Slot) -> datetime:
    if slot[3] - slot[2] != 4:
        raise _Malformed
    return pull_time(buf[slot[2] : slot[3]])


def _slot_avp(buf: bytes, slot: _Slot, value: object | None = None) -> Avp:
    """The AVP of *slot* for a Failed-AVP: with *value*, else decoded, else raw."""
    key, flags, start, stop = slot
    if value is not None:
        return Avp(key & 0xFFFFFFFF, key >> 32, flags, value)  # type: ignore[arg-type]
    header = 12 if flags & 0x80 else 8
    try:
        (avp,) = DEFAULT_OPTIONS.decoder.pull_avps(
            buf[start - header : stop], 0, stop - start + header, []
        )
    except (DiameterError, ValueError):
        return Avp(key & 0xFFFFFFFF, key >> 32, flags, buf[start:stop])
    return avp


_EMPTY: tuple[()] = ()
_MEMBERS: dict[type[IntEnum], dict[int, IntEnum]] = {}


def _members(enum_type: type[E]) -> dict[int, E]:
    """value -> member, cached: much cheaper than calling the enum class."""
    members = _MEMBERS.get(enum_type)
    if members is None:
        members = _MEMBERS[enum_type] = {int(member): member for member in enum_type}
    return members  # type: ignore[return-value]


class _Reader:
    """Per-request state of the CCR fast path: options, notes and the octets."""

    __slots__ = ("buf", "notes", "options")

    def __init__(self, buf: bytes, options: GyOptions) -> None:
        self.buf = buf
        self.options = options
        self.notes: list[str] = []

    def collect(
        self,
        pos: int,
        end: int,
        single: dict[int, int],
        multi: dict[int, int],
        parents: tuple[_Slot | Avp, ...],
    ) -> tuple[list[_Slot | None], list[list[_Slot]]]:
        """Walk an AVP list and sort its AVPs into slots by role.

        Multi-valued roles that did not occur are an empty tuple rather than a fresh list.

        Checks every header (raising _Malformed for the generic codec to describe), repeated
        single AVPs and unknown AVPs with the M bit.
        """
        buf = self.buf
        singles: list[_Slot | None] = [None] * len(single)
        multis: list[list[_Slot]] = [_EMPTY] * len(multi)  # type: ignore[list-item]
        get_single = single.get
        get_multi = multi.get
        unpack3 = _H3.unpack_from
        while pos < end:
            if end - pos >= 12:
                code, word, third = unpack3(buf, pos)
            elif end - pos >= 8:
                code, word = _H2.unpack_from(buf, pos)
                third = 0
            else:
                raise _Malformed
            length = word & 0xFFFFFF
            stop = pos + length
            if word & 0x80000000:
                if length < 12 or stop > end:
                    raise _Malformed
                key = (third << 32) | code
                slot = (key, word >> 24, pos + 12, stop)
            else:
                if length < 8 or stop > end:
                    raise _Malformed
                key = code
                slot = (code, word >> 24, pos + 8, stop)
            pos += (length + 3) & ~3
            index = get_single(key)
            if index is not None:
                if singles[index] is None:
                    singles[index] = slot
                else:
                    self.repeated(slot, parents)
                continue
            index = get_multi(key)
            if index is not None:
                if multis[index]:
                    multis[index].append(slot)
                else:
                    multis[index] = [slot]
            elif word & 0x40000000 and key not in DEFINITIONS:
                self.unknown_mandatory(slot, parents)
        if pos != end:
            raise _Malformed
        return singles, multis

    def repeated(self, slot: _Slot, parents: tuple[_Slot | Avp, ...]) -> None:
        """A single-occurrence AVP came again: keep the first, or 5009 when strict."""
        name = avp_name(slot[0] & 0xFFFFFFFF, slot[0] >> 32)
        if self.options.first_of_repeated:
            self.notes.append(f"{name} repeated, the first one was used")
            return
        raise _error(
            ResultCode.DIAMETER_AVP_OCCURS_TOO_MANY_TIMES,
            f"{name} may appear only once",
            _slot_avp(self.buf, slot),
            parents,
        )

    def unknown_mandatory(self, slot: _Slot, parents: tuple[_Slot | Avp, ...]) -> None:
        """An AVP we do not know has the M bit: ignore it, or 5001 when strict."""
        name = avp_name(slot[0] & 0xFFFFFFFF, slot[0] >> 32)
        if self.options.ignore_unknown_mandatory:
            self.notes.append(f"unknown mandatory {name} ignored")
            return
        raise _error(
            ResultCode.DIAMETER_AVP_UNSUPPORTED,
            f"{name} is not supported and has the M bit set",
            _slot_avp(self.buf, slot),
            parents,
        )

    def enum(
        self, enum_type: type[E], slot: _Slot | None, parents: tuple[_Slot | Avp, ...]
    ) -> E | int | None:
        """An informational enumeration: unknown values kept as int unless strict."""
        if slot is None:
            return None
        value = _i32(self.buf, slot)
        member = _members(enum_type).get(value)
        if member is not None:
            return member
        name = avp_name(slot[0] & 0xFFFFFFFF, slot[0] >> 32)
        if self.options.accept_unknown_enum_values:
            self.notes.append(f"{name} value {value} unknown, kept as a number")
            return value
        raise _error(
            ResultCode.DIAMETER_INVALID_AVP_VALUE,
            f"{value} is not a valid {name}",
            _slot_avp(self.buf, slot, value),
            parents,
        )

    def strict_enum(self, enum_type: type[E], slot: _Slot, parents: tuple[_Slot | Avp, ...]) -> E:
        """An enumeration whose value changes how we charge: unknown values are 5004."""
        value = _i32(self.buf, slot)
        member = _members(enum_type).get(value)
        if member is not None:
            return member
        name = avp_name(slot[0] & 0xFFFFFFFF, slot[0] >> 32)
        raise _error(
            ResultCode.DIAMETER_INVALID_AVP_VALUE,
            f"{value} is not a valid {name}",
            _slot_avp(self.buf, slot, value),
            parents,
        )


def _error(
    result_code: int, text: str, failed: Avp, parents: tuple[_Slot | Avp, ...]
) -> DiameterError:
    """A DiameterError whose Failed-AVP wraps *failed* in its *parents*' headers (§7.5)."""
    for parent in reversed(parents):
        if isinstance(parent, Avp):
            failed = parent._replace(value=(failed,))
        else:
            key, flags = parent[0], parent[1]
            failed = Avp(key & 0xFFFFFFFF, key >> 32, flags, (failed,))
    return DiameterError(result_code, text, (failed,))


def _missing(code: int, vendor_id: int = 0, parents: tuple[_Slot | Avp, ...] = ()) -> DiameterError:
    missing = zeroed_avp(code, vendor_id)
    return _error(ResultCode.DIAMETER_MISSING_AVP, f"{missing.name} missing", missing, parents)


def _table(entries: dict[int, int]) -> dict[int, int]:
    return {int(key): index for key, index in entries.items()}


# Slot tables: AVP key -> index.  Singles may appear once, multis any number of times.
_A = AvpCode
_CCR_SINGLE = _table(
    {
        _A.SESSION_ID: 0,
        _A.ORIGIN_HOST: 1,
        _A.ORIGIN_REALM: 2,
        _A.DESTINATION_REALM: 3,
        _A.AUTH_APPLICATION_ID: 4,
        _A.SERVICE_CONTEXT_ID: 5,
        _A.CC_REQUEST_TYPE: 6,
        _A.CC_REQUEST_NUMBER: 7,
        _A.DESTINATION_HOST: 8,
        _A.USER_NAME: 9,
        _A.ORIGIN_STATE_ID: 10,
        _A.EVENT_TIMESTAMP: 11,
        _A.TERMINATION_CAUSE: 12,
        _A.REQUESTED_ACTION: 13,
        _A.MULTIPLE_SERVICES_INDICATOR: 14,
        _A.REQUESTED_SERVICE_UNIT: 15,
        _A.SERVICE_IDENTIFIER: 16,
        _T | TgppAvpCode.SERVICE_INFORMATION: 17,
    }
)
_CCR_MULTI = _table(
    {
        _A.SUBSCRIPTION_ID: 0,
        _A.MULTIPLE_SERVICES_CREDIT_CONTROL: 1,
        _A.USED_SERVICE_UNIT: 2,
        _A.PROXY_INFO: 3,
        _A.VENDOR_SPECIFIC_APPLICATION_ID: 4,
    }
)
_SUBSCRIPTION_SINGLE = _table({_A.SUBSCRIPTION_ID_TYPE: 0, _A.SUBSCRIPTION_ID_DATA: 1})
_MSCC_SINGLE = _table(
    {
        _A.RATING_GROUP: 0,
        _A.REQUESTED_SERVICE_UNIT: 1,
        _T | TgppAvpCode.REPORTING_REASON: 2,
    }
)
_MSCC_MULTI = _table(
    {
        _A.SERVICE_IDENTIFIER: 0,
        _A.USED_SERVICE_UNIT: 1,
        _T | TgppAvpCode.TRIGGER: 2,
    }
)
_UNITS_SINGLE = _table(
    {
        _A.CC_TIME: 0,
        _A.CC_TOTAL_OCTETS: 1,
        _A.CC_INPUT_OCTETS: 2,
        _A.CC_OUTPUT_OCTETS: 3,
        _A.CC_SERVICE_SPECIFIC_UNITS: 4,
        _A.CC_MONEY: 5,
        _A.TARIFF_CHANGE_USAGE: 6,
        _T | TgppAvpCode.REPORTING_REASON: 7,
    }
)
_UNITS_MULTI = _table({_T | TgppAvpCode.EVENT_CHARGING_TIMESTAMP: 0})
_MONEY_SINGLE = _table({_A.UNIT_VALUE: 0, _A.CURRENCY_CODE: 1})
_UNIT_VALUE_SINGLE = _table({_A.VALUE_DIGITS: 0, _A.EXPONENT: 1})
_SERVICE_INFORMATION_SINGLE = _table({_T | TgppAvpCode.IMS_INFORMATION: 0})
_SERVICE_INFORMATION_MULTI = _table({_A.SUBSCRIPTION_ID: 0})
_IMS_SINGLE = _table(
    {
        _T | TgppAvpCode.EVENT_TYPE: 0,
        _T | TgppAvpCode.ROLE_OF_NODE: 1,
        _T | TgppAvpCode.NODE_FUNCTIONALITY: 2,
        _T | TgppAvpCode.USER_SESSION_ID: 3,
        _T | TgppAvpCode.CALLED_PARTY_ADDRESS: 4,
        _T | TgppAvpCode.IMS_CHARGING_IDENTIFIER: 5,
        _T | TgppAvpCode.TIME_STAMPS: 6,
        _T | TgppAvpCode.CAUSE_CODE: 7,
        _T | TgppAvpCode.ALTERNATE_CHARGED_PARTY_ADDRESS: 8,
        _T | TgppAvpCode.NUMBER_PORTABILITY_ROUTING_INFORMATION: 9,
        _T | TgppAvpCode.CARRIER_SELECT_ROUTING_INFORMATION: 10,
        _T | TgppAvpCode.IMS_VISITED_NETWORK_IDENTIFIER: 11,
    }
)
_IMS_MULTI = _table(
    {
        _T | TgppAvpCode.CALLING_PARTY_ADDRESS: 0,
        _T | TgppAvpCode.REQUESTED_PARTY_ADDRESS: 1,
        _T | TgppAvpCode.CALLED_ASSERTED_IDENTITY: 2,
        _T | TgppAvpCode.INTER_OPERATOR_IDENTIFIER: 3,
        _T | TgppAvpCode.ACCESS_NETWORK_INFORMATION: 4,
    }
)
_EVENT_TYPE_SINGLE = _table(
    {
        _T | TgppAvpCode.SIP_METHOD: 0,
        _T | TgppAvpCode.EVENT: 1,
        _T | TgppAvpCode.EXPIRES: 2,
        _A.SIP_METHOD: 3,  # the RFC 4740 AVP some clients (python-diameter too) send instead
    }
)
_TIME_STAMPS_SINGLE = _table(
    {
        _T | TgppAvpCode.SIP_REQUEST_TIMESTAMP: 0,
        _T | TgppAvpCode.SIP_RESPONSE_TIMESTAMP: 1,
    }
)
_IOI_SINGLE = _table({_T | TgppAvpCode.ORIGINATING_IOI: 0, _T | TgppAvpCode.TERMINATING_IOI: 1})
_TRIGGER_MULTI = _table({_T | TgppAvpCode.TRIGGER_TYPE: 0})
_VSAI_SINGLE = _table({_A.AUTH_APPLICATION_ID: 0})
_NONE: dict[int, int] = {}

_build_ccr = _positional_builder(CreditControlRequest)
_build_subscription = _positional_builder(SubscriptionId)
_build_mscc = _positional_builder(MsccRequest)
_build_requested = _positional_builder(RequestedUnits)
_build_used = _positional_builder(UsedUnits)
_build_event_type = _positional_builder(EventType)
_build_ims = _positional_builder(ImsInformation)

_REQUIRED = (
    (0, _A.SESSION_ID),
    (1, _A.ORIGIN_HOST),
    (2, _A.ORIGIN_REALM),
    (3, _A.DESTINATION_REALM),
    (5, _A.SERVICE_CONTEXT_ID),
    (6, _A.CC_REQUEST_TYPE),
    (7, _A.CC_REQUEST_NUMBER),
)


def decode_ccr(message: Message, options: GyOptions = DEFAULT_GY_OPTIONS) -> CreditControlRequest:
    """Validate a CCR and return its view; raise DiameterError for the error answer."""
    if message.command_code != CommandCode.CREDIT_CONTROL or not message.is_request:
        raise DiameterError(ResultCode.DIAMETER_COMMAND_UNSUPPORTED, "not a Credit-Control-Request")
    if message.application_id != _CREDIT_CONTROL_APP:
        raise DiameterError(
            ResultCode.DIAMETER_APPLICATION_UNSUPPORTED,
            f"application {message.application_id} is not credit control",
        )
    codec = options.codec
    raw = message.raw if message.raw is not None else encode_message(message)
    if codec.reject_unknown_mandatory or codec.enforce_flag_rules:
        decode_message(raw, codec)  # the strict codec checks need the whole tree
    try:
        return _read_ccr(raw, message, options)
    except _Malformed:
        pass
    # Malformed somewhere: the generic codec names the error, or, if it accepted the octets
    # (e.g. a Grouped length without its last padding), re-encoding normalises them.
    normalised = Message(
        message.command_code,
        message.flags,
        message.application_id,
        message.hop_by_hop_id,
        message.end_to_end_id,
        message.avps,
    )
    try:
        return _read_ccr(encode_message(normalised), message, options)
    except _Malformed:  # pragma: no cover - the codec and the fast path disagree
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_AVP_VALUE, "malformed Credit-Control-Request"
        ) from None


def _read_ccr(buf: bytes, message: Message, options: GyOptions) -> CreditControlRequest:
    reader = _Reader(buf, options)
    notes = reader.notes
    top, lists = reader.collect(20, len(buf), _CCR_SINGLE, _CCR_MULTI, ())
    for index, code in _REQUIRED:
        if top[index] is None:
            raise _missing(code)
    session_slot, host_slot, realm_slot, dest_slot = top[0], top[1], top[2], top[3]
    context_slot, type_slot, number_slot = top[5], top[6], top[7]
    assert session_slot and host_slot and realm_slot and dest_slot
    assert context_slot and type_slot and number_slot

    # Auth-Application-Id (RFC 4006 §3.1), possibly only in Vendor-Specific-Application-Id.
    app_slot = top[4]
    if app_slot is None:
        for vsai in lists[4]:
            inner, _ = reader.collect(vsai[2], vsai[3], _VSAI_SINGLE, _NONE, ())
            if inner[0] is not None:
                app_slot = inner[0]
                break
        if app_slot is None or not options.application_id_in_vendor_specific:
            raise _missing(_A.AUTH_APPLICATION_ID)
        notes.append("Auth-Application-Id given only in Vendor-Specific-Application-Id")
    application_id = _u32(buf, app_slot)
    if application_id != _CREDIT_CONTROL_APP:
        raise _error(
            ResultCode.DIAMETER_APPLICATION_UNSUPPORTED,
            f"Auth-Application-Id {application_id} is not credit control",
            _slot_avp(buf, app_slot, application_id),
            (),
        )

    request_type = reader.strict_enum(CcRequestType, type_slot, ())
    action_slot = top[13]
    requested_action: RequestedAction | None = None
    if action_slot is not None:
        requested_action = reader.strict_enum(RequestedAction, action_slot, ())
    elif request_type is CcRequestType.EVENT_REQUEST:
        if not options.default_requested_action:
            raise _missing(_A.REQUESTED_ACTION)
        requested_action = RequestedAction.DIRECT_DEBITING
        notes.append("EVENT_REQUEST without Requested-Action read as DIRECT_DEBITING")

    service_context_id = _text(buf, context_slot)
    service_context = _service_context(service_context_id)
    known = (
        service_context is not None
        and service_context.is_3gpp
        and service_context.service in options.service_contexts
    )
    if not known:
        if not options.accept_unknown_service_context:
            raise _error(
                ResultCode.DIAMETER_INVALID_AVP_VALUE,
                f"Service-Context-Id {service_context_id!r} is not served here",
                _slot_avp(buf, context_slot, service_context_id),
                (),
            )
        notes.append(f"Service-Context-Id {service_context_id!r} is not a known 3GPP context")

    subscriptions = [_subscription(reader, slot) for slot in lists[0]]
    ims: ImsInformation | None = None
    service_slot = top[17]
    if service_slot is not None:
        parents = (service_slot,)
        info, info_lists = reader.collect(
            service_slot[2],
            service_slot[3],
            _SERVICE_INFORMATION_SINGLE,
            _SERVICE_INFORMATION_MULTI,
            parents,
        )
        # TS 32.299 (Rel-12+) may carry Subscription-Id inside Service-Information.
        subscriptions.extend(_subscription(reader, slot, parents) for slot in info_lists[0])
        if info[0] is not None:
            ims = _ims(reader, info[0], parents)
    if ims is None and service_context is not None and service_context.service == IMS_SERVICE:
        if not options.allow_missing_ims_information:
            raise _missing(
                TgppAvpCode.IMS_INFORMATION,
                _TGPP,
                (zeroed_avp(TgppAvpCode.SERVICE_INFORMATION, _TGPP),),
            )
        notes.append("IMS-Information missing")

    requested_slot = top[15]
    user_name_slot = top[9]
    destination_host_slot = top[8]
    state_slot = top[10]
    timestamp_slot = top[11]
    service_identifier_slot = top[16]
    mscc_slots, used_slots, proxy_slots = lists[1], lists[2], lists[3]
    return _build_ccr(
        _text(buf, session_slot),  # session_id
        _ascii(buf, host_slot),  # origin_host
        _ascii(buf, realm_slot),  # origin_realm
        _ascii(buf, dest_slot),  # destination_realm
        service_context_id,
        request_type,
        _u32(buf, number_slot),  # request_number
        application_id,  # auth_application_id
        None if destination_host_slot is None else _ascii(buf, destination_host_slot),
        service_context,
        requested_action,
        None if timestamp_slot is None else _time(buf, timestamp_slot),  # event_timestamp
        tuple(subscriptions),  # subscription_ids
        None if user_name_slot is None else _text(buf, user_name_slot),  # user_name
        None if state_slot is None else _u32(buf, state_slot),  # origin_state_id
        reader.enum(TerminationCause, top[12], ()),  # termination_cause
        reader.enum(MultipleServicesIndicator, top[14], ()),  # multiple_services_indicator
        tuple([_mscc(reader, slot) for slot in mscc_slots]) if mscc_slots else (),  # mscc
        None if requested_slot is None else _requested(reader, requested_slot, ()),  # requested
        tuple([_used(reader, slot, ()) for slot in used_slots]) if used_slots else (),  # used
        None  # service_identifier
        if service_identifier_slot is None
        else _u32(buf, service_identifier_slot),
        ims,
        (*message.tolerated, *notes) if message.is_decoded else tuple(notes),  # tolerated
        message,
        tuple([_slot_avp(buf, slot) for slot in proxy_slots]) if proxy_slots else (),
    )


def _subscription(
    reader: _Reader, slot: _Slot, outer: tuple[_Slot | Avp, ...] = ()
) -> SubscriptionId:
    parents = (*outer, slot)
    members, _ = reader.collect(slot[2], slot[3], _SUBSCRIPTION_SINGLE, _NONE, parents)
    type_slot, data_slot = members
    if type_slot is None:
        raise _missing(_A.SUBSCRIPTION_ID_TYPE, 0, parents)
    if data_slot is None:
        raise _missing(_A.SUBSCRIPTION_ID_DATA, 0, parents)
    kind = reader.enum(SubscriptionIdType, type_slot, parents)
    assert kind is not None
    return _build_subscription(kind, _text(reader.buf, data_slot))


def _mscc(reader: _Reader, slot: _Slot) -> MsccRequest:
    buf = reader.buf
    parents = (slot,)
    members, lists = reader.collect(slot[2], slot[3], _MSCC_SINGLE, _MSCC_MULTI, parents)
    rating_slot, requested_slot, reason_slot = members
    triggers: list[int] = []
    service_slots, used_slots, trigger_slots = lists
    for trigger in trigger_slots:
        inner_parents = (*parents, trigger)
        _, trigger_types = reader.collect(
            trigger[2], trigger[3], _NONE, _TRIGGER_MULTI, inner_parents
        )
        triggers.extend(_i32(buf, item) for item in trigger_types[0])
    return _build_mscc(
        None if rating_slot is None else _u32(buf, rating_slot),  # rating_group
        tuple([_u32(buf, item) for item in service_slots]) if service_slots else (),
        None if requested_slot is None else _requested(reader, requested_slot, parents),
        tuple([_used(reader, item, parents) for item in used_slots]) if used_slots else (),
        reader.enum(ReportingReason, reason_slot, parents),  # reporting_reason
        tuple(triggers),  # trigger_types
    )


def _units(
    reader: _Reader, slot: _Slot, outer: tuple[_Slot | Avp, ...]
) -> tuple[list[_Slot | None], list[list[_Slot]], tuple[_Slot | Avp, ...]]:
    parents = (*outer, slot)
    members, lists = reader.collect(slot[2], slot[3], _UNITS_SINGLE, _UNITS_MULTI, parents)
    return members, lists, parents


def _unit_values(
    reader: _Reader, members: list[_Slot | None], parents: tuple[_Slot | Avp, ...]
) -> tuple[Any, ...]:
    """The six fields Requested- and Used-Service-Unit share, in their order."""
    buf = reader.buf
    time_slot, total_slot, input_slot, output_slot, units_slot, money_slot = members[:6]
    return (
        None if time_slot is None else _u32(buf, time_slot),  # cc_time
        None if total_slot is None else _u64(buf, total_slot),  # cc_total_octets
        None if input_slot is None else _u64(buf, input_slot),  # cc_input_octets
        None if output_slot is None else _u64(buf, output_slot),  # cc_output_octets
        None if units_slot is None else _u64(buf, units_slot),  # cc_service_specific_units
        None if money_slot is None else _money(reader, money_slot, parents),  # cc_money
    )


def _requested(reader: _Reader, slot: _Slot, outer: tuple[_Slot | Avp, ...]) -> RequestedUnits:
    members, _, parents = _units(reader, slot, outer)
    return _build_requested(*_unit_values(reader, members, parents))


def _used(reader: _Reader, slot: _Slot, outer: tuple[_Slot | Avp, ...]) -> UsedUnits:
    buf = reader.buf
    members, lists, parents = _units(reader, slot, outer)
    stamps = lists[0]
    return _build_used(
        *_unit_values(reader, members, parents),
        reader.enum(TariffChangeUsage, members[6], parents),  # tariff_change_usage
        reader.enum(ReportingReason, members[7], parents),  # reporting_reason
        tuple([_time(buf, item) for item in stamps]) if stamps else (),
    )


def _money(reader: _Reader, slot: _Slot, outer: tuple[_Slot | Avp, ...]) -> Money:
    buf = reader.buf
    parents = (*outer, slot)
    members, _ = reader.collect(slot[2], slot[3], _MONEY_SINGLE, _NONE, parents)
    value_slot, currency_slot = members
    if value_slot is None:
        raise _missing(_A.UNIT_VALUE, 0, parents)
    return Money(
        unit_value=_unit_value(reader, value_slot, parents),
        currency_code=None if currency_slot is None else _u32(buf, currency_slot),
    )


def _unit_value(reader: _Reader, slot: _Slot, outer: tuple[_Slot | Avp, ...]) -> UnitValue:
    buf = reader.buf
    parents = (*outer, slot)
    members, _ = reader.collect(slot[2], slot[3], _UNIT_VALUE_SINGLE, _NONE, parents)
    digits_slot, exponent_slot = members
    if digits_slot is None:
        raise _missing(_A.VALUE_DIGITS, 0, parents)
    return UnitValue(
        _i64(buf, digits_slot), 0 if exponent_slot is None else _i32(buf, exponent_slot)
    )


def _ims(reader: _Reader, slot: _Slot, outer: tuple[_Slot | Avp, ...]) -> ImsInformation:
    buf = reader.buf
    parents = (*outer, slot)
    members, lists = reader.collect(slot[2], slot[3], _IMS_SINGLE, _IMS_MULTI, parents)
    event_type: EventType | None = None
    if members[0] is not None:
        event_slot = members[0]
        inner, _ = reader.collect(
            event_slot[2],
            event_slot[3],
            _EVENT_TYPE_SINGLE,
            _NONE,
            (*parents, event_slot),
        )
        method_slot, event_name_slot, expires_slot, ietf_method_slot = inner
        if method_slot is None and ietf_method_slot is not None:
            if not reader.options.accept_ietf_sip_method:
                raise _error(
                    ResultCode.DIAMETER_AVP_NOT_ALLOWED,
                    "Event-Type carries the RFC 4740 SIP-Method, not TS 32.299's",
                    _slot_avp(buf, ietf_method_slot),
                    (*parents, event_slot),
                )
            method_slot = ietf_method_slot
            reader.notes.append("Event-Type has the RFC 4740 SIP-Method (393), read as 3GPP's")
        event_type = _build_event_type(
            None if method_slot is None else _text(buf, method_slot),  # sip_method
            None if event_name_slot is None else _text(buf, event_name_slot),  # event
            None if expires_slot is None else _u32(buf, expires_slot),  # expires
        )
    request_time = response_time = None
    if members[6] is not None:
        stamps_slot = members[6]
        stamps, _ = reader.collect(
            stamps_slot[2],
            stamps_slot[3],
            _TIME_STAMPS_SINGLE,
            _NONE,
            (*parents, stamps_slot),
        )
        request_time = None if stamps[0] is None else _time(buf, stamps[0])
        response_time = None if stamps[1] is None else _time(buf, stamps[1])
    originating = terminating = None
    for ioi_slot in lists[3][:1]:
        ioi, _ = reader.collect(ioi_slot[2], ioi_slot[3], _IOI_SINGLE, _NONE, (*parents, ioi_slot))
        originating = None if ioi[0] is None else _text(buf, ioi[0])
        terminating = None if ioi[1] is None else _text(buf, ioi[1])

    calling, requested, asserted, _, access = lists
    (
        _,
        role_slot,
        node_slot,
        session_slot,
        called_slot,
        icid_slot,
        _,
        cause_slot,
        charged_slot,
        portability_slot,
        carrier_slot,
        visited_slot,
    ) = members
    return _build_ims(
        event_type,
        reader.enum(RoleOfNode, role_slot, parents),  # role_of_node
        reader.enum(NodeFunctionality, node_slot, parents),  # node_functionality
        None if session_slot is None else _text(buf, session_slot),  # user_session_id
        tuple([_text(buf, item) for item in calling]) if calling else (),
        None if called_slot is None else _text(buf, called_slot),  # called_party_address
        tuple([_text(buf, item) for item in requested]) if requested else (),
        tuple([_text(buf, item) for item in asserted]) if asserted else (),
        None if icid_slot is None else _text(buf, icid_slot),  # ims_charging_identifier
        request_time,  # sip_request_timestamp
        response_time,  # sip_response_timestamp
        originating,  # originating_ioi
        terminating,  # terminating_ioi
        tuple([buf[item[2] : item[3]] for item in access]) if access else (),
        None if cause_slot is None else _i32(buf, cause_slot),  # cause_code
        None if charged_slot is None else _text(buf, charged_slot),
        None if portability_slot is None else _text(buf, portability_slot),
        None if carrier_slot is None else _text(buf, carrier_slot),
        None if visited_slot is None else _text(buf, visited_slot),
    )


# --- answer views ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantedUnits:
    """Granted-Service-Unit (RFC 4006 §8.17)."""

    cc_time: int | None = None
    cc_total_octets: int | None = None
    cc_input_octets: int | None = None
    cc_output_octets: int | None = None
    cc_service_specific_units: int | None = None
    cc_money: Money | None = None
    tariff_time_change: datetime | None = None


@dataclass(frozen=True, slots=True)
class RedirectServer:
    """Redirect-Server (RFC 4006 §8.37): where to send the user when credit runs out."""

    address_type: RedirectAddressType
    address: str


@dataclass(frozen=True, slots=True)
class FinalUnitIndication:
    """Final-Unit-Indication (RFC 4006 §8.34): what happens after the last granted units."""

    action: FinalUnitAction
    redirect_server: RedirectServer | None = None
    restriction_filter_rules: tuple[str, ...] = ()
    filter_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CostInformation:
    """Cost-Information (RFC 4006 §8.7): an exact amount in an ISO 4217 numeric currency."""

    unit_value: UnitValue
    currency_code: int
    cost_unit: str | None = None


@dataclass(frozen=True, slots=True)
class MsccAnswer:
    """A Multiple-Services-Credit-Control of a CCA."""

    rating_group: int | None = None
    service_identifiers: tuple[int, ...] = ()
    result_code: int | None = None
    granted: GrantedUnits | None = None
    validity_time: int | None = None
    final_unit_indication: FinalUnitIndication | None = None
    time_quota_threshold: int | None = None
    volume_quota_threshold: int | None = None
    quota_holding_time: int | None = None
    extra_avps: tuple[Avp, ...] = ()


@dataclass(frozen=True, slots=True)
class CreditControlAnswer:
    """What ocsd answers to a CCR; :func:`encode_cca` turns it into a message."""

    result_code: int
    mscc: tuple[MsccAnswer, ...] = ()
    granted: GrantedUnits | None = None
    validity_time: int | None = None
    final_unit_indication: FinalUnitIndication | None = None
    cost_information: CostInformation | None = None
    credit_control_failure_handling: CreditControlFailureHandling | None = None
    cc_session_failover: CcSessionFailover | None = None
    check_balance_result: CheckBalanceResult | None = None
    error_message: str | None = None
    failed_avps: tuple[Avp, ...] = ()
    extra_avps: tuple[Avp, ...] = ()


def _flags(code: int, vendor_id: int = 0) -> int:
    return definition(code, vendor_id).flags_to_send


_F = {int(code): _flags(code) for code in AvpCode}
_FT = {int(code): _flags(code, _TGPP) for code in TgppAvpCode}


_new_avp = tuple.__new__  # Avp(...) without the keyword-handling __new__: the CCA is hot


def _ietf(code: int, value: object) -> Avp:
    return _new_avp(Avp, (code, 0, _F[code], value))


def _tgpp(code: int, value: object) -> Avp:
    return _new_avp(Avp, (code, _TGPP, _FT[code], value))


def _unit_value_avp(code: int, value: UnitValue) -> Avp:
    members = [_ietf(_A.VALUE_DIGITS, value.value_digits)]
    if value.exponent:
        members.append(_ietf(_A.EXPONENT, value.exponent))
    return _ietf(code, tuple(members))


def _money_avp(money: Money) -> Avp:
    members = [_unit_value_avp(_A.UNIT_VALUE, money.unit_value)]
    if money.currency_code is not None:
        members.append(_ietf(_A.CURRENCY_CODE, money.currency_code))
    return _ietf(_A.CC_MONEY, tuple(members))


def _units_avps(
    units: GrantedUnits | RequestedUnits | UsedUnits,
) -> list[Avp]:
    members: list[Avp] = []
    if isinstance(units, GrantedUnits) and units.tariff_time_change is not None:
        members.append(_ietf(_A.TARIFF_TIME_CHANGE, units.tariff_time_change))
    if units.cc_time is not None:
        members.append(_ietf(_A.CC_TIME, units.cc_time))
    if units.cc_money is not None:
        members.append(_money_avp(units.cc_money))
    if units.cc_total_octets is not None:
        members.append(_ietf(_A.CC_TOTAL_OCTETS, units.cc_total_octets))
    if units.cc_input_octets is not None:
        members.append(_ietf(_A.CC_INPUT_OCTETS, units.cc_input_octets))
    if units.cc_output_octets is not None:
        members.append(_ietf(_A.CC_OUTPUT_OCTETS, units.cc_output_octets))
    if units.cc_service_specific_units is not None:
        members.append(_ietf(_A.CC_SERVICE_SPECIFIC_UNITS, units.cc_service_specific_units))
    if isinstance(units, UsedUnits):
        if units.tariff_change_usage is not None:
            members.append(_ietf(_A.TARIFF_CHANGE_USAGE, int(units.tariff_change_usage)))
        if units.reporting_reason is not None:
            members.append(_tgpp(TgppAvpCode.REPORTING_REASON, int(units.reporting_reason)))
        members.extend(
            _tgpp(TgppAvpCode.EVENT_CHARGING_TIMESTAMP, stamp)
            for stamp in units.event_charging_timestamps
        )
    return members


def _fui_avp(fui: FinalUnitIndication) -> Avp:
    members = [_ietf(_A.FINAL_UNIT_ACTION, int(fui.action))]
    members.extend(_ietf(_A.RESTRICTION_FILTER_RULE, rule) for rule in fui.restriction_filter_rules)
    members.extend(_ietf(_A.FILTER_ID, name) for name in fui.filter_ids)
    if fui.redirect_server is not None:
        members.append(
            _ietf(
                _A.REDIRECT_SERVER,
                (
                    _ietf(_A.REDIRECT_ADDRESS_TYPE, int(fui.redirect_server.address_type)),
                    _ietf(_A.REDIRECT_SERVER_ADDRESS, fui.redirect_server.address),
                ),
            )
        )
    return _ietf(_A.FINAL_UNIT_INDICATION, tuple(members))


def _mscc_answer_avp(mscc: MsccAnswer) -> Avp:
    members: list[Avp] = []
    if mscc.granted is not None:
        members.append(_ietf(_A.GRANTED_SERVICE_UNIT, tuple(_units_avps(mscc.granted))))
    members.extend(_ietf(_A.SERVICE_IDENTIFIER, sid) for sid in mscc.service_identifiers)
    if mscc.rating_group is not None:
        members.append(_ietf(_A.RATING_GROUP, mscc.rating_group))
    if mscc.validity_time is not None:
        members.append(_ietf(_A.VALIDITY_TIME, mscc.validity_time))
    if mscc.result_code is not None:
        members.append(_ietf(_A.RESULT_CODE, int(mscc.result_code)))
    if mscc.final_unit_indication is not None:
        members.append(_fui_avp(mscc.final_unit_indication))
    if mscc.time_quota_threshold is not None:
        members.append(_tgpp(TgppAvpCode.TIME_QUOTA_THRESHOLD, mscc.time_quota_threshold))
    if mscc.volume_quota_threshold is not None:
        members.append(_tgpp(TgppAvpCode.VOLUME_QUOTA_THRESHOLD, mscc.volume_quota_threshold))
    if mscc.quota_holding_time is not None:
        members.append(_tgpp(TgppAvpCode.QUOTA_HOLDING_TIME, mscc.quota_holding_time))
    members.extend(mscc.extra_avps)
    return _ietf(_A.MULTIPLE_SERVICES_CREDIT_CONTROL, tuple(members))


def encode_cca(
    request: CreditControlRequest, answer: CreditControlAnswer, identity: LocalIdentity
) -> Message:
    """Build the CCA for *request* (RFC 4006 §3.2): header and Proxy-Info from the request."""
    avps = [
        _ietf(_A.SESSION_ID, request.session_id),
        _ietf(_A.RESULT_CODE, int(answer.result_code)),
        *identity.origin_avps,
        _ietf(_A.AUTH_APPLICATION_ID, _CREDIT_CONTROL_APP),
        _ietf(_A.CC_REQUEST_TYPE, int(request.request_type)),
        _ietf(_A.CC_REQUEST_NUMBER, request.request_number),
    ]
    if answer.cc_session_failover is not None:
        avps.append(_ietf(_A.CC_SESSION_FAILOVER, int(answer.cc_session_failover)))
    if answer.granted is not None:
        avps.append(_ietf(_A.GRANTED_SERVICE_UNIT, tuple(_units_avps(answer.granted))))
    avps.extend(_mscc_answer_avp(mscc) for mscc in answer.mscc)
    if answer.cost_information is not None:
        cost = answer.cost_information
        members = [
            _unit_value_avp(_A.UNIT_VALUE, cost.unit_value),
            _ietf(_A.CURRENCY_CODE, cost.currency_code),
        ]
        if cost.cost_unit is not None:
            members.append(_ietf(_A.COST_UNIT, cost.cost_unit))
        avps.append(_ietf(_A.COST_INFORMATION, tuple(members)))
    if answer.final_unit_indication is not None:
        avps.append(_fui_avp(answer.final_unit_indication))
    if answer.check_balance_result is not None:
        avps.append(_ietf(_A.CHECK_BALANCE_RESULT, int(answer.check_balance_result)))
    if answer.credit_control_failure_handling is not None:
        avps.append(
            _ietf(_A.CREDIT_CONTROL_FAILURE_HANDLING, int(answer.credit_control_failure_handling))
        )
    if answer.validity_time is not None:
        avps.append(_ietf(_A.VALIDITY_TIME, answer.validity_time))
    if answer.error_message:
        avps.append(_ietf(_A.ERROR_MESSAGE, answer.error_message))
    if answer.failed_avps:
        avps.append(_ietf(_A.FAILED_AVP, tuple(answer.failed_avps)))
    avps.extend(answer.extra_avps)
    avps.extend(request.proxy_infos)
    source = request.message
    if source is None:
        return Message(CommandCode.CREDIT_CONTROL, 0x40, _CREDIT_CONTROL_APP, 0, 0, tuple(avps))
    return Message(
        CommandCode.CREDIT_CONTROL,
        source.flags & 0x40,
        source.application_id,
        source.hop_by_hop_id,
        source.end_to_end_id,
        tuple(avps),
    )


# --- CCR encoding and CCA decoding (the client side: load generator, tests) -----------------


def encode_ccr(request: CreditControlRequest) -> Message:
    """Build a CCR from a view (hop-by-hop and end-to-end ids 0: the peer assigns them)."""
    avps = [
        _ietf(_A.SESSION_ID, request.session_id),
        _ietf(_A.ORIGIN_HOST, request.origin_host),
        _ietf(_A.ORIGIN_REALM, request.origin_realm),
        _ietf(_A.DESTINATION_REALM, request.destination_realm),
        _ietf(_A.AUTH_APPLICATION_ID, request.auth_application_id),
        _ietf(_A.SERVICE_CONTEXT_ID, request.service_context_id),
        _ietf(_A.CC_REQUEST_TYPE, int(request.request_type)),
        _ietf(_A.CC_REQUEST_NUMBER, request.request_number),
    ]
    if request.destination_host is not None:
        avps.append(_ietf(_A.DESTINATION_HOST, request.destination_host))
    if request.user_name is not None:
        avps.append(_ietf(_A.USER_NAME, request.user_name))
    if request.origin_state_id is not None:
        avps.append(_ietf(_A.ORIGIN_STATE_ID, request.origin_state_id))
    if request.event_timestamp is not None:
        avps.append(_ietf(_A.EVENT_TIMESTAMP, request.event_timestamp))
    avps.extend(
        _ietf(
            _A.SUBSCRIPTION_ID,
            (
                _ietf(_A.SUBSCRIPTION_ID_TYPE, int(subscription.type)),
                _ietf(_A.SUBSCRIPTION_ID_DATA, subscription.data),
            ),
        )
        for subscription in request.subscription_ids
    )
    if request.service_identifier is not None:
        avps.append(_ietf(_A.SERVICE_IDENTIFIER, request.service_identifier))
    if request.termination_cause is not None:
        avps.append(_ietf(_A.TERMINATION_CAUSE, int(request.termination_cause)))
    if request.requested is not None:
        avps.append(_ietf(_A.REQUESTED_SERVICE_UNIT, tuple(_units_avps(request.requested))))
    if request.requested_action is not None:
        avps.append(_ietf(_A.REQUESTED_ACTION, int(request.requested_action)))
    avps.extend(_ietf(_A.USED_SERVICE_UNIT, tuple(_units_avps(used))) for used in request.used)
    if request.multiple_services_indicator is not None:
        avps.append(_ietf(_A.MULTIPLE_SERVICES_INDICATOR, int(request.multiple_services_indicator)))
    for mscc in request.mscc:
        members: list[Avp] = []
        if mscc.requested is not None:
            members.append(_ietf(_A.REQUESTED_SERVICE_UNIT, tuple(_units_avps(mscc.requested))))
        members.extend(_ietf(_A.USED_SERVICE_UNIT, tuple(_units_avps(used))) for used in mscc.used)
        members.extend(_ietf(_A.SERVICE_IDENTIFIER, sid) for sid in mscc.service_identifiers)
        if mscc.rating_group is not None:
            members.append(_ietf(_A.RATING_GROUP, mscc.rating_group))
        if mscc.reporting_reason is not None:
            members.append(_tgpp(TgppAvpCode.REPORTING_REASON, int(mscc.reporting_reason)))
        if mscc.trigger_types:
            members.append(
                _tgpp(
                    TgppAvpCode.TRIGGER,
                    tuple(_tgpp(TgppAvpCode.TRIGGER_TYPE, kind) for kind in mscc.trigger_types),
                )
            )
        avps.append(_ietf(_A.MULTIPLE_SERVICES_CREDIT_CONTROL, tuple(members)))
    if request.ims is not None:
        avps.append(
            _tgpp(
                TgppAvpCode.SERVICE_INFORMATION,
                (_tgpp(TgppAvpCode.IMS_INFORMATION, tuple(_ims_avps(request.ims))),),
            )
        )
    avps.extend(request.proxy_infos)
    return Message(CommandCode.CREDIT_CONTROL, 0xC0, request.auth_application_id, 0, 0, tuple(avps))


def _ims_avps(ims: ImsInformation) -> list[Avp]:
    t = TgppAvpCode
    avps: list[Avp] = []
    if ims.event_type is not None:
        members = []
        if ims.event_type.sip_method is not None:
            members.append(_tgpp(t.SIP_METHOD, ims.event_type.sip_method))
        if ims.event_type.event is not None:
            members.append(_tgpp(t.EVENT, ims.event_type.event))
        if ims.event_type.expires is not None:
            members.append(_tgpp(t.EXPIRES, ims.event_type.expires))
        avps.append(_tgpp(t.EVENT_TYPE, tuple(members)))
    if ims.role_of_node is not None:
        avps.append(_tgpp(t.ROLE_OF_NODE, int(ims.role_of_node)))
    if ims.node_functionality is not None:
        avps.append(_tgpp(t.NODE_FUNCTIONALITY, int(ims.node_functionality)))
    for code, value in ((t.USER_SESSION_ID, ims.user_session_id),):
        if value is not None:
            avps.append(_tgpp(code, value))
    avps.extend(_tgpp(t.CALLING_PARTY_ADDRESS, item) for item in ims.calling_party_addresses)
    if ims.called_party_address is not None:
        avps.append(_tgpp(t.CALLED_PARTY_ADDRESS, ims.called_party_address))
    avps.extend(_tgpp(t.CALLED_ASSERTED_IDENTITY, item) for item in ims.called_asserted_identities)
    for code, value in (
        (t.NUMBER_PORTABILITY_ROUTING_INFORMATION, ims.number_portability_routing_information),
        (t.CARRIER_SELECT_ROUTING_INFORMATION, ims.carrier_select_routing_information),
        (t.ALTERNATE_CHARGED_PARTY_ADDRESS, ims.alternate_charged_party_address),
    ):
        if value is not None:
            avps.append(_tgpp(code, value))
    avps.extend(_tgpp(t.REQUESTED_PARTY_ADDRESS, item) for item in ims.requested_party_addresses)
    if ims.sip_request_timestamp is not None or ims.sip_response_timestamp is not None:
        stamps = []
        if ims.sip_request_timestamp is not None:
            stamps.append(_tgpp(t.SIP_REQUEST_TIMESTAMP, ims.sip_request_timestamp))
        if ims.sip_response_timestamp is not None:
            stamps.append(_tgpp(t.SIP_RESPONSE_TIMESTAMP, ims.sip_response_timestamp))
        avps.append(_tgpp(t.TIME_STAMPS, tuple(stamps)))
    if ims.originating_ioi is not None or ims.terminating_ioi is not None:
        ioi = []
        if ims.originating_ioi is not None:
            ioi.append(_tgpp(t.ORIGINATING_IOI, ims.originating_ioi))
        if ims.terminating_ioi is not None:
            ioi.append(_tgpp(t.TERMINATING_IOI, ims.terminating_ioi))
        avps.append(_tgpp(t.INTER_OPERATOR_IDENTIFIER, tuple(ioi)))
    if ims.ims_charging_identifier is not None:
        avps.append(_tgpp(t.IMS_CHARGING_IDENTIFIER, ims.ims_charging_identifier))
    if ims.cause_code is not None:
        avps.append(_tgpp(t.CAUSE_CODE, ims.cause_code))
    avps.extend(
        _tgpp(t.ACCESS_NETWORK_INFORMATION, item) for item in ims.access_network_information
    )
    if ims.ims_visited_network_identifier is not None:
        avps.append(_tgpp(t.IMS_VISITED_NETWORK_IDENTIFIER, ims.ims_visited_network_identifier))
    return avps


def _value(avps: tuple[Avp, ...], code: int, vendor_id: int = 0) -> object | None:
    found = find_avp(avps, code, vendor_id)
    return None if found is None else found.value


def _int(avps: tuple[Avp, ...], code: int, vendor_id: int = 0) -> int | None:
    value = _value(avps, code, vendor_id)
    return value if type(value) is int else None


def _str(avps: tuple[Avp, ...], code: int, vendor_id: int = 0) -> str | None:
    value = _value(avps, code, vendor_id)
    return value if type(value) is str else None


def _group(avps: tuple[Avp, ...], code: int, vendor_id: int = 0) -> tuple[Avp, ...] | None:
    found = find_avp(avps, code, vendor_id)
    return None if found is None else found.avps


def _enum_or_int(enum_type: type[E], value: int | None) -> E | int | None:
    if value is None:
        return None
    try:
        return enum_type(value)
    except ValueError:
        return value


def _required_int(avps: tuple[Avp, ...], code: int) -> int:
    value = _int(avps, code)
    if value is None:
        raise _missing(code)
    return value


def _unit_value_of(avps: tuple[Avp, ...] | None) -> UnitValue | None:
    if avps is None:
        return None
    digits = _int(avps, _A.VALUE_DIGITS)
    if digits is None:
        raise _missing(_A.VALUE_DIGITS)
    return UnitValue(digits, _int(avps, _A.EXPONENT) or 0)


def _granted_of(avps: tuple[Avp, ...] | None) -> GrantedUnits | None:
    if avps is None:
        return None
    money = _group(avps, _A.CC_MONEY)
    tariff = _value(avps, _A.TARIFF_TIME_CHANGE)
    return GrantedUnits(
        cc_time=_int(avps, _A.CC_TIME),
        cc_total_octets=_int(avps, _A.CC_TOTAL_OCTETS),
        cc_input_octets=_int(avps, _A.CC_INPUT_OCTETS),
        cc_output_octets=_int(avps, _A.CC_OUTPUT_OCTETS),
        cc_service_specific_units=_int(avps, _A.CC_SERVICE_SPECIFIC_UNITS),
        cc_money=(
            None
            if money is None
            else Money(
                _unit_value_of(_group(money, _A.UNIT_VALUE)) or UnitValue(0),
                _int(money, _A.CURRENCY_CODE),
            )
        ),
        tariff_time_change=tariff if isinstance(tariff, datetime) else None,
    )


def _fui_of(avps: tuple[Avp, ...] | None) -> FinalUnitIndication | None:
    if avps is None:
        return None
    redirect = _group(avps, _A.REDIRECT_SERVER)
    redirect_server = None
    if redirect is not None:
        address_type = _required_int(redirect, _A.REDIRECT_ADDRESS_TYPE)
        redirect_server = RedirectServer(
            RedirectAddressType(address_type), _str(redirect, _A.REDIRECT_SERVER_ADDRESS) or ""
        )
    return FinalUnitIndication(
        action=FinalUnitAction(_required_int(avps, _A.FINAL_UNIT_ACTION)),
        redirect_server=redirect_server,
        restriction_filter_rules=tuple(
            avp.value
            for avp in find_avps(avps, _A.RESTRICTION_FILTER_RULE)
            if type(avp.value) is str
        ),
        filter_ids=tuple(
            avp.value for avp in find_avps(avps, _A.FILTER_ID) if type(avp.value) is str
        ),
    )


def decode_cca(message: Message) -> CreditControlAnswer:
    """Read a CCA (client side); raise DiameterError if it lacks Result-Code."""
    avps = message.avps
    result_code = _required_int(avps, _A.RESULT_CODE)
    mscc: list[MsccAnswer] = []
    for item in find_avps(avps, _A.MULTIPLE_SERVICES_CREDIT_CONTROL):
        members = item.avps
        known = {
            _A.GRANTED_SERVICE_UNIT,
            _A.SERVICE_IDENTIFIER,
            _A.RATING_GROUP,
            _A.VALIDITY_TIME,
            _A.RESULT_CODE,
            _A.FINAL_UNIT_INDICATION,
        }
        tgpp_known = {
            TgppAvpCode.TIME_QUOTA_THRESHOLD,
            TgppAvpCode.VOLUME_QUOTA_THRESHOLD,
            TgppAvpCode.QUOTA_HOLDING_TIME,
        }
        mscc.append(
            MsccAnswer(
                rating_group=_int(members, _A.RATING_GROUP),
                service_identifiers=tuple(
                    avp.value
                    for avp in find_avps(members, _A.SERVICE_IDENTIFIER)
                    if type(avp.value) is int
                ),
                result_code=_int(members, _A.RESULT_CODE),
                granted=_granted_of(_group(members, _A.GRANTED_SERVICE_UNIT)),
                validity_time=_int(members, _A.VALIDITY_TIME),
                final_unit_indication=_fui_of(_group(members, _A.FINAL_UNIT_INDICATION)),
                time_quota_threshold=_int(members, TgppAvpCode.TIME_QUOTA_THRESHOLD, _TGPP),
                volume_quota_threshold=_int(members, TgppAvpCode.VOLUME_QUOTA_THRESHOLD, _TGPP),
                quota_holding_time=_int(members, TgppAvpCode.QUOTA_HOLDING_TIME, _TGPP),
                extra_avps=tuple(
                    avp
                    for avp in members
                    if not (avp.vendor_id == 0 and avp.code in known)
                    and not (avp.vendor_id == _TGPP and avp.code in tgpp_known)
                ),
            )
        )
    cost = _group(avps, _A.COST_INFORMATION)
    cost_information = None
    if cost is not None:
        cost_information = CostInformation(
            _unit_value_of(_group(cost, _A.UNIT_VALUE)) or UnitValue(0),
            _required_int(cost, _A.CURRENCY_CODE),
            _str(cost, _A.COST_UNIT),
        )
    failure_handling = _int(avps, _A.CREDIT_CONTROL_FAILURE_HANDLING)
    failover = _int(avps, _A.CC_SESSION_FAILOVER)
    balance = _int(avps, _A.CHECK_BALANCE_RESULT)
    failed = find_avp(avps, _A.FAILED_AVP)
    return CreditControlAnswer(
        result_code=result_code,
        mscc=tuple(mscc),
        granted=_granted_of(_group(avps, _A.GRANTED_SERVICE_UNIT)),
        validity_time=_int(avps, _A.VALIDITY_TIME),
        final_unit_indication=_fui_of(_group(avps, _A.FINAL_UNIT_INDICATION)),
        cost_information=cost_information,
        credit_control_failure_handling=(
            None if failure_handling is None else CreditControlFailureHandling(failure_handling)
        ),
        cc_session_failover=None if failover is None else CcSessionFailover(failover),
        check_balance_result=None if balance is None else CheckBalanceResult(balance),
        error_message=_str(avps, _A.ERROR_MESSAGE),
        failed_avps=() if failed is None else failed.avps,
    )


# --- RAR/RAA and ASR/ASA (RFC 6733 §8.3-§8.6, RFC 4006 §5.5) -------------------------------


@dataclass(frozen=True, slots=True)
class ReAuthRequest:
    """A Re-Auth-Request: ocsd asks the client to re-authorise a session (RFC 4006 §5.5)."""

    session_id: str
    origin_host: str
    origin_realm: str
    destination_realm: str
    destination_host: str
    re_auth_request_type: ReAuthRequestType = ReAuthRequestType.AUTHORIZE_ONLY
    auth_application_id: int = _CREDIT_CONTROL_APP
    user_name: str | None = None
    origin_state_id: int | None = None
    rating_group: int | None = None
    service_identifier: int | None = None

    @classmethod
    def build(
        cls,
        identity: LocalIdentity,
        session_id: str,
        destination_host: str,
        destination_realm: str,
        **optional: int | str | None,
    ) -> ReAuthRequest:
        """A RAR from us (*identity*) for one session."""
        return cls(
            session_id=session_id,
            origin_host=identity.origin_host,
            origin_realm=identity.origin_realm,
            destination_realm=destination_realm,
            destination_host=destination_host,
            origin_state_id=identity.origin_state_id,
            **optional,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class AbortSessionRequest:
    """An Abort-Session-Request: ocsd asks the client to stop a session (RFC 6733 §8.5)."""

    session_id: str
    origin_host: str
    origin_realm: str
    destination_realm: str
    destination_host: str
    auth_application_id: int = _CREDIT_CONTROL_APP
    user_name: str | None = None
    origin_state_id: int | None = None

    @classmethod
    def build(
        cls,
        identity: LocalIdentity,
        session_id: str,
        destination_host: str,
        destination_realm: str,
        user_name: str | None = None,
    ) -> AbortSessionRequest:
        """An ASR from us (*identity*) for one session."""
        return cls(
            session_id=session_id,
            origin_host=identity.origin_host,
            origin_realm=identity.origin_realm,
            destination_realm=destination_realm,
            destination_host=destination_host,
            user_name=user_name,
            origin_state_id=identity.origin_state_id,
        )


@dataclass(frozen=True, slots=True)
class SessionAnswer:
    """A RAA or ASA: the client's reply to our RAR or ASR."""

    session_id: str | None
    result_code: int
    origin_host: str | None
    origin_realm: str | None
    error_message: str | None = None
    failed_avps: tuple[Avp, ...] = ()


def _session_request_avps(
    request: ReAuthRequest | AbortSessionRequest,
) -> list[Avp]:
    return [
        _ietf(_A.SESSION_ID, request.session_id),
        _ietf(_A.ORIGIN_HOST, request.origin_host),
        _ietf(_A.ORIGIN_REALM, request.origin_realm),
        _ietf(_A.DESTINATION_REALM, request.destination_realm),
        _ietf(_A.DESTINATION_HOST, request.destination_host),
        _ietf(_A.AUTH_APPLICATION_ID, request.auth_application_id),
    ]


def _session_request_tail(request: ReAuthRequest | AbortSessionRequest) -> list[Avp]:
    avps = []
    if request.user_name is not None:
        avps.append(_ietf(_A.USER_NAME, request.user_name))
    if request.origin_state_id is not None:
        avps.append(_ietf(_A.ORIGIN_STATE_ID, request.origin_state_id))
    return avps


def encode_rar(request: ReAuthRequest) -> Message:
    """Build a RAR (ids 0: the peer assigns them on send)."""
    avps = _session_request_avps(request)
    avps.append(_ietf(_A.RE_AUTH_REQUEST_TYPE, int(request.re_auth_request_type)))
    avps.extend(_session_request_tail(request))
    if request.service_identifier is not None:
        avps.append(_ietf(_A.SERVICE_IDENTIFIER, request.service_identifier))
    if request.rating_group is not None:
        avps.append(_ietf(_A.RATING_GROUP, request.rating_group))
    return Message(CommandCode.RE_AUTH, 0xC0, request.auth_application_id, 0, 0, tuple(avps))


def encode_asr(request: AbortSessionRequest) -> Message:
    """Build an ASR (ids 0: the peer assigns them on send)."""
    avps = [*_session_request_avps(request), *_session_request_tail(request)]
    return Message(CommandCode.ABORT_SESSION, 0xC0, request.auth_application_id, 0, 0, tuple(avps))


def _session_request_fields(message: Message) -> dict[str, object]:
    avps = message.avps
    out: dict[str, object] = {}
    for name, code in (
        ("session_id", _A.SESSION_ID),
        ("origin_host", _A.ORIGIN_HOST),
        ("origin_realm", _A.ORIGIN_REALM),
        ("destination_realm", _A.DESTINATION_REALM),
        ("destination_host", _A.DESTINATION_HOST),
    ):
        value = _str(avps, code)
        if value is None:
            raise _missing(code)
        out[name] = value
    out["auth_application_id"] = _required_int(avps, _A.AUTH_APPLICATION_ID)
    out["user_name"] = _str(avps, _A.USER_NAME)
    out["origin_state_id"] = _int(avps, _A.ORIGIN_STATE_ID)
    return out


def decode_rar(message: Message) -> ReAuthRequest:
    """Read a RAR (client side); 5005 for a missing required AVP, 5004 for a bad type."""
    if message.command_code != CommandCode.RE_AUTH or not message.is_request:
        raise DiameterError(ResultCode.DIAMETER_COMMAND_UNSUPPORTED, "not a Re-Auth-Request")
    avps = message.avps
    kind = _required_int(avps, _A.RE_AUTH_REQUEST_TYPE)
    try:
        request_type = ReAuthRequestType(kind)
    except ValueError:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_AVP_VALUE,
            f"{kind} is not a valid Re-Auth-Request-Type",
            (find_avp(avps, _A.RE_AUTH_REQUEST_TYPE),),  # type: ignore[arg-type]
        ) from None
    return ReAuthRequest(
        **_session_request_fields(message),  # type: ignore[arg-type]
        re_auth_request_type=request_type,
        rating_group=_int(avps, _A.RATING_GROUP),
        service_identifier=_int(avps, _A.SERVICE_IDENTIFIER),
    )


def decode_asr(message: Message) -> AbortSessionRequest:
    """Read an ASR (client side); 5005 for a missing required AVP."""
    if message.command_code != CommandCode.ABORT_SESSION or not message.is_request:
        raise DiameterError(ResultCode.DIAMETER_COMMAND_UNSUPPORTED, "not an Abort-Session-Request")
    return AbortSessionRequest(**_session_request_fields(message))  # type: ignore[arg-type]


def encode_session_answer(
    request: Message,
    identity: LocalIdentity,
    result_code: int,
    error: DiameterError | None = None,
) -> Message:
    """Build the RAA or ASA to *request* (client side)."""
    return make_answer(request, identity, result_code, () if error is None else error_avps(error))


def decode_session_answer(message: Message) -> SessionAnswer:
    """Read a RAA or ASA (server side)."""
    avps = message.avps
    failed = find_avp(avps, _A.FAILED_AVP)
    return SessionAnswer(
        session_id=_str(avps, _A.SESSION_ID),
        result_code=_required_int(avps, _A.RESULT_CODE),
        origin_host=_str(avps, _A.ORIGIN_HOST),
        origin_realm=_str(avps, _A.ORIGIN_REALM),
        error_message=_str(avps, _A.ERROR_MESSAGE),
        failed_avps=() if failed is None else failed.avps,
    )


__all__ = [
    "DEFAULT_GY_OPTIONS",
    "STRICT_GY_OPTIONS",
    "AbortSessionRequest",
    "CostInformation",
    "CreditControlAnswer",
    "CreditControlRequest",
    "EventType",
    "FinalUnitIndication",
    "GrantedUnits",
    "GyOptions",
    "ImsInformation",
    "Money",
    "MsccAnswer",
    "MsccRequest",
    "ReAuthRequest",
    "RedirectServer",
    "RequestedUnits",
    "ServiceContext",
    "SessionAnswer",
    "SubscriptionId",
    "UnitValue",
    "UsedUnits",
    "decode_asr",
    "decode_cca",
    "decode_ccr",
    "decode_rar",
    "decode_session_answer",
    "encode_asr",
    "encode_cca",
    "encode_ccr",
    "encode_rar",
    "encode_session_answer",
    "parse_service_context_id",
]
