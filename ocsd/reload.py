"""What a SIGHUP changes in a running daemon, and what waits for a restart.

On SIGHUP each worker reads its configuration file again and compares it with the one in
force, setting by setting. Settings that describe how calls are handled (charging limits,
RADIUS clients and their secrets, Diameter peers and timers, rating's dial plan, routing
margins and plans, fraud rules and lists) take effect at once for new requests; calls in
progress keep the state they started with. Settings bound to resources opened at start
(listening sockets, stores, worker count, log format, the fraud counter store, ...) keep
their old value until a restart and are named in the log. A file that does not parse or
validate changes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ocsd.config import Config, parse_config

RESTART_ONLY: tuple[str, ...] = (
    "node_id",
    "data_dir",
    "workers",
    "worker_stall_s",
    "stores",
    "cdr_writer",
    "http",
    "logging",
    "radius.listen",
    "radius.auth_port",
    "radius.acct_port",
    "radius.dictionaries",
    "diameter.listen",
    "diameter.port",
    "diameter.origin_host",
    "diameter.origin_realm",
    "diameter.host_ip_addresses",
    "diameter.vendor_id",
    "diameter.product_name",
    "lcr.enabled",
    "lcr.portability_mode",
    "lcr.quality",
    "lcr.capacity",
    "lcr.delivery",
    "fraud.enabled",
    "fraud.counters",
    "fraud.actions",
    "fraud.webhook",
)
"""Settings (and every setting below them) that only a restart changes."""

T = TypeVar("T")


def needs_restart(path: str) -> bool:
    """Whether the setting at this dotted path waits for a restart."""
    return any(path == p or path.startswith(p + ".") for p in RESTART_ONLY)


def changed_settings(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the settings that differ, descending into nested sections."""
    paths: list[str] = []
    for item in dataclasses.fields(old):
        before, after = getattr(old, item.name), getattr(new, item.name)
        path = prefix + item.name
        if (
            dataclasses.is_dataclass(before)
            and not isinstance(before, type)
            and type(before) is type(after)
        ):
            paths.extend(changed_settings(before, after, path + "."))
        elif before != after:
            paths.append(path)
    return paths


def _with_value(target: T, parts: list[str], value: Any) -> T:
    if not parts:
        return value  # type: ignore[no-any-return]
    head, rest = parts[0], parts[1:]
    inner = _with_value(getattr(target, head), rest, value)
    return dataclasses.replace(target, **{head: inner})  # type: ignore[type-var]


def _value_at(source: Any, parts: list[str]) -> Any:
    for part in parts:
        source = getattr(source, part)
    return source


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The configuration to run with after a SIGHUP, and what changed."""

    config: Config
    """The new file's settings, except those that wait for a restart (their old values)."""
    applied: tuple[str, ...]
    """Settings in force from now on."""
    restart: tuple[str, ...]
    """Settings changed in the file that keep their old value until a restart."""

    def touches(self, section: str) -> bool:
        """Whether an applied setting lies in this section."""
        return any(p == section or p.startswith(section + ".") for p in self.applied)


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Merge a newly read configuration into the one in force.

    Raises ``ValueError`` if the merge of the new settings with the kept old ones is not a
    valid configuration (a setting that needs a restart constrains one that does not).
    """
    changed = changed_settings(old, new)
    restart = tuple(p for p in changed if needs_restart(p))
    effective = new
    for path in restart:
        parts = path.split(".")
        effective = _with_value(effective, parts, _value_at(old, parts))
    return ReloadPlan(effective, tuple(p for p in changed if not needs_restart(p)), restart)


def read_config(path: Path) -> Config:
    """Read and validate a configuration file; raises ``ConfigError`` or ``OSError``."""
    return parse_config(path.read_text(encoding="utf-8"), str(path))
