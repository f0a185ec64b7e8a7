"""The records database schema, one list of migrations for SQLite and PostgreSQL.

``ocsd db upgrade`` applies the migrations not yet recorded in ``schema_migrations``, each in
its own transaction. Migrations are append-only: a released one is never edited. Type tokens
(``{ts}``, ``{serial_pk}``, ``{bigint}``, ``{json}``, ``{bytes}``) are substituted per dialect;
a migration may also be a pair of dialect-specific texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ocsd.sql_store import Database


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step."""

    version: int
    name: str
    sql: str
    postgresql_sql: str | None = None
    """Replaces ``sql`` on PostgreSQL (partitioning and other things SQLite lacks)."""


MASTER_DATA = """
CREATE TABLE currencies (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    minor_units INTEGER NOT NULL DEFAULT 2,
    numeric_code INTEGER
);
CREATE TABLE exchange_rates (
    base TEXT NOT NULL REFERENCES currencies(code),
    quote TEXT NOT NULL REFERENCES currencies(code),
    rate TEXT NOT NULL,
    effective_from {ts} NOT NULL,
    created_at {ts} NOT NULL,
    PRIMARY KEY (base, quote, effective_from)
);
CREATE TABLE rate_decks (
    deck_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    currency TEXT NOT NULL REFERENCES currencies(code),
    created_at {ts} NOT NULL
);
CREATE TABLE deck_versions (
    version_id {serial_pk},
    deck_id TEXT NOT NULL REFERENCES rate_decks(deck_id),
    imported_at {ts} NOT NULL,
    imported_by TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    mode TEXT NOT NULL,
    effective_from {ts} NOT NULL,
    row_count INTEGER NOT NULL,
    summary TEXT NOT NULL DEFAULT ''
);
CREATE TABLE rates (
    rate_id {serial_pk},
    deck_id TEXT NOT NULL REFERENCES rate_decks(deck_id),
    version_id {bigint} NOT NULL REFERENCES deck_versions(version_id),
    prefix TEXT NOT NULL,
    destination TEXT NOT NULL DEFAULT '',
    rate_micros {bigint} NOT NULL CHECK (rate_micros >= 0),
    connect_fee_micros {bigint} NOT NULL CHECK (connect_fee_micros >= 0),
    first_block_s INTEGER NOT NULL CHECK (first_block_s >= 0),
    increment_s INTEGER NOT NULL CHECK (increment_s >= 1),
    grace_s INTEGER NOT NULL CHECK (grace_s >= 0),
    effective_from {bigint} NOT NULL,
    effective_to {bigint},
    weekdays INTEGER,
    time_from_s INTEGER,
    time_to_s INTEGER
);
CREATE INDEX rates_deck_prefix ON rates (deck_id, prefix);
CREATE INDEX rates_deck_open ON rates (deck_id, effective_to);
CREATE TABLE tariff_plans (
    plan_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    deck_id TEXT REFERENCES rate_decks(deck_id),
    markup_percent TEXT,
    markup_fixed_micros {bigint},
    rounding_scope TEXT NOT NULL,
    rounding_mode TEXT NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    CHECK ((deck_id IS NULL) <> (markup_percent IS NULL))
);
CREATE TABLE bundles (
    plan_id TEXT NOT NULL REFERENCES tariff_plans(plan_id),
    bundle_id TEXT NOT NULL,
    seconds INTEGER NOT NULL CHECK (seconds > 0),
    prefixes TEXT NOT NULL,
    period TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (plan_id, bundle_id)
);
CREATE TABLE tenants (
    tenant_id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES tenants(tenant_id),
    name TEXT NOT NULL DEFAULT '',
    currency TEXT NOT NULL REFERENCES currencies(code),
    plan_id TEXT REFERENCES tariff_plans(plan_id),
    status TEXT NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE TABLE accounts (
    account_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
    name TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    currency TEXT NOT NULL REFERENCES currencies(code),
    credit_limit_micros {bigint} NOT NULL DEFAULT 0,
    daily_cap_micros {bigint},
    monthly_cap_micros {bigint},
    max_sessions INTEGER,
    timezone TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES tariff_plans(plan_id),
    status TEXT NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE INDEX accounts_tenant ON accounts (tenant_id);
CREATE TABLE identities (
    identity_id {serial_pk},
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    tech_prefix TEXT NOT NULL DEFAULT '',
    created_at {ts} NOT NULL,
    UNIQUE (kind, value, tech_prefix)
);
CREATE INDEX identities_account ON identities (account_id);
CREATE TABLE audit_log (
    audit_id {serial_pk},
    at {ts} NOT NULL,
    actor TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    field TEXT NOT NULL,
    before_value TEXT,
    after_value TEXT,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_entity ON audit_log (entity, entity_id, audit_id);
CREATE TABLE ledger (
    entry_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    at {ts} NOT NULL,
    kind TEXT NOT NULL,
    amount_micros {bigint} NOT NULL,
    currency TEXT NOT NULL,
    balance_after_micros {bigint} NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    source_id TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL,
    actor TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ledger_account ON ledger (account_id, at);
INSERT INTO currencies (code, name, minor_units, numeric_code) VALUES
    ('USD', 'US Dollar', 2, 840), ('EUR', 'Euro', 2, 978), ('GBP', 'Pound Sterling', 2, 826),
    ('CHF', 'Swiss Franc', 2, 756), ('JPY', 'Yen', 0, 392), ('CAD', 'Canadian Dollar', 2, 124),
    ('AUD', 'Australian Dollar', 2, 36), ('INR', 'Indian Rupee', 2, 356),
    ('BRL', 'Brazilian Real', 2, 986), ('ZAR', 'Rand', 2, 710), ('MXN', 'Mexican Peso', 2, 484),
    ('NGN', 'Naira', 2, 566), ('PLN', 'Zloty', 2, 985), ('SEK', 'Swedish Krona', 2, 752)
"""

