"""Fixtures of the daemon tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ocsd.live_daemon import delete_redis_keys, redis_prefix


@pytest.fixture(params=["embedded", "redis"])
def hot(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(stores.hot_url, redis_key_prefix) of a live daemon: balances, sessions and fraud
    counters on the embedded store, then on the real Redis under a prefix of its own."""
    if request.param == "embedded":
        yield "embedded", ""
        return
    url = request.getfixturevalue("redis_available")
    prefix = redis_prefix()
    try:
        yield url, prefix
    finally:
        delete_redis_keys(prefix, url)
