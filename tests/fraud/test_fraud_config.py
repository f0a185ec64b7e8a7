"""The fraud section of the configuration: typed, validated, every key documented."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraud.rule import Action
from fraud.settings import DEFAULT_HIGH_RISK, FraudSettings
from ocsd.config import Config, parse_config
from ocsd.typed_yaml import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "ocsd.example.yaml"


def _undocumented(settings: Any, section: dict[str, Any], path: str) -> list[str]:
    missing: list[str] = []
    for f in dataclasses.fields(settings):
        key = f"{path}.{f.name}"
        if f.name not in section:
            missing.append(key)
            continue
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            missing.extend(_undocumented(value, section[f.name] or {}, key))
    return missing


def test_the_example_documents_every_key_with_its_default() -> None:
    text = EXAMPLE.read_text()
    raw = yaml.safe_load(text)
    assert _undocumented(FraudSettings(), raw["fraud"], "fraud") == []
    config = parse_config(text, str(EXAMPLE))
    assert config.fraud == FraudSettings()
    assert config == Config()
    assert config.fraud.lists.high_risk_prefixes == DEFAULT_HIGH_RISK


def test_rules_and_lists_from_yaml() -> None:
    config = parse_config(
        "fraud:\n"
        "  rules:\n"
        "    calls_per_minute: {max_calls: 5, actions: [refuse, suspend_account]}\n"
        "    spend_per_hour: {max_spend: '12.5'}\n"
        "  lists:\n"
        "    deny_prefixes: ['+4470', '*']\n"
        "    peer_networks: {sbc1: ['192.0.2.0/24']}\n"
    )
    rules = config.fraud.rules
    assert rules.calls_per_minute.max_calls == 5
    assert rules.calls_per_minute.window_s == 60
    assert rules.calls_per_minute.actions == (Action.REFUSE, Action.SUSPEND_ACCOUNT)
    assert rules.spend_per_hour.max_spend_micros == 12_500_000
    assert config.fraud.lists.peer_networks["sbc1"] == ("192.0.2.0/24",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "fraud:\n  rules:\n    calls_per_minit: {}\n",
            "3: fraud.rules.calls_per_minit: unknown key (did you mean 'calls_per_minute'?)",
            id="unknown-rule",
        ),
        pytest.param(
            "fraud:\n  rules:\n    dnc: {actions: [explode]}\n",
            "fraud.rules.dnc.actions[0]: 'explode' is not one of",
            id="unknown-action",
        ),
        pytest.param(
            "fraud:\n  rules:\n    dnc: {actions: []}\n",
            "actions must name at least one action",
            id="no-action",
        ),
        pytest.param(
            "fraud:\n  rules:\n    spend_per_day: {max_spend: '1.0000001'}\n",
            "max_spend must be a non-negative amount with at most 6 decimals",
            id="money",
        ),
        pytest.param(
            "fraud:\n  lists:\n    deny_prefixes: ['44x']\n",
            "deny_prefixes: '44x' is not a prefix",
            id="bad-prefix",
        ),
        pytest.param(
            "fraud:\n  lists:\n    peer_networks: {sbc1: ['10.0.0.300']}\n",
            "peer_networks.sbc1: '10.0.0.300' is not an IP address",
            id="bad-cidr",
        ),
        pytest.param(
            "fraud:\n  webhook: {url: 'ftp://x'}\n",
            "url must start with http:// or https://",
            id="webhook-url",
        ),
        pytest.param(
            "fraud:\n  actions: {counter_failure: ignore}\n",
            "'ignore' is not one of 'static_only', 'refuse'",
            id="counter-failure",
        ),
    ],
)
def test_bad_fraud_settings_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        parse_config(text, "f.yaml")
    assert message in str(caught.value)


def test_the_embedded_file_defaults_to_the_data_directory(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path))
    assert config.embedded_fraud_path == tmp_path / "fraud.sqlite3"
