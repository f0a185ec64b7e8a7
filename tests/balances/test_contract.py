"""The balance store contract: every backend passes every test here, with the same results."""

from __future__ import annotations

import asyncio

import pytest

from balances.engine import MAX_MICROS
from balances.model import (
    NO_LIMIT,
    AccountKind,
    AccountLimits,
    AccountStatus,
    BundleHold,
    DenyReason,
    Hold,
    LedgerKind,
    QueuedRecord,
    RecordKind,
    Step,
    StepKind,
    StepStatus,
)
from balances.store import BalanceStore
from tests.balances.backends import Backend

DAY = "2024-05-01"
MONTH = "2024-05"
T0 = 1_714_550_400_000
"""2024-05-01T08:00:00Z in epoch ms: every test's clock starts here."""
TTL = 600_000
HORIZON = 2 * 86_400_000
"""How long closed markers answer in these tests."""
HOUR = 3_600_000


async def account(
    store: BalanceStore,
    account_id: str = "acct",
    balance: int = 0,
    **limits: object,
) -> str:
    await store.put_account(AccountLimits(account_id, **limits))  # type: ignore[arg-type]
    if balance:
        result = await store.ledger(
            account_id, LedgerKind.TOPUP, balance, f"open-{account_id}", b"opening", T0
        )
        assert result.applied
    return account_id


def hold(
    session_id: str,
    request_number: int,
    *holds: Hold,
    account_id: str = "acct",
    new: bool = False,
    expected: int | None = None,
    bundles: tuple[BundleHold, ...] = (),
    now_ms: int = T0,
    day: str = DAY,
    month: str = MONTH,
    state: bytes = b"",
    context: bytes = b"",
    deadline_ms: int = T0 + 60_000,
    closed_ttl_ms: int = 0,
) -> Step:
    return Step(
        kind=StepKind.HOLD,
        account_id=account_id,
        session_id=session_id,
        request_number=request_number,
        now_ms=now_ms,
        day_key=day,
        month_key=month,
        holds=holds,
        bundle_holds=bundles,
        new_session=new,
        expected_version=expected,
        state=state or f"state-{session_id}-{request_number}".encode(),
        context=context,
        deadline_ms=deadline_ms,
        tombstone_ttl_ms=TTL,
        closed_ttl_ms=closed_ttl_ms,
    )


def close(
    session_id: str,
    request_number: int,
    debit: int,
    *,
    account_id: str = "acct",
    expected: int | None = None,
    used: tuple[tuple[str, str, int], ...] = (),
    now_ms: int = T0 + 1_000,
    day: str = DAY,
    month: str = MONTH,
    record: bytes = b"",
    context: bytes = b"",
    closed_ttl_ms: int = 0,
) -> Step:
    return Step(
        kind=StepKind.CLOSE,
        account_id=account_id,
        session_id=session_id,
        request_number=request_number,
        now_ms=now_ms,
        day_key=day,
        month_key=month,
        debit_micros=debit,
        bundle_used_s=used,
        expected_version=expected,
        record=record or f"cdr-{session_id}".encode(),
        context=context,
        tombstone_ttl_ms=TTL,
        closed_ttl_ms=closed_ttl_ms,
    )


def event(
    session_id: str,
    debit: int,
    *,
    request_number: int = 0,
    account_id: str = "acct",
    require_funds: bool = True,
    now_ms: int = T0,
    day: str = DAY,
    month: str = MONTH,
    used: tuple[tuple[str, str, int], ...] = (),
    orphan_stop: bool = False,
    closed_ttl_ms: int = 0,
) -> Step:
    return Step(
        kind=StepKind.EVENT,
        account_id=account_id,
        session_id=session_id,
        request_number=request_number,
        now_ms=now_ms,
        day_key=day,
        month_key=month,
        debit_micros=debit,
        bundle_used_s=used,
        require_funds=require_funds,
        record=f"event-{session_id}".encode(),
        context=b"ctx-" + session_id.encode(),
        tombstone_ttl_ms=TTL,
        orphan_stop=orphan_stop,
        closed_ttl_ms=closed_ttl_ms,
    )


def orphan(session_id: str, request_number: int, debit: int, now_ms: int) -> Step:
    """A stop whose session the caller did not find, charged as a one-off."""
    return event(
        session_id,
        debit,
        request_number=request_number,
        require_funds=False,
        now_ms=now_ms,
        orphan_stop=True,
        closed_ttl_ms=HORIZON,
    )


async def balance(store: BalanceStore, account_id: str = "acct") -> tuple[int, int]:
    state = await store.get_account(account_id)
    assert state is not None
    return state.balance_micros, state.held_micros


async def drain(store: BalanceStore, consumer: str = "test") -> list[QueuedRecord]:
    """Read every queued record (acknowledging them)."""
    found: list[QueuedRecord] = []
    while True:
        batch = await store.read_records(consumer, 100, 0)
        if not batch:
            return found
        found.extend(batch)
        await store.ack_records(batch)


# -- accounts and the ledger -------------------------------------------------------------


async def test_new_account_has_nothing(store: BalanceStore) -> None:
    await store.put_account(
        AccountLimits(
            "a1",
            AccountKind.POSTPAID,
            AccountStatus.ACTIVE,
            credit_limit_micros=5_000,
            daily_cap_micros=700,
            monthly_cap_micros=9_000,
            max_sessions=3,
        )
    )
    state = await store.get_account("a1")
    assert state is not None
    assert (state.kind, state.status) == (AccountKind.POSTPAID, AccountStatus.ACTIVE)
    assert (state.balance_micros, state.held_micros, state.sessions) == (0, 0, 0)
    assert (state.credit_limit_micros, state.daily_cap_micros) == (5_000, 700)
    assert (state.monthly_cap_micros, state.max_sessions) == (9_000, 3)
    assert state.available_micros == 5_000
    assert await store.get_account("nobody") is None


