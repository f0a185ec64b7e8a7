"""What a step does to an account, in pure Python: the embedded store runs it, the Lua mirrors it.

Rules (the contract suite checks both backends against them):

- A step on an unknown account is DENIED ``UNKNOWN_ACCOUNT``.
- A session key holds an open session or, once closed (``CLOSE``) or used by an ``EVENT``, a
  tombstone that remembers the last result until ``now_ms`` reaches its expiry. A request whose
  number and kind equal the ones the key remembers is a DUPLICATE: the original result comes
  back and nothing changes. Any other request on a tombstone is ``UNKNOWN_SESSION`` (an
  orphan stop's or an opening HOLD's is ``ALREADY_CLOSED``: see closed markers below); an
  ``EVENT`` on an open session is DENIED ``SESSION_EXISTS``.
- Checks come in this order: duplicate, session existence, version (STALE), account status,
  session limit, record queue, money. A DENIED step changes nothing and is not remembered.
- Record queue: while the queue holds its bound (the records database is behind), a step that
  brings new money in (``needs_queue_room``: an opening HOLD, an EVENT debit that requires
  funds) is DENIED ``RECORD_QUEUE_FULL``. Everything else goes on and still appends its
  record — closes, updates of open sessions, orphan stops and forced debits (the service was
  used already), refunds, ledger entries — so the queue may pass its bound by what the calls
  up at that moment and the back office add, and nothing is lost.
- Period keys: when a committed step's ``day_key``/``month_key`` differs from the stored one,
  that period's spent counter starts again at zero. Spent counters count debits only; a refund
  does not lower them.
- HOLD: each ``Hold`` replaces the session's hold on its key. With ``other`` the account's holds
  without that key's and ``keep`` the part already consumed, the room is
  ``balance + credit limit (postpaid) - other - keep`` and, for each cap that is set,
  ``cap - spent - other - keep``; the grant is ``keep + min(desired - keep, max(0, room))``.
  If that is below ``min(min_micros, desired)`` the hold becomes ``keep`` and is denied with
  the reason of the first room (funds, daily cap, monthly cap) too small on its own. Holds of a
  step are taken in order and share the money. A session that would open with every money
  hold denied (and no free seconds) is not opened: the step is DENIED with the first reason.
- Bundle holds: a session holds seconds of a bundle in one period. The first ``BundleHold`` of a
  bundle in a step replaces the session's previous hold on it; later ones of the same bundle
  and period in the same step add to it. The room is ``allowance - used - held - keep``.
  Period counters older than the one a step refers to (by ASCII order: ISO dates) are dropped
  once nothing holds them.
- CLOSE releases every hold of the session and debits ``debit_micros``: a prepaid balance is
  debited at most down to zero (``debited_micros`` says what moved), a postpaid one in full.
- EVENT debits (refused on a suspended or closed account, and, with ``require_funds``, when
  the available money or a cap does not cover it) or, negative, credits.
- CLOSE, EVENT and ledger entries append exactly one record with the money that moved.
- Closed markers: a CLOSE or EVENT that moves money with ``closed_ttl_ms`` set leaves a marker
  of its session (request number, debited amount, context) that answers for at least
  ``closed_ttl_ms``, long after the tombstone is gone. Two kinds of step read them, each
  within its own ``closed_ttl_ms`` (``reads_marker``): an ``orphan_stop`` EVENT and an
  opening HOLD. For an orphan stop, on a tombstone or a marker of the session, the same
  request number (of a CLOSE or an EVENT) is a DUPLICATE (from a marker: the original
  debited amount and context, the current balance), any other is ALREADY_CLOSED. An opening
  HOLD is ALREADY_CLOSED on a tombstone (with or without ``closed_ttl_ms``) or a marker of
  the session, whatever its request number: a session is not opened again under its key
  while the store remembers it closed (a retransmitted or replayed opening request). Either
  way nothing changes. This comes with the duplicate check, before everything but the
  account's existence.
- Every stored amount stays within ``MAX_MICROS`` in magnitude; a step that would leave it
  raises ``AmountOutOfRange`` and changes nothing (Redis computes in doubles: sums of a few
  such amounts stay below 2**53, where doubles are exact).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack

from balances.model import (
    NO_LIMIT,
    AccountKind,
    AccountLimits,
    AccountState,
    AccountStatus,
    DenyReason,
    LedgerResult,
    RecordKind,
    Step,
    StepKind,
    StepResult,
    StepStatus,
)

MAX_CLOSED_TTL_MS = 31 * 86_400_000
"""The longest a closed marker may be kept."""
MAX_MICROS = 2**50
"""Every amount given to or kept by the store is strictly within ±MAX_MICROS (and seconds too)."""


class AmountOutOfRange(ValueError):
    """An amount, or the result of a step, outside ±MAX_MICROS."""


@dataclass(slots=True)
class AccountRow:
    """An account as stored, mutable while a step is worked out."""

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
    bundles: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    """Bundle id -> period key -> [seconds used, seconds held]."""

    @classmethod
    def new(cls, limits: AccountLimits) -> AccountRow:
        """A new account: zero balance, nothing held."""
        return cls(
            limits.account_id,
            limits.kind,
            limits.status,
            0,
            0,
            limits.credit_limit_micros,
            limits.daily_cap_micros,
            limits.monthly_cap_micros,
            "",
            0,
            "",
            0,
            0,
            limits.max_sessions,
        )

    def copy(self) -> AccountRow:
        """A copy deep enough to change and throw away."""
        bundles = {b: {p: list(c) for p, c in ps.items()} for b, ps in self.bundles.items()}
        return replace(self, bundles=bundles)

    @property
    def available_micros(self) -> int:
        """What may still be held."""
        return self.balance_micros + self.credit_micros - self.held_micros

    @property
    def credit_micros(self) -> int:
        """The credit limit if postpaid, else zero."""
        return self.credit_limit_micros if self.kind is AccountKind.POSTPAID else 0

    def state(self) -> AccountState:
        """The public view."""
        return AccountState(
            account_id=self.account_id,
            kind=self.kind,
            status=self.status,
            balance_micros=self.balance_micros,
            held_micros=self.held_micros,
            credit_limit_micros=self.credit_limit_micros,
            daily_cap_micros=self.daily_cap_micros,
            monthly_cap_micros=self.monthly_cap_micros,
            day_key=self.day_key,
            day_spent_micros=self.day_spent_micros,
            month_key=self.month_key,
            month_spent_micros=self.month_spent_micros,
            sessions=self.sessions,
            max_sessions=self.max_sessions,
        )


@dataclass(slots=True)
class SessionRow:
    """An open session or a tombstone, as stored."""

    account_id: str
    session_id: str
    open: bool
    version: int
    kind: StepKind
    """The kind of the step that wrote it last (HOLD while open)."""
    deadline_ms: int
    state: bytes
    holds: dict[str, int]
    bundle_holds: dict[str, tuple[str, int]]
    """Bundle id -> (period key, seconds held)."""
    result: bytes
    """The last result, packed by ``pack_result``."""
    context: bytes
    expires_ms: int = 0
    """Tombstones only: when the key forgets its result."""


@dataclass(frozen=True, slots=True)
class ClosedMarker:
    """What the store keeps of a closed session once its tombstone is gone."""

    request_number: int
    debited_micros: int
    context: bytes
    expires_ms: int
    """When the marker stops answering (a backend may keep it somewhat longer)."""


def marker_digest(account_id: str, session_id: str) -> bytes:
    """The 8-byte key of a session's closed marker: BLAKE2b of the account and session ids.

    Eight bytes instead of the ids keep a marker small; two sessions of one shard would have
    to meet within the horizon with the same 64 bits for one to be taken for the other.
    """
    data = f"{len(account_id)}:{account_id}:{session_id}".encode()
    return hashlib.blake2b(data, digest_size=8).digest()


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to append to the queue in the same transaction."""

    kind: RecordKind
    payload: bytes
    account_id: str
    amount_micros: int
    balance_micros: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of a step: the result and what to write (None: leave as it is)."""

    result: StepResult
    account: AccountRow | None = None
    session: SessionRow | None = None
    record: NewRecord | None = None
    marker: ClosedMarker | None = None


_STATUS_BY_VALUE = {s.value: s for s in StepStatus}
_REASON_BY_VALUE = {r.value: r for r in DenyReason}


def pack_result(result: StepResult) -> bytes:
    """The stored form of a result (without context and state), shared with the Lua scripts."""
    packed: bytes = msgpack.packb(
        [
            result.status.value,
            result.reason.value if result.reason is not None else "",
            list(result.holds),
            [r.value if r is not None else "" for r in result.hold_reasons],
            list(result.bundle_holds),
            result.debited_micros,
            result.balance_micros,
            result.available_micros,
            result.version,
        ]
    )
    return packed


def unpack_result(
    packed: bytes, status: StepStatus | None, context: bytes, session_state: bytes
) -> StepResult:
    """Rebuild a result from ``pack_result``'s form; ``status`` overrides the stored one."""
    fields: list[Any] = msgpack.unpackb(packed)
    (stored, reason, holds, hold_reasons, bundle_holds, debited, balance, available, version) = (
        fields
    )
    return StepResult(
        status=status if status is not None else _STATUS_BY_VALUE[stored],
        reason=_REASON_BY_VALUE[reason] if reason else None,
        holds=tuple(holds),
        hold_reasons=tuple(_REASON_BY_VALUE[r] if r else None for r in hold_reasons),
        bundle_holds=tuple(bundle_holds),
        debited_micros=debited,
        balance_micros=balance,
        available_micros=available,
        context=context,
        session_state=session_state,
        version=version,
    )


