"""Integer money helpers: parsing, formatting and the closed-form inverses."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.money import (
    MoneyFormatError,
    Rounding,
    div_round,
    format_micros,
    max_input,
    max_scaled_input,
    parse_micros,
    scale,
)


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        pytest.param("0.0125", 12_500, id="rate"),
        pytest.param("1", 1_000_000, id="whole"),
        pytest.param(" 0.000001 ", 1, id="one-micro"),
        pytest.param("12.5e-3", 12_500, id="exponent"),
    ],
)
def test_parse_micros(text: str, micros: int) -> None:
    assert parse_micros(text) == micros


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("0.0000001", "more than 6 decimal places", id="sub-micro"),
        pytest.param("-1", "negative", id="negative"),
        pytest.param("abc", "not a number", id="garbage"),
        pytest.param("NaN", "not a finite number", id="nan"),
    ],
)
def test_parse_micros_refuses(text: str, fragment: str) -> None:
    with pytest.raises(MoneyFormatError, match=fragment):
        parse_micros(text)


def test_format_micros() -> None:
    assert format_micros(12_500) == "0.012500"
    assert format_micros(-1_500_000, 2) == "-1.50"
    assert format_micros(1_234_567, 2) == "1.234567"


@given(
    numerator=st.integers(0, 10**12),
    denominator=st.integers(1, 10**6),
    mode=st.sampled_from(list(Rounding)),
)
def test_div_round_is_within_one_of_the_exact_value(
    numerator: int, denominator: int, mode: Rounding
) -> None:
    exact = Fraction(numerator, denominator)
    result = div_round(numerator, denominator, mode)
    assert abs(result - exact) < 1
    if mode is Rounding.UP:
        assert result >= exact
    elif mode is Rounding.DOWN:
        assert result <= exact
    else:
        assert abs(result - exact) <= Fraction(1, 2)


@given(
    limit=st.integers(0, 10**9),
    numerator=st.integers(1, 10**6),
    denominator=st.integers(1, 10**6),
    mode=st.sampled_from(list(Rounding)),
)
def test_max_input_is_exact(limit: int, numerator: int, denominator: int, mode: Rounding) -> None:
    c = max_input(limit, numerator, denominator, mode)
    assert c >= 0
    assert div_round(c * numerator, denominator, mode) <= limit
    assert div_round((c + 1) * numerator, denominator, mode) > limit


@given(
    limit=st.integers(0, 10**9),
    factor=st.fractions(min_value=Fraction(1, 1000), max_value=1000),
    mode=st.sampled_from(list(Rounding)),
)
def test_max_scaled_input_is_exact(limit: int, factor: Fraction, mode: Rounding) -> None:
    c = max_scaled_input(limit, factor, mode)
    assert scale(c, factor, mode) <= limit < scale(c + 1, factor, mode)
