"""CDR commands as an operator uses them, on the embedded default: money moves in the store,
``ocsd cdr-writer`` stores the records, search/export/show/report read them back."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import replace
from pathlib import Path

import pytest

from balances.embedded_store import EmbeddedBalanceStore
from balances.model import AccountKind, AccountLimits, LedgerKind, Step, StepKind, StepStatus
from cdr_writer.ledger import new_ledger_entry
from cdr_writer.record import Cdr, CdrKind
from ocsd.cli import main
from tests.cdr_writer.samples import T0_MS, make_cdr

ROOT = Path(__file__).resolve().parents[2]
CALLS = 30


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # cdr-writer sets up logging for its process; in-process here it would bind structlog to
    # this test's captured stderr for every later test.
    monkeypatch.setattr("ocsd.logs.configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setenv("OCSD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OCSD_CONFIG", raising=False)
    monkeypatch.setenv("OCSD_ACTOR", "tester")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def call(number: int) -> Cdr:
    """Calls of alice, one every 10 minutes; every third through carrierB, to Paris."""
    start = T0_MS + number * 600_000
    cdr = make_cdr(number, start_ms=start, end_ms=start + 65_000, answer_ms=start + 2_000)
    if number % 3 == 0:
        cdr = replace(cdr, carrier="carrierB", called=f"3314{number:06d}", destination="Paris")
    return cdr


async def charge(path: Path, cdrs: list[Cdr]) -> int:
    """Top alice up and charge the calls in the embedded store; return her balance."""
    store = EmbeddedBalanceStore(path)
    await store.put_account(AccountLimits("alice", AccountKind.PREPAID))
    entry = new_ledger_entry(
        account_id="alice",
        kind="topup",
        amount_micros=50_000_000,
        currency="EUR",
        idempotency_key="card-1",
        at_ms=T0_MS,
        actor="tester",
    )
    await store.ledger("alice", LedgerKind.TOPUP, 50_000_000, "card-1", entry.encode(), T0_MS)
    for cdr in cdrs:
        result = await store.step(
            Step(
                kind=StepKind.EVENT,
                account_id="alice",
                session_id=cdr.session_id,
                request_number=0,
                now_ms=cdr.end_ms,
                day_key="2026-03-14",
                month_key="2026-03",
                debit_micros=cdr.charge_micros,
                record=cdr.encode(),
            )
        )
        assert result.status is StepStatus.OK
    state = await store.get_account("alice")
    await store.close()
    assert state is not None
    return state.balance_micros


@pytest.fixture
def written(env: Path, capsys: pytest.CaptureFixture[str]) -> list[Cdr]:
    """Tenants op -> r1 -> alice, her calls charged and written by ``ocsd cdr-writer``."""
    for args in (
        ("tenant", "add", "op", "--currency", "USD"),
        ("tariff", "import", "wholesale", str(ROOT / "config" / "rates.sample.csv"), "--currency",
         "USD", "--effective-from", "2026-01-01"),
        ("plan", "add", "wholesale", "--deck", "wholesale"),
        ("tenant", "add", "r1", "--parent", "op", "--currency", "USD", "--plan", "wholesale"),
        ("account", "add", "alice", "--tenant", "r1", "--plan", "wholesale", "--currency", "EUR"),
    ):  # fmt: skip
        code, _, err = run(capsys, *args)
        assert code == 0, err
    cdrs = [call(i) for i in range(CALLS)]
    data = env / "data"
    data.mkdir(exist_ok=True)
    balance = asyncio.run(charge(data / "hot.sqlite3", cdrs))
    assert balance == 50_000_000 - sum(c.charge_micros for c in cdrs)
    code, _, err = run(capsys, "cdr-writer", "--until-empty")
    assert code == 0, err
    return cdrs


def test_the_writer_stores_every_call_and_the_top_up_once(
    written: list[Cdr], env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ocsd.sql_store import Database

    with Database(f"sqlite:///{env}/data/ocsd.sqlite3") as db:
        assert db.query("SELECT COUNT(*), SUM(debited_micros) FROM cdrs") == [
            (CALLS, sum(c.charge_micros for c in written))
        ]
        assert db.query("SELECT kind, amount_micros, balance_after_micros FROM ledger") == [
            ("topup", 50_000_000, 50_000_000)
        ]
    # Run again: the queue is empty, nothing is written twice.
    code, _, err = run(capsys, "cdr-writer", "--until-empty")
    assert code == 0, err
    with Database(f"sqlite:///{env}/data/ocsd.sqlite3") as db:
        assert db.query("SELECT COUNT(*) FROM cdrs") == [(CALLS,)]


def test_search_pages_newest_first_with_a_cursor(
    written: list[Cdr], capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    args = ["cdr", "search", "--account", "alice", "--limit", "7"]
    for _ in range(10):
        code, out, err = run(capsys, *args)
        assert code == 0, err
        lines = out.splitlines()
        rows = [line for line in lines[1:] if not line.startswith(("next page", "no CDR"))]
        seen += [row.split()[1] for row in rows]
        nxt = [line for line in lines if line.startswith("next page: --after ")]
        if not nxt:
            break
        args = [*args[:6], "--after", nxt[0].split()[-1]]
    by_start = sorted(written, key=lambda c: c.start_ms, reverse=True)
    assert seen == [c.cdr_id for c in by_start]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param(("--tenant", "op"), CALLS, id="operator-subtree"),
        pytest.param(("--tenant", "r1"), CALLS, id="reseller-subtree"),
        pytest.param(("--carrier", "carrierB"), 10, id="carrier"),
        pytest.param(("--called", "3314*"), 10, id="called-prefix"),
        pytest.param(("--called", "331400000"), 0, id="called-exact-none"),
        pytest.param(("--called", "3314000003"), 1, id="called-exact"),
        pytest.param(("--destination", "Paris"), 10, id="destination"),
        pytest.param(("--from", "2026-03-14T10:00:00Z", "--to", "2026-03-14T11:00:00Z"), 6,
                     id="time-range"),
        pytest.param(("--from", "2026-03-14 11:00", "--timezone", "Europe/Paris", "--to",
                      "2026-03-14 12:00"), 6, id="local-time-range"),
        pytest.param(("--min-charge", "0.024010", "--max-charge", "0.024019"), 10,
                     id="charge-range"),
        pytest.param(("--min-duration", "66"), 0, id="duration"),
        pytest.param(("--hangup-cause", "16", "--kind", "call"), CALLS, id="cause-kind"),
        pytest.param(("--problems",), 0, id="problems"),
    ],
)  # fmt: skip
def test_search_filters(
    written: list[Cdr],
    capsys: pytest.CaptureFixture[str],
    filters: tuple[str, ...],
    expected: int,
) -> None:
    code, out, err = run(capsys, "cdr", "search", "--limit", "100", *filters)
    assert code == 0, err
    rows = [line for line in out.splitlines()[1:] if line and not line.startswith("no CDR")]
    assert len(rows) == expected


def test_export_streams_the_search_as_csv_with_exact_amounts(
    written: list[Cdr], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "cdr", "export", "--format", "csv", "--carrier", "carrierB")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 10
    first = rows[0]
    newest = max((c for c in written if c.carrier == "carrierB"), key=lambda c: c.start_ms)
    assert first["cdr_id"] == newest.cdr_id
    assert first["charge"] == f"0.{newest.charge_micros:06d}"
    assert first["start_at"].endswith("Z")
    assert first["tenant_path"] == "/op/r1/"
    assert first["trace"].splitlines()[0] == "prefix 4420 (UK London)"


def test_export_to_a_file(
    written: list[Cdr], env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = env / "out.csv"
    code, _, err = run(capsys, "cdr", "export", "--output", str(target))
    assert code == 0
    assert f"{CALLS} CDRs written" in err
    assert len(list(csv.reader(io.StringIO(target.read_text())))) == CALLS + 1


def test_show_prints_everything_with_the_trace(
    written: list[Cdr], capsys: pytest.CaptureFixture[str]
) -> None:
    cdr = written[4]
    code, out, err = run(capsys, "cdr", "show", cdr.cdr_id)
    assert code == 0, err
    assert "cdr_id" in out and cdr.cdr_id in out
    fields = {}
    for line in out.splitlines():
        name, _, value = line.partition(" ")
        fields[name] = value.strip()
    assert fields["charge"] == "0.024004"
    assert fields["tenant_path"] == "/op/r1/"
    assert "  op -> r1 at wholesale: 0.021000 USD (fx 1)" in out
    assert "trace:\n  prefix 4420 (UK London)\n  60/60 billing" in out


def test_daily_report_from_the_rollups(
    written: list[Cdr], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "report", "daily", "--from", "2026-03-14", "--by", "day,account,carrier"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["day", "account", "carrier", "currency", "calls"]
    a = next(line for line in lines if "carrierA" in line).split()
    b = next(line for line in lines if "carrierB" in line).split()
    assert (a[4], b[4]) == ("20", "10")
    charge_b = sum(c.charge_micros for c in written if c.carrier == "carrierB")
    assert b[-2] == f"0.{charge_b:06d}"
    code, out, _ = run(capsys, "report", "daily", "--from", "2026-03-14", "--tenant", "op")
    assert code == 0 and " 30 " in out


def test_a_bad_record_is_listed_with_its_problem(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = env / "data"
    data.mkdir()
    bad = make_cdr(1, timezone="Mars/Base", called="4" * 80)
    asyncio.run(charge(data / "hot.sqlite3", [bad]))
    code, _, err = run(capsys, "cdr-writer", "--until-empty")
    assert code == 0, err
    code, out, _ = run(capsys, "cdr", "problems")
    assert "unknown time zone 'Mars/Base'" in out and "called: 80 characters" in out
    code, out, _ = run(capsys, "cdr", "search", "--problems")
    assert bad.cdr_id in out
    code, out, _ = run(capsys, "cdr", "show", bad.cdr_id)
    assert "stored in cdrs" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("cdr", "search", "--after", "nope"), "not a search cursor", id="cursor"),
        pytest.param(("cdr", "search", "--tenant", "ghost"), "no tenant 'ghost'", id="tenant"),
        pytest.param(("cdr", "search", "--called", "+44"), "E.164 digits", id="number"),
        pytest.param(
            ("cdr", "search", "--from", "2026-03-15", "--to", "2026-03-14"),
            "end of the time range",
            id="range",
        ),
        pytest.param(("cdr", "show", "missing"), "no CDR 'missing'", id="show"),
        pytest.param(("report", "daily", "--by", "weekday"), "cannot group by weekday", id="by"),
        pytest.param(("report", "daily", "--from", "14/03"), "is not a date", id="day"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    env: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, _out, err = run(capsys, *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_partitions_on_the_embedded_default(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cdr", "partitions")
    assert code == 0 and "no partitions" in out
    assert CdrKind.CALL.value == "call"