def _in_range(value: int) -> bool:
    return -MAX_MICROS < value < MAX_MICROS


def _check_amount(name: str, value: int, minimum: int = -MAX_MICROS + 1) -> None:
    if not isinstance(value, int) or not minimum <= value < MAX_MICROS:
        raise AmountOutOfRange(f"{name} out of range: {value!r}")


def check_step(step: Step) -> None:
    """Refuse a step whose numbers the store cannot keep exactly (raises ``ValueError``)."""
    if not step.account_id:
        raise ValueError("account_id is empty")
    for name in ("request_number", "now_ms", "deadline_ms"):
        value = getattr(step, name)
        if not isinstance(value, int) or abs(value) >= 2**53:
            raise ValueError(f"{name} out of range: {value!r}")
    if step.expected_version is not None and abs(step.expected_version) >= 2**53:
        raise ValueError(f"expected_version out of range: {step.expected_version!r}")
    if step.gate is not None and step.kind is not StepKind.HOLD:
        raise ValueError("only a HOLD step takes a gate")
    _check_amount("tombstone_ttl_ms", step.tombstone_ttl_ms, 0)
    if not isinstance(step.closed_ttl_ms, int) or not 0 <= step.closed_ttl_ms <= MAX_CLOSED_TTL_MS:
        raise ValueError(f"closed_ttl_ms out of range: {step.closed_ttl_ms!r}")
    _check_amount("debit_micros", step.debit_micros)
    for hold in step.holds:
        _check_amount("desired_micros", hold.desired_micros, 0)
        _check_amount("min_micros", hold.min_micros, 0)
        _check_amount("keep_micros", hold.keep_micros, 0)
    for bundle in step.bundle_holds:
        _check_amount("allowance_s", bundle.allowance_s, 0)
        _check_amount("desired_s", bundle.desired_s, 0)
        _check_amount("keep_s", bundle.keep_s, 0)
    for _, _, seconds in step.bundle_used_s:
        _check_amount("bundle seconds used", seconds, 0)


