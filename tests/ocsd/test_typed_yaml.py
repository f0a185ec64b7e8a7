"""Configuration loading: typed, immutable, unknown keys refused, errors with file and line."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field
from decimal import Decimal
from typing import Literal

import pytest

from ocsd.typed_yaml import ConfigError, load_typed


@dataclass(frozen=True, slots=True)
class Peer:
    origin_host: str
    port: int = 3868


@dataclass(frozen=True, slots=True)
class Root:
    name: str = "x"
    ratio: Decimal = Decimal(1)
    enabled: bool = True
    mode: Literal["a", "b"] = "a"
    peers: tuple[Peer, ...] = field(default_factory=tuple)
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must not be negative")


def test_values_are_typed_and_frozen() -> None:
    root = load_typed(Root, "ratio: 0.10\npeers:\n  - origin_host: a\n    port: 1\nlimit: 5\n")
    assert root.ratio == Decimal("0.10")
    assert root.peers == (Peer("a", 1),)
    with pytest.raises(FrozenInstanceError):
        root.name = "y"  # type: ignore[misc]


def test_empty_document_gives_defaults() -> None:
    assert load_typed(Root, "", "f.yaml") == Root()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("nmae: x\n", "f.yaml:1: nmae: unknown key (did you mean 'name'?)", id="typo"),
        pytest.param("peers:\n  - port: 1\n", "f.yaml:2: peers[0].origin_host: required", id="req"),
        pytest.param(
            "peers:\n  - origin_host: a\n    port: x\n",
            "f.yaml:3: peers[0].port: expected a whole number",
            id="type",
        ),
        pytest.param("enabled: maybe\n", "f.yaml:1: enabled: expected true or false", id="bool"),
        pytest.param("mode: c\n", "f.yaml:1: mode: 'c' is not one of 'a', 'b'", id="literal"),
        pytest.param("limit: -1\n", "f.yaml:1: limit must not be negative", id="validate"),
        pytest.param("name: [1\n", "f.yaml:2: invalid YAML", id="syntax"),
        pytest.param("name: a\nname: b\n", "f.yaml:2: name: duplicate key", id="duplicate"),
        pytest.param("ratio: 1e\n", "f.yaml:1: ratio: expected a decimal number", id="decimal"),
    ],
)
def test_errors_name_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_typed(Root, text, "f.yaml")
    assert str(caught.value).startswith(message)


def _field_names(cls: type, seen: set[str]) -> None:
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        seen.add(f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            _field_names(tp, seen)
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg) and isinstance(arg, type):
                _field_names(arg, seen)


def test_the_example_configuration_documents_every_key_with_its_default() -> None:
    from pathlib import Path

    from ocsd.config import Config, parse_config

    path = Path(__file__).resolve().parents[2] / "config" / "ocsd.example.yaml"
    text = path.read_text()
    assert parse_config(text, str(path)) == Config()
    names: set[str] = set()
    _field_names(Config, names)
    missing = sorted(n for n in names if f"{n}:" not in text)
    assert missing == []
