"""The deck CSV format: what carriers send is read; anything wrong names its line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rating.deck_csv import DeckDefaults, DeckFormatError, parse_deck_csv

ROOT = Path(__file__).resolve().parents[2]


def parse(text: str, **kwargs: object) -> list:  # type: ignore[type-arg]
    return parse_deck_csv(text.encode(), filename="deck.csv", **kwargs)  # type: ignore[arg-type]


def test_the_sample_deck_in_config_parses() -> None:
    rows = parse_deck_csv((ROOT / "config" / "rates.sample.csv").read_bytes())
    assert len(rows) >= 10
    assert {r.rate.prefix for r in rows} >= {"44", "4420", "1"}


def test_columns_by_alias_and_defaults() -> None:
    rows = parse(
        "Dial Code;Description;Price;Connection Fee;Billing\n"
        "+4420;UK London;0.0125;0.05;30/6\n"
        "33;France;0.02;;\n",
        defaults=DeckDefaults(first_block_s=60, increment_s=60, effective_from=1000),
    )
    london, france = (r.rate for r in rows)
    assert london.prefix == "4420"
    assert (london.rate_micros, london.connect_fee_micros) == (12_500, 50_000)
    assert (london.first_block_s, london.increment_s) == (30, 6)
    assert (france.first_block_s, france.increment_s, france.effective_from) == (60, 60, 1000)
    assert rows[0].line == 2


def test_dates_bands_and_tab_delimiter() -> None:
    rows = parse(
        "prefix\trate\teffective_from\teffective_to\tweekdays\ttime_from\ttime_to\n"
        "44\t0.01\t2026-12-01\t2027-01-01T00:00:00Z\tmon-fri\t08:00\t18:00\n"
        "44\t0.005\t2026-12-01\t2027-01-01\tmon-fri\t18:00\t24:00\n"
        "44\t0.002\t2026-12-01\t2027-01-01\tsat,sun\t\t\n"
    )
    peak = rows[0].rate
    assert peak.effective_from == int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())
    assert peak.effective_to == int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    assert peak.band is not None and peak.band.describe() == "mon-fri 08:00-18:00"
    assert rows[2].rate.band is not None and rows[2].rate.band.weekdays == 0b1100000


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param("44x,0.01\n", "deck.csv:2: prefix '44x' must be 1-20 digits", id="bad-prefix"),
        pytest.param("44,-0.01\n", "deck.csv:2: rate '-0.01' is negative", id="negative-rate"),
        pytest.param("44,0.0000001\n", "deck.csv:2: '0.0000001' has more than 6", id="sub-micro"),
        pytest.param("44,\n", "deck.csv:2: rate is empty", id="empty-rate"),
        pytest.param("44,abc\n", "deck.csv:2: 'abc' is not a number", id="garbage-rate"),
        pytest.param(
            "44,0.01\n33,0.02\n44,0.03\n",
            "deck.csv:4: duplicate prefix 44 (also on line 2)",
            id="duplicate",
        ),
        pytest.param("44,0.01,extra\n", "deck.csv:2: expected 2 fields, found 3", id="fields"),
    ],
)
def test_malformed_rows_name_their_line(body: str, fragment: str) -> None:
    with pytest.raises(DeckFormatError) as caught:
        parse("prefix,rate\n" + body)
    assert fragment in str(caught.value)


def test_overlapping_effective_ranges() -> None:
    with pytest.raises(DeckFormatError, match=r"deck\.csv:3: overlapping rates for prefix 44"):
        parse(
            "prefix,rate,effective_from,effective_to\n"
            "44,0.01,2026-01-01,2026-07-01\n"
            "44,0.02,2026-06-01,\n"
        )
    # Adjacent ranges are fine.
    rows = parse(
        "prefix,rate,effective_from,effective_to\n"
        "44,0.01,2026-01-01,2026-07-01\n"
        "44,0.02,2026-07-01,\n"
    )
    assert len(rows) == 2


def test_overlapping_bands() -> None:
    with pytest.raises(DeckFormatError, match=r"deck\.csv:3: overlapping rates for prefix 44"):
        parse(
            "prefix,rate,weekdays,time_from,time_to\n"
            "44,0.01,mon-fri,08:00,18:00\n"
            "44,0.02,fri,17:00,23:00\n"
        )


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(DeckFormatError) as caught:
        parse("prefix,rate\nx,1\n44,-1\n45,1\ny,2\n")
    assert [e.split(":")[1] for e in caught.value.errors] == ["2", "3", "5"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(
            b"prefix,rate\n44,0.01\n33,\xe9\n", "deck.csv:3: not valid utf-8", id="latin1"
        ),
        pytest.param(b"", "deck.csv:1: the file is empty", id="empty"),
        pytest.param(b"prefix,rate\n", "header but no rates", id="header-only"),
        pytest.param(b"code,colour\n1,2\n", "unknown column 'colour'", id="unknown-column"),
        pytest.param(b"destination,rate\nx,1\n", "missing column 'prefix'", id="no-prefix"),
    ],
)
def test_file_level_problems(data: bytes, fragment: str) -> None:
    with pytest.raises(DeckFormatError, match=fragment):
        parse_deck_csv(data, filename="deck.csv")


def test_other_encodings_on_request_and_bom() -> None:
    rows = parse_deck_csv(
        b"prefix,destination,rate\n33,R\xe9union,0.1\n", filename="x", encoding="latin-1"
    )
    assert rows[0].rate.destination == "Réunion"
    rows = parse_deck_csv(b"\xef\xbb\xbfprefix,rate\n1,0.1\n", filename="x")
    assert rows[0].rate.prefix == "1"