def check_ledger(account_id: str, amount_micros: int, idempotency_key: str, now_ms: int) -> None:
    """Refuse a ledger entry the store cannot keep exactly."""
    if not account_id or not idempotency_key:
        raise ValueError("account_id and idempotency_key must not be empty")
    _check_amount("amount_micros", amount_micros)
    if not isinstance(now_ms, int) or abs(now_ms) >= 2**53:
        raise ValueError(f"now_ms out of range: {now_ms!r}")


def check_limits(limits: AccountLimits) -> None:
    """Refuse limits the store cannot keep exactly."""
    if not limits.account_id:
        raise ValueError("account_id is empty")
    _check_amount("credit_limit_micros", limits.credit_limit_micros, 0)
    for name in ("daily_cap_micros", "monthly_cap_micros", "max_sessions"):
        value = getattr(limits, name)
        if value != NO_LIMIT:
            _check_amount(name, value, 0)


def _check_account(account: AccountRow) -> None:
    for value in (
        account.balance_micros,
        account.held_micros,
        account.day_spent_micros,
        account.month_spent_micros,
    ):
        if not _in_range(value):
            raise AmountOutOfRange(f"account {account.account_id} would leave the range")


def _simple(
    status: StepStatus,
    account: AccountRow | None,
    reason: DenyReason | None = None,
    version: int = -1,
    session_state: bytes = b"",
) -> Applied:
    balance = account.balance_micros if account is not None else 0
    available = account.available_micros if account is not None else 0
    return Applied(
        StepResult(
            status=status,
            reason=reason,
            balance_micros=balance,
            available_micros=available,
            session_state=session_state,
            version=version,
        )
    )


