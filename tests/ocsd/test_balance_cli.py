"""Money from the command line: top-ups, adjustments, show, reconciliation.

Runs with the records database on SQLite and on the real PostgreSQL, and the balance store
embedded and on the real Redis (the production pairing).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from ocsd.charging import ChargingService, ChargingSettings
from ocsd.charging_types import ChargingRequest, Grant, RequestType, UnitRequest
from ocsd.cli import main
from ocsd.config import load_config
from ocsd.directory import Candidate, Directory
from ocsd.master import IdentityKind
from ocsd.master_store import MasterStore
from ocsd.sql_store import Database
from ocsd.stores import open_balance_store
from tests.ocsd.world import build_master, delete_prefix

pytestmark = pytest.mark.integration


@pytest.fixture(
    params=[
        pytest.param(("sqlite", "embedded"), id="sqlite-embedded"),
        pytest.param(("postgresql", "redis"), id="postgresql-redis"),
    ]
)
def config(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    records_kind, hot_kind = request.param
    data = tmp_path / "data"
    data.mkdir()
    if records_kind == "sqlite":
        records = f"sqlite:///{data / 'ocsd.sqlite3'}"
        build_master(data / "ocsd.sqlite3")
    else:
        records = request.getfixturevalue("pg_url")
        _build_master_at(records)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    hot = "embedded"
    if hot_kind == "redis":
        hot = request.getfixturevalue("redis_url")
    path = tmp_path / "ocsd.yaml"
    path.write_text(
        f"data_dir: {data}\n"
        f"stores: {{records_url: '{records}', hot_url: '{hot}', redis_key_prefix: {prefix}}}\n"
        "http: {enabled: false}\n"
    )
    monkeypatch.setenv("OCSD_ACTOR", "tester")
    yield path
    if hot_kind == "redis":
        asyncio.run(delete_prefix(prefix))


def _build_master_at(url: str) -> None:
    # build_master writes a SQLite file; for PostgreSQL copy what it made.
    import tempfile

    from ocsd.schema import upgrade

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "m.sqlite3"
        build_master(source)
        with Database(f"sqlite:///{source}") as lite, Database(url) as pg:
            upgrade(pg)
            snapshot = MasterStore(lite).snapshot()
            target = MasterStore(pg, actor="test")
            from rating.deck_csv import DeckDefaults, parse_deck_csv
            from tests.ocsd.world import DECK

            rows = parse_deck_csv(DECK.encode(), defaults=DeckDefaults(effective_from=0))
            target.import_deck("retail", "USD", rows, effective_from=0)
            for plan in snapshot.plans.values():
                target.add_plan(plan)
            for tenant in snapshot.tenants.values():
                target.add_tenant(tenant)
            for account in snapshot.accounts.values():
                target.add_account(account)
            for identity in snapshot.identities:
                target.add_identity(identity)


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def test_topup_is_applied_once_per_key(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        config,
        "account",
        "topup",
        "alice",
        "10.50",
        "--key",
        "pay-1",
        "--reference",
        "gw-991",
    )
    assert code == 0 and "balance 10.500000 USD" in out
    code, out, _ = run(capsys, config, "account", "topup", "alice", "10.50", "--key", "pay-1")
    assert code == 0 and "already applied: nothing moved; balance 10.500000 USD" in out
    code, out, _ = run(
        capsys,
        config,
        "account",
        "adjust",
        "alice",
        "-0.25",
        "--reason",
        "duplicate payment reversed",
    )
    assert code == 0 and "balance 10.250000 USD" in out
    code, out, _ = run(capsys, config, "account", "show", "alice")
    assert code == 0
    assert "balance: 10.250000 USD" in out
    assert "gw-991" in out and "duplicate payment reversed" in out and "tester" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(("topup", "nobody", "1"), "no account 'nobody'", id="unknown"),
        pytest.param(("topup", "alice", "-1"), "must be positive", id="negative-topup"),
        pytest.param(("topup", "alice", "0.0000001"), "more than 6 decimal", id="sub-micro"),
        pytest.param(("adjust", "alice", "1"), "needs --reason", id="no-reason"),
        pytest.param(("adjust", "alice", "-5", "--reason", "x"), "refused", id="below-zero"),
    ],
)
def test_bad_money_commands(
    config: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    code, _, err = run(capsys, config, "account", *args)
    assert code == 2 and fragment in err


def test_reconciliation_after_calls(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, config, "account", "topup", "alice", "1")[0] == 0

    async def calls() -> None:
        conf, _ = load_config(str(config))
        store = open_balance_store(conf)
        with Database(conf.records_url) as db:
            directory = Directory(MasterStore(db).snapshot())
        service = ChargingService(ChargingSettings(), store, lambda: directory)
        try:
            for n in range(3):
                common = {
                    "session_id": f"c{n}",
                    "protocol": "test",
                    "peer": "p",
                    "identities": (Candidate(IdentityKind.USERNAME, "alice"),),
                    "called": "442071234567",
                }
                start = await service.handle(
                    ChargingRequest(request_number=0, request_type=RequestType.INITIAL, **common)
                )
                assert isinstance(start, Grant)
                await service.handle(
                    ChargingRequest(
                        request_number=1,
                        request_type=RequestType.TERMINATE,
                        units=(UnitRequest(used_s=61),),
                        **common,
                    )
                )
        finally:
            await store.close()

    asyncio.run(calls())
    code, out, _ = run(capsys, config, "account", "reconcile", "alice")
    # 3 calls of 61 s bill 120 s each at 0.010/min: 0.06.
    assert code == 0, out
    assert "alice    1.000000  0.060000" in out and "ok" in out
    conf, _ = load_config(str(config))
    with Database(conf.records_url) as db:
        db.execute("DELETE FROM cdrs WHERE session_id = 'c0'")
    code, out, _ = run(capsys, config, "account", "reconcile", "alice")
    assert code == 1
    assert "-0.020000" in out and "do not reconcile" in out