async def test_put_account_updates_limits_and_keeps_the_money(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    await store.put_account(
        AccountLimits("acct", status=AccountStatus.SUSPENDED, daily_cap_micros=50, max_sessions=1)
    )
    state = await store.get_account("acct")
    assert state is not None
    assert (state.balance_micros, state.held_micros, state.sessions) == (1_000, 300, 1)
    assert (state.status, state.daily_cap_micros, state.max_sessions) == (
        AccountStatus.SUSPENDED,
        50,
        1,
    )


async def test_ledger_credits_once_per_key(store: BalanceStore) -> None:
    await account(store)
    first = await store.ledger("acct", LedgerKind.TOPUP, 2_500, "pay-1", b"p1", T0)
    assert (first.applied, first.duplicate, first.balance_micros) == (True, False, 2_500)
    await store.ledger("acct", LedgerKind.PAYMENT, 500, "pay-2", b"p2", T0)
    again = await store.ledger("acct", LedgerKind.TOPUP, 2_500, "pay-1", b"p1", T0 + 5)
    assert (again.applied, again.duplicate, again.balance_micros) == (False, True, 2_500)
    assert await balance(store) == (3_000, 0)
    records = await drain(store)
    assert [(r.kind, r.amount_micros, r.balance_micros, r.payload) for r in records] == [
        (RecordKind.LEDGER, 2_500, 2_500, b"p1"),
        (RecordKind.LEDGER, 500, 3_000, b"p2"),
    ]
    assert {r.account_id for r in records} == {"acct"}


async def test_ledger_key_is_remembered_per_account(store: BalanceStore) -> None:
    await account(store, "a")
    await account(store, "b")
    assert (await store.ledger("a", LedgerKind.TOPUP, 10, "k", b"", T0)).applied
    assert (await store.ledger("b", LedgerKind.TOPUP, 20, "k", b"", T0)).applied


async def test_ledger_refuses_to_take_prepaid_below_zero_counting_holds(
    store: BalanceStore,
) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 400), new=True))
    refused = await store.ledger("acct", LedgerKind.ADJUSTMENT, -700, "adj-1", b"", T0)
    assert (refused.applied, refused.duplicate, refused.reason) == (
        False,
        False,
        DenyReason.INSUFFICIENT_FUNDS,
    )
    assert refused.balance_micros == 1_000
    taken = await store.ledger("acct", LedgerKind.ADJUSTMENT, -600, "adj-1", b"", T0)
    assert (taken.applied, taken.balance_micros) == (True, 400)
    assert await balance(store) == (400, 400)


async def test_ledger_may_take_postpaid_below_zero(store: BalanceStore) -> None:
    await account(store, kind=AccountKind.POSTPAID, credit_limit_micros=100)
    result = await store.ledger("acct", LedgerKind.ADJUSTMENT, -5_000, "adj", b"", T0)
    assert (result.applied, result.balance_micros) == (True, -5_000)


async def test_ledger_on_unknown_account(store: BalanceStore) -> None:
    result = await store.ledger("nobody", LedgerKind.TOPUP, 10, "k", b"", T0)
    assert (result.applied, result.reason) == (False, DenyReason.UNKNOWN_ACCOUNT)
    assert await store.queue_depth() == 0


async def test_ledger_works_on_a_suspended_account(store: BalanceStore) -> None:
    await account(store, status=AccountStatus.SUSPENDED)
    assert (await store.ledger("acct", LedgerKind.TOPUP, 10, "k", b"", T0)).applied


# -- holds -------------------------------------------------------------------------------


async def test_hold_granted_in_full(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    result = await store.step(hold("s1", 0, Hold("voice", 600, 100), new=True, context=b"c0"))
    assert result.status is StepStatus.OK
    assert (result.holds, result.hold_reasons) == ((600,), (None,))
    assert (result.balance_micros, result.available_micros, result.version) == (1_000, 400, 0)
    assert result.context == b"c0"
    assert await balance(store) == (1_000, 600)
    state = await store.get_account("acct")
    assert state is not None and state.sessions == 1


async def test_hold_granted_in_part(store: BalanceStore) -> None:
    await account(store, balance=250)
    result = await store.step(hold("s1", 0, Hold("voice", 600, 100), new=True))
    assert (result.status, result.holds, result.hold_reasons) == (StepStatus.OK, (250,), (None,))
    assert result.available_micros == 0


async def test_opening_hold_denied_opens_nothing(store: BalanceStore) -> None:
    await account(store, balance=50)
    result = await store.step(hold("s1", 0, Hold("voice", 600, 100), new=True))
    assert (result.status, result.reason) == (StepStatus.DENIED, DenyReason.INSUFFICIENT_FUNDS)
    assert (result.holds, result.hold_reasons) == ((0,), (DenyReason.INSUFFICIENT_FUNDS,))
    assert await store.get_session("acct", "s1") is None
    state = await store.get_account("acct")
    assert state is not None and (state.held_micros, state.sessions) == (0, 0)
    assert await store.find_session_account("s1") is None
    # nothing was remembered: the same request may succeed once the money is there
    await store.ledger("acct", LedgerKind.TOPUP, 1_000, "t", b"", T0)
    again = await store.step(hold("s1", 0, Hold("voice", 600, 100), new=True))
    assert (again.status, again.holds) == (StepStatus.OK, (600,))


async def test_update_denied_keeps_what_was_used(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 600, 100), new=True))
    await store.step(hold("s2", 0, Hold("voice", 400, 100), new=True))
    result = await store.step(hold("s1", 1, Hold("voice", 1_200, 700, keep_micros=500)))
    assert result.status is StepStatus.OK
    assert (result.holds, result.hold_reasons) == ((500,), (DenyReason.INSUFFICIENT_FUNDS,))
    assert await balance(store) == (1_000, 900)
    session = await store.get_session("acct", "s1")
    assert session is not None and session.holds == {"voice": 500}


async def test_keep_stays_held_whatever_the_balance(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 1_000), new=True))
    await store.ledger("acct", LedgerKind.ADJUSTMENT, -0, "zero", b"", T0)
    await store.put_account(AccountLimits("acct", daily_cap_micros=100))
    result = await store.step(hold("s1", 1, Hold("voice", 1_500, 0, keep_micros=800)))
    assert (result.holds, result.hold_reasons) == ((800,), (None,))
    assert result.available_micros == 200


async def test_keep_plus_what_is_left(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    await store.step(hold("s2", 0, Hold("voice", 500), new=True))
    result = await store.step(hold("s1", 1, Hold("voice", 900, 350, keep_micros=250)))
    # other holds 500, keep 250: 250 more may be held
    assert result.holds == (500,)
    assert await balance(store) == (1_000, 1_000)


async def test_holds_of_a_step_share_the_money_in_order(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    result = await store.step(
        hold(
            "s1",
            0,
            Hold("voice", 700, 100),
            Hold("video", 700, 100),
            Hold("sms", 700, 100),
            new=True,
        )
    )
    assert result.holds == (700, 300, 0)
    assert result.hold_reasons == (None, None, DenyReason.INSUFFICIENT_FUNDS)
    session = await store.get_session("acct", "s1")
    assert session is not None and session.holds == {"voice": 700, "video": 300}


async def test_a_hold_replaces_its_key_and_leaves_the_others(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 400), Hold("sms", 100), new=True))
    result = await store.step(hold("s1", 1, Hold("voice", 900), expected=0))
    assert result.holds == (900,)
    session = await store.get_session("acct", "s1")
    assert session is not None and session.holds == {"voice": 900, "sms": 100}
    assert await balance(store) == (1_000, 1_000)
    await store.step(hold("s1", 2, Hold("voice", 0), expected=1))
    session = await store.get_session("acct", "s1")
    assert session is not None and session.holds == {"sms": 100}


async def test_postpaid_holds_down_to_minus_the_credit_limit(store: BalanceStore) -> None:
    await account(store, kind=AccountKind.POSTPAID, credit_limit_micros=1_000)
    await store.ledger("acct", LedgerKind.ADJUSTMENT, -300, "bill", b"", T0)
    result = await store.step(hold("s1", 0, Hold("voice", 5_000, 100), new=True))
    assert (result.holds, result.available_micros) == ((700,), 0)
    denied = await store.step(hold("s2", 0, Hold("voice", 5_000, 1), new=True))
    assert (denied.status, denied.reason) == (StepStatus.DENIED, DenyReason.INSUFFICIENT_FUNDS)


