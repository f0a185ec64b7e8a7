"""Master data in the records database: tenants, plans, decks, accounts, identities, audit.

Every change to accounts, limits, plans, identities and rates is written with its audit
entries (who, when, field, before, after) in the same transaction. The audit log's highest id
doubles as the change marker the daemon polls to reload master data.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from balances.model import AccountKind, AccountStatus
from ocsd.master import Account, Identity, IdentityKind, Tenant, TenantStatus
from ocsd.sql_store import Database, DatabaseError
from rating.currency import ExchangeRate
from rating.deck import Band, Deck, Rate
from rating.deck_csv import DeckRow
from rating.money import Rounding, RoundingScope
from rating.plan import Bundle, BundlePeriod, Markup, TariffPlan

AUDIT_DETAIL_LIMIT = 5_000
"""Deck imports changing more prefixes than this are audited as one summary entry."""
RATE_HISTORY_S = 40 * 86_400
"""Rates that ended longer ago than this are not loaded into the daemon."""


class MasterDataError(ValueError):
    """A change that would make the master data inconsistent; the message says which."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PriceChange:
    """A prefix whose price differs between the deck before and after an import."""

    prefix: str
    destination: str
    before_micros: int | None
    after_micros: int | None


@dataclass(slots=True)
class ImportReport:
    """What a deck import did, compared with the deck in force at its effective time."""

    deck_id: str
    version_id: int
    effective_from: int
    rows: int
    new: list[PriceChange] = field(default_factory=list)
    removed: list[PriceChange] = field(default_factory=list)
    increased: list[PriceChange] = field(default_factory=list)
    decreased: list[PriceChange] = field(default_factory=list)
    changed_terms: list[PriceChange] = field(default_factory=list)
    unchanged: int = 0
    scheduled: int = 0
    clamped: int = 0
    skipped_expired: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        """One line of counts."""
        return (
            f"{self.rows} rows: {len(self.new)} new, {len(self.removed)} removed, "
            f"{len(self.increased)} increased, {len(self.decreased)} decreased, "
            f"{len(self.changed_terms)} other terms changed, {self.unchanged} unchanged, "
            f"{self.scheduled} scheduled later"
        )


@dataclass(frozen=True, slots=True)
class MasterSnapshot:
    """Everything the daemon needs from master data, loaded at once."""

    marker: int
    tenants: dict[str, Tenant]
    accounts: dict[str, Account]
    identities: tuple[Identity, ...]
    plans: dict[str, TariffPlan]
    decks: dict[str, Deck]
    exchange_rates: tuple[ExchangeRate, ...]


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MasterDataError(f"unknown IANA time zone {name!r}") from None


def normalize_identity(kind: IdentityKind, value: str) -> str:
    """Return the stored form of an identity value, or raise ``MasterDataError``."""
    text = value.strip()
    if kind in (IdentityKind.E164, IdentityKind.E164_PREFIX):
        digits = text.removeprefix("+")
        if not digits.isdigit() or not digits.isascii():
            raise MasterDataError(f"{kind.value} {value!r} must be digits (E.164, + optional)")
        return digits
    if kind is IdentityKind.IP:
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise MasterDataError(f"{value!r} is not an IP address or CIDR") from None
    if kind is IdentityKind.SIP_URI:
        lowered = text.lower()
        if lowered.startswith(("sip:", "sips:")):
            lowered = lowered.split(":", 1)[1]
        if "@" not in lowered:
            raise MasterDataError(f"SIP URI {value!r} needs user@host")
        return lowered
    if not text:
        raise MasterDataError("an identity value must not be empty")
    return text


