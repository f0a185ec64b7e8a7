"""Master data as the daemon holds it: tenants, accounts, identities (immutable snapshots)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from balances.model import NO_LIMIT, AccountKind, AccountLimits, AccountStatus


class TenantStatus(enum.Enum):
    """A suspended tenant suspends every account below it."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class IdentityKind(enum.Enum):
    """How a call is mapped to an account."""

    E164 = "e164"
    """The exact calling (or subscriber) number, normalised."""
    E164_PREFIX = "e164_prefix"
    """A number block: the longest matching prefix wins."""
    SIP_URI = "sip_uri"
    USERNAME = "username"
    """RADIUS User-Name or Diameter NAI / User-Name."""
    IP = "ip"
    """A source address or CIDR (the switch or gateway), optionally with a tech prefix."""


@dataclass(frozen=True, slots=True)
class Tenant:
    """The operator (no parent) or a reseller at any depth."""

    tenant_id: str
    parent_id: str | None
    name: str
    currency: str
    plan_id: str | None
    """What this tenant pays its parent (None only for the operator at the root)."""
    status: TenantStatus = TenantStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Account:
    """A customer account: who pays for calls."""

    account_id: str
    tenant_id: str
    name: str
    kind: AccountKind
    currency: str
    credit_limit_micros: int
    daily_cap_micros: int | None
    monthly_cap_micros: int | None
    max_sessions: int | None
    timezone: str
    plan_id: str
    status: AccountStatus

    def limits(self, tenant_suspended: bool = False) -> AccountLimits:
        """The limits the balance store enforces for this account."""
        status = self.status
        if tenant_suspended and status is AccountStatus.ACTIVE:
            status = AccountStatus.SUSPENDED
        return AccountLimits(
            account_id=self.account_id,
            kind=self.kind,
            status=status,
            credit_limit_micros=self.credit_limit_micros
            if self.kind is AccountKind.POSTPAID
            else 0,
            daily_cap_micros=NO_LIMIT if self.daily_cap_micros is None else self.daily_cap_micros,
            monthly_cap_micros=(
                NO_LIMIT if self.monthly_cap_micros is None else self.monthly_cap_micros
            ),
            max_sessions=NO_LIMIT if self.max_sessions is None else self.max_sessions,
        )


@dataclass(frozen=True, slots=True)
class Identity:
    """One way a call is recognised as an account's."""

    account_id: str
    kind: IdentityKind
    value: str
    tech_prefix: str = ""
