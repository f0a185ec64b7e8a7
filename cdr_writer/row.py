"""Queued records into table rows: decoding, validation, and the problems found on the way.

Rules:

- Nothing is dropped. A record that decodes becomes a row even when some of its fields are
  wrong: a text too long for its column is cut, a NUL character removed, a value of the wrong
  type replaced; every such change is described in the row's ``problems`` column and the
  record's original bytes are kept in ``cdr_rejects``. A record that does not decode at all
  goes to ``cdr_rejects`` only, with the money the store says it moved.
- Validation never fails a batch: a row built here is always storable (lengths within the
  index limits, no NUL, integers within their SQL type, JSON that PostgreSQL accepts).
- Everything a replay needs to land on the same row is a function of the queued record alone
  (in particular the partition key, the start time), so a replayed record always meets its
  first copy on the unique key.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import math
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgpack
import msgspec

from cdr_writer.ledger import LEDGER_KINDS, LedgerEntry
from cdr_writer.record import SCHEMA_VERSION as CDR_SCHEMA_VERSION
from cdr_writer.record import Cdr, CdrKind, LevelAmount

ColumnKind = Literal["text", "int", "bigint", "ts", "json", "bytes"]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
MAX_EPOCH_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the last instant a ``datetime`` holds."""
MAX_PROBLEMS_CHARS = 4000