# Rated CDRs. Text columns carry the lengths ``cdr_writer.row`` cuts values to, so that a
# value that reached the table always fits its indexes; the writer flags what it had to cut.
# The column order is ``cdr_writer.row.CDR_COLUMNS`` (a test compares them).
_CDR_COLUMNS = """
    cdr_id VARCHAR(64) NOT NULL,
    start_at TIMESTAMPTZ NOT NULL,
    kind VARCHAR(16) NOT NULL,
    session_id VARCHAR(512) NOT NULL,
    request_number BIGINT NOT NULL,
    account_id VARCHAR(128) NOT NULL,
    tenant_path VARCHAR(512) NOT NULL,
    protocol VARCHAR(16) NOT NULL,
    peer VARCHAR(255) NOT NULL,
    node VARCHAR(128) NOT NULL,
    answer_at TIMESTAMPTZ,
    end_at TIMESTAMPTZ NOT NULL,
    timezone VARCHAR(64) NOT NULL,
    duration_s INTEGER NOT NULL,
    billed_s INTEGER NOT NULL,
    charge_micros BIGINT NOT NULL,
    debited_micros BIGINT NOT NULL,
    balance_after_micros BIGINT NOT NULL,
    currency VARCHAR(8) NOT NULL,
    charge_unrounded VARCHAR(64) NOT NULL,
    calling_raw VARCHAR(512) NOT NULL,
    called_raw VARCHAR(512) NOT NULL,
    calling VARCHAR(64) NOT NULL,
    called VARCHAR(64) NOT NULL,
    diversion VARCHAR(512) NOT NULL,
    caller_ip VARCHAR(64) NOT NULL,
    carrier VARCHAR(128) NOT NULL,
    trunk VARCHAR(128) NOT NULL,
    routing_number VARCHAR(64) NOT NULL,
    prefix VARCHAR(64) NOT NULL,
    destination VARCHAR(255) NOT NULL,
    deck_id VARCHAR(128) NOT NULL,
    deck_version BIGINT NOT NULL,
    rate_micros BIGINT NOT NULL,
    connect_fee_micros BIGINT NOT NULL,
    bundle_id VARCHAR(128) NOT NULL,
    bundle_s INTEGER NOT NULL,
    fx_rate VARCHAR(64) NOT NULL,
    levels {json} NOT NULL,
    carrier_cost_micros BIGINT,
    carrier_currency VARCHAR(8) NOT NULL,
    hangup_cause VARCHAR(64) NOT NULL,
    sip_status INTEGER NOT NULL,
    q850_cause INTEGER NOT NULL,
    hangup_side VARCHAR(16) NOT NULL,
    flags VARCHAR(1024) NOT NULL,
    trace VARCHAR(65536) NOT NULL,
    extra {json} NOT NULL,
    problems VARCHAR(4000) NOT NULL,
    record_id VARCHAR(128) NOT NULL,
    queued_at TIMESTAMPTZ NOT NULL,
    written_at TIMESTAMPTZ NOT NULL"""