class MasterStore:
    """Reads and changes master data; every change is audited."""

    def __init__(self, db: Database, actor: str = "ocsd") -> None:
        self.db = db
        self.actor = actor

    # -- audit ---------------------------------------------------------------------------

    def _audit(
        self,
        entity: str,
        entity_id: str,
        field_name: str,
        before: Any,
        after: Any,
        note: str = "",
        at: datetime | None = None,
    ) -> None:
        self.db.execute(
            "INSERT INTO audit_log (at, actor, entity, entity_id, field, before_value, "
            "after_value, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                at or utcnow(),
                self.actor,
                entity,
                entity_id,
                field_name,
                None if before is None else _text(before),
                None if after is None else _text(after),
                note,
            ),
        )

    def audit_entries(
        self, entity: str | None = None, entity_id: str | None = None, limit: int = 100
    ) -> list[tuple[Any, ...]]:
        """Return audit entries, newest first."""
        clauses, params = [], []
        if entity:
            clauses.append("entity = ?")
            params.append(entity)
        if entity_id:
            clauses.append("entity_id = ?")
            params.append(entity_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.db.query(
            "SELECT audit_id, at, actor, entity, entity_id, field, before_value, after_value, "
            f"note FROM audit_log {where} ORDER BY audit_id DESC LIMIT ?",
            (*params, limit),
        )

    def change_marker(self) -> int:
        """The highest audit id: it grows with every change to master data."""
        row = self.db.query_one("SELECT MAX(audit_id) FROM audit_log")
        return int(row[0]) if row and row[0] is not None else 0

    # -- currencies ----------------------------------------------------------------------

    def currency_exists(self, code: str) -> bool:
        """Whether ``code`` is a known currency."""
        return self.db.query_one("SELECT 1 FROM currencies WHERE code = ?", (code,)) is not None

    def _require_currency(self, code: str) -> None:
        if not self.currency_exists(code):
            raise MasterDataError(f"unknown currency {code!r} (add it with 'ocsd currency add')")

    def add_currency(self, code: str, name: str = "", minor_units: int = 2) -> None:
        """Register a currency (ISO 4217 code)."""
        if len(code) != 3 or not code.isalpha() or not code.isupper():
            raise MasterDataError(f"currency code {code!r} must be three capital letters")
        with self.db.transaction():
            if self.currency_exists(code):
                raise MasterDataError(f"currency {code} exists")
            self.db.execute(
                "INSERT INTO currencies (code, name, minor_units) VALUES (?, ?, ?)",
                (code, name, minor_units),
            )
            self._audit("currency", code, "created", None, name or code)

    def set_exchange_rate(
        self, base: str, quote: str, rate: Decimal, effective_from: datetime
    ) -> None:
        """Publish the value of one ``base`` in ``quote`` from ``effective_from`` on."""
        if not rate.is_finite() or rate <= 0:
            raise MasterDataError("an exchange rate must be a positive number")
        if base == quote:
            raise MasterDataError("an exchange rate needs two different currencies")
        with self.db.transaction():
            self._require_currency(base)
            self._require_currency(quote)
            previous = self.db.query_one(
                "SELECT rate FROM exchange_rates WHERE base = ? AND quote = ? AND "
                "effective_from = ?",
                (base, quote, effective_from),
            )
            self.db.execute(
                "DELETE FROM exchange_rates WHERE base = ? AND quote = ? AND effective_from = ?",
                (base, quote, effective_from),
            )
            self.db.execute(
                "INSERT INTO exchange_rates (base, quote, rate, effective_from, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (base, quote, str(rate), effective_from, utcnow()),
            )
            self._audit(
                "exchange_rate",
                f"{base}/{quote}@{effective_from.isoformat()}",
                "rate",
                previous[0] if previous else None,
                rate,
            )

    def exchange_rates(self) -> list[ExchangeRate]:
        """Every published exchange rate."""
        return [
            ExchangeRate(base, quote, Decimal(rate), int(_aware(start).timestamp()))
            for base, quote, rate, start in self.db.query(
                "SELECT base, quote, rate, effective_from FROM exchange_rates"
            )
        ]

    # -- decks ---------------------------------------------------------------------------

    def deck_currency(self, deck_id: str) -> str | None:
        """The currency of a deck, or None when it does not exist."""
        row = self.db.query_one("SELECT currency FROM rate_decks WHERE deck_id = ?", (deck_id,))
        return str(row[0]) if row else None

    def ensure_deck(self, deck_id: str, currency: str, name: str = "") -> None:
        """Create a deck if it does not exist; an existing deck keeps its currency."""
        existing = self.deck_currency(deck_id)
        if existing is not None:
            if existing != currency:
                raise MasterDataError(f"deck {deck_id} is priced in {existing}, not {currency}")
            return
        self._require_currency(currency)
        self.db.execute(
            "INSERT INTO rate_decks (deck_id, name, currency, created_at) VALUES (?, ?, ?, ?)",
            (deck_id, name or deck_id, currency, utcnow()),
        )
        self._audit("deck", deck_id, "created", None, currency)

    def _rates_from_rows(self, rows: Iterable[tuple[Any, ...]]) -> list[Rate]:
        out: list[Rate] = []
        names: dict[str, str] = {}
        bands: dict[tuple[int, int, int], Band] = {}
        for (
            prefix,
            destination,
            rate,
            fee,
            first,
            inc,
            grace,
            start,
            end,
            weekdays,
            t_from,
            t_to,
            version,
        ) in rows:
            band = None
            if weekdays is not None:
                key = (int(weekdays), int(t_from), int(t_to))
                band = bands.get(key)
                if band is None:
                    band = bands[key] = Band(*key)
            out.append(
                Rate(
                    prefix=prefix,
                    destination=names.setdefault(destination, destination),
                    rate_micros=int(rate),
                    connect_fee_micros=int(fee),
                    first_block_s=int(first),
                    increment_s=int(inc),
                    grace_s=int(grace),
                    effective_from=int(start),
                    effective_to=None if end is None else int(end),
                    band=band,
                    version=int(version),
                )
            )
        return out

    _RATE_COLUMNS = (
        "prefix, destination, rate_micros, connect_fee_micros, first_block_s, increment_s, "
        "grace_s, effective_from, effective_to, weekdays, time_from_s, time_to_s, version_id"
    )

    def load_deck(self, deck_id: str, since: int | None = None) -> Deck:
        """Load a deck's rates that were in force at or after ``since`` (all when None)."""
        row = self.db.query_one(
            "SELECT currency, name FROM rate_decks WHERE deck_id = ?", (deck_id,)
        )
        if row is None:
            raise MasterDataError(f"no deck {deck_id!r}")
        currency, name = row
        version_row = self.db.query_one(
            "SELECT MAX(version_id) FROM deck_versions WHERE deck_id = ?", (deck_id,)
        )
        version = int(version_row[0]) if version_row and version_row[0] is not None else 0
        condition = "(effective_to IS NULL OR effective_to > effective_from)"
        params: tuple[Any, ...] = (deck_id,)
        if since is not None:
            condition += " AND (effective_to IS NULL OR effective_to > ?)"
            params = (deck_id, since)
        rates = self._rates_from_rows(
            self.db.iterate(
                f"SELECT {self._RATE_COLUMNS} FROM rates WHERE deck_id = ? AND {condition}",
                params,
            )
        )
        return Deck(deck_id, str(currency), rates, name=str(name), version=version)

    def deck_ids(self) -> list[str]:
        """Every deck's id."""
        return [str(r[0]) for r in self.db.query("SELECT deck_id FROM rate_decks ORDER BY 1")]

    def deck_versions(self, deck_id: str) -> list[tuple[Any, ...]]:
        """The import history of a deck, newest first."""
        return self.db.query(
            "SELECT version_id, imported_at, imported_by, source, mode, effective_from, "
            "row_count, summary FROM deck_versions WHERE deck_id = ? ORDER BY version_id DESC",
            (deck_id,),
        )

    def import_deck(
        self,
        deck_id: str,
        currency: str,
        rows: Sequence[DeckRow],
        *,
        effective_from: int,
        mode: str = "replace",
        source: str = "",
        content: bytes = b"",
        dry_run: bool = False,
    ) -> ImportReport:
        """Import parsed rows into a deck as a new version, all or nothing.

        ``replace``: the file is the whole deck from ``effective_from`` on; rates in force then
        and not in the file end at that moment, rates scheduled later are cancelled.
        ``update``: only the file's prefixes change. History is never rewritten: a row dated
        before ``effective_from`` starts at it, a row already expired is skipped.
        """
        if mode not in ("replace", "update"):
            raise MasterDataError(f"import mode must be replace or update, not {mode!r}")
        at = effective_from
        with self.db.transaction():
            self.ensure_deck(deck_id, currency)
            before = self._in_force(deck_id, at)
            version_id = self._new_version(deck_id, mode, at, source, content, len(rows))
            report = ImportReport(deck_id, version_id, at, len(rows), dry_run=dry_run)
            new_rates: list[Rate] = []
            for row in rows:
                rate = row.rate
                if rate.effective_to is not None and rate.effective_to <= at:
                    report.skipped_expired += 1
                    continue
                if rate.effective_from < at:
                    rate = replace(rate, effective_from=at)
                    report.clamped += 1
                elif rate.effective_from > at:
                    report.scheduled += 1
                new_rates.append(replace(rate, version=version_id))
            self._end_rates(deck_id, at, mode, new_rates)
            self.db.insert_many(
                "rates",
                (
                    "deck_id",
                    "version_id",
                    "prefix",
                    "destination",
                    "rate_micros",
                    "connect_fee_micros",
                    "first_block_s",
                    "increment_s",
                    "grace_s",
                    "effective_from",
                    "effective_to",
                    "weekdays",
                    "time_from_s",
                    "time_to_s",
                ),
                (
                    (
                        deck_id,
                        version_id,
                        r.prefix,
                        r.destination,
                        r.rate_micros,
                        r.connect_fee_micros,
                        r.first_block_s,
                        r.increment_s,
                        r.grace_s,
                        r.effective_from,
                        r.effective_to,
                        r.band.weekdays if r.band else None,
                        r.band.start_s if r.band else None,
                        r.band.end_s if r.band else None,
                    )
                    for r in new_rates
                ),
            )
            after = self._in_force(deck_id, at)
            _diff(before, after, report)
            self.db.execute(
                "UPDATE deck_versions SET summary = ? WHERE version_id = ?",
                (report.summary(), version_id),
            )
            self._audit_import(report)
            if dry_run:
                raise _DryRun(report)
        return report

    def preview_import(
        self, deck_id: str, currency: str, rows: Sequence[DeckRow], **kwargs: Any
    ) -> ImportReport:
        """Run an import and roll it back: the diff without any change."""
        try:
            self.import_deck(deck_id, currency, rows, dry_run=True, **kwargs)
        except _DryRun as done:
            return done.report
        raise AssertionError("a dry run always rolls back")

    def _new_version(
        self, deck_id: str, mode: str, at: int, source: str, content: bytes, count: int
    ) -> int:
        row = self.db.query_one(
            "INSERT INTO deck_versions (deck_id, imported_at, imported_by, source, sha256, mode, "
            "effective_from, row_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING version_id",
            (
                deck_id,
                utcnow(),
                self.actor,
                source,
                hashlib.sha256(content).hexdigest(),
                mode,
                datetime.fromtimestamp(at, UTC),
                count,
            ),
        )
        assert row is not None
        return int(row[0])

    def _end_rates(self, deck_id: str, at: int, mode: str, new_rates: Sequence[Rate]) -> None:
        """End the rates the import supersedes, each prefix at its new rate's start.

        A prefix in the file keeps its current rate until its new one starts (a row scheduled
        next week leaves today's rate in force until then); rates of that prefix scheduled
        later still are cancelled. In ``replace`` mode a prefix missing from the file ends at
        the import's effective time.
        """
        cuts: dict[str, int] = {}
        for rate in new_rates:
            current = cuts.get(rate.prefix)
            if current is None or rate.effective_from < current:
                cuts[rate.prefix] = rate.effective_from
        db = self.db
        db.execute("DROP TABLE IF EXISTS import_cuts")
        db.execute("CREATE TEMP TABLE import_cuts (prefix TEXT PRIMARY KEY, cut BIGINT NOT NULL)")
        db.insert_many("import_cuts", ("prefix", "cut"), cuts.items())
        open_at = "(rates.effective_to IS NULL OR rates.effective_to > {at})"
        if mode == "replace":
            missing = "rates.prefix NOT IN (SELECT prefix FROM import_cuts)"
            db.execute(
                "UPDATE rates SET effective_to = ? WHERE deck_id = ? AND effective_from < ? "
                f"AND {open_at.format(at='?')} AND {missing}",
                (at, deck_id, at, at),
            )
            db.execute(
                "UPDATE rates SET effective_to = effective_from WHERE deck_id = ? AND "
                f"effective_from >= ? AND {open_at.format(at='rates.effective_from')} "
                f"AND {missing}",
                (deck_id, at),
            )
        db.execute(
            "UPDATE rates SET effective_to = c.cut FROM import_cuts c WHERE rates.deck_id = ? "
            "AND rates.prefix = c.prefix AND rates.effective_from < c.cut AND "
            f"{open_at.format(at='c.cut')}",
            (deck_id,),
        )
        db.execute(
            "UPDATE rates SET effective_to = rates.effective_from FROM import_cuts c "
            "WHERE rates.deck_id = ? AND rates.prefix = c.prefix AND "
            f"rates.effective_from >= c.cut AND {open_at.format(at='rates.effective_from')}",
            (deck_id,),
        )
        db.execute("DROP TABLE import_cuts")

    def _in_force(self, deck_id: str, at: int) -> dict[str, list[Rate]]:
        out: dict[str, list[Rate]] = {}
        rates = self._rates_from_rows(
            self.db.iterate(
                f"SELECT {self._RATE_COLUMNS} FROM rates WHERE deck_id = ? AND "
                "effective_from <= ? AND (effective_to IS NULL OR effective_to > ?)",
                (deck_id, at, at),
            )
        )
        for rate in rates:
            out.setdefault(rate.prefix, []).append(rate)
        return out

    def _audit_import(self, report: ImportReport) -> None:
        self._audit(
            "deck", report.deck_id, "version", None, report.version_id, note=report.summary()
        )
        changes = (
            len(report.new)
            + len(report.removed)
            + len(report.increased)
            + len(report.decreased)
            + len(report.changed_terms)
        )
        if changes > AUDIT_DETAIL_LIMIT:
            return
        for group in (
            report.new,
            report.removed,
            report.increased,
            report.decreased,
            report.changed_terms,
        ):
            for change in group:
                self._audit(
                    "rate",
                    f"{report.deck_id}:{change.prefix}",
                    "rate_micros",
                    change.before_micros,
                    change.after_micros,
                    note=f"version {report.version_id}",
                )

    # -- plans ---------------------------------------------------------------------------

    def add_plan(self, plan: TariffPlan) -> None:
        """Create a tariff plan with its bundles."""
        with self.db.transaction():
            if self.db.query_one("SELECT 1 FROM tariff_plans WHERE plan_id = ?", (plan.plan_id,)):
                raise MasterDataError(f"plan {plan.plan_id} exists")
            if plan.deck_id is not None and self.deck_currency(plan.deck_id) is None:
                raise MasterDataError(
                    f"plan {plan.plan_id}: no deck {plan.deck_id!r} (import it first)"
                )
            now = utcnow()
            self.db.execute(
                "INSERT INTO tariff_plans (plan_id, name, deck_id, markup_percent, "
                "markup_fixed_micros, rounding_scope, rounding_mode, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    plan.plan_id,
                    plan.name,
                    plan.deck_id,
                    None if plan.markup is None else str(plan.markup.percent),
                    None if plan.markup is None else plan.markup.fixed_micros,
                    plan.scope.value,
                    plan.mode.value,
                    now,
                    now,
                ),
            )
            for position, bundle in enumerate(plan.bundles):
                self.db.execute(
                    "INSERT INTO bundles (plan_id, bundle_id, seconds, prefixes, period, "
                    "position) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        plan.plan_id,
                        bundle.bundle_id,
                        bundle.seconds,
                        ",".join(bundle.prefixes),
                        bundle.period.value,
                        position,
                    ),
                )
            self._audit("plan", plan.plan_id, "created", None, _describe_plan(plan))

    def update_plan(self, plan: TariffPlan) -> None:
        """Replace a plan's pricing (deck or markup, rounding, bundles), audited."""
        with self.db.transaction():
            current = self.plans().get(plan.plan_id)
            if current is None:
                raise MasterDataError(f"no plan {plan.plan_id!r}")
            if plan.deck_id is not None and self.deck_currency(plan.deck_id) is None:
                raise MasterDataError(f"plan {plan.plan_id}: no deck {plan.deck_id!r}")
            self.db.execute(
                "UPDATE tariff_plans SET name = ?, deck_id = ?, markup_percent = ?, "
                "markup_fixed_micros = ?, rounding_scope = ?, rounding_mode = ?, updated_at = ? "
                "WHERE plan_id = ?",
                (
                    plan.name,
                    plan.deck_id,
                    None if plan.markup is None else str(plan.markup.percent),
                    None if plan.markup is None else plan.markup.fixed_micros,
                    plan.scope.value,
                    plan.mode.value,
                    utcnow(),
                    plan.plan_id,
                ),
            )
            self.db.execute("DELETE FROM bundles WHERE plan_id = ?", (plan.plan_id,))
            for position, bundle in enumerate(plan.bundles):
                self.db.execute(
                    "INSERT INTO bundles (plan_id, bundle_id, seconds, prefixes, period, "
                    "position) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        plan.plan_id,
                        bundle.bundle_id,
                        bundle.seconds,
                        ",".join(bundle.prefixes),
                        bundle.period.value,
                        position,
                    ),
                )
            self._audit(
                "plan", plan.plan_id, "pricing", _describe_plan(current), _describe_plan(plan)
            )

    def plans(self) -> dict[str, TariffPlan]:
        """Every tariff plan by id."""
        bundles: dict[str, list[Bundle]] = {}
        for plan_id, bundle_id, seconds, prefixes, period in self.db.query(
            "SELECT plan_id, bundle_id, seconds, prefixes, period FROM bundles "
            "ORDER BY plan_id, position"
        ):
            bundles.setdefault(plan_id, []).append(
                Bundle(bundle_id, int(seconds), tuple(prefixes.split(",")), BundlePeriod(period))
            )
        out: dict[str, TariffPlan] = {}
        for plan_id, name, deck_id, percent, fixed, scope, mode in self.db.query(
            "SELECT plan_id, name, deck_id, markup_percent, markup_fixed_micros, "
            "rounding_scope, rounding_mode FROM tariff_plans"
        ):
            out[plan_id] = TariffPlan(
                plan_id=plan_id,
                name=name,
                deck_id=deck_id,
                markup=None if percent is None else Markup(Decimal(percent), int(fixed or 0)),
                scope=RoundingScope(scope),
                mode=Rounding(mode),
                bundles=tuple(bundles.get(plan_id, ())),
            )
        return out

    # -- tenants -------------------------------------------------------------------------

    def tenants(self) -> dict[str, Tenant]:
        """Every tenant by id."""
        return {
            row[0]: Tenant(row[0], row[1], row[2], row[3], row[4], TenantStatus(row[5]))
            for row in self.db.query(
                "SELECT tenant_id, parent_id, name, currency, plan_id, status FROM tenants"
            )
        }

    def add_tenant(self, tenant: Tenant) -> None:
        """Create the operator (no parent) or a reseller under an existing tenant."""
        with self.db.transaction():
            existing = self.tenants()
            if tenant.tenant_id in existing:
                raise MasterDataError(f"tenant {tenant.tenant_id} exists")
            self._require_currency(tenant.currency)
            if tenant.parent_id is None:
                roots = [t for t in existing.values() if t.parent_id is None]
                if roots:
                    raise MasterDataError(
                        f"the operator is {roots[0].tenant_id}; a reseller needs --parent"
                    )
                if tenant.plan_id is not None:
                    raise MasterDataError("the operator at the root buys from nobody: no plan")
            else:
                if tenant.parent_id not in existing:
                    raise MasterDataError(f"no parent tenant {tenant.parent_id!r}")
                if tenant.plan_id is None:
                    raise MasterDataError(
                        f"reseller {tenant.tenant_id} needs the plan it buys at (--plan)"
                    )
            if tenant.plan_id is not None and tenant.plan_id not in self.plans():
                raise MasterDataError(f"no plan {tenant.plan_id!r}")
            now = utcnow()
            self.db.execute(
                "INSERT INTO tenants (tenant_id, parent_id, name, currency, plan_id, status, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant.tenant_id,
                    tenant.parent_id,
                    tenant.name,
                    tenant.currency,
                    tenant.plan_id,
                    tenant.status.value,
                    now,
                    now,
                ),
            )
            for name in ("parent_id", "name", "currency", "plan_id", "status"):
                self._audit("tenant", tenant.tenant_id, name, None, getattr(tenant, name))

    def update_tenant(self, tenant_id: str, **changes: Any) -> Tenant:
        """Change a tenant's name, plan or status, audited field by field."""
        with self.db.transaction():
            current = self.tenants().get(tenant_id)
            if current is None:
                raise MasterDataError(f"no tenant {tenant_id!r}")
            allowed = {"name", "plan_id", "status"}
            unknown = set(changes) - allowed
            if unknown:
                raise MasterDataError(f"tenant fields that cannot change: {sorted(unknown)}")
            updated = replace(current, **changes)
            if updated.plan_id is not None and updated.plan_id not in self.plans():
                raise MasterDataError(f"no plan {updated.plan_id!r}")
            if current.parent_id is not None and updated.plan_id is None:
                raise MasterDataError("a reseller needs a plan")
            self._update_row("tenants", "tenant_id", "tenant", current, updated)
            return updated

    # -- accounts ------------------------------------------------------------------------

    _ACCOUNT_COLUMNS = (
        "account_id, tenant_id, name, kind, currency, credit_limit_micros, daily_cap_micros, "
        "monthly_cap_micros, max_sessions, timezone, plan_id, status"
    )

    @staticmethod
    def _account(row: Sequence[Any]) -> Account:
        return Account(
            account_id=row[0],
            tenant_id=row[1],
            name=row[2],
            kind=AccountKind(row[3]),
            currency=row[4],
            credit_limit_micros=int(row[5]),
            daily_cap_micros=None if row[6] is None else int(row[6]),
            monthly_cap_micros=None if row[7] is None else int(row[7]),
            max_sessions=None if row[8] is None else int(row[8]),
            timezone=row[9],
            plan_id=row[10],
            status=AccountStatus(row[11]),
        )

    def get_account(self, account_id: str) -> Account | None:
        """One account, or None."""
        row = self.db.query_one(
            f"SELECT {self._ACCOUNT_COLUMNS} FROM accounts WHERE account_id = ?", (account_id,)
        )
        return None if row is None else self._account(row)

    def accounts(self, tenant_id: str | None = None) -> dict[str, Account]:
        """Every account (of one tenant when given) by id."""
        if tenant_id is None:
            rows = self.db.iterate(f"SELECT {self._ACCOUNT_COLUMNS} FROM accounts")
        else:
            rows = self.db.iterate(
                f"SELECT {self._ACCOUNT_COLUMNS} FROM accounts WHERE tenant_id = ?", (tenant_id,)
            )
        return {row[0]: self._account(row) for row in rows}

    def _validate_account(self, account: Account) -> None:
        if not account.account_id or any(c in account.account_id for c in "{}\n\t "):
            raise MasterDataError(
                f"account id {account.account_id!r} is empty or has spaces/braces"
            )
        tenant = self.tenants().get(account.tenant_id)
        if tenant is None:
            raise MasterDataError(f"no tenant {account.tenant_id!r}")
        if account.plan_id not in self.plans():
            raise MasterDataError(f"no plan {account.plan_id!r}")
        self._require_currency(account.currency)
        _check_zone(account.timezone)
        for name in ("credit_limit_micros", "daily_cap_micros", "monthly_cap_micros"):
            value = getattr(account, name)
            if value is not None and value < 0:
                raise MasterDataError(f"{name.removesuffix('_micros')} must not be negative")
        if account.max_sessions is not None and account.max_sessions < 0:
            raise MasterDataError("max sessions must not be negative")
        if account.kind is AccountKind.PREPAID and account.credit_limit_micros:
            raise MasterDataError("a prepaid account has no credit limit")

    def add_account(self, account: Account) -> None:
        """Create an account, audited field by field."""
        with self.db.transaction():
            if self.get_account(account.account_id) is not None:
                raise MasterDataError(f"account {account.account_id} exists")
            self._validate_account(account)
            now = utcnow()
            self.db.execute(
                f"INSERT INTO accounts ({self._ACCOUNT_COLUMNS}, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*_account_values(account), now, now),
            )
            for f in fields(Account):
                if f.name != "account_id":
                    self._audit(
                        "account", account.account_id, f.name, None, getattr(account, f.name)
                    )

    def update_account(self, account_id: str, **changes: Any) -> Account:
        """Change account fields (limits, status, plan, zone...), audited field by field."""
        with self.db.transaction():
            current = self.get_account(account_id)
            if current is None:
                raise MasterDataError(f"no account {account_id!r}")
            if "account_id" in changes:
                raise MasterDataError("an account id cannot change")
            try:
                updated = replace(current, **changes)
            except TypeError as exc:
                raise MasterDataError(str(exc)) from None
            self._validate_account(updated)
            self._update_row("accounts", "account_id", "account", current, updated)
            return updated

    def _update_row(self, table: str, key: str, entity: str, current: Any, updated: Any) -> None:
        changed = [
            f.name for f in fields(current) if getattr(current, f.name) != getattr(updated, f.name)
        ]
        if not changed:
            return
        assignments = ", ".join(f"{name} = ?" for name in changed)
        values = [_db_value(getattr(updated, name)) for name in changed]
        entity_id = getattr(current, key)
        self.db.execute(
            f"UPDATE {table} SET {assignments}, updated_at = ? WHERE {key} = ?",
            (*values, utcnow(), entity_id),
        )
        for name in changed:
            self._audit(entity, entity_id, name, getattr(current, name), getattr(updated, name))

    # -- identities ----------------------------------------------------------------------

    def identities(self, account_id: str | None = None) -> list[Identity]:
        """Every identity (of one account when given)."""
        sql = "SELECT account_id, kind, value, tech_prefix FROM identities"
        params: tuple[Any, ...] = ()
        if account_id is not None:
            sql += " WHERE account_id = ?"
            params = (account_id,)
        return [
            Identity(row[0], IdentityKind(row[1]), row[2], row[3])
            for row in self.db.iterate(sql + " ORDER BY identity_id", params)
        ]

    def add_identity(self, identity: Identity) -> Identity:
        """Map an identity to an account; the same identity cannot map to two accounts."""
        value = normalize_identity(identity.kind, identity.value)
        tech = identity.tech_prefix.strip()
        if tech and identity.kind is not IdentityKind.IP:
            raise MasterDataError("a tech prefix goes with an IP identity only")
        if tech and not all(c.isdigit() or c in "#*" for c in tech):
            raise MasterDataError(f"tech prefix {tech!r} must be digits, # or *")
        stored = Identity(identity.account_id, identity.kind, value, tech)
        with self.db.transaction():
            if self.get_account(identity.account_id) is None:
                raise MasterDataError(f"no account {identity.account_id!r}")
            owner = self.db.query_one(
                "SELECT account_id FROM identities WHERE kind = ? AND value = ? AND "
                "tech_prefix = ?",
                (stored.kind.value, value, tech),
            )
            if owner is not None:
                raise MasterDataError(
                    f"{stored.kind.value} {value}{'/' + tech if tech else ''} already "
                    f"belongs to account {owner[0]}"
                )
            self.db.execute(
                "INSERT INTO identities (account_id, kind, value, tech_prefix, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (stored.account_id, stored.kind.value, value, tech, utcnow()),
            )
            self._audit(
                "account",
                stored.account_id,
                "identity",
                None,
                f"{stored.kind.value}:{value}{'/' + tech if tech else ''}",
            )
        return stored

    def remove_identity(self, kind: IdentityKind, value: str, tech_prefix: str = "") -> None:
        """Unmap an identity."""
        stored = normalize_identity(kind, value)
        with self.db.transaction():
            owner = self.db.query_one(
                "SELECT account_id FROM identities WHERE kind = ? AND value = ? AND "
                "tech_prefix = ?",
                (kind.value, stored, tech_prefix),
            )
            if owner is None:
                raise MasterDataError(f"no identity {kind.value} {stored}")
            self.db.execute(
                "DELETE FROM identities WHERE kind = ? AND value = ? AND tech_prefix = ?",
                (kind.value, stored, tech_prefix),
            )
            self._audit(
                "account",
                owner[0],
                "identity",
                f"{kind.value}:{stored}{'/' + tech_prefix if tech_prefix else ''}",
                None,
            )

    # -- ledger --------------------------------------------------------------------------

    def ledger_total(self, account_id: str) -> int:
        """The sum of an account's ledger entries stored so far."""
        row = self.db.query_one(
            "SELECT COALESCE(SUM(amount_micros), 0) FROM ledger WHERE account_id = ?",
            (account_id,),
        )
        return int(row[0]) if row else 0

    def ledger_entries(self, account_id: str, limit: int = 50) -> list[tuple[Any, ...]]:
        """An account's newest ledger entries."""
        return self.db.query(
            "SELECT at, kind, amount_micros, currency, balance_after_micros, reason, source_id, "
            "idempotency_key, actor FROM ledger WHERE account_id = ? ORDER BY at DESC LIMIT ?",
            (account_id, limit),
        )

    # -- snapshot ------------------------------------------------------------------------

    def deck_version_ids(self) -> dict[str, int]:
        """The latest version (import) of every deck."""
        return {
            str(deck_id): int(version or 0)
            for deck_id, version in self.db.query(
                "SELECT d.deck_id, MAX(v.version_id) FROM rate_decks d "
                "LEFT JOIN deck_versions v ON v.deck_id = d.deck_id GROUP BY d.deck_id"
            )
        }

    def snapshot(
        self, now: int | None = None, reuse: Mapping[str, Deck] | None = None
    ) -> MasterSnapshot:
        """Load everything the daemon needs, consistently.

        Decks in ``reuse`` whose latest version is unchanged are kept as they are: a change to
        an account does not reload a million rates.
        """
        since = (now if now is not None else int(utcnow().timestamp())) - RATE_HISTORY_S
        reuse = reuse or {}
        with self.db.transaction():
            marker = self.change_marker()
            decks: dict[str, Deck] = {}
            for deck_id, version in self.deck_version_ids().items():
                previous = reuse.get(deck_id)
                if previous is not None and previous.version == version:
                    decks[deck_id] = previous
                else:
                    decks[deck_id] = self.load_deck(deck_id, since)
            return MasterSnapshot(
                marker=marker,
                tenants=self.tenants(),
                accounts=self.accounts(),
                identities=tuple(self.identities()),
                plans=self.plans(),
                decks=decks,
                exchange_rates=tuple(self.exchange_rates()),
            )


