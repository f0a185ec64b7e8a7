"""The rated CDR: one record per charged session or event, and its byte form in the queue.

A CDR is built by the charging service when a session ends (or an event is charged), encoded
with msgpack and handed to the balance store, which appends it to the durable queue in the same
atomic step as the money moves. The store adds what it alone knows at that moment (the amount
that really left the balance and the balance after); the writer stores both.
"""

from __future__ import annotations

import enum
import os
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

import msgpack

SCHEMA_VERSION = 1


class CdrKind(enum.Enum):
    """What was charged."""

    CALL = "call"
    """A session that ended normally (CCR-T, RADIUS Stop)."""
    REAPED = "reaped"
    """A session that went silent and was ended by ocsd."""
    EVENT = "event"
    """A one-off debit (CCR-Event direct debiting)."""
    REFUND = "refund"
    """Money given back (CCR-Event refund)."""


# Not frozen: one CDR per call, built on the call path (a frozen 50-field dataclass costs
# several microseconds to build). Treat it as a value all the same.
@dataclass(slots=True)
class LevelAmount:
    """What one level of the reseller chain charges for the call."""

    seller: str
    buyer: str
    plan_id: str
    currency: str
    amount_micros: int
    fx_rate: str = "1"


@dataclass(slots=True)
class Cdr:
    """A rated call detail record."""

    cdr_id: str
    kind: CdrKind
    session_id: str
    request_number: int
    account_id: str
    tenant_path: tuple[str, ...]
    """The tenants from the operator down to the account's own tenant."""
    protocol: str
    """diameter, radius or http."""
    peer: str
    """The Diameter Origin-Host or the RADIUS NAS that reported the call."""
    node: str
    """The ocsd node that closed the session."""
    start_ms: int
    """When the call started (UTC epoch milliseconds)."""
    end_ms: int
    timezone: str
    duration_s: int
    billed_s: int
    charge_micros: int
    """The rated charge to the account, in its currency (after rounding)."""
    currency: str
    calling_raw: str = ""
    called_raw: str = ""
    calling: str = ""
    called: str = ""
    """The normalised (E.164) called number the call was rated on."""
    diversion: str = ""
    caller_ip: str = ""
    answer_ms: int | None = None
    carrier: str = ""
    trunk: str = ""
    routing_number: str = ""
    prefix: str = ""
    destination: str = ""
    deck_id: str = ""
    deck_version: int = 0
    rate_micros: int = 0
    connect_fee_micros: int = 0
    bundle_id: str = ""
    bundle_s: int = 0
    fx_rate: str = "1"
    levels: tuple[LevelAmount, ...] = ()
    carrier_cost_micros: int | None = None
    carrier_currency: str = ""
    hangup_cause: str = ""
    """As reported: a SIP status, a Q.850 cause or a Diameter/RADIUS termination cause."""
    hangup_side: str = ""
    sip_status: int = 0
    """The SIP final response of the call when the switch reported it (0: unknown)."""
    q850_cause: int = 0
    """The ISDN/Q.850 cause value when the switch reported it (0: unknown)."""
    charge_unrounded: str = ""
    """The account's charge before its final rounding, an exact decimal of micro-units such
    as ``"1234.5"`` ("" when rating did not report it)."""
    flags: tuple[str, ...] = ()
    """Things a reviewer should know: below_cost, overrun, reaped, no_answer, ..."""
    trace: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)
    """Protocol fields worth keeping (IMS-Charging-Identifier, h323-conf-id, ...)."""

    def encode(self) -> bytes:
        """The queue form of the CDR (msgpack, schema-versioned)."""
        # Field by field, not dataclasses.asdict: asdict deep-copies every value, which made
        # this a fifth of the cost of ending a call.
        body = {name: getattr(self, name) for name in _FIELD_ORDER}
        body["kind"] = self.kind.value
        body["levels"] = [
            [lv.seller, lv.buyer, lv.plan_id, lv.currency, lv.amount_micros, lv.fx_rate]
            for lv in self.levels
        ]
        packed: bytes = msgpack.packb([SCHEMA_VERSION, body], use_bin_type=True)
        return packed

    @classmethod
    def decode(cls, data: bytes) -> Cdr:
        """Rebuild a CDR from ``encode``; raises ValueError on anything else."""
        try:
            version, body = msgpack.unpackb(data, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ValueError(f"not a CDR: {exc}") from None
        if version != SCHEMA_VERSION or not isinstance(body, dict):
            raise ValueError(f"unknown CDR schema {version!r}")
        known = _FIELD_NAMES
        values: dict[str, Any] = {k: v for k, v in body.items() if k in known}
        values["kind"] = CdrKind(values["kind"])
        values["levels"] = tuple(LevelAmount(*level) for level in values.get("levels", ()))
        for name in ("tenant_path", "flags", "trace"):
            values[name] = tuple(values.get(name, ()))
        return cls(**values)


_FIELD_ORDER = tuple(f.name for f in fields(Cdr))
_FIELD_NAMES = frozenset(_FIELD_ORDER)


def new_cdr_id(now_ms: int) -> str:
    """A new CDR id: a time-ordered UUID (version 7, RFC 9562 §5.7).

    Ids made later sort later, so the unique index of the CDR table grows at its right edge
    instead of taking writes all over (uuid4) once it no longer fits in memory.
    """
    value = (now_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= int.from_bytes(os.urandom(10), "big") & ((1 << 80) - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=value))
