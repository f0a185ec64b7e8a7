"""The dependency rules of the design brief, checked on the source (no imports executed).

- ``protocols`` imports only the standard library (and itself);
- domain packages never import ``protocols`` or ``ocsd``; ``lcr`` may use ``rating``;
  no other domain package imports another;
- only modules named ``*_store``, ``*_sink``, ``*_loader``, ``*_server`` touch Redis,
  PostgreSQL, SQLite or sockets.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ("rating", "balances", "lcr", "fraud", "cdr_writer")
FIRST_PARTY = ("protocols", "ocsd", *DOMAIN)
ALLOWED_DOMAIN_EDGES = {("lcr", "rating")}
IO_MODULES = {"redis", "psycopg", "psycopg_pool", "sqlite3", "socket", "aiohttp"}
IO_SUFFIXES = ("_store", "_sink", "_loader", "_server")


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _violations() -> list[str]:
    found: list[str] = []
    for package in FIRST_PARTY:
        for path in _modules(package):
            rel = path.relative_to(ROOT)
            for lineno, name in _imports(path):
                top = name.split(".")[0]
                where = f"{rel}:{lineno} imports {name}"
                if package == "protocols":
                    if top != "protocols" and top not in sys.stdlib_module_names:
                        found.append(f"{where}: protocols may import only the standard library")
                    continue
                if package in DOMAIN:
                    if top in ("protocols", "ocsd"):
                        found.append(f"{where}: domain packages never import {top}")
                    elif (
                        top in DOMAIN
                        and top != package
                        and (package, top) not in ALLOWED_DOMAIN_EDGES
                    ):
                        found.append(f"{where}: {package} may not depend on {top}")
                if top in IO_MODULES and not path.stem.endswith(IO_SUFFIXES):
                    found.append(f"{where}: only *_store/*_sink/*_loader/*_server modules touch IO")
    return found


def test_import_rules_hold() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    ("package", "source", "fragment"),
    [
        pytest.param("protocols", "import redis\n", "only the standard library", id="protocols"),
        pytest.param("rating", "from ocsd import cli\n", "never import ocsd", id="domain-ocsd"),
        pytest.param("fraud", "import rating\n", "may not depend on rating", id="domain-edge"),
        pytest.param("balances", "import redis\n", "touch IO", id="io-naming"),
    ],
)
def test_a_violation_is_reported(
    package: str, source: str, fragment: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / package
    fake.mkdir()
    (fake / "bad.py").write_text(source)
    for other in FIRST_PARTY:
        if other != package:
            (tmp_path / other).mkdir()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert any(fragment in v for v in _violations())
