"""CDR commands: the writer process, search, export, show, rejected records, daily reports.

Times are printed in ISO 8601 UTC; amounts exactly, in major units of their currency.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cdr_writer.partition import months_to_keep, partition_name
from cdr_writer.record import CdrKind
from cdr_writer.search import (
    EXPORT_COLUMNS,
    LIST_COLUMNS,
    MONEY_COLUMNS,
    REPORT_DIMENSIONS,
    REPORT_MEASURES,
    CdrQuery,
    Cursor,
    DailyQuery,
    QueryError,
    cursor_after,
    daily_sql,
    search_sql,
)
from ocsd.cli import Context, UsageError, instant, money, print_table, zone
from rating.money import format_micros

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


# -- formatting --------------------------------------------------------------------------


def iso(value: Any) -> str:
    """A stored time as ISO 8601 UTC (``Z``), milliseconds when it has them."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    utc: datetime = value.astimezone(UTC)
    text = utc.isoformat(timespec="milliseconds" if utc.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def amount(value: Any) -> str:
    """Micro-units as an exact decimal amount."""
    return "" if value is None else format_micros(int(value))


def cell(column: str, value: Any) -> str:
    """One value for display or CSV."""
    if value is None:
        return ""
    if column.endswith("_at"):
        return iso(value)
    if column in MONEY_COLUMNS:
        return amount(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, Decimal):
        return str(int(value))
    return str(value)


def header(column: str) -> str:
    """A column's name for people: amounts lose the unit they are no longer in."""
    return column.removesuffix("_micros")


# -- filters -----------------------------------------------------------------------------


def tenant_path(ctx: Context, tenant_id: str) -> str:
    """A tenant's path from the operator (``/op/r1/``), from the master data."""
    tenants = ctx.master.tenants()
    if tenant_id not in tenants:
        raise UsageError(f"no tenant {tenant_id!r}")
    path: list[str] = []
    current: str | None = tenant_id
    while current is not None:
        path.append(current)
        current = tenants[current].parent_id
    return "/" + "".join(t + "/" for t in reversed(path))


def add_filters(p: argparse.ArgumentParser) -> None:
    """The search filters shared by search and export."""
    p.add_argument("--account", help="one account")
    p.add_argument("--tenant", help="a tenant and everything sold through it")
    p.add_argument("--from", dest="since", metavar="TIME", help="started at or after (ISO)")
    p.add_argument("--to", dest="until", metavar="TIME", help="started before (ISO)")
    p.add_argument(
        "--timezone", default="UTC", help="zone of --from/--to without an offset (default UTC)"
    )
    p.add_argument("--calling", metavar="NUMBER", help="E.164 digits, or a prefix ending in *")
    p.add_argument("--called", metavar="NUMBER", help="E.164 digits, or a prefix ending in *")
    p.add_argument("--destination")
    p.add_argument("--carrier")
    p.add_argument("--hangup-cause")
    p.add_argument("--kind", choices=[k.value for k in CdrKind])
    p.add_argument("--min-duration", type=int, metavar="SECONDS")
    p.add_argument("--max-duration", type=int, metavar="SECONDS")
    p.add_argument("--min-charge", metavar="AMOUNT")
    p.add_argument("--max-charge", metavar="AMOUNT")
    p.add_argument("--problems", action="store_true", help="only CDRs stored with a problem")


def query_from(ctx: Context) -> CdrQuery:
    """The search the command line asks for."""
    a = ctx.args
    local = zone(a.timezone)
    for name in ("calling", "called"):
        value = getattr(a, name)
        if value is not None and not value.rstrip("*").isdigit() and value != "*":
            raise UsageError(f"--{name} takes E.164 digits or a prefix ending in *: {value!r}")
    try:
        return CdrQuery(
            account_id=a.account,
            tenant_path=tenant_path(ctx, a.tenant) if a.tenant else None,
            since=instant(a.since, local) if a.since else None,
            until=instant(a.until, local) if a.until else None,
            calling=a.calling,
            called=a.called,
            destination=a.destination,
            carrier=a.carrier,
            hangup_cause=a.hangup_cause,
            kind=a.kind,
            min_duration_s=a.min_duration,
            max_duration_s=a.max_duration,
            min_charge_micros=money(a.min_charge) if a.min_charge else None,
            max_charge_micros=money(a.max_charge) if a.max_charge else None,
            problems_only=a.problems,
        )
    except QueryError as exc:
        raise UsageError(str(exc)) from None


# -- commands ----------------------------------------------------------------------------


def cmd_cdr_search(ctx: Context) -> int:
    """List CDRs newest first, one page at a time."""
    a = ctx.args
    query = query_from(ctx)
    try:
        after = Cursor.decode(a.after) if a.after else None
        sql, params = search_sql(query, ctx.db.dialect, limit=a.limit + 1, after=after)
    except QueryError as exc:
        raise UsageError(str(exc)) from None
    rows = ctx.db.query(sql, params)
    page = rows[: a.limit]
    print_table(
        [header(c) for c in LIST_COLUMNS],
        [[cell(c, v) for c, v in zip(LIST_COLUMNS, row, strict=True)] for row in page],
    )
    if len(rows) > a.limit:
        print(f"next page: --after {cursor_after(page[-1]).encode()}")
    elif not page:
        print("no CDR matches")
    return 0


def write_csv(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write rows as CSV with a header line; return how many rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header(c) for c in columns])
    count = 0
    for row in rows:
        writer.writerow([cell(c, v) for c, v in zip(columns, row, strict=True)])
        count += 1
    return count


