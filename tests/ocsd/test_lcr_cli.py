"""The routing commands as an operator uses them, end to end on the embedded database."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocsd.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OCSD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OCSD_CONFIG", raising=False)
    monkeypatch.setenv("OCSD_ACTOR", "tester")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 0, err + out
    return out


def write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def world(env: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    sell = write(env, "sell.csv", "prefix,destination,rate\n44,UK,0.020\n447,UK mobile,0.030\n")
    acme = write(
        env,
        "acme.csv",
        "prefix,destination,rate,connect_fee\n44,UK,0.005,0.001\n447,UK mob,0.040,0\n",
    )
    globex = write(env, "globex.csv", "prefix,destination,rate\n44,UK,0.004\n447,UK mob,0.025\n")
    for args in (
        ("tenant", "add", "op", "--currency", "USD"),
        ("tariff", "import", "sell", sell, "--currency", "USD", "--effective-from", "2026-01-01"),
        ("plan", "add", "retail", "--deck", "sell"),
        ("account", "add", "alice", "--tenant", "op", "--plan", "retail", "--currency", "USD"),
        ("carrier", "add", "acme", "--currency", "USD", "--tech-prefix", "9901"),
        ("carrier", "add", "globex", "--currency", "USD", "--rule", "44:2:0"),
        ("carrier", "deck", "import", "acme", acme, "--effective-from", "2026-01-01"),
        ("carrier", "deck", "import", "globex", globex, "--effective-from", "2026-01-01"),
        ("trunk", "add", "acme-1", "--carrier", "acme", "--address", "192.0.2.10:5060"),
        ("route-plan", "add", "wholesale", "--strategy", "least_cost", "--typical-duration", "60"),
        ("route-plan", "entry", "wholesale", "44", "acme"),
        ("route-plan", "entry", "wholesale", "44", "globex"),
        ("route-plan", "bind", "wholesale", "--tariff-plan", "retail"),
        ("caller-id", "rule", "plus", "--action", "rewrite", "--add", "+"),
        ("caller-id", "bind", "plus", "--account", "alice"),
    ):
        ok(capsys, *args)
    return env


def test_lcr_route_prints_ranked_routes_and_why_others_were_skipped(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ok(
        capsys,
        "lcr",
        "route",
        "--account",
        "alice",
        "--to",
        "+44 20 7123 4567",
        "--from",
        "441632960001",
        "--at",
        "2026-06-01T10:00:00Z",
    )
    lines = out.splitlines()
    assert "sells at 0.020000 USD per 60 s" in lines[0]
    first = next(line for line in lines if line.startswith("1 "))
    second = next(line for line in lines if line.startswith("2 "))
    assert "globex" in first and "02071234567" in first and "+441632960001" in first
    assert "0.004000 USD" in first and "0.016000 USD" in first
    assert "acme" in second and "9901442071234567" in second and "acme-1" in second
    code, out, _ = run(
        capsys,
        "lcr",
        "route",
        "--account",
        "alice",
        "--to",
        "447700900123",
        "--at",
        "2026-06-01T10:00:00Z",
    )
    assert code == 0
    assert "skipped acme: below_margin: level 0 (op->alice) pays 0.030000 USD for 60s" in out
    ok(capsys, "carrier", "set", "globex", "--disable")
    code, out, _ = run(
        capsys,
        "lcr",
        "route",
        "--account",
        "alice",
        "--to",
        "447700900123",
        "--at",
        "2026-06-01T10:00:00Z",
    )
    assert (
        code == 1 and "no route: no_profitable_route" in out and "skipped globex: disabled" in out
    )


def test_margin_report_after_a_deck_import(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lcr", "margin-report", "--at", "2026-06-01")
    assert code == 1
    assert "1 destination/carrier pairs lose money" in out
    assert "retail  447" in out and "acme" in out and "-0.010000" in out
    dearer = write(world, "globex2.csv", "prefix,rate\n44,0.030\n447,0.050\n")
    out = ok(capsys, "carrier", "deck", "import", "globex", dearer)
    assert "destinations cost more on globex than they sell for" in out
    code, out, _ = run(capsys, "lcr", "margin-report", "--carrier", "globex")
    assert code == 1 and "2 destination/carrier pairs" in out


def test_portability_import_and_lookup(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ported = write(world, "ported.csv", "number;lrn;operator\n447700900123;447400000001;vodafone\n")
    assert "1 rows imported" in ok(capsys, "portability", "import", ported)
    assert "routing number 447400000001, carrier vodafone" in ok(
        capsys, "portability", "lookup", "+447700900123"
    )
    out = ok(
        capsys,
        "lcr",
        "route",
        "--account",
        "alice",
        "--to",
        "447700900123",
        "--at",
        "2026-06-01T10:00:00Z",
    )
    assert "ported: routing number 447400000001 (vodafone)" in out
    code, _, err = run(
        capsys, "portability", "import", write(world, "bad.csv", "number,lrn\n12ab,1\n")
    )
    assert code == 2 and "row 1" in err


def test_listings_and_audit(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "carrier", "set", "acme", "--max-calls", "30", "--rule", "/^44/0044/")
    out = ok(capsys, "carrier", "list")
    assert "acme" in out and "carrier.acme" in out and "/^44/0044/" in out
    assert "192.0.2.10:5060" in ok(capsys, "trunk", "list")
    assert "tariff_plan:retail" in ok(capsys, "route-plan", "list")
    assert "globex" in ok(capsys, "route-plan", "show", "wholesale")
    ok(capsys, "route-plan", "strategy", "wholesale", "447", "quality")
    assert "max_calls" in ok(capsys, "audit", "--entity", "carrier")
    code, _, err = run(capsys, "route-plan", "entry", "wholesale", "44", "initech")
    assert code == 2 and "no carrier" in err
    code, _, err = run(capsys, "carrier", "add", "bad id", "--currency", "USD")
    assert code == 2 and "carrier id" in err
