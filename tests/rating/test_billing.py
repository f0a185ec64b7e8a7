"""The billing formula against hand-computed values, and its inverse against the formula."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.billing import RateTerms
from rating.money import Rounding, RoundingScope

DURATIONS = (0, 1, 6, 29, 30, 31, 59, 60, 61, 3600)


# Rate 0.012/min = 12,000 micro-units a minute = 200 micro-units a second.
@pytest.mark.parametrize(
    ("first", "increment", "grace", "fee", "billed", "cost"),
    [
        pytest.param(
            60,
            60,
            0,
            0,
            (0, 60, 60, 60, 60, 60, 60, 60, 120, 3600),
            (0, 12000, 12000, 12000, 12000, 12000, 12000, 12000, 24000, 720000),
            id="60/60",
        ),
        pytest.param(
            1,
            1,
            0,
            0,
            (0, 1, 6, 29, 30, 31, 59, 60, 61, 3600),
            (0, 200, 1200, 5800, 6000, 6200, 11800, 12000, 12200, 720000),
            id="1/1",
        ),
        pytest.param(
            30,
            6,
            0,
            0,
            (0, 30, 30, 30, 30, 36, 60, 60, 66, 3600),
            (0, 6000, 6000, 6000, 6000, 7200, 12000, 12000, 13200, 720000),
            id="30/6",
        ),
        pytest.param(
            60,
            30,
            0,
            0,
            (0, 60, 60, 60, 60, 60, 60, 60, 90, 3600),
            (0, 12000, 12000, 12000, 12000, 12000, 12000, 12000, 18000, 720000),
            id="60/30",
        ),
        pytest.param(
            30,
            6,
            5,
            50000,
            (0, 0, 30, 30, 30, 36, 60, 60, 66, 3600),
            (0, 0, 56000, 56000, 56000, 57200, 62000, 62000, 63200, 770000),
            id="30/6-grace5-fee0.05",
        ),
        pytest.param(
            0,
            60,
            0,
            10000,
            (0, 60, 60, 60, 60, 60, 60, 60, 120, 3600),
            (0, 22000, 22000, 22000, 22000, 22000, 22000, 22000, 34000, 730000),
            id="no-first-block-fee0.01",
        ),
        pytest.param(
            60,
            60,
            30,
            0,
            (0, 0, 0, 0, 0, 60, 60, 60, 120, 3600),
            (0, 0, 0, 0, 0, 12000, 12000, 12000, 24000, 720000),
            id="60/60-grace30",
        ),
    ],
)
@pytest.mark.parametrize("scope", list(RoundingScope), ids=lambda s: s.value)
def test_billed_seconds_and_cost(
    first: int,
    increment: int,
    grace: int,
    fee: int,
    billed: tuple[int, ...],
    cost: tuple[int, ...],
    scope: RoundingScope,
) -> None:
    terms = RateTerms(12_000, fee, first, increment, grace, scope, Rounding.UP)
    assert tuple(terms.billed_seconds(d) for d in DURATIONS) == billed
    assert tuple(terms.cost(d) for d in DURATIONS) == cost


# Rate 0.01/min = 10,000 micro-units a minute: one second is 166 2/3 micro-units.
@pytest.mark.parametrize(
    ("scope", "mode", "duration", "expected"),
    [
        pytest.param(RoundingScope.PER_CALL, Rounding.UP, 1, 167, id="call-up-1s"),
        pytest.param(RoundingScope.PER_CALL, Rounding.HALF_EVEN, 1, 167, id="call-even-1s"),
        pytest.param(RoundingScope.PER_CALL, Rounding.DOWN, 1, 166, id="call-down-1s"),
        pytest.param(RoundingScope.PER_CALL, Rounding.UP, 2, 334, id="call-up-2s"),
        pytest.param(RoundingScope.PER_CALL, Rounding.HALF_EVEN, 2, 333, id="call-even-2s"),
        pytest.param(RoundingScope.PER_CALL, Rounding.UP, 3, 500, id="call-up-3s-exact"),
        pytest.param(RoundingScope.PER_INCREMENT, Rounding.UP, 3, 501, id="incr-up-3s"),
        pytest.param(RoundingScope.PER_INCREMENT, Rounding.DOWN, 3, 498, id="incr-down-3s"),
        pytest.param(RoundingScope.PER_INCREMENT, Rounding.HALF_EVEN, 2, 334, id="incr-even-2s"),
    ],
)
def test_rounding_is_declared_and_exact(
    scope: RoundingScope, mode: Rounding, duration: int, expected: int
) -> None:
    assert RateTerms(10_000, 0, 1, 1, 0, scope, mode).cost(duration) == expected


@pytest.mark.parametrize(
    ("mode", "duration", "expected"),
    [
        # 30 micro-units a minute: 0.5 a second, ties everywhere.
        pytest.param(Rounding.HALF_EVEN, 1, 0, id="half-to-even-0"),
        pytest.param(Rounding.HALF_EVEN, 3, 2, id="1.5-to-2"),
        pytest.param(Rounding.HALF_EVEN, 5, 2, id="2.5-to-2"),
        pytest.param(Rounding.UP, 1, 1, id="up-0.5"),
        pytest.param(Rounding.DOWN, 5, 2, id="down-2.5"),
    ],
)
def test_half_even_ties(mode: Rounding, duration: int, expected: int) -> None:
    assert RateTerms(30, 0, 1, 1, 0, RoundingScope.PER_CALL, mode).cost(duration) == expected


def test_invalid_terms_are_refused() -> None:
    with pytest.raises(ValueError, match="increment"):
        RateTerms(1, increment_s=0)
    with pytest.raises(ValueError, match="negative"):
        RateTerms(-1)


terms_strategy = st.builds(
    RateTerms,
    rate_micros=st.integers(0, 5_000_000),
    connect_fee_micros=st.integers(0, 200_000),
    first_block_s=st.integers(0, 120),
    increment_s=st.integers(1, 120),
    grace_s=st.integers(0, 15),
    scope=st.sampled_from(list(RoundingScope)),
    mode=st.sampled_from(list(Rounding)),
)


@given(terms=terms_strategy, amount=st.integers(0, 50_000_000))
def test_max_duration_is_the_exact_inverse(terms: RateTerms, amount: int) -> None:
    cap = 7200
    duration = terms.max_duration(amount, cap)
    assert 0 <= duration <= cap
    assert terms.cost(duration) <= amount
    if duration < cap:
        assert terms.cost(duration + 1) > amount


@given(terms=terms_strategy, a=st.integers(0, 10_000), b=st.integers(0, 10_000))
def test_cost_never_decreases_with_duration(terms: RateTerms, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert terms.cost(low) <= terms.cost(high)