async def test_postpaid_close_debits_in_full_past_the_limit(store: BalanceStore) -> None:
    await account(store, kind=AccountKind.POSTPAID, credit_limit_micros=1_000)
    await store.step(hold("s1", 0, Hold("voice", 1_000), new=True))
    result = await store.step(close("s1", 1, 1_800))
    assert (result.status, result.debited_micros, result.balance_micros) == (
        StepStatus.OK,
        1_800,
        -1_800,
    )
    assert result.available_micros == -800
    assert await balance(store) == (-1_800, 0)


@pytest.mark.parametrize("cost", [1_001, 1_250, 10**12])
async def test_prepaid_close_overrun_stops_at_zero(store: BalanceStore, cost: int) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 1_000), new=True))
    result = await store.step(close("s1", 1, cost))
    assert (result.debited_micros, result.balance_micros) == (1_000, 0)
    assert await balance(store) == (0, 0)
    (_, record) = await drain(store)
    assert (record.kind, record.amount_micros, record.balance_micros) == (RecordKind.CDR, 1_000, 0)


async def test_close_releases_every_hold_and_debits(store: BalanceStore) -> None:
    await account(store, balance=10_000)
    await store.step(hold("s1", 0, Hold("voice", 3_000), Hold("sms", 500), new=True))
    await store.step(hold("s2", 0, Hold("voice", 1_000), new=True))
    result = await store.step(close("s1", 1, 2_100, record=b"the-cdr", context=b"cc"))
    assert (result.status, result.debited_micros, result.balance_micros) == (
        StepStatus.OK,
        2_100,
        7_900,
    )
    assert (result.available_micros, result.version, result.context) == (6_900, 1, b"cc")
    assert await balance(store) == (7_900, 1_000)
    state = await store.get_account("acct")
    assert state is not None and state.sessions == 1
    assert (state.day_spent_micros, state.month_spent_micros) == (2_100, 2_100)
    assert await store.get_session("acct", "s1") is None
    (_, record) = await drain(store)
    assert (record.kind, record.account_id, record.payload) == (RecordKind.CDR, "acct", b"the-cdr")
    assert (record.amount_micros, record.balance_micros, record.at_ms) == (2_100, 7_900, T0 + 1_000)


async def test_close_of_a_session_that_held_nothing(store: BalanceStore) -> None:
    await account(store, balance=100)
    await store.step(hold("s1", 0, new=True))
    result = await store.step(close("s1", 1, 0))
    assert (result.status, result.debited_micros) == (StepStatus.OK, 0)
    (_, record) = await drain(store)
    assert (record.kind, record.amount_micros, record.balance_micros) == (RecordKind.CDR, 0, 100)


# -- caps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        pytest.param({"daily_cap_micros": 1_000}, DenyReason.DAILY_CAP, id="daily"),
        pytest.param({"monthly_cap_micros": 1_000}, DenyReason.MONTHLY_CAP, id="monthly"),
        pytest.param(
            {"daily_cap_micros": 1_000, "monthly_cap_micros": 1_000},
            DenyReason.DAILY_CAP,
            id="both",
        ),
    ],
)
async def test_caps_count_spent_and_held(
    store: BalanceStore, limits: dict[str, int], reason: DenyReason
) -> None:
    await account(store, balance=100_000, **limits)
    await store.step(hold("s1", 0, Hold("voice", 400), new=True))
    await store.step(close("s1", 1, 400))
    await store.step(hold("s2", 0, Hold("voice", 300), new=True))
    partial = await store.step(hold("s3", 0, Hold("voice", 1_000, 100), new=True))
    assert (partial.holds, partial.hold_reasons) == ((300,), (None,))
    denied = await store.step(hold("s4", 0, Hold("voice", 1_000, 100), new=True))
    assert (denied.status, denied.reason, denied.hold_reasons) == (
        StepStatus.DENIED,
        reason,
        (reason,),
    )


async def test_funds_are_the_first_reason(store: BalanceStore) -> None:
    await account(store, balance=50, daily_cap_micros=10)
    denied = await store.step(hold("s1", 0, Hold("voice", 1_000, 100), new=True))
    assert denied.reason is DenyReason.INSUFFICIENT_FUNDS


async def test_a_new_day_starts_the_daily_cap_again(store: BalanceStore) -> None:
    await account(store, balance=100_000, daily_cap_micros=1_000, monthly_cap_micros=1_500)
    await store.step(hold("s1", 0, Hold("voice", 1_000), new=True))
    await store.step(close("s1", 1, 1_000))
    denied = await store.step(hold("s2", 0, Hold("voice", 100, 100), new=True))
    assert denied.reason is DenyReason.DAILY_CAP
    next_day = await store.step(
        hold("s2", 0, Hold("voice", 1_000, 100), new=True, day="2024-05-02")
    )
    assert (next_day.status, next_day.holds) == (StepStatus.OK, (500,))
    state = await store.get_account("acct")
    assert state is not None
    assert (state.day_key, state.day_spent_micros) == ("2024-05-02", 0)
    assert (state.month_key, state.month_spent_micros) == (MONTH, 1_000)
    await store.step(close("s2", 1, 500, day="2024-05-02"))
    next_month = await store.step(
        hold("s3", 0, Hold("voice", 1_000, 100), new=True, day="2024-06-01", month="2024-06")
    )
    assert next_month.holds == (1_000,)
    state = await store.get_account("acct")
    assert state is not None
    assert (state.month_key, state.month_spent_micros) == ("2024-06", 0)


# -- sessions: limits, duplicates, versions ----------------------------------------------


async def test_session_limit(store: BalanceStore) -> None:
    await account(store, balance=10_000, max_sessions=2)
    assert (await store.step(hold("s1", 0, Hold("v", 10), new=True))).status is StepStatus.OK
    assert (await store.step(hold("s2", 0, Hold("v", 10), new=True))).status is StepStatus.OK
    denied = await store.step(hold("s3", 0, Hold("v", 10), new=True))
    assert (denied.status, denied.reason) == (StepStatus.DENIED, DenyReason.TOO_MANY_SESSIONS)
    # updates of open sessions are not new sessions
    assert (await store.step(hold("s1", 1, Hold("v", 20)))).status is StepStatus.OK
    await store.step(close("s2", 1, 5))
    assert (await store.step(hold("s3", 0, Hold("v", 10), new=True))).status is StepStatus.OK


async def test_unlimited_sessions(store: BalanceStore) -> None:
    await account(store, balance=10_000, max_sessions=NO_LIMIT)
    for n in range(5):
        result = await store.step(hold(f"s{n}", 0, Hold("v", 10), new=True))
        assert result.status is StepStatus.OK


