"""Master data on SQLite and on the real PostgreSQL: the same tests, the same results."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from balances.model import AccountKind, AccountStatus
from ocsd.directory import Candidate, Directory
from ocsd.master import Account, Identity, IdentityKind, Tenant, TenantStatus
from ocsd.master_store import MasterDataError, MasterStore
from ocsd.schema import MIGRATIONS, current_version, latest_version, upgrade
from ocsd.sql_store import Database
from rating.deck_csv import DeckDefaults, parse_deck_csv
from rating.plan import Markup, TariffPlan

T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
T1 = int(datetime(2026, 7, 1, tzinfo=UTC).timestamp())


@pytest.fixture
def master(records_url: str) -> Iterator[MasterStore]:
    with Database(records_url) as db:
        upgrade(db)
        yield MasterStore(db, actor="tester")


def rows(text: str, start: int = T0) -> list:  # type: ignore[type-arg]
    return parse_deck_csv(
        text.encode(), filename="deck.csv", defaults=DeckDefaults(effective_from=start)
    )


def account(account_id: str = "acct", **changes: object) -> Account:
    base = Account(
        account_id=account_id,
        tenant_id="op",
        name="",
        kind=AccountKind.PREPAID,
        currency="USD",
        credit_limit_micros=0,
        daily_cap_micros=None,
        monthly_cap_micros=None,
        max_sessions=None,
        timezone="Europe/London",
        plan_id="retail",
        status=AccountStatus.ACTIVE,
    )
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def populated(master: MasterStore) -> MasterStore:
    master.import_deck(
        "retail", "USD", rows("prefix,rate\n44,0.01\n4420,0.02\n"), effective_from=T0
    )
    master.add_plan(TariffPlan("retail", deck_id="retail"))
    master.add_tenant(Tenant("op", None, "Operator", "USD", None))
    master.add_account(account())
    return master


def test_upgrade_is_idempotent(records_url: str) -> None:
    with Database(records_url) as db:
        assert current_version(db) == 0
        assert len(upgrade(db)) == len(MIGRATIONS)
        assert upgrade(db) == []
        assert current_version(db) == latest_version()


def test_import_diff_and_history(populated: MasterStore) -> None:
    report = populated.import_deck(
        "retail",
        "USD",
        rows("prefix,rate\n44,0.015\n4420,0.01\n33,0.02\n", T1),
        effective_from=T1,
    )
    assert [c.prefix for c in report.new] == ["33"]
    assert [c.prefix for c in report.increased] == ["44"]
    assert [c.prefix for c in report.decreased] == ["4420"]
    assert report.removed == []
    deck = populated.load_deck("retail")
    before = deck.lookup("4420123", T1 - 1)
    after = deck.lookup("4420123", T1)
    assert before is not None and before.rate_micros == 20_000
    assert after is not None and after.rate_micros == 10_000
    assert after.version == report.version_id

    removal = populated.import_deck(
        "retail", "USD", rows("prefix,rate\n44,0.015\n", T1 + 10), effective_from=T1 + 10
    )
    assert sorted(c.prefix for c in removal.removed) == ["33", "4420"]
    assert removal.unchanged == 1
    deck = populated.load_deck("retail")
    found = deck.lookup("4420123", T1 + 10)
    assert found is not None and found.prefix == "44"


def test_scheduled_rates_and_update_mode(populated: MasterStore) -> None:
    future = T1 + 86_400
    report = populated.import_deck(
        "retail",
        "USD",
        rows(
            f"prefix,rate,effective_from\n44,0.05,{datetime.fromtimestamp(future, UTC).date()}\n",
            T1,
        ),
        effective_from=T1,
        mode="update",
    )
    assert report.scheduled == 1
    deck = populated.load_deck("retail")
    assert deck.lookup("44", future - 1).rate_micros == 10_000  # type: ignore[union-attr]
    assert deck.lookup("44", future).rate_micros == 50_000  # type: ignore[union-attr]
    # update mode leaves the other prefixes alone
    assert deck.lookup("4420", future).rate_micros == 20_000  # type: ignore[union-attr]


def test_dry_run_changes_nothing(populated: MasterStore) -> None:
    marker = populated.change_marker()
    report = populated.preview_import(
        "retail", "USD", rows("prefix,rate\n44,0.5\n", T1), effective_from=T1
    )
    assert report.dry_run and [c.prefix for c in report.increased] == ["44"]
    assert populated.change_marker() == marker
    assert populated.load_deck("retail").lookup("44", T1).rate_micros == 10_000  # type: ignore[union-attr]
    assert len(populated.deck_versions("retail")) == 1


def test_a_failing_import_leaves_nothing(populated: MasterStore) -> None:
    with pytest.raises(MasterDataError, match="priced in USD"):
        populated.import_deck("retail", "EUR", rows("prefix,rate\n1,0.1\n", T1), effective_from=T1)
    assert len(populated.deck_versions("retail")) == 1


def test_account_changes_are_audited_field_by_field(populated: MasterStore) -> None:
    marker = populated.change_marker()
    populated.update_account("acct", status=AccountStatus.SUSPENDED, daily_cap_micros=5_000_000)
    assert populated.change_marker() > marker
    entries = populated.audit_entries("account", "acct", limit=2)
    changed = {(e[5], e[6], e[7], e[2]) for e in entries}
    assert changed == {
        ("status", "active", "suspended", "tester"),
        ("daily_cap_micros", None, "5000000", "tester"),
    }
    stored = populated.get_account("acct")
    assert stored is not None and stored.status is AccountStatus.SUSPENDED


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        pytest.param({"timezone": "Mars/Olympus"}, "unknown IANA time zone", id="zone"),
        pytest.param({"daily_cap_micros": -1}, "must not be negative", id="negative-cap"),
        pytest.param({"credit_limit_micros": 5}, "prepaid account has no credit", id="prepaid"),
        pytest.param({"plan_id": "nope"}, "no plan", id="plan"),
        pytest.param({"tenant_id": "nobody"}, "no tenant", id="tenant"),
        pytest.param({"currency": "XXX"}, "unknown currency", id="currency"),
    ],
)
def test_bad_accounts_are_refused(
    populated: MasterStore, changes: dict[str, object], fragment: str
) -> None:
    with pytest.raises(MasterDataError, match=fragment):
        populated.add_account(account("other", **changes))
    assert populated.get_account("other") is None


def test_tenant_tree_rules(populated: MasterStore) -> None:
    with pytest.raises(MasterDataError, match="the operator is op"):
        populated.add_tenant(Tenant("op2", None, "", "USD", None))
    with pytest.raises(MasterDataError, match="needs the plan"):
        populated.add_tenant(Tenant("r1", "op", "", "USD", None))
    populated.add_plan(TariffPlan("plus10", markup=Markup(Decimal(10))))
    populated.add_tenant(Tenant("r1", "op", "", "USD", "retail"))
    populated.add_tenant(Tenant("r2", "r1", "", "USD", "plus10"))
    populated.add_account(account("deep", tenant_id="r2", plan_id="plus10"))
    directory = Directory(populated.snapshot())
    chain = directory.chain(directory.accounts["deep"])
    assert [(p.seller, p.buyer, p.plan_id) for p in chain] == [
        ("op", "r1", "retail"),
        ("r1", "r2", "plus10"),
        ("r2", "deep", "plus10"),
    ]
    populated.update_tenant("r1", status=TenantStatus.SUSPENDED)
    directory = Directory(populated.snapshot())
    assert directory.account_status(directory.accounts["deep"]) is AccountStatus.SUSPENDED


def test_identities_map_calls_to_accounts(populated: MasterStore) -> None:
    populated.add_account(account("pbx"))
    populated.add_account(account("carrier"))
    populated.add_identity(Identity("acct", IdentityKind.E164, "+441632960001"))
    populated.add_identity(Identity("pbx", IdentityKind.E164_PREFIX, "4416329607"))
    populated.add_identity(Identity("acct", IdentityKind.USERNAME, "alice@example.net"))
    populated.add_identity(Identity("carrier", IdentityKind.IP, "192.0.2.0/24", "7001"))
    populated.add_identity(Identity("pbx", IdentityKind.IP, "192.0.2.10"))
    with pytest.raises(MasterDataError, match="already belongs to account acct"):
        populated.add_identity(Identity("pbx", IdentityKind.E164, "441632960001"))
    with pytest.raises(MasterDataError, match="not an IP"):
        populated.add_identity(Identity("pbx", IdentityKind.IP, "300.1.1.1"))
    directory = Directory(populated.snapshot())

    def who(kind: IdentityKind, value: str) -> str | None:
        found = directory.identify([Candidate(kind, value)])
        return found.account.account_id if found else None

    assert who(IdentityKind.E164, "441632960001") == "acct"
    assert who(IdentityKind.E164, "441632960799") == "pbx"
    assert who(IdentityKind.E164, "441632969999") is None
    assert who(IdentityKind.USERNAME, "alice@example.net") == "acct"
    by_ip = directory.identify_source("192.0.2.77", "70014420123")
    assert by_ip is not None and by_ip.account.account_id == "carrier"
    assert by_ip.called == "4420123"
    exact = directory.identify_source("192.0.2.10", "4420123")
    assert exact is not None and exact.account.account_id == "pbx"
    assert directory.identify_source("192.0.2.77", "4420123") is None
    assert directory.identify_source("198.51.100.1", "70014420123") is None
    populated.remove_identity(IdentityKind.E164, "441632960001")
    directory = Directory(populated.snapshot())
    assert who(IdentityKind.E164, "441632960001") is None


def test_exchange_rates_are_effective_dated(populated: MasterStore) -> None:
    populated.set_exchange_rate("USD", "EUR", Decimal("0.9"), datetime.fromtimestamp(T0, UTC))
    populated.set_exchange_rate("USD", "EUR", Decimal("0.95"), datetime.fromtimestamp(T1, UTC))
    directory = Directory(populated.snapshot())
    assert directory.rater.fx.factor("USD", "EUR", T1 - 1)[1] == "0.9"
    assert directory.rater.fx.factor("USD", "EUR", T1)[1] == "0.95"
    assert directory.rater.fx.factor("EUR", "USD", T1)[1] == "1/0.95"