class QueuedRecordLike(Protocol):
    """What the writer needs of a queued record (``balances.model.QueuedRecord``)."""

    @property
    def record_id(self) -> str: ...
    @property
    def kind(self) -> enum.Enum: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def account_id(self) -> str: ...
    @property
    def amount_micros(self) -> int: ...
    @property
    def balance_micros(self) -> int: ...
    @property
    def at_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table the writer fills."""

    name: str
    kind: ColumnKind
    max_chars: int = 0
    """Text columns: the longest value stored (``VARCHAR(n)`` in the schema)."""
    nullable: bool = False


CDR_COLUMNS: tuple[Column, ...] = (
    # Text fields copied from the CDR, checked together (the first group of a row).
    Column("cdr_id", "text", 64),
    Column("session_id", "text", 512),
    Column("account_id", "text", 128),
    Column("protocol", "text", 16),
    Column("peer", "text", 255),
    Column("node", "text", 128),
    Column("timezone", "text", 64),
    Column("currency", "text", 8),
    Column("charge_unrounded", "text", 64),
    Column("calling_raw", "text", 512),
    Column("called_raw", "text", 512),
    Column("calling", "text", 64),
    Column("called", "text", 64),
    Column("diversion", "text", 512),
    Column("caller_ip", "text", 64),
    Column("carrier", "text", 128),
    Column("trunk", "text", 128),
    Column("routing_number", "text", 64),
    Column("prefix", "text", 64),
    Column("destination", "text", 255),
    Column("deck_id", "text", 128),
    Column("bundle_id", "text", 128),
    Column("fx_rate", "text", 64),
    Column("carrier_currency", "text", 8),
    Column("hangup_cause", "text", 64),
    Column("hangup_side", "text", 16),
    # 32-bit integers copied from the CDR.
    Column("duration_s", "int"),
    Column("billed_s", "int"),
    Column("bundle_s", "int"),
    Column("sip_status", "int"),
    Column("q850_cause", "int"),
    # 64-bit integers copied from the CDR.
    Column("request_number", "bigint"),
    Column("charge_micros", "bigint"),
    Column("deck_version", "bigint"),
    Column("rate_micros", "bigint"),
    Column("connect_fee_micros", "bigint"),
    # Derived, converted or added by the writer.
    Column("kind", "text", 16),
    Column("start_at", "ts"),
    Column("end_at", "ts"),
    Column("answer_at", "ts", nullable=True),
    Column("tenant_path", "text", 512),
    Column("debited_micros", "bigint"),
    Column("balance_after_micros", "bigint"),
    Column("carrier_cost_micros", "bigint", nullable=True),
    Column("levels", "json"),
    Column("extra", "json"),
    Column("flags", "text", 1024),
    Column("trace", "text", 65_536),
    Column("problems", "text", MAX_PROBLEMS_CHARS),
    Column("record_id", "text", 128),
    Column("queued_at", "ts"),
    Column("written_at", "ts"),
)
"""The columns of ``cdrs`` in the order of a row (and of COPY; the table's order differs)."""

CDR_COLUMN_NAMES = tuple(c.name for c in CDR_COLUMNS)
CDR_INDEX = {name: i for i, name in enumerate(CDR_COLUMN_NAMES)}
CDR_LIMITS = {c.name: c.max_chars for c in CDR_COLUMNS if c.max_chars}

LEDGER_COLUMN_NAMES = (
    "entry_id",
    "account_id",
    "at",
    "kind",
    "amount_micros",
    "currency",
    "balance_after_micros",
    "reason",
    "source_id",
    "idempotency_key",
    "actor",
)

REJECT_COLUMNS: tuple[Column, ...] = (
    Column("reject_id", "text", 128),
    Column("record_id", "text", 128),
    Column("record_kind", "text", 16),
    Column("item_id", "text", 128),
    Column("account_id", "text", 128),
    Column("amount_micros", "bigint"),
    Column("balance_after_micros", "bigint"),
    Column("queued_at", "ts"),
    Column("problems", "text", MAX_PROBLEMS_CHARS),
    Column("stored_in", "text", 16),
    Column("payload", "bytes"),
    Column("written_at", "ts"),
)
"""``cdr_rejects``: the original bytes of every record that had a problem."""

REJECT_COLUMN_NAMES = tuple(c.name for c in REJECT_COLUMNS)

CdrRow = tuple[Any, ...]
LedgerRow = tuple[Any, ...]
RejectRow = tuple[Any, ...]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def epoch_ms_to_datetime(value: int) -> datetime:
    """An epoch-milliseconds instant as an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=value)


@functools.lru_cache(maxsize=1024)
def known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this host knows."""
    if not name or name != name.strip():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


class _Checker:
    """Makes values storable and says what it had to change (the slow path)."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[str] = []

    def text(self, name: str, value: object, limit: int) -> str:
        if type(value) is str:
            text = value
        else:
            self.problems.append(f"{name}: expected text, got {type(value).__name__}")
            text = "" if value is None else str(value)
        if "\x00" in text:
            self.problems.append(f"{name}: NUL characters removed")
            text = text.replace("\x00", "")
        if len(text) > limit:
            self.problems.append(f"{name}: {len(text)} characters, limit {limit} (cut)")
            text = text[:limit]
        return text

    def integer(self, name: str, value: object) -> int:
        if type(value) is int:
            self.problems.append(f"{name}: {value} out of range (stored as 0)")
        else:
            kind = type(value).__name__
            self.problems.append(f"{name}: expected a whole number, got {kind} (stored as 0)")
        return 0

    def instant(self, name: str, value: object, fallback_ms: int) -> datetime:
        if type(value) is int and 0 <= value <= MAX_EPOCH_MS:
            return epoch_ms_to_datetime(value)
        self.problems.append(f"{name}: {value!r} is not a time (stored as the queue time)")
        return epoch_ms_to_datetime(fallback_ms)

    def json(self, name: str, value: object) -> str:
        try:
            text = _JSON(value)
        except (TypeError, ValueError):
            pass
        else:
            # PostgreSQL's jsonb refuses \u0000 (a false alarm only costs the slow path).
            if "\\u0000" not in text:
                return text
        cleaned = self._clean(name, value, 0)
        try:
            return _JSON(cleaned)
        except (TypeError, ValueError) as exc:
            self.problems.append(f"{name}: not storable as JSON ({exc})")
            return json.dumps(repr(value)[:65_536], ensure_ascii=False)

    def _clean(self, name: str, value: object, depth: int) -> Any:
        if depth > 16:
            self.problems.append(f"{name}: nested too deep (cut)")
            return None
        if isinstance(value, str):
            if "\x00" in value:
                self.problems.append(f"{name}: NUL characters removed")
                return value.replace("\x00", "")
            return value
        if isinstance(value, bool | int) or value is None:
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                self.problems.append(f"{name}: {value} is not a number (stored as null)")
                return None
            return value
        if isinstance(value, bytes):
            self.problems.append(f"{name}: binary value stored as hex")
            return value.hex()
        if isinstance(value, dict):
            return {
                str(self._clean(name, k, depth + 1)): self._clean(name, v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._clean(name, v, depth + 1) for v in value]
        self.problems.append(f"{name}: {type(value).__name__} stored as text")
        return repr(value)


# -- a CDR, read straight from its msgpack map (building a ``Cdr`` costs more than the row) --

_CDR_FIELDS = {f.name: f for f in dataclasses.fields(Cdr)}
_REQUIRED = frozenset(
    name
    for name, f in _CDR_FIELDS.items()
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)
_KINDS = frozenset(kind.value for kind in CdrKind)
_LEVEL_KEYS = tuple(f.name for f in dataclasses.fields(LevelAmount))
_LEVEL_FX_DEFAULT = LevelAmount("", "", "", "", 0).fx_rate


def decode_cdr_body(payload: bytes) -> dict[str, Any]:
    """The fields of an encoded ``Cdr`` as ``Cdr.encode`` wrote them, without building one.

    Raises ValueError when the payload is not a CDR or lacks a required field; the types of
    the values are ``cdr_row``'s business.
    """
    try:
        version, body = msgpack.unpackb(payload, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"not a CDR: {exc}") from None
    if version != CDR_SCHEMA_VERSION or not isinstance(body, dict):
        raise ValueError(f"unknown CDR schema {version!r}")
    missing = _REQUIRED - body.keys()
    if missing:
        raise ValueError(f"CDR without {', '.join(sorted(missing))}")
    kind = body["kind"]
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"unknown CDR kind {kind!r}")
    return body


def _tenant_path(check: _Checker, tenants: object) -> str:
    limit = CDR_LIMITS["tenant_path"]
    if isinstance(tenants, list | tuple) and all(
        type(t) is str and t and "/" not in t and "\x00" not in t for t in tenants
    ):
        path = "/" + "".join(t + "/" for t in tenants)
        return path if len(path) <= limit else check.text("tenant_path", path, limit)
    if not isinstance(tenants, list | tuple):
        check.problems.append("tenant_path: expected a list of tenants")
        tenants = ()
    parts: list[str] = []
    for tenant in tenants:
        text = tenant if type(tenant) is str else str(tenant)
        if "/" in text or not text:
            check.problems.append(f"tenant_path: tenant {text!r} cannot be a path segment")
            text = text.replace("/", "%2F") or "%00"
        parts.append(text)
    return check.text("tenant_path", "/" + "".join(p + "/" for p in parts), limit)


def _levels(check: _Checker, levels: object) -> str:
    if not isinstance(levels, list | tuple):
        check.problems.append("levels: expected a list")
        return check.json("levels", [levels])
    out: list[Any] = []
    for level in levels:
        if isinstance(level, list | tuple) and len(level) == len(_LEVEL_KEYS):
            out.append(dict(zip(_LEVEL_KEYS, level, strict=True)))
        elif isinstance(level, list | tuple) and len(level) == len(_LEVEL_KEYS) - 1:
            out.append(dict(zip(_LEVEL_KEYS, (*level, _LEVEL_FX_DEFAULT), strict=True)))
        else:
            check.problems.append("levels: a level is not (seller, buyer, plan, currency, amount)")
            out.append(level)
    return check.json("levels", out)


def _joined(check: _Checker, name: str, items: object, sep: str) -> str:
    limit = CDR_LIMITS[name]
    if isinstance(items, list | tuple):
        try:
            text = sep.join(items)
        except TypeError:
            text = sep.join(str(i) for i in items)
            check.problems.append(f"{name}: items that are not text")
    else:
        text = items if isinstance(items, str) else str(items)
        check.problems.append(f"{name}: expected a list")
    if len(text) > limit or "\x00" in text:
        return check.text(name, text, limit)
    return text


def _instant(check: _Checker, name: str, value: object, fallback_ms: int) -> datetime:
    if type(value) is int and 0 <= value <= MAX_EPOCH_MS:
        return _EPOCH + timedelta(milliseconds=value)
    return check.instant(name, value, fallback_ms)


_TEXT_NAMES = tuple(c.name for c in CDR_COLUMNS[:26])
_INT32_NAMES = tuple(c.name for c in CDR_COLUMNS[26:31])
_INT64_NAMES = tuple(c.name for c in CDR_COLUMNS[31:36])
_TEXT_LIMITS = tuple(c.max_chars for c in CDR_COLUMNS[:26])
_GET_TEXTS = operator.itemgetter(*_TEXT_NAMES)
_GET_INT32 = operator.itemgetter(*_INT32_NAMES)
_GET_INT64 = operator.itemgetter(*_INT64_NAMES)
_STR_ONLY = {str}
_INT_ONLY = {int}
_TEXT_DEFAULTS = dict.fromkeys(_TEXT_NAMES, "")
_INT_DEFAULTS = dict.fromkeys((*_INT32_NAMES, *_INT64_NAMES), 0)
_T_CDR_ID = _TEXT_NAMES.index("cdr_id")
_T_ACCOUNT = _TEXT_NAMES.index("account_id")
_T_ZONE = _TEXT_NAMES.index("timezone")
_T_CURRENCY = _TEXT_NAMES.index("currency")


def _texts(check: _Checker, body: dict[str, Any]) -> tuple[str, ...]:
    try:
        texts: tuple[Any, ...] = _GET_TEXTS(body)
    except KeyError:
        texts = _GET_TEXTS({**_TEXT_DEFAULTS, **body})
    if (
        set(map(type, texts)) == _STR_ONLY
        and all(map(operator.le, map(len, texts), _TEXT_LIMITS))
        and "\x00" not in "".join(texts)
    ):
        return texts
    return tuple(
        check.text(name, value, limit)
        for name, value, limit in zip(_TEXT_NAMES, texts, _TEXT_LIMITS, strict=True)
    )


def _integers(
    check: _Checker,
    body: dict[str, Any],
    getter: Any,
    names: tuple[str, ...],
    bounds: tuple[int, int],
) -> tuple[int, ...]:
    try:
        values: tuple[Any, ...] = getter(body)
    except KeyError:
        values = getter({**_INT_DEFAULTS, **body})
    if (
        set(map(type, values)) == _INT_ONLY
        and min(values) >= bounds[0]
        and max(values) <= bounds[1]
    ):
        return values
    out: list[int] = []
    for name, value in zip(names, values, strict=True):
        if type(value) is int and bounds[0] <= value <= bounds[1]:
            out.append(value)
        else:
            out.append(check.integer(name, value))
    return tuple(out)


def cdr_row(
    body: dict[str, Any], record: QueuedRecordLike, written_at: datetime
) -> tuple[CdrRow, list[str]]:
    """The ``cdrs`` row of a decoded CDR body, and the problems found in it.

    The common case (every field of the right type and size) is checked in bulk; only a
    record with a problem takes the field-by-field path that says what was wrong.
    """
    c = _Checker()
    texts = _texts(c, body)
    int32s = _integers(c, body, _GET_INT32, _INT32_NAMES, INT32)
    int64s = _integers(c, body, _GET_INT64, _INT64_NAMES, INT64)

    if not texts[_T_CDR_ID]:
        # Any stable id keeps the row and its replays on one key.
        cdr_id = "raw-" + reject_id(record, "")[4:44]
        c.problems.append(f"cdr_id: empty (stored as {cdr_id})")
        texts = (cdr_id, *texts[1:])
    account_id = texts[_T_ACCOUNT]
    if account_id != record.account_id:
        c.problems.append(
            f"account_id: the record says {account_id!r}, the store debited {record.account_id!r}"
        )
    timezone = texts[_T_ZONE]
    if not known_zone(timezone):
        c.problems.append(f"timezone: unknown time zone {timezone!r}")
    currency = texts[_T_CURRENCY]
    if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
        c.problems.append(f"currency: {currency!r} is not an ISO 4217 code")

    at_ms = record.at_ms
    get = body.get
    start_ms = body["start_ms"]
    end_ms = body["end_ms"]
    answer_ms = get("answer_ms")
    if type(start_ms) is int and type(end_ms) is int and 0 <= start_ms <= end_ms <= MAX_EPOCH_MS:
        start = _EPOCH + timedelta(milliseconds=start_ms)
        end = start + timedelta(milliseconds=end_ms - start_ms)
    else:
        start = _instant(c, "start_ms", start_ms, at_ms)
        end = _instant(c, "end_ms", end_ms, at_ms)
        if end < start:
            c.problems.append("end_ms: the call ends before it starts")
    answer = None if answer_ms is None else _instant(c, "answer_ms", answer_ms, at_ms)

    cost = get("carrier_cost_micros")
    if cost is not None and (type(cost) is not int or not INT64[0] <= cost <= INT64[1]):
        cost = c.integer("carrier_cost_micros", cost)
    levels = get("levels")
    extra = get("extra")
    if extra is None or extra == {}:
        extra_json = "{}"
    else:
        if not isinstance(extra, dict):
            c.problems.append("extra: expected a mapping")
            extra = {"value": extra}
        extra_json = c.json("extra", extra)
    tail = (
        body["kind"],
        start,
        end,
        answer,
        _tenant_path(c, body["tenant_path"]),
        record.amount_micros,
        record.balance_micros,
        cost,
        "[]" if levels is None or levels == [] else _levels(c, levels),
        extra_json,
        _joined(c, "flags", get("flags", ()), ","),
        _joined(c, "trace", get("trace", ()), "\n"),
        "; ".join(c.problems)[:MAX_PROBLEMS_CHARS] if c.problems else "",
        record.record_id[:128],
        _EPOCH + timedelta(milliseconds=at_ms),
        written_at,
    )
    return texts + int32s + int64s + tail, c.problems


# -- the fast path: msgspec decodes and checks a well-formed CDR in C ------------------------


def _text(limit: int) -> Any:
    return Annotated[str, msgspec.Meta(max_length=limit)]


_Int32 = Annotated[int, msgspec.Meta(ge=INT32[0], le=INT32[1])]
_Int64 = Annotated[int, msgspec.Meta(ge=INT64[0], le=INT64[1])]
_EpochMs = Annotated[int, msgspec.Meta(ge=0, le=MAX_EPOCH_MS)]


class _Level(msgspec.Struct, array_like=True):
    seller: str
    buyer: str
    plan_id: str
    currency: str
    amount_micros: _Int64
    fx_rate: str = "1"


def _fast_struct() -> type[msgspec.Struct]:
    """A msgspec Struct with the fields of ``Cdr`` in row order, sizes as constraints."""
    specs: list[tuple[str, Any, Any]] = []
    for column in CDR_COLUMNS[:36]:
        if column.kind == "text":
            tp = _text(column.max_chars)
        else:
            tp = _Int32 if column.kind == "int" else _Int64
        field = _CDR_FIELDS[column.name]
        default = msgspec.NODEFAULT if column.name in _REQUIRED else field.default
        specs.append((column.name, tp, default))
    specs += [
        ("kind", Literal["call", "reaped", "event", "refund"], msgspec.NODEFAULT),
        ("start_ms", _EpochMs, msgspec.NODEFAULT),
        ("end_ms", _EpochMs, msgspec.NODEFAULT),
        ("answer_ms", _EpochMs | None, None),
        ("tenant_path", list[str], msgspec.NODEFAULT),
        ("carrier_cost_micros", _Int64 | None, None),
        ("levels", list[_Level], []),
        ("extra", dict[str, str], {}),
        ("flags", list[str], []),
        ("trace", list[str], []),
    ]
    return msgspec.defstruct("CdrBody", specs, kw_only=True)


_CdrBody = _fast_struct()
# Types built at run time: mypy cannot follow them, msgspec checks them.
_FAST_TYPE: Any = tuple[Literal[CDR_SCHEMA_VERSION], _CdrBody]  # type: ignore[valid-type]
_FAST_DECODER: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(_FAST_TYPE)
_ASTUPLE = msgspec.structs.astuple
_ASDICT = msgspec.structs.asdict
_JSON_FAST = msgspec.json.Encoder().encode
_FLAGS_LIMIT = CDR_LIMITS["flags"]
_TRACE_LIMIT = CDR_LIMITS["trace"]
_TENANT_LIMIT = CDR_LIMITS["tenant_path"]


def fast_cdr_row(payload: bytes, record: QueuedRecordLike, written_at: datetime) -> CdrRow | None:
    """The ``cdrs`` row of a CDR without any problem, or None (then use ``cdr_row``)."""
    try:
        _, body = _FAST_DECODER.decode(payload)
    except msgspec.DecodeError:
        return None
    values = _ASTUPLE(body)
    texts = values[:26]
    if "\x00" in "".join(texts) or not texts[_T_CDR_ID] or texts[_T_ACCOUNT] != record.account_id:
        return None
    currency = texts[_T_CURRENCY]
    if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
        return None
    if not known_zone(texts[_T_ZONE]):
        return None
    kind, start_ms, end_ms, answer_ms, tenants, cost, levels, extra, flags, trace = values[36:]
    if end_ms < start_ms:
        return None
    # Every tenant a non-empty path segment, checked on the joined text (no loop in Python):
    # as many slashes as separators, no NUL.
    joined = "/".join(tenants)
    if tenants and ("" in tenants or joined.count("/") != len(tenants) - 1 or "\x00" in joined):
        return None
    tenant_path = f"/{joined}/" if tenants else "/"
    flags_text = ",".join(flags)
    trace_text = "\n".join(trace)
    if (
        len(tenant_path) > _TENANT_LIMIT
        or len(flags_text) > _FLAGS_LIMIT
        or len(trace_text) > _TRACE_LIMIT
        or "\x00" in flags_text
        or "\x00" in trace_text
    ):
        return None
    levels_json = _JSON_FAST([_ASDICT(lv) for lv in levels]).decode() if levels else "[]"
    extra_json = _JSON_FAST(extra).decode() if extra else "{}"
    if "\\u0000" in levels_json or "\\u0000" in extra_json:
        return None
    start = _EPOCH + timedelta(milliseconds=start_ms)
    return (
        *values[:36],
        kind,
        start,
        start + timedelta(milliseconds=end_ms - start_ms),
        None if answer_ms is None else _EPOCH + timedelta(milliseconds=answer_ms),
        tenant_path,
        record.amount_micros,
        record.balance_micros,
        cost,
        levels_json,
        extra_json,
        flags_text,
        trace_text,
        "",
        record.record_id[:128],
        _EPOCH + timedelta(milliseconds=record.at_ms),
        written_at,
    )


def ledger_row(entry: LedgerEntry, record: QueuedRecordLike) -> tuple[LedgerRow, list[str]]:
    """The ``ledger`` row of a decoded entry (the amount and balance the store reports)."""
    c = _Checker()
    account_id = c.text("account_id", entry.account_id, 128)
    if account_id != record.account_id:
        c.problems.append(
            f"account_id: the entry says {account_id!r}, the store credited {record.account_id!r}"
        )
        account_id = record.account_id
    kind = c.text("kind", entry.kind, 16)
    if kind not in LEDGER_KINDS:
        c.problems.append(f"kind: unknown ledger kind {kind!r}")
    asked = entry.amount_micros
    if type(asked) is not int or not INT64[0] <= asked <= INT64[1]:
        asked = c.integer("amount_micros", asked)
    if asked != record.amount_micros:
        c.problems.append(
            f"amount_micros: the entry asked {asked}, the store moved {record.amount_micros}"
        )
    entry_id = c.text("entry_id", entry.entry_id, 128)
    if not entry_id:
        entry_id = "raw-" + reject_id(record, "")[4:44]
        c.problems.append(f"entry_id: empty (stored as {entry_id})")
    row = (
        entry_id,
        account_id,
        c.instant("at_ms", entry.at_ms, record.at_ms),
        kind,
        record.amount_micros,
        c.text("currency", entry.currency, 8),
        record.balance_micros,
        c.text("reason", entry.reason, 1024),
        c.text("source_id", entry.source_id, 255),
        c.text("idempotency_key", entry.idempotency_key, 255),
        c.text("actor", entry.actor, 128),
    )
    return row, c.problems


def reject_id(record: QueuedRecordLike, item_id: str) -> str:
    """The key of a record in ``cdr_rejects``: the same for every replay of the record."""
    if item_id:
        return f"{record.kind.value}:{item_id}"[:128]
    digest = hashlib.sha256()
    for part in (record.record_id, record.account_id, str(record.amount_micros), str(record.at_ms)):
        digest.update(part.encode("utf-8", "replace") + b"\x00")
    digest.update(record.payload)
    return f"raw:{digest.hexdigest()}"


def reject_row(
    record: QueuedRecordLike,
    item_id: str,
    problems: Sequence[str],
    stored_in: str,
    written_at: datetime,
) -> RejectRow:
    """The ``cdr_rejects`` row keeping a record's bytes and what was wrong with it."""
    return (
        reject_id(record, item_id),
        record.record_id[:128],
        record.kind.value,
        item_id[:128],
        record.account_id[:128],
        record.amount_micros,
        record.balance_micros,
        epoch_ms_to_datetime(record.at_ms),
        "; ".join(problems)[:MAX_PROBLEMS_CHARS],
        stored_in,
        bytes(record.payload),
        written_at,
    )


_DECODE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)


