"""The protocol-neutral language of charging: what a request asks and what the answer says.

Protocol adapters (Diameter, RADIUS, HTTP) translate their messages into a
``ChargingRequest`` and map the ``Grant`` or ``Denial`` back, each with its own table of
result codes. Business outcomes are values, never exceptions.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from lcr.decision import RouteDecision
from ocsd.directory import Candidate


class RequestType(enum.Enum):
    """Where a request stands in its session (RFC 4006 CC-Request-Type)."""

    INITIAL = "initial"
    UPDATE = "update"
    TERMINATE = "terminate"
    EVENT = "event"


class EventAction(enum.Enum):
    """What a one-off request wants (RFC 4006 §6 Requested-Action)."""

    DIRECT_DEBIT = "direct_debit"
    REFUND = "refund"
    CHECK_BALANCE = "check_balance"
    PRICE_ENQUIRY = "price_enquiry"


class DenialCode(enum.Enum):
    """Why a request (or one of its services) is refused; adapters map these to wire codes."""

    USER_UNKNOWN = "user_unknown"
    ACCOUNT_SUSPENDED = "account_suspended"
    ACCOUNT_CLOSED = "account_closed"
    CREDIT_LIMIT_REACHED = "credit_limit_reached"
    SPEND_CAP_REACHED = "spend_cap_reached"
    TOO_MANY_SESSIONS = "too_many_sessions"
    RATING_FAILED = "rating_failed"
    NO_RATE = "no_rate"
    BELOW_COST = "below_cost"
    INVALID_NUMBER = "invalid_number"
    UNKNOWN_SESSION = "unknown_session"
    DESTINATION_BLOCKED = "destination_blocked"
    FRAUD_SUSPECTED = "fraud_suspected"
    NO_ROUTE = "no_route"
    SERVICE_UNAVAILABLE = "service_unavailable"
    """The balance store cannot be reached: the peer should fail over."""
    INVALID_REQUEST = "invalid_request"


# Requests and outcomes are built per request: plain slots dataclasses (a frozen one costs
# about seven times as much to build). Treat them as values.
@dataclass(slots=True)
class UnitRequest:
    """One service (rating group) of a request: what it used and what it wants next."""

    rating_group: int = 0
    service_id: int | None = None
    requested_s: int | None = None
    """Seconds asked for; None: the configured default grant."""
    used_s: int = 0
    """Seconds used since the previous report."""
    total_used_s: int | None = None
    """Seconds used since the session began, for peers that report totals (RADIUS
    Acct-Session-Time); when given it replaces ``used_s``."""
    units: int = 0
    """Service-specific units of an event (messages, ...)."""

    @property
    def key(self) -> str:
        """The service's key within its session."""
        if self.service_id is None:
            return str(self.rating_group)
        return f"{self.rating_group}/{self.service_id}"


@dataclass(slots=True)
class ChargingRequest:
    """A request from any protocol."""

    session_id: str
    request_number: int
    request_type: RequestType
    protocol: str
    peer: str
    identities: tuple[Candidate, ...] = ()
    source_ip: str | None = None
    """For identification by address (+ tech prefix on the called number)."""
    calling: str | None = None
    called: str | None = None
    event_time: float | None = None
    """When the call started or the event happened (UTC epoch seconds), if the peer says."""
    answer_time: float | None = None
    """When the call was answered, if the peer says (kept with the session)."""
    end_time: float | None = None
    """When the call ended, if the peer says (a duration is derived from it when the peer
    reports no usage)."""
    units: tuple[UnitRequest, ...] = (UnitRequest(),)
    action: EventAction | None = None
    hangup_cause: str = ""
    hangup_side: str = ""
    diversion: str = ""
    caller_ip: str = ""
    deadline_s: float | None = None
    """How long the session may stay silent before it is reaped (default: from validity)."""
    repeated: bool = False
    """The peer says it may have sent this request before (Diameter's T flag, a RADIUS Start
    with an Acct-Delay-Time): an opening request then also finds a session closed longer
    ago than ``duplicate_window_s`` (the store's closed marker, a look the usual call is
    spared: session ids are unique, so only a repeat can name a closed session)."""
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class UnitGrant:
    """The answer for one service."""

    rating_group: int
    service_id: int | None
    granted_s: int
    validity_s: int
    final: bool
    """The money runs out within this grant: terminate when it is used."""
    denial: DenialCode | None = None


@dataclass(slots=True)
class Grant:
    """The request is accepted."""

    units: tuple[UnitGrant, ...] = ()
    cost_micros: int | None = None
    """The session's (or event's) total charge, on final answers and price enquiries."""
    debited_micros: int | None = None
    currency: str = ""
    balance_micros: int | None = None
    enough_credit: bool | None = None
    """For balance checks: whether the account can pay the requested units."""
    account_id: str = ""
    duplicate: bool = False
    routes: RouteDecision | None = None
    """The ranked routes when routing is on (initial requests)."""
    not_applicable: bool = False
    """The call needs no credit control (``ChargingSettings.uncharged_numbers``): it goes
    ahead unmetered and nothing is charged (Diameter 4011)."""


@dataclass(slots=True)
class Denial:
    """The request is refused as a whole."""

    code: DenialCode
    message: str = ""
    account_id: str = ""
    duplicate: bool = False


Outcome = Grant | Denial
