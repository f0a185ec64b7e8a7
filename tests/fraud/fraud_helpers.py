"""Shared builders for the fraud tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from fraud.engine import FraudData, FraudEngine
from fraud.listing import ListEntry, ListKind, Scope
from fraud.model import Decision
from fraud.rule import (
    Action,
    CallRateRule,
    ConcurrentRule,
    MatchRule,
    MinutesRule,
    NewCountryRule,
    Rules,
    ShortCallRule,
    SpendRule,
)
from fraud.settings import FraudSettings, ListSettings

T0 = 1_767_225_600.0
"""2026-01-01T00:00:00Z."""

ALERT = (Action.ALERT,)
REFUSE = (Action.REFUSE,)


def quiet_rules(**changes: object) -> Rules:
    """Every rule disabled except those given."""
    off: dict[str, object] = {
        "caller_is_callee": MatchRule(False),
        "peer_ip": MatchRule(False),
        "account_ip": MatchRule(False),
        "dnc": MatchRule(False),
        "deny_destination": MatchRule(False),
        "high_risk_destination": MatchRule(False),
        "calls_per_minute": CallRateRule(False),
        "concurrent_calls": ConcurrentRule(False),
        "spend_per_hour": SpendRule(False),
        "spend_per_day": SpendRule(False),
        "country_spend_per_hour": SpendRule(False),
        "country_minutes_per_hour": MinutesRule(False),
        "short_calls": ShortCallRule(False),
        "new_country": NewCountryRule(False),
    }
    off.update(changes)
    return Rules(**off)  # type: ignore[arg-type]


def all_rules(actions: tuple[Action, ...] = (Action.REFUSE, Action.ALERT)) -> Rules:
    """Every rule enabled with small thresholds and the given actions."""
    return Rules(
        caller_is_callee=MatchRule(True, actions),
        peer_ip=MatchRule(True, actions),
        account_ip=MatchRule(True, actions),
        dnc=MatchRule(True, actions),
        deny_destination=MatchRule(True, actions),
        high_risk_destination=MatchRule(True, actions),
        calls_per_minute=CallRateRule(True, 10, 60, actions),
        concurrent_calls=ConcurrentRule(True, 5, actions),
        spend_per_hour=SpendRule(True, Decimal(10), 3600, actions),
        spend_per_day=SpendRule(True, Decimal(50), 86_400, actions),
        country_spend_per_hour=SpendRule(True, Decimal(5), 3600, actions),
        country_minutes_per_hour=MinutesRule(True, 60, 3600, actions),
        short_calls=ShortCallRule(True, 6, 20, 300, actions),
        new_country=NewCountryRule(True, 1, actions),
    )


def entry(kind: ListKind, value: str, scope: Scope = Scope.GLOBAL, owner: str = "") -> ListEntry:
    return ListEntry(kind, scope, owner, value, "test")


def engine(
    rules: Rules | None = None,
    entries: Iterable[ListEntry] = (),
    overrides: Mapping[str, Mapping[str, Mapping[str, object]]] | None = None,
    **settings: object,
) -> FraudEngine:
    """An engine without the default high-risk list (tests give their own)."""
    base = FraudSettings(rules=rules or Rules(), lists=ListSettings(high_risk_prefixes=()))
    if settings:
        base = dataclasses.replace(base, **settings)  # type: ignore[arg-type]
    return FraudEngine.build(base, FraudData(tuple(entries), overrides or {}))


class RecordingActions:
    """FraudActions that remember what they were asked to do."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.alerts: list[Mapping[str, object]] = []
        self.fail = fail or set()

    def _record(self, *call: str) -> None:
        if call[0] in self.fail:
            raise RuntimeError(f"{call[0]} failed")
        self.calls.append(call)

    async def block_destination(self, account_id: str, prefix: str, reason: str) -> None:
        self._record("block_destination", account_id, prefix)

    async def suspend_account(self, account_id: str, reason: str) -> None:
        self._record("suspend_account", account_id)

    async def terminate_sessions(self, account_id: str, reason: str) -> int:
        self._record("terminate_sessions", account_id)
        return 1

    async def alert(self, event: Mapping[str, object]) -> None:
        self._record("alert", str(event["account"]), str(event["rule"]))
        self.alerts.append(event)


class RecordingLog:
    """A DecisionLog in memory."""

    def __init__(self) -> None:
        self.entries: list[Decision] = []

    async def write(self, decisions: Sequence[Decision]) -> None:
        self.entries.extend(decisions)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
