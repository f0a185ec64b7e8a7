"""The daemon's configuration: one YAML file composed from the settings of each component.

Where the file is looked for: ``--config FILE``, else ``$OCSD_CONFIG``, else
``/etc/ocsd/ocsd.yaml`` if it exists, else the built-in defaults (the embedded default: SQLite
files under the data directory, no Redis or PostgreSQL needed).

The data directory: ``data_dir`` in the file, else ``$OCSD_DATA_DIR``, else systemd's
``$STATE_DIRECTORY``, else ``$XDG_DATA_HOME/ocsd`` (``~/.local/share/ocsd``).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from balances.settings import DEFAULT_MAX_RECORD_QUEUE
from cdr_writer.settings import CdrWriterSettings
from fraud.settings import FraudSettings
from lcr.settings import LcrSettings
from ocsd.charging import ChargingSettings
from ocsd.diameter_server import DiameterSettings
from ocsd.http_server import HttpSettings
from ocsd.radius_server import RadiusSettings
from ocsd.typed_yaml import ConfigError, load_typed, load_typed_file
from rating.dialplan import DialPlanSettings

DEFAULT_CONFIG_PATH = Path("/etc/ocsd/ocsd.yaml")


def default_data_dir() -> Path:
    """The data directory when the configuration does not name one."""
    for variable in ("OCSD_DATA_DIR", "STATE_DIRECTORY"):
        value = os.environ.get(variable)
        if value:
            return Path(value.split(":")[0])
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "ocsd"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where state lives."""

    records_url: str = ""
    """Master data, CDRs and ledger: ``postgresql://...`` or ``sqlite:///path``; empty means
    ``<data_dir>/ocsd.sqlite3``."""
    hot_url: str = "embedded"
    """Balances, sessions and counters: ``redis://host:port/db`` or ``embedded`` (SQLite file
    ``<data_dir>/hot.sqlite3``)."""
    redis_key_prefix: str = "ocsd"
    redis_shards: int = 256
    redis_timeout_ms: int = 500
    redis_pool_size: int = 16
    redis_closed_slices: int = 16
    """Hashes per shard and hour for closed-session markers (see ``RedisStoreSettings``)."""
    max_record_queue: int = DEFAULT_MAX_RECORD_QUEUE
    """Records the queue may hold before new calls and one-off debits are refused (Diameter
    3004, RADIUS no answer) while calls up go on and queue their CDRs; 0: no bound. On Redis
    each shard's stream is bounded by its share. Keep it above ``cdr_writer.queue_alarm_depth``."""

    def __post_init__(self) -> None:
        if self.records_url and not self.records_url.startswith(
            ("sqlite:", "postgresql://", "postgres://")
        ):
            raise ValueError("records_url must start with sqlite:, postgresql:// or postgres://")
        if self.hot_url != "embedded" and not self.hot_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("hot_url must be 'embedded' or a redis:// URL")
        if not 1 <= self.redis_shards <= 16384:
            raise ValueError("redis_shards must be between 1 and 16384")
        if self.redis_timeout_ms <= 0 or self.redis_pool_size <= 0:
            raise ValueError("redis_timeout_ms and redis_pool_size must be positive")
        if not 1 <= self.redis_closed_slices <= 4096:
            raise ValueError("redis_closed_slices must be between 1 and 4096")
        if self.max_record_queue < 0:
            raise ValueError("max_record_queue must be 0 (no bound) or positive")


@dataclass(frozen=True, slots=True)
class RatingSettings:
    """How numbers are normalised before identification and rating."""

    dial_plan: DialPlanSettings = field(default_factory=DialPlanSettings)


