"""Money commands: ``ocsd account topup|adjust|show|reconcile``.

A top-up, payment or adjustment is one ledger entry: the balance store credits (or debits)
the account and queues the entry in the same atomic step, then the entry is written to the
records database (this command runs the writer until the queue is empty, as the daemon's own
writer would). Every entry has an idempotency key: the same key twice moves money once.
Reconciliation checks, per account, that what the ledger put in minus what the CDRs took out
equals the balance in the store.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from balances.model import LedgerKind
from balances.store import BalanceStore
from cdr_writer.ledger import new_ledger_entry
from ocsd.cdr_service import build_cdr_writer, drain
from ocsd.cli import Context, UsageError, actor, describe_account, money, print_table
from ocsd.master import Account, TenantStatus
from ocsd.stores import open_balance_store
from rating.money import format_micros


def _account(ctx: Context, account_id: str) -> Account:
    account = ctx.master.get_account(account_id)
    if account is None:
        raise UsageError(f"no account {account_id!r}")
    return account


async def _with_store(ctx: Context, work: Any) -> Any:
    store = open_balance_store(ctx.config)
    try:
        return await work(store)
    finally:
        await store.close()


async def _flush(ctx: Context, store: BalanceStore) -> int:
    """Write what the queue holds to the records database."""
    writer = build_cdr_writer(ctx.config, store)
    try:
        return await drain(writer, asyncio.Event())
    finally:
        await writer.sink.close()


def _tenant_suspended(ctx: Context, tenant_id: str) -> bool:
    tenants = ctx.master.tenants()
    current = tenants.get(tenant_id)
    while current is not None:
        if current.status is TenantStatus.SUSPENDED:
            return True
        current = tenants.get(current.parent_id) if current.parent_id else None
    return False


def _reauthorize(ctx: Context, account_id: str) -> int | None:
    """Ask a running daemon to re-authorize the account's calls (Diameter RAR)."""
    http = ctx.config.http
    if not http.enabled:
        return None
    host = "127.0.0.1" if http.listen in ("0.0.0.0", "::", "") else http.listen
    request = urllib.request.Request(
        f"http://{host}:{http.port}/v1/accounts/{account_id}/reauthorize", method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return int(json.loads(response.read()).get("reauthorized", 0))
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _ledger(ctx: Context, kind: LedgerKind, amount_micros: int, reason: str) -> int:
    a = ctx.args
    account = _account(ctx, a.account_id)
    if amount_micros == 0:
        raise UsageError("the amount must not be zero")
    key = a.key or f"cli-{uuid.uuid4()}"
    entry = new_ledger_entry(
        account_id=account.account_id,
        kind=kind.value,
        amount_micros=amount_micros,
        currency=account.currency,
        idempotency_key=key,
        at_ms=int(time.time() * 1000),
        reason=reason,
        source_id=a.reference or "",
        actor=a.actor or actor(),
    )

    async def work(store: BalanceStore) -> Any:
        limits = account.limits(_tenant_suspended(ctx, account.tenant_id))
        await store.put_account(limits)
        result = await store.ledger(
            account.account_id, kind, amount_micros, key, entry.encode(), entry.at_ms
        )
        if result.applied or result.duplicate:
            await _flush(ctx, store)
        return result

    result = asyncio.run(_with_store(ctx, work))
    if result.duplicate:
        print(
            f"{kind.value} with key {key} was already applied: nothing moved; "
            f"balance {format_micros(result.balance_micros)} {account.currency}"
        )
        return 0
    if not result.applied:
        reason_text = result.reason.value if result.reason else "refused"
        raise UsageError(f"{kind.value} refused: {reason_text}")
    print(
        f"{kind.value} {format_micros(amount_micros)} {account.currency} applied "
        f"(key {key}); balance {format_micros(result.balance_micros)} {account.currency}"
    )
    if amount_micros > 0 and not a.no_reauthorize:
        sent = _reauthorize(ctx, account.account_id)
        if sent:
            print(f"asked the switches to re-authorize {sent} call(s) in progress")
    return 0


def cmd_topup(ctx: Context) -> int:
    """Credit an account (a top-up or a payment)."""
    amount = money(ctx.args.amount)
    if amount <= 0:
        raise UsageError("a top-up must be positive (use 'account adjust' to take money)")
    kind = LedgerKind(ctx.args.kind)
    return _ledger(ctx, kind, amount, ctx.args.reason or "")


def cmd_adjust(ctx: Context) -> int:
    """Correct a balance up or down, with a reason."""
    if not ctx.args.reason:
        raise UsageError("an adjustment needs --reason")
    return _ledger(ctx, LedgerKind.ADJUSTMENT, money(ctx.args.amount), ctx.args.reason)


def cmd_show(ctx: Context) -> int:
    """An account's master data, money state and latest ledger entries."""
    account = _account(ctx, ctx.args.account_id)

    async def work(store: BalanceStore) -> Any:
        return await store.get_account(account.account_id)

    state = asyncio.run(_with_store(ctx, work))
    rows = list(describe_account(account))
    if state is None:
        rows.append(("balance", "not in the balance store yet (no money moved)"))
    else:
        c = account.currency
        rows += [
            ("balance", f"{format_micros(state.balance_micros)} {c}"),
            ("held by calls", f"{format_micros(state.held_micros)} {c}"),
            ("available", f"{format_micros(state.available_micros)} {c}"),
            ("spent today", f"{format_micros(state.day_spent_micros)} {c} ({state.day_key})"),
            (
                "spent this month",
                f"{format_micros(state.month_spent_micros)} {c} ({state.month_key})",
            ),
            ("calls in progress", str(state.sessions)),
        ]
    for field_name, value in rows:
        print(f"{field_name:>18}: {value}")
    entries = ctx.master.ledger_entries(account.account_id, 10)
    if entries:
        print()
        print_table(
            ("at", "kind", "amount", "currency", "balance after", "reason", "source", "key", "by"),
            [(e[0], e[1], format_micros(e[2]), e[3], format_micros(e[4]), *e[5:]) for e in entries],
        )
    return 0


def cmd_reconcile(ctx: Context) -> int:
    """Check ledger - CDR charges = balance for every (or the named) account."""
    accounts = ctx.master.accounts()
    wanted = ctx.args.account_ids or sorted(accounts)
    for account_id in wanted:
        if account_id not in accounts:
            raise UsageError(f"no account {account_id!r}")
    db = ctx.db

    async def work(store: BalanceStore) -> dict[str, int | None]:
        if not ctx.args.no_flush:
            await _flush(ctx, store)
        out: dict[str, int | None] = {}
        for account_id in wanted:
            state = await store.get_account(account_id)
            out[account_id] = None if state is None else state.balance_micros
        return out

    balances = asyncio.run(_with_store(ctx, work))
    ledger = dict(
        db.query("SELECT account_id, COALESCE(SUM(amount_micros), 0) FROM ledger GROUP BY 1")
    )
    charged = dict(
        db.query("SELECT account_id, COALESCE(SUM(debited_micros), 0) FROM cdrs GROUP BY 1")
    )
    # Records the writer could not read are kept whole in cdr_rejects with the money the
    # store moved: they count, and they are shown.
    unread: dict[str, int] = {}
    for account_id, kind, amount in db.query(
        "SELECT account_id, record_kind, COALESCE(SUM(amount_micros), 0) FROM cdr_rejects "
        "WHERE stored_in = '' GROUP BY 1, 2"
    ):
        sign = 1 if kind == "ledger" else -1
        unread[account_id] = unread.get(account_id, 0) + sign * int(amount)
    rows = []
    wrong = 0
    for account_id in wanted:
        balance = balances[account_id]
        credits = int(ledger.get(account_id, 0))
        debits = int(charged.get(account_id, 0))
        unreadable = unread.get(account_id, 0)
        expected = credits - debits + unreadable
        actual = balance if balance is not None else 0
        difference = actual - expected
        if difference:
            wrong += 1
        rows.append(
            (
                account_id,
                format_micros(credits),
                format_micros(debits),
                format_micros(unreadable) if unreadable else "",
                format_micros(expected),
                format_micros(actual),
                "ok" if not difference else format_micros(difference),
            )
        )
    print_table(
        (
            "account",
            "ledger",
            "CDR charges",
            "unreadable records",
            "expected",
            "balance",
            "difference",
        ),
        rows,
    )
    if unread:
        print("unreadable records are kept in cdr_rejects: 'ocsd cdr problems' lists them")
    if wrong:
        print(f"{wrong} account(s) do not reconcile")
        return 1
    print(f"{len(rows)} account(s) reconcile")
    return 0
