"""The rating engine: one call priced at every level of a reseller chain, with a trace.

A chain lists who sells to whom, top (the operator) first, the paying account last. Each level
buys at its plan: its own deck (the rate in force at the call's start, in the account's local
time for bands), or its seller's price plus a markup; the result is converted to the buyer's
currency at the rate in force. ``Rater.price`` resolves all of that once per call into a
``CallPrice``, whose methods then give costs, the exact inverse used to size grants, margins
per level, and the final ``Rating`` with its trace. Failures are ``RatingError`` with a reason.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from fractions import Fraction
from typing import Any

from rating.billing import UNLIMITED_S, RateTerms
from rating.currency import FxTable, NoExchangeRate
from rating.deck import Deck, Rate
from rating.money import Rounding, RoundingScope, format_micros, max_scaled_input, scale
from rating.plan import Bundle, Markup, TariffPlan

MARGIN_CHECK_DURATIONS_S = (1, 60, 300, 3600)
"""Durations at which each level's price is compared with its cost before a call starts."""


class RatingFailure(enum.Enum):
    """Why a call cannot be priced."""

    NO_PLAN = "no_plan"
    NO_RATE = "no_rate"
    NO_EXCHANGE_RATE = "no_exchange_rate"
    BELOW_COST = "below_cost"
    BAD_CHAIN = "bad_chain"


