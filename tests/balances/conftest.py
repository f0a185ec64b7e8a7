"""Fixtures: each contract test runs on every backend, on fresh data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from balances.store import BalanceStore
from tests.balances.backends import Backend, delete_redis_keys

BACKENDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("redis", id="redis", marks=pytest.mark.integration),
]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """One backend with fresh data, cleaned up afterwards."""
    if request.param == "embedded":
        found = Backend("embedded", path=tmp_path / "hot.sqlite3")
    else:
        url = request.getfixturevalue("redis_url")
        found = Backend("redis", redis_url=url, prefix=f"test-{uuid.uuid4().hex[:12]}")
    try:
        yield found
    finally:
        for store in found.opened:
            await store.close()
        if found.name == "redis":
            delete_redis_keys(found.redis_url, found.prefix)


@pytest.fixture
def store(backend: Backend) -> BalanceStore:
    """A store on fresh data."""
    return backend.open()
