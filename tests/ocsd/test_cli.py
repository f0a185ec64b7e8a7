"""The command line as an operator uses it: exit codes, messages naming lines, traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocsd.cli import main

ROOT = Path(__file__).resolve().parents[2]


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


def setup_reseller(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ("tenant", "add", "op", "--currency", "USD"),
        (
            "tariff",
            "import",
            "wholesale",
            str(ROOT / "config" / "rates.sample.csv"),
            "--currency",
            "USD",
            "--effective-from",
            "2026-01-01",
        ),
        ("plan", "add", "wholesale", "--deck", "wholesale"),
        ("plan", "add", "plus20", "--markup-percent", "20", "--markup-fixed", "0.001"),
        ("tenant", "add", "r1", "--parent", "op", "--currency", "USD", "--plan", "wholesale"),
        (
            "account",
            "add",
            "alice",
            "--tenant",
            "r1",
            "--plan",
            "plus20",
            "--currency",
            "EUR",
            "--timezone",
            "Europe/Paris",
        ),
        ("currency", "rate", "USD", "EUR", "0.92", "--effective-from", "2020-01-01"),
    ):
        code, _, err = run(capsys, *args)
        assert code == 0, err


def test_rate_prints_every_level_and_the_trace(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_reseller(capsys)
    code, out, _ = run(
        capsys,
        "rate",
        "--account",
        "alice",
        "--to",
        "+44 20 7123 4567",
        "--duration",
        "95",
        "--at",
        "2026-12-01T10:00:00Z",
    )
    assert code == 0
    assert "prefix 4420 (UK London)" in out
    # 95 s on 60/60 = 120 s at 0.012 USD/min = 0.024 USD; +20 % + 0.001 = 0.0298 USD;
    # at 0.92 = 0.027416 EUR.
    assert "op      r1     wholesale  0.024000  USD" in out
    assert "account alice pays 0.027416 EUR for 120 billed s" in out


def test_rate_uses_the_band_of_the_accounts_local_time(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_reseller(capsys)
    # 07:30 UTC on a Tuesday is 08:30 in Paris: peak (0.015); 06:30 UTC is off-peak (0.010).
    _, peak, _ = run(
        capsys,
        "rate",
        "--account",
        "alice",
        "--to",
        "4416",
        "--duration",
        "60",
        "--at",
        "2026-12-01T07:30:00Z",
    )
    _, off, _ = run(
        capsys,
        "rate",
        "--account",
        "alice",
        "--to",
        "4416",
        "--duration",
        "60",
        "--at",
        "2026-12-01T06:30:00Z",
    )
    assert "0.015000 USD/min" in peak and "band mon-fri 08:00-18:00" in peak
    assert "0.010000 USD/min" in off


def test_a_malformed_deck_names_file_and_line_and_imports_nothing(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = env / "bad.csv"
    bad.write_text("prefix,rate\n44,0.01\n4x,0.02\n33,-1\n")
    code, _, err = run(capsys, "tariff", "import", "d", str(bad), "--currency", "USD")
    assert code == 2
    assert f"{bad}:3: prefix '4x' must be 1-20 digits" in err
    assert f"{bad}:4: rate '-1' is negative" in err
    code, _, err = run(capsys, "tariff", "show", "d")
    assert code == 2 and "no deck 'd'" in err


def test_import_prints_the_diff(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = env / "v1.csv"
    first.write_text("prefix,destination,rate\n44,UK,0.01\n33,France,0.02\n")
    second = env / "v2.csv"
    second.write_text("prefix,destination,rate\n44,UK,0.012\n49,Germany,0.02\n")
    assert run(capsys, "tariff", "import", "d", str(first), "--currency", "USD")[0] == 0
    code, out, _ = run(capsys, "tariff", "import", "d", str(second), "--dry-run")
    assert code == 0
    assert "would import" in out
    assert "1 new, 1 removed, 1 increased, 0 decreased" in out
    code, out, _ = run(capsys, "tariff", "versions", "d")
    assert out.count("replace") == 1


def test_account_changes_show_in_the_audit_log(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_reseller(capsys)
    assert (
        run(capsys, "account", "set", "alice", "--daily-cap", "5", "--status", "suspended")[0] == 0
    )
    code, out, _ = run(capsys, "audit", "--entity", "account", "--id", "alice", "--limit", "2")
    assert code == 0
    assert "daily_cap_micros" in out and "5000000" in out
    assert "suspended" in out and "tester" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(
            ("account", "add", "x", "--tenant", "nope", "--plan", "p", "--currency", "USD"),
            "no tenant 'nope'",
            id="unknown-tenant",
        ),
        pytest.param(
            ("plan", "add", "p", "--deck", "missing"), "no deck 'missing'", id="unknown-deck"
        ),
        pytest.param(("plan", "add", "p"), "exactly one of a deck or a markup", id="no-pricing"),
        pytest.param(("currency", "rate", "USD", "EUR", "abc"), "is not a number", id="fx"),
        pytest.param(("identity", "add", "x"), "give exactly one of", id="identity"),
    ],
)
def test_bad_input_is_a_clear_error(
    env: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert fragment in err


def test_check_config_names_the_line(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = env / "ocsd.yaml"
    config.write_text("stores:\n  hot_url: embedded\n  recods_url: sqlite:///x\n")
    code, _, err = run(capsys, "check-config", str(config))
    assert code == 2
    assert f"{config}:3: stores.recods_url: unknown key (did you mean 'records_url'?)" in err


def test_the_example_configuration_is_valid(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check-config", str(ROOT / "config" / "ocsd.example.yaml"))
    assert code == 0, err
    assert "OK" in out
