"""The ``ocsd`` command line: ``ocsd serve`` runs the daemon, the others administer it.

Every command reads the same configuration as the daemon (``--config``, ``$OCSD_CONFIG``,
``/etc/ocsd/ocsd.yaml`` or the built-in embedded default). Errors go to stderr as one line
naming what is wrong, with exit status 2 for bad input and 1 for a failure.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from balances.model import AccountKind, AccountStatus
from ocsd.config import load_config
from ocsd.directory import Directory
from ocsd.master import Account, Identity, IdentityKind, Tenant, TenantStatus
from ocsd.master_store import ImportReport, MasterDataError, MasterStore
from ocsd.schema import (
    SchemaError,
    current_version,
    latest_version,
    pending,
    require_current,
    upgrade,
)
from ocsd.sql_store import Database, DatabaseError, redact
from ocsd.typed_yaml import ConfigError
from rating.deck_csv import DeckDefaults, DeckFormatError, parse_deck_csv, parse_instant
from rating.dialplan import DialPlan, NumberFormatError
from rating.engine import RatingError, local_position
from rating.money import MoneyFormatError, Rounding, RoundingScope, format_micros, parse_micros
from rating.plan import Bundle, BundlePeriod, Markup, TariffPlan


class UsageError(Exception):
    """Bad input on the command line: exit status 2."""


# -- helpers ---------------------------------------------------------------------------------


def money(text: str) -> int:
    """Parse an amount in major units (``10.50``) into micro-units."""
    try:
        return parse_micros(text, allow_negative=True)
    except MoneyFormatError as exc:
        raise UsageError(str(exc)) from None


def zone(name: str) -> tzinfo:
    """An IANA zone by name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {name!r}") from None


def instant(text: str, default_zone: tzinfo = UTC) -> datetime:
    """Parse an ISO date or date-time (naive ones in ``default_zone``) into aware UTC."""
    try:
        return datetime.fromtimestamp(parse_instant(text, default_zone), UTC)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as aligned columns."""
    texts = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in texts:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=False)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip())
    for row in texts:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())


def actor() -> str:
    """Who is making a change, for the audit log."""
    return os.environ.get("OCSD_ACTOR") or getpass.getuser()


class Context:
    """What a command needs: the configuration and, lazily, the records database."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config, self.config_path = load_config(args.config)
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.config.records_url)
            if self._db.dialect == "sqlite":
                # The embedded default creates and migrates its own file.
                upgrade(self._db)
            else:
                try:
                    require_current(self._db)
                except SchemaError as exc:
                    raise SchemaError(f"{redact(self.config.records_url)}: {exc}") from None
        return self._db

    @property
    def master(self) -> MasterStore:
        return MasterStore(self.db, actor=self.args.actor or actor())

    def directory(self) -> Directory:
        return Directory(self.master.snapshot(), DialPlan(self.config.rating.dial_plan))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


# -- commands --------------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a configuration file without starting anything."""
    config, path = load_config(args.file)
    print(f"{path}: OK (records {redact(config.records_url)}, hot store {config.stores.hot_url})")
    return 0


def cmd_db_upgrade(ctx: Context) -> int:
    with Database(ctx.config.records_url) as db:
        before = current_version(db)
        applied = upgrade(db)
        for migration in applied:
            print(f"applied {migration.version}: {migration.name}")
        print(f"{redact(db.url)}: schema {before} -> {current_version(db)}")
    return 0


def cmd_db_status(ctx: Context) -> int:
    with Database(ctx.config.records_url) as db:
        version = current_version(db)
        missing = pending(db)
        state = "current" if not missing else "needs 'ocsd db upgrade'"
        print(f"{redact(db.url)}: schema {version} of {latest_version()} ({state})")
    return 0 if not missing else 1


def cmd_currency_add(ctx: Context) -> int:
    a = ctx.args
    ctx.master.add_currency(a.code, a.name, a.minor_units)
    print(f"currency {a.code} added")
    return 0


