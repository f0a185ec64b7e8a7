"""The ``fraud:`` section of the configuration: rules, global lists, counters, actions, webhook.

Per-account lists and rule overrides live in the records database (``ocsd fraud ...``); this
section holds what applies to everyone. Both are reloaded without a restart: the daemon builds
a new ``FraudEngine`` and swaps it in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from fraud.listing import ListError, ListKind, normalize_value
from fraud.rule import Rules

DEFAULT_HIGH_RISK: tuple[str, ...] = (
    # Non-geographic E.164 codes, the usual International Revenue Share Fraud targets.
    "870",  # Inmarsat
    "878",  # Universal Personal Telecommunication
    "881",  # Global Mobile Satellite System
    "882",  # International Networks
    "883",  # International Networks
    "979",  # International Premium Rate Service
    "808",  # International Shared Cost Service
    "991",  # International Telecommunications Public Correspondence Service trial
    # National premium-rate and personal-number ranges often used for revenue share.
    "1900",  # NANP premium rate
    "449",  # UK 09 premium rate
    "4470",  # UK 070 personal numbers
    "3389",  # France 089 premium rate
    "3290",  # Belgium 090x premium rate
    "31900",  # Netherlands 0900 premium rate
    "31906",  # Netherlands 0906 premium rate
    "31909",  # Netherlands 0909 premium rate
    "34803",  # Spain 803 premium rate
    "34806",  # Spain 806 premium rate
    "34807",  # Spain 807 premium rate
    "39899",  # Italy 899 premium rate
    "41900",  # Switzerland 0900 premium rate
    "43900",  # Austria 0900 premium rate
    "49900",  # Germany 0900 premium rate
)


def _normalized(kind: ListKind, values: tuple[str, ...], key: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        try:
            out.append(normalize_value(kind, value))
        except ListError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ListSettings:
    """Lists that apply to every account (the database adds global and per-account ones)."""

    deny_prefixes: tuple[str, ...] = ()
    allow_prefixes: tuple[str, ...] = ()
    dnc_numbers: tuple[str, ...] = ()
    high_risk_prefixes: tuple[str, ...] = DEFAULT_HIGH_RISK
    high_risk_files: tuple[str, ...] = ()
    """Files of more high-risk prefixes (``prefix[,label]`` per line, ``#`` comments), e.g.
    an IRSF range list from a vendor; read again on every reload."""
    peer_networks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Peer (Diameter Origin-Host or RADIUS client name) -> the CIDRs its requests may come
    from."""

    def __post_init__(self) -> None:
        _normalized(ListKind.DENY, self.deny_prefixes, "deny_prefixes")
        _normalized(ListKind.ALLOW, self.allow_prefixes, "allow_prefixes")
        _normalized(ListKind.DNC, self.dnc_numbers, "dnc_numbers")
        _normalized(ListKind.HIGH_RISK, self.high_risk_prefixes, "high_risk_prefixes")
        for peer, networks in self.peer_networks.items():
            _normalized(ListKind.IP, networks, f"peer_networks.{peer}")


@dataclass(frozen=True, slots=True)
class CounterSettings:
    """The counters in the hot store (Redis, or the embedded store)."""

    window_buckets: int = 12
    """Buckets per sliding window: a 60 s window slides in 5 s steps."""
    live_ttl_s: int = 14_400
    """A live call not reported for this long stops counting as concurrent."""
    countries_ttl_days: int = 400
    """How long the set of countries an account has called is kept after its last call."""
    embedded_file: str = ""
    """Where the embedded store keeps its counters; empty: ``<data_dir>/fraud.sqlite3``."""
    embedded_flush_interval_s: float = 10.0
    """How often the embedded store writes its counters to its file."""

    def __post_init__(self) -> None:
        if not 1 <= self.window_buckets <= 120:
            raise ValueError("window_buckets must be between 1 and 120")
        if self.live_ttl_s <= 0 or self.countries_ttl_days <= 0:
            raise ValueError("live_ttl_s and countries_ttl_days must be positive")
        if self.embedded_flush_interval_s <= 0:
            raise ValueError("embedded_flush_interval_s must be positive")


@dataclass(frozen=True, slots=True)
class ActionSettings:
    """How tripped rules are acted upon."""

    cooldown_s: int = 300
    """The same action for the same account and target is not repeated within this time
    (alerts: the same rule); the decision is still audited."""
    queue_size: int = 10_000
    """Decisions waiting for their actions and audit entries; beyond it they are dropped and
    counted."""
    block_prefix_digits: int = 0
    """What ``block_destination`` blocks when the number is in no high-risk range: its first
    N digits; 0: the whole number."""
    counter_failure: Literal["static_only", "refuse"] = "static_only"
    """When the counter store does not answer: check the lists only, or refuse the call."""

    def __post_init__(self) -> None:
        if self.cooldown_s < 0 or self.queue_size <= 0 or self.block_prefix_digits < 0:
            raise ValueError("cooldown_s, block_prefix_digits >= 0 and queue_size > 0")


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Alerts POSTed as JSON to an HTTP endpoint, off the call's path."""

    url: str = ""
    """Empty: alerts go to the log only."""
    queue_size: int = 1000
    """Alerts waiting to be sent; beyond it they are dropped and counted."""
    timeout_s: float = 5.0
    max_attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    secret: str = ""
    """When set, each request carries ``X-Ocsd-Signature: sha256=<HMAC of the body>``."""
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if self.queue_size <= 0 or self.max_attempts <= 0:
            raise ValueError("queue_size and max_attempts must be positive")
        if self.timeout_s <= 0 or self.backoff_initial_s < 0:
            raise ValueError("timeout_s must be positive and backoff_initial_s not negative")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")


@dataclass(frozen=True, slots=True)
class FraudSettings:
    """Fraud controls in the authorization path."""

    enabled: bool = True
    rules: Rules = field(default_factory=Rules)
    lists: ListSettings = field(default_factory=ListSettings)
    counters: CounterSettings = field(default_factory=CounterSettings)
    actions: ActionSettings = field(default_factory=ActionSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)


__all__ = [
    "DEFAULT_HIGH_RISK",
    "ActionSettings",
    "CounterSettings",
    "FraudSettings",
    "ListSettings",
    "WebhookSettings",
]
