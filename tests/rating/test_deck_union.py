"""DeckUnion: one walk over several decks finds, for each, what its own lookup finds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rating.deck import Band, Deck, DeckUnion, Rate

T0 = 1_767_225_600
DIGITS = "019#"

prefixes = st.text(DIGITS, max_size=4)


@st.composite
def decks(draw: st.DrawFn, deck_id: str, bands: bool = True) -> Deck:
    """A deck whose prefixes collide with other decks' and have dated (and banded) rates."""
    rates = []
    for prefix in draw(st.lists(prefixes, max_size=8)):
        for _ in range(draw(st.integers(1, 3))):
            start = draw(st.sampled_from([0, T0 - 10, T0 + 10]))
            end = draw(st.sampled_from([None, T0, T0 + 20]))
            band = (
                draw(st.sampled_from([None, Band(0b0000001, 0, 43_200), Band(0b1, 80_000, 100)]))
                if bands
                else None
            )
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


@settings(max_examples=400, deadline=None)
@given(
    st.booleans().flatmap(
        lambda bands: st.lists(st.integers(0, 5), min_size=0, max_size=6).flatmap(
            lambda ids: st.tuples(*(decks(f"d{i}", bands) for i in range(len(ids))))
        )
    ),
    st.lists(st.text(DIGITS, max_size=7), min_size=1, max_size=5),
    st.sampled_from([T0 - 5, T0, T0 + 15, T0 + 30]),
    st.integers(0, 6),
    st.sampled_from([0, 50, 43_199, 80_001, 86_399]),
    st.integers(0, 63),
    st.sampled_from([None, T0 - 5, T0, T0 + 15, T0 + 30]),
)
def test_union_finds_each_decks_own_rate(
    members: tuple[Deck, ...],
    numbers: list[str],
    at: int,
    weekday: int,
    second: int,
    wanted: int,
    built_at: int | None,
) -> None:
    # Built on the rates in force at one moment (or on none), asked about any moment.
    union = DeckUnion(members, built_at)
    for number in numbers:
        found = union.lookup(number, at, weekday, second, wanted)
        assert len(found) == len(members)
        for slot, deck in enumerate(members):
            expected = deck.lookup(number, at, weekday, second) if wanted >> slot & 1 else None
            assert found[slot] is expected
        if union.plain(at):
            # The fast walk: each deck's longest prefix and its one rate are the lookup's.
            prefixes = union.prefixes(number, wanted)
            assert [
                None if prefix is None else union.rate(slot, prefix)
                for slot, prefix in enumerate(prefixes)
            ] == found


def test_a_deck_with_history_is_walked_on_the_rates_in_force() -> None:
    old = Rate("44", "uk", 1, 0, 60, 60, 0, 0, T0)  # ended by the import at T0
    new = Rate("44", "uk", 2, 0, 60, 60, 0, T0, None)
    gone = Rate("447", "uk mobile", 3, 0, 60, 60, 0, 0, T0)  # no longer offered
    soon = Rate("4420", "london", 4, 0, 60, 60, 0, T0 + 3600, None)  # scheduled
    deck = Deck("d", "USD", [old, new, gone, soon])
    current, since, until = deck.window(T0 + 10) or ({}, 0, 0)
    assert (current, since, until) == ({"44": new}, T0, T0 + 3600)
    assert deck.window(T0 - 1) == ({"44": old, "447": gone}, 0, T0)
    union = DeckUnion([deck], T0 + 10)
    assert union.plain(T0 + 10) and union.until == T0 + 3600
    assert [union.rate(0, p) if p else None for p in union.prefixes("447700900", 1)] == [new]
    # Outside the moment it was built on, each deck's own walk answers.
    assert not union.plain(T0 + 3600) and not union.covers(T0 - 1)
    assert union.lookup("442071234", T0 + 3600, 0, 0, 1) == [soon]
    assert union.lookup("447700900", T0 - 1, 0, 0, 1) == [gone]
    # A banded rate: no moment makes the deck plain.
    banded = Deck("b", "USD", [Rate("44", "uk", 5, 0, 60, 60, 0, 0, None, Band(0b1, 0, 3600))])
    assert banded.window(T0) is None
    assert not DeckUnion([deck, banded], T0).plain(T0)


def test_a_shared_prefix_probes_each_deck_once_and_shorter_prefixes_fill_the_rest() -> None:
    a = Deck("a", "USD", [Rate("44", "uk", 1, 0, 60, 60, 0, 0, None)])
    b = Deck("b", "USD", [Rate("447", "uk mobile", 2, 0, 60, 60, 0, 0, None)])
    c = Deck("c", "USD", [Rate("447", "uk mobile", 3, 0, 60, 60, 0, T0 + 1, None)])
    union = DeckUnion([a, b, c])
    assert len(union) == 2
    found = union.lookup("447700900123", T0, 0, 0, 0b111)
    assert [r.rate_micros if r else None for r in found] == [1, 2, None]
    assert union.lookup("447700900123", T0 + 1, 0, 0, 0b101)[2] is not None
