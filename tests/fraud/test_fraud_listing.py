"""Static lists: longest-prefix destination lists, DNC, high-risk ranges and opt-ins, CIDRs."""

from __future__ import annotations

import pytest

from fraud.list_loader import parse_range_file
from fraud.listing import (
    ListEntry,
    ListError,
    ListKind,
    NetworkSet,
    PrefixTable,
    Scope,
    StaticLists,
    check_entry,
    normalize_value,
)

G, A = Scope.GLOBAL, Scope.ACCOUNT


def entry(kind: ListKind, value: str, scope: Scope = G, owner: str = "") -> ListEntry:
    return ListEntry(kind, scope, owner, value, "test")


@pytest.mark.parametrize(
    ("entries", "number", "expected"),
    [
        pytest.param([], "4420", None, id="no-lists"),
        pytest.param([entry(ListKind.DENY, "44")], "4420", ("deny", "44"), id="global-deny"),
        pytest.param(
            [entry(ListKind.DENY, "44"), entry(ListKind.ALLOW, "4420")],
            "442071",
            ("allow", "4420"),
            id="longer-allow-wins",
        ),
        pytest.param(
            [entry(ListKind.ALLOW, "44"), entry(ListKind.DENY, "4470")],
            "447012",
            ("deny", "4470"),
            id="longer-deny-wins",
        ),
        pytest.param(
            [entry(ListKind.ALLOW, "44"), entry(ListKind.DENY, "44")],
            "4412",
            ("deny", "44"),
            id="same-list-same-prefix-deny-wins",
        ),
        pytest.param(
            [entry(ListKind.DENY, "44"), entry(ListKind.ALLOW, "44", A, "alice")],
            "4412",
            ("allow", "44"),
            id="account-beats-global-at-same-length",
        ),
        pytest.param(
            [entry(ListKind.DENY, "4412"), entry(ListKind.ALLOW, "44", A, "alice")],
            "441234",
            ("deny", "4412"),
            id="longer-global-beats-account",
        ),
        pytest.param(
            [entry(ListKind.DENY, "*", A, "alice"), entry(ListKind.ALLOW, "33", A, "alice")],
            "4412",
            ("deny", ""),
            id="exclusive-list-denies-the-rest",
        ),
        pytest.param(
            [entry(ListKind.DENY, "*", A, "alice"), entry(ListKind.ALLOW, "33", A, "alice")],
            "3312",
            ("allow", "33"),
            id="exclusive-list-allows-its-prefixes",
        ),
        pytest.param(
            [entry(ListKind.DENY, "44", A, "bob")], "4412", None, id="other-accounts-list"
        ),
        pytest.param(
            [entry(ListKind.BLOCKED, "882", A, "alice")],
            "88216",
            ("blocked", "882"),
            id="blocked-by-a-rule",
        ),
    ],
)
def test_destination_longest_prefix(
    entries: list[ListEntry], number: str, expected: tuple[str, str] | None
) -> None:
    found = StaticLists(entries).destination("alice", number)
    assert (None if found is None else (found.kind.value, found.prefix)) == expected


def test_dnc_is_exact_and_scoped() -> None:
    lists = StaticLists(
        [entry(ListKind.DNC, "+441234567"), entry(ListKind.DNC, "3311", A, "alice")]
    )
    assert lists.dnc("bob", "441234567") is Scope.GLOBAL
    assert lists.dnc("bob", "4412345678") is None
    assert lists.dnc("alice", "3311") is Scope.ACCOUNT
    assert lists.dnc("bob", "3311") is None


def test_high_risk_and_opt_in() -> None:
    lists = StaticLists(
        [
            ListEntry(ListKind.HIGH_RISK, G, "", "882", "config", "intl networks"),
            entry(ListKind.HIGH_RISK, "4470"),
            entry(ListKind.OPT_IN, "88216", A, "alice"),
            entry(ListKind.OPT_IN, "*", A, "carol"),
        ]
    )
    assert lists.high_risk("8821612") == ("882", "intl networks")
    assert lists.high_risk("4420") is None
    assert lists.opted_in("alice", "8821612") == "88216"
    assert lists.opted_in("alice", "8823") is None
    assert lists.opted_in("carol", "447012") == ""
    assert lists.opted_in("bob", "8821612") is None


@pytest.mark.parametrize(
    ("networks", "address", "inside"),
    [
        pytest.param(["10.0.0.0/24"], "10.0.0.9", True, id="v4-inside"),
        pytest.param(["10.0.0.0/24"], "10.0.1.9", False, id="v4-outside"),
        pytest.param(["10.0.0.0/24", "10.0.0.7/32"], "10.0.0.7", True, id="v4-host"),
        pytest.param(["0.0.0.0/0"], "203.0.113.5", True, id="v4-any"),
        pytest.param(["2001:db8::/32"], "2001:db8::1", True, id="v6-inside"),
        pytest.param(["2001:db8::/32"], "2001:db9::1", False, id="v6-outside"),
        pytest.param(["192.0.2.0/24"], "::ffff:192.0.2.1", True, id="v4-mapped"),
        pytest.param(["192.0.2.0/24"], "", False, id="no-address"),
        pytest.param(["192.0.2.0/24"], "not-an-ip", False, id="garbage"),
    ],
)
def test_network_set(networks: list[str], address: str, inside: bool) -> None:
    assert (address in NetworkSet(networks)) is inside


def test_prefix_table_longest() -> None:
    table = PrefixTable({"4": "a", "44": "b", "4420": "c"})
    assert table.longest("442071") == ("4420", "c")
    assert table.longest("4419") == ("44", "b")
    assert table.longest("33") is None
    assert table.longest("") is None


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        pytest.param(ListKind.DENY, "+44 ", "44", id="plus-and-spaces"),
        pytest.param(ListKind.DENY, "*", "", id="star"),
        pytest.param(ListKind.DNC, "+441234", "441234", id="dnc"),
        pytest.param(ListKind.IP, "10.0.0.9/24", "10.0.0.0/24", id="cidr-host-bits"),
    ],
)
def test_values_are_normalised(kind: ListKind, value: str, stored: str) -> None:
    assert normalize_value(kind, value) == stored


@pytest.mark.parametrize(
    ("item", "message"),
    [
        pytest.param(entry(ListKind.DENY, "44x"), "is not a prefix", id="bad-prefix"),
        pytest.param(entry(ListKind.DNC, "*"), "not an E.164 number", id="dnc-star"),
        pytest.param(entry(ListKind.HIGH_RISK, "*"), "needs a prefix", id="high-risk-star"),
        pytest.param(entry(ListKind.IP, "10.0.0.300", A, "a"), "not an IP", id="bad-ip"),
        pytest.param(entry(ListKind.OPT_IN, "882"), "account, not global", id="optin-global"),
        pytest.param(entry(ListKind.DENY, "44", A), "needs an owner", id="no-owner"),
        pytest.param(ListEntry(ListKind.DENY, G, "x", "44"), "no owner", id="global-owner"),
    ],
)
def test_bad_entries_are_refused(item: ListEntry, message: str) -> None:
    with pytest.raises(ListError, match=message):
        check_entry(item)


def test_range_file() -> None:
    entries = parse_range_file("# IRSF ranges\n882 , intl\n\n+4470\n", "ranges.txt")
    assert [(e.value, e.note) for e in entries] == [("882", "intl"), ("4470", "")]
    with pytest.raises(ListError, match=r"ranges.txt:2: 'x1' is not a prefix"):
        parse_range_file("882\nx1\n", "ranges.txt")
