"""Rule settings: validation, overrides from JSON and from the command line."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fraud.rule import (
    Action,
    CallRateRule,
    MatchRule,
    RuleError,
    Rules,
    SpendRule,
    override_rule,
    rule_settings,
)


@pytest.mark.parametrize(
    ("rule", "changes", "expected"),
    [
        pytest.param(CallRateRule(), {"max_calls": "5"}, CallRateRule(max_calls=5), id="int-text"),
        pytest.param(CallRateRule(), {"max_calls": 5}, CallRateRule(max_calls=5), id="int-json"),
        pytest.param(CallRateRule(), {"enabled": "off"}, CallRateRule(False), id="bool-text"),
        pytest.param(
            SpendRule(), {"max_spend": "12.50"}, SpendRule(max_spend=Decimal("12.50")), id="money"
        ),
        pytest.param(
            MatchRule(),
            {"actions": "refuse, suspend_account"},
            MatchRule(True, (Action.REFUSE, Action.SUSPEND_ACCOUNT)),
            id="actions-text",
        ),
        pytest.param(
            MatchRule(), {"actions": ["alert"]}, MatchRule(True, (Action.ALERT,)), id="actions-json"
        ),
    ],
)
def test_override(rule: object, changes: dict[str, object], expected: object) -> None:
    assert override_rule("r", rule, changes) == expected


@pytest.mark.parametrize(
    ("rule", "changes", "message"),
    [
        pytest.param(CallRateRule(), {"max_cals": 1}, "r.max_cals: unknown setting", id="typo"),
        pytest.param(CallRateRule(), {"max_calls": "x"}, "expected a whole number", id="int"),
        pytest.param(CallRateRule(), {"enabled": "maybe"}, "expected true or false", id="bool"),
        pytest.param(CallRateRule(), {"window_s": 0}, "window_s must be between", id="window"),
        pytest.param(SpendRule(), {"max_spend": "0.0000001"}, "at most 6 decimals", id="money"),
        pytest.param(MatchRule(), {"actions": "explode"}, "actions must be among", id="action"),
        pytest.param(MatchRule(), {"actions": ""}, "at least one action", id="no-action"),
        pytest.param(
            MatchRule(), {"actions": "alert,alert"}, "must not repeat", id="repeated-action"
        ),
    ],
)
def test_bad_override(rule: object, changes: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        override_rule("r", rule, changes)


def test_rule_lookup_and_settings() -> None:
    rules = Rules()
    assert rules.get("spend_per_day").window_s == 86_400
    with pytest.raises(RuleError, match="no rule 'nope'"):
        rules.get("nope")
    assert rule_settings(rules.spend_per_hour) == {
        "enabled": True,
        "max_spend": "100",
        "window_s": 3600,
        "actions": ["alert"],
    }
