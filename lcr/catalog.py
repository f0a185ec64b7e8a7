"""Routing master data indexed for the call path: built once per reload, then only read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lcr.model import (
    Binding,
    BindingKind,
    CallerIdPool,
    CallerIdRule,
    Carrier,
    RouteEntry,
    RoutePlan,
    Trunk,
)
from lcr.portability import PortabilityIndex
from lcr.strategies import Strategy, get
from rating.deck import Deck


class CatalogError(ValueError):
    """Routing data that refers to something that does not exist."""


class CompiledPlan:
    """A route plan indexed by prefix for longest-prefix match."""

    __slots__ = ("_entries", "_lengths", "_strategies", "_strategy_lengths", "default", "plan")

    def __init__(self, plan: RoutePlan) -> None:
        self.plan = plan
        entries: dict[str, list[RouteEntry]] = {}
        for entry in plan.entries:
            entries.setdefault(entry.prefix, []).append(entry)
        self._entries = {prefix: tuple(group) for prefix, group in entries.items()}
        self._lengths = tuple(sorted({len(p) for p in entries}, reverse=True))
        self.default = get(plan.strategy)
        self._strategies = {prefix: get(name) for prefix, name in plan.prefix_strategies}
        self._strategy_lengths = tuple(sorted({len(p) for p in self._strategies}, reverse=True))

    def entries_for(self, number: str) -> tuple[str, tuple[RouteEntry, ...]]:
        """The longest entry prefix starting ``number`` and its entries (``("", ())``: none)."""
        entries = self._entries
        size = len(number)
        for length in self._lengths:
            if length <= size:
                prefix = number[:length]
                found = entries.get(prefix)
                if found is not None:
                    return prefix, found
        return "", ()

    def strategy_for(self, number: str) -> Strategy:
        """The strategy of the longest strategy prefix starting ``number``, else the plan's."""
        strategies = self._strategies
        if strategies:
            size = len(number)
            for length in self._strategy_lengths:
                if length <= size:
                    found = strategies.get(number[:length])
                    if found is not None:
                        return found
        return self.default


@dataclass(frozen=True, slots=True)
class CarrierView:
    """A carrier and its trunks, ready for the call path."""

    carrier: Carrier
    trunks: tuple[Trunk, ...]
    """Every trunk, by priority then id."""
    enabled_trunks: tuple[Trunk, ...]


class Catalog:
    """Carriers, trunks, route plans, bindings, caller-ID rules, decks and ported numbers."""

    def __init__(
        self,
        *,
        carriers: Iterable[Carrier] = (),
        trunks: Iterable[Trunk] = (),
        plans: Iterable[RoutePlan] = (),
        bindings: Iterable[Binding] = (),
        caller_id_rules: Iterable[CallerIdRule] = (),
        pools: Iterable[CallerIdPool] = (),
        decks: Mapping[str, Deck] | None = None,
        portability: PortabilityIndex | None = None,
    ) -> None:
        self.decks: Mapping[str, Deck] = decks or {}
        self.portability = portability or PortabilityIndex.empty()
        by_carrier: dict[str, list[Trunk]] = {}
        self.trunks: dict[str, Trunk] = {}
        self.trunk_by_address: dict[str, Trunk] = {}
        for trunk in trunks:
            by_carrier.setdefault(trunk.carrier_id, []).append(trunk)
            self.trunks[trunk.trunk_id] = trunk
            if trunk.address:
                self.trunk_by_address[trunk.address] = trunk
                self.trunk_by_address.setdefault(trunk.address.rsplit(":", 1)[0], trunk)
        self.carriers: dict[str, CarrierView] = {}
        for carrier in carriers:
            all_trunks = tuple(
                sorted(
                    by_carrier.pop(carrier.carrier_id, ()), key=lambda t: (t.priority, t.trunk_id)
                )
            )
            self.carriers[carrier.carrier_id] = CarrierView(
                carrier, all_trunks, tuple(t for t in all_trunks if t.enabled)
            )
        if by_carrier:
            orphan = sorted(by_carrier)[0]
            raise CatalogError(f"trunks of unknown carrier {orphan!r}")
        self.plans = {plan.plan_id: CompiledPlan(plan) for plan in plans}
        self.bindings = {(b.kind, b.subject_id): b for b in bindings}
        for binding in self.bindings.values():
            if binding.route_plan_id is not None and binding.route_plan_id not in self.plans:
                raise CatalogError(
                    f"{binding.kind.value} {binding.subject_id}: no route plan "
                    f"{binding.route_plan_id!r}"
                )
        self.caller_id_rules = {rule.rule_id: rule for rule in caller_id_rules}
        self.pools = {pool.pool_id: pool.numbers for pool in pools}
        for rule in self.caller_id_rules.values():
            if rule.pool_id is not None and rule.pool_id not in self.pools:
                raise CatalogError(f"caller-ID rule {rule.rule_id}: no pool {rule.pool_id!r}")

    def binding(
        self, account_id: str, tariff_plan_id: str = ""
    ) -> tuple[Binding | None, Binding | None]:
        """The account's own binding and its tariff plan's."""
        return (
            self.bindings.get((BindingKind.ACCOUNT, account_id)),
            self.bindings.get((BindingKind.TARIFF_PLAN, tariff_plan_id))
            if tariff_plan_id
            else None,
        )

    def apply_caller_id(self, rule_id: str | None, calling: str) -> str:
        """Apply a caller-ID rule by id (no rule, or an unknown one: unchanged)."""
        if rule_id is None:
            return calling
        rule = self.caller_id_rules.get(rule_id)
        if rule is None:
            return calling
        return rule.apply(calling, self.pools.get(rule.pool_id, ()) if rule.pool_id else ())

    def carried_by(
        self, trunk_id: str = "", address: str = "", carrier_id: str = ""
    ) -> tuple[str, str]:
        """(carrier, trunk) of what accounting reported: a trunk id, an address or a carrier."""
        trunk = self.trunks.get(trunk_id) if trunk_id else None
        if trunk is None and address:
            trunk = self.trunk_by_address.get(address) or self.trunk_by_address.get(
                address.rsplit(":", 1)[0]
            )
        if trunk is not None:
            return trunk.carrier_id, trunk.trunk_id
        return (carrier_id if carrier_id in self.carriers else "", "")
