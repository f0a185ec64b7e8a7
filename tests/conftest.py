"""Shared test settings: integration tests may skip locally, never in CI.

With ``OCSD_REQUIRE_SERVICES=1`` (set by ``.ci/run``) an integration test that skips — for
lack of Redis, PostgreSQL or a peer program — fails the run.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_SERVICES = os.environ.get("OCSD_REQUIRE_SERVICES") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and item.get_closest_marker("integration"):
        report.outcome = "failed"
        report.longrepr = (
            f"integration test skipped while OCSD_REQUIRE_SERVICES=1: {report.longrepr}"
        )
