"""What the balance store knows and does: accounts' money, holds per session, the record queue.

Money only moves in one place: a ``CLOSE`` or ``EVENT`` step debits (or credits) the balance
and appends the rated record to the durable queue in the same atomic step, so there is never
money without a record nor a record without money. While a call is up its cost so far and its
next grant are *held* (``HOLD`` steps): a hold lowers what the account can spend but moves no
money. A step is keyed by its session and request number; the session keeps the result of its
last step (and a closed session a tombstone) so that a repeated request returns the original
result and moves nothing. The tombstone lives minutes; a closed session also leaves a compact
*closed marker* (its last request number, what was debited and the answer's context) that lives
hours or days, so that a stop replayed long after (a NAS buffer, a RADIUS proxy's detail file,
a late Stop after the reaper ended the call) is still recognised and charged no second time,
and an opening request replayed as late opens no second session under the closed one's key.

All amounts are integers in micro-units of the account's currency; times are epoch
milliseconds passed in by the caller (the store never reads a clock of its own).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

NO_LIMIT = -1
"""A cap or session limit that is not set."""


class AccountKind(enum.Enum):
    """Prepaid accounts never go below zero; postpaid ones down to minus their credit limit."""

    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class AccountStatus(enum.Enum):
    """Only active accounts may start or continue calls."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """The limits the store enforces, synchronised from the master data."""

    account_id: str
    kind: AccountKind = AccountKind.PREPAID
    status: AccountStatus = AccountStatus.ACTIVE
    credit_limit_micros: int = 0
    """Postpaid only: how far below zero the balance may go."""
    daily_cap_micros: int = NO_LIMIT
    monthly_cap_micros: int = NO_LIMIT
    max_sessions: int = NO_LIMIT


@dataclass(frozen=True, slots=True)
class AccountState:
    """An account as the store sees it now."""

    account_id: str
    kind: AccountKind
    status: AccountStatus
    balance_micros: int
    held_micros: int
    credit_limit_micros: int
    daily_cap_micros: int
    monthly_cap_micros: int
    day_key: str
    day_spent_micros: int
    month_key: str
    month_spent_micros: int
    sessions: int
    max_sessions: int

    @property
    def available_micros(self) -> int:
        """What may still be held: balance (+ credit limit) minus holds."""
        limit = self.credit_limit_micros if self.kind is AccountKind.POSTPAID else 0
        return self.balance_micros + limit - self.held_micros


class StepKind(enum.Enum):
    """What a step does."""

    HOLD = "hold"
    """Start or update a session: set its holds (the session is created on its first hold)."""
    CLOSE = "close"
    """End a session: debit its final cost, release its holds, queue its record."""
    EVENT = "event"
    """A one-off debit or credit with its record, no session kept open."""


class StepStatus(enum.Enum):
    """How a step ended."""

    OK = "ok"
    DENIED = "denied"
    """Nothing changed; ``reason`` says why."""
    DUPLICATE = "duplicate"
    """The request was already done; the result is the original one."""
    STALE = "stale"
    """The caller's view of the session is out of date; ``session_state`` is the current one."""
    UNKNOWN_SESSION = "unknown_session"
    ALREADY_CLOSED = "already_closed"
    """The session was closed before, nothing changed: an orphan stop (``Step.orphan_stop``)
    under another request number than the one that closed it (the reaper, an Accounting-On,
    another stop), or an opening HOLD (``Step.new_session``) of a session the store still
    remembers closed (its tombstone, or its closed marker within ``Step.closed_ttl_ms``)."""
    GATED = "gated"
    """The gate folded in front of the step tripped: the step did nothing; ``gate`` says why."""


class DenyReason(enum.Enum):
    """Why a step or one of its holds was refused."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    DAILY_CAP = "daily_cap"
    MONTHLY_CAP = "monthly_cap"
    SUSPENDED = "suspended"
    CLOSED = "closed"
    UNKNOWN_ACCOUNT = "unknown_account"
    TOO_MANY_SESSIONS = "too_many_sessions"
    SESSION_EXISTS = "session_exists"
    RECORD_QUEUE_FULL = "record_queue_full"
    """The record queue holds its bound (the records database is behind): no new call or
    one-off debit until it drains; steps that end calls go on and queue their records."""


# The per-request values below are plain slots dataclasses, not frozen ones: a frozen
# dataclass costs about seven times as much to build, and several are built per request.
# Treat them as values all the same.
@dataclass(slots=True)
class Hold:
    """The hold a session wants on one of its services (a rating group) after a step.

    ``keep_micros`` is the cost of what was already used: it stays held whatever the balance,
    because it has been consumed. The store grants ``keep + x`` with ``x`` as large as the
    account allows up to ``desired_micros``; if that is below ``min_micros`` the hold stays at
    ``keep_micros`` and is denied.
    """

    key: str
    desired_micros: int
    min_micros: int = 0
    keep_micros: int = 0


@dataclass(slots=True)
class BundleHold:
    """Free seconds a session wants held from a bundle in the current period."""

    bundle_id: str
    period_key: str
    allowance_s: int
    """The bundle's seconds per period."""
    desired_s: int
    keep_s: int = 0


