"""High-risk range files: one ``prefix[,label]`` per line, ``#`` starts a comment."""

from __future__ import annotations

from pathlib import Path

from fraud.listing import ListEntry, ListError, ListKind, Scope, normalize_value


def parse_range_file(text: str, filename: str) -> list[ListEntry]:
    """Parse a range file; ``ListError`` names the file and line of every bad entry."""
    entries: list[ListEntry] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        prefix, _, label = content.partition(",")
        try:
            value = normalize_value(ListKind.HIGH_RISK, prefix)
        except ListError as exc:
            problems.append(f"{filename}:{number}: {exc}")
            continue
        entries.append(
            ListEntry(
                ListKind.HIGH_RISK, Scope.GLOBAL, "", value, f"file:{filename}", label.strip()
            )
        )
    if problems:
        raise ListError("\n".join(problems))
    return entries


def load_range_files(paths: tuple[str, ...]) -> list[ListEntry]:
    """Read every range file; a missing or unreadable file is a ``ListError``."""
    entries: list[ListEntry] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ListError(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ListError(f"{path}: not UTF-8 text") from None
        entries.extend(parse_range_file(text, path))
    return entries


__all__ = ["load_range_files", "parse_range_file"]