_CDR_SIDE_TABLES = """
CREATE TABLE cdr_daily (
    day {day} NOT NULL,
    account_id VARCHAR(128) NOT NULL,
    destination VARCHAR(255) NOT NULL,
    carrier VARCHAR(128) NOT NULL,
    currency VARCHAR(8) NOT NULL,
    tenant_path VARCHAR(512) NOT NULL,
    calls BIGINT NOT NULL,
    answered BIGINT NOT NULL,
    duration_s BIGINT NOT NULL,
    billed_s BIGINT NOT NULL,
    charge_micros BIGINT NOT NULL,
    debited_micros BIGINT NOT NULL,
    PRIMARY KEY (day, account_id, destination, carrier, currency)
){daily_storage};
CREATE INDEX cdr_daily_account ON cdr_daily (account_id, day);
CREATE INDEX cdr_daily_carrier ON cdr_daily (carrier, day);
CREATE INDEX cdr_daily_tenant ON cdr_daily (tenant_path{pattern_ops}, day);
CREATE TABLE cdr_rejects (
    reject_id VARCHAR(128) PRIMARY KEY,
    record_id VARCHAR(128) NOT NULL,
    record_kind VARCHAR(16) NOT NULL,
    item_id VARCHAR(128) NOT NULL,
    account_id VARCHAR(128) NOT NULL,
    amount_micros BIGINT NOT NULL,
    balance_after_micros BIGINT NOT NULL,
    queued_at TIMESTAMPTZ NOT NULL,
    problems VARCHAR(4000) NOT NULL,
    stored_in VARCHAR(16) NOT NULL,
    payload {bytes} NOT NULL,
    written_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX cdr_rejects_queued ON cdr_rejects (queued_at);
CREATE INDEX cdr_rejects_item ON cdr_rejects (item_id)
"""

CDRS_SQLITE = (
    "CREATE TABLE cdrs ("
    + _CDR_COLUMNS
    + """,
    UNIQUE (cdr_id)
);
CREATE INDEX cdrs_account_start ON cdrs (account_id, start_at, cdr_id);
CREATE INDEX cdrs_start ON cdrs (start_at, cdr_id);
CREATE INDEX cdrs_tenant_start ON cdrs (tenant_path, start_at);
CREATE INDEX cdrs_called_start ON cdrs (called, start_at);
CREATE INDEX cdrs_calling_start ON cdrs (calling, start_at);
CREATE INDEX cdrs_destination_start ON cdrs (destination, start_at);
CREATE INDEX cdrs_carrier_start ON cdrs (carrier, start_at) WHERE carrier <> '';
CREATE INDEX cdrs_hangup_start ON cdrs (hangup_cause, start_at);
CREATE INDEX cdrs_problems_start ON cdrs (start_at) WHERE problems <> '';
"""
    + _CDR_SIDE_TABLES.replace("{day}", "TEXT")
    .replace("{pattern_ops}", "")
    .replace("{daily_storage}", "")
)

# PostgreSQL: ``cdrs`` is partitioned by month of the start time. The writer creates the
# monthly partitions ahead of time (``cdr_writer.pg_sink.ensure_partitions``); a CDR outside
# them lands in ``cdrs_default`` and moves to its month when that partition is created. A
# unique key on a partitioned table must contain the partition key, hence (cdr_id, start_at):
# the start time is part of the CDR, so a replayed CDR always meets its first copy on it.
# Indexes declared on ``cdrs`` are created on every partition.
CDRS_POSTGRESQL = (
    "CREATE TABLE cdrs ("
    + _CDR_COLUMNS
    + """,
    PRIMARY KEY (cdr_id, start_at)
) PARTITION BY RANGE (start_at);
CREATE TABLE cdrs_default PARTITION OF cdrs DEFAULT;
CREATE INDEX cdrs_account_start ON cdrs (account_id, start_at DESC, cdr_id DESC);
CREATE INDEX cdrs_start ON cdrs (start_at DESC, cdr_id DESC);
CREATE INDEX cdrs_tenant_start ON cdrs (tenant_path text_pattern_ops, start_at DESC);
CREATE INDEX cdrs_called_start ON cdrs (called text_pattern_ops, start_at DESC);
CREATE INDEX cdrs_calling_start ON cdrs (calling text_pattern_ops, start_at DESC);
CREATE INDEX cdrs_destination_start ON cdrs (destination, start_at DESC);
CREATE INDEX cdrs_carrier_start ON cdrs (carrier, start_at DESC) WHERE carrier <> '';
CREATE INDEX cdrs_hangup_start ON cdrs (hangup_cause, start_at DESC);
CREATE INDEX cdrs_problems_start ON cdrs (start_at DESC) WHERE problems <> '';
"""
    # Rollup rows are updated by every batch: room on their page keeps the updates HOT
    # (no index touched, as only counters change).
    + _CDR_SIDE_TABLES.replace("{day}", "DATE")
    .replace("{pattern_ops}", " text_pattern_ops")
    .replace("{daily_storage}", " WITH (fillfactor = 70)")
)

