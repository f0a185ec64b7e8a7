"""A ledger entry: money that entered or left an account outside calls, and its queue form.

Top-ups, payments, adjustments and refunds go through the balance store like CDRs: the store
credits (or debits) the balance and appends the encoded entry to the durable queue in one
atomic step; the CDR writer inserts it into the ``ledger`` table in the same transaction as
the CDRs of its batch. The entry id is derived from the account and the idempotency key, so
the same top-up asked twice is one row whatever happens on the way.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any

import msgpack

LEDGER_SCHEMA_VERSION = 1
LEDGER_TAG = "ledger"
"""First element of the encoded form, so a ledger entry is never mistaken for a CDR."""

LEDGER_KINDS = ("opening", "topup", "payment", "adjustment", "refund")
"""The values of ``balances.model.LedgerKind``."""

_NAMESPACE = uuid.UUID("5b0f0c51-7a4e-4d1f-9a53-0c2c8f6b1e11")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One credit or debit of an account outside calls."""

    entry_id: str
    account_id: str
    kind: str
    """One of ``LEDGER_KINDS``."""
    amount_micros: int
    """Positive: money in (top-up, payment); negative: money out (adjustment down)."""
    currency: str
    at_ms: int
    """When it was asked (UTC epoch milliseconds)."""
    idempotency_key: str
    reason: str = ""
    source_id: str = ""
    """The payment gateway's transaction id, an invoice number, ..."""
    actor: str = ""

    def encode(self) -> bytes:
        """The queue form (msgpack, tagged and versioned)."""
        packed: bytes = msgpack.packb(
            [LEDGER_TAG, LEDGER_SCHEMA_VERSION, asdict(self)], use_bin_type=True
        )
        return packed

    @classmethod
    def decode(cls, data: bytes) -> LedgerEntry:
        """Rebuild an entry from ``encode``; raises ValueError on anything else."""
        try:
            tag, version, body = msgpack.unpackb(data, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ValueError(f"not a ledger entry: {exc}") from None
        if tag != LEDGER_TAG or version != LEDGER_SCHEMA_VERSION or not isinstance(body, dict):
            raise ValueError(f"unknown ledger entry schema {tag!r} {version!r}")
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in body.items() if k in known}
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"incomplete ledger entry: {exc}") from None


def ledger_entry_id(account_id: str, idempotency_key: str) -> str:
    """The entry id of an account's entry with this idempotency key (a stable UUID)."""
    return str(uuid.uuid5(_NAMESPACE, f"{account_id}\x00{idempotency_key}"))


def new_ledger_entry(
    *,
    account_id: str,
    kind: str,
    amount_micros: int,
    currency: str,
    idempotency_key: str,
    at_ms: int,
    reason: str = "",
    source_id: str = "",
    actor: str = "",
) -> LedgerEntry:
    """Build the entry that ``BalanceStore.ledger`` queues (``ocsd account topup`` and the API).

    Raises ValueError for an unknown kind, an empty idempotency key or a zero amount.
    """
    if kind not in LEDGER_KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}; one of {', '.join(LEDGER_KINDS)}")
    if not idempotency_key:
        raise ValueError("a ledger entry needs an idempotency key")
    if amount_micros == 0:
        raise ValueError("a ledger entry moves money: the amount must not be zero")
    return LedgerEntry(
        entry_id=ledger_entry_id(account_id, idempotency_key),
        account_id=account_id,
        kind=kind,
        amount_micros=amount_micros,
        currency=currency,
        at_ms=at_ms,
        idempotency_key=idempotency_key,
        reason=reason,
        source_id=source_id,
        actor=actor,
    )
