"""Static lists compiled into in-memory indexes: destination allow/deny, DNC, high-risk ranges
with per-account opt-in, and source address allow lists per account and per peer.

Destination lists use longest-prefix semantics across the global list and the account's own:
the longest matching prefix decides; at equal length the account's entry beats the global one,
and within one list a deny beats an allow. The empty prefix (written ``*``) matches every
number, so ``deny *`` plus a few ``allow`` prefixes makes an account's list exclusive.
Destinations blocked by the fraud actions are account deny entries of their own kind
(``blocked``), so that ``ocsd fraud unblock`` removes exactly them.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class ListError(ValueError):
    """A list entry that cannot be used; the message says why."""


class ListKind(enum.Enum):
    """Which list an entry belongs to."""

    ALLOW = "allow"
    """Destination prefixes explicitly allowed (they override shorter denies)."""
    DENY = "deny"
    """Destination prefixes refused."""
    BLOCKED = "blocked"
    """Destination prefixes blocked for an account by a fraud action."""
    DNC = "dnc"
    """Exact numbers never to be called (Do-Not-Call)."""
    HIGH_RISK = "high_risk"
    """High-risk / premium-rate prefixes (IRSF ranges): need an opt-in."""
    OPT_IN = "optin"
    """High-risk prefixes an account may call (``*``: all of them)."""
    IP = "ip"
    """Source addresses (CIDR) an account's calls or a peer's requests may come from."""


class Scope(enum.Enum):
    """Whom an entry applies to."""

    GLOBAL = "global"
    ACCOUNT = "account"
    PEER = "peer"


ALLOWED_SCOPES: dict[ListKind, frozenset[Scope]] = {
    ListKind.ALLOW: frozenset({Scope.GLOBAL, Scope.ACCOUNT}),
    ListKind.DENY: frozenset({Scope.GLOBAL, Scope.ACCOUNT}),
    ListKind.BLOCKED: frozenset({Scope.ACCOUNT}),
    ListKind.DNC: frozenset({Scope.GLOBAL, Scope.ACCOUNT}),
    ListKind.HIGH_RISK: frozenset({Scope.GLOBAL}),
    ListKind.OPT_IN: frozenset({Scope.ACCOUNT}),
    ListKind.IP: frozenset({Scope.ACCOUNT, Scope.PEER}),
}


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One entry of one list."""

    kind: ListKind
    scope: Scope
    owner: str
    """The account id or peer name; empty for global entries."""
    value: str
    """A prefix (digits, empty for all), an exact number, or a CIDR."""
    source: str = ""
    """Where the entry comes from: ``config``, the actor who added it, or ``rule:<id>``."""
    note: str = ""


def normalize_value(kind: ListKind, value: str) -> str:
    """The stored form of a list value, or ``ListError``."""
    text = value.strip()
    if kind is ListKind.IP:
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ListError(f"{value!r} is not an IP address or CIDR") from None
    digits = text.removeprefix("+")
    if kind is ListKind.DNC:
        if not digits.isascii() or not digits.isdigit():
            raise ListError(f"{value!r} is not an E.164 number (digits, + optional)")
        return digits
    if digits in ("*", ""):
        if kind is ListKind.HIGH_RISK:
            raise ListError("a high-risk range needs a prefix, not '*'")
        return ""
    if not digits.isascii() or not digits.isdigit() or len(digits) > 20:
        raise ListError(f"{value!r} is not a prefix (1-20 digits, + optional, or *)")
    return digits


def check_entry(entry: ListEntry) -> ListEntry:
    """Validate scope and owner, normalise the value; return the entry to store."""
    if entry.scope not in ALLOWED_SCOPES[entry.kind]:
        allowed = " or ".join(sorted(s.value for s in ALLOWED_SCOPES[entry.kind]))
        raise ListError(f"a {entry.kind.value} entry is {allowed}, not {entry.scope.value}")
    if entry.scope is Scope.GLOBAL and entry.owner:
        raise ListError("a global entry has no owner")
    if entry.scope is not Scope.GLOBAL and not entry.owner:
        raise ListError(f"a {entry.scope.value} entry needs an owner")
    value = normalize_value(entry.kind, entry.value)
    if value == entry.value:
        return entry
    return ListEntry(entry.kind, entry.scope, entry.owner, value, entry.source, entry.note)


def display_prefix(prefix: str) -> str:
    """A prefix as operators write it (``*`` for all numbers)."""
    return prefix or "*"


class PrefixTable(Generic[T]):
    """Longest-prefix lookup over digit strings."""

    __slots__ = ("_lengths", "_table")

    def __init__(self, items: Mapping[str, T]) -> None:
        self._table = dict(items)
        self._lengths = tuple(sorted({len(k) for k in self._table}, reverse=True))

    def __len__(self) -> int:
        return len(self._table)

    def longest(self, number: str) -> tuple[str, T] | None:
        """The longest prefix of ``number`` in the table and its value."""
        table = self._table
        size = len(number)
        for length in self._lengths:
            if length <= size:
                found = table.get(number[:length])
                if found is not None:
                    return number[:length], found
        return None