@dataclass(frozen=True, slots=True)
class StepGate:
    """A check folded into a HOLD step's atomic operation, in front of it (Redis only).

    The store runs the gate function it was built with on these keys and arguments first; the
    hold runs only when the gate's reply starts with 0 (nothing tripped). The keys must share
    the account's hash slot (the store checks the tag), so the step still touches one slot.
    """

    keys: Sequence[str]
    args: Sequence[str | int | bytes]


@dataclass(slots=True)
class Step:
    """One atomic operation on an account; see ``StepKind``."""

    kind: StepKind
    account_id: str
    session_id: str
    request_number: int
    now_ms: int
    day_key: str
    month_key: str
    holds: tuple[Hold, ...] = ()
    bundle_holds: tuple[BundleHold, ...] = ()
    debit_micros: int = 0
    """CLOSE/EVENT: money that leaves the balance (a negative value is a refund)."""
    bundle_used_s: tuple[tuple[str, str, int], ...] = ()
    """CLOSE/EVENT: (bundle id, period key, seconds) consumed."""
    expected_version: int | None = None
    """HOLD/CLOSE on an existing session: the request number the caller last saw."""
    new_session: bool = False
    """HOLD: this step opens the session (counted against the session limit)."""
    require_funds: bool = True
    """EVENT debit: refuse if the account cannot pay (direct debiting); False to force."""
    state: bytes = b""
    """HOLD: the session state to keep (opaque to the store)."""
    deadline_ms: int = 0
    """HOLD: when the session is reaped unless another step comes first."""
    record: bytes = b""
    """CLOSE/EVENT: the rated record appended to the queue when money moves."""
    context: bytes = b""
    """Kept with the result so that a duplicate can rebuild the original answer."""
    tombstone_ttl_ms: int = 600_000
    """How long a closed session remembers its last result for duplicates."""
    closed_ttl_ms: int = 0
    """CLOSE/EVENT: how long the store keeps the session's closed marker (0: it keeps none).
    A backend may keep it up to an hour longer (the Redis store files markers by the hour).
    Orphan-stop EVENT and opening HOLD: how far back the marker is looked for (0: not at all);
    an opening HOLD that finds one is ALREADY_CLOSED and opens nothing."""
    orphan_stop: bool = False
    """EVENT: a stop whose open session the caller did not find. A session the store closed
    before (its tombstone or its closed marker) is not charged again: the same request number
    is a DUPLICATE with the original result, another one is ALREADY_CLOSED."""
    gate: StepGate | None = None
    """HOLD: a check to run first, in the same atomic step (see ``StepGate``)."""


@dataclass(slots=True)
class StepResult:
    """What a step did."""

    status: StepStatus
    reason: DenyReason | None = None
    holds: tuple[int, ...] = ()
    """The hold now in force for each requested ``Hold``, in order."""
    hold_reasons: tuple[DenyReason | None, ...] = ()
    bundle_holds: tuple[int, ...] = ()
    """Seconds now held for each requested ``BundleHold``, in order."""
    debited_micros: int = 0
    """Money that left the balance (less than asked when a prepaid balance ran dry)."""
    balance_micros: int = 0
    available_micros: int = 0
    context: bytes = b""
    session_state: bytes = b""
    """For STALE: the session's current state; for HOLD/CLOSE duplicates: the state kept."""
    version: int = -1
    gate: Sequence[int] = ()
    """The reply of the step's gate, when it had one (whether it tripped or not)."""


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A session found by the reaper or a lookup."""

    account_id: str
    session_id: str
    version: int
    deadline_ms: int
    state: bytes
    holds: dict[str, int] = field(default_factory=dict)


class LedgerKind(enum.Enum):
    """Money that enters or leaves an account outside calls."""

    OPENING = "opening"
    TOPUP = "topup"
    PAYMENT = "payment"
    ADJUSTMENT = "adjustment"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class LedgerResult:
    """The outcome of a ledger entry; ``duplicate`` when its idempotency key was seen."""

    applied: bool
    duplicate: bool
    balance_micros: int
    reason: DenyReason | None = None


class RecordKind(enum.Enum):
    """What a queued record is."""

    CDR = "cdr"
    LEDGER = "ledger"


@dataclass(slots=True)
class QueuedRecord:
    """A record in the durable queue, with what the store added when it moved the money."""

    record_id: str
    kind: RecordKind
    payload: bytes
    account_id: str
    amount_micros: int
    """The money that actually moved: debited for a CDR, credited for a ledger entry."""
    balance_micros: int
    at_ms: int