async def test_duplicate_hold_returns_the_original_and_changes_nothing(
    store: BalanceStore,
) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    first = await store.step(
        hold(
            "s1",
            1,
            Hold("voice", 900, 100, keep_micros=200),
            Hold("sms", 500, 200),
            expected=0,
            state=b"S1",
            context=b"C1",
        )
    )
    assert (first.holds, first.hold_reasons) == ((900, 0), (None, DenyReason.INSUFFICIENT_FUNDS))
    assert first.available_micros == 100
    await store.ledger("acct", LedgerKind.TOPUP, 5_000, "t", b"", T0)
    before = await store.get_account("acct")
    again = await store.step(
        hold(
            "s1",
            1,
            Hold("voice", 950, 100, keep_micros=200),
            Hold("sms", 500, 200),
            expected=0,
            state=b"other",
            context=b"other",
        )
    )
    assert again.status is StepStatus.DUPLICATE
    assert (again.holds, again.hold_reasons) == (first.holds, first.hold_reasons)
    assert (again.balance_micros, again.available_micros) == (1_000, first.available_micros)
    assert (again.context, again.session_state, again.version) == (b"C1", b"S1", 1)
    assert await store.get_account("acct") == before


async def test_duplicate_opening_hold(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    first = await store.step(hold("s1", 0, Hold("voice", 300), new=True, context=b"c"))
    again = await store.step(hold("s1", 0, Hold("voice", 300), new=True, context=b"c"))
    assert again.status is StepStatus.DUPLICATE
    assert (again.holds, again.context, again.version) == (first.holds, b"c", 0)
    state = await store.get_account("acct")
    assert state is not None and (state.sessions, state.held_micros) == (1, 300)


async def test_a_new_session_on_an_open_one_is_refused(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    result = await store.step(hold("s1", 5, Hold("voice", 300), new=True))
    assert (result.status, result.reason) == (StepStatus.DENIED, DenyReason.SESSION_EXISTS)
    assert await balance(store) == (1_000, 300)


async def test_stale_hold_gets_the_current_state(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True, state=b"v0"))
    await store.step(hold("s1", 1, Hold("voice", 400), expected=0, state=b"v1"))
    stale = await store.step(hold("s1", 2, Hold("voice", 900), expected=0, state=b"v2"))
    assert (stale.status, stale.session_state, stale.version) == (StepStatus.STALE, b"v1", 1)
    assert await balance(store) == (1_000, 400)
    # no expected version: last writer wins
    assert (await store.step(hold("s1", 2, Hold("voice", 900)))).status is StepStatus.OK


async def test_stale_close_moves_nothing(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    await store.step(hold("s1", 1, Hold("voice", 400), expected=0, state=b"v1"))
    stale = await store.step(close("s1", 2, 300, expected=0))
    assert (stale.status, stale.session_state, stale.version) == (StepStatus.STALE, b"v1", 1)
    assert await balance(store) == (1_000, 400)
    assert await store.queue_depth() == 1  # the opening top-up only


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(hold("nope", 1, Hold("voice", 10)), id="hold"),
        pytest.param(close("nope", 1, 10), id="close"),
    ],
)
async def test_unknown_session(store: BalanceStore, step: Step) -> None:
    await account(store, balance=1_000)
    result = await store.step(step)
    assert (result.status, result.balance_micros, result.version) == (
        StepStatus.UNKNOWN_SESSION,
        1_000,
        -1,
    )


@pytest.mark.parametrize(
    ("step", "status"),
    [
        pytest.param(
            hold("s1", 0, Hold("voice", 10), new=True), StepStatus.ALREADY_CLOSED, id="hold-new"
        ),
        pytest.param(
            hold("s1", 0, Hold("voice", 10), new=False),
            StepStatus.UNKNOWN_SESSION,
            id="hold-update",
        ),
        pytest.param(
            hold("s1", 1, Hold("voice", 10), new=False),
            StepStatus.UNKNOWN_SESSION,
            id="hold-same-number",
        ),
        pytest.param(close("s1", 2, 10), StepStatus.UNKNOWN_SESSION, id="close-other-number"),
        pytest.param(
            event("s1", 10, request_number=1), StepStatus.UNKNOWN_SESSION, id="event-same-number"
        ),
    ],
)
async def test_other_requests_on_a_tombstone(
    store: BalanceStore, step: Step, status: StepStatus
) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    await store.step(close("s1", 1, 100))
    result = await store.step(step)
    assert result.status is status
    assert await balance(store) == (900, 0)


async def test_duplicate_close_moves_no_money_and_queues_nothing(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True, state=b"last"))
    first = await store.step(close("s1", 1, 250, context=b"charge"))
    again = await store.step(close("s1", 1, 999, context=b"other"))
    assert again.status is StepStatus.DUPLICATE
    assert (again.debited_micros, again.balance_micros, again.available_micros) == (
        first.debited_micros,
        first.balance_micros,
        first.available_micros,
    )
    assert (again.context, again.session_state, again.version) == (b"charge", b"last", 1)
    assert await balance(store) == (750, 0)
    records = await drain(store)
    assert [r.amount_micros for r in records if r.kind is RecordKind.CDR] == [250]


async def test_tombstone_expires(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    await store.step(close("s1", 1, 100, now_ms=T0 + 1_000))
    late = T0 + 1_000 + TTL
    just_before = await store.step(close("s1", 1, 100, now_ms=late - 1))
    assert just_before.status is StepStatus.DUPLICATE
    after = await store.step(close("s1", 1, 100, now_ms=late))
    assert after.status is StepStatus.UNKNOWN_SESSION
    reopened = await store.step(hold("s1", 0, Hold("voice", 300), new=True, now_ms=late))
    assert reopened.status is StepStatus.OK
    assert await balance(store) == (900, 300)


async def test_reaper_close_with_the_version_it_saw(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True, deadline_ms=T0 + 10))
    (found,) = await store.expired_sessions(T0 + 10, 10)
    # the call moved on meanwhile: the reaper's close is stale
    await store.step(hold("s1", 1, Hold("voice", 400), expected=0, deadline_ms=T0 + 20))
    stale = await store.step(close("s1", found.version + 1, 300, expected=found.version))
    assert stale.status is StepStatus.STALE
    (found,) = await store.expired_sessions(T0 + 20, 10)
    reaped = await store.step(close("s1", found.version + 1, 300, expected=found.version))
    assert (reaped.status, reaped.debited_micros) == (StepStatus.OK, 300)
    assert await store.expired_sessions(T0 + 10_000, 10) == []


