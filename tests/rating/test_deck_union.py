"""DeckUnion: one walk over several decks finds, for each, what its own lookup finds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rating.deck import Band, Deck, DeckUnion, Rate

T0 = 1_767_225_600
DIGITS = "019#"

prefixes = st.text(DIGITS, max_size=4)


@st.composite
def decks(draw: st.DrawFn, deck_id: str) -> Deck:
    """A deck whose prefixes collide with other decks' and have dated and banded rates."""
    rates = []
    for prefix in draw(st.lists(prefixes, max_size=8)):
        for _ in range(draw(st.integers(1, 3))):
            start = draw(st.sampled_from([0, T0 - 10, T0 + 10]))
            end = draw(st.sampled_from([None, T0, T0 + 20]))
            band = draw(st.sampled_from([None, Band(0b0000001, 0, 43_200), Band(0b1, 80_000, 100)]))
            rates.append(
                Rate(
                    prefix,
                    "d",
                    1_000,
                    0,
                    60,
                    60,
                    0,
                    start,
                    end if end and end > start else None,
                    band,
                )
            )
    return Deck(deck_id, "USD", rates)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=0, max_size=6).flatmap(
        lambda ids: st.tuples(*(decks(f"d{i}") for i in range(len(ids))))
    ),
    st.lists(st.text(DIGITS, max_size=7), min_size=1, max_size=5),
    st.sampled_from([T0 - 5, T0, T0 + 15, T0 + 30]),
    st.integers(0, 6),
    st.sampled_from([0, 50, 43_199, 80_001, 86_399]),
    st.integers(0, 63),
)
def test_union_finds_each_decks_own_rate(
    members: tuple[Deck, ...],
    numbers: list[str],
    at: int,
    weekday: int,
    second: int,
    wanted: int,
) -> None:
    union = DeckUnion(members)
    for number in numbers:
        found = union.lookup(number, at, weekday, second, wanted)
        assert len(found) == len(members)
        for slot, deck in enumerate(members):
            expected = deck.lookup(number, at, weekday, second) if wanted >> slot & 1 else None
            assert found[slot] is expected


def test_a_shared_prefix_probes_each_deck_once_and_shorter_prefixes_fill_the_rest() -> None:
    a = Deck("a", "USD", [Rate("44", "uk", 1, 0, 60, 60, 0, 0, None)])
    b = Deck("b", "USD", [Rate("447", "uk mobile", 2, 0, 60, 60, 0, 0, None)])
    c = Deck("c", "USD", [Rate("447", "uk mobile", 3, 0, 60, 60, 0, T0 + 1, None)])
    union = DeckUnion([a, b, c])
    assert len(union) == 2
    found = union.lookup("447700900123", T0, 0, 0, 0b111)
    assert [r.rate_micros if r else None for r in found] == [1, 2, None]
    assert union.lookup("447700900123", T0 + 1, 0, 0, 0b101)[2] is not None
