"""Shared test settings: integration tests may skip locally, never in CI.

With ``OCSD_REQUIRE_SERVICES=1`` (set by ``.ci/run``) an integration test that skips — for
lack of Redis, PostgreSQL or a peer program — fails the run.

Services are found through environment variables with local defaults:
``OCSD_TEST_REDIS_URL`` (``redis://127.0.0.1:6379/0``). Tests share those servers with other
work: they use their own key prefixes and delete only their own keys, never FLUSHDB.

Records-database fixtures: every test gets its own SQLite file or PostgreSQL database.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest

REQUIRE_SERVICES = os.environ.get("OCSD_REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("OCSD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and item.get_closest_marker("integration"):
        report.outcome = "failed"
        report.longrepr = (
            f"integration test skipped while OCSD_REQUIRE_SERVICES=1: {report.longrepr}"
        )


def reachable(url: str, default_port: int, timeout_s: float = 0.5) -> str | None:
    """None if a TCP connection to the URL's host and port succeeds, else why it did not."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"{host}:{port} not reachable: {exc}"


def require_service(url: str, default_port: int) -> str:
    """Return the URL, or skip the test (a failure with OCSD_REQUIRE_SERVICES=1)."""
    problem = reachable(url, default_port)
    if problem is not None:
        pytest.skip(problem)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a Redis the tests may use (with their own key prefixes)."""
    url = require_service(REDIS_URL, 6379)
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {url} does not answer PING: {exc}")
    finally:
        client.close()
    return url


@pytest.fixture
def redis_available(redis_url: str) -> str:
    """Skip (fail in CI) unless Redis answers."""
    return redis_url


PG_ADMIN_URL = os.environ.get("OCSD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_or_skip() -> None:
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
        if os.environ.get("OCSD_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    _pg_or_skip()
    name = f"ocsd_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
    ]
)
def records_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """The same test against SQLite and against the real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/records.sqlite3"
    else:
        yield request.getfixturevalue("pg_url")