def cmd_currency_rate(ctx: Context) -> int:
    a = ctx.args
    try:
        value = Decimal(a.rate)
    except InvalidOperation:
        raise UsageError(f"rate {a.rate!r} is not a number") from None
    start = instant(a.effective_from) if a.effective_from else datetime.now(UTC)
    ctx.master.set_exchange_rate(a.base, a.quote, value, start)
    print(f"1 {a.base} = {value} {a.quote} from {start.isoformat()}")
    return 0


def cmd_currency_list(ctx: Context) -> int:
    rows = ctx.db.query("SELECT code, name, minor_units FROM currencies ORDER BY code")
    print_table(("code", "name", "minor units"), rows)
    rates = ctx.db.query(
        "SELECT base, quote, rate, effective_from FROM exchange_rates ORDER BY base, quote, 4"
    )
    if rates:
        print()
        print_table(("base", "quote", "rate", "effective from"), rates)
    return 0


def _print_changes(title: str, changes: Sequence[Any], limit: int) -> None:
    if not changes:
        return
    print(f"{title} ({len(changes)}):")
    for change in changes[:limit]:
        before = "-" if change.before_micros is None else format_micros(change.before_micros)
        after = "-" if change.after_micros is None else format_micros(change.after_micros)
        print(f"  {change.prefix:<16} {change.destination[:30]:<30} {before:>12} -> {after}")
    if len(changes) > limit:
        print(f"  ... and {len(changes) - limit} more")


def print_import_report(report: ImportReport, limit: int) -> None:
    """Print what an import changed against the deck in force."""
    start = datetime.fromtimestamp(report.effective_from, UTC).isoformat()
    verb = "would import" if report.dry_run else f"imported as version {report.version_id}"
    print(f"deck {report.deck_id}: {verb}, effective {start}")
    print(f"  {report.summary()}")
    if report.clamped:
        print(f"  {report.clamped} rows dated earlier take effect at {start}")
    if report.skipped_expired:
        print(f"  {report.skipped_expired} rows already expired were skipped")
    _print_changes("new", report.new, limit)
    _print_changes("removed", report.removed, limit)
    _print_changes("increased", report.increased, limit)
    _print_changes("decreased", report.decreased, limit)
    _print_changes("other terms changed", report.changed_terms, limit)


