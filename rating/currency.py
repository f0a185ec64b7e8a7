"""Currencies and effective-dated exchange rates; conversion is one declared rounding step."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

_ONE = Fraction(1)


class NoExchangeRate(LookupError):
    """No rate is known between two currencies at a moment."""


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """One unit of ``base`` is worth ``rate`` units of ``quote`` from ``effective_from`` on."""

    base: str
    quote: str
    rate: Decimal
    effective_from: int
    """UTC epoch seconds."""

    def __post_init__(self) -> None:
        if not self.rate.is_finite() or self.rate <= 0:
            raise ValueError(f"exchange rate {self.base}->{self.quote} must be positive")


class FxTable:
    """Exchange rates by pair, each a history ordered by its start."""

    __slots__ = ("_pairs",)

    def __init__(self, rates: Iterable[ExchangeRate] = ()) -> None:
        pairs: dict[tuple[str, str], list[ExchangeRate]] = {}
        for rate in rates:
            pairs.setdefault((rate.base, rate.quote), []).append(rate)
        for history in pairs.values():
            history.sort(key=lambda r: r.effective_from)
        self._pairs = pairs

    def _find(self, base: str, quote: str, at: int) -> ExchangeRate | None:
        history = self._pairs.get((base, quote))
        if not history:
            return None
        position = bisect.bisect_right([r.effective_from for r in history], at)
        return history[position - 1] if position else None

    def factor(self, base: str, quote: str, at: int) -> tuple[Fraction, str]:
        """Return the exact factor from ``base`` to ``quote`` at UTC second ``at``.

        The text is the rate as recorded in CDRs: the published rate, or ``1/rate`` when only
        the opposite pair is published (applied exactly as the reciprocal, never rounded).
        """
        if base == quote:
            return _ONE, "1"
        direct = self._find(base, quote, at)
        if direct is not None:
            return Fraction(direct.rate), str(direct.rate)
        inverse = self._find(quote, base, at)
        if inverse is not None:
            return 1 / Fraction(inverse.rate), f"1/{inverse.rate}"
        raise NoExchangeRate(f"no exchange rate {base}->{quote} in force")