def _duplicate(session: SessionRow) -> Applied:
    return Applied(
        unpack_result(session.result, StepStatus.DUPLICATE, session.context, session.state)
    )


def _roll(account: AccountRow, step: Step) -> None:
    if account.day_key != step.day_key:
        account.day_key = step.day_key
        account.day_spent_micros = 0
    if account.month_key != step.month_key:
        account.month_key = step.month_key
        account.month_spent_micros = 0


def _status_reason(status: AccountStatus) -> DenyReason:
    return DenyReason.CLOSED if status is AccountStatus.CLOSED else DenyReason.SUSPENDED


def _prune(account: AccountRow, bundle_id: str, period: str) -> None:
    periods = account.bundles.get(bundle_id)
    if periods is None:
        return
    for old in [p for p, counts in periods.items() if p < period and counts[1] == 0]:
        del periods[old]
    if not periods:
        del account.bundles[bundle_id]


def needs_queue_room(step: Step) -> bool:
    """Whether the step is refused while the record queue is full: it brings new money in."""
    if step.kind is StepKind.HOLD:
        return step.new_session
    if step.kind is StepKind.EVENT:
        return step.debit_micros > 0 and step.require_funds and not step.orphan_stop
    return False


def reads_marker(step: Step) -> bool:
    """Whether the step reads its session's closed marker: an orphan stop or an opening hold,
    with ``closed_ttl_ms`` set."""
    if not step.closed_ttl_ms:
        return False
    if step.kind is StepKind.HOLD:
        return step.new_session
    return step.kind is StepKind.EVENT and step.orphan_stop


def apply_step(
    account: AccountRow | None,
    session: SessionRow | None,
    step: Step,
    marker: ClosedMarker | None = None,
    queue_full: bool = False,
) -> Applied:
    """Work out one step on copies; the caller writes what ``Applied`` says, atomically.

    ``marker`` is the session's closed marker, if the store has one (read when
    ``reads_marker``); ``queue_full`` whether the record queue holds its bound (read when
    ``needs_queue_room``).
    """
    if account is None:
        return _simple(StepStatus.DENIED, None, DenyReason.UNKNOWN_ACCOUNT)
    if session is not None and not session.open and step.now_ms >= session.expires_ms:
        session = None
    if marker is not None and (not reads_marker(step) or step.now_ms >= marker.expires_ms):
        marker = None
    if step.kind is StepKind.HOLD:
        return _hold(account, session, step, marker, queue_full)
    if step.kind is StepKind.CLOSE:
        return _close(account, session, step)
    return _event(account, session, step, marker, queue_full)


