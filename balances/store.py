"""The balance store interface; every backend passes ``tests/balances/test_contract.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from balances.model import (
    AccountLimits,
    AccountState,
    LedgerKind,
    LedgerResult,
    OpenSession,
    QueuedRecord,
    Step,
    StepResult,
)


class BackendUnavailable(Exception):
    """The store cannot be reached or did not answer in time; nothing is known to have moved."""


class BalanceStore(Protocol):
    """Money state: accounts, holds, atomic steps and the durable record queue."""

    async def put_account(self, limits: AccountLimits) -> None:
        """Create an account with a zero balance, or update the limits of an existing one."""

    async def get_account(self, account_id: str) -> AccountState | None:
        """Return an account's state, or None if the store does not know it."""

    async def step(self, step: Step) -> StepResult:
        """Run one atomic step (hold, close or event)."""

    async def ledger(
        self,
        account_id: str,
        kind: LedgerKind,
        amount_micros: int,
        idempotency_key: str,
        record: bytes,
        now_ms: int,
    ) -> LedgerResult:
        """Credit (or, negative, debit) an account outside calls and queue its ledger record.

        An idempotency key seen before applies nothing and returns the original balance.
        A debit that would take a prepaid account below zero is refused.
        """

    async def get_session(self, account_id: str, session_id: str) -> OpenSession | None:
        """Return an open session of an account."""

    async def find_session_account(self, session_id: str) -> str | None:
        """Return the account of an open session known only by its id."""

    async def expired_sessions(self, now_ms: int, limit: int) -> list[OpenSession]:
        """Return up to ``limit`` open sessions whose deadline has passed."""

    async def open_sessions(self, limit: int) -> list[OpenSession]:
        """Return up to ``limit`` open sessions, soonest deadline first (every worker's)."""

    async def count_open_sessions(self) -> int:
        """How many sessions are open (hold money or bundle seconds), every worker's."""

    async def read_records(
        self, consumer: str, count: int, block_ms: int, *, new_only: bool = False
    ) -> list[QueuedRecord]:
        """Return queued records not yet acknowledged (first those this consumer left).

        ``new_only``: only records no consumer was given yet, neither this consumer's pending
        ones nor any claimed from others: what a reader asks for while it still holds records
        it read before and has not acknowledged (a plain read would hand those back).
        """

    async def ack_records(self, records: Sequence[QueuedRecord]) -> None:
        """Remove records from the queue once they are stored for good."""

    async def queue_depth(self) -> int:
        """Return how many records wait in the queue."""

    async def close(self) -> None:
        """Release connections."""
