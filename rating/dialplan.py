"""Number normalisation: what a switch sends becomes the E.164 digits that rates are keyed on.

Order of steps: take the user part of a SIP/tel URI, drop visual separators, apply the
configured rewrite rules in order (each a regular expression and its replacement), then strip
``+`` or the international prefix, or turn a national number (trunk prefix) into E.164 with the
configured country code. The result must be digits only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SEPARATORS = re.compile(r"[\s\-.()/]")


class NumberFormatError(ValueError):
    """A number that does not normalise to digits."""


@dataclass(frozen=True, slots=True)
class DialRule:
    """One rewrite: the first match of ``match`` (a regular expression) becomes ``replace``."""

    match: str
    replace: str = ""

    def __post_init__(self) -> None:
        try:
            re.compile(self.match)
        except re.error as exc:
            raise ValueError(f"rule {self.match!r} is not a regular expression: {exc}") from None


@dataclass(frozen=True, slots=True)
class DialPlanSettings:
    """How called and calling numbers are normalised before identification and rating."""

    international_prefix: str = "00"
    national_prefix: str = "0"
    country_code: str = ""
    """Added to national numbers (those starting with the national prefix) when set."""
    rules: tuple[DialRule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("international_prefix", "national_prefix", "country_code"):
            value = getattr(self, name)
            if value and not value.isdigit():
                raise ValueError(f"{name} must be digits, got {value!r}")


class DialPlan:
    """Compiled normalisation rules."""

    __slots__ = ("_country", "_international", "_national", "_rules")

    def __init__(self, settings: DialPlanSettings | None = None) -> None:
        settings = settings or DialPlanSettings()
        self._international = settings.international_prefix
        self._national = settings.national_prefix
        self._country = settings.country_code
        self._rules = tuple((re.compile(r.match), r.replace) for r in settings.rules)

    def normalize(self, raw: str) -> str:
        """Return the E.164 digits of ``raw`` or raise ``NumberFormatError``."""
        number = user_part(raw)
        if not number.isdigit():
            number = _SEPARATORS.sub("", number)
        for pattern, replacement in self._rules:
            number = pattern.sub(replacement, number, count=1)
        if number.startswith("+"):
            number = number[1:]
        elif self._international and number.startswith(self._international):
            number = number[len(self._international) :]
        elif self._country and self._national and number.startswith(self._national):
            number = self._country + number[len(self._national) :]
        if not number.isdigit() or not number.isascii():
            raise NumberFormatError(f"{raw!r} is not a dialable number")
        return number


def user_part(raw: str) -> str:
    """Return the user part of ``sip:``/``sips:``/``tel:`` URIs (else ``raw`` stripped)."""
    text = raw.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    lowered = text[:5].lower()
    if lowered.startswith(("sip:", "sips:", "tel:")):
        text = text.split(":", 1)[1]
    at = text.find("@")
    if at >= 0:
        text = text[:at]
    semicolon = text.find(";")
    if semicolon >= 0:
        text = text[:semicolon]
    return text
