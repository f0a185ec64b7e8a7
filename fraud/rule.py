"""Fraud rules: one frozen dataclass per rule type, its thresholds and the actions it takes.

The rule set is fixed by name (``Rules``' fields are the rule ids the audit log, the metrics
and the CLI use); what varies is whether each rule is enabled, its thresholds and its actions.
They come from the ``fraud.rules`` section of the YAML configuration, then from overrides in
the records database (global first, then per account), applied by ``apply_overrides``.

Thresholds say when a rule *trips*:

- ``calls_per_minute``: this attempt would be more than ``max_calls`` in ``window_s`` (an
  attempt refused by a list is decided before the counters and is not counted);
- ``concurrent_calls``: this call would make more than ``max_calls`` live at once;
- ``spend_*`` and ``country_spend_per_hour``: ``max_spend`` (account currency, major units)
  has been reached in the window (at an attempt) or a call's usage reaches it;
- ``country_minutes_per_hour``: ``max_minutes`` to the destination's country reached;
- ``short_calls``: ``max_calls`` calls shorter than ``shorter_than_s`` within ``window_s``;
- ``new_country``: the destination's country was never called (once the account has called at
  least ``min_known_countries`` countries, so that a new account does not trip on every call);
- the list rules and ``caller_is_callee``: on a match.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

MICROS = 1_000_000
MAX_WINDOW_S = 31 * 86_400


class Action(enum.Enum):
    """What a tripped rule does."""

    ALERT = "alert"
    """Log it and send it to the webhook."""
    REFUSE = "refuse"
    """Refuse this call (at authorization only; the verdict itself)."""
    BLOCK_DESTINATION = "block_destination"
    """Add the destination to the account's blocked list (persisted; undone by unblock)."""
    SUSPEND_ACCOUNT = "suspend_account"
    """Set the account's status to suspended."""
    TERMINATE_SESSIONS = "terminate_sessions"
    """Cut the account's live calls (Diameter ASR, RADIUS Disconnect-Request)."""


class Refusal(enum.Enum):
    """What a refusal tells the peer: a barred destination, or suspected fraud."""

    DESTINATION = "destination"
    FRAUD = "fraud"


class RuleError(ValueError):
    """A rule setting or override that cannot be used; the message names the rule and key."""


def _check_actions(actions: tuple[Action, ...]) -> None:
    if not actions:
        raise ValueError("actions must name at least one action")
    if len(set(actions)) != len(actions):
        raise ValueError("actions must not repeat")


def _check_window(window_s: int) -> None:
    if not 1 <= window_s <= MAX_WINDOW_S:
        raise ValueError(f"window_s must be between 1 and {MAX_WINDOW_S}")


def _check_money(value: Decimal, name: str) -> int:
    micros = value * MICROS
    if value < 0 or micros != micros.to_integral_value():
        raise ValueError(f"{name} must be a non-negative amount with at most 6 decimals")
    return int(micros)


@dataclass(frozen=True, slots=True)
class MatchRule:
    """A rule without threshold: it trips when its list (or condition) matches."""

    enabled: bool = True
    actions: tuple[Action, ...] = (Action.REFUSE,)

    def __post_init__(self) -> None:
        _check_actions(self.actions)


@dataclass(frozen=True, slots=True)
class CallRateRule:
    """Call attempts in a sliding window (PBX hacking, account takeover)."""

    enabled: bool = True
    max_calls: int = 60
    window_s: int = 60
    actions: tuple[Action, ...] = (Action.ALERT,)

    def __post_init__(self) -> None:
        _check_actions(self.actions)
        _check_window(self.window_s)
        if self.max_calls < 0:
            raise ValueError("max_calls must not be negative")


@dataclass(frozen=True, slots=True)
class ConcurrentRule:
    """Calls up at the same time."""

    enabled: bool = True
    max_calls: int = 100
    actions: tuple[Action, ...] = (Action.ALERT,)

    def __post_init__(self) -> None:
        _check_actions(self.actions)
        if self.max_calls < 0:
            raise ValueError("max_calls must not be negative")


