"""Who a call belongs to and how it is priced: the master data indexed for the call path.

Built once from a ``MasterSnapshot`` (at start and whenever master data changes) and then
only read, so a reload swaps one object atomically while calls in progress keep the price they
started with.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from balances.model import AccountStatus
from ocsd.master import Account, Identity, IdentityKind, Tenant, TenantStatus
from ocsd.master_store import MasterSnapshot
from rating.currency import FxTable
from rating.dialplan import DialPlan
from rating.engine import Party, Rater

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Candidate:
    """One identity a request carries, in the order it should be tried."""

    kind: IdentityKind
    value: str


@dataclass(frozen=True, slots=True)
class Identified:
    """The account found for a request, and the called number once a tech prefix is removed."""

    account: Account
    via: IdentityKind
    called: str | None


class Directory:
    """Immutable indexes over master data for the call path."""

    def __init__(self, snapshot: MasterSnapshot, dial_plan: DialPlan | None = None) -> None:
        self.marker = snapshot.marker
        self.tenants = snapshot.tenants
        self.accounts = snapshot.accounts
        self.plans = snapshot.plans
        self.decks = snapshot.decks
        self.dial_plan = dial_plan or DialPlan()
        self.rater = Rater(snapshot.decks, snapshot.plans, FxTable(snapshot.exchange_rates))
        self._exact: dict[tuple[IdentityKind, str], str] = {}
        self._number_blocks: dict[str, str] = {}
        self._block_lengths: tuple[int, ...] = ()
        self._ip: dict[int, dict[tuple[int, int], list[tuple[str, str]]]] = {}
        self._index(snapshot.identities)
        self._zones: dict[str, ZoneInfo] = {}
        self._chains: dict[str, tuple[Party, ...]] = {}
        self._suspended_tenants = self._find_suspended_tenants()

    def _index(self, identities: Iterable[Identity]) -> None:
        lengths: set[int] = set()
        for identity in identities:
            if identity.kind is IdentityKind.E164_PREFIX:
                self._number_blocks[identity.value] = identity.account_id
                lengths.add(len(identity.value))
            elif identity.kind is IdentityKind.IP:
                network = ipaddress.ip_network(identity.value, strict=False)
                by_length = self._ip.setdefault(network.version, {})
                key = (network.prefixlen, int(network.network_address))
                by_length.setdefault(key, []).append((identity.tech_prefix, identity.account_id))
            else:
                self._exact[(identity.kind, identity.value)] = identity.account_id
        self._block_lengths = tuple(sorted(lengths, reverse=True))
        for entries in (e for by_length in self._ip.values() for e in by_length.values()):
            entries.sort(key=lambda entry: -len(entry[0]))

    def _find_suspended_tenants(self) -> frozenset[str]:
        suspended: set[str] = set()
        for tenant_id in self.tenants:
            current: Tenant | None = self.tenants[tenant_id]
            while current is not None:
                if current.status is TenantStatus.SUSPENDED:
                    suspended.add(tenant_id)
                    break
                current = self.tenants.get(current.parent_id) if current.parent_id else None
        return frozenset(suspended)

    def tenant_suspended(self, tenant_id: str) -> bool:
        """Whether a tenant or one of its ancestors is suspended."""
        return tenant_id in self._suspended_tenants

    def account_status(self, account: Account) -> AccountStatus:
        """The account's status, suspended when its tenant tree is."""
        if account.status is AccountStatus.ACTIVE and self.tenant_suspended(account.tenant_id):
            return AccountStatus.SUSPENDED
        return account.status

    def zone(self, account: Account) -> ZoneInfo:
        """The account's time zone."""
        return self._zone_by_name(account.timezone)

    def _zone_by_name(self, name: str) -> ZoneInfo:
        zone = self._zones.get(name)
        if zone is None:
            zone = self._zones[name] = ZoneInfo(name)
        return zone

    def chain(self, account: Account) -> tuple[Party, ...]:
        """The reseller chain from the operator down to the account."""
        cached = self._chains.get(account.account_id)
        if cached is not None:
            return cached
        tenants: list[Tenant] = []
        current = self.tenants.get(account.tenant_id)
        while current is not None:
            tenants.append(current)
            current = self.tenants.get(current.parent_id) if current.parent_id else None
        tenants.reverse()
        parties: list[Party] = []
        for parent, tenant in itertools.pairwise(tenants):
            assert tenant.plan_id is not None
            parties.append(
                Party(parent.tenant_id, tenant.tenant_id, tenant.plan_id, tenant.currency)
            )
        parties.append(
            Party(account.tenant_id, account.account_id, account.plan_id, account.currency)
        )
        chain = tuple(parties)
        self._chains[account.account_id] = chain
        return chain

    def identify(self, candidates: Iterable[Candidate]) -> Identified | None:
        """Return the account of the first candidate that maps to one."""
        for candidate in candidates:
            account_id = self._exact.get((candidate.kind, candidate.value))
            if account_id is None and candidate.kind is IdentityKind.E164:
                account_id = self._number_block(candidate.value)
            if account_id is not None:
                account = self.accounts.get(account_id)
                if account is not None:
                    return Identified(account, candidate.kind, None)
        return None

    def _number_block(self, number: str) -> str | None:
        size = len(number)
        for length in self._block_lengths:
            if length <= size:
                account_id = self._number_blocks.get(number[:length])
                if account_id is not None:
                    return account_id
        return None

    def identify_source(self, address: str, called: str) -> Identified | None:
        """Return the account of a source address, the tech prefix stripped from ``called``.

        The most specific network wins; within it the longest tech prefix that starts the
        called number, then an identity without tech prefix.
        """
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        by_length = self._ip.get(ip.version)
        if not by_length:
            return None
        bits = 32 if ip.version == 4 else 128
        value = int(ip)
        for prefixlen in sorted({k[0] for k in by_length}, reverse=True):
            mask = ((1 << prefixlen) - 1) << (bits - prefixlen) if prefixlen else 0
            entries = by_length.get((prefixlen, value & mask))
            if not entries:
                continue
            for tech_prefix, account_id in entries:
                if called.startswith(tech_prefix):
                    account = self.accounts.get(account_id)
                    if account is not None:
                        return Identified(account, IdentityKind.IP, called[len(tech_prefix) :])
        return None
