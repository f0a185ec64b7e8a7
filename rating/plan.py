"""Tariff plans: what a buyer pays, as a deck of its own or as its seller's price plus a markup.

A plan declares its rounding: the scope (per call or per increment) used with its deck, and the
mode (up, half-even, down) used by every rounding step it takes: the deck formula, the markup
and the conversion into the buyer's currency. A plan may carry free-minute bundles.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from rating.money import Rounding, RoundingScope, div_round


class BundlePeriod(enum.Enum):
    """When a bundle's seconds renew, at the account's local midnight or month start."""

    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Bundle:
    """Free seconds per period for calls to a destination group, used before money."""

    bundle_id: str
    seconds: int
    prefixes: tuple[str, ...]
    """The destination group: normalised numbers starting with any of these."""
    period: BundlePeriod = BundlePeriod.MONTH

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"bundle {self.bundle_id}: seconds must be positive")
        if not self.prefixes or not all(p.isdigit() for p in self.prefixes):
            raise ValueError(f"bundle {self.bundle_id}: prefixes must be digits")

    def covers(self, number: str) -> bool:
        """Whether calls to ``number`` draw on this bundle."""
        return number.startswith(self.prefixes)


@dataclass(frozen=True, slots=True)
class Markup:
    """The seller's price times ``1 + percent/100``, plus ``fixed_micros`` per charged call."""

    percent: Decimal = Decimal(0)
    fixed_micros: int = 0
    factor: Fraction = field(init=False, repr=False, compare=False)
    """The exact multiplier ``1 + percent/100``."""

    def __post_init__(self) -> None:
        if not self.percent.is_finite() or self.percent <= -100:
            raise ValueError("markup percent must be a number above -100")
        if self.fixed_micros < 0:
            raise ValueError("fixed markup must not be negative")
        object.__setattr__(self, "factor", 1 + Fraction(self.percent) / 100)

    def apply(self, amount: int, mode: Rounding) -> int:
        """Return the marked-up price; a call that costs nothing stays free."""
        if amount <= 0:
            return 0
        factor = self.factor
        return div_round(amount * factor.numerator, factor.denominator, mode) + self.fixed_micros


@dataclass(frozen=True, slots=True)
class TariffPlan:
    """A price list for one buyer: a deck, or a markup on the seller's own price."""

    plan_id: str
    deck_id: str | None = None
    markup: Markup | None = None
    scope: RoundingScope = RoundingScope.PER_CALL
    mode: Rounding = Rounding.UP
    bundles: tuple[Bundle, ...] = field(default_factory=tuple)
    name: str = ""

    def __post_init__(self) -> None:
        if (self.deck_id is None) == (self.markup is None):
            raise ValueError(f"plan {self.plan_id}: give exactly one of a deck or a markup")