ROUTING = """
CREATE TABLE carriers (
    carrier_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    currency TEXT NOT NULL REFERENCES currencies(code),
    deck_id TEXT UNIQUE REFERENCES rate_decks(deck_id),
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    priority INTEGER NOT NULL DEFAULT 0 CHECK (priority >= 0),
    weight INTEGER NOT NULL DEFAULT 1 CHECK (weight >= 0),
    max_calls INTEGER NOT NULL DEFAULT 0 CHECK (max_calls >= 0),
    max_cps INTEGER NOT NULL DEFAULT 0 CHECK (max_cps >= 0),
    tech_prefix TEXT NOT NULL DEFAULT '',
    number_rules TEXT NOT NULL DEFAULT '[]',
    caller_id_rule TEXT,
    send_routing_number INTEGER NOT NULL DEFAULT 0 CHECK (send_routing_number IN (0, 1)),
    rounding_scope TEXT NOT NULL,
    rounding_mode TEXT NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE TABLE trunks (
    trunk_id TEXT PRIMARY KEY,
    carrier_id TEXT NOT NULL REFERENCES carriers(carrier_id),
    address TEXT NOT NULL DEFAULT '',
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    priority INTEGER NOT NULL DEFAULT 0 CHECK (priority >= 0),
    weight INTEGER NOT NULL DEFAULT 1 CHECK (weight >= 0),
    max_calls INTEGER NOT NULL DEFAULT 0 CHECK (max_calls >= 0),
    max_cps INTEGER NOT NULL DEFAULT 0 CHECK (max_cps >= 0),
    tech_prefix TEXT,
    number_rules TEXT NOT NULL DEFAULT '[]',
    caller_id_rule TEXT,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE INDEX trunks_carrier ON trunks (carrier_id);
CREATE TABLE route_plans (
    route_plan_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    strategy TEXT NOT NULL,
    typical_duration_s INTEGER CHECK (typical_duration_s > 0),
    min_margin_micros {bigint} CHECK (min_margin_micros >= 0),
    min_margin_percent TEXT,
    floor_min_asr TEXT NOT NULL DEFAULT '0',
    floor_min_acd_s INTEGER NOT NULL DEFAULT 0,
    floor_min_ner TEXT NOT NULL DEFAULT '0',
    floor_max_pdd_ms INTEGER NOT NULL DEFAULT 0,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE TABLE route_entries (
    route_plan_id TEXT NOT NULL REFERENCES route_plans(route_plan_id),
    prefix TEXT NOT NULL,
    carrier_id TEXT NOT NULL REFERENCES carriers(carrier_id),
    priority INTEGER NOT NULL DEFAULT 0 CHECK (priority >= 0),
    weight INTEGER NOT NULL DEFAULT 1 CHECK (weight >= 0),
    PRIMARY KEY (route_plan_id, prefix, carrier_id)
);
CREATE TABLE route_plan_strategies (
    route_plan_id TEXT NOT NULL REFERENCES route_plans(route_plan_id),
    prefix TEXT NOT NULL,
    strategy TEXT NOT NULL,
    PRIMARY KEY (route_plan_id, prefix)
);
CREATE TABLE caller_id_pools (
    pool_id TEXT PRIMARY KEY,
    created_at {ts} NOT NULL
);
CREATE TABLE caller_id_pool_numbers (
    pool_id TEXT NOT NULL REFERENCES caller_id_pools(pool_id),
    number TEXT NOT NULL,
    PRIMARY KEY (pool_id, number)
);
CREATE TABLE caller_id_rules (
    rule_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    pool_id TEXT REFERENCES caller_id_pools(pool_id),
    strip INTEGER NOT NULL DEFAULT 0 CHECK (strip >= 0),
    add_prefix TEXT NOT NULL DEFAULT '',
    when_prefix TEXT NOT NULL DEFAULT '',
    created_at {ts} NOT NULL
);
CREATE TABLE lcr_bindings (
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    route_plan_id TEXT REFERENCES route_plans(route_plan_id),
    caller_id_rule TEXT REFERENCES caller_id_rules(rule_id),
    PRIMARY KEY (subject_kind, subject_id)
);
CREATE TABLE portability_imports (
    import_id {serial_pk},
    imported_at {ts} NOT NULL,
    imported_by TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    mode TEXT NOT NULL,
    row_count {bigint} NOT NULL,
    removed {bigint} NOT NULL DEFAULT 0
);
CREATE TABLE ported_numbers (
    number TEXT PRIMARY KEY,
    routing_number TEXT NOT NULL,
    carrier_id TEXT NOT NULL DEFAULT '',
    import_id {bigint} NOT NULL
)
"""

