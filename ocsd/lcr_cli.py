"""``ocsd`` subcommands for routing: carriers, trunks, route plans, caller ID, portability, and
``ocsd lcr route`` / ``ocsd lcr margin-report`` to see what the router does with them."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

from lcr import strategies
from lcr.catalog import Catalog
from lcr.decision import RouteDecision
from lcr.model import (
    Binding,
    BindingKind,
    CallerIdAction,
    CallerIdRule,
    Carrier,
    QualityFloor,
    RouteEntry,
    RoutePlan,
    Trunk,
    parse_number_rule,
)
from lcr.quality import QualityBoard, evaluate
from lcr.router import Router, RouteRequest
from ocsd.cli import (
    Context,
    UsageError,
    actor,
    instant,
    money,
    print_import_report,
    print_table,
    zone,
)
from ocsd.directory import Directory
from ocsd.lcr_store import LcrStore
from rating.billing import RateTerms
from rating.currency import NoExchangeRate
from rating.deck_csv import DeckDefaults, parse_deck_csv
from rating.dialplan import NumberFormatError
from rating.engine import RatingError, local_position
from rating.money import Rounding, RoundingScope, format_micros


def store(ctx: Context) -> LcrStore:
    """The routing store on the records database."""
    return LcrStore(ctx.db, actor=ctx.args.actor or actor())


def _rules(texts: Sequence[str] | None) -> tuple[Any, ...] | None:
    if texts is None:
        return None
    try:
        return tuple(parse_number_rule(t) for t in texts if t)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _changes(a: argparse.Namespace, names: dict[str, str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for option, field_name in names.items():
        value = getattr(a, option, None)
        if value is not None:
            changes[field_name] = value
    if getattr(a, "rule", None) is not None:
        changes["number_rules"] = _rules(a.rule)
    if getattr(a, "enabled", None) is not None:
        changes["enabled"] = a.enabled
    return changes


def _add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--priority", type=int, help="lower is preferred")
    p.add_argument("--weight", type=int, help="share under weighted load balancing")
    p.add_argument("--max-calls", type=int, help="concurrent calls at most (0: no limit)")
    p.add_argument("--max-cps", type=int, help="new calls per second at most (0: no limit)")
    p.add_argument("--tech-prefix", help="digits put before the number")
    p.add_argument(
        "--rule",
        action="append",
        metavar="WHEN:STRIP:ADD|/MATCH/REPLACE/",
        help="number manipulation, in order (repeat; an empty one clears)",
    )
    p.add_argument("--caller-id-rule")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)


_LIMITS = {
    "priority": "priority",
    "weight": "weight",
    "max_calls": "max_calls",
    "max_cps": "max_cps",
    "tech_prefix": "tech_prefix",
    "caller_id_rule": "caller_id_rule",
}


# -- carriers and trunks ---------------------------------------------------------------------


def cmd_carrier_add(ctx: Context) -> int:
    a = ctx.args
    changes = _changes(a, {**_LIMITS, "name": "name"})
    try:
        carrier = Carrier(
            a.carrier_id,
            currency=a.currency,
            send_routing_number=a.send_routing_number,
            scope=RoundingScope(a.rounding),
            mode=Rounding(a.round),
            **changes,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    store(ctx).add_carrier(carrier)
    print(f"carrier {carrier.carrier_id} added ({carrier.currency})")
    return 0


def cmd_carrier_set(ctx: Context) -> int:
    a = ctx.args
    changes = _changes(a, {**_LIMITS, "name": "name"})
    if a.send_routing_number is not None:
        changes["send_routing_number"] = a.send_routing_number
    if not changes:
        raise UsageError("nothing to change")
    carrier = store(ctx).update_carrier(a.carrier_id, **changes)
    print(f"carrier {carrier.carrier_id} updated")
    return 0


def cmd_carrier_list(ctx: Context) -> int:
    s = store(ctx)
    trunks: dict[str, int] = {}
    for trunk in s.trunks():
        trunks[trunk.carrier_id] = trunks.get(trunk.carrier_id, 0) + 1
    rows = [
        (
            c.carrier_id,
            "on" if c.enabled else "off",
            c.currency,
            c.deck_id or "-",
            c.priority,
            c.weight,
            c.max_calls or "-",
            c.max_cps or "-",
            c.tech_prefix,
            "; ".join(r.describe() for r in c.number_rules),
            trunks.get(c.carrier_id, 0),
        )
        for c in sorted(s.carriers().values(), key=lambda c: c.carrier_id)
    ]
    print_table(
        (
            "carrier",
            "state",
            "cur",
            "deck",
            "prio",
            "weight",
            "calls",
            "cps",
            "tech",
            "rules",
            "trunks",
        ),
        rows,
    )
    return 0


def cmd_carrier_deck_import(ctx: Context) -> int:
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
    report = store(ctx).import_carrier_deck(
        a.carrier,
        rows,
        effective_from=effective,
        mode=a.mode,
        source=str(path),
        content=data,
        dry_run=a.dry_run,
    )
    print_import_report(report, a.show)
    if not a.dry_run:
        losing = margin_rows(ctx, carrier_id=a.carrier, at=effective)
        if losing:
            print(
                f"{len(losing)} destinations cost more on {a.carrier} than they sell for "
                "(see 'ocsd lcr margin-report'):"
            )
            _print_margin(losing[: a.show])
    return 0


def cmd_trunk_add(ctx: Context) -> int:
    a = ctx.args
    changes = _changes(a, {**_LIMITS, "address": "address"})
    if "number_rules" in changes and changes["number_rules"] is None:
        changes.pop("number_rules")
    try:
        trunk = Trunk(a.trunk_id, a.carrier, **changes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    store(ctx).add_trunk(trunk)
    print(f"trunk {trunk.trunk_id} of {trunk.carrier_id} added")
    return 0


def cmd_trunk_set(ctx: Context) -> int:
    changes = _changes(ctx.args, {**_LIMITS, "address": "address"})
    if not changes:
        raise UsageError("nothing to change")
    trunk = store(ctx).update_trunk(ctx.args.trunk_id, **changes)
    print(f"trunk {trunk.trunk_id} updated")
    return 0


def cmd_trunk_list(ctx: Context) -> int:
    rows = [
        (
            t.trunk_id,
            t.carrier_id,
            "on" if t.enabled else "off",
            t.address,
            t.priority,
            t.weight,
            t.max_calls or "-",
            t.max_cps or "-",
            "(carrier's)" if t.tech_prefix is None else t.tech_prefix,
        )
        for t in store(ctx).trunks(ctx.args.carrier)
    ]
    print_table(
        ("trunk", "carrier", "state", "address", "prio", "weight", "calls", "cps", "tech"), rows
    )
    return 0


# -- route plans -----------------------------------------------------------------------------


def _plan_changes(a: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if a.name is not None:
        changes["name"] = a.name
    if a.strategy is not None:
        changes["strategy"] = a.strategy
    if a.typical_duration is not None:
        changes["typical_duration_s"] = a.typical_duration or None
    if a.min_margin is not None:
        changes["min_margin_micros"] = None if a.min_margin == "default" else money(a.min_margin)
    if a.min_margin_percent is not None:
        try:
            changes["min_margin_percent"] = (
                None if a.min_margin_percent == "default" else Decimal(a.min_margin_percent)
            )
        except InvalidOperation:
            raise UsageError(f"--min-margin-percent {a.min_margin_percent!r}") from None
    floor = [a.floor_asr, a.floor_acd, a.floor_ner, a.floor_pdd]
    if any(v is not None for v in floor):
        try:
            changes["quality_floor"] = QualityFloor(
                a.floor_asr or 0.0, a.floor_acd or 0, a.floor_ner or 0.0, a.floor_pdd or 0
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return changes


def cmd_route_plan_add(ctx: Context) -> int:
    changes = _plan_changes(ctx.args)
    try:
        plan = RoutePlan(ctx.args.plan_id, **changes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    store(ctx).add_route_plan(plan)
    print(f"route plan {plan.plan_id} added ({plan.strategy})")
    return 0


def cmd_route_plan_set(ctx: Context) -> int:
    changes = _plan_changes(ctx.args)
    if not changes:
        raise UsageError("nothing to change")
    plan = store(ctx).update_route_plan(ctx.args.plan_id, **changes)
    print(f"route plan {plan.plan_id} updated")
    return 0


def cmd_route_plan_list(ctx: Context) -> int:
    s = store(ctx)
    bound: dict[str, list[str]] = {}
    for b in s.bindings():
        if b.route_plan_id:
            bound.setdefault(b.route_plan_id, []).append(f"{b.kind.value}:{b.subject_id}")
    rows = []
    for plan in sorted(s.route_plans().values(), key=lambda p: p.plan_id):
        rows.append(
            (
                plan.plan_id,
                plan.strategy,
                len(plan.entries),
                plan.typical_duration_s or "-",
                "-" if plan.min_margin_micros is None else format_micros(plan.min_margin_micros),
                "-" if plan.min_margin_percent is None else plan.min_margin_percent,
                ", ".join(bound.get(plan.plan_id, [])),
            )
        )
    print_table(
        ("plan", "strategy", "entries", "typical s", "min margin", "min %", "bound to"), rows
    )
    return 0


def cmd_route_plan_show(ctx: Context) -> int:
    plan = store(ctx).route_plans().get(ctx.args.plan_id)
    if plan is None:
        raise UsageError(f"no route plan {ctx.args.plan_id!r}")
    floor = plan.quality_floor
    print(
        f"route plan {plan.plan_id}: {plan.strategy}, typical "
        f"{plan.typical_duration_s or 'default'} s, floor ASR {floor.min_asr} "
        f"ACD {floor.min_acd_s}s NER {floor.min_ner} "
        f"PDD {floor.max_pdd_ms or '-'}ms"
    )
    for prefix, name in plan.prefix_strategies:
        print(f"  numbers {prefix or '*'}...: {name}")
    print_table(
        ("prefix", "carrier", "priority", "weight"),
        [(e.prefix or "*", e.carrier_id, e.priority, e.weight) for e in plan.entries],
    )
    return 0


def cmd_route_plan_entry(ctx: Context) -> int:
    a = ctx.args
    prefix = "" if a.prefix == "*" else a.prefix.removeprefix("+")
    s = store(ctx)
    if a.remove:
        s.remove_route_entry(a.plan_id, prefix, a.carrier)
        print(f"route plan {a.plan_id}: {a.prefix} no longer via {a.carrier}")
        return 0
    try:
        entry = RouteEntry(prefix, a.carrier, a.priority, a.weight)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    s.add_route_entry(a.plan_id, entry)
    print(f"route plan {a.plan_id}: {a.prefix} via {a.carrier}")
    return 0


def cmd_route_plan_strategy(ctx: Context) -> int:
    a = ctx.args
    prefix = "" if a.prefix == "*" else a.prefix.removeprefix("+")
    strategy = None if a.strategy == "default" else a.strategy
    store(ctx).set_prefix_strategy(a.plan_id, prefix, strategy)
    print(f"route plan {a.plan_id}: {a.prefix} uses {a.strategy}")
    return 0


def _binding_subject(a: argparse.Namespace) -> tuple[BindingKind, str]:
    if bool(a.account) == bool(a.tariff_plan):
        raise UsageError("give exactly one of --account or --tariff-plan")
    if a.account:
        return BindingKind.ACCOUNT, a.account
    return BindingKind.TARIFF_PLAN, a.tariff_plan


def _bind(ctx: Context, route_plan: str | None, rule: str | None, keep: str) -> None:
    kind, subject = _binding_subject(ctx.args)
    s = store(ctx)
    current = next((b for b in s.bindings() if (b.kind, b.subject_id) == (kind, subject)), None)
    if current is not None:
        if keep == "rule":
            rule = current.caller_id_rule
        else:
            route_plan = current.route_plan_id
    s.bind(Binding(kind, subject, route_plan, rule))


def cmd_route_plan_bind(ctx: Context) -> int:
    plan = None if ctx.args.plan_id == "none" else ctx.args.plan_id
    _bind(ctx, plan, None, keep="rule")
    print(f"route plan {ctx.args.plan_id} bound")
    return 0


# -- caller ID -------------------------------------------------------------------------------


def cmd_caller_id_pool(ctx: Context) -> int:
    try:
        added = store(ctx).add_pool_numbers(ctx.args.pool_id, ctx.args.numbers)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"pool {ctx.args.pool_id}: {added} numbers added")
    return 0


def cmd_caller_id_rule(ctx: Context) -> int:
    a = ctx.args
    try:
        rule = CallerIdRule(
            a.rule_id, CallerIdAction(a.action), a.pool, a.strip, a.add, a.when.removeprefix("+")
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    store(ctx).add_caller_id_rule(rule)
    print(f"caller-ID rule {rule.rule_id} added ({rule.action.value})")
    return 0


def cmd_caller_id_bind(ctx: Context) -> int:
    rule = None if ctx.args.rule_id == "none" else ctx.args.rule_id
    _bind(ctx, None, rule, keep="plan")
    print(f"caller-ID rule {ctx.args.rule_id} bound")
    return 0


# -- portability -----------------------------------------------------------------------------


def _portability_rows(data: bytes, filename: str) -> list[tuple[str, str, str]]:
    text = data.decode("utf-8-sig")
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t", "|"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    aliases = {
        "number": ("number", "msisdn", "dn", "ported_number", "telephone number"),
        "routing": ("routing_number", "routing number", "lrn", "rn", "routing"),
        "carrier": ("carrier", "carrier_id", "network", "operator", "recipient"),
    }
    positions: dict[str, int] = {}
    for key, names in aliases.items():
        for index, name in enumerate(header):
            if name in names:
                positions[key] = index
    if "number" not in positions or "routing" not in positions:
        raise UsageError(f"{filename}:1: needs columns number and routing_number")
    rows: list[tuple[str, str, str]] = []
    for record in reader:
        if not record or not any(c.strip() for c in record):
            continue
        carrier = record[positions["carrier"]] if "carrier" in positions else ""
        rows.append((record[positions["number"]], record[positions["routing"]], carrier))
    return rows


def cmd_portability_import(ctx: Context) -> int:
    path = Path(ctx.args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    rows = _portability_rows(data, str(path))
    count, removed = store(ctx).import_portability(
        iter(rows), mode=ctx.args.mode, source=str(path), content=data
    )
    print(f"portability: {count} rows imported ({ctx.args.mode}), {removed} numbers removed")
    return 0


def cmd_portability_lookup(ctx: Context) -> int:
    number = ctx.args.number.removeprefix("+")
    row = ctx.db.query_one(
        "SELECT routing_number, carrier_id FROM ported_numbers WHERE number = ?", (number,)
    )
    if row is None:
        print(f"{number}: not ported")
        return 1
    print(f"{number}: routing number {row[0]}, carrier {row[1] or '-'}")
    return 0


# -- lcr route and margin report -------------------------------------------------------------


def _home_currency(directory: Directory) -> str:
    roots = [t for t in directory.tenants.values() if t.parent_id is None]
    return roots[0].currency if roots else "USD"


def build_router(ctx: Context, directory: Directory, *, quality: bool = True) -> Router:
    """The router over the records database (and the shared quality window when on Redis)."""
    settings = ctx.config.lcr
    catalog = store(ctx).load_catalog(directory.decks)
    board = QualityBoard()
    hot = ctx.config.stores.hot_url
    if quality and hot != "embedded":
        board = _read_quality(ctx, hot)
    return Router(
        catalog,
        settings,
        fx=directory.rater.fx,
        home_currency=_home_currency(directory),
        quality=board,
    )


def _read_quality(ctx: Context, url: str) -> QualityBoard:
    from lcr.quality_store import RedisRoutingState
    from lcr.state import HotStoreUnavailable

    async def read() -> QualityBoard:
        state = RedisRoutingState.from_url(
            url, ctx.config.lcr, key_prefix=ctx.config.stores.redis_key_prefix
        )
        try:
            now = datetime.now(UTC).timestamp()
            snapshot, _ = evaluate(await state.window(now), ctx.config.lcr.quality, now)
            return QualityBoard(snapshot)
        finally:
            await state.close()

    try:
        return asyncio.run(read())
    except (HotStoreUnavailable, OSError) as exc:
        print(f"(quality statistics unavailable: {exc})")
        return QualityBoard()


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_decision(decision: RouteDecision) -> None:
    """Ranked routes with cost, margin and quality; then the skipped carriers and why."""
    res = decision.resolution
    ported = (
        f", ported: routing number {res.routing_number} ({res.ported_carrier or '-'})"
        if res.ported
        else ""
    )
    print(
        f"plan {decision.plan_id or '-'}, strategy {decision.strategy or '-'}, typical call "
        f"{decision.typical_duration_s} s{ported}"
    )
    rows = [
        (
            i,
            r.carrier_id,
            r.trunk_id or "-",
            r.number,
            r.caller_id or "(withheld)",
            f"{r.prefix} {r.destination}".strip(),
            f"{format_micros(r.rate_micros)}/min",
            f"{format_micros(r.cost_micros)} {r.currency}",
            "-"
            if r.margin_micros is None
            else f"{format_micros(r.margin_micros)} {decision.home_currency}",
            _ratio(r.asr),
            "-" if r.acd_s is None else f"{r.acd_s:.0f}",
            _ratio(r.ner),
            "-" if r.pdd_ms is None else f"{r.pdd_ms:.0f}",
            r.samples,
            "probe" if r.probe else "",
        )
        for i, r in enumerate(decision.routes, 1)
    ]
    print_table(
        (
            "#",
            "carrier",
            "trunk",
            "number",
            "caller id",
            "prefix",
            "rate",
            "cost/call",
            "margin",
            "ASR",
            "ACD",
            "NER",
            "PDD",
            "n",
            "",
        ),
        rows,
    )
    for skip in decision.skipped:
        trunk = f"/{skip.trunk_id}" if skip.trunk_id else ""
        detail = f": {skip.detail}" if skip.detail else ""
        print(f"skipped {skip.carrier_id}{trunk}: {skip.reason.value}{detail}")
    if decision.no_route is not None:
        print(f"no route: {decision.no_route.value}")


def cmd_lcr_route(ctx: Context) -> int:
    a = ctx.args
    directory = ctx.directory()
    account = directory.accounts.get(a.account)
    if account is None:
        raise UsageError(f"no account {a.account!r}")
    account_zone = directory.zone(account)
    start = instant(a.at, account_zone) if a.at else datetime.now(UTC)
    at = int(start.timestamp())
    try:
        number = directory.dial_plan.normalize(a.to)
    except NumberFormatError as exc:
        raise UsageError(str(exc)) from None
    router = build_router(ctx, directory)
    resolution = router.resolve(number)
    weekday, second = local_position(at, account_zone)
    try:
        price = directory.rater.price(
            directory.chain(account), resolution.rating_number, at, weekday, second
        )
    except RatingError as exc:
        print(f"not rated: {exc.reason.value}: {exc}")
        return 1
    calling = a.calling.removeprefix("+") if a.calling else ""
    decision = router.route(
        RouteRequest(
            account.account_id,
            number,
            at,
            tariff_plan_id=account.plan_id,
            calling=calling,
            price=price,
            resolution=resolution,
        )
    )
    sells = price.cost(decision.typical_duration_s)
    print(
        f"call {a.to} -> {number} from {account.account_id}: sells at "
        f"{format_micros(sells)} {account.currency} per {decision.typical_duration_s} s"
    )
    print_decision(decision)
    return 0 if decision.ok else 1


def margin_rows(
    ctx: Context,
    *,
    carrier_id: str | None = None,
    plan_id: str | None = None,
    duration_s: int | None = None,
    at: int | None = None,
) -> list[tuple[Any, ...]]:
    """Destinations whose carriers cost more than the operator's sell decks charge."""
    directory = ctx.directory()
    catalog: Catalog = store(ctx).load_catalog(directory.decks, portability=False)
    settings = ctx.config.lcr
    fx = directory.rater.fx
    home = _home_currency(directory)
    when = at if at is not None else int(datetime.now(UTC).timestamp())
    tariff_plans = [
        p
        for p in directory.plans.values()
        if p.deck_id and (plan_id is None or p.plan_id == plan_id)
    ]
    found: list[tuple[Any, ...]] = []

    def to_home(amount: int, currency: str) -> Fraction | None:
        try:
            return amount * fx.factor(currency, home, when)[0]
        except NoExchangeRate:
            return None

    for tariff in sorted(tariff_plans, key=lambda p: p.plan_id):
        binding = catalog.bindings.get((BindingKind.TARIFF_PLAN, tariff.plan_id))
        route_plan_id = binding.route_plan_id if binding else None
        route_plan_id = route_plan_id or settings.default_route_plan
        compiled = catalog.plans.get(route_plan_id) if route_plan_id else None
        if compiled is None:
            continue
        duration = duration_s or compiled.plan.typical_duration_s or settings.typical_duration_s
        sell_deck = directory.decks[tariff.deck_id or ""]
        carrier_ids = {e.carrier_id for e in compiled.plan.entries}
        if carrier_id is not None:
            if carrier_id not in carrier_ids:
                continue
            carrier_ids = {carrier_id}
        prefixes = set(sell_deck.in_force(when))
        for cid in carrier_ids:
            view = catalog.carriers.get(cid)
            if view and view.carrier.deck_id in directory.decks:
                prefixes |= set(directory.decks[view.carrier.deck_id].in_force(when))
        for prefix in sorted(prefixes):
            sell = sell_deck.lookup(prefix, when)
            _, entries = compiled.entries_for(prefix)
            if sell is None or not entries:
                continue
            sell_terms = RateTerms(
                sell.rate_micros,
                sell.connect_fee_micros,
                sell.first_block_s,
                sell.increment_s,
                sell.grace_s,
                tariff.scope,
                tariff.mode,
            )
            revenue = to_home(sell_terms.cost(duration), sell_deck.currency)
            if revenue is None:
                continue
            for entry in entries:
                view = catalog.carriers.get(entry.carrier_id)
                if view is None or entry.carrier_id not in carrier_ids or not view.carrier.deck_id:
                    continue
                deck = directory.decks.get(view.carrier.deck_id)
                rate = deck.lookup(prefix, when) if deck else None
                if deck is None or rate is None:
                    continue
                c = view.carrier
                cost = RateTerms(
                    rate.rate_micros,
                    rate.connect_fee_micros,
                    rate.first_block_s,
                    rate.increment_s,
                    rate.grace_s,
                    c.scope,
                    c.mode,
                ).cost(duration)
                cost_home = to_home(cost, deck.currency)
                if cost_home is None or cost_home <= revenue:
                    continue
                found.append(
                    (
                        tariff.plan_id,
                        prefix,
                        sell.destination or rate.destination,
                        c.carrier_id,
                        format_micros(int(revenue // 1)),
                        format_micros(int(cost_home // 1)),
                        format_micros(int((revenue - cost_home) // 1)),
                        home,
                        duration,
                    )
                )
    return found


def _print_margin(rows: Sequence[tuple[Any, ...]]) -> None:
    print_table(
        ("tariff", "prefix", "destination", "carrier", "sells", "costs", "margin", "cur", "s"),
        rows,
    )


def cmd_lcr_margin_report(ctx: Context) -> int:
    a = ctx.args
    at = int(instant(a.at).timestamp()) if a.at else None
    rows = margin_rows(ctx, carrier_id=a.carrier, plan_id=a.plan, duration_s=a.duration, at=at)
    if not rows:
        print("no destination loses money")
        return 0
    print(f"{len(rows)} destination/carrier pairs lose money:")
    _print_margin(rows[: a.limit])
    if len(rows) > a.limit:
        print(f"... and {len(rows) - a.limit} more (--limit)")
    return 1


# -- registration ----------------------------------------------------------------------------


def register(
    commands: Sub,
    common: argparse.ArgumentParser,
    *,
    leaf_factory: Callable[..., argparse.ArgumentParser],
    group_factory: Callable[[str, str], Sub],
) -> None:
    """Add the routing subcommands."""
    carrier = group_factory("carrier", "termination carriers and their decks")
    for name, handler, text in (
        ("add", cmd_carrier_add, "add a carrier"),
        ("set", cmd_carrier_set, "change a carrier (audited)"),
    ):
        p = leaf_factory(carrier, name, handler, text)
        p.add_argument("carrier_id")
        p.add_argument("--name")
        _add_limits(p)
        if name == "add":
            p.add_argument("--currency", required=True, help="what the carrier bills in")
            p.add_argument("--send-routing-number", action="store_true")
            p.add_argument(
                "--rounding", choices=[s.value for s in RoundingScope], default="per_call"
            )
            p.add_argument("--round", choices=[m.value for m in Rounding], default="up")
        else:
            p.add_argument(
                "--send-routing-number", type=lambda v: v.lower() in ("1", "yes", "true", "on")
            )
    leaf_factory(carrier, "list", cmd_carrier_list, "list carriers")
    deck_parser = carrier.add_parser("deck", help="a carrier's termination deck", parents=[common])
    deck = deck_parser.add_subparsers(dest="deck_action", required=True, metavar="ACTION")
    p = leaf_factory(deck, "import", cmd_carrier_deck_import, "import a carrier's CSV deck")
    p.add_argument("carrier")
    p.add_argument("file")
    p.add_argument("--mode", choices=("replace", "update"), default="replace")
    p.add_argument("--effective-from", help="when the import takes effect (default now)")
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--first-block", type=int, default=60)
    p.add_argument("--increment", type=int, default=60)
    p.add_argument("--grace", type=int, default=0)
    p.add_argument("--connect-fee", default="0")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--show", type=int, default=20)

    trunk = group_factory("trunk", "carriers' trunks (gateways)")
    for name, handler, text in (
        ("add", cmd_trunk_add, "add a trunk to a carrier"),
        ("set", cmd_trunk_set, "change a trunk (audited)"),
    ):
        p = leaf_factory(trunk, name, handler, text)
        p.add_argument("trunk_id")
        if name == "add":
            p.add_argument("--carrier", required=True)
        p.add_argument("--address", help="host[:port]")
        _add_limits(p)
    p = leaf_factory(trunk, "list", cmd_trunk_list, "list trunks")
    p.add_argument("--carrier")

    plan = group_factory("route-plan", "which carriers carry which destinations, and how")
    for name, handler, text in (
        ("add", cmd_route_plan_add, "add a route plan"),
        ("set", cmd_route_plan_set, "change a route plan (audited)"),
    ):
        p = leaf_factory(plan, name, handler, text)
        p.add_argument("plan_id")
        p.add_argument("--name")
        p.add_argument("--strategy", choices=strategies.names())
        p.add_argument("--typical-duration", type=int, help="seconds (0: the default)")
        p.add_argument("--min-margin", help="per call, operator's currency ('default')")
        p.add_argument("--min-margin-percent", help="of what each level pays ('default')")
        p.add_argument("--floor-asr", type=float, help="cost_with_quality_floor: least ASR")
        p.add_argument("--floor-acd", type=int, help="... least ACD (s)")
        p.add_argument("--floor-ner", type=float, help="... least NER")
        p.add_argument("--floor-pdd", type=int, help="... most PDD (ms)")
    leaf_factory(plan, "list", cmd_route_plan_list, "list route plans")
    p = leaf_factory(plan, "show", cmd_route_plan_show, "show a plan's entries")
    p.add_argument("plan_id")
    p = leaf_factory(plan, "entry", cmd_route_plan_entry, "allow (or --remove) a carrier")
    p.add_argument("plan_id")
    p.add_argument("prefix", help="destination prefix, * for every number")
    p.add_argument("carrier")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--weight", type=int, default=1)
    p.add_argument("--remove", action="store_true")
    p = leaf_factory(plan, "strategy", cmd_route_plan_strategy, "a strategy for a prefix")
    p.add_argument("plan_id")
    p.add_argument("prefix")
    p.add_argument("strategy", choices=[*strategies.names(), "default"])
    p = leaf_factory(plan, "bind", cmd_route_plan_bind, "use a plan for an account or tariff")
    p.add_argument("plan_id", help="a route plan, or none")
    p.add_argument("--account")
    p.add_argument("--tariff-plan")

    caller = group_factory("caller-id", "caller-ID pools and rules")
    p = leaf_factory(caller, "pool", cmd_caller_id_pool, "add numbers to a pool")
    p.add_argument("pool_id")
    p.add_argument("numbers", nargs="+")
    p = leaf_factory(caller, "rule", cmd_caller_id_rule, "add a caller-ID rule")
    p.add_argument("rule_id")
    p.add_argument("--action", choices=[a.value for a in CallerIdAction], required=True)
    p.add_argument("--pool", help="with --action replace")
    p.add_argument("--strip", type=int, default=0)
    p.add_argument("--add", default="")
    p.add_argument("--when", default="", help="only callers starting with these digits")
    p = leaf_factory(caller, "bind", cmd_caller_id_bind, "use a rule for an account or tariff")
    p.add_argument("rule_id", help="a rule, or none")
    p.add_argument("--account")
    p.add_argument("--tariff-plan")

    porting = group_factory("portability", "the ported-number table")
    p = leaf_factory(porting, "import", cmd_portability_import, "import ported numbers (CSV)")
    p.add_argument("file")
    p.add_argument("--mode", choices=("replace", "update"), default="replace")
    p = leaf_factory(porting, "lookup", cmd_portability_lookup, "look a number up")
    p.add_argument("number")

    lcr = group_factory("lcr", "see what routing does")
    p = leaf_factory(lcr, "route", cmd_lcr_route, "rank the routes of a hypothetical call")
    p.add_argument("--account", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--from", dest="calling", default="")
    p.add_argument("--at", help="start (ISO; naive times in the account's zone)")
    p = leaf_factory(lcr, "margin-report", cmd_lcr_margin_report, "destinations losing money")
    p.add_argument("--plan", help="one tariff plan")
    p.add_argument("--carrier", help="one carrier")
    p.add_argument("--duration", type=int, help="call length (default: the typical one)")
    p.add_argument("--at", help="ISO date-time (default now)")
    p.add_argument("--limit", type=int, default=50)