class _DryRun(Exception):
    def __init__(self, report: ImportReport) -> None:
        super().__init__("dry run")
        self.report = report


def _account_values(account: Account) -> tuple[Any, ...]:
    return (
        account.account_id,
        account.tenant_id,
        account.name,
        account.kind.value,
        account.currency,
        account.credit_limit_micros,
        account.daily_cap_micros,
        account.monthly_cap_micros,
        account.max_sessions,
        account.timezone,
        account.plan_id,
        account.status.value,
    )


def _db_value(value: Any) -> Any:
    return value.value if hasattr(value, "value") and not isinstance(value, int) else value


def _text(value: Any) -> str:
    if hasattr(value, "value") and not isinstance(value, int | str):
        return str(value.value)
    return str(value)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _describe_plan(plan: TariffPlan) -> str:
    base = (
        f"deck {plan.deck_id}"
        if plan.deck_id
        else (f"markup {plan.markup.percent}% + {plan.markup.fixed_micros}" if plan.markup else "?")
    )
    bundles = "".join(
        f", bundle {b.bundle_id} {b.seconds}s/{b.period.value} {'|'.join(b.prefixes)}"
        for b in plan.bundles
    )
    return f"{base}, {plan.scope.value} {plan.mode.value}{bundles}"


def _diff(
    before: dict[str, list[Rate]], after: dict[str, list[Rate]], report: ImportReport
) -> None:
    for prefix, rates in after.items():
        old = before.get(prefix)
        top = max(rates, key=lambda r: r.rate_micros)
        if old is None:
            report.new.append(PriceChange(prefix, top.destination, None, top.rate_micros))
            continue
        old_top = max(old, key=lambda r: r.rate_micros)
        change = PriceChange(prefix, top.destination, old_top.rate_micros, top.rate_micros)
        old_key = sorted((r.band.describe() if r.band else "", r.rate_micros) for r in old)
        new_key = sorted((r.band.describe() if r.band else "", r.rate_micros) for r in rates)
        rates_up = all(n[1] >= o[1] for o, n in zip(old_key, new_key, strict=False))
        rates_down = all(n[1] <= o[1] for o, n in zip(old_key, new_key, strict=False))
        same_terms = len(old) == len(rates) and all(
            any(a.same_price(b) and a.band == b.band for b in old) for a in rates
        )
        if same_terms:
            report.unchanged += 1
        elif old_key != new_key and len(old_key) == len(new_key) and rates_up:
            report.increased.append(change)
        elif old_key != new_key and len(old_key) == len(new_key) and rates_down:
            report.decreased.append(change)
        else:
            report.changed_terms.append(change)
    for prefix, old in before.items():
        if prefix not in after:
            top = max(old, key=lambda r: r.rate_micros)
            report.removed.append(PriceChange(prefix, top.destination, top.rate_micros, None))


__all__ = ["DatabaseError", "ImportReport", "MasterDataError", "MasterSnapshot", "MasterStore"]