def _hold(
    account: AccountRow,
    session: SessionRow | None,
    step: Step,
    marker: ClosedMarker | None,
    queue_full: bool,
) -> Applied:
    version = -1
    if session is not None:
        if not session.open:
            if step.new_session:
                return _simple(StepStatus.ALREADY_CLOSED, account)
            return _simple(StepStatus.UNKNOWN_SESSION, account)
        if session.version == step.request_number and session.kind is StepKind.HOLD:
            return _duplicate(session)
        if step.new_session:
            return _simple(StepStatus.DENIED, account, DenyReason.SESSION_EXISTS, session.version)
        if step.expected_version is not None and step.expected_version != session.version:
            return _simple(
                StepStatus.STALE, account, version=session.version, session_state=session.state
            )
        version = session.version
    elif not step.new_session:
        return _simple(StepStatus.UNKNOWN_SESSION, account)
    elif marker is not None:
        return _simple(StepStatus.ALREADY_CLOSED, account)
    if account.status is not AccountStatus.ACTIVE:
        return _simple(StepStatus.DENIED, account, _status_reason(account.status), version)
    if (
        step.new_session
        and account.max_sessions != NO_LIMIT
        and account.sessions >= account.max_sessions
    ):
        return _simple(StepStatus.DENIED, account, DenyReason.TOO_MANY_SESSIONS, version)
    if step.new_session and queue_full:
        return _simple(StepStatus.DENIED, account, DenyReason.RECORD_QUEUE_FULL, version)

    a = account.copy()
    _roll(a, step)
    holds = dict(session.holds) if session is not None else {}
    grants: list[int] = []
    reasons: list[DenyReason | None] = []
    credit = a.credit_micros
    for hold in step.holds:
        other = a.held_micros - holds.get(hold.key, 0)
        keep = hold.keep_micros
        desired = max(hold.desired_micros, keep)
        least = min(hold.min_micros, desired)
        rooms = [(a.balance_micros + credit - other - keep, DenyReason.INSUFFICIENT_FUNDS)]
        if a.daily_cap_micros != NO_LIMIT:
            rooms.append(
                (a.daily_cap_micros - a.day_spent_micros - other - keep, DenyReason.DAILY_CAP)
            )
        if a.monthly_cap_micros != NO_LIMIT:
            rooms.append(
                (a.monthly_cap_micros - a.month_spent_micros - other - keep, DenyReason.MONTHLY_CAP)
            )
        room = max(0, min(r for r, _ in rooms))
        grant = keep + min(desired - keep, room)
        reason = None
        if grant < least:
            grant = keep
            reason = next(why for r, why in rooms if keep + max(0, r) < least)
        if grant:
            holds[hold.key] = grant
        else:
            holds.pop(hold.key, None)
        a.held_micros = other + grant
        grants.append(grant)
        reasons.append(reason)

    bundle_holds = dict(session.bundle_holds) if session is not None else {}
    bundle_grants: list[int] = []
    replaced: dict[str, str] = {}
    for wanted in step.bundle_holds:
        bundle_id, period = wanted.bundle_id, wanted.period_key
        periods = a.bundles.setdefault(bundle_id, {})
        previous = bundle_holds.get(bundle_id)
        current = 0
        if replaced.get(bundle_id) != period:
            if previous is not None:
                periods.setdefault(previous[0], [0, 0])[1] -= previous[1]
            replaced[bundle_id] = period
        elif previous is not None:
            current = previous[1]
        counts = periods.setdefault(period, [0, 0])
        keep = wanted.keep_s
        desired = max(wanted.desired_s, keep)
        room = max(0, wanted.allowance_s - counts[0] - counts[1] - keep)
        grant = keep + min(desired - keep, room)
        counts[1] += grant
        if current + grant:
            bundle_holds[bundle_id] = (period, current + grant)
        else:
            bundle_holds.pop(bundle_id, None)
        bundle_grants.append(grant)
    for bundle_id, period in replaced.items():
        _prune(a, bundle_id, period)

    if (
        step.new_session
        and step.holds
        and all(r is not None for r in reasons)
        and not any(bundle_grants)
    ):
        return Applied(
            StepResult(
                status=StepStatus.DENIED,
                reason=reasons[0],
                holds=tuple(grants),
                hold_reasons=tuple(reasons),
                bundle_holds=tuple(bundle_grants),
                balance_micros=account.balance_micros,
                available_micros=account.available_micros,
            )
        )
    if step.new_session:
        a.sessions += 1
    _check_account(a)
    result = StepResult(
        status=StepStatus.OK,
        holds=tuple(grants),
        hold_reasons=tuple(reasons),
        bundle_holds=tuple(bundle_grants),
        balance_micros=a.balance_micros,
        available_micros=a.available_micros,
        context=step.context,
        version=step.request_number,
    )
    row = SessionRow(
        account_id=step.account_id,
        session_id=step.session_id,
        open=True,
        version=step.request_number,
        kind=StepKind.HOLD,
        deadline_ms=step.deadline_ms,
        state=step.state,
        holds=holds,
        bundle_holds=bundle_holds,
        result=pack_result(result),
        context=step.context,
    )
    return Applied(result, a, row)


