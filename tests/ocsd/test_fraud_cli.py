"""``ocsd fraud ...`` as an operator uses it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fraud.embedded_counter_store import EmbeddedCounterStore
from fraud.engine import FraudEngine
from fraud.guard import FraudGuard
from fraud.model import CallAttempt
from ocsd.cli import main
from ocsd.config import Config, load_config
from ocsd.fraud_setup import load_fraud_engine
from ocsd.sql_store import Database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    monkeypatch.setenv("OCSD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OCSD_CONFIG", raising=False)
    monkeypatch.setenv("OCSD_ACTOR", "tester")
    for args in (
        ("tenant", "add", "op", "--currency", "USD"),
        ("tariff", "import", "d", str(ROOT / "config" / "rates.sample.csv"), "--currency", "USD"),
        ("plan", "add", "p", "--deck", "d"),
        ("account", "add", "alice", "--tenant", "op", "--plan", "p", "--currency", "USD"),
    ):
        assert main(list(args)) == 0
    capsys.readouterr()
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fraud", *args])
    out, err = capsys.readouterr()
    return code, out, err


def verdict_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("verdict:"))


def rule_line(out: str, rule: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(rule + " "))


@pytest.mark.parametrize(
    ("setup", "test_args", "verdict"),
    [
        pytest.param([], ["--to", "+442071234567"], "verdict: allowed", id="clean"),
        pytest.param(
            [],
            ["--to", "+88216123456"],
            "verdict: refused by high_risk_destination (destination_blocked)",
            id="high-risk-by-default",
        ),
        pytest.param(
            [["optin", "--account", "alice", "882"]],
            ["--to", "+88216123456"],
            "verdict: allowed",
            id="opted-in",
        ),
        pytest.param(
            [["deny", "--account", "alice", "*"], ["allow", "--account", "alice", "33"]],
            ["--to", "+442071234567"],
            "verdict: refused by deny_destination (destination_blocked)",
            id="exclusive-allow-list",
        ),
        pytest.param(
            [["dnc", "--global", "+442071234567"]],
            ["--to", "+442071234567"],
            "verdict: refused by dnc (destination_blocked)",
            id="dnc",
        ),
        pytest.param(
            [["ip", "--account", "alice", "192.0.2.0/24"]],
            ["--to", "+442071234567", "--ip", "198.51.100.1"],
            "verdict: refused by account_ip (fraud_suspected)",
            id="account-ip",
        ),
        pytest.param(
            [],
            ["--to", "+442071234567", "--from", "+442071234567"],
            "verdict: allowed, alerting on caller_is_callee",
            id="alert-only",
        ),
        pytest.param(
            [["rule", "set", "caller_is_callee", "--account", "alice", "actions=refuse"]],
            ["--to", "+442071234567", "--from", "+442071234567"],
            "verdict: refused by caller_is_callee (fraud_suspected)",
            id="account-override",
        ),
    ],
)
def test_which_rules_a_call_would_trip(
    env: Path,
    capsys: pytest.CaptureFixture[str],
    setup: list[list[str]],
    test_args: list[str],
    verdict: str,
) -> None:
    for args in setup:
        code, _, err = run(capsys, *args)
        assert code == 0, err
    code, out, err = run(capsys, "test", "--account", "alice", *test_args)
    assert code == 0, err
    assert verdict_line(out) == verdict


def test_the_counters_are_shown_with_their_thresholds(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "rule", "set", "calls_per_minute", "max_calls=3", "actions=refuse")[0] == 0
    # A daemon on the embedded store counted three calls in the last minute.
    config, _ = load_config(None)
    assert config.embedded_fraud_path == Config(data_dir=str(env / "data")).embedded_fraud_path
    path = config.embedded_fraud_path

    async def burst() -> None:
        with Database(config.records_url) as db:
            engine: FraudEngine = load_fraud_engine(config, db)
        store = EmbeddedCounterStore(path)
        guard = FraudGuard(engine, store)
        now = time.time()
        for i in range(3):
            await guard.check(CallAttempt("alice", "442071234567", now, f"s{i}"))
        await guard.close()

    asyncio.run(burst())
    code, out, _ = run(capsys, "test", "--account", "alice", "--to", "+442071234567")
    assert code == 0
    assert "4 call attempts in 60 s, more than 3" in rule_line(out, "calls_per_minute")
    assert "TRIPS" in rule_line(out, "calls_per_minute")
    assert "4 live / max 100" in rule_line(out, "concurrent_calls")
    assert verdict_line(out) == "verdict: refused by calls_per_minute (fraud_suspected)"


def test_lists_overrides_and_their_audit(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "deny", "--account", "alice", "4470", "--note", "ticket 7")[0] == 0
    assert run(capsys, "highrisk", "2521", "--note", "Somalia premium")[0] == 0
    assert run(capsys, "ip", "--peer", "sbc1", "192.0.2.1/24")[0] == 0
    assert (
        run(capsys, "rule", "set", "spend_per_day", "max_spend=20.5", "--account", "alice")[0] == 0
    )
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "deny       alice      4470          tester  ticket 7" in out
    assert "high_risk  *          2521          tester  Somalia premium" in out
    assert "ip         peer:sbc1  192.0.2.0/24" in out
    assert "alice  spend_per_day  max_spend=20.5" in out
    code, out, _ = run(capsys, "rule", "show", "spend_per_day", "--account", "alice")
    assert "max_spend=20.5, window_s=86400" in out
    code, out, _ = run(capsys, "audit", "--changes")
    assert code == 0
    assert out.count("tester") == 4
    assert "fraud_rule  alice      spend_per_day" in out
    code, out, _ = run(capsys, "deny", "--account", "alice", "--remove", "4470")
    assert code == 0 and "4470 removed" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["deny", "44"], "say whose list", id="no-owner"),
        pytest.param(["deny", "--account", "bob", "44"], "no account 'bob'", id="no-account"),
        pytest.param(["deny", "--global", "4x"], "'4x' is not a prefix", id="bad-prefix"),
        pytest.param(["dnc", "--global", "*"], "is not an E.164 number", id="dnc-star"),
        pytest.param(
            ["unblock", "--account", "alice", "882"], "not on the blocked list", id="no-block"
        ),
        pytest.param(
            ["rule", "set", "dnc", "actions=explode"], "actions must be among", id="bad-action"
        ),
        pytest.param(["rule", "set", "dnc", "actions"], "is not KEY=VALUE", id="not-key-value"),
        pytest.param(["test", "--account", "bob", "--to", "44"], "no account 'bob'", id="test"),
    ],
)
def test_bad_input_is_a_clear_error(
    env: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert fragment in err


def test_no_decisions_yet(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "audit")[1] == "no fraud decisions\n"