# -- account status ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        pytest.param(AccountStatus.SUSPENDED, DenyReason.SUSPENDED, id="suspended"),
        pytest.param(AccountStatus.CLOSED, DenyReason.CLOSED, id="closed"),
    ],
)
async def test_inactive_accounts_hold_nothing_but_close_and_credit(
    store: BalanceStore, status: AccountStatus, reason: DenyReason
) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    await store.put_account(AccountLimits("acct", status=status))
    opening = await store.step(hold("s2", 0, Hold("voice", 300), new=True))
    assert (opening.status, opening.reason) == (StepStatus.DENIED, reason)
    update = await store.step(hold("s1", 1, Hold("voice", 600), expected=0))
    assert (update.status, update.reason) == (StepStatus.DENIED, reason)
    debit = await store.step(event("e1", 10))
    assert (debit.status, debit.reason) == (StepStatus.DENIED, reason)
    forced = await store.step(event("e2", 10, require_funds=False))
    assert (forced.status, forced.reason) == (StepStatus.DENIED, reason)
    refund = await store.step(event("e3", -50))
    assert (refund.status, refund.debited_micros, refund.balance_micros) == (
        StepStatus.OK,
        -50,
        1_050,
    )
    closed = await store.step(close("s1", 1, 200, expected=0))
    assert (closed.status, closed.debited_micros) == (StepStatus.OK, 200)
    assert await balance(store) == (850, 0)


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(hold("s1", 0, Hold("voice", 10), new=True), id="hold"),
        pytest.param(close("s1", 1, 10), id="close"),
        pytest.param(event("e1", 10), id="event"),
    ],
)
async def test_unknown_account(store: BalanceStore, step: Step) -> None:
    result = await store.step(step)
    assert (result.status, result.reason) == (StepStatus.DENIED, DenyReason.UNKNOWN_ACCOUNT)
    assert await store.queue_depth() == 0


# -- events ------------------------------------------------------------------------------


async def test_event_debit_needs_the_money(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 600), new=True))
    refused = await store.step(event("e1", 401))
    assert (refused.status, refused.reason) == (StepStatus.DENIED, DenyReason.INSUFFICIENT_FUNDS)
    paid = await store.step(event("e1", 400))
    assert (paid.status, paid.debited_micros, paid.balance_micros) == (StepStatus.OK, 400, 600)
    assert (paid.available_micros, paid.context) == (0, b"ctx-e1")
    assert await balance(store) == (600, 600)


async def test_forced_event_debit_stops_prepaid_at_zero(store: BalanceStore) -> None:
    await account(store, balance=300)
    result = await store.step(event("e1", 500, require_funds=False))
    assert (result.status, result.debited_micros, result.balance_micros) == (StepStatus.OK, 300, 0)


async def test_forced_event_debit_on_postpaid(store: BalanceStore) -> None:
    await account(store, kind=AccountKind.POSTPAID, credit_limit_micros=100)
    result = await store.step(event("e1", 500, require_funds=False))
    assert (result.debited_micros, result.balance_micros) == (500, -500)


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        pytest.param({"daily_cap_micros": 500}, DenyReason.DAILY_CAP, id="daily"),
        pytest.param({"monthly_cap_micros": 500}, DenyReason.MONTHLY_CAP, id="monthly"),
    ],
)
async def test_event_debit_within_the_caps(
    store: BalanceStore, limits: dict[str, int], reason: DenyReason
) -> None:
    await account(store, balance=10_000, **limits)
    await store.step(hold("s1", 0, Hold("voice", 200), new=True))
    assert (await store.step(event("e1", 200))).status is StepStatus.OK
    refused = await store.step(event("e2", 101))
    assert (refused.status, refused.reason) == (StepStatus.DENIED, reason)
    assert (await store.step(event("e2", 100))).status is StepStatus.OK


async def test_refund_does_not_lower_what_was_spent(store: BalanceStore) -> None:
    await account(store, balance=10_000, daily_cap_micros=500)
    await store.step(event("e1", 500))
    await store.step(event("e2", -500))
    state = await store.get_account("acct")
    assert state is not None and (state.balance_micros, state.day_spent_micros) == (10_000, 500)


