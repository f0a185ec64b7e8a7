"""Sample CDRs, ledger entries and queued records for the writer's tests."""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cdr_writer.ledger import LedgerEntry, new_ledger_entry
from cdr_writer.record import Cdr, CdrKind, LevelAmount, new_cdr_id

T0_MS = int(datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC).timestamp() * 1000)
"""A start time in March 2026 (UTC)."""

_sequence = itertools.count(1)


class Kind(enum.Enum):
    """Like ``balances.model.RecordKind``."""

    CDR = "cdr"
    LEDGER = "ledger"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Record:
    """Like ``balances.model.QueuedRecord``."""

    record_id: str
    kind: Kind
    payload: bytes
    account_id: str
    amount_micros: int
    balance_micros: int
    at_ms: int


def make_cdr(number: int = 0, **changes: Any) -> Cdr:
    """A complete, valid CDR; ``number`` varies the session, numbers and start time."""
    start = T0_MS + number * 1000
    cdr = Cdr(
        cdr_id=new_cdr_id(start + 60_000),
        kind=CdrKind.CALL,
        session_id=f"sbc1;{number};call",
        request_number=2,
        account_id="alice",
        tenant_path=("op", "r1"),
        protocol="diameter",
        peer="sbc1.example.net",
        node="ocs1",
        start_ms=start,
        end_ms=start + 65_000,
        timezone="Europe/Paris",
        duration_s=65,
        billed_s=120,
        charge_micros=24_000 + number,
        currency="EUR",
        calling_raw="sip:+33612345678@example.net",
        called_raw="tel:+44 20 7123 4567",
        calling="33612345678",
        called=f"4420712{number % 100000:05d}",
        diversion="",
        caller_ip="192.0.2.10",
        answer_ms=start + 3000,
        carrier="carrierA",
        trunk="trunk1",
        prefix="4420",
        destination="UK London",
        deck_id="wholesale",
        deck_version=3,
        rate_micros=10_000,
        connect_fee_micros=1_000,
        fx_rate="0.92",
        levels=(
            LevelAmount("op", "r1", "wholesale", "USD", 21_000, "1"),
            LevelAmount("r1", "alice", "plus20", "EUR", 24_000 + number, "0.92"),
        ),
        hangup_cause="16",
        hangup_side="caller",
        sip_status=200,
        q850_cause=16,
        charge_unrounded="23999.5",
        flags=("overrun",) if number % 7 == 3 else (),
        trace=("prefix 4420 (UK London)", "60/60 billing", "plus20: +20%"),
        extra={"icid": f"icid-{number}"},
    )
    return replace(cdr, **changes) if changes else cdr


def cdr_record(cdr: Cdr, amount_micros: int | None = None, **changes: Any) -> Record:
    """The queued record of a CDR, as the store appends it."""
    values: dict[str, Any] = {
        "record_id": f"{T0_MS}-{next(_sequence)}",
        "kind": Kind.CDR,
        "payload": cdr.encode(),
        "account_id": cdr.account_id,
        "amount_micros": cdr.charge_micros if amount_micros is None else amount_micros,
        "balance_micros": 1_000_000,
        "at_ms": cdr.end_ms + 5,
    }
    values.update(changes)
    return Record(**values)


def make_entry(key: str = "pay-1", amount_micros: int = 5_000_000, **changes: Any) -> LedgerEntry:
    """A top-up ledger entry."""
    entry = new_ledger_entry(
        account_id="alice",
        kind="topup",
        amount_micros=amount_micros,
        currency="EUR",
        idempotency_key=key,
        at_ms=T0_MS,
        reason="card payment",
        source_id="psp-123",
        actor="ops",
    )
    return replace(entry, **changes) if changes else entry


def ledger_record(entry: LedgerEntry, **changes: Any) -> Record:
    """The queued record of a ledger entry."""
    values: dict[str, Any] = {
        "record_id": f"{T0_MS}-{next(_sequence)}",
        "kind": Kind.LEDGER,
        "payload": entry.encode(),
        "account_id": entry.account_id,
        "amount_micros": entry.amount_micros,
        "balance_micros": 7_000_000,
        "at_ms": entry.at_ms + 1,
    }
    values.update(changes)
    return Record(**values)


def raw_record(payload: bytes, kind: Kind = Kind.CDR, amount_micros: int = 500) -> Record:
    """A queued record with arbitrary bytes."""
    return Record(f"{T0_MS}-{next(_sequence)}", kind, payload, "alice", amount_micros, 0, T0_MS)
