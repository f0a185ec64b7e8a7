"""Routing master data in the records database: carriers, trunks, route plans, caller-ID
rules, bindings and ported numbers, every change audited like the rest of master data.

The routing package stays pure (``lcr``); this module is its persistence and its loader:
``load_catalog`` builds the ``lcr.catalog.Catalog`` the router works on. Carrier decks are
ordinary rate decks (``rate_decks``/``rates``) imported with the tariff importer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from typing import Any, ClassVar, cast

from lcr.catalog import Catalog
from lcr.model import (
    Binding,
    BindingKind,
    CallerIdAction,
    CallerIdPool,
    CallerIdRule,
    Carrier,
    NumberRule,
    QualityFloor,
    RouteEntry,
    RoutePlan,
    Trunk,
)
from lcr.portability import PortabilityBuilder, PortabilityIndex, number_key
from lcr.strategies import UnknownStrategy, get
from ocsd.master_store import ImportReport, MasterDataError, MasterStore, utcnow
from rating.deck import Deck
from rating.deck_csv import DeckRow
from rating.money import Rounding, RoundingScope

PORTABILITY_BATCH = 50_000


def rules_to_text(rules: Sequence[NumberRule]) -> str:
    """Number rules as stored (JSON)."""
    return json.dumps(
        [
            {"when": r.when, "strip": r.strip, "add": r.add, "match": r.match, "replace": r.replace}
            for r in rules
        ]
    )


def rules_from_text(text: str) -> tuple[NumberRule, ...]:
    """Number rules from their stored form."""
    return tuple(NumberRule(**item) for item in json.loads(text or "[]"))


def _value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, tuple):
        return rules_to_text(value)
    if isinstance(value, RoundingScope | Rounding):
        return value.value
    return value


def _shown(value: Any) -> Any:
    if isinstance(value, tuple):
        return "; ".join(r.describe() for r in value) or "-"
    return value


class LcrStore(MasterStore):
    """Reads and changes routing master data; every change is audited."""

    # -- carriers ------------------------------------------------------------------------

    _CARRIER_COLUMNS = (
        "carrier_id, name, currency, deck_id, enabled, priority, weight, max_calls, max_cps, "
        "tech_prefix, number_rules, caller_id_rule, send_routing_number, rounding_scope, "
        "rounding_mode"
    )
    _CARRIER_FIELDS: ClassVar[dict[str, str]] = {
        "name": "name",
        "currency": "currency",
        "deck_id": "deck_id",
        "enabled": "enabled",
        "priority": "priority",
        "weight": "weight",
        "max_calls": "max_calls",
        "max_cps": "max_cps",
        "tech_prefix": "tech_prefix",
        "number_rules": "number_rules",
        "caller_id_rule": "caller_id_rule",
        "send_routing_number": "send_routing_number",
        "scope": "rounding_scope",
        "mode": "rounding_mode",
    }

    @staticmethod
    def _carrier(row: Sequence[Any]) -> Carrier:
        return Carrier(
            carrier_id=row[0],
            name=row[1],
            currency=row[2],
            deck_id=row[3],
            enabled=bool(row[4]),
            priority=int(row[5]),
            weight=int(row[6]),
            max_calls=int(row[7]),
            max_cps=int(row[8]),
            tech_prefix=row[9],
            number_rules=rules_from_text(row[10]),
            caller_id_rule=row[11],
            send_routing_number=bool(row[12]),
            scope=RoundingScope(row[13]),
            mode=Rounding(row[14]),
        )

    def carriers(self) -> dict[str, Carrier]:
        """Every carrier by id."""
        return {
            row[0]: self._carrier(row)
            for row in self.db.query(f"SELECT {self._CARRIER_COLUMNS} FROM carriers")
        }

    def get_carrier(self, carrier_id: str) -> Carrier | None:
        """One carrier, or None."""
        row = self.db.query_one(
            f"SELECT {self._CARRIER_COLUMNS} FROM carriers WHERE carrier_id = ?", (carrier_id,)
        )
        return None if row is None else self._carrier(row)

    def _check_carrier(self, carrier: Carrier) -> None:
        self._require_currency(carrier.currency)
        if carrier.deck_id is not None:
            currency = self.deck_currency(carrier.deck_id)
            if currency is None:
                raise MasterDataError(f"carrier {carrier.carrier_id}: no deck {carrier.deck_id!r}")
            if currency != carrier.currency:
                raise MasterDataError(
                    f"carrier {carrier.carrier_id} bills in {carrier.currency}, its deck "
                    f"{carrier.deck_id} in {currency}"
                )
        if carrier.caller_id_rule is not None:
            self._require_rule(carrier.caller_id_rule)

    def add_carrier(self, carrier: Carrier) -> None:
        """Create a carrier, audited field by field."""
        with self.db.transaction():
            if self.get_carrier(carrier.carrier_id) is not None:
                raise MasterDataError(f"carrier {carrier.carrier_id} exists")
            self._check_carrier(carrier)
            now = utcnow()
            values = [_value(getattr(carrier, name)) for name in self._CARRIER_FIELDS]
            self.db.execute(
                f"INSERT INTO carriers (carrier_id, {', '.join(self._CARRIER_FIELDS.values())}, "
                f"created_at, updated_at) VALUES ({', '.join('?' * (len(values) + 3))})",
                (carrier.carrier_id, *values, now, now),
            )
            for name in self._CARRIER_FIELDS:
                self._audit(
                    "carrier", carrier.carrier_id, name, None, _shown(getattr(carrier, name))
                )

    def update_carrier(self, carrier_id: str, **changes: Any) -> Carrier:
        """Change carrier fields, audited field by field."""
        with self.db.transaction():
            current = self.get_carrier(carrier_id)
            if current is None:
                raise MasterDataError(f"no carrier {carrier_id!r}")
            updated = cast(Carrier, self._replace(current, "carrier_id", changes))
            self._check_carrier(updated)
            self._write_changes(
                "carriers", "carrier_id", "carrier", current, updated, self._CARRIER_FIELDS
            )
            return updated

    def _replace(self, current: Any, key: str, changes: dict[str, Any]) -> Any:
        if key in changes:
            raise MasterDataError(f"{key} cannot change")
        try:
            return replace(current, **changes)
        except (TypeError, ValueError) as exc:
            raise MasterDataError(str(exc)) from None

    def _write_changes(
        self,
        table: str,
        key: str,
        entity: str,
        current: Any,
        updated: Any,
        columns: Mapping[str, str],
    ) -> None:
        changed = [
            f.name
            for f in fields(current)
            if f.name in columns and getattr(current, f.name) != getattr(updated, f.name)
        ]
        if not changed:
            return
        assignments = ", ".join(f"{columns[name]} = ?" for name in changed)
        entity_id = getattr(current, key)
        self.db.execute(
            f"UPDATE {table} SET {assignments}, updated_at = ? WHERE {key} = ?",
            (*(_value(getattr(updated, n)) for n in changed), utcnow(), entity_id),
        )
        for name in changed:
            self._audit(
                entity,
                entity_id,
                name,
                _shown(getattr(current, name)),
                _shown(getattr(updated, name)),
            )

    def import_carrier_deck(
        self, carrier_id: str, rows: Sequence[DeckRow], **options: Any
    ) -> ImportReport:
        """Import a carrier's termination deck (the tariff importer's rules and diff).

        The deck is ``carrier.<id>`` unless the carrier names another; a dry run changes
        nothing, not even the carrier's link to its deck.
        """
        with self.db.transaction():
            carrier = self.get_carrier(carrier_id)
            if carrier is None:
                raise MasterDataError(f"no carrier {carrier_id!r}")
            deck_id = carrier.deck_id or f"carrier.{carrier_id}"
            if options.pop("dry_run", False):
                return self.preview_import(deck_id, carrier.currency, rows, **options)
            report = self.import_deck(deck_id, carrier.currency, rows, **options)
            if carrier.deck_id is None:
                self.update_carrier(carrier_id, deck_id=deck_id)
            return report

    # -- trunks --------------------------------------------------------------------------

    _TRUNK_FIELDS: ClassVar[dict[str, str]] = {
        "carrier_id": "carrier_id",
        "address": "address",
        "enabled": "enabled",
        "priority": "priority",
        "weight": "weight",
        "max_calls": "max_calls",
        "max_cps": "max_cps",
        "tech_prefix": "tech_prefix",
        "number_rules": "number_rules",
        "caller_id_rule": "caller_id_rule",
    }

    def trunks(self, carrier_id: str | None = None) -> list[Trunk]:
        """Every trunk (of one carrier when given)."""
        sql = f"SELECT trunk_id, {', '.join(self._TRUNK_FIELDS.values())} FROM trunks"
        params: tuple[Any, ...] = ()
        if carrier_id is not None:
            sql += " WHERE carrier_id = ?"
            params = (carrier_id,)
        return [
            Trunk(
                trunk_id=row[0],
                carrier_id=row[1],
                address=row[2],
                enabled=bool(row[3]),
                priority=int(row[4]),
                weight=int(row[5]),
                max_calls=int(row[6]),
                max_cps=int(row[7]),
                tech_prefix=row[8],
                number_rules=rules_from_text(row[9]),
                caller_id_rule=row[10],
            )
            for row in self.db.query(sql + " ORDER BY trunk_id", params)
        ]

    def _check_trunk(self, trunk: Trunk) -> None:
        if self.get_carrier(trunk.carrier_id) is None:
            raise MasterDataError(f"no carrier {trunk.carrier_id!r}")
        if trunk.caller_id_rule is not None:
            self._require_rule(trunk.caller_id_rule)

    def add_trunk(self, trunk: Trunk) -> None:
        """Create a trunk of a carrier, audited."""
        with self.db.transaction():
            if any(t.trunk_id == trunk.trunk_id for t in self.trunks()):
                raise MasterDataError(f"trunk {trunk.trunk_id} exists")
            self._check_trunk(trunk)
            now = utcnow()
            values = [_value(getattr(trunk, name)) for name in self._TRUNK_FIELDS]
            self.db.execute(
                f"INSERT INTO trunks (trunk_id, {', '.join(self._TRUNK_FIELDS.values())}, "
                f"created_at, updated_at) VALUES ({', '.join('?' * (len(values) + 3))})",
                (trunk.trunk_id, *values, now, now),
            )
            for name in self._TRUNK_FIELDS:
                self._audit("trunk", trunk.trunk_id, name, None, _shown(getattr(trunk, name)))

    def update_trunk(self, trunk_id: str, **changes: Any) -> Trunk:
        """Change trunk fields, audited."""
        with self.db.transaction():
            current = next((t for t in self.trunks() if t.trunk_id == trunk_id), None)
            if current is None:
                raise MasterDataError(f"no trunk {trunk_id!r}")
            updated = cast(Trunk, self._replace(current, "trunk_id", changes))
            self._check_trunk(updated)
            self._write_changes("trunks", "trunk_id", "trunk", current, updated, self._TRUNK_FIELDS)
            return updated

    # -- route plans ---------------------------------------------------------------------

    _PLAN_FIELDS: ClassVar[dict[str, str]] = {
        "name": "name",
        "strategy": "strategy",
        "typical_duration_s": "typical_duration_s",
        "min_margin_micros": "min_margin_micros",
        "min_margin_percent": "min_margin_percent",
    }

    def route_plans(self) -> dict[str, RoutePlan]:
        """Every route plan with its entries and per-prefix strategies."""
        entries: dict[str, list[RouteEntry]] = {}
        for plan_id, prefix, carrier_id, priority, weight in self.db.query(
            "SELECT route_plan_id, prefix, carrier_id, priority, weight FROM route_entries "
            "ORDER BY route_plan_id, prefix, carrier_id"
        ):
            entries.setdefault(plan_id, []).append(
                RouteEntry(prefix, carrier_id, int(priority), int(weight))
            )
        strategies: dict[str, list[tuple[str, str]]] = {}
        for plan_id, prefix, strategy in self.db.query(
            "SELECT route_plan_id, prefix, strategy FROM route_plan_strategies ORDER BY 1, 2"
        ):
            strategies.setdefault(plan_id, []).append((prefix, strategy))
        out: dict[str, RoutePlan] = {}
        for row in self.db.query(
            "SELECT route_plan_id, name, strategy, typical_duration_s, min_margin_micros, "
            "min_margin_percent, floor_min_asr, floor_min_acd_s, floor_min_ner, "
            "floor_max_pdd_ms FROM route_plans"
        ):
            out[row[0]] = RoutePlan(
                plan_id=row[0],
                name=row[1],
                strategy=row[2],
                entries=tuple(entries.get(row[0], ())),
                prefix_strategies=tuple(strategies.get(row[0], ())),
                typical_duration_s=None if row[3] is None else int(row[3]),
                min_margin_micros=None if row[4] is None else int(row[4]),
                min_margin_percent=None if row[5] is None else Decimal(row[5]),
                quality_floor=QualityFloor(float(row[6]), int(row[7]), float(row[8]), int(row[9])),
            )
        return out

    def _plan(self, plan_id: str) -> RoutePlan:
        plan = self.route_plans().get(plan_id)
        if plan is None:
            raise MasterDataError(f"no route plan {plan_id!r}")
        return plan

    @staticmethod
    def _check_strategy(name: str) -> None:
        try:
            get(name)
        except UnknownStrategy as exc:
            raise MasterDataError(str(exc.args[0])) from None

    def add_route_plan(self, plan: RoutePlan) -> None:
        """Create a route plan (entries are added one by one)."""
        with self.db.transaction():
            if plan.plan_id in self.route_plans():
                raise MasterDataError(f"route plan {plan.plan_id} exists")
            self._check_strategy(plan.strategy)
            now = utcnow()
            floor = plan.quality_floor
            self.db.execute(
                "INSERT INTO route_plans (route_plan_id, name, strategy, typical_duration_s, "
                "min_margin_micros, min_margin_percent, floor_min_asr, floor_min_acd_s, "
                "floor_min_ner, floor_max_pdd_ms, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    plan.plan_id,
                    plan.name,
                    plan.strategy,
                    plan.typical_duration_s,
                    plan.min_margin_micros,
                    None if plan.min_margin_percent is None else str(plan.min_margin_percent),
                    str(floor.min_asr),
                    floor.min_acd_s,
                    str(floor.min_ner),
                    floor.max_pdd_ms,
                    now,
                    now,
                ),
            )
            for entry in plan.entries:
                self.add_route_entry(plan.plan_id, entry)
            self._audit("route_plan", plan.plan_id, "created", None, plan.strategy)

    def update_route_plan(self, plan_id: str, **changes: Any) -> RoutePlan:
        """Change a route plan's strategy, typical duration, margins or quality floor."""
        with self.db.transaction():
            current = self._plan(plan_id)
            updated = cast(RoutePlan, self._replace(current, "plan_id", changes))
            self._check_strategy(updated.strategy)
            columns = dict(self._PLAN_FIELDS)
            self._write_changes(
                "route_plans",
                "route_plan_id",
                "route_plan",
                _PlanRow.of(current),
                _PlanRow.of(updated),
                {**columns, **_PlanRow.FLOOR_COLUMNS},
            )
            return updated

    def add_route_entry(self, plan_id: str, entry: RouteEntry) -> None:
        """Allow a carrier for a prefix in a plan."""
        with self.db.transaction():
            self._plan(plan_id)
            if self.get_carrier(entry.carrier_id) is None:
                raise MasterDataError(f"no carrier {entry.carrier_id!r}")
            exists = self.db.query_one(
                "SELECT 1 FROM route_entries WHERE route_plan_id = ? AND prefix = ? AND "
                "carrier_id = ?",
                (plan_id, entry.prefix, entry.carrier_id),
            )
            if exists:
                raise MasterDataError(
                    f"route plan {plan_id} already routes {entry.prefix or '*'} via "
                    f"{entry.carrier_id}"
                )
            self.db.execute(
                "INSERT INTO route_entries (route_plan_id, prefix, carrier_id, priority, weight) "
                "VALUES (?, ?, ?, ?, ?)",
                (plan_id, entry.prefix, entry.carrier_id, entry.priority, entry.weight),
            )
            self._audit(
                "route_plan",
                plan_id,
                "entry",
                None,
                f"{entry.prefix or '*'} -> {entry.carrier_id} priority {entry.priority} "
                f"weight {entry.weight}",
            )

    def remove_route_entry(self, plan_id: str, prefix: str, carrier_id: str) -> None:
        """Stop routing a prefix of a plan via a carrier."""
        with self.db.transaction():
            removed = self.db.execute(
                "DELETE FROM route_entries WHERE route_plan_id = ? AND prefix = ? AND "
                "carrier_id = ?",
                (plan_id, prefix, carrier_id),
            )
            if not removed:
                raise MasterDataError(
                    f"route plan {plan_id} has no {prefix or '*'} via {carrier_id}"
                )
            self._audit("route_plan", plan_id, "entry", f"{prefix or '*'} -> {carrier_id}", None)

    def set_prefix_strategy(self, plan_id: str, prefix: str, strategy: str | None) -> None:
        """Use another strategy for numbers starting with ``prefix`` (None: the plan's)."""
        with self.db.transaction():
            plan = self._plan(plan_id)
            if strategy is not None:
                self._check_strategy(strategy)
            before = dict(plan.prefix_strategies).get(prefix)
            self.db.execute(
                "DELETE FROM route_plan_strategies WHERE route_plan_id = ? AND prefix = ?",
                (plan_id, prefix),
            )
            if strategy is not None:
                self.db.execute(
                    "INSERT INTO route_plan_strategies (route_plan_id, prefix, strategy) "
                    "VALUES (?, ?, ?)",
                    (plan_id, prefix, strategy),
                )
            self._audit("route_plan", plan_id, f"strategy {prefix or '*'}", before, strategy)

    # -- caller ID and bindings ----------------------------------------------------------

    def _require_rule(self, rule_id: str) -> None:
        if not self.db.query_one("SELECT 1 FROM caller_id_rules WHERE rule_id = ?", (rule_id,)):
            raise MasterDataError(f"no caller-ID rule {rule_id!r}")

    def pools(self) -> dict[str, CallerIdPool]:
        """Every caller-ID pool."""
        numbers: dict[str, list[str]] = {
            str(r[0]): [] for r in self.db.query("SELECT pool_id FROM caller_id_pools")
        }
        for pool_id, number in self.db.query(
            "SELECT pool_id, number FROM caller_id_pool_numbers ORDER BY pool_id, number"
        ):
            numbers[pool_id].append(number)
        return {p: CallerIdPool(p, tuple(n)) for p, n in numbers.items()}

    def add_pool_numbers(self, pool_id: str, numbers: Iterable[str]) -> int:
        """Create a pool if needed and add numbers to it; return how many were new."""
        with self.db.transaction():
            pool = self.pools().get(pool_id)
            if pool is None:
                CallerIdPool(pool_id, ())
                self.db.execute(
                    "INSERT INTO caller_id_pools (pool_id, created_at) VALUES (?, ?)",
                    (pool_id, utcnow()),
                )
                self._audit("caller_id_pool", pool_id, "created", None, pool_id)
            existing = set(pool.numbers if pool else ())
            added = 0
            for raw in numbers:
                number = raw.strip().removeprefix("+")
                CallerIdPool(pool_id, (number,))
                if number in existing:
                    continue
                existing.add(number)
                self.db.execute(
                    "INSERT INTO caller_id_pool_numbers (pool_id, number) VALUES (?, ?)",
                    (pool_id, number),
                )
                self._audit("caller_id_pool", pool_id, "number", None, number)
                added += 1
            return added

    def caller_id_rules(self) -> dict[str, CallerIdRule]:
        """Every caller-ID rule."""
        return {
            row[0]: CallerIdRule(
                row[0], CallerIdAction(row[1]), row[2], int(row[3]), row[4], row[5]
            )
            for row in self.db.query(
                "SELECT rule_id, action, pool_id, strip, add_prefix, when_prefix "
                "FROM caller_id_rules"
            )
        }

    def add_caller_id_rule(self, rule: CallerIdRule) -> None:
        """Create a caller-ID rule."""
        with self.db.transaction():
            if rule.rule_id in self.caller_id_rules():
                raise MasterDataError(f"caller-ID rule {rule.rule_id} exists")
            if rule.pool_id is not None and rule.pool_id not in self.pools():
                raise MasterDataError(f"no caller-ID pool {rule.pool_id!r}")
            self.db.execute(
                "INSERT INTO caller_id_rules (rule_id, action, pool_id, strip, add_prefix, "
                "when_prefix, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    rule.rule_id,
                    rule.action.value,
                    rule.pool_id,
                    rule.strip,
                    rule.add,
                    rule.when,
                    utcnow(),
                ),
            )
            self._audit(
                "caller_id_rule",
                rule.rule_id,
                "created",
                None,
                f"{rule.action.value} pool={rule.pool_id or '-'} strip={rule.strip} "
                f"add={rule.add} when={rule.when}",
            )

    def bindings(self) -> list[Binding]:
        """Every account's and tariff plan's route plan and caller-ID rule."""
        return [
            Binding(BindingKind(row[0]), row[1], row[2], row[3])
            for row in self.db.query(
                "SELECT subject_kind, subject_id, route_plan_id, caller_id_rule FROM lcr_bindings "
                "ORDER BY 1, 2"
            )
        ]

    def bind(self, binding: Binding) -> None:
        """Attach a route plan and/or caller-ID rule to an account or tariff plan."""
        with self.db.transaction():
            if binding.kind is BindingKind.ACCOUNT and self.get_account(binding.subject_id) is None:
                raise MasterDataError(f"no account {binding.subject_id!r}")
            if binding.kind is BindingKind.TARIFF_PLAN and binding.subject_id not in self.plans():
                raise MasterDataError(f"no tariff plan {binding.subject_id!r}")
            if binding.route_plan_id is not None:
                self._plan(binding.route_plan_id)
            if binding.caller_id_rule is not None:
                self._require_rule(binding.caller_id_rule)
            before = next(
                (
                    b
                    for b in self.bindings()
                    if (b.kind, b.subject_id) == (binding.kind, binding.subject_id)
                ),
                None,
            )
            self.db.execute(
                "DELETE FROM lcr_bindings WHERE subject_kind = ? AND subject_id = ?",
                (binding.kind.value, binding.subject_id),
            )
            if binding.route_plan_id is not None or binding.caller_id_rule is not None:
                self.db.execute(
                    "INSERT INTO lcr_bindings (subject_kind, subject_id, route_plan_id, "
                    "caller_id_rule) VALUES (?, ?, ?, ?)",
                    (
                        binding.kind.value,
                        binding.subject_id,
                        binding.route_plan_id,
                        binding.caller_id_rule,
                    ),
                )
            entity = "account" if binding.kind is BindingKind.ACCOUNT else "plan"
            for name in ("route_plan_id", "caller_id_rule"):
                old = getattr(before, name) if before else None
                new = getattr(binding, name)
                if old != new:
                    self._audit(entity, binding.subject_id, name, old, new)

    # -- portability ---------------------------------------------------------------------

    def import_portability(
        self,
        rows: Iterable[tuple[str, str, str]],
        *,
        mode: str = "replace",
        source: str = "",
        content: bytes = b"",
    ) -> tuple[int, int]:
        """Load ported numbers in bulk (COPY on PostgreSQL); return (rows, numbers removed).

        ``replace``: the rows are the whole table. ``update``: the rows are changes; a row
        without routing number removes its number (ported back). All or nothing.
        """
        if mode not in ("replace", "update"):
            raise MasterDataError(f"import mode must be replace or update, not {mode!r}")
        db = self.db
        with db.transaction():
            row = db.query_one(
                "INSERT INTO portability_imports (imported_at, imported_by, source, sha256, mode, "
                "row_count) VALUES (?, ?, ?, ?, ?, 0) RETURNING import_id",
                (utcnow(), self.actor, source, hashlib.sha256(content).hexdigest(), mode),
            )
            assert row is not None
            import_id = int(row[0])
            before = int((db.query_one("SELECT COUNT(*) FROM ported_numbers") or (0,))[0])
            if mode == "replace":
                db.execute("DELETE FROM ported_numbers")
                count = db.insert_many(
                    "ported_numbers",
                    ("number", "routing_number", "carrier_id", "import_id"),
                    ((n, r, c, import_id) for n, r, c in _checked(rows) if r),
                )
                removed = max(0, before - count)
            else:
                db.execute("DROP TABLE IF EXISTS port_changes")
                db.execute(
                    "CREATE TEMP TABLE port_changes (number TEXT PRIMARY KEY, "
                    "routing_number TEXT NOT NULL, carrier_id TEXT NOT NULL)"
                )
                count = db.insert_many(
                    "port_changes",
                    ("number", "routing_number", "carrier_id"),
                    _checked(rows),
                )
                db.execute(
                    "DELETE FROM ported_numbers WHERE number IN "
                    "(SELECT number FROM port_changes WHERE routing_number = '')"
                )
                db.execute(
                    "INSERT INTO ported_numbers (number, routing_number, carrier_id, import_id) "
                    "SELECT number, routing_number, carrier_id, ? FROM port_changes "
                    "WHERE routing_number <> '' ON CONFLICT (number) DO UPDATE SET "
                    "routing_number = excluded.routing_number, carrier_id = excluded.carrier_id, "
                    "import_id = excluded.import_id",
                    (import_id,),
                )
                db.execute("DROP TABLE port_changes")
                after = int((db.query_one("SELECT COUNT(*) FROM ported_numbers") or (0,))[0])
                removed = max(0, before - after)
            db.execute(
                "UPDATE portability_imports SET row_count = ?, removed = ? WHERE import_id = ?",
                (count, removed, import_id),
            )
            # Millions of rows are audited as one entry per import, like large deck imports.
            self._audit(
                "portability", str(import_id), "import", None, f"{mode} {count} rows", note=source
            )
        return count, removed

    def ported_rows(self) -> Iterator[tuple[str, str, str]]:
        """Every ported number, in key order (shorter numbers first)."""
        yield from self.db.iterate(
            "SELECT number, routing_number, carrier_id FROM ported_numbers "
            "ORDER BY length(number), number"
        )

    def load_portability(self) -> PortabilityIndex:
        """The ported-number index (streams the rows; no per-row objects are kept)."""
        builder = PortabilityBuilder()
        builder.extend(self.ported_rows())
        return builder.build()

    # -- the loader ----------------------------------------------------------------------

    def portability_marker(self) -> int:
        """Grows with every change to the ported-number table."""
        row = self.db.query_one("SELECT MAX(audit_id) FROM audit_log WHERE entity = 'portability'")
        return int(row[0]) if row and row[0] is not None else 0

    def load_catalog(
        self,
        decks: Mapping[str, Deck],
        *,
        portability: bool = True,
        portability_index: PortabilityIndex | None = None,
    ) -> Catalog:
        """Everything the router needs; ``decks`` are the loaded rate decks (carriers' too).

        ``portability_index``: an index already loaded (reused when the table has not changed).
        """
        if portability_index is not None:
            portability = False
        with self.db.transaction():
            return Catalog(
                carriers=self.carriers().values(),
                trunks=self.trunks(),
                plans=self.route_plans().values(),
                bindings=self.bindings(),
                caller_id_rules=self.caller_id_rules().values(),
                pools=self.pools().values(),
                decks=decks,
                portability=(
                    portability_index
                    if portability_index is not None
                    else (self.load_portability() if portability else None)
                ),
            )