def _use_bundles(a: AccountRow, step: Step, release: dict[str, tuple[str, int]]) -> None:
    touched: dict[str, str] = {}
    for bundle_id, (period, seconds) in release.items():
        periods = a.bundles.setdefault(bundle_id, {})
        periods.setdefault(period, [0, 0])[1] -= seconds
        touched[bundle_id] = max(period, touched.get(bundle_id, period))
    for bundle_id, period, seconds in step.bundle_used_s:
        periods = a.bundles.setdefault(bundle_id, {})
        periods.setdefault(period, [0, 0])[0] += seconds
        touched[bundle_id] = max(period, touched.get(bundle_id, period))
    for bundle_id, period in touched.items():
        _prune(a, bundle_id, period)


def _debit(a: AccountRow, amount: int) -> int:
    if amount > 0 and a.kind is AccountKind.PREPAID:
        amount = min(amount, max(a.balance_micros, 0))
    a.balance_micros -= amount
    if amount > 0:
        a.day_spent_micros += amount
        a.month_spent_micros += amount
    return amount


def _finish(
    a: AccountRow, step: Step, debited: int, state: bytes
) -> tuple[StepResult, SessionRow, NewRecord, ClosedMarker | None]:
    _check_account(a)
    result = StepResult(
        status=StepStatus.OK,
        debited_micros=debited,
        balance_micros=a.balance_micros,
        available_micros=a.available_micros,
        context=step.context,
        version=step.request_number,
    )
    tombstone = SessionRow(
        account_id=step.account_id,
        session_id=step.session_id,
        open=False,
        version=step.request_number,
        kind=step.kind,
        deadline_ms=0,
        state=state,
        holds={},
        bundle_holds={},
        result=pack_result(result),
        context=step.context,
        expires_ms=step.now_ms + step.tombstone_ttl_ms,
    )
    record = NewRecord(
        RecordKind.CDR, step.record, step.account_id, debited, a.balance_micros, step.now_ms
    )
    marker = None
    if step.closed_ttl_ms:
        marker = ClosedMarker(
            step.request_number, debited, step.context, step.now_ms + step.closed_ttl_ms
        )
    return result, tombstone, record, marker


