"""Longest-prefix match with effective dates and time-of-day bands."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.deck import ALL_WEEKDAYS, Band, Deck, Rate, format_weekdays
from rating.engine import local_position


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def rate(
    prefix: str,
    micros: int,
    start: str = "2026-01-01",
    end: str | None = None,
    band: Band | None = None,
) -> Rate:
    return Rate(
        prefix=prefix,
        destination=f"dest {prefix}",
        rate_micros=micros,
        connect_fee_micros=0,
        first_block_s=60,
        increment_s=60,
        grace_s=0,
        effective_from=ts(start),
        effective_to=ts(end) if end else None,
        band=band,
    )


NOW = ts("2026-06-01T12:00:00")


def micros(found: Rate | None) -> int | None:
    return None if found is None else found.rate_micros


def test_longest_prefix_wins() -> None:
    deck = Deck("d", "USD", [rate("44", 1), rate("4420", 2), rate("442071", 3)])
    assert micros(deck.lookup("442071234567", NOW)) == 3
    assert micros(deck.lookup("442081234567", NOW)) == 2
    assert micros(deck.lookup("447700900000", NOW)) == 1
    assert deck.lookup("33123", NOW) is None
    assert deck.lookup("4", NOW) is None


def test_effective_dates_at_the_boundary_second() -> None:
    deck = Deck(
        "d",
        "USD",
        [
            rate("44", 10, start="2026-01-01", end="2026-07-01"),
            rate("44", 20, start="2026-07-01"),
        ],
    )
    switch = ts("2026-07-01")
    assert micros(deck.lookup("4420", switch - 1)) == 10
    assert micros(deck.lookup("4420", switch)) == 20
    assert deck.lookup("4420", ts("2025-12-31T23:59:59")) is None


def test_a_prefix_not_yet_in_force_falls_through_to_a_shorter_one() -> None:
    deck = Deck("d", "USD", [rate("44", 1), rate("4420", 2, start="2026-09-01")])
    assert micros(deck.lookup("44201", NOW)) == 1
    assert micros(deck.lookup("44201", ts("2026-09-01"))) == 2


def test_time_of_day_bands() -> None:
    peak = Band(0b0011111, 8 * 3600, 18 * 3600)
    off_weekday_evening = Band(0b0011111, 18 * 3600, 8 * 3600)
    weekend = Band(0b1100000, 0, 86400)
    deck = Deck(
        "d",
        "USD",
        [
            rate("44", 100, band=peak),
            rate("44", 50, band=off_weekday_evening),
            rate("44", 20, band=weekend),
        ],
    )
    assert micros(deck.lookup("44", NOW, 0, 9 * 3600)) == 100
    assert micros(deck.lookup("44", NOW, 0, 19 * 3600)) == 50
    # Tuesday 03:00 is Monday evening's overnight band.
    assert micros(deck.lookup("44", NOW, 1, 3 * 3600)) == 50
    assert micros(deck.lookup("44", NOW, 6, 12 * 3600)) == 20


def test_band_across_dst_in_the_accounts_zone() -> None:
    london = ZoneInfo("Europe/London")
    # 29 March 2026, clocks go from 01:00 GMT to 02:00 BST.
    peak = Band(ALL_WEEKDAYS, 2 * 3600, 3 * 3600)
    deck = Deck("d", "USD", [rate("44", 100, band=peak), rate("4", 1)])
    before = ts("2026-03-29T00:59:59")  # 00:59:59 GMT
    after = ts("2026-03-29T01:00:00")  # 02:00:00 BST
    assert local_position(before, london) == (6, 3599)
    assert local_position(after, london) == (6, 7200)
    assert micros(deck.lookup("44", before, *local_position(before, london))) == 1
    assert micros(deck.lookup("44", after, *local_position(after, london))) == 100


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        pytest.param(
            Band(0b11111, 28800, 64800), Band(0b11111, 64800, 28800), False, id="peak-off"
        ),
        pytest.param(Band(0b10000, 79200, 3600), Band(0b100000, 0, 7200), True, id="fri-night-sat"),
        pytest.param(Band(0b1, 0, 3600), Band(0b10, 0, 3600), False, id="different-days"),
        pytest.param(Band(0b1000000, 82800, 3600), Band(0b1, 0, 1800), True, id="sun-wraps-mon"),
    ],
)
def test_band_overlap(a: Band, b: Band, overlap: bool) -> None:
    assert a.overlaps(b) is overlap
    assert b.overlaps(a) is overlap


def test_weekday_formatting() -> None:
    assert format_weekdays(0b0011111) == "mon-fri"
    assert format_weekdays(0b1100000) == "sat-sun"
    assert format_weekdays(0b1010101) == "mon,wed,fri,sun"
    assert format_weekdays(ALL_WEEKDAYS) == "all"


def test_short_prefixes_and_numbers() -> None:
    deck = Deck("d", "USD", [rate("1", 1), rate("12345", 2), rate("7", 3), rate("79", 4)])
    assert micros(deck.lookup("1999", NOW)) == 1
    assert micros(deck.lookup("1", NOW)) == 1
    assert micros(deck.lookup("123456", NOW)) == 2
    assert micros(deck.lookup("1234", NOW)) == 1
    assert micros(deck.lookup("7", NOW)) == 3
    assert micros(deck.lookup("791", NOW)) == 4
    assert deck.lookup("2", NOW) is None
    assert deck.lookup("", NOW) is None


T0 = 1_767_225_600


@st.composite
def dated_rates(draw: st.DrawFn) -> list[Rate]:
    """Rates over colliding prefixes, some not yet or no longer in force, some banded."""
    out = []
    for prefix in draw(st.lists(st.text("0129#", max_size=5), max_size=12)):
        for _ in range(draw(st.integers(1, 3))):
            start = draw(st.sampled_from([0, T0 - 10, T0 + 10]))
            end = draw(st.sampled_from([None, T0, T0 + 20]))
            band = draw(st.sampled_from([None, Band(0b0000001, 0, 43_200), Band(0b1, 80_000, 100)]))
            out.append(
                Rate(
                    prefix,
                    f"d{len(out)}",
                    len(out),
                    0,
                    60,
                    60,
                    0,
                    start,
                    end if end and end > start else None,
                    band,
                )
            )
    return out


def naive_lookup(rates: list[Rate], number: str, at: int, weekday: int, second: int) -> Rate | None:
    """Every prefix of the number, longest first; each one's rates newest first."""
    for length in range(len(number), -1, -1):
        mine = [r for r in rates if r.prefix == number[:length]]
        for r in sorted(mine, key=lambda r: -r.effective_from):
            if r.in_force(at) and (r.band is None or r.band.contains(weekday, second)):
                return r
    return None


@settings(max_examples=400, deadline=None)
@given(
    dated_rates(),
    st.lists(st.text("0129#", max_size=8), min_size=1, max_size=6),
    st.sampled_from([T0 - 5, T0, T0 + 15, T0 + 30]),
    st.integers(0, 6),
    st.sampled_from([0, 50, 43_199, 80_001, 86_399]),
)
def test_lookup_is_the_longest_prefix_with_a_rate_in_force(
    rates: list[Rate], numbers: list[str], at: int, weekday: int, second: int
) -> None:
    deck = Deck("d", "USD", rates)
    for number in numbers:
        assert deck.lookup(number, at, weekday, second) is naive_lookup(
            rates, number, at, weekday, second
        )