@dataclass(frozen=True)
class _PlanRow:
    """A route plan's own columns, for field-level change auditing."""

    route_plan_id: str
    name: str
    strategy: str
    typical_duration_s: int | None
    min_margin_micros: int | None
    min_margin_percent: str | None
    floor_min_asr: str
    floor_min_acd_s: int
    floor_min_ner: str
    floor_max_pdd_ms: int

    FLOOR_COLUMNS: ClassVar[dict[str, str]] = {
        "floor_min_asr": "floor_min_asr",
        "floor_min_acd_s": "floor_min_acd_s",
        "floor_min_ner": "floor_min_ner",
        "floor_max_pdd_ms": "floor_max_pdd_ms",
    }

    @classmethod
    def of(cls, plan: RoutePlan) -> _PlanRow:
        floor = plan.quality_floor
        return cls(
            plan.plan_id,
            plan.name,
            plan.strategy,
            plan.typical_duration_s,
            plan.min_margin_micros,
            None if plan.min_margin_percent is None else str(plan.min_margin_percent),
            str(floor.min_asr),
            floor.min_acd_s,
            str(floor.min_ner),
            floor.max_pdd_ms,
        )


def _checked(rows: Iterable[tuple[str, str, str]]) -> Iterator[tuple[str, str, str]]:
    for line, (number, routing, carrier) in enumerate(rows, 1):
        digits = number.strip().removeprefix("+")
        try:
            number_key(digits)
        except ValueError as exc:
            raise MasterDataError(f"row {line}: {exc}") from None
        yield digits, routing.strip(), carrier.strip()