async def test_duplicate_event(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    first = await store.step(event("e1", 300, request_number=3))
    again = await store.step(event("e1", 300, request_number=3))
    assert again.status is StepStatus.DUPLICATE
    assert (again.debited_micros, again.balance_micros, again.context, again.version) == (
        300,
        700,
        b"ctx-e1",
        3,
    )
    assert first.balance_micros == 700
    assert await balance(store) == (700, 0)
    records = await drain(store)
    assert [r.amount_micros for r in records if r.kind is RecordKind.CDR] == [300]


async def test_event_on_an_open_session_is_refused(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    result = await store.step(event("s1", 100, request_number=7))
    assert (result.status, result.reason) == (StepStatus.DENIED, DenyReason.SESSION_EXISTS)


async def test_event_tombstone_expires(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(event("e1", 100))
    assert (await store.step(event("e1", 100, now_ms=T0 + TTL - 1))).status is (
        StepStatus.DUPLICATE
    )
    late = await store.step(event("e1", 100, now_ms=T0 + TTL))
    assert (late.status, late.balance_micros) == (StepStatus.OK, 800)


# -- bundles -----------------------------------------------------------------------------


def free(desired: int, keep: int = 0, period: str = MONTH, allowance: int = 100) -> BundleHold:
    return BundleHold("free100", period, allowance, desired, keep)


async def test_two_sessions_compete_for_the_last_free_seconds(store: BalanceStore) -> None:
    await account(store, balance=10_000)
    await store.step(hold("s0", 0, Hold("v", 10), new=True, bundles=(free(60),)))
    await store.step(close("s0", 1, 0, used=(("free100", MONTH, 60),)))
    first = await store.step(hold("s1", 0, Hold("v", 10), new=True, bundles=(free(30),)))
    second = await store.step(hold("s2", 0, Hold("v", 10), new=True, bundles=(free(30),)))
    assert (first.bundle_holds, second.bundle_holds) == ((30,), (10,))
    third = await store.step(hold("s3", 0, Hold("v", 10), new=True, bundles=(free(30),)))
    assert third.bundle_holds == (0,)
    # s1 gives back what it did not use
    await store.step(close("s1", 1, 0, used=(("free100", MONTH, 5),)))
    fourth = await store.step(hold("s4", 0, Hold("v", 10), new=True, bundles=(free(30),)))
    assert fourth.bundle_holds == (25,)


async def test_bundle_keep_and_update(store: BalanceStore) -> None:
    await account(store, balance=10_000)
    await store.step(hold("s1", 0, bundles=(free(60),), new=True))
    await store.step(hold("s2", 0, bundles=(free(30),), new=True))
    # s1 used 50 seconds and wants 60 more: only 10 are left besides its own 60
    result = await store.step(hold("s1", 1, bundles=(free(110, keep=50),)))
    assert result.bundle_holds == (70,)
    result = await store.step(hold("s1", 2, bundles=(free(200, keep=80),)))
    assert result.bundle_holds == (80,)


async def test_free_seconds_alone_open_a_session(store: BalanceStore) -> None:
    await account(store)
    result = await store.step(hold("s1", 0, Hold("v", 100, 10), new=True, bundles=(free(60),)))
    assert result.status is StepStatus.OK
    assert (result.holds, result.hold_reasons, result.bundle_holds) == (
        (0,),
        (DenyReason.INSUFFICIENT_FUNDS,),
        (60,),
    )


async def test_a_new_period_brings_a_new_allowance(store: BalanceStore) -> None:
    await account(store, balance=10_000)
    await store.step(hold("s1", 0, bundles=(free(100),), new=True))
    await store.step(close("s1", 1, 0, used=(("free100", MONTH, 100),)))
    assert (await store.step(hold("s2", 0, bundles=(free(10),), new=True))).bundle_holds == (0,)
    june = await store.step(
        hold("s3", 0, bundles=(free(70, period="2024-06"),), new=True, month="2024-06")
    )
    assert june.bundle_holds == (70,)
    # s2 moves to the new period: its old hold goes, the new one shares June's seconds
    moved = await store.step(hold("s2", 1, bundles=(free(50, period="2024-06"),)))
    assert moved.bundle_holds == (30,)


async def test_event_consumes_free_seconds(store: BalanceStore) -> None:
    await account(store, balance=10_000)
    await store.step(event("e1", 0, used=(("free100", MONTH, 90),)))
    result = await store.step(hold("s1", 0, bundles=(free(60),), new=True))
    assert result.bundle_holds == (10,)


# -- finding sessions --------------------------------------------------------------------


async def test_get_session(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 4, Hold("voice", 300), new=True, state=b"st", deadline_ms=T0 + 99))
    session = await store.get_session("acct", "s1")
    assert session is not None
    assert (session.account_id, session.session_id, session.version) == ("acct", "s1", 4)
    assert (session.deadline_ms, session.state, session.holds) == (T0 + 99, b"st", {"voice": 300})
    assert await store.get_session("acct", "other") is None
    assert await store.get_session("other", "s1") is None


async def test_find_session_account(store: BalanceStore) -> None:
    await account(store, "a:1", balance=1_000)
    assert await store.find_session_account("s1") is None
    await store.step(hold("s1", 0, Hold("voice", 300), account_id="a:1", new=True))
    assert await store.find_session_account("s1") == "a:1"
    await store.step(close("s1", 1, 10, account_id="a:1"))
    assert await store.find_session_account("s1") is None


async def test_open_sessions_of_every_account(store: BalanceStore) -> None:
    await account(store, "a", balance=1_000)
    await account(store, "b", balance=1_000)
    assert await store.count_open_sessions() == 0
    for n, (acct, deadline) in enumerate([("a", 30), ("b", 10), ("a", 20)]):
        await store.step(
            hold(f"s{n}", 0, Hold("v", 5), account_id=acct, new=True, deadline_ms=T0 + deadline)
        )
    await store.step(close("s2", 1, 5, account_id="a"))
    assert await store.count_open_sessions() == 2
    found = await store.open_sessions(10)
    assert [(s.account_id, s.session_id) for s in found] == [("b", "s1"), ("a", "s0")]
    assert [s.session_id for s in await store.open_sessions(1)] == ["s1"]


async def test_expired_sessions(store: BalanceStore) -> None:
    await account(store, "a", balance=1_000)
    await account(store, "b", balance=1_000)
    for n, (acct, deadline) in enumerate([("a", 30), ("b", 10), ("a", 20), ("b", 50)]):
        await store.step(
            hold(f"s{n}", 0, Hold("v", 5), account_id=acct, new=True, deadline_ms=T0 + deadline)
        )
    found = await store.expired_sessions(T0 + 30, 10)
    assert [(s.session_id, s.account_id, s.deadline_ms) for s in found] == [
        ("s1", "b", T0 + 10),
        ("s2", "a", T0 + 20),
        ("s0", "a", T0 + 30),
    ]
    assert found[0].holds == {"v": 5}
    assert [s.session_id for s in await store.expired_sessions(T0 + 30, 2)] == ["s1", "s2"]
    await store.step(hold("s1", 1, Hold("v", 5), account_id="b", deadline_ms=T0 + 1_000))
    await store.step(close("s2", 1, 0, account_id="a"))
    assert [s.session_id for s in await store.expired_sessions(T0 + 30, 10)] == ["s0"]


# -- the record queue --------------------------------------------------------------------


async def test_records_come_back_until_acknowledged(backend: Backend) -> None:
    store = backend.open(claim_idle_ms=0)
    await account(store, balance=1_000)
    for n in range(5):
        await store.step(event(f"e{n}", 10 * (n + 1)))
    assert await store.queue_depth() == 6
    first = await store.read_records("w1", 4, 0)
    assert len(first) == 4
    # w1 "crashes": nothing is acknowledged; it reads again and gets the same ones first
    again = await store.read_records("w1", 4, 0)
    assert [r.record_id for r in again] == [r.record_id for r in first]
    # another consumer takes over what w1 left (claim_idle_ms=0) and what nobody read yet
    other = backend.open(claim_idle_ms=0)
    taken = await other.read_records("w2", 10, 0)
    assert sorted(r.record_id for r in taken) == sorted(
        {r.record_id for r in first} | {r.record_id for r in taken}
    )
    assert len(taken) == 6
    await other.ack_records(taken)
    assert await store.queue_depth() == 0
    assert await store.read_records("w1", 10, 0) == []
    amounts = sorted(r.amount_micros for r in taken if r.kind is RecordKind.CDR)
    assert amounts == [10, 20, 30, 40, 50]


async def test_records_of_a_live_consumer_are_not_taken(backend: Backend) -> None:
    store = backend.open(claim_idle_ms=60_000)
    await account(store, balance=1_000)
    await store.step(event("e1", 10))
    await store.step(event("e2", 20))
    mine = await store.read_records("w1", 10, 0)
    assert len(mine) == 3
    assert await backend.open(claim_idle_ms=60_000).read_records("w2", 10, 0) == []
    await store.step(event("e3", 30))
    (new,) = await backend.open(claim_idle_ms=60_000).read_records("w2", 10, 0)
    assert (new.amount_micros, new.payload) == (30, b"event-e3")
    await store.ack_records(mine[:1])
    assert await store.queue_depth() == 3


async def test_a_reader_holding_records_asks_only_for_new_ones(backend: Backend) -> None:
    store = backend.open(claim_idle_ms=0)
    await account(store, balance=1_000)
    for n in range(3):
        await store.step(event(f"e{n}", 10 * (n + 1)))
    held = await store.read_records("w1", 2, 0)
    # w1 still holds two records: a plain read would hand them back, new_only does not
    more = await store.read_records("w1", 10, 0, new_only=True)
    assert len(held) == 2 and len(more) == 2
    assert not {r.record_id for r in held} & {r.record_id for r in more}
    # nor does it take over what another consumer holds, however long it has held it
    assert await backend.open(claim_idle_ms=0).read_records("w2", 10, 0, new_only=True) == []
    await store.ack_records([*held, *more])
    assert await store.queue_depth() == 0


async def test_read_records_waits_for_new_ones(backend: Backend) -> None:
    store = backend.open()
    await account(store)
    assert await store.read_records("w1", 10, 50) == []


async def test_a_waiting_read_gets_a_record_as_it_comes(backend: Backend) -> None:
    store = backend.open()
    await account(store)
    reading = asyncio.create_task(store.read_records("w1", 10, 5_000))
    await asyncio.sleep(0.05)
    assert not reading.done()
    await store.step(event("e1", -10))
    (record,) = await asyncio.wait_for(reading, 2)
    assert (record.kind, record.amount_micros, record.payload) == (
        RecordKind.CDR,
        -10,
        b"event-e1",
    )


async def test_every_money_move_queues_one_record(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))  # duplicate
    await store.step(hold("s2", 0, Hold("voice", 3_000, 3_000), new=True))  # denied
    await store.step(close("s1", 1, 120))
    await store.step(close("s1", 1, 120))  # duplicate
    await store.step(event("e1", 5_000))  # denied
    await store.step(event("e2", -30))
    await store.ledger("acct", LedgerKind.TOPUP, 70, "t1", b"", T0)
    await store.ledger("acct", LedgerKind.TOPUP, 70, "t1", b"", T0)  # duplicate
    records = await drain(store)
    assert [(r.kind, r.amount_micros, r.balance_micros) for r in records] == [
        (RecordKind.LEDGER, 1_000, 1_000),
        (RecordKind.CDR, 120, 880),
        (RecordKind.CDR, -30, 910),
        (RecordKind.LEDGER, 70, 980),
    ]
    assert await balance(store) == (980, 0)


# -- the record queue's bound ------------------------------------------------------------


async def test_a_full_queue_refuses_new_money_and_lets_calls_end(backend: Backend) -> None:
    # A bound of 1: the queue's one record, on both backends.
    store = backend.open(max_record_queue=1)
    await account(store, balance=10_000)
    await drain(store)
    assert (await store.step(hold("s1", 0, Hold("voice", 300), new=True))).status is StepStatus.OK
    assert (await store.step(event("e1", 100))).status is StepStatus.OK
    assert await store.queue_depth() == 1
    refused = await store.step(hold("s2", 0, Hold("voice", 300), new=True))
    assert (refused.status, refused.reason) == (StepStatus.DENIED, DenyReason.RECORD_QUEUE_FULL)
    assert await store.get_session("acct", "s2") is None
    assert await store.find_session_account("s2") is None
    state = await store.get_account("acct")
    assert state is not None and (state.held_micros, state.sessions) == (300, 1)
    debit = await store.step(event("e2", 100))
    assert (debit.status, debit.reason) == (StepStatus.DENIED, DenyReason.RECORD_QUEUE_FULL)
    # What ends calls, updates them or moves money already owed goes on, and is queued.
    assert (await store.step(hold("s1", 1, Hold("voice", 500), expected=0))).holds == (500,)
    closed = await store.step(close("s1", 2, 250, expected=1))
    assert (closed.status, closed.debited_micros) == (StepStatus.OK, 250)
    assert (await store.step(event("e3", -40))).status is StepStatus.OK
    assert (await store.step(event("e4", 30, require_funds=False))).status is StepStatus.OK
    assert (await store.step(orphan("s9", 3, 20, T0))).status is StepStatus.OK
    assert (await store.ledger("acct", LedgerKind.TOPUP, 70, "t1", b"", T0)).applied
    records = await drain(store)
    assert [(r.kind, r.payload) for r in records] == [
        (RecordKind.CDR, b"event-e1"),
        (RecordKind.CDR, b"cdr-s1"),
        (RecordKind.CDR, b"event-e3"),
        (RecordKind.CDR, b"event-e4"),
        (RecordKind.CDR, b"event-s9"),
        (RecordKind.LEDGER, b""),
    ]
    assert await balance(store) == (10_000 - 100 - 250 + 40 - 30 - 20 + 70, 0)
    # Drained: new calls and debits are taken again (once the store has looked: Redis looks
    # at the whole queue every queue_look_s).
    assert await store.queue_depth() == 0
    assert (await store.step(hold("s2", 0, Hold("voice", 300), new=True))).status is StepStatus.OK
    assert (await store.step(event("e2", 100))).status is StepStatus.OK


async def test_a_repeat_of_an_opening_hold_is_answered_while_the_queue_is_full(
    backend: Backend,
) -> None:
    store = backend.open(max_record_queue=1)
    await account(store, balance=10_000)
    await drain(store)
    opening = hold("s1", 0, Hold("voice", 300), new=True)
    assert (await store.step(opening)).status is StepStatus.OK
    assert (await store.step(event("e1", 100))).status is StepStatus.OK
    assert await store.queue_depth() == 1
    assert (await store.step(opening)).status is StepStatus.DUPLICATE


async def test_account_refusals_come_before_the_queues(backend: Backend) -> None:
    store = backend.open(max_record_queue=1)
    await account(store, balance=10_000, status=AccountStatus.SUSPENDED)
    refused = await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    assert refused.reason is DenyReason.SUSPENDED


async def test_an_unbounded_queue_refuses_nothing(backend: Backend) -> None:
    store = backend.open(max_record_queue=0)
    await account(store, balance=10_000)
    for n in range(3):
        assert (await store.step(event(f"e{n}", 100))).status is StepStatus.OK
    assert (await store.step(hold("s1", 0, Hold("voice", 300), new=True))).status is StepStatus.OK


# -- limits of the numbers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param(AccountLimits(""), id="no-id"),
        pytest.param(AccountLimits("a", credit_limit_micros=-1), id="negative-credit"),
        pytest.param(AccountLimits("a", daily_cap_micros=-5), id="negative-cap"),
        pytest.param(AccountLimits("a", monthly_cap_micros=MAX_MICROS), id="huge-cap"),
    ],
)
async def test_limits_the_store_cannot_keep_are_refused(
    store: BalanceStore, limits: AccountLimits
) -> None:
    with pytest.raises(ValueError):
        await store.put_account(limits)
    assert await store.get_account(limits.account_id) is None


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(hold("s1", 0, Hold("v", MAX_MICROS), new=True), id="hold"),
        pytest.param(hold("s1", 0, Hold("v", -1), new=True), id="negative-hold"),
        pytest.param(close("s1", 1, -MAX_MICROS), id="refund"),
        pytest.param(event("e1", MAX_MICROS), id="event"),
        pytest.param(hold("s1", 2**53, new=True), id="request-number"),
    ],
)
async def test_numbers_beyond_the_exact_range_are_refused(store: BalanceStore, step: Step) -> None:
    await account(store, balance=1_000)
    with pytest.raises(ValueError):
        await store.step(step)
    assert await balance(store) == (1_000, 0)