def cmd_cdr_export(ctx: Context) -> int:
    """Stream every CDR of a search as CSV."""
    a = ctx.args
    query = query_from(ctx)
    sql, params = search_sql(query, ctx.db.dialect, columns=EXPORT_COLUMNS, limit=None)
    rows = ctx.db.iterate(sql, params)
    if a.output in (None, "-"):
        count = write_csv(sys.stdout, EXPORT_COLUMNS, rows)
    else:
        try:
            with Path(a.output).open("w", encoding="utf-8", newline="") as out:
                count = write_csv(out, EXPORT_COLUMNS, rows)
        except OSError as exc:
            raise UsageError(f"{a.output}: {exc.strerror}") from None
        print(f"{count} CDRs written to {a.output}", file=sys.stderr)
    return 0


def cmd_cdr_show(ctx: Context) -> int:
    """Everything about one CDR, its rating trace and any problem found in it."""
    a = ctx.args
    rows = ctx.db.query(
        f"SELECT {', '.join(EXPORT_COLUMNS)} FROM cdrs WHERE cdr_id = ?", (a.cdr_id,)
    )
    rejects = ctx.db.query(
        "SELECT reject_id, record_id, record_kind, amount_micros, problems, stored_in "
        "FROM cdr_rejects WHERE item_id = ? OR reject_id = ?",
        (a.cdr_id, a.cdr_id),
    )
    if not rows and not rejects:
        raise UsageError(f"no CDR {a.cdr_id!r}")
    for row in rows:
        values = dict(zip(EXPORT_COLUMNS, row, strict=True))
        width = max(len(header(c)) for c in EXPORT_COLUMNS)
        for column in EXPORT_COLUMNS:
            if column in ("trace", "levels"):
                continue
            print(f"{header(column):<{width}}  {cell(column, values[column])}")
        levels = values["levels"]
        if isinstance(levels, str):
            levels = json.loads(levels)
        print("levels:")
        for level in levels:
            charge = amount(level.get("amount_micros"))
            print(
                f"  {level.get('seller')} -> {level.get('buyer')} at {level.get('plan_id')}: "
                f"{charge} {level.get('currency')} (fx {level.get('fx_rate')})"
            )
        print("trace:")
        for line in str(values["trace"]).splitlines():
            print(f"  {line}")
    for reject_id, record_id, kind, moved, problems, stored_in in rejects:
        where = f"stored in {stored_in}" if stored_in else "not stored as a row"
        print(f"rejected record {reject_id} (queue entry {record_id}, {kind}, {where})")
        print(f"  money moved: {amount(moved)}")
        print(f"  problems: {problems}")
    return 0


def cmd_cdr_problems(ctx: Context) -> int:
    """Records stored with a problem, or kept only raw, newest first."""
    a = ctx.args
    rows = ctx.db.query(
        "SELECT queued_at, reject_id, record_kind, account_id, amount_micros, stored_in, problems "
        "FROM cdr_rejects ORDER BY queued_at DESC, reject_id DESC LIMIT ?",
        (a.limit,),
    )
    print_table(
        ("queued at", "id", "kind", "account", "moved", "stored in", "problems"),
        [
            (iso(at), rid, kind, account, amount(moved), stored or "-", problems)
            for at, rid, kind, account, moved, stored, problems in rows
        ],
    )
    return 0


