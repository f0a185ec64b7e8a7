"""``ocsd fraud ...``: what a call would trip, the lists, rule overrides and the decision log.

Every change is written to the records database with its audit entry (``--actor``); running
daemons pick it up at their next reload (they poll the change marker).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from fraud.counters import CounterStoreUnavailable
from fraud.engine import (
    COUNTRIES,
    LIVE,
    FraudEngine,
    calls_name,
    country_seconds_name,
    country_spend_name,
    short_name,
    spend_name,
)
from fraud.guard import FraudGuard
from fraud.listing import ListEntry, ListError, ListKind, Scope, display_prefix
from fraud.model import CallAttempt, Verdict
from fraud.rule import RULE_IDS, RuleError, Rules, rule_settings
from fraud.rule_store import FraudStore, FraudStoreError, entity_id
from ocsd.cli import Context, UsageError, actor, print_table
from ocsd.fraud_setup import load_fraud_engine, open_counter_store
from ocsd.sql_store import redact
from rating.dialplan import DialPlan, NumberFormatError
from rating.money import format_micros

Handler = Callable[[Context], int]


def _user_errors(handler: Handler) -> Handler:
    @functools.wraps(handler)
    def run(ctx: Context) -> int:
        try:
            return handler(ctx)
        except (FraudStoreError, ListError, RuleError) as exc:
            raise UsageError(str(exc)) from None

    return run


def _store(ctx: Context) -> FraudStore:
    return FraudStore(ctx.db, actor=ctx.args.actor or actor())


def _owner(args: argparse.Namespace) -> tuple[Scope, str]:
    chosen = [
        (scope, value)
        for scope, value in (
            (Scope.ACCOUNT, getattr(args, "account", None)),
            (Scope.PEER, getattr(args, "peer", None)),
            (Scope.GLOBAL, "" if getattr(args, "all_accounts", False) else None),
        )
        if value is not None
    ]
    if len(chosen) != 1:
        raise UsageError("say whose list: --account A, --peer P or --global")
    return chosen[0]


def _change(kind: ListKind) -> Handler:
    @_user_errors
    def run(ctx: Context) -> int:
        a = ctx.args
        scope, owner = _owner(a)
        store = _store(ctx)
        whose = entity_id(scope, owner)
        for value in a.values:
            if a.remove:
                store.remove_entry(kind, scope, owner, value)
                print(f"{kind.value} {whose}: {value} removed")
            else:
                store.add_entry(ListEntry(kind, scope, owner, value, note=a.note))
                print(f"{kind.value} {whose}: {value} added")
        return 0

    return run


@_user_errors
def cmd_unblock(ctx: Context) -> int:
    store = _store(ctx)
    for prefix in ctx.args.values:
        store.unblock(ctx.args.account, prefix)
        print(f"blocked {ctx.args.account}: {prefix} removed")
    return 0


@_user_errors
def cmd_list(ctx: Context) -> int:
    a = ctx.args
    store = _store(ctx)
    scope: Scope | None = None
    owner: str | None = None
    if a.account or a.peer or a.all_accounts:
        scope, owner = _owner(a)
    kind = ListKind(a.list) if a.list else None
    entries = store.entries(kind, scope, owner)
    print_table(
        ("list", "whose", "value", "source", "note", "added", "by"),
        [
            (
                s.entry.kind.value,
                entity_id(s.entry.scope, s.entry.owner),
                display_prefix(s.entry.value),
                s.entry.source,
                s.entry.note,
                s.created_at.strftime("%Y-%m-%d %H:%M"),
                s.created_by,
            )
            for s in entries
        ],
    )
    overrides = store.overrides()
    if overrides and kind is None:
        print()
        rows = [
            (owner_ or "*", rule_id, ", ".join(f"{k}={_text(v)}" for k, v in settings.items()))
            for owner_, rules in overrides.items()
            if owner is None or owner_ == owner
            for rule_id, settings in rules.items()
        ]
        print_table(("whose", "rule", "override"), rows)
    return 0


def _text(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _parse_settings(pairs: Sequence[str]) -> dict[str, object]:
    changes: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{pair!r} is not KEY=VALUE")
        changes[key.strip()] = value.strip()
    return changes


@_user_errors
def cmd_rule(ctx: Context) -> int:
    a = ctx.args
    store = _store(ctx)
    whose = a.account or "every account"
    if a.op == "show":
        engine = load_fraud_engine(ctx.config, ctx.db)
        rules = engine.rules_for(a.account) if a.account else engine.rules
        _print_rules(rules, a.rule)
        return 0
    if a.op == "set":
        stored = store.set_override(a.account, a.rule, _parse_settings(a.settings))
        shown = ", ".join(f"{k}={_text(v)}" for k, v in stored.items())
        print(f"{a.rule} for {whose}: {shown}")
    else:
        store.clear_override(a.account, a.rule)
        print(f"{a.rule} for {whose}: override removed")
    return 0


def _print_rules(rules: Rules, only: str | None) -> None:
    rows = []
    for rule_id in RULE_IDS:
        if only and rule_id != only:
            continue
        settings = rule_settings(rules.get(rule_id))
        enabled = "on" if settings.pop("enabled") else "off"
        actions = _text(settings.pop("actions"))
        rows.append((rule_id, enabled, actions, ", ".join(f"{k}={v}" for k, v in settings.items())))
    print_table(("rule", "state", "actions", "thresholds"), rows)


def _measure(rules: Rules, rule_id: str, verdict: Verdict) -> str:
    """What a counter rule measured, against its threshold."""
    counters = verdict.counters
    country = verdict.country
    rule: Any = rules.get(rule_id)
    if rule_id == "calls_per_minute":
        return f"{counters.get(calls_name(rule.window_s), 0)} calls / max {rule.max_calls}"
    if rule_id == "concurrent_calls":
        return f"{counters.get(LIVE, 0)} live / max {rule.max_calls}"
    if rule_id in ("spend_per_hour", "spend_per_day"):
        spent = counters.get(spend_name(rule.window_s), 0)
        return f"spent {format_micros(spent)} / {rule.max_spend}"
    if rule_id == "country_spend_per_hour":
        spent = counters.get(country_spend_name(country, rule.window_s), 0)
        return f"spent {format_micros(spent)} on {country} / {rule.max_spend}"
    if rule_id == "country_minutes_per_hour":
        seconds = counters.get(country_seconds_name(country, rule.window_s), 0)
        return f"{seconds} s to {country} / {rule.max_minutes} min"
    if rule_id == "short_calls":
        count = counters.get(short_name(rule.shorter_than_s, rule.window_s), 0)
        return f"{count} short calls / {rule.max_calls}"
    if rule_id == "new_country":
        known = counters.get(f"{COUNTRIES}?{country}", 0)
        size = counters.get(f"{COUNTRIES}#", 0)
        return f"{country} {'called before' if known else 'never called'}, {size} countries"
    return ""


@_user_errors
def cmd_test(ctx: Context) -> int:
    a = ctx.args
    account = ctx.master.get_account(a.account)
    if account is None:
        raise UsageError(f"no account {a.account!r}")
    plan = DialPlan(ctx.config.rating.dial_plan)
    try:
        called = plan.normalize(a.to)
        calling = plan.normalize(a.from_) if a.from_ else ""
    except NumberFormatError as exc:
        raise UsageError(str(exc)) from None
    engine = load_fraud_engine(ctx.config, ctx.db)
    attempt = CallAttempt(
        account_id=account.account_id,
        called=called,
        now=datetime.now(UTC).timestamp(),
        session_id="ocsd-fraud-test",
        calling=calling,
        source_ip=a.source_ip or "",
        caller_ip=a.ip or "",
        peer=a.peer or "",
    )
    try:
        verdict = asyncio.run(_preview(ctx, engine, attempt))
    except CounterStoreUnavailable as exc:
        print(f"ocsd: {exc}", file=sys.stderr)
        return 1
    _print_verdict(ctx, engine, attempt, verdict)
    return 0


async def _preview(ctx: Context, engine: FraudEngine, attempt: CallAttempt) -> Verdict:
    store = open_counter_store(ctx.config)
    try:
        return await FraudGuard(engine, store).preview(attempt)
    finally:
        await store.close()


def _print_verdict(
    ctx: Context, engine: FraudEngine, attempt: CallAttempt, verdict: Verdict
) -> None:
    rules = engine.rules_for(attempt.account_id)
    hot = ctx.config.stores.hot_url
    where = redact(hot) if hot != "embedded" else f"embedded {ctx.config.embedded_fraud_path}"
    print(
        f"call {attempt.account_id} -> {attempt.called} ({verdict.country})"
        + (f" from {attempt.calling}" if attempt.calling else "")
        + (f", caller {attempt.caller_ip}" if attempt.caller_ip else "")
        + (f", peer {attempt.peer} at {attempt.source_ip or '-'}" if attempt.peer else "")
    )
    if not engine.enabled:
        print("fraud controls are disabled (fraud.enabled: false)")
        return
    print(f"counters from {where}, this call counted")
    hits = {hit.rule_id: hit for hit in verdict.hits}
    rows = []
    for rule_id in RULE_IDS:
        rule = rules.get(rule_id)
        hit = hits.get(rule_id)
        state = "TRIPS" if hit else ("ok" if rule.enabled else "off")
        detail = hit.message if hit else (_measure(rules, rule_id, verdict) if rule.enabled else "")
        rows.append((rule_id, state, _text([x.value for x in rule.actions]), detail))
    print_table(("rule", "state", "actions", "detail"), rows)
    refusal = verdict.refusal
    if refusal is not None:
        code = (
            "destination_blocked" if refusal.refusal.value == "destination" else "fraud_suspected"
        )
        print(f"verdict: refused by {refusal.rule_id} ({code})")
    elif verdict.hits:
        print(f"verdict: allowed, alerting on {', '.join(hits)}")
    else:
        print("verdict: allowed")


@_user_errors
def cmd_audit(ctx: Context) -> int:
    a = ctx.args
    store = _store(ctx)
    if a.changes:
        rows = store.changes(a.account, a.limit)
        print_table(
            ("id", "at", "actor", "entity", "whose", "list/rule", "before", "after", "note"), rows
        )
        return 0
    decisions = store.decisions(a.account, a.rule, a.limit)
    for item in decisions:
        suppressed = f" (not repeated: {item['suppressed']})" if item["suppressed"] else ""
        print(
            f"#{item['decision_id']} {item['at'].isoformat()} {item['node'] or '-'} "
            f"account {item['account_id']} rule {item['rule_id']} at {item['stage']}: "
            f"{item['actions']}{suppressed}"
        )
        print(f"    {item['message']}")
        details = ", ".join(f"{k}={v}" for k, v in item["details"].items())
        print(f"    values: {details}")
        if item["session_id"] or item["called"]:
            print(f"    session {item['session_id'] or '-'}, called {item['called'] or '-'}")
        for step in item["undo"]:
            print(f"    undo: {step}")
    if not decisions:
        print("no fraud decisions")
    return 0


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    *,
    leaf_factory: Callable[..., argparse.ArgumentParser],
    group_factory: Callable[..., argparse._SubParsersAction[argparse.ArgumentParser]],
) -> None:
    """Add ``ocsd fraud ...`` to the command line."""
    fraud = group_factory("fraud", "fraud controls: test a call, lists, rules, decisions")

    p = leaf_factory(fraud, "test", cmd_test, "show which rules a call would trip, and why")
    p.add_argument("--account", required=True)
    p.add_argument("--to", required=True, help="the called number")
    p.add_argument("--from", dest="from_", help="the calling number (CLI)")
    p.add_argument("--ip", help="the caller's address")
    p.add_argument("--peer", help="the Diameter peer or RADIUS client name")
    p.add_argument("--source-ip", help="the address the request comes from (the peer's)")

    def whose(
        p: argparse.ArgumentParser,
        *,
        accounts: bool = True,
        peers: bool = False,
        everyone: bool = True,
    ) -> None:
        group = p.add_mutually_exclusive_group()
        if accounts:
            group.add_argument("--account", help="an account's list")
        if everyone:
            group.add_argument(
                "--global", dest="all_accounts", action="store_true", help="the global list"
            )
        if peers:
            group.add_argument("--peer", help="a peer's list")

    for name, kind, what, help_text in (
        ("allow", ListKind.ALLOW, "PREFIX", "destination prefixes allowed (* for all)"),
        ("deny", ListKind.DENY, "PREFIX", "destination prefixes refused (* for all)"),
        ("dnc", ListKind.DNC, "NUMBER", "Do-Not-Call numbers"),
    ):
        p = leaf_factory(fraud, name, _change(kind), f"add or remove {help_text}")
        whose(p)
        p.add_argument("values", nargs="+", metavar=what)
        p.add_argument("--remove", action="store_true")
        p.add_argument("--note", default="")
    p = leaf_factory(
        fraud, "optin", _change(ListKind.OPT_IN), "let an account call high-risk ranges"
    )
    p.add_argument("--account", required=True)
    p.add_argument("values", nargs="+", metavar="PREFIX", help="a high-risk prefix, or * for all")
    p.add_argument("--remove", action="store_true")
    p.add_argument("--note", default="")
    p = leaf_factory(
        fraud, "highrisk", _change(ListKind.HIGH_RISK), "add or remove high-risk ranges"
    )
    p.set_defaults(all_accounts=True)
    p.add_argument("values", nargs="+", metavar="PREFIX")
    p.add_argument("--remove", action="store_true")
    p.add_argument("--note", default="", help="a label, e.g. the range's name")
    p = leaf_factory(
        fraud, "ip", _change(ListKind.IP), "source networks of an account's calls or a peer"
    )
    whose(p, peers=True, everyone=False)
    p.add_argument("values", nargs="+", metavar="CIDR")
    p.add_argument("--remove", action="store_true")
    p.add_argument("--note", default="")
    p = leaf_factory(fraud, "unblock", cmd_unblock, "lift blocks set by fraud actions")
    p.add_argument("--account", required=True)
    p.add_argument("values", nargs="+", metavar="PREFIX")

    p = leaf_factory(fraud, "list", cmd_list, "show the lists and rule overrides")
    whose(p, peers=True)
    p.add_argument("--list", choices=[k.value for k in ListKind])

    rule = fraud.add_parser(
        "rule", help="show, override or restore rule settings", parents=[common]
    )
    rule_actions = rule.add_subparsers(dest="rule_action", required=True, metavar="ACTION")
    for op, help_text in (
        ("show", "the rules in force (for one account)"),
        ("set", "override settings of a rule (for every account, or one)"),
        ("clear", "remove an override: the configuration applies again"),
    ):
        p = rule_actions.add_parser(op, help=help_text, parents=[common])
        p.set_defaults(handler=cmd_rule, op=op)
        p.add_argument(
            "rule", nargs="?" if op == "show" else None, choices=RULE_IDS, metavar="RULE"
        )
        if op == "set":
            p.add_argument("settings", nargs="+", metavar="KEY=VALUE")
        p.add_argument("--account", help="one account (default: every account)")

    p = leaf_factory(fraud, "audit", cmd_audit, "show fraud decisions (or list changes)")
    p.add_argument("--account")
    p.add_argument("--rule", choices=RULE_IDS)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument(
        "--changes", action="store_true", help="changes to lists and rules instead of decisions"
    )


__all__ = ["register"]