async def test_a_balance_beyond_the_exact_range_is_refused(store: BalanceStore) -> None:
    await account(store, balance=MAX_MICROS - 1)
    with pytest.raises(ValueError):
        await store.ledger("acct", LedgerKind.TOPUP, 1, "more", b"", T0)
    with pytest.raises(ValueError):
        await store.step(event("e1", -1))
    assert await balance(store) == (MAX_MICROS - 1, 0)
    assert await store.queue_depth() == 1


# -- closed markers: late repeats of a stop ----------------------------------------------


async def _closed_call(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    await store.step(close("s1", 7, 250, context=b"charge-250", closed_ttl_ms=HORIZON))


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(TTL // 2, id="within-the-tombstone"),
        pytest.param(TTL + 100_000, id="after-the-tombstone"),
        pytest.param(HORIZON - 2_000, id="at-the-horizon"),
    ],
)
async def test_a_late_repeat_of_a_stop_moves_no_money(store: BalanceStore, later: int) -> None:
    await _closed_call(store)
    again = await store.step(orphan("s1", 7, 999, now_ms=T0 + 1_000 + later))
    assert again.status is StepStatus.DUPLICATE
    assert (again.debited_micros, again.context, again.version) == (250, b"charge-250", 7)
    assert again.balance_micros == 750
    assert await balance(store) == (750, 0)
    assert [r.amount_micros for r in await drain(store) if r.kind is RecordKind.CDR] == [250]


