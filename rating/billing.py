"""The billing formula: from a call's duration to billed seconds and to money, and back.

Billed seconds, for a call of ``d`` whole seconds with first block ``F``, increment ``I`` and
grace ``G`` (``I >= 1``, ``F >= 0``, ``G >= 0``)::

    d <= 0            -> 0     (not answered: nothing is charged, not even the connection fee)
    0 < d <= G        -> 0     (within grace: free, no connection fee)
    G < d <= F        -> F     (the first block is the minimum)
    d > F             -> F + ceil((d - F) / I) * I

Cost, for a rate ``R`` micro-units per minute and connection fee ``C``, billed ``b > 0``::

    per call:        C + round(R * b / 60)
    per increment:   C + round(R * F / 60) + ((b - F) / I) * round(R * I / 60)

where ``round`` is the tariff's declared rounding mode (up, half-even or down), and a call
billed 0 seconds costs 0. ``max_duration`` is the exact inverse used for grant sizing: the
longest duration whose cost does not exceed an amount, so that
``cost(max_duration(x)) <= x < cost(max_duration(x) + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rating.money import Rounding, RoundingScope, div_round, max_input

SECONDS_PER_MINUTE = 60
UNLIMITED_S = 10**9
"""Returned by ``max_duration`` when money does not limit the call (a free rate)."""


@dataclass(frozen=True, slots=True)
class RateTerms:
    """How one rate turns seconds into money; the unit of the billing formula."""

    rate_micros: int
    """Price of one minute, in micro-units of the deck's currency."""
    connect_fee_micros: int = 0
    first_block_s: int = 60
    increment_s: int = 60
    grace_s: int = 0
    scope: RoundingScope = RoundingScope.PER_CALL
    mode: Rounding = Rounding.UP

    def __post_init__(self) -> None:
        if self.rate_micros < 0 or self.connect_fee_micros < 0:
            raise ValueError("rate and connection fee must not be negative")
        if self.increment_s < 1:
            raise ValueError("increment must be at least 1 second")
        if self.first_block_s < 0 or self.grace_s < 0:
            raise ValueError("first block and grace must not be negative")

    def billed_seconds(self, duration_s: int) -> int:
        """Return the billed seconds of a call lasting ``duration_s`` seconds."""
        if duration_s <= self.grace_s or duration_s <= 0:
            return 0
        first = self.first_block_s
        if duration_s <= first:
            return first
        increment = self.increment_s
        return first + -(-(duration_s - first) // increment) * increment

    def price_billed(self, billed_s: int) -> int:
        """Return the price of ``billed_s`` billed seconds, without the connection fee."""
        if billed_s <= 0:
            return 0
        rate = self.rate_micros
        if self.scope is RoundingScope.PER_CALL or billed_s < self.first_block_s:
            return div_round(rate * billed_s, SECONDS_PER_MINUTE, self.mode)
        first = self.first_block_s
        increments = (billed_s - first) // self.increment_s
        first_price = div_round(rate * first, SECONDS_PER_MINUTE, self.mode)
        step_price = div_round(rate * self.increment_s, SECONDS_PER_MINUTE, self.mode)
        tail = billed_s - first - increments * self.increment_s
        # A billed value always lands on an increment boundary; ``tail`` is non-zero only for
        # seconds priced outside the formula (a bundle's money part), priced per second.
        tail_price = div_round(rate * tail, SECONDS_PER_MINUTE, self.mode) if tail else 0
        return first_price + increments * step_price + tail_price

    def cost(self, duration_s: int) -> int:
        """Return the cost of a call lasting ``duration_s`` seconds, connection fee included."""
        billed = self.billed_seconds(duration_s)
        if billed == 0:
            return 0
        return self.connect_fee_micros + self.price_billed(billed)

    def max_duration(self, amount_micros: int, cap_s: int = UNLIMITED_S) -> int:
        """Return the longest duration (<= ``cap_s``) whose cost is at most ``amount_micros``."""
        free = min(self.grace_s, cap_s)
        if amount_micros < 0:
            return 0
        first = self.first_block_s
        increment = self.increment_s
        budget = amount_micros - self.connect_fee_micros
        # The first billed value is F, or one increment when there is no first block.
        first_billed = first if first > 0 else increment
        if budget < 0 or self.price_billed(first_billed) > budget:
            return free
        rate = self.rate_micros
        if rate == 0:
            return cap_s
        if self.scope is RoundingScope.PER_CALL:
            max_billed = max_input(budget, rate, SECONDS_PER_MINUTE, self.mode)
            steps = (max_billed - first) // increment
        else:
            step_price = div_round(rate * increment, SECONDS_PER_MINUTE, self.mode)
            if step_price == 0:
                return cap_s
            first_price = self.price_billed(first) if first > 0 else 0
            steps = (budget - first_price) // step_price
        billed = first + steps * increment
        return min(max(billed, free), cap_s)
