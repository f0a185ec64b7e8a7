"""Exact money: integers in micro-units of a currency, and every rounding step declared.

Amounts are ``int`` micro-units (10**-6 of the currency's major unit) with the unit in the
name (``amount_micros``). Prices derived from a rate are exact rationals until one declared
rounding step turns them into micro-units; nothing ever passes through a float.
"""

from __future__ import annotations

import enum
from decimal import Decimal, InvalidOperation
from fractions import Fraction

MICROS = 1_000_000
MICROS_EXPONENT = 6


class Rounding(enum.Enum):
    """How a fractional number of micro-units becomes a whole one."""

    UP = "up"
    """Towards +infinity: the customer pays any started micro-unit."""
    HALF_EVEN = "half_even"
    """To the nearest; exact halves to the even neighbour (banker's rounding)."""
    DOWN = "down"
    """Towards zero: a started micro-unit is given away."""


class RoundingScope(enum.Enum):
    """Where a tariff rounds: once per call, or once per increment then multiplied."""

    PER_CALL = "per_call"
    PER_INCREMENT = "per_increment"


def div_round(numerator: int, denominator: int, mode: Rounding) -> int:
    """Return ``numerator / denominator`` rounded by ``mode`` (numerator >= 0, denominator > 0)."""
    quotient, remainder = divmod(numerator, denominator)
    if remainder == 0 or mode is Rounding.DOWN:
        return quotient
    if mode is Rounding.UP:
        return quotient + 1
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient & 1):
        return quotient + 1
    return quotient


def max_input(limit: int, numerator: int, denominator: int, mode: Rounding) -> int:
    """Return the largest ``c >= 0`` with ``div_round(c * numerator, denominator) <= limit``.

    The exact inverse of a monotone scaling step, used to size grants: closed forms for each
    rounding mode, no search. ``limit`` must be >= 0 and ``numerator`` > 0.
    """
    if mode is Rounding.UP:
        # ceil(c*n/d) <= y  <=>  c*n <= y*d
        return (limit * denominator) // numerator
    if mode is Rounding.DOWN:
        # floor(c*n/d) <= y  <=>  c*n < (y+1)*d
        return ((limit + 1) * denominator - 1) // numerator
    # half-even: c*n/d < y + 1/2, or exactly y + 1/2 when y is even (rounds down to y).
    bound = (2 * limit + 1) * denominator
    twice_n = 2 * numerator
    if limit % 2 == 0 and bound % twice_n == 0:
        return bound // twice_n
    return (bound - 1) // twice_n


def scale(amount: int, factor: Fraction, mode: Rounding) -> int:
    """Return ``amount * factor`` rounded by ``mode`` (amount >= 0, factor > 0)."""
    return div_round(amount * factor.numerator, factor.denominator, mode)


def max_scaled_input(limit: int, factor: Fraction, mode: Rounding) -> int:
    """Return the largest ``c >= 0`` with ``scale(c, factor, mode) <= limit``."""
    return max_input(limit, factor.numerator, factor.denominator, mode)


class MoneyFormatError(ValueError):
    """A money text that is not an exact amount of micro-units."""


def parse_micros(text: str, *, allow_negative: bool = False) -> int:
    """Parse a decimal text such as ``"0.0125"`` into micro-units, exactly.

    More than six decimals would need rounding, which is refused rather than done silently.
    """
    cleaned = text.strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise MoneyFormatError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise MoneyFormatError(f"{text!r} is not a finite number")
    if value < 0 and not allow_negative:
        raise MoneyFormatError(f"{text!r} is negative")
    micros = value * MICROS
    if micros != micros.to_integral_value():
        raise MoneyFormatError(f"{text!r} has more than {MICROS_EXPONENT} decimal places")
    return int(micros)


def decimal_to_micros(value: Decimal) -> int:
    """Convert an exact Decimal amount to micro-units, refusing sub-micro precision."""
    return parse_micros(str(value), allow_negative=True)


def format_micros(amount_micros: int, places: int = MICROS_EXPONENT) -> str:
    """Format micro-units as a decimal text with ``places`` decimals (exact, no rounding)."""
    sign = "-" if amount_micros < 0 else ""
    whole, frac = divmod(abs(amount_micros), MICROS)
    text = f"{sign}{whole}.{frac:06d}"
    if places < MICROS_EXPONENT:
        # Trim only zeros: never hide a non-zero digit.
        keep = len(text) - (MICROS_EXPONENT - places)
        while len(text) > keep and text.endswith("0"):
            text = text[:-1]
        text = text.removesuffix(".")
    return text