@pytest.mark.parametrize(
    "later", [pytest.param(TTL // 2, id="tombstone"), pytest.param(TTL * 10, id="marker")]
)
async def test_a_late_stop_of_a_session_closed_otherwise_moves_no_money(
    store: BalanceStore, later: int
) -> None:
    await _closed_call(store)
    late = await store.step(orphan("s1", 1_000_000_060, 400, now_ms=T0 + 1_000 + later))
    assert (late.status, late.debited_micros, late.balance_micros) == (
        StepStatus.ALREADY_CLOSED,
        0,
        750,
    )
    assert await balance(store) == (750, 0)
    assert await store.queue_depth() == 2  # the opening credit and the call


async def test_a_repeat_of_an_orphan_stop_after_its_tombstone_moves_no_money(
    store: BalanceStore,
) -> None:
    await account(store, balance=1_000)
    first = await store.step(orphan("lost", 3, 200, now_ms=T0))
    assert (first.status, first.debited_micros) == (StepStatus.OK, 200)
    again = await store.step(orphan("lost", 3, 200, now_ms=T0 + TTL + 60_000))
    assert (again.status, again.debited_micros, again.context) == (
        StepStatus.DUPLICATE,
        200,
        b"ctx-lost",
    )
    assert await balance(store) == (800, 0)
    assert await store.queue_depth() == 2


async def test_after_the_horizon_a_stop_is_new_again(store: BalanceStore) -> None:
    await _closed_call(store)
    # Markers answer for at least the horizon; a backend may keep them up to an hour longer.
    late = await store.step(orphan("s1", 7, 100, now_ms=T0 + 1_000 + HORIZON + HOUR))
    assert (late.status, late.debited_micros, late.balance_micros) == (StepStatus.OK, 100, 650)


async def test_markers_are_kept_per_account(store: BalanceStore) -> None:
    await _closed_call(store)
    await account(store, "other", balance=1_000)
    step = orphan("s1", 7, 100, now_ms=T0 + TTL * 10)
    step.account_id = "other"
    result = await store.step(step)
    assert (result.status, result.balance_micros) == (StepStatus.OK, 900)


async def test_steps_without_a_marker_ttl_do_not_read_markers(store: BalanceStore) -> None:
    await _closed_call(store)
    later = T0 + TTL * 10
    reopened = await store.step(hold("s1", 0, Hold("voice", 300), new=True, now_ms=later))
    assert reopened.status is StepStatus.OK
    assert (await store.step(event("e1", 100, now_ms=later))).status is StepStatus.OK


async def test_only_orphan_stops_and_opening_holds_read_markers(store: BalanceStore) -> None:
    await _closed_call(store)
    later = T0 + TTL * 10
    plain = event("s1", 100, request_number=7, now_ms=later, closed_ttl_ms=HORIZON)
    result = await store.step(plain)
    assert (result.status, result.debited_micros) == (StepStatus.OK, 100)
    assert await balance(store) == (650, 0)


# -- closed markers: late repeats of an opening request ----------------------------------


def reopen(request_number: int = 0, later: int = TTL * 10, account_id: str = "acct") -> Step:
    """The opening hold of ``s1`` again, ``later`` ms after ``_closed_call`` closed it."""
    return hold(
        "s1",
        request_number,
        Hold("voice", 300),
        account_id=account_id,
        new=True,
        now_ms=T0 + 1_000 + later,
        deadline_ms=T0 + 1_000 + later + 60_000,
        closed_ttl_ms=HORIZON,
    )


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(TTL // 2, id="within-the-tombstone"),
        pytest.param(TTL, id="as-the-tombstone-expires"),
        pytest.param(TTL + 100_000, id="after-the-tombstone"),
        pytest.param(HORIZON - 2_000, id="at-the-horizon"),
    ],
)
@pytest.mark.parametrize("request_number", [pytest.param(0, id="rn-0"), pytest.param(7, id="rn-7")])
async def test_a_late_repeat_of_an_opening_hold_opens_nothing(
    store: BalanceStore, later: int, request_number: int
) -> None:
    await _closed_call(store)
    again = await store.step(reopen(request_number, later))
    assert (again.status, again.reason, again.holds) == (StepStatus.ALREADY_CLOSED, None, ())
    assert (again.balance_micros, again.available_micros) == (750, 750)
    assert await balance(store) == (750, 0)
    state = await store.get_account("acct")
    assert state is not None and state.sessions == 0
    assert await store.get_session("acct", "s1") is None
    assert await store.find_session_account("s1") is None
    assert await store.expired_sessions(T0 + 1_000 + later + HOUR, 10) == []
    assert await store.queue_depth() == 2  # the opening credit and the call


async def test_after_the_horizon_an_opening_hold_opens_again(store: BalanceStore) -> None:
    await _closed_call(store)
    # Markers answer for at least the horizon; a backend may keep them up to an hour longer.
    late = await store.step(reopen(later=HORIZON + HOUR))
    assert (late.status, late.holds) == (StepStatus.OK, (300,))
    assert await balance(store) == (750, 300)
    assert await store.get_session("acct", "s1") is not None


async def test_an_orphan_stops_marker_keeps_its_session_from_opening(
    store: BalanceStore,
) -> None:
    await account(store, balance=1_000)
    assert (await store.step(orphan("s1", 3, 200, now_ms=T0))).status is StepStatus.OK
    # The start of that call, delayed beyond the tombstone (a NAS buffer)
    late = await store.step(reopen(later=TTL * 3))
    assert late.status is StepStatus.ALREADY_CLOSED
    assert await balance(store) == (800, 0)


async def test_an_opening_hold_reads_only_its_accounts_marker(store: BalanceStore) -> None:
    await _closed_call(store)
    await account(store, "other", balance=1_000)
    result = await store.step(reopen(account_id="other"))
    assert (result.status, result.holds) == (StepStatus.OK, (300,))
    assert await balance(store, "other") == (1_000, 300)


async def test_a_session_remembered_closed_comes_before_the_accounts_status(
    store: BalanceStore,
) -> None:
    await _closed_call(store)
    await store.put_account(AccountLimits("acct", status=AccountStatus.SUSPENDED, max_sessions=0))
    result = await store.step(reopen())
    assert (result.status, result.reason) == (StepStatus.ALREADY_CLOSED, None)


async def test_a_step_without_a_marker_ttl_leaves_none(store: BalanceStore) -> None:
    await account(store, balance=1_000)
    await store.step(hold("s1", 0, Hold("voice", 300), new=True))
    await store.step(close("s1", 7, 250))
    late = await store.step(orphan("s1", 7, 250, now_ms=T0 + TTL * 10))
    assert (late.status, late.balance_micros) == (StepStatus.OK, 500)