@functools.lru_cache(maxsize=65_536)
def _address(text: str) -> tuple[int, int] | None:
    """An address as (version, integer), IPv4-mapped IPv6 as IPv4; None if not an address.
    Callers come from a few thousand switches and customers: parsing each once is enough."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version, int(ip)


class NetworkSet:
    """Membership of an address in a set of IPv4/IPv6 networks (most specific first)."""

    __slots__ = ("_by_version", "networks")

    def __init__(self, networks: Iterable[str]) -> None:
        parsed = sorted(
            {ipaddress.ip_network(n, strict=False) for n in networks},
            key=lambda n: (n.version, n.prefixlen),
        )
        self.networks = tuple(str(n) for n in parsed)
        by_version: dict[int, dict[int, set[int]]] = {}
        for network in parsed:
            lengths = by_version.setdefault(network.version, {})
            lengths.setdefault(network.prefixlen, set()).add(int(network.network_address))
        self._by_version = {
            version: tuple(sorted(lengths.items(), reverse=True))
            for version, lengths in by_version.items()
        }

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        parsed = _address(address)
        if parsed is None:
            return False
        version, value = parsed
        lengths = self._by_version.get(version)
        if not lengths:
            return False
        bits = 32 if version == 4 else 128
        for prefixlen, addresses in lengths:
            mask = ((1 << prefixlen) - 1) << (bits - prefixlen) if prefixlen else 0
            if value & mask in addresses:
                return True
        return False


@dataclass(frozen=True, slots=True)
class DestinationMatch:
    """The entry that decides a destination: an allow, a deny or a block."""

    kind: ListKind
    prefix: str
    scope: Scope
    source: str


_DEST_RANK = {ListKind.ALLOW: 0, ListKind.BLOCKED: 1, ListKind.DENY: 2}


class StaticLists:
    """Every list, indexed for the call path; immutable once built."""

    def __init__(self, entries: Iterable[ListEntry] = ()) -> None:
        dest_global: dict[str, DestinationMatch] = {}
        dest_account: dict[str, dict[str, DestinationMatch]] = {}
        dnc_global: set[str] = set()
        dnc_account: dict[str, set[str]] = {}
        high_risk: dict[str, str] = {}
        opt_in: dict[str, dict[str, str]] = {}
        ip_account: dict[str, list[str]] = {}
        ip_peer: dict[str, list[str]] = {}
        self.entries: tuple[ListEntry, ...] = tuple(check_entry(e) for e in entries)
        for entry in self.entries:
            kind, value = entry.kind, entry.value
            if kind in _DEST_RANK:
                table = (
                    dest_global
                    if entry.scope is Scope.GLOBAL
                    else dest_account.setdefault(entry.owner, {})
                )
                match = DestinationMatch(kind, value, entry.scope, entry.source)
                current = table.get(value)
                if current is None or _DEST_RANK[kind] > _DEST_RANK[current.kind]:
                    table[value] = match
            elif kind is ListKind.DNC:
                if entry.scope is Scope.GLOBAL:
                    dnc_global.add(value)
                else:
                    dnc_account.setdefault(entry.owner, set()).add(value)
            elif kind is ListKind.HIGH_RISK:
                high_risk[value] = entry.note or entry.source
            elif kind is ListKind.OPT_IN:
                opt_in.setdefault(entry.owner, {})[value] = entry.source
            elif kind is ListKind.IP:
                target = ip_account if entry.scope is Scope.ACCOUNT else ip_peer
                target.setdefault(entry.owner, []).append(value)
        self._dest_global = PrefixTable(dest_global)
        self._dest_account = {k: PrefixTable(v) for k, v in dest_account.items()}
        self._dnc_global = frozenset(dnc_global)
        self._dnc_account = {k: frozenset(v) for k, v in dnc_account.items()}
        self._high_risk = PrefixTable(high_risk)
        self._opt_in = {k: PrefixTable(v) for k, v in opt_in.items()}
        self._ip_account = {k: NetworkSet(v) for k, v in ip_account.items()}
        self._ip_peer = {k: NetworkSet(v) for k, v in ip_peer.items()}

    def destination(self, account_id: str, number: str) -> DestinationMatch | None:
        """The allow, deny or block entry deciding ``number`` for the account, if any."""
        found = self._dest_global.longest(number)
        own_table = self._dest_account.get(account_id)
        if own_table is not None:
            own = own_table.longest(number)
            if own is not None and (found is None or len(own[0]) >= len(found[0])):
                return own[1]
        return found[1] if found is not None else None

    def dnc(self, account_id: str, number: str) -> Scope | None:
        """Whether ``number`` is on the global or the account's Do-Not-Call list."""
        if number in self._dnc_global:
            return Scope.GLOBAL
        own = self._dnc_account.get(account_id)
        if own is not None and number in own:
            return Scope.ACCOUNT
        return None

    def high_risk(self, number: str) -> tuple[str, str] | None:
        """The high-risk range ``number`` is in (prefix, label), if any."""
        return self._high_risk.longest(number)

    def opted_in(self, account_id: str, number: str) -> str | None:
        """The account's opt-in prefix covering ``number`` (``""`` for all), if any."""
        own = self._opt_in.get(account_id)
        if own is None:
            return None
        found = own.longest(number)
        return None if found is None else found[0]

    def account_networks(self, account_id: str) -> NetworkSet | None:
        """The networks the account's calls may come from (None: no restriction)."""
        return self._ip_account.get(account_id)

    def peer_networks(self, peer: str) -> NetworkSet | None:
        """The networks a peer's requests may come from (None: no restriction)."""
        return self._ip_peer.get(peer)

    def counts(self) -> dict[str, int]:
        """How many entries of each kind (for logs on reload)."""
        out = {kind.value: 0 for kind in ListKind}
        for entry in self.entries:
            out[entry.kind.value] += 1
        return out


__all__ = [
    "DestinationMatch",
    "ListEntry",
    "ListError",
    "ListKind",
    "NetworkSet",
    "PrefixTable",
    "Scope",
    "StaticLists",
    "check_entry",
    "display_prefix",
    "normalize_value",
]
