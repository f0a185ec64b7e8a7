"""Fraud test fixtures: a real Redis with a key prefix of the test's own, cleaned afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("OCSD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key of a test's prefix (never anything else)."""
    keys = list(client.scan_iter(match=f"{{{prefix}:*", count=1000))
    return int(client.delete(*keys)) if keys else 0


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """A Redis URL and a key prefix no other test uses; its keys are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        client.close()
        message = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("OCSD_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    prefix = f"t{uuid.uuid4().hex[:12]}"
    try:
        yield REDIS_URL, prefix
    finally:
        delete_prefix(client, prefix)
        client.close()
