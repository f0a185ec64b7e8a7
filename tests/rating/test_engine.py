"""Pricing a call across a reseller chain: markups, currencies, bundles, margins, the trace."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.currency import ExchangeRate, FxTable
from rating.deck import Deck, Rate
from rating.engine import CallPrice, Party, Rater, RatingError, RatingFailure
from rating.money import Rounding, RoundingScope
from rating.plan import Bundle, Markup, TariffPlan


def r(prefix: str, micros: int, fee: int = 0, first: int = 60, inc: int = 60) -> Rate:
    return Rate(prefix, f"dest {prefix}", micros, fee, first, inc, 0, 0, None, version=3)


WHOLESALE = Deck("wholesale", "USD", [r("44", 6_000), r("4420", 5_000)])
RETAIL = Deck("retail", "EUR", [r("44", 20_000, fee=10_000, first=30, inc=6)])
FX = FxTable([ExchangeRate("USD", "EUR", Decimal("0.92"), 0)])

PLANS = {
    "op-to-r1": TariffPlan("op-to-r1", deck_id="wholesale"),
    "r1-plus-10pc": TariffPlan("r1-plus-10pc", markup=Markup(Decimal(10), 0)),
    "r2-plus-fixed": TariffPlan("r2-plus-fixed", markup=Markup(Decimal(0), 1_000)),
    "retail-eur": TariffPlan(
        "retail-eur",
        deck_id="retail",
        scope=RoundingScope.PER_INCREMENT,
        bundles=(Bundle("uk-100", 100, ("44",)),),
    ),
    "discount": TariffPlan("discount", markup=Markup(Decimal(-50), 0)),
}
RATER = Rater({"wholesale": WHOLESALE, "retail": RETAIL}, PLANS, FX)


def chain(*parts: tuple[str, str, str, str]) -> list[Party]:
    return [Party(*p) for p in parts]


TWO_RESELLERS = chain(
    ("op", "r1", "op-to-r1", "USD"),
    ("r1", "r2", "r1-plus-10pc", "USD"),
    ("r2", "acct", "r2-plus-fixed", "EUR"),
)


def test_every_level_is_charged_in_its_buyers_currency() -> None:
    price = RATER.price(TWO_RESELLERS, "442071234567", 0)
    # 95 s on 60/60 bills 120 s. r1 pays 0.005 USD/min: 10,000 micro-USD.
    # r2 pays r1 +10 %: 11,000 micro-USD. The account pays r2 + 0.001 = 12,000 micro-USD,
    # converted at 0.92 (rounded up): 11,040 micro-EUR.
    assert price.level_costs(95) == [10_000, 11_000, 11_040]
    rating = price.rate(95)
    assert rating.charge_micros == 11_040
    assert rating.currency == "EUR"
    assert [lv.amount_micros for lv in rating.levels] == [10_000, 11_000, 11_040]
    assert rating.levels[0].prefix == "4420"
    assert rating.levels[0].deck_version == 3
    assert rating.levels[2].fx_text == "0.92"
    assert any("prefix 4420" in step for step in rating.trace)
    assert any("converted USD->EUR at 0.92" in step for step in rating.trace)


def test_a_level_selling_below_its_cost_is_refused() -> None:
    with pytest.raises(RatingError) as caught:
        RATER.price(
            chain(("op", "r1", "op-to-r1", "USD"), ("r1", "acct", "discount", "USD")),
            "4420",
            0,
        )
    assert caught.value.reason is RatingFailure.BELOW_COST
    assert caught.value.level == 1


def test_an_own_deck_below_the_parents_price_is_refused() -> None:
    cheap = TariffPlan("cheap", deck_id="cheap")
    rater = Rater(
        {"wholesale": WHOLESALE, "cheap": Deck("cheap", "USD", [r("44", 1_000)])},
        {**PLANS, "cheap": cheap},
    )
    with pytest.raises(RatingError) as caught:
        rater.price(chain(("op", "r1", "op-to-r1", "USD"), ("r1", "a", "cheap", "USD")), "44", 0)
    assert caught.value.reason is RatingFailure.BELOW_COST


@pytest.mark.parametrize(
    ("plans", "number", "reason"),
    [
        pytest.param((("op", "a", "nope", "USD"),), "44", RatingFailure.NO_PLAN, id="no-plan"),
        pytest.param((("op", "a", "op-to-r1", "USD"),), "33", RatingFailure.NO_RATE, id="no-rate"),
        pytest.param(
            (("op", "a", "op-to-r1", "GBP"),), "44", RatingFailure.NO_EXCHANGE_RATE, id="no-fx"
        ),
        pytest.param(
            (("op", "a", "r1-plus-10pc", "USD"),), "44", RatingFailure.BAD_CHAIN, id="top-markup"
        ),
    ],
)
def test_rating_failures_have_reasons(
    plans: tuple[tuple[str, str, str, str], ...], number: str, reason: RatingFailure
) -> None:
    with pytest.raises(RatingError) as caught:
        RATER.price(chain(*plans), number, 0)
    assert caught.value.reason is reason


def test_inverse_through_markups_and_conversion() -> None:
    price = RATER.price(TWO_RESELLERS, "442071234567", 0)
    for amount in (0, 11_039, 11_040, 22_079, 22_080, 1_000_000):
        duration = price.max_duration(amount, 7200)
        assert price.cost(duration) <= amount
        if duration < 7200:
            assert price.cost(duration + 1) > amount
    # 60 s: 5,000 -> 5,500 -> 6,500 -> 5,980 EUR; 120 s: 11,040; 240 s: 21,160; 300 s: 26,220.
    assert price.max_duration(11_039) == 60
    assert price.max_duration(11_040) == 120
    assert price.max_duration(26_219) == 240


def test_bundle_split_mid_call() -> None:
    price = RATER.price(chain(("op", "acct", "retail-eur", "EUR")), "4479", 0)
    assert price.bundle is not None
    # 30/6, 0.02 EUR/min (333.33 micro/s), connection fee 0.01. 130 s bills 132 s.
    # 100 s come from the bundle; the 32 s left cost 10,667 (up) + the connection fee.
    rating = price.rate(130, bundle_left_s=100)
    assert (rating.billed_s, rating.bundle_s) == (132, 100)
    assert rating.charge_micros == 10_000 + 10_667
    # Entirely within the bundle: only the connection fee.
    assert price.cost(90, bundle_left_s=100) == 10_000
    # Without bundle seconds left the whole call is money: 30 s + 17 x 6 s = 132 s.
    assert price.cost(130, bundle_left_s=0) == 10_000 + 10_000 + 17 * 2_000
    duration = price.max_duration(20_000, 7200, bundle_left_s=100)
    assert price.cost(duration, 100) <= 20_000 < price.cost(duration + 1, 100)


def test_state_round_trip_keeps_the_price() -> None:
    price = RATER.price(TWO_RESELLERS, "442071234567", 1234)
    again = CallPrice.from_state(price.to_state())
    for duration in (0, 1, 59, 60, 61, 95, 3600):
        assert again.level_costs(duration) == price.level_costs(duration)
    assert again.rate(95).trace == price.rate(95).trace


@settings(max_examples=200)
@given(
    rate=st.integers(0, 3_000_000),
    fee=st.integers(0, 100_000),
    first=st.integers(0, 60),
    increment=st.integers(1, 60),
    percent=st.decimals(-20, 300, places=2),
    fixed=st.integers(0, 50_000),
    fx=st.decimals("0.01", "200", places=4),
    mode=st.sampled_from(list(Rounding)),
    amount=st.integers(0, 5_000_000),
    bundle_left=st.integers(0, 300),
)
def test_chain_inverse_property(
    rate: int,
    fee: int,
    first: int,
    increment: int,
    percent: Decimal,
    fixed: int,
    fx: Decimal,
    mode: Rounding,
    amount: int,
    bundle_left: int,
) -> None:
    deck = Deck("d", "USD", [Rate("1", "", rate, fee, first, increment, 0, 0, None)])
    plans = {
        "base": TariffPlan("base", deck_id="d", mode=mode, bundles=(Bundle("b", 300, ("1",)),)),
        "up": TariffPlan(
            "up", markup=Markup(percent, fixed), mode=mode, bundles=(Bundle("b", 300, ("1",)),)
        ),
    }
    rater = Rater({"d": deck}, plans, FxTable([ExchangeRate("USD", "EUR", fx, 0)]))
    price = rater.price(
        chain(("op", "r", "base", "USD"), ("r", "a", "up", "EUR")),
        "1555",
        0,
        check_margins=False,
    )
    cap = 7200
    duration = price.max_duration(amount, cap, bundle_left)
    assert price.cost(duration, bundle_left) <= amount
    if duration < cap:
        assert price.cost(duration + 1, bundle_left) > amount