class RatingError(Exception):
    """A call that cannot be priced; ``reason`` is machine-readable, ``level`` is 0-based."""

    def __init__(self, reason: RatingFailure, message: str, level: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.level = level


@dataclass(frozen=True, slots=True)
class Party:
    """One level of a chain: ``seller`` sells to ``buyer`` at ``plan_id``."""

    seller: str
    buyer: str
    plan_id: str
    currency: str
    """The buyer's currency, in which this level's charge is booked."""


@dataclass(frozen=True, slots=True)
class LevelPrice:
    """One level resolved for one call."""

    seller: str
    buyer: str
    plan_id: str
    currency: str
    mode: Rounding
    terms: RateTerms | None
    rate: Rate | None
    deck_id: str | None
    source_currency: str
    """The currency the level prices in before conversion (its deck's, or its seller's)."""
    fx: Fraction
    fx_text: str
    markup: Markup | None
    to_seller: Fraction
    """Converts this level's charge into the seller's currency, for the margin check."""


@dataclass(slots=True)
class LevelCharge:
    """What one level charges for one call."""

    seller: str
    buyer: str
    plan_id: str
    currency: str
    amount_micros: int
    fx_text: str
    deck_id: str | None
    deck_version: int | None
    prefix: str | None
    destination: str | None


@dataclass(slots=True)
class Rating:
    """A priced call: the account's charge, every level's charge, and how they were found."""

    number: str
    start: int
    duration_s: int
    billed_s: int
    bundle_id: str | None
    bundle_s: int
    charge_micros: int
    currency: str
    levels: tuple[LevelCharge, ...]
    trace: tuple[str, ...]
    below_cost_level: int | None


class CallPrice:
    """A call's prices at every level, resolved once at its start."""

    __slots__ = ("_base_index", "bundle", "levels", "number", "start")

    def __init__(
        self, number: str, start: int, levels: tuple[LevelPrice, ...], bundle: Bundle | None
    ) -> None:
        self.number = number
        self.start = start
        self.levels = levels
        self.bundle = bundle
        # The account's price derives from the nearest deck at or above its level.
        base = len(levels) - 1
        while levels[base].terms is None:
            base -= 1
        self._base_index = base

    @property
    def account_level(self) -> LevelPrice:
        """The level the paying account buys at."""
        return self.levels[-1]

    @property
    def base_terms(self) -> RateTerms:
        """The deck terms the account's price derives from."""
        terms = self.levels[self._base_index].terms
        assert terms is not None
        return terms

    def billed_seconds(self, duration_s: int) -> int:
        """Billed seconds of the account's price for a call of ``duration_s``."""
        return self.base_terms.billed_seconds(duration_s)

    def level_costs(self, duration_s: int) -> list[int]:
        """Every level's charge (no bundle), top first, each in its buyer's currency."""
        costs: list[int] = []
        previous = 0
        for level in self.levels:
            previous = self._level_cost(level, previous, duration_s)
            costs.append(previous)
        return costs

    @staticmethod
    def _level_cost(level: LevelPrice, previous: int, duration_s: int) -> int:
        if level.terms is not None:
            amount = level.terms.cost(duration_s)
        else:
            assert level.markup is not None
            amount = level.markup.apply(previous, level.mode)
        if level.fx != 1 and amount:
            amount = scale(amount, level.fx, level.mode)
        return amount

    def _transform_down(self, amount: int) -> int:
        """Apply the levels below the base deck to an amount priced by the base deck."""
        base = self.levels[self._base_index]
        if base.fx != 1 and amount:
            amount = scale(amount, base.fx, base.mode)
        for level in self.levels[self._base_index + 1 :]:
            assert level.markup is not None
            amount = level.markup.apply(amount, level.mode)
            if level.fx != 1 and amount:
                amount = scale(amount, level.fx, level.mode)
        return amount

    def _max_base_amount(self, amount: int) -> int:
        """The largest base-deck amount whose price at the account level is <= ``amount``."""
        for level in reversed(self.levels[self._base_index + 1 :]):
            if level.fx != 1:
                amount = max_scaled_input(amount, level.fx, level.mode)
            assert level.markup is not None
            limit = amount - level.markup.fixed_micros
            if limit < 0:
                return 0
            amount = max_scaled_input(limit, level.markup.factor, level.mode)
        base = self.levels[self._base_index]
        if base.fx != 1:
            amount = max_scaled_input(amount, base.fx, base.mode)
        return amount

    def bundle_split(self, duration_s: int, bundle_left_s: int) -> tuple[int, int]:
        """Return (billed seconds, seconds drawn from the bundle) for a call."""
        billed = self.billed_seconds(duration_s)
        if self.bundle is None or bundle_left_s <= 0:
            return billed, 0
        return billed, min(billed, bundle_left_s)

    def cost(self, duration_s: int, bundle_left_s: int = 0) -> int:
        """The account's charge for a call of ``duration_s`` seconds."""
        if self.bundle is None or bundle_left_s <= 0:
            if self._base_index == len(self.levels) - 1:
                return self._level_cost(self.levels[-1], 0, duration_s)
            return self._transform_down(self.base_terms.cost(duration_s))
        billed, from_bundle = self.bundle_split(duration_s, bundle_left_s)
        if billed == 0:
            return 0
        terms = self.base_terms
        # Bundles cover talk time, not the connection fee; the rest is priced per second.
        base_amount = terms.connect_fee_micros + terms.price_billed(billed - from_bundle)
        return self._transform_down(base_amount)

    def max_duration(
        self, amount_micros: int, cap_s: int = UNLIMITED_S, bundle_left_s: int = 0
    ) -> int:
        """The longest call (<= ``cap_s``) the account pays at most ``amount_micros`` for."""
        if amount_micros < 0:
            return 0
        if self.bundle is None or bundle_left_s <= 0:
            base_amount = self._max_base_amount(amount_micros)
            return self.base_terms.max_duration(base_amount, cap_s)
        # With a bundle the price is still monotone in the duration: search it.
        low, high = 0, cap_s
        if self.cost(high, bundle_left_s) <= amount_micros:
            return high
        while low < high:
            middle = (low + high + 1) // 2
            if self.cost(middle, bundle_left_s) <= amount_micros:
                low = middle
            else:
                high = middle - 1
        return low

    def below_cost_level(self, durations: Sequence[int] = MARGIN_CHECK_DURATIONS_S) -> int | None:
        """The first level that would sell below what it pays, at any of ``durations``."""
        for duration in durations:
            costs = self.level_costs(duration)
            for index in range(1, len(self.levels)):
                to_seller = self.levels[index].to_seller
                # revenue in the seller's currency < its cost, in integers: no Fraction objects.
                if costs[index] * to_seller.numerator < costs[index - 1] * to_seller.denominator:
                    return index
        return None

    def rate(self, duration_s: int, bundle_left_s: int = 0, *, trace: bool = True) -> Rating:
        """Price a finished call of ``duration_s`` seconds at every level."""
        costs = self.level_costs(duration_s)
        billed, from_bundle = self.bundle_split(duration_s, bundle_left_s)
        charge = self.cost(duration_s, bundle_left_s)
        levels = tuple(
            LevelCharge(
                seller=level.seller,
                buyer=level.buyer,
                plan_id=level.plan_id,
                currency=level.currency,
                amount_micros=charge if index == len(self.levels) - 1 else costs[index],
                fx_text=level.fx_text,
                deck_id=level.deck_id,
                deck_version=level.rate.version if level.rate else None,
                prefix=level.rate.prefix if level.rate else None,
                destination=level.rate.destination if level.rate else None,
            )
            for index, level in enumerate(self.levels)
        )
        below = self.below_cost_level((duration_s,)) if duration_s > 0 else None
        steps = self._trace(duration_s, costs, billed, from_bundle, charge) if trace else ()
        return Rating(
            number=self.number,
            start=self.start,
            duration_s=duration_s,
            billed_s=billed,
            bundle_id=self.bundle.bundle_id if self.bundle and from_bundle else None,
            bundle_s=from_bundle,
            charge_micros=charge,
            currency=self.account_level.currency,
            levels=levels,
            trace=steps,
            below_cost_level=below,
        )

    def _trace(
        self, duration_s: int, costs: list[int], billed: int, from_bundle: int, charge: int
    ) -> tuple[str, ...]:
        steps: list[str] = []
        for index, level in enumerate(self.levels):
            head = f"level {index} {level.seller}->{level.buyer} plan {level.plan_id}"
            if level.terms is not None and level.rate is not None:
                terms, rate = level.terms, level.rate
                band = f" band {rate.band.describe()}" if rate.band else ""
                steps.append(
                    f"{head}: deck {level.deck_id} v{rate.version} prefix {rate.prefix} "
                    f"({rate.destination or 'no name'}){band}: "
                    f"{format_micros(terms.rate_micros)} {level.source_currency}/min, "
                    f"connect {format_micros(terms.connect_fee_micros)}, "
                    f"{terms.first_block_s}/{terms.increment_s}, grace {terms.grace_s} s, "
                    f"rounding {terms.scope.value} {terms.mode.value}"
                )
                level_billed = terms.billed_seconds(duration_s)
                steps.append(
                    f"{head}: {duration_s} s -> billed {level_billed} s -> "
                    f"{format_micros(terms.cost(duration_s))} {level.source_currency}"
                )
            else:
                assert level.markup is not None
                steps.append(
                    f"{head}: seller's price {format_micros(costs[index - 1])} "
                    f"{level.source_currency} + {level.markup.percent}% + "
                    f"{format_micros(level.markup.fixed_micros)} (round {level.mode.value})"
                )
            if level.fx != 1:
                steps.append(
                    f"{head}: converted {level.source_currency}->{level.currency} at "
                    f"{level.fx_text} (round {level.mode.value})"
                )
            steps.append(f"{head}: charge {format_micros(costs[index])} {level.currency}")
        if from_bundle:
            assert self.bundle is not None
            steps.append(
                f"bundle {self.bundle.bundle_id}: {from_bundle} of {billed} billed s free; "
                f"account charge {format_micros(charge)} {self.account_level.currency}"
            )
        return tuple(steps)

    def to_state(self) -> list[Any]:
        """A msgpack-able snapshot, so another worker continues the call at the same price."""
        return [
            self.number,
            self.start,
            [_level_to_state(level) for level in self.levels],
            _bundle_to_state(self.bundle),
        ]

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> CallPrice:
        """Rebuild a ``CallPrice`` from ``to_state``."""
        number, start, levels, bundle = state
        return cls(
            str(number),
            int(start),
            tuple(_level_from_state(s) for s in levels),
            _bundle_from_state(bundle),
        )


def _level_to_state(level: LevelPrice) -> list[Any]:
    terms = level.terms
    rate = level.rate
    markup = level.markup
    return [
        level.seller,
        level.buyer,
        level.plan_id,
        level.currency,
        level.mode.value,
        None
        if terms is None
        else [
            terms.rate_micros,
            terms.connect_fee_micros,
            terms.first_block_s,
            terms.increment_s,
            terms.grace_s,
            terms.scope.value,
        ],
        None
        if rate is None
        else [
            rate.prefix,
            rate.destination,
            rate.effective_from,
            rate.effective_to,
            rate.version,
        ],
        level.deck_id,
        level.source_currency,
        [level.fx.numerator, level.fx.denominator],
        level.fx_text,
        None if markup is None else [str(markup.percent), markup.fixed_micros],
        [level.to_seller.numerator, level.to_seller.denominator],
    ]


def _level_from_state(state: Sequence[Any]) -> LevelPrice:
    from decimal import Decimal

    (
        seller,
        buyer,
        plan_id,
        currency,
        mode,
        terms,
        rate,
        deck_id,
        source_currency,
        fx,
        fx_text,
        markup,
        to_seller,
    ) = state
    rounding = Rounding(mode)
    rebuilt_terms = None
    rebuilt_rate = None
    if terms is not None:
        rebuilt_terms = RateTerms(
            terms[0], terms[1], terms[2], terms[3], terms[4], RoundingScope(terms[5]), rounding
        )
        if rate is not None:
            rebuilt_rate = Rate(
                prefix=rate[0],
                destination=rate[1],
                rate_micros=terms[0],
                connect_fee_micros=terms[1],
                first_block_s=terms[2],
                increment_s=terms[3],
                grace_s=terms[4],
                effective_from=rate[2],
                effective_to=rate[3],
                version=rate[4],
            )
    return LevelPrice(
        seller=seller,
        buyer=buyer,
        plan_id=plan_id,
        currency=currency,
        mode=rounding,
        terms=rebuilt_terms,
        rate=rebuilt_rate,
        deck_id=deck_id,
        source_currency=source_currency,
        fx=Fraction(fx[0], fx[1]),
        fx_text=fx_text,
        markup=None if markup is None else Markup(Decimal(markup[0]), markup[1]),
        to_seller=Fraction(to_seller[0], to_seller[1]),
    )


def _bundle_to_state(bundle: Bundle | None) -> list[Any] | None:
    if bundle is None:
        return None
    return [bundle.bundle_id, bundle.seconds, list(bundle.prefixes), bundle.period.value]


def _bundle_from_state(state: Sequence[Any] | None) -> Bundle | None:
    from rating.plan import BundlePeriod

    if state is None:
        return None
    return Bundle(state[0], state[1], tuple(state[2]), BundlePeriod(state[3]))


def local_position(at: int, zone: tzinfo) -> tuple[int, int]:
    """Return (weekday, second of the day) of UTC epoch second ``at`` in ``zone``.

    Time-of-day bands are written in local time; a DST change moves the UTC instant at which
    a band starts, never the local time it is written with.
    """
    moment = datetime.fromtimestamp(at, zone)
    return moment.weekday(), moment.hour * 3600 + moment.minute * 60 + moment.second


class Rater:
    """Decks, plans and exchange rates: everything needed to price calls, immutable."""

    __slots__ = ("decks", "fx", "plans")

    def __init__(
        self,
        decks: Mapping[str, Deck],
        plans: Mapping[str, TariffPlan],
        fx: FxTable | None = None,
    ) -> None:
        self.decks = decks
        self.plans = plans
        self.fx = fx or FxTable()

    def price(
        self,
        chain: Sequence[Party],
        number: str,
        start: int,
        weekday: int = 0,
        second_of_day: int = 0,
        *,
        check_margins: bool = True,
    ) -> CallPrice:
        """Resolve every level's price of a call to ``number`` starting at UTC ``start``.

        ``weekday`` and ``second_of_day`` are the start in the account's local time (for
        time-of-day bands). Raises ``RatingError``.
        """
        if not chain:
            raise RatingError(RatingFailure.BAD_CHAIN, "empty reseller chain")
        levels: list[LevelPrice] = []
        for index, party in enumerate(chain):
            plan = self.plans.get(party.plan_id)
            if plan is None:
                raise RatingError(
                    RatingFailure.NO_PLAN,
                    f"{party.buyer}: no tariff plan {party.plan_id!r}",
                    index,
                )
            seller_currency = levels[-1].currency if levels else party.currency
            terms = rate = None
            if plan.deck_id is not None:
                deck = self.decks.get(plan.deck_id)
                if deck is None:
                    raise RatingError(
                        RatingFailure.NO_PLAN,
                        f"plan {plan.plan_id}: no deck {plan.deck_id!r}",
                        index,
                    )
                rate = deck.lookup(number, start, weekday, second_of_day)
                if rate is None:
                    raise RatingError(
                        RatingFailure.NO_RATE,
                        f"plan {plan.plan_id}: deck {deck.deck_id} has no rate for {number}",
                        index,
                    )
                terms = RateTerms(
                    rate.rate_micros,
                    rate.connect_fee_micros,
                    rate.first_block_s,
                    rate.increment_s,
                    rate.grace_s,
                    plan.scope,
                    plan.mode,
                )
                source_currency = deck.currency
            else:
                if not levels:
                    raise RatingError(
                        RatingFailure.BAD_CHAIN,
                        f"plan {plan.plan_id} is a markup but {party.buyer} has no seller price",
                        index,
                    )
                source_currency = seller_currency
            try:
                fx, fx_text = self.fx.factor(source_currency, party.currency, start)
                to_seller, _ = self.fx.factor(party.currency, seller_currency, start)
            except NoExchangeRate as exc:
                raise RatingError(RatingFailure.NO_EXCHANGE_RATE, str(exc), index) from None
            levels.append(
                LevelPrice(
                    seller=party.seller,
                    buyer=party.buyer,
                    plan_id=plan.plan_id,
                    currency=party.currency,
                    mode=plan.mode,
                    terms=terms,
                    rate=rate,
                    deck_id=plan.deck_id,
                    source_currency=source_currency,
                    fx=fx,
                    fx_text=fx_text,
                    markup=plan.markup,
                    to_seller=to_seller,
                )
            )
        account_plan = self.plans[chain[-1].plan_id]
        bundle = next((b for b in account_plan.bundles if b.covers(number)), None)
        price = CallPrice(number, start, tuple(levels), bundle)
        if check_margins and len(levels) > 1:
            below = price.below_cost_level()
            if below is not None:
                level = levels[below]
                raise RatingError(
                    RatingFailure.BELOW_COST,
                    f"{level.seller} would sell to {level.buyer} below its own cost "
                    f"(plan {level.plan_id}) for {number}",
                    below,
                )
        return price