@dataclass(frozen=True, slots=True)
class LogSettings:
    """Logging: JSON lines for production, readable text on a terminal."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    """``auto``: console on a terminal, JSON otherwise."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``ocsd`` reads from its configuration file."""

    node_id: str = ""
    """Names this node in CDRs, logs and Diameter Origin-State; defaults to the host name."""
    data_dir: str = ""
    workers: int = 0
    """Worker processes sharing the listening ports; 0: one per core with a Redis hot store,
    one with the embedded one."""
    worker_stall_s: float = 30.0
    """A worker whose event loop has not turned for this long is killed and started again."""
    master_poll_s: float = 2.0
    """How often the daemon looks for changed master data (accounts, identities, decks)."""
    stores: StoreSettings = field(default_factory=StoreSettings)
    rating: RatingSettings = field(default_factory=RatingSettings)
    cdr_writer: CdrWriterSettings = field(default_factory=CdrWriterSettings)
    charging: ChargingSettings = field(default_factory=ChargingSettings)
    diameter: DiameterSettings = field(default_factory=DiameterSettings)
    radius: RadiusSettings = field(default_factory=RadiusSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    lcr: LcrSettings = field(default_factory=LcrSettings)
    fraud: FraudSettings = field(default_factory=FraudSettings)
    logging: LogSettings = field(default_factory=LogSettings)

    @property
    def node(self) -> str:
        """The node id, or the host name."""
        return self.node_id or platform.node()

    @property
    def data_path(self) -> Path:
        """The data directory in use."""
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    @property
    def records_url(self) -> str:
        """The records database URL in use."""
        return self.stores.records_url or f"sqlite:///{self.data_path / 'ocsd.sqlite3'}"

    @property
    def embedded_hot_path(self) -> Path:
        """The SQLite file of the embedded hot store."""
        return self.data_path / "hot.sqlite3"

    @property
    def embedded_fraud_path(self) -> Path:
        """The SQLite file of the embedded fraud counters."""
        configured = self.fraud.counters.embedded_file
        return Path(configured) if configured else self.data_path / "fraud.sqlite3"


def check(config: Config) -> list[str]:
    """Cross-section checks; returns messages naming the keys (empty when all is well)."""
    problems: list[str] = []
    if config.worker_stall_s <= 0:
        problems.append("worker_stall_s must be positive")
    if config.workers < 0:
        problems.append("workers must be 0 (one per core) or more")
    if config.master_poll_s <= 0:
        problems.append("master_poll_s must be positive")
    bound, alarm = config.stores.max_record_queue, config.cdr_writer.queue_alarm_depth
    if bound and bound <= alarm:
        problems.append(
            f"stores.max_record_queue ({bound}) must be above cdr_writer.queue_alarm_depth "
            f"({alarm}): the alarm must sound before new calls are refused"
        )
    ports: dict[tuple[str, int], str] = {}
    listeners = []
    if config.radius.enabled:
        listeners += [
            ("radius.auth_port", config.radius.listen, config.radius.auth_port),
            ("radius.acct_port", config.radius.listen, config.radius.acct_port),
        ]
    if config.http.enabled:
        listeners.append(("http.port", config.http.listen, config.http.port))
    if config.diameter.enabled:
        listeners.append(("diameter.port", config.diameter.listen, config.diameter.port))
    for key, host, port in listeners:
        if not port:
            continue
        other = ports.get((host, port))
        if other is not None:
            problems.append(f"{key} {port} is also {other}")
        ports[(host, port)] = key
    if config.radius.enabled:
        for index, client in enumerate(config.radius.clients):
            if client.secret == "testing123" and config.radius.listen not in (
                "127.0.0.1",
                "::1",
                "localhost",
            ):
                problems.append(
                    f"radius.clients[{index}].secret is the well-known default while "
                    f"radius.listen is {config.radius.listen}: set a real secret"
                )
    return problems


def find_config_path(explicit: str | None) -> Path | None:
    """The configuration file to read, or None for the built-in defaults."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("OCSD_CONFIG")
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load_config(explicit: str | None = None) -> tuple[Config, Path | None]:
    """Load, validate and cross-check the configuration; raise ``ConfigError``."""
    path = find_config_path(explicit)
    config = Config() if path is None else load_typed_file(Config, path)
    problems = check(config)
    if problems:
        where = str(path) if path else "<defaults>"
        raise ConfigError("\n".join(f"{where}: {p}" for p in problems))
    return config, path


def parse_config(text: str, filename: str = "<config>") -> Config:
    """Parse configuration text (tests, check-config)."""
    config = load_typed(Config, text, filename)
    problems = check(config)
    if problems:
        raise ConfigError("\n".join(f"{filename}: {p}" for p in problems))
    return config
