"""Queued records into rows: every record becomes a row or a reject, bad fields flagged."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdr_writer.record import SCHEMA_VERSION, CdrKind
from cdr_writer.row import (
    CDR_COLUMN_NAMES,
    CDR_INDEX,
    CDR_LIMITS,
    REJECT_COLUMN_NAMES,
    Batch,
    build_batch,
    cdr_row,
    daily_rollup,
    decode_cdr_body,
    fast_cdr_row,
    reject_id,
)
from tests.cdr_writer.samples import (
    T0_MS,
    Kind,
    cdr_record,
    ledger_record,
    make_cdr,
    make_entry,
    raw_record,
)

NOW = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
PROBLEMS = CDR_INDEX["problems"]
REJECT_PROBLEMS = REJECT_COLUMN_NAMES.index("problems")
REJECT_STORED = REJECT_COLUMN_NAMES.index("stored_in")


def column(row: tuple[Any, ...], name: str) -> Any:
    return row[CDR_INDEX[name]]


def packed(body: dict[str, Any], version: int = SCHEMA_VERSION) -> bytes:
    data: bytes = msgpack.packb([version, body], use_bin_type=True)
    return data


def body_of(number: int = 0, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = msgpack.unpackb(make_cdr(number).encode(), raw=False)[1]
    body.update(changes)
    return body


def test_a_good_cdr_becomes_one_row_with_every_field() -> None:
    cdr = make_cdr(3)
    batch = build_batch([cdr_record(cdr, amount_micros=20_000)], NOW)
    [row] = batch.all_cdr_rows
    assert batch.reject_rows == [] and batch.problems == 0
    assert len(row) == len(CDR_COLUMN_NAMES)
    assert column(row, "cdr_id") == cdr.cdr_id
    assert column(row, "start_at") == datetime.fromtimestamp(cdr.start_ms / 1000, UTC)
    assert column(row, "end_at") - column(row, "start_at") == timedelta(seconds=65)
    assert column(row, "answer_at") == column(row, "start_at") + timedelta(seconds=3)
    assert column(row, "tenant_path") == "/op/r1/"
    assert column(row, "charge_micros") == cdr.charge_micros
    assert column(row, "debited_micros") == 20_000
    assert column(row, "kind") == "call"
    assert column(row, "flags") == "overrun"
    assert column(row, "trace").splitlines() == list(cdr.trace)
    assert column(row, "levels").startswith('[{"seller":"op","buyer":"r1"')
    assert column(row, "extra") == '{"icid":"icid-3"}'
    assert column(row, "problems") == ""
    assert column(row, "written_at") == NOW


@settings(max_examples=200, deadline=None)
@given(
    number=st.integers(0, 10**6),
    text=st.text(max_size=300),
    amount=st.integers(-(2**63), 2**63 - 1),
    answered=st.booleans(),
    extra=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
def test_the_fast_path_builds_the_checked_row_or_leaves_it_to_the_checks(
    number: int, text: str, amount: int, answered: bool, extra: dict[str, str]
) -> None:
    cdr = make_cdr(
        number,
        destination=text,
        charge_micros=amount,
        answer_ms=None if not answered else T0_MS + number,
        extra=extra,
    )
    record = cdr_record(cdr)
    fast = fast_cdr_row(record.payload, record, NOW)
    checked, problems = cdr_row(decode_cdr_body(record.payload), record, NOW)
    assert fast == (None if problems else checked)


def test_fields_missing_from_an_older_payload_take_their_defaults() -> None:
    body = body_of(1)
    for name in ("sip_status", "carrier", "levels", "extra", "answer_ms", "trace"):
        del body[name]
    record = raw_record(packed(body))
    record = replace(record, account_id="alice")
    [row] = build_batch([record], NOW).all_cdr_rows
    assert column(row, "sip_status") == 0
    assert column(row, "carrier") == ""
    assert (column(row, "levels"), column(row, "extra")) == ("[]", "{}")
    assert column(row, "answer_at") is None


BAD_FIELDS = [
    pytest.param(
        {"called": "4" * 300},
        "called: 300 characters, limit 64 (cut)",
        "called",
        "4" * 64,
        id="too-long",
    ),
    pytest.param(
        {"timezone": "Mars/Olympus_Mons"},
        "timezone: unknown time zone 'Mars/Olympus_Mons'",
        "timezone",
        "Mars/Olympus_Mons",
        id="unknown-zone",
    ),
    pytest.param(
        {"calling": "336\x0012"},
        "calling: NUL characters removed",
        "calling",
        "33612",
        id="nul",
    ),
    pytest.param(
        {"duration_s": "65"},
        "duration_s: expected a whole number, got str",
        "duration_s",
        0,
        id="wrong-type",
    ),
    pytest.param(
        {"billed_s": 2**40}, f"billed_s: {2**40} out of range", "billed_s", 0, id="int32-range"
    ),
    pytest.param(
        {"currency": "euro"},
        "currency: 'euro' is not an ISO 4217 code",
        "currency",
        "euro",
        id="currency",
    ),
    pytest.param(
        {"end_ms": T0_MS - 1},
        "end_ms: the call ends before it starts",
        "end_ms",
        None,
        id="ends-before-start",
    ),
    pytest.param(
        {"start_ms": -5},
        "start_ms: -5 is not a time (stored as the queue time)",
        "start_at",
        datetime.fromtimestamp((T0_MS + 65_005) / 1000, UTC),
        id="bad-start",
    ),
    pytest.param(
        {"tenant_path": ["op", "r/1"]},
        "tenant_path: tenant 'r/1' cannot be a path segment",
        "tenant_path",
        "/op/r%2F1/",
        id="tenant-slash",
    ),
    pytest.param(
        {"extra": {"k": "a\x00b"}},
        "extra: NUL characters removed",
        "extra",
        '{"k":"ab"}',
        id="json-nul",
    ),
    pytest.param(
        {"extra": {"k": float("nan")}},
        "extra: nan is not a number",
        "extra",
        '{"k":null}',
        id="json-nan",
    ),
    pytest.param(
        {"levels": [["op", "r1"]]},
        "levels: a level is not",
        "levels",
        '[["op","r1"]]',
        id="level-shape",
    ),
    pytest.param({"cdr_id": ""}, "cdr_id: empty (stored as raw-", "cdr_id", None, id="empty-id"),
    pytest.param(
        {"trace": ["a", 7]}, "trace: items that are not text", "trace", "a\n7", id="trace-type"
    ),
]


@pytest.mark.parametrize(("changes", "problem", "name", "stored"), BAD_FIELDS)
def test_a_bad_field_is_stored_flagged_with_the_original_kept(
    changes: dict[str, Any], problem: str, name: str, stored: Any
) -> None:
    record = cdr_record(make_cdr(0))
    record = replace(record, payload=packed(body_of(0, **changes)))
    batch = build_batch([record], NOW)
    [row] = batch.all_cdr_rows
    assert problem in column(row, "problems")
    if stored is not None:
        assert column(row, name) == stored
    [reject] = batch.reject_rows
    assert reject[REJECT_PROBLEMS] == column(row, "problems")
    assert reject[REJECT_STORED] == "cdrs"
    assert reject[REJECT_COLUMN_NAMES.index("payload")] == record.payload
    assert batch.problems == 1


def test_the_store_knows_better_whose_money_moved() -> None:
    record = cdr_record(make_cdr(0), account_id="bob")
    [row] = build_batch([record], NOW).all_cdr_rows
    assert "the record says 'alice', the store debited 'bob'" in column(row, "problems")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        pytest.param(b"\xc1\xc1", "undecodable CDR: ValueError: not a CDR", id="garbage"),
        pytest.param(b"", "undecodable CDR", id="empty"),
        pytest.param(packed({"cdr_id": "x"}), "CDR without account_id", id="missing"),
        pytest.param(packed(body_of(0), version=99), "unknown CDR schema 99", id="schema"),
        pytest.param(packed(body_of(0, kind="gift")), "unknown CDR kind 'gift'", id="kind"),
        pytest.param(packed(body_of(0, start_ms=None)), "", id="none-start"),
    ],
)
def test_an_undecodable_record_is_kept_raw_with_its_money(payload: bytes, fragment: str) -> None:
    record = raw_record(payload, amount_micros=4321)
    batch = build_batch([record], NOW)
    if fragment:
        assert batch.all_cdr_rows == []
        [reject] = batch.reject_rows
        assert fragment in reject[REJECT_PROBLEMS]
        assert reject[REJECT_COLUMN_NAMES.index("amount_micros")] == 4321
        assert reject[REJECT_COLUMN_NAMES.index("payload")] == payload
        assert reject[REJECT_STORED] == ""
    else:
        # A start time that is not a time: stored at the queue time, flagged.
        [row] = batch.all_cdr_rows
        assert "start_ms: None is not a time" in column(row, "problems")
    assert batch.problems == 1


def test_a_record_of_an_unknown_kind_is_kept_raw() -> None:
    batch = build_batch([raw_record(b"x", kind=Kind.OTHER)], NOW)
    [reject] = batch.reject_rows
    assert "unknown record kind 'other'" in reject[REJECT_PROBLEMS]


def test_a_reject_has_the_same_key_every_time_it_is_replayed() -> None:
    record = raw_record(b"garbage")
    assert reject_id(record, "") == reject_id(replace(record), "")
    assert reject_id(record, "") != reject_id(replace(record, record_id="other"), "")
    first = build_batch([record], NOW).reject_rows
    again = build_batch([record], NOW + timedelta(hours=1)).reject_rows
    assert first[0][0] == again[0][0]


def test_a_ledger_entry_becomes_a_ledger_row_with_the_money_the_store_moved() -> None:
    entry = make_entry("k1", amount_micros=5_000_000)
    batch = build_batch([ledger_record(entry, amount_micros=4_000_000)], NOW)
    [row] = batch.ledger_rows
    assert row[0] == entry.entry_id
    assert row[4] == 4_000_000
    assert row[6] == 7_000_000
    [reject] = batch.reject_rows
    assert "the entry asked 5000000, the store moved 4000000" in reject[REJECT_PROBLEMS]
    assert reject[REJECT_STORED] == "ledger"


def test_rows_are_built_while_a_sink_reads_them_and_only_once() -> None:
    cdrs = [make_cdr(i) for i in range(5)]
    records = [cdr_record(c) for c in cdrs]
    records.insert(2, raw_record(b"junk"))
    batch = Batch(records, NOW)
    rows = batch.cdr_rows()
    first = [next(rows), next(rows)]
    assert batch.reject_rows == []
    # A second pass (a retry after a failed COPY) starts over without building twice.
    assert [column(r, "cdr_id") for r in batch.cdr_rows()] == [c.cdr_id for c in cdrs]
    assert batch.all_cdr_rows[:2] == first
    assert len(batch.all_cdr_rows) == 5
    assert len(batch.reject_rows) == 1
    assert batch.records == 6


def test_daily_rollups_sum_per_utc_day_account_destination_carrier() -> None:
    late = make_cdr(0, start_ms=T0_MS + 86_400_000, end_ms=T0_MS + 86_400_000 + 1000)
    unanswered = make_cdr(1, duration_s=0, billed_s=0, charge_micros=0)
    cdrs = [make_cdr(2), make_cdr(3, carrier="carrierB"), late, unanswered]
    rows = build_batch([cdr_record(c) for c in cdrs], NOW).all_cdr_rows
    totals = daily_rollup(rows)
    day = "2026-03-14"
    a = totals[(day, "alice", "UK London", "carrierA", "EUR")]
    assert a == ["/op/r1/", 2, 1, 65, 120, 24_002, 24_002]
    assert totals[(day, "alice", "UK London", "carrierB", "EUR")][1] == 1
    assert totals[("2026-03-15", "alice", "UK London", "carrierA", "EUR")][1] == 1


def test_limits_keep_indexed_values_within_a_btree_entry() -> None:
    # 2704 bytes is PostgreSQL's largest btree entry; 4 bytes per character at worst.
    indexed = ("cdr_id", "account_id", "tenant_path", "called", "calling", "carrier")
    assert all(CDR_LIMITS[name] * 4 + 16 < 2704 for name in indexed)


def test_every_cdr_kind_is_accepted() -> None:
    for kind in CdrKind:
        [row] = build_batch([cdr_record(make_cdr(0, kind=kind))], NOW).all_cdr_rows
        assert column(row, "kind") == kind.value
        assert column(row, "problems") == ""