@dataclass(frozen=True, slots=True)
class SpendRule:
    """Money spent in a sliding window (account currency, major units)."""

    enabled: bool = True
    max_spend: Decimal = Decimal(100)
    window_s: int = 3600
    actions: tuple[Action, ...] = (Action.ALERT,)

    def __post_init__(self) -> None:
        _check_actions(self.actions)
        _check_window(self.window_s)
        _check_money(self.max_spend, "max_spend")

    @property
    def max_spend_micros(self) -> int:
        """The limit in micro-units."""
        return int(self.max_spend * MICROS)


@dataclass(frozen=True, slots=True)
class MinutesRule:
    """Minutes used in a sliding window."""

    enabled: bool = True
    max_minutes: int = 600
    window_s: int = 3600
    actions: tuple[Action, ...] = (Action.ALERT,)

    def __post_init__(self) -> None:
        _check_actions(self.actions)
        _check_window(self.window_s)
        if self.max_minutes < 0:
            raise ValueError("max_minutes must not be negative")


@dataclass(frozen=True, slots=True)
class ShortCallRule:
    """Bursts of calls shorter than a few seconds (Wangiri, traffic pumping)."""

    enabled: bool = True
    shorter_than_s: int = 6
    """A call that lasted less than this (unanswered ones included) is short."""
    max_calls: int = 30
    window_s: int = 300
    actions: tuple[Action, ...] = (Action.ALERT,)

    def __post_init__(self) -> None:
        _check_actions(self.actions)
        _check_window(self.window_s)
        if self.shorter_than_s < 1 or self.max_calls < 1:
            raise ValueError("shorter_than_s and max_calls must be positive")


@dataclass(frozen=True, slots=True)
class NewCountryRule:
    """A call to a country the account has never called."""

    enabled: bool = True
    min_known_countries: int = 1
    """Trip only once the account has called at least this many countries."""
    actions: tuple[Action, ...] = (Action.ALERT,)

    def __post_init__(self) -> None:
        _check_actions(self.actions)
        if self.min_known_countries < 0:
            raise ValueError("min_known_countries must not be negative")


def _refuse_and_alert() -> tuple[Action, ...]:
    return (Action.REFUSE, Action.ALERT)


@dataclass(frozen=True, slots=True)
class Rules:
    """Every rule, by id. The field order is the evaluation order."""

    caller_is_callee: MatchRule = field(default_factory=lambda: MatchRule(True, (Action.ALERT,)))
    peer_ip: MatchRule = field(default_factory=lambda: MatchRule(True, _refuse_and_alert()))
    account_ip: MatchRule = field(default_factory=lambda: MatchRule(True, _refuse_and_alert()))
    dnc: MatchRule = field(default_factory=MatchRule)
    deny_destination: MatchRule = field(default_factory=MatchRule)
    high_risk_destination: MatchRule = field(
        default_factory=lambda: MatchRule(True, _refuse_and_alert())
    )
    calls_per_minute: CallRateRule = field(default_factory=CallRateRule)
    concurrent_calls: ConcurrentRule = field(default_factory=ConcurrentRule)
    spend_per_hour: SpendRule = field(default_factory=SpendRule)
    spend_per_day: SpendRule = field(
        default_factory=lambda: SpendRule(True, Decimal(500), 86_400, (Action.ALERT,))
    )
    country_spend_per_hour: SpendRule = field(
        default_factory=lambda: SpendRule(True, Decimal(50), 3600, (Action.ALERT,))
    )
    country_minutes_per_hour: MinutesRule = field(default_factory=MinutesRule)
    short_calls: ShortCallRule = field(default_factory=ShortCallRule)
    new_country: NewCountryRule = field(default_factory=NewCountryRule)

    def get(self, rule_id: str) -> Any:
        """The rule called ``rule_id``; ``RuleError`` when there is none."""
        if rule_id not in RULE_IDS:
            raise RuleError(f"no rule {rule_id!r}; rules: {', '.join(RULE_IDS)}")
        return getattr(self, rule_id)


