"""The CDR and ledger entry queue forms: round trips, compatibility, ids."""

from __future__ import annotations

import uuid

import msgpack
import pytest

from cdr_writer.ledger import LedgerEntry, ledger_entry_id, new_ledger_entry
from cdr_writer.record import SCHEMA_VERSION, Cdr, new_cdr_id
from tests.cdr_writer.samples import make_cdr, make_entry


def test_a_cdr_survives_its_queue_form() -> None:
    cdr = make_cdr(5)
    assert Cdr.decode(cdr.encode()) == cdr


def test_a_cdr_written_before_the_new_fields_still_decodes() -> None:
    cdr = make_cdr(1)
    _, body = msgpack.unpackb(cdr.encode(), raw=False)
    for name in ("sip_status", "q850_cause", "charge_unrounded"):
        del body[name]
    old = msgpack.packb([SCHEMA_VERSION, body], use_bin_type=True)
    decoded = Cdr.decode(old)
    assert (decoded.sip_status, decoded.q850_cause, decoded.charge_unrounded) == (0, 0, "")


def test_fields_from_a_newer_writer_are_ignored() -> None:
    _, body = msgpack.unpackb(make_cdr(2).encode(), raw=False)
    body["from_the_future"] = 1
    assert Cdr.decode(msgpack.packb([SCHEMA_VERSION, body])) == make_cdr(2, cdr_id=body["cdr_id"])


def test_cdr_ids_are_time_ordered_uuids() -> None:
    ids = [new_cdr_id(1_700_000_000_000 + i) for i in range(50)]
    assert ids == sorted(ids)
    assert {uuid.UUID(i).version for i in ids} == {7}
    assert len(set(ids)) == 50
    assert new_cdr_id(5) != new_cdr_id(5)


def test_a_ledger_entry_survives_its_queue_form() -> None:
    entry = make_entry()
    assert LedgerEntry.decode(entry.encode()) == entry


def test_the_entry_id_follows_the_idempotency_key() -> None:
    assert make_entry("k1").entry_id == make_entry("k1", amount_micros=1).entry_id
    assert make_entry("k1").entry_id != make_entry("k2").entry_id
    assert ledger_entry_id("alice", "k1") != ledger_entry_id("bob", "k1")


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xc1", id="not-msgpack"),
        pytest.param(make_cdr().encode(), id="a-cdr"),
        pytest.param(msgpack.packb(["ledger", 1, {"entry_id": "x"}]), id="incomplete"),
        pytest.param(msgpack.packb(["ledger", 9, {}]), id="future-version"),
    ],
)
def test_anything_but_a_ledger_entry_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        LedgerEntry.decode(payload)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        pytest.param({"kind": "gift"}, "unknown ledger kind", id="kind"),
        pytest.param({"idempotency_key": ""}, "idempotency key", id="no-key"),
        pytest.param({"amount_micros": 0}, "must not be zero", id="zero"),
    ],
)
def test_a_bad_ledger_entry_is_not_built(changes: dict[str, object], fragment: str) -> None:
    values: dict[str, object] = {
        "account_id": "alice",
        "kind": "topup",
        "amount_micros": 1,
        "currency": "EUR",
        "idempotency_key": "k",
        "at_ms": 0,
    }
    values.update(changes)
    with pytest.raises(ValueError, match=fragment):
        new_ledger_entry(**values)  # type: ignore[arg-type]