def cmd_tariff_import(ctx: Context) -> int:
    a = ctx.args
    path = Path(a.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    file_zone = zone(a.timezone)
    start = instant(a.effective_from, file_zone) if a.effective_from else datetime.now(UTC)
    effective = int(start.timestamp())
    defaults = DeckDefaults(
        first_block_s=a.first_block,
        increment_s=a.increment,
        grace_s=a.grace,
        connect_fee_micros=money(a.connect_fee),
        effective_from=effective,
        timezone=file_zone,
    )
    rows = parse_deck_csv(data, filename=str(path), defaults=defaults, encoding=a.encoding)
    master = ctx.master
    currency = a.currency or master.deck_currency(a.deck)
    if currency is None:
        raise UsageError(f"deck {a.deck} is new: give its currency with --currency")
    options: dict[str, Any] = {
        "effective_from": effective,
        "mode": a.mode,
        "source": str(path),
        "content": data,
    }
    if a.dry_run:
        report = master.preview_import(a.deck, currency, rows, **options)
    else:
        report = master.import_deck(a.deck, currency, rows, **options)
    print_import_report(report, a.show)
    return 0


def cmd_tariff_show(ctx: Context) -> int:
    a = ctx.args
    deck = ctx.master.load_deck(a.deck)
    at = int(instant(a.at).timestamp()) if a.at else int(datetime.now(UTC).timestamp())
    in_force = deck.in_force(at)
    prefixes = sorted(p for p in in_force if not a.prefix or p.startswith(a.prefix))
    rows = []
    for prefix in prefixes[: a.limit]:
        for rate in in_force[prefix]:
            rows.append(
                (
                    rate.prefix,
                    rate.destination,
                    format_micros(rate.rate_micros),
                    format_micros(rate.connect_fee_micros),
                    f"{rate.first_block_s}/{rate.increment_s}",
                    rate.grace_s,
                    rate.band.describe() if rate.band else "",
                    rate.version,
                )
            )
    print(
        f"deck {deck.deck_id} ({deck.currency}), {len(in_force)} prefixes in force at "
        f"{datetime.fromtimestamp(at, UTC).isoformat()}"
    )
    print_table(
        ("prefix", "destination", "rate/min", "connect", "billing", "grace", "band", "version"),
        rows,
    )
    if len(prefixes) > a.limit:
        print(f"... {len(prefixes) - a.limit} more prefixes (--limit)")
    return 0


def cmd_tariff_versions(ctx: Context) -> int:
    rows = ctx.master.deck_versions(ctx.args.deck)
    print_table(
        ("version", "imported at", "by", "source", "mode", "effective from", "rows", "summary"),
        rows,
    )
    return 0


def _bundles(specs: Sequence[str]) -> tuple[Bundle, ...]:
    bundles = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in (3, 4):
            raise UsageError(f"bundle {spec!r} is not ID:SECONDS:PREFIX[,PREFIX...][:day|month]")
        try:
            seconds = int(parts[1])
            period = BundlePeriod(parts[3]) if len(parts) == 4 else BundlePeriod.MONTH
            bundles.append(Bundle(parts[0], seconds, tuple(parts[2].split(",")), period))
        except ValueError as exc:
            raise UsageError(f"bundle {spec!r}: {exc}") from None
    return tuple(bundles)


def _plan_from_args(a: argparse.Namespace) -> TariffPlan:
    markup = None
    if a.markup_percent is not None or a.markup_fixed is not None:
        try:
            percent = Decimal(a.markup_percent or "0")
        except InvalidOperation:
            raise UsageError(f"markup percent {a.markup_percent!r} is not a number") from None
        markup = Markup(percent, money(a.markup_fixed or "0"))
    try:
        return TariffPlan(
            plan_id=a.plan_id,
            name=a.name,
            deck_id=a.deck,
            markup=markup,
            scope=RoundingScope(a.rounding),
            mode=Rounding(a.round),
            bundles=_bundles(a.bundle),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_plan_add(ctx: Context) -> int:
    plan = _plan_from_args(ctx.args)
    ctx.master.add_plan(plan)
    print(f"plan {plan.plan_id} added")
    return 0


def cmd_plan_set(ctx: Context) -> int:
    plan = _plan_from_args(ctx.args)
    ctx.master.update_plan(plan)
    print(f"plan {plan.plan_id} updated")
    return 0


def cmd_plan_list(ctx: Context) -> int:
    rows = []
    for plan in sorted(ctx.master.plans().values(), key=lambda p: p.plan_id):
        pricing = (
            f"deck {plan.deck_id}"
            if plan.deck_id
            else (
                f"markup {plan.markup.percent}% + {format_micros(plan.markup.fixed_micros)}"
                if plan.markup
                else ""
            )
        )
        bundles = ", ".join(f"{b.bundle_id} {b.seconds}s/{b.period.value}" for b in plan.bundles)
        rows.append((plan.plan_id, plan.name, pricing, plan.scope.value, plan.mode.value, bundles))
    print_table(("plan", "name", "pricing", "rounding", "mode", "bundles"), rows)
    return 0


def cmd_tenant_add(ctx: Context) -> int:
    a = ctx.args
    ctx.master.add_tenant(Tenant(a.tenant_id, a.parent, a.name, a.currency, a.plan))
    print(f"tenant {a.tenant_id} added")
    return 0


def cmd_tenant_set(ctx: Context) -> int:
    a = ctx.args
    changes: dict[str, Any] = {}
    if a.name is not None:
        changes["name"] = a.name
    if a.plan is not None:
        changes["plan_id"] = a.plan
    if a.status is not None:
        changes["status"] = TenantStatus(a.status)
    tenant = ctx.master.update_tenant(a.tenant_id, **changes)
    print(f"tenant {tenant.tenant_id}: {tenant.status.value}, plan {tenant.plan_id}")
    return 0


def cmd_tenant_list(ctx: Context) -> int:
    tenants = ctx.master.tenants()
    children: dict[str | None, list[Tenant]] = {}
    for tenant in tenants.values():
        children.setdefault(tenant.parent_id, []).append(tenant)
    rows: list[tuple[Any, ...]] = []

    def walk(parent: str | None, depth: int) -> None:
        for tenant in sorted(children.get(parent, []), key=lambda t: t.tenant_id):
            rows.append(
                (
                    "  " * depth + tenant.tenant_id,
                    tenant.name,
                    tenant.currency,
                    tenant.plan_id or "",
                    tenant.status.value,
                )
            )
            walk(tenant.tenant_id, depth + 1)

    walk(None, 0)
    print_table(("tenant", "name", "currency", "buys at plan", "status"), rows)
    return 0


def _optional_money(text: str | None) -> int | None:
    if text is None or text.lower() in ("none", "off", ""):
        return None
    return money(text)


def cmd_account_add(ctx: Context) -> int:
    a = ctx.args
    account = Account(
        account_id=a.account_id,
        tenant_id=a.tenant,
        name=a.name,
        kind=AccountKind(a.kind),
        currency=a.currency,
        credit_limit_micros=money(a.credit_limit),
        daily_cap_micros=_optional_money(a.daily_cap),
        monthly_cap_micros=_optional_money(a.monthly_cap),
        max_sessions=a.max_sessions,
        timezone=a.timezone,
        plan_id=a.plan,
        status=AccountStatus.ACTIVE,
    )
    ctx.master.add_account(account)
    print(f"account {account.account_id} added ({account.kind.value}, {account.currency})")
    return 0


def cmd_account_set(ctx: Context) -> int:
    a = ctx.args
    changes: dict[str, Any] = {}
    if a.name is not None:
        changes["name"] = a.name
    if a.status is not None:
        changes["status"] = AccountStatus(a.status)
    if a.plan is not None:
        changes["plan_id"] = a.plan
    if a.timezone is not None:
        changes["timezone"] = a.timezone
    if a.credit_limit is not None:
        changes["credit_limit_micros"] = money(a.credit_limit)
    if a.daily_cap is not None:
        changes["daily_cap_micros"] = _optional_money(a.daily_cap)
    if a.monthly_cap is not None:
        changes["monthly_cap_micros"] = _optional_money(a.monthly_cap)
    if a.max_sessions is not None:
        changes["max_sessions"] = None if a.max_sessions < 0 else a.max_sessions
    if not changes:
        raise UsageError("nothing to change")
    account = ctx.master.update_account(a.account_id, **changes)
    print(f"account {account.account_id} updated")
    return 0


def describe_account(account: Account) -> list[tuple[str, str]]:
    """Field/value pairs of an account for display."""

    def cap(value: int | None) -> str:
        return "none" if value is None else format_micros(value)

    return [
        ("account", account.account_id),
        ("name", account.name),
        ("tenant", account.tenant_id),
        ("kind", account.kind.value),
        ("status", account.status.value),
        ("currency", account.currency),
        ("plan", account.plan_id),
        ("time zone", account.timezone),
        ("credit limit", format_micros(account.credit_limit_micros)),
        ("daily cap", cap(account.daily_cap_micros)),
        ("monthly cap", cap(account.monthly_cap_micros)),
        ("max sessions", "none" if account.max_sessions is None else str(account.max_sessions)),
    ]


def cmd_account_list(ctx: Context) -> int:
    accounts = ctx.master.accounts(ctx.args.tenant)
    print_table(
        ("account", "tenant", "kind", "currency", "plan", "status", "zone"),
        [
            (
                a.account_id,
                a.tenant_id,
                a.kind.value,
                a.currency,
                a.plan_id,
                a.status.value,
                a.timezone,
            )
            for a in sorted(accounts.values(), key=lambda a: a.account_id)
        ],
    )
    return 0


def _identity_kind(args: argparse.Namespace) -> tuple[IdentityKind, str]:
    chosen = [
        (kind, getattr(args, kind.value))
        for kind in IdentityKind
        if getattr(args, kind.value, None)
    ]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --e164, --e164-prefix, --sip-uri, --username, --ip")
    return chosen[0]


def cmd_identity_add(ctx: Context) -> int:
    kind, value = _identity_kind(ctx.args)
    stored = ctx.master.add_identity(
        Identity(ctx.args.account_id, kind, value, ctx.args.tech_prefix or "")
    )
    tech = f" tech prefix {stored.tech_prefix}" if stored.tech_prefix else ""
    print(f"{stored.kind.value} {stored.value}{tech} -> account {stored.account_id}")
    return 0


def cmd_identity_remove(ctx: Context) -> int:
    kind, value = _identity_kind(ctx.args)
    ctx.master.remove_identity(kind, value, ctx.args.tech_prefix or "")
    print(f"{kind.value} {value} removed")
    return 0


def cmd_identity_list(ctx: Context) -> int:
    print_table(
        ("account", "kind", "value", "tech prefix"),
        [
            (i.account_id, i.kind.value, i.value, i.tech_prefix)
            for i in ctx.master.identities(ctx.args.account)
        ],
    )
    return 0


def cmd_rate(ctx: Context) -> int:
    a = ctx.args
    directory = ctx.directory()
    account = directory.accounts.get(a.account)
    if account is None:
        raise UsageError(f"no account {a.account!r}")
    account_zone = directory.zone(account)
    start = instant(a.at, account_zone) if a.at else datetime.now(UTC)
    start_ts = int(start.timestamp())
    try:
        number = directory.dial_plan.normalize(a.to)
    except NumberFormatError as exc:
        raise UsageError(str(exc)) from None
    chain = directory.chain(account)
    weekday, second = local_position(start_ts, account_zone)
    print(
        f"call to {a.to} -> {number}, {a.duration} s, starting {start.isoformat()} "
        f"({start.astimezone(account_zone).isoformat()} {account.timezone})"
    )
    try:
        price = directory.rater.price(chain, number, start_ts, weekday, second)
    except RatingError as exc:
        print(f"not rated: {exc.reason.value}: {exc}")
        return 1
    rating = price.rate(a.duration, bundle_left_s=a.bundle_seconds)
    for step in rating.trace:
        print(f"  {step}")
    print_table(
        ("level", "seller", "buyer", "plan", "charge", "currency"),
        [
            (i, lv.seller, lv.buyer, lv.plan_id, format_micros(lv.amount_micros), lv.currency)
            for i, lv in enumerate(rating.levels)
        ],
    )
    print(
        f"account {account.account_id} pays {format_micros(rating.charge_micros)} "
        f"{rating.currency} for {rating.billed_s} billed s"
    )
    return 0


def cmd_audit(ctx: Context) -> int:
    a = ctx.args
    rows = ctx.master.audit_entries(a.entity, a.id, a.limit)
    print_table(("id", "at", "actor", "entity", "id", "field", "before", "after", "note"), rows)
    return 0


# -- parser ----------------------------------------------------------------------------------

Handler = Callable[[Context], int]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="configuration file")
    common.add_argument("--actor", help="who makes the change (audit log); default: $USER")

    parser = argparse.ArgumentParser(
        prog="ocsd",
        description="Online charging server for VoIP operators.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help_text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        sub = commands.add_parser(name, help=help_text, parents=[common])
        return sub.add_subparsers(dest="action", required=True, metavar="ACTION")

    def leaf(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: Handler,
        help_text: str,
    ) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    serve = commands.add_parser("serve", help="run the daemon", parents=[common])
    serve.set_defaults(handler="serve")

    check = commands.add_parser(
        "check-config", help="validate a configuration file", parents=[common]
    )
    check.add_argument("file")
    check.set_defaults(handler="check-config")

    db = group("db", "the records database schema")
    leaf(db, "upgrade", cmd_db_upgrade, "create or migrate the schema")
    leaf(db, "status", cmd_db_status, "show the schema version")

    currency = group("currency", "currencies and exchange rates")
    p = leaf(currency, "add", cmd_currency_add, "register a currency")
    p.add_argument("code")
    p.add_argument("--name", default="")
    p.add_argument("--minor-units", type=int, default=2)
    p = leaf(currency, "rate", cmd_currency_rate, "publish an exchange rate")
    p.add_argument("base")
    p.add_argument("quote")
    p.add_argument("rate", help="value of one BASE in QUOTE")
    p.add_argument("--effective-from", help="ISO date-time (default now)")
    leaf(currency, "list", cmd_currency_list, "list currencies and rates")

    tariff = group("tariff", "rate decks")
    p = leaf(tariff, "import", cmd_tariff_import, "import a CSV rate deck")
    p.add_argument("deck", help="deck id (created on first import)")
    p.add_argument("file")
    p.add_argument("--currency", help="the deck's currency (required for a new deck)")
    p.add_argument(
        "--mode",
        choices=("replace", "update"),
        default="replace",
        help="replace: the file is the whole deck; update: only its prefixes change",
    )
    p.add_argument("--effective-from", help="when the import takes effect (default now)")
    p.add_argument("--timezone", default="UTC", help="zone of dates without an offset")
    p.add_argument("--first-block", type=int, default=60)
    p.add_argument("--increment", type=int, default=60)
    p.add_argument("--grace", type=int, default=0)
    p.add_argument("--connect-fee", default="0")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    p.add_argument("--show", type=int, default=20, help="changes listed per kind")
    p = leaf(tariff, "show", cmd_tariff_show, "list the rates in force")
    p.add_argument("deck")
    p.add_argument("--at", help="ISO date-time (default now)")
    p.add_argument("--prefix", default="")
    p.add_argument("--limit", type=int, default=100)
    p = leaf(tariff, "versions", cmd_tariff_versions, "list a deck's imports")
    p.add_argument("deck")

    plan = group("plan", "tariff plans")
    for name, handler, help_text in (
        ("add", cmd_plan_add, "create a plan"),
        ("set", cmd_plan_set, "change a plan"),
    ):
        p = leaf(plan, name, handler, help_text)
        p.add_argument("plan_id")
        p.add_argument("--name", default="")
        p.add_argument("--deck", help="price with this deck")
        p.add_argument("--markup-percent", help="or: the seller's price plus this percentage")
        p.add_argument("--markup-fixed", help="... plus this amount per charged call")
        p.add_argument(
            "--rounding",
            choices=[s.value for s in RoundingScope],
            default=RoundingScope.PER_CALL.value,
        )
        p.add_argument("--round", choices=[m.value for m in Rounding], default=Rounding.UP.value)
        p.add_argument(
            "--bundle",
            action="append",
            default=[],
            metavar="ID:SECONDS:PREFIXES[:day|month]",
            help="free seconds",
        )
    leaf(plan, "list", cmd_plan_list, "list plans")

    tenant = group("tenant", "the operator and resellers")
    p = leaf(tenant, "add", cmd_tenant_add, "add the operator or a reseller")
    p.add_argument("tenant_id")
    p.add_argument("--parent", help="the seller (omit for the operator)")
    p.add_argument("--name", default="")
    p.add_argument("--currency", required=True)
    p.add_argument("--plan", help="the plan this reseller buys at from its parent")
    p = leaf(tenant, "set", cmd_tenant_set, "change a tenant")
    p.add_argument("tenant_id")
    p.add_argument("--name")
    p.add_argument("--plan")
    p.add_argument("--status", choices=[s.value for s in TenantStatus])
    leaf(tenant, "list", cmd_tenant_list, "show the tenant tree")

    account = group("account", "customer accounts")
    p = leaf(account, "add", cmd_account_add, "create an account")
    p.add_argument("account_id")
    p.add_argument("--tenant", required=True)
    p.add_argument("--plan", required=True)
    p.add_argument("--currency", required=True)
    p.add_argument("--kind", choices=[k.value for k in AccountKind], default="prepaid")
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--name", default="")
    p.add_argument("--credit-limit", default="0", help="postpaid only")
    p.add_argument("--daily-cap")
    p.add_argument("--monthly-cap")
    p.add_argument("--max-sessions", type=int)
    p = leaf(account, "set", cmd_account_set, "change an account (audited)")
    p.add_argument("account_id")
    p.add_argument("--name")
    p.add_argument("--status", choices=[s.value for s in AccountStatus])
    p.add_argument("--plan")
    p.add_argument("--timezone")
    p.add_argument("--credit-limit")
    p.add_argument("--daily-cap", help="amount, or 'none'")
    p.add_argument("--monthly-cap", help="amount, or 'none'")
    p.add_argument("--max-sessions", type=int, help="-1 for no limit")
    p = leaf(account, "list", cmd_account_list, "list accounts")
    p.add_argument("--tenant")
    from ocsd import balance_cli

    for name, handler, help_text in (
        ("topup", balance_cli.cmd_topup, "credit an account (top-up or payment)"),
        ("adjust", balance_cli.cmd_adjust, "correct a balance up or down, with a reason"),
    ):
        p = leaf(account, name, handler, help_text)
        p.add_argument("account_id")
        p.add_argument("amount", help="in the account's currency, e.g. 10.50 (adjust: -2.00)")
        if name == "topup":
            p.add_argument("--kind", choices=("topup", "payment"), default="topup")
        p.add_argument("--reason", default="")
        p.add_argument("--reference", help="the payment's or invoice's id at its source")
        p.add_argument(
            "--key", help="idempotency key (the same key twice moves money once); default: new"
        )
        p.add_argument(
            "--no-reauthorize",
            action="store_true",
            help="do not ask a running daemon to re-authorize the account's calls",
        )
    p = leaf(account, "show", balance_cli.cmd_show, "master data, balance and ledger")
    p.add_argument("account_id")
    p = leaf(
        account,
        "reconcile",
        balance_cli.cmd_reconcile,
        "check ledger - CDR charges = balance, per account",
    )
    p.add_argument("account_ids", nargs="*", metavar="ACCOUNT")
    p.add_argument("--no-flush", action="store_true", help="do not write queued records first")

    identity = group("identity", "how calls map to accounts")
    for name, handler, help_text in (
        ("add", cmd_identity_add, "map an identity to an account"),
        ("remove", cmd_identity_remove, "unmap an identity"),
    ):
        p = leaf(identity, name, handler, help_text)
        if name == "add":
            p.add_argument("account_id")
        p.add_argument("--e164", dest="e164", help="a calling/subscriber number")
        p.add_argument("--e164-prefix", dest="e164_prefix", help="a number block")
        p.add_argument("--sip-uri", dest="sip_uri")
        p.add_argument("--username", dest="username", help="RADIUS User-Name / NAI")
        p.add_argument("--ip", dest="ip", help="source address or CIDR")
        p.add_argument("--tech-prefix", help="with --ip: digits the switch puts before numbers")
    p = leaf(identity, "list", cmd_identity_list, "list identities")
    p.add_argument("--account")

    p = commands.add_parser("rate", help="price a hypothetical call", parents=[common])
    p.set_defaults(handler=cmd_rate)
    p.add_argument("--account", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--at", help="start (ISO; naive times in the account's zone)")
    p.add_argument("--bundle-seconds", type=int, default=0, help="free seconds left")

    p = commands.add_parser("audit", help="show the audit log", parents=[common])
    p.set_defaults(handler=cmd_audit)
    p.add_argument("--entity")
    p.add_argument("--id")
    p.add_argument("--limit", type=int, default=50)

    for name in EXTENSION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(commands, common, leaf_factory=leaf, group_factory=group)
    return parser


EXTENSION_MODULES = (
    "ocsd.cdr_cli",
    "ocsd.lcr_cli",
    "ocsd.fraud_cli",
    "ocsd.ops_cli",
)
"""Modules that add subcommands: each has ``register(commands, common, leaf_factory=...,
group_factory=...)``; ``group_factory(name, help)`` makes a command group and
``leaf_factory(group, name, handler, help)`` a subcommand whose handler takes a ``Context``."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    try:
        if handler == "check-config":
            return cmd_check_config(args)
        if handler == "serve":
            from ocsd.daemon import serve

            config, path = load_config(args.config)
            return int(serve(config, path))
        ctx = Context(args)
        try:
            return int(handler(ctx))
        finally:
            ctx.close()
    except (UsageError, ConfigError, MasterDataError, DeckFormatError) as exc:
        print(f"ocsd: {exc}", file=sys.stderr)
        return 2
    except (DatabaseError, SchemaError) as exc:
        print(f"ocsd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
