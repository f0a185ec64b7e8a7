"""Number rules, caller-ID rules and the ported-number index."""

from __future__ import annotations

import random

import pytest

from lcr.model import CallerIdAction, CallerIdRule, NumberRule, parse_number_rule
from lcr.portability import PortabilityBuilder, PortabilityIndex


@pytest.mark.parametrize(
    ("rule", "number", "expected"),
    [
        pytest.param("44:2:0", "447700900123", "07700900123", id="national-format"),
        pytest.param("44:0:00", "447700900123", "00447700900123", id="add-international-prefix"),
        pytest.param("1:0:011", "447700900123", "447700900123", id="does-not-apply"),
        pytest.param(":2:", "447700900123", "7700900123", id="strip-any"),
        pytest.param("/^44(7\\d+)$/0\\1/", "447700900123", "07700900123", id="regex"),
        pytest.param("/^33/0033/", "447700900123", "447700900123", id="regex-no-match"),
    ],
)
def test_number_rules(rule: str, number: str, expected: str) -> None:
    parsed = parse_number_rule(rule)
    assert parsed.apply(number) == expected
    assert parse_number_rule(parsed.describe()) == parsed


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("44:x:0", id="strip-not-a-number"),
        pytest.param("44:2", id="two-fields"),
        pytest.param("/[/x/", id="bad-regex"),
        pytest.param("44:0:", id="does-nothing"),
        pytest.param("4a:1:0", id="letters"),
    ],
)
def test_bad_number_rules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number_rule(text)


POOL = ("442070000001", "442070000002", "442070000003")


@pytest.mark.parametrize(
    ("rule", "calling", "expected"),
    [
        pytest.param(CallerIdRule("r"), "441632960001", "441632960001", id="pass"),
        pytest.param(CallerIdRule("r", CallerIdAction.WITHHOLD), "441632960001", "", id="withhold"),
        pytest.param(
            CallerIdRule("r", CallerIdAction.REWRITE, strip=2, add="0"),
            "441632960001",
            "01632960001",
            id="strip-add",
        ),
        pytest.param(
            CallerIdRule("r", CallerIdAction.REWRITE, add="+"),
            "441632960001",
            "+441632960001",
            id="add-plus",
        ),
        pytest.param(
            CallerIdRule("r", CallerIdAction.REWRITE, strip=2, when="33"),
            "441632960001",
            "441632960001",
            id="only-when",
        ),
        pytest.param(
            CallerIdRule("r", CallerIdAction.REWRITE, add="+"), "", "", id="nothing-to-rewrite"
        ),
        pytest.param(
            CallerIdRule("r", CallerIdAction.REPLACE, pool_id="p"),
            "441632960001",
            "442070000001",
            id="pool-stable",
        ),
    ],
)
def test_caller_id_rules(rule: CallerIdRule, calling: str, expected: str) -> None:
    assert rule.apply(calling, POOL) == expected


def test_a_pool_spreads_callers_and_keeps_each_on_one_number() -> None:
    rule = CallerIdRule("r", CallerIdAction.REPLACE, pool_id="p")
    chosen = {rule.apply(f"4416329{n:05d}", POOL) for n in range(300)}
    assert chosen == set(POOL)
    assert len({rule.apply("441632960001", POOL) for _ in range(5)}) == 1
    with pytest.raises(ValueError, match="pool"):
        CallerIdRule("r", CallerIdAction.REPLACE)


def test_portability_lookup_in_any_row_order_later_rows_win() -> None:
    builder = PortabilityBuilder()
    builder.add("447700900123", "447400000001", "vodafone")
    builder.add("0123", "9", "x")  # leading zero kept apart from "123"
    builder.add("123", "8", "y")
    builder.add("447700900123", "447400000002", "o2")
    index = builder.build()
    assert len(index) == 3
    found = index.lookup("447700900123")
    assert found is not None and (found.routing_number, found.carrier_id) == ("447400000002", "o2")
    assert index.lookup("0123") is not None and index.lookup("0123").routing_number == "9"  # type: ignore[union-attr]
    assert index.lookup("123").routing_number == "8"  # type: ignore[union-attr]
    assert index.lookup("447700900124") is None
    assert index.lookup("not-a-number") is None
    assert PortabilityIndex.empty().lookup("447700900123") is None


def test_portability_index_matches_a_dict_on_random_rows() -> None:
    rnd = random.Random(5)
    truth: dict[str, tuple[str, str]] = {}
    builder = PortabilityBuilder()
    for _ in range(5000):
        number = str(rnd.randrange(10**10, 10**12))
        value = (str(rnd.randrange(10**9)), f"net{rnd.randrange(30)}")
        truth[number] = value
        builder.add(number, *value)
    index = builder.build()
    assert len(index) == len(truth)
    for number, (routing, carrier) in truth.items():
        found = index.lookup(number)
        assert found is not None and (found.routing_number, found.carrier_id) == (routing, carrier)
    assert index.nbytes() == len(truth) * 14
    with pytest.raises(ValueError):
        builder.add("1" * 19, "1")


def test_number_rule_validation() -> None:
    with pytest.raises(ValueError):
        NumberRule(strip=-1, add="0")
