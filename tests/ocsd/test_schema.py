"""Migrations land by their set of versions: a lower number merged later is still applied."""

from __future__ import annotations

import pytest

from ocsd.schema import MIGRATIONS, Migration, SchemaError, pending, require_current, upgrade
from ocsd.sql_store import Database


def test_a_migration_numbered_below_one_applied_is_still_applied(
    records_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Database(records_url) as db:
        without_cdrs = tuple(m for m in MIGRATIONS if m.version != 2)
        monkeypatch.setattr("ocsd.schema.MIGRATIONS", without_cdrs)
        upgrade(db)
        monkeypatch.setattr("ocsd.schema.MIGRATIONS", MIGRATIONS)
        assert [m.version for m in pending(db)] == [2]
        with pytest.raises(SchemaError, match="needs migration 2"):
            require_current(db)
        assert [m.version for m in upgrade(db)] == [2]
        assert pending(db) == []
        require_current(db)
        assert db.query("SELECT COUNT(*) FROM cdrs") == [(0,)]


def test_migrations_are_listed_in_order_without_gaps_in_meaning() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(set(versions))
    assert all(isinstance(m, Migration) for m in MIGRATIONS)
