"""YAML into frozen, typed dataclasses that reject unknown keys and name the line of every error.

The document is composed with ``yaml.SafeLoader`` (no arbitrary objects) and walked node by
node, so an error always carries the file, line and dotted key path of the offending value::

    ocsd.yaml:14: diameter.peers[0].origin_hots: unknown key (did you mean 'origin_host'?)

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``Decimal``, ``Enum`` subclasses
(by value), ``Literal[...]``, ``tuple[T, ...]``, ``dict[str, T]``, ``T | None`` and nested
dataclasses. A dataclass may validate itself in ``__post_init__`` by raising ``ValueError``; the
message is reported against the mapping that built it.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file, line and key."""


def _where(filename: str, node: yaml.Node | None, path: str) -> str:
    line = f":{node.start_mark.line + 1}" if node is not None else ""
    key = f" {path}:" if path else ""
    return f"{filename}{line}:{key}"


class _Walker:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self._constructor = yaml.SafeLoader("")

    def error(self, node: yaml.Node | None, path: str, message: str) -> ConfigError:
        return ConfigError(f"{_where(self.filename, node, path)} {message}")

    def scalar(self, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, path, "expected a single value, not a list or mapping")
        return self._constructor.construct_object(node, deep=True)

    def convert(self, node: yaml.Node, tp: Any, path: str) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if tp is Any:
            return self._constructor.construct_object(node, deep=True)
        if origin in (typing.Union, types.UnionType):
            non_none = [a for a in args if a is not type(None)]
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                if type(None) in args:
                    return None
                raise self.error(node, path, "a value is required")
            if len(non_none) == 1:
                return self.convert(node, non_none[0], path)
            for candidate in non_none:
                try:
                    return self.convert(node, candidate, path)
                except ConfigError:
                    continue
            raise self.error(node, path, "value does not match any allowed type")
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.dataclass(node, tp, path)
        if origin is tuple:
            if not isinstance(node, yaml.SequenceNode):
                raise self.error(node, path, "expected a list")
            item_type = args[0] if args else Any
            return tuple(
                self.convert(child, item_type, f"{path}[{i}]") for i, child in enumerate(node.value)
            )
        if origin in (dict, Mapping) or tp is dict:
            if not isinstance(node, yaml.MappingNode):
                raise self.error(node, path, "expected a mapping")
            value_type = args[1] if len(args) == 2 else Any
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(self.scalar(key_node, path))
                if key in out:
                    raise self.error(key_node, f"{path}.{key}", "duplicate key")
                out[key] = self.convert(value_node, value_type, f"{path}.{key}")
            return types.MappingProxyType(out)
        if origin is typing.Literal:
            value = self.scalar(node, path)
            if value not in args:
                allowed = ", ".join(repr(a) for a in args)
                raise self.error(node, path, f"{value!r} is not one of {allowed}")
            return value
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            value = self.scalar(node, path)
            try:
                return tp(value)
            except ValueError:
                allowed = ", ".join(repr(m.value) for m in tp)
                raise self.error(node, path, f"{value!r} is not one of {allowed}") from None
        if tp is bool:
            value = self.scalar(node, path)
            if not isinstance(value, bool):
                raise self.error(node, path, f"expected true or false, got {value!r}")
            return value
        if tp is int:
            value = self.scalar(node, path)
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(node, path, f"expected a whole number, got {value!r}")
            return value
        if tp is float:
            value = self.scalar(node, path)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(node, path, f"expected a number, got {value!r}")
            return float(value)
        if tp is Decimal:
            # Money and ratios: take the text as written, never through a float.
            if not isinstance(node, yaml.ScalarNode):
                raise self.error(node, path, "expected a number")
            try:
                value = Decimal(node.value)
            except InvalidOperation:
                message = f"expected a decimal number, got {node.value!r}"
                raise self.error(node, path, message) from None
            if not value.is_finite():
                raise self.error(node, path, "expected a finite number")
            return value
        if tp is str:
            value = self.scalar(node, path)
            if value is None or isinstance(value, list | dict):
                raise self.error(node, path, "expected a text value")
            if isinstance(value, bool):
                raise self.error(node, path, f"expected text, got {value!r} (quote it)")
            return str(value) if not isinstance(value, str) else value
        raise TypeError(f"unsupported configuration type {tp!r} at {path}")

    def dataclass(self, node: yaml.Node, cls: type[Any], path: str) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            node = yaml.MappingNode("tag:yaml.org,2002:map", [], node.start_mark, node.end_mark)
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, path, "expected a mapping")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        values: dict[str, Any] = {}
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(self.scalar(key_node, path))
            child = f"{path}.{key}" if path else key
            if key in seen:
                raise self.error(key_node, child, "duplicate key")
            seen.add(key)
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(sorted(fields))
                raise self.error(key_node, child, f"unknown key{hint}; known keys: {known}")
            values[key] = self.convert(value_node, hints[key], child)
        for name, field in fields.items():
            missing = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if missing and name not in values:
                child = f"{path}.{name}" if path else name
                raise self.error(node, child, "required key is missing")
        try:
            return cls(**values)
        except (ValueError, TypeError) as exc:
            raise self.error(node, path, str(exc)) from None


def load_typed(cls: type[T], text: str, filename: str = "<config>") -> T:
    """Parse YAML ``text`` into an instance of the dataclass ``cls``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{filename}{line}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: invalid YAML: {exc}") from None
    walker = _Walker(filename)
    if node is None:
        empty = yaml.ScalarNode("tag:yaml.org,2002:null", "")
        return typing.cast(T, walker.dataclass(empty, cls, ""))
    return typing.cast(T, walker.convert(node, cls, ""))


def load_typed_file(cls: type[T], path: str | Path) -> T:
    """Read ``path`` and parse it into ``cls``; a missing or unreadable file is a ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return load_typed(cls, text, str(path))