def _close(account: AccountRow, session: SessionRow | None, step: Step) -> Applied:
    if session is None:
        return _simple(StepStatus.UNKNOWN_SESSION, account)
    if not session.open:
        if session.version == step.request_number and session.kind is StepKind.CLOSE:
            return _duplicate(session)
        return _simple(StepStatus.UNKNOWN_SESSION, account)
    if step.expected_version is not None and step.expected_version != session.version:
        return _simple(
            StepStatus.STALE, account, version=session.version, session_state=session.state
        )
    a = account.copy()
    _roll(a, step)
    a.held_micros -= sum(session.holds.values())
    debited = _debit(a, step.debit_micros)
    a.sessions = max(0, a.sessions - 1)
    _use_bundles(a, step, session.bundle_holds)
    result, tombstone, record, marker = _finish(a, step, debited, session.state)
    return Applied(result, a, tombstone, record, marker)


def _event(
    account: AccountRow,
    session: SessionRow | None,
    step: Step,
    marker: ClosedMarker | None,
    queue_full: bool,
) -> Applied:
    if session is not None:
        if session.open:
            return _simple(StepStatus.DENIED, account, DenyReason.SESSION_EXISTS, session.version)
        if session.version == step.request_number and (
            session.kind is StepKind.EVENT or step.orphan_stop
        ):
            return _duplicate(session)
        if step.orphan_stop:
            return _simple(StepStatus.ALREADY_CLOSED, account)
        return _simple(StepStatus.UNKNOWN_SESSION, account)
    if step.orphan_stop and marker is not None:
        if marker.request_number != step.request_number:
            return _simple(StepStatus.ALREADY_CLOSED, account)
        return Applied(
            StepResult(
                status=StepStatus.DUPLICATE,
                debited_micros=marker.debited_micros,
                balance_micros=account.balance_micros,
                available_micros=account.available_micros,
                context=marker.context,
                version=marker.request_number,
            )
        )
    a = account.copy()
    _roll(a, step)
    debit = step.debit_micros
    if debit > 0:
        if a.status is not AccountStatus.ACTIVE:
            return _simple(StepStatus.DENIED, account, _status_reason(a.status))
        if queue_full and needs_queue_room(step):
            return _simple(StepStatus.DENIED, account, DenyReason.RECORD_QUEUE_FULL)
        if step.require_funds:
            reason = None
            if debit > a.available_micros:
                reason = DenyReason.INSUFFICIENT_FUNDS
            elif (
                a.daily_cap_micros != NO_LIMIT
                and a.day_spent_micros + a.held_micros + debit > a.daily_cap_micros
            ):
                reason = DenyReason.DAILY_CAP
            elif (
                a.monthly_cap_micros != NO_LIMIT
                and a.month_spent_micros + a.held_micros + debit > a.monthly_cap_micros
            ):
                reason = DenyReason.MONTHLY_CAP
            if reason is not None:
                return _simple(StepStatus.DENIED, account, reason)
    debited = _debit(a, debit)
    _use_bundles(a, step, {})
    result, tombstone, record, marker = _finish(a, step, debited, b"")
    return Applied(result, a, tombstone, record, marker)


def apply_ledger(
    account: AccountRow | None,
    amount_micros: int,
    seen_balance: int | None,
    record: bytes,
    now_ms: int,
) -> tuple[LedgerResult, AccountRow | None, NewRecord | None]:
    """A ledger entry; ``seen_balance`` is the balance its idempotency key remembers, if any.

    Every kind follows the same money rules; the payload says which kind it was.
    """
    if account is None:
        return LedgerResult(False, False, 0, DenyReason.UNKNOWN_ACCOUNT), None, None
    if seen_balance is not None:
        return LedgerResult(False, True, seen_balance), None, None
    if (
        amount_micros < 0
        and account.kind is AccountKind.PREPAID
        and account.balance_micros + amount_micros - account.held_micros < 0
    ):
        result = LedgerResult(False, False, account.balance_micros, DenyReason.INSUFFICIENT_FUNDS)
        return result, None, None
    a = account.copy()
    a.balance_micros += amount_micros
    _check_account(a)
    new = NewRecord(
        RecordKind.LEDGER, record, a.account_id, amount_micros, a.balance_micros, now_ms
    )
    return LedgerResult(True, False, a.balance_micros), a, new
