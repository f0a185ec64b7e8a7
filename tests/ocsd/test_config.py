"""Cross-section checks of the configuration and what the stores are built with."""

from __future__ import annotations

from pathlib import Path

import pytest

from balances.embedded_store import EmbeddedBalanceStore
from ocsd.config import parse_config
from ocsd.stores import open_balance_store
from ocsd.typed_yaml import ConfigError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "stores: {max_record_queue: 1000}\n",
            "stores.max_record_queue (1000) must be above cdr_writer.queue_alarm_depth",
            id="bound-below-the-default-alarm",
        ),
        pytest.param(
            "stores: {max_record_queue: 500}\ncdr_writer: {queue_alarm_depth: 500}\n",
            "stores.max_record_queue (500) must be above cdr_writer.queue_alarm_depth (500)",
            id="bound-at-the-alarm",
        ),
        pytest.param("stores: {max_record_queue: -1}\n", "max_record_queue", id="negative"),
    ],
)
def test_the_record_queue_bound_is_above_the_alarm(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(text)


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        pytest.param("", 5_000_000, id="default"),
        pytest.param("stores: {max_record_queue: 0}\n", 0, id="unbounded"),
        pytest.param(
            "stores: {max_record_queue: 2000}\ncdr_writer: {queue_alarm_depth: 1000}\n",
            2000,
            id="small",
        ),
    ],
)
async def test_the_store_is_built_with_the_bound(text: str, bound: int, tmp_path: Path) -> None:
    config = parse_config(f"data_dir: {tmp_path}\n{text}")
    assert config.stores.max_record_queue == bound
    assert bound > config.cdr_writer.queue_alarm_depth or bound == 0
    store = open_balance_store(config)
    try:
        assert isinstance(store, EmbeddedBalanceStore)
        assert store.settings.max_record_queue == bound
    finally:
        await store.close()