def cmd_cdr_partitions(ctx: Context) -> int:
    """Create the monthly partitions ahead (PostgreSQL) and list them."""
    a = ctx.args
    db = ctx.db
    if db.dialect != "postgresql":
        print("the embedded SQLite records database keeps CDRs in one table: no partitions")
        return 0
    from cdr_writer.pg_sink import PgSink

    async def make() -> list[str]:
        sink = PgSink(db.url, partitions_ahead_months=a.ahead)
        try:
            return await sink.maintain(datetime.now(UTC))
        finally:
            await sink.close()

    created = asyncio.run(make())
    for name in created:
        print(f"created {name}")
    wanted = {partition_name(m) for m in months_to_keep(datetime.now(UTC), a.ahead)}
    rows = db.query(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), "
        "COALESCE(s.n_live_tup, 0) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent "
        "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE p.relname = 'cdrs' ORDER BY c.relname"
    )
    print_table(
        ("partition", "bounds", "rows (estimate)", "kept ahead"),
        [(name, bounds, n, "yes" if name in wanted else "") for name, bounds, n in rows],
    )
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def cmd_report_daily(ctx: Context) -> int:
    """Totals per UTC day from the rollups the writer keeps."""
    a = ctx.args
    today = datetime.now(UTC).date()
    by = tuple(
        {"account": "account_id"}.get(part.strip(), part.strip())
        for part in a.by.split(",")
        if part.strip()
    )
    try:
        query = DailyQuery(
            since=_day(a.since) if a.since else today,
            until=_day(a.until) if a.until else (_day(a.since) if a.since else today),
            by=by,
            account_id=a.account,
            tenant_path=tenant_path(ctx, a.tenant) if a.tenant else None,
            destination=a.destination,
            carrier=a.carrier,
        )
    except QueryError as exc:
        raise UsageError(str(exc)) from None
    sql, params = daily_sql(query, ctx.db.dialect)
    rows = ctx.db.query(sql, params)
    dims = len(query.by)
    out = []
    for row in rows:
        calls, answered, duration, billed, charge, debited = (int(v) for v in row[dims:])
        asr = f"{100 * answered / calls:.1f}" if calls else ""
        out.append(
            (
                *(str(v) for v in row[:dims]),
                calls,
                answered,
                asr,
                f"{duration / 60:.1f}",
                f"{billed / 60:.1f}",
                amount(charge),
                amount(debited),
            )
        )
    print_table(
        (
            *(header(d).removesuffix("_id") for d in query.by),
            "calls",
            "answered",
            "asr %",
            "minutes",
            "billed min",
            "charge",
            "debited",
        ),
        out,
    )
    return 0


def cmd_cdr_writer(ctx: Context) -> int:
    """Run the CDR writer until SIGTERM (or until the queue is empty with --until-empty)."""
    from ocsd.cdr_service import open_store, run_cdr_writer
    from ocsd.daemon import new_event_loop
    from ocsd.logs import configure_logging

    config = ctx.config
    configure_logging(config.logging.level, config.logging.format)
    ctx.db  # noqa: B018 -- migrates the embedded file, or checks the PostgreSQL schema
    ctx.close()
    store = open_store(config)

    async def main() -> int:
        writer = await run_cdr_writer(config, store, until_empty=ctx.args.until_empty)
        return 0 if writer.ready or ctx.args.until_empty else 1

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main())


def register(
    commands: Sub,
    common: argparse.ArgumentParser,
    *,
    leaf_factory: Callable[..., argparse.ArgumentParser],
    group_factory: Callable[[str, str], Sub],
) -> None:
    """Add the CDR and report commands."""
    p = commands.add_parser(
        "cdr-writer",
        help="move rated CDRs from the queue to the records database",
        parents=[common],
    )
    p.set_defaults(handler=cmd_cdr_writer)
    p.add_argument(
        "--until-empty", action="store_true", help="stop once the queue is empty (backfill)"
    )

    cdr = group_factory("cdr", "rated call detail records")
    p = leaf_factory(cdr, "search", cmd_cdr_search, "find CDRs, newest first")
    add_filters(p)
    p.add_argument("--limit", type=int, default=50, help="CDRs per page")
    p.add_argument("--after", metavar="CURSOR", help="the next page (printed under a page)")
    p = leaf_factory(cdr, "export", cmd_cdr_export, "write the CDRs of a search as CSV")
    add_filters(p)
    p.add_argument("--format", choices=("csv",), default="csv")
    p.add_argument("--output", metavar="FILE", help="default: standard output")
    p = leaf_factory(cdr, "show", cmd_cdr_show, "everything about one CDR, with its trace")
    p.add_argument("cdr_id")
    p = leaf_factory(cdr, "problems", cmd_cdr_problems, "records stored with a problem")
    p.add_argument("--limit", type=int, default=50)
    p = leaf_factory(cdr, "partitions", cmd_cdr_partitions, "make and list monthly partitions")
    p.add_argument("--ahead", type=int, default=3, help="months ahead of the current one")

    report = group_factory("report", "reports from the daily rollups")
    p = leaf_factory(report, "daily", cmd_report_daily, "totals per UTC day")
    p.add_argument("--from", dest="since", metavar="DAY", help="first UTC day (default today)")
    p.add_argument("--to", dest="until", metavar="DAY", help="last UTC day (default --from)")
    p.add_argument(
        "--by",
        default="day,account",
        help=f"group by any of: {', '.join(REPORT_DIMENSIONS)} (account = account_id)",
    )
    p.add_argument("--account")
    p.add_argument("--tenant", help="a tenant and everything sold through it")
    p.add_argument("--destination")
    p.add_argument("--carrier")
    assert set(REPORT_MEASURES) >= {"calls", "charge_micros"}