class Batch:
    """The rows of one transaction, built from queued records as a sink consumes them.

    ``cdr_rows()`` builds CDR rows one record at a time, so a sink can stream them into COPY
    while the database works on the previous ones; a second pass (a retry) reuses the rows
    built. ``ledger_rows`` and ``reject_rows`` are complete once ``finish()`` has run.
    """

    __slots__ = (
        "_cdr_rows",
        "_next",
        "_records",
        "ledger_rows",
        "problems",
        "reject_rows",
        "written_at",
    )

    def __init__(
        self,
        records: Sequence[QueuedRecordLike] = (),
        written_at: datetime = _EPOCH,
        *,
        reject_rows: Sequence[RejectRow] = (),
    ) -> None:
        self._records = records
        self._next = 0
        self.written_at = written_at
        self._cdr_rows: list[CdrRow] = []
        self.ledger_rows: list[LedgerRow] = []
        self.reject_rows: list[RejectRow] = list(reject_rows)
        self.problems = len(self.reject_rows)
        """Records with at least one problem (stored flagged, or only in ``cdr_rejects``)."""

    @property
    def records(self) -> int:
        """How many queued records the batch holds."""
        return len(self._records) or len(self.reject_rows)

    def cdr_rows(self) -> Iterator[CdrRow]:
        """The CDR rows, built as they are asked for."""
        i = 0
        rows = self._cdr_rows
        while True:
            while i < len(rows):
                yield rows[i]
                i += 1
            if self._next >= len(self._records):
                return
            record = self._records[self._next]
            self._next += 1
            self._add(record)

    def build(self, count: int) -> bool:
        """Build the rows of up to ``count`` more records; True once every record is built."""
        records = self._records
        end = min(self._next + count, len(records))
        while self._next < end:
            record = records[self._next]
            self._next += 1
            self._add(record)
        return self._next >= len(records)

    def finish(self) -> Batch:
        """Build every remaining row; return the batch."""
        records = self._records
        while self._next < len(records):
            record = records[self._next]
            self._next += 1
            self._add(record)
        return self

    @property
    def all_cdr_rows(self) -> list[CdrRow]:
        """Every CDR row (builds what is left)."""
        self.finish()
        return self._cdr_rows

    def _add(self, record: QueuedRecordLike) -> None:
        """Turn one queued record into rows (never raises for bad data)."""
        written_at = self.written_at
        kind = record.kind.value
        if kind == "cdr":
            fast = fast_cdr_row(record.payload, record, written_at)
            if fast is not None:
                self._cdr_rows.append(fast)
                return
            try:
                body = decode_cdr_body(record.payload)
                row, problems = cdr_row(body, record, written_at)
            except _DECODE_ERRORS as exc:
                problem = f"undecodable CDR: {type(exc).__name__}: {exc}"
                self.reject_rows.append(reject_row(record, "", [problem], "", written_at))
                self.problems += 1
                return
            self._cdr_rows.append(row)
            if problems:
                self.problems += 1
                self.reject_rows.append(reject_row(record, row[0], problems, "cdrs", written_at))
            return
        if kind == "ledger":
            try:
                entry = LedgerEntry.decode(record.payload)
                lrow, problems = ledger_row(entry, record)
            except _DECODE_ERRORS as exc:
                problem = f"undecodable ledger entry: {type(exc).__name__}: {exc}"
                self.reject_rows.append(reject_row(record, "", [problem], "", written_at))
                self.problems += 1
                return
            self.ledger_rows.append(lrow)
            if problems:
                self.problems += 1
                self.reject_rows.append(reject_row(record, lrow[0], problems, "ledger", written_at))
            return
        problem = f"unknown record kind {kind!r}"
        self.reject_rows.append(reject_row(record, "", [problem], "", written_at))
        self.problems += 1


