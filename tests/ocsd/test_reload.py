"""What a SIGHUP puts in force and what waits for a restart."""

from __future__ import annotations

import pytest

from ocsd.config import parse_config
from ocsd.reload import needs_restart, plan_reload

BASE = """
workers: 2
charging: {max_grant_s: 3600}
radius:
  auth_port: 11812
  clients:
    - {address: 127.0.0.1, secret: one}
fraud:
  rules:
    calls_per_minute: {max_calls: 10}
"""


def test_unchanged_file_changes_nothing() -> None:
    plan = plan_reload(parse_config(BASE), parse_config(BASE))
    assert plan.applied == () and plan.restart == ()


def test_call_handling_settings_apply_and_bound_resources_wait() -> None:
    old = parse_config(BASE)
    new = parse_config(
        BASE.replace("max_grant_s: 3600", "max_grant_s: 1200")
        .replace("secret: one", "secret: two")
        .replace("auth_port: 11812", "auth_port: 21812")
        .replace("workers: 2", "workers: 4")
        .replace("max_calls: 10", "max_calls: 3")
    )
    plan = plan_reload(old, new)
    assert plan.applied == (
        "charging.max_grant_s",
        "radius.clients",
        "fraud.rules.calls_per_minute.max_calls",
    )
    assert plan.restart == ("workers", "radius.auth_port")
    assert plan.touches("fraud") and not plan.touches("lcr")
    effective = plan.config
    assert effective.charging.max_grant_s == 1200
    assert effective.radius.clients[0].secret == "two"
    assert effective.fraud.rules.calls_per_minute.max_calls == 3
    # What needs a restart keeps the value the daemon runs with.
    assert effective.workers == 2
    assert effective.radius.auth_port == 11812


@pytest.mark.parametrize(
    ("path", "restart"),
    [
        ("stores.redis_url", True),
        ("stores", True),
        ("diameter.port", True),
        ("diameter.peers", False),
        ("radius.clients", False),
        ("radius.auth_port", True),
        ("lcr.min_margin_micros", False),
        ("lcr.enabled", True),
        ("fraud.lists.deny", False),
        ("fraud.counters.url", True),
        ("logging.level", True),
    ],
)
def test_which_settings_wait_for_a_restart(path: str, restart: bool) -> None:
    assert needs_restart(path) is restart