FRAUD = """
CREATE TABLE fraud_list_entries (
    entry_id {serial_pk},
    list TEXT NOT NULL,
    scope TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    value TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    created_at {ts} NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (list, scope, owner, value),
    CHECK (list IN ('allow', 'deny', 'blocked', 'dnc', 'high_risk', 'optin', 'ip')),
    CHECK (scope IN ('global', 'account', 'peer'))
);
CREATE INDEX fraud_list_owner ON fraud_list_entries (scope, owner);
CREATE TABLE fraud_rule_overrides (
    scope TEXT NOT NULL CHECK (scope IN ('global', 'account')),
    owner TEXT NOT NULL DEFAULT '',
    rule_id TEXT NOT NULL,
    settings TEXT NOT NULL,
    updated_at {ts} NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (scope, owner, rule_id)
);
CREATE TABLE fraud_decisions (
    decision_id {serial_pk},
    at {ts} NOT NULL,
    node TEXT NOT NULL DEFAULT '',
    account_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    actions TEXT NOT NULL,
    suppressed TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL,
    details TEXT NOT NULL,
    session_id TEXT NOT NULL DEFAULT '',
    called TEXT NOT NULL DEFAULT '',
    target TEXT NOT NULL DEFAULT '',
    undo TEXT NOT NULL DEFAULT ''
);
CREATE INDEX fraud_decisions_account ON fraud_decisions (account_id, decision_id);
CREATE INDEX fraud_decisions_at ON fraud_decisions (at)
"""
"""Fraud lists (global, per account, per peer; blocked destinations and opt-ins are lists
too), rule overrides (JSON of the settings they change), and the decisions the rules took.
Changes to lists and overrides are audited in ``audit_log`` (so the change marker reloads the
fraud engine); decisions have their own table, written in batches off the call's path, so
that an attack does not make every node reload its master data."""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "master data, ledger and audit log", MASTER_DATA),
    Migration(2, "rated CDRs, daily rollups and rejected records", CDRS_SQLITE, CDRS_POSTGRESQL),
    Migration(3, "carriers, trunks, route plans, caller-ID rules, ported numbers", ROUTING),
    Migration(4, "fraud lists, rule overrides and decisions", FRAUD),
)


class SchemaError(Exception):
    """The database schema is older or newer than this ocsd expects."""


def current_version(db: Database) -> int:
    """Return the highest migration applied (0 on an empty database)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at "
        + db.sql("{ts}")
        + " NOT NULL)"
    )
    row = db.query_one("SELECT MAX(version) FROM schema_migrations")
    return int(row[0]) if row and row[0] is not None else 0


def latest_version() -> int:
    """Return the version this ocsd needs."""
    return MIGRATIONS[-1].version


def applied_versions(db: Database) -> set[int]:
    """Return the versions of the migrations applied."""
    current_version(db)
    return {int(version) for (version,) in db.query("SELECT version FROM schema_migrations")}


def pending(db: Database) -> list[Migration]:
    """Return the migrations not applied yet, in order.

    Numbers are reserved per branch, so a lower number may land after a higher one was
    applied: what counts is the set of versions applied, not the highest.
    """
    done = applied_versions(db)
    return [m for m in MIGRATIONS if m.version not in done]


def upgrade(db: Database) -> list[Migration]:
    """Apply every pending migration; return those applied."""
    applied: list[Migration] = []
    version = current_version(db)
    if version > latest_version():
        raise SchemaError(
            f"the database is at schema {version}, newer than this ocsd ({latest_version()})"
        )
    for migration in pending(db):
        text = migration.sql
        if db.dialect == "postgresql" and migration.postgresql_sql is not None:
            text = migration.postgresql_sql
        with db.transaction():
            db.script(db.sql(text))
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, datetime.now(UTC)),
            )
        applied.append(migration)
    return applied


def require_current(db: Database) -> None:
    """Raise ``SchemaError`` unless the schema is exactly the one this ocsd needs."""
    version = current_version(db)
    missing = [m.version for m in pending(db)]
    if version > latest_version() or missing:
        need = f"migration {', '.join(map(str, missing))}" if missing else latest_version()
        raise SchemaError(
            f"the records database is at schema {version}, this ocsd needs {need}: "
            "run 'ocsd db upgrade'"
        )