def build_batch(records: Sequence[QueuedRecordLike], written_at: datetime) -> Batch:
    """Every row of a list of queued records."""
    return Batch(records, written_at).finish()


RollupKey = tuple[str, str, str, str, str]
"""(UTC day as ISO text, account, destination, carrier, currency)."""

_R_START = CDR_INDEX["start_at"]
_R_KEY = tuple(CDR_INDEX[n] for n in ("account_id", "destination", "carrier", "currency"))
_R_TENANT = CDR_INDEX["tenant_path"]
_R_DURATION = CDR_INDEX["duration_s"]
_R_BILLED = CDR_INDEX["billed_s"]
_R_CHARGE = CDR_INDEX["charge_micros"]
_R_DEBITED = CDR_INDEX["debited_micros"]


def daily_rollup(rows: Iterable[CdrRow]) -> dict[RollupKey, list[Any]]:
    """Sum CDR rows per UTC day, account, destination, carrier and currency.

    Values: [tenant_path, calls, answered, duration_s, billed_s, charge_micros,
    debited_micros]. Give it only rows really inserted, or a replay counts twice. A rollup
    row keeps the tenant path of its day's first CDR: updates change only the counters, so
    PostgreSQL updates it in place (HOT) without touching its indexes.
    """
    totals: dict[RollupKey, list[Any]] = {}
    a, b, c, d = _R_KEY
    for row in rows:
        key = (row[_R_START].date().isoformat(), row[a], row[b], row[c], row[d])
        sums = totals.get(key)
        if sums is None:
            sums = totals[key] = [row[_R_TENANT], 0, 0, 0, 0, 0, 0]
        duration = row[_R_DURATION]
        sums[1] += 1
        if duration > 0:
            sums[2] += 1
        sums[3] += duration
        sums[4] += row[_R_BILLED]
        sums[5] += row[_R_CHARGE]
        sums[6] += row[_R_DEBITED]
    return totals