RULE_IDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Rules))

REFUSALS: dict[str, Refusal] = {
    "caller_is_callee": Refusal.FRAUD,
    "peer_ip": Refusal.FRAUD,
    "account_ip": Refusal.FRAUD,
    "dnc": Refusal.DESTINATION,
    "deny_destination": Refusal.DESTINATION,
    "high_risk_destination": Refusal.DESTINATION,
    "calls_per_minute": Refusal.FRAUD,
    "concurrent_calls": Refusal.FRAUD,
    "spend_per_hour": Refusal.FRAUD,
    "spend_per_day": Refusal.FRAUD,
    "country_spend_per_hour": Refusal.FRAUD,
    "country_minutes_per_hour": Refusal.FRAUD,
    "short_calls": Refusal.FRAUD,
    "new_country": Refusal.FRAUD,
}
"""How a refusal by each rule is reported to the peer."""


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce(tp: Any, value: object, where: str) -> object:
    """Convert a JSON or command-line value to a rule field's type, or raise ``RuleError``."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise RuleError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise RuleError(f"{where}: expected a whole number, got {value!r}")
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
            raise RuleError(f"{where}: expected an amount as text, got {value!r}")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise RuleError(f"{where}: expected an amount, got {value!r}") from None
        if not amount.is_finite():
            raise RuleError(f"{where}: expected a finite amount")
        return amount
    if typing.get_origin(tp) is tuple:
        items: list[object]
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise RuleError(f"{where}: expected a list of actions, got {value!r}")
        try:
            return tuple(Action(item) for item in items)
        except ValueError:
            allowed = ", ".join(a.value for a in Action)
            raise RuleError(f"{where}: actions must be among {allowed}") from None
    raise TypeError(f"unsupported rule field type {tp!r}")


def override_rule(rule_id: str, rule: Any, changes: Mapping[str, object]) -> Any:
    """Return ``rule`` with ``changes`` (field name -> JSON or text value) applied."""
    hints = typing.get_type_hints(type(rule))
    values: dict[str, object] = {}
    for key, raw in changes.items():
        if key not in hints:
            known = ", ".join(hints)
            raise RuleError(f"{rule_id}.{key}: unknown setting; settings: {known}")
        values[key] = coerce(hints[key], raw, f"{rule_id}.{key}")
    try:
        return dataclasses.replace(rule, **values)
    except (ValueError, TypeError) as exc:
        raise RuleError(f"{rule_id}: {exc}") from None


def apply_overrides(rules: Rules, overrides: Mapping[str, Mapping[str, object]]) -> Rules:
    """Return ``rules`` with per-rule overrides applied (rule id -> field -> value)."""
    if not overrides:
        return rules
    changed = {
        rule_id: override_rule(rule_id, rules.get(rule_id), changes)
        for rule_id, changes in overrides.items()
    }
    return dataclasses.replace(rules, **changed)


def rule_settings(rule: Any) -> dict[str, object]:
    """A rule's settings as JSON-friendly values (for display and the audit log)."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(rule):
        value = getattr(rule, f.name)
        if isinstance(value, Decimal):
            out[f.name] = str(value)
        elif isinstance(value, tuple):
            out[f.name] = [a.value for a in value]
        else:
            out[f.name] = value
    return out


__all__ = [
    "RULE_IDS",
    "Action",
    "CallRateRule",
    "ConcurrentRule",
    "MatchRule",
    "MinutesRule",
    "NewCountryRule",
    "Refusal",
    "RuleError",
    "Rules",
    "ShortCallRule",
    "SpendRule",
    "apply_overrides",
    "override_rule",
    "rule_settings",
]
