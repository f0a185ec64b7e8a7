"""Money is conserved whatever happens: random sequences of steps on both backends.

After every operation: a prepaid balance is not below zero, the account's holds are those of
its open sessions, and Σ ledger credits - Σ debited = balance. At the end the record queue
holds exactly one record per money move, with the same amounts.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from balances.model import (
    AccountKind,
    AccountLimits,
    AccountStatus,
    BundleHold,
    Hold,
    LedgerKind,
    RecordKind,
    Step,
    StepKind,
    StepStatus,
)
from balances.store import BalanceStore
from tests.balances.backends import Backend, delete_redis_keys

T0 = 1_714_550_400_000
SESSIONS = 3
money = st.integers(min_value=0, max_value=3_000)
session = st.integers(0, SESSIONS - 1)
seconds = st.integers(0, 120)
opening = st.tuples(st.just("open"), session, money, money, seconds)
update = st.tuples(
    st.just("update"), session, money, money, st.integers(0, 100), st.booleans(), seconds
)
closing = st.tuples(st.just("close"), session, money, st.booleans())

operations = st.lists(
    st.one_of(
        opening,
        opening,
        update,
        update,
        closing,
        closing,
        st.tuples(st.just("ledger"), st.integers(-2_000, 5_000), st.integers(0, 5)),
        st.tuples(st.just("event"), st.integers(0, 3), st.integers(-500, 3_000), st.booleans()),
        st.tuples(st.just("replay"), st.integers(0, 1_000)),
        st.tuples(
            st.just("limits"),
            st.sampled_from(list(AccountStatus)),
            st.sampled_from([-1, 500, 5_000]),
        ),
        st.tuples(
            st.just("day"),
        ),
    ),
    max_size=40,
)


class Scenario:
    """Runs operations against one account and checks the books after each."""

    def __init__(self, store: BalanceStore, kind: AccountKind) -> None:
        self.store = store
        self.kind = kind
        self.credited = 0
        self.debited = 0
        self.moves: list[tuple[RecordKind, int]] = []
        self.steps: list[Step] = []
        self.versions: dict[str, int] = {}
        self.numbers: dict[str, int] = {}
        self.open: set[str] = set()
        self.day = 1
        self.now = T0
        self.results: list[object] = []
        """Every answer of the store, in order (to compare backends)."""

    def limits(self, status: AccountStatus = AccountStatus.ACTIVE, cap: int = -1) -> AccountLimits:
        return AccountLimits(
            "acct",
            self.kind,
            status,
            credit_limit_micros=1_000 if self.kind is AccountKind.POSTPAID else 0,
            daily_cap_micros=cap,
        )

    def base(self, kind: StepKind, session_id: str, number: int) -> dict[str, Any]:
        self.now += 1_000
        return {
            "kind": kind,
            "account_id": "acct",
            "session_id": session_id,
            "request_number": number,
            "now_ms": self.now,
            "day_key": f"2024-05-{self.day:02d}",
            "month_key": "2024-05",
            "tombstone_ttl_ms": 10**9,
        }

    def next_number(self, session_id: str) -> int:
        self.numbers[session_id] = self.numbers.get(session_id, -1) + 1
        return self.numbers[session_id]

    async def run(self, opening_micros: int, ops: list[tuple[Any, ...]]) -> None:
        await self.store.put_account(self.limits())
        await self.op_ledger(opening_micros, -1)
        for op in ops:
            await getattr(self, f"op_{op[0]}")(*op[1:])
            await self.check()
        await self.check_records()

    async def op_ledger(self, amount: int, key: int) -> None:
        result = await self.store.ledger(
            "acct", LedgerKind.ADJUSTMENT, amount, f"k{key}", b"", self.now
        )
        self.results.append(result)
        if result.applied:
            self.credited += amount
            self.moves.append((RecordKind.LEDGER, amount))

    async def op_open(self, n: int, desired: int, least: int, free_s: int) -> None:
        session_id = f"s{n}-{self.numbers.get(f's{n}', 0)}"
        bundles = (BundleHold("b", "2024-05", 100, free_s),) if free_s else ()
        step = Step(
            **self.base(StepKind.HOLD, session_id, 0),
            holds=(Hold("voice", desired, least),),
            bundle_holds=bundles,
            new_session=True,
            deadline_ms=self.now + 60_000,
        )
        await self.run_step(step)

    async def op_update(
        self, n: int, desired: int, least: int, keep_pct: int, stale: bool, free_s: int
    ) -> None:
        session_id = self.session(n)
        if session_id is None:
            return
        current = await self.store.get_session("acct", session_id)
        held = sum(current.holds.values()) if current is not None else 0
        version = self.versions[session_id]
        step = Step(
            **self.base(StepKind.HOLD, session_id, version + 1),
            holds=(Hold("voice", desired, least, keep_micros=held * keep_pct // 100),),
            bundle_holds=(BundleHold("b", "2024-05", 100, free_s, free_s * keep_pct // 100),),
            expected_version=version - 1 if stale else version,
            deadline_ms=self.now + 60_000,
        )
        await self.run_step(step)

    async def op_close(self, n: int, debit: int, stale: bool) -> None:
        session_id = self.session(n)
        if session_id is None:
            return
        version = self.versions[session_id]
        step = Step(
            **self.base(StepKind.CLOSE, session_id, version + 1),
            debit_micros=debit,
            bundle_used_s=(("b", "2024-05", 30),),
            expected_version=version - 1 if stale else version,
        )
        await self.run_step(step)

    async def op_event(self, n: int, debit: int, require_funds: bool) -> None:
        session_id = f"e{n}"
        step = Step(
            **self.base(StepKind.EVENT, session_id, self.next_number(session_id)),
            debit_micros=debit,
            require_funds=require_funds,
        )
        await self.run_step(step)

    async def op_replay(self, index: int) -> None:
        if self.steps:
            await self.run_step(self.steps[index % len(self.steps)])

    async def op_limits(self, status: AccountStatus, cap: int) -> None:
        await self.store.put_account(self.limits(status, cap))

    async def op_day(self) -> None:
        self.day += 1

    def session(self, n: int) -> str | None:
        return next((s for s in sorted(self.open) if s.startswith(f"s{n}-")), None)

    async def run_step(self, step: Step) -> None:
        self.steps.append(step)
        result = await self.store.step(step)
        self.results.append(result)
        assert result.status in StepStatus
        if result.status is not StepStatus.OK:
            assert result.debited_micros == 0 or result.status is StepStatus.DUPLICATE
            return
        if step.kind is StepKind.HOLD:
            self.open.add(step.session_id)
            self.versions[step.session_id] = step.request_number
            assert result.holds[0] >= step.holds[0].keep_micros
            return
        self.debited += result.debited_micros
        self.moves.append((RecordKind.CDR, result.debited_micros))
        if step.debit_micros > 0:
            assert 0 <= result.debited_micros <= step.debit_micros
        else:
            assert result.debited_micros == step.debit_micros
        if step.kind is StepKind.CLOSE:
            self.open.discard(step.session_id)
            prefix = step.session_id.split("-")[0]
            self.numbers[prefix] = self.numbers.get(prefix, 0) + 1

    async def check(self) -> None:
        state = await self.store.get_account("acct")
        assert state is not None
        if self.kind is AccountKind.PREPAID:
            assert state.balance_micros >= 0
        assert state.balance_micros == self.credited - self.debited
        held = 0
        for session_id in self.open:
            session = await self.store.get_session("acct", session_id)
            assert session is not None
            assert all(amount > 0 for amount in session.holds.values())
            held += sum(session.holds.values())
        assert state.held_micros == held >= 0
        assert state.sessions == len(self.open)

    async def check_records(self) -> None:
        records = []
        while batch := await self.store.read_records("check", 100, 0):
            records.extend(batch)
            await self.store.ack_records(batch)
        assert [(r.kind, r.amount_micros) for r in records] == self.moves
        state = await self.store.get_account("acct")
        assert state is not None
        ledger = sum(r.amount_micros for r in records if r.kind is RecordKind.LEDGER)
        charged = sum(r.amount_micros for r in records if r.kind is RecordKind.CDR)
        assert ledger - charged == state.balance_micros
        if records:
            assert records[-1].balance_micros == state.balance_micros


def _conserves(
    backend: Backend, opening_micros: int, ops: list[tuple[Any, ...]], kind: AccountKind
) -> list[object]:
    async def scenario() -> list[object]:
        store = backend.open()
        try:
            run = Scenario(store, kind)
            await run.run(opening_micros, ops)
            state = await store.get_account("acct")
            return [*run.results, state]
        finally:
            await store.close()

    return asyncio.run(scenario())


kinds = st.sampled_from(list(AccountKind))
_settings = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200
)


@_settings
@given(opening_micros=st.integers(0, 10_000), ops=operations, kind=kinds)
def test_embedded_conserves_money(
    tmp_path: Path, opening_micros: int, ops: list[tuple[Any, ...]], kind: AccountKind
) -> None:
    backend = Backend("embedded", path=tmp_path / f"{uuid.uuid4().hex}.sqlite3")
    _conserves(backend, opening_micros, ops, kind)


@pytest.mark.integration
@_settings
@given(opening_micros=st.integers(0, 10_000), ops=operations, kind=kinds)
def test_redis_conserves_money(
    redis_url: str, opening_micros: int, ops: list[tuple[Any, ...]], kind: AccountKind
) -> None:
    backend = Backend("redis", redis_url=redis_url, prefix=f"test-{uuid.uuid4().hex[:12]}")
    try:
        _conserves(backend, opening_micros, ops, kind)
    finally:
        delete_redis_keys(redis_url, backend.prefix)


@pytest.mark.integration
@_settings
@given(opening_micros=st.integers(0, 10_000), ops=operations, kind=kinds)
def test_both_backends_answer_alike(
    tmp_path: Path,
    redis_url: str,
    opening_micros: int,
    ops: list[tuple[Any, ...]],
    kind: AccountKind,
) -> None:
    """The Lua scripts and engine.py give the same answers, field by field."""
    embedded = Backend("embedded", path=tmp_path / f"{uuid.uuid4().hex}.sqlite3")
    on_redis = Backend("redis", redis_url=redis_url, prefix=f"test-{uuid.uuid4().hex[:12]}")
    try:
        expected = _conserves(embedded, opening_micros, ops, kind)
        assert _conserves(on_redis, opening_micros, ops, kind) == expected
    finally:
        delete_redis_keys(redis_url, on_redis.prefix)
