"""The router: for one call, the carriers that may carry it, ranked, with what each costs.

``Router.route`` is pure and in memory: master data (a ``Catalog``), exchange rates and the
latest quality snapshot go in, a ``RouteDecision`` comes out. Per call it:

1. resolves the number through the portability table (``resolve``; the charging service
   calls it first so the call is rated on the same number);
2. finds the route plan: the account's, else its tariff plan's, else the default;
3. takes the plan's entries for the longest matching prefix (the candidates) and its strategy;
4. prices each candidate on its termination deck at the call's start: the whole cost of a
   typical call (connection fee, first block, increments, the carrier's rounding), converted
   exactly into the operator's currency;
5. leaves out the carriers that are disabled, demoted, without a rate, or below the margin:
   every level of the reseller chain must pay more than the carrier costs, by the minimum
   margin (absolute and percent), at the typical duration and any other configured one;
6. lets the strategy rank the rest, expands each carrier into its enabled trunks, and
   translates the called number (rules, tech prefix) and the caller ID for each route.

Capacity is not known here: the hot store's ``admit`` takes the ranked routes and removes
those over their limits in one round trip (``RouteDecision.without``).

``lcr.reference.ReferenceRouter`` states these rules plainly; this router decides exactly the
same (a property test holds them together) with less work per call:

- everything that does not depend on the call is prepared when the router is built: carriers
  with the reason they are unusable, if any, and their trunks' number and caller-ID settings;
  route plans with their typical duration, margin thresholds and entries per prefix;
- one ``DeckUnion`` over the carriers' decks finds every candidate's rate in one
  longest-prefix walk of the number instead of one walk per carrier;
- while every rate of those decks is in force (one per prefix, no bands: the usual case) the
  walk finds only each deck's prefix, and the candidate a plan entry keeps for that prefix
  stands for its one rate: a decision served from kept candidates reads nothing of the decks
  but the walk's index (in million-prefix decks every read is a cache miss);
- a rate's terms and the cost of a typical call on them are computed once per carrier and
  kept (rates are immutable), and so is the candidate built from them while its quality entry
  is the same;
- on such decks what a plan prefix's entries give (candidates, carriers left out and why)
  depends on the prefixes found alone while the quality snapshot is the same, if no usable
  carrier prices in another currency; it is kept per prefixes found, and a call whose
  margins all pass takes it as it is (else it is found again, to say which carrier fails);
- the caches are bounded and start afresh when full;
- what is rare is left to the reference: a price in a currency without an exchange rate,
  and the wording of a margin failure.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from fractions import Fraction

from lcr.catalog import CarrierView, Catalog, CompiledPlan
from lcr.decision import (
    NoRouteReason,
    NumberResolution,
    Route,
    RouteDecision,
    Skipped,
    SkipReason,
    no_route_reason,
)
from lcr.model import Binding, BindingKind, Carrier, NumberRule, RouteEntry, RoutePlan, Trunk
from lcr.quality import QualityBoard, QualityEntry, QualitySnapshot, QualityState
from lcr.reference import ReferenceRouter
from lcr.request import RouteRequest
from lcr.settings import LcrSettings
from lcr.strategies import Candidate, RankContext, Strategy
from lcr.strategies.weighted import weighted_order
from rating.billing import RateTerms
from rating.currency import FxTable, NoExchangeRate
from rating.deck import SECONDS_PER_DAY, Deck, DeckUnion, Rate
from rating.engine import CallPrice

__all__ = ["RouteRequest", "Router"]

_EPOCH_WEEKDAY = 3
"""1970-01-01 was a Thursday (``datetime.weekday()`` numbering)."""

COST_CACHE_LIMIT = 100_000
"""Typical-call costs kept per carrier and duration, and candidates per plan entry; a full
cache is dropped and refilled (traffic goes to a small share of a deck's prefixes)."""

_new = tuple.__new__
"""Builds a named tuple from its fields in order, without the keyword-handling constructor."""
_PROBE = QualityState.PROBE
_DEMOTED = QualityState.DEMOTED


class _Leg:
    """One trunk of a carrier (or the carrier itself when it has none), ready to route."""

    __slots__ = (
        "address",
        "caller_id_rule",
        "max_calls",
        "max_cps",
        "number_rules",
        "priority",
        "tech_prefix",
        "trunk",
        "trunk_id",
        "weight",
    )

    def __init__(self, carrier: Carrier, trunk: Trunk | None) -> None:
        self.trunk = trunk
        self.trunk_id = trunk.trunk_id if trunk else ""
        self.address = trunk.address if trunk else ""
        self.priority = trunk.priority if trunk else 0
        self.weight = trunk.weight if trunk else 0
        tech = carrier.tech_prefix
        if trunk is not None and trunk.tech_prefix is not None:
            tech = trunk.tech_prefix
        self.tech_prefix = tech
        self.number_rules: tuple[NumberRule, ...] = trunk.number_rules if trunk else ()
        self.caller_id_rule = (trunk.caller_id_rule if trunk else None) or carrier.caller_id_rule
        self.max_calls = trunk.max_calls if trunk else 0
        self.max_cps = trunk.max_cps if trunk else 0


class _Carrier:
    """A carrier prepared for the call path."""

    __slots__ = (
        "carrier",
        "carrier_id",
        "costs",
        "currency",
        "deck_bit",
        "deck_slot",
        "legs",
        "max_calls",
        "max_cps",
        "ordered",
        "skip",
        "view",
    )

    def __init__(self, view: CarrierView, deck: Deck | None, deck_slot: int) -> None:
        carrier = view.carrier
        self.view = view
        self.carrier = carrier
        self.carrier_id = carrier.carrier_id
        self.max_calls = carrier.max_calls
        self.max_cps = carrier.max_cps
        # Why the carrier can carry nothing, in the order the reference checks it.
        self.skip: Skipped | None = None
        if not carrier.enabled:
            self.skip = Skipped(carrier.carrier_id, SkipReason.DISABLED)
        elif view.trunks and not view.enabled_trunks:
            self.skip = Skipped(carrier.carrier_id, SkipReason.DISABLED, "every trunk is disabled")
        elif deck is None:
            self.skip = Skipped(carrier.carrier_id, SkipReason.NO_DECK)
        self.deck_slot = deck_slot
        self.deck_bit = 1 << deck_slot if deck is not None else 0
        self.currency = deck.currency if deck is not None else ""
        trunks = view.enabled_trunks
        self.legs = tuple(_Leg(carrier, t) for t in trunks) or (_Leg(carrier, None),)
        self.ordered = len(trunks) <= 1
        """The legs are in their final order (else weighted per call)."""
        self.costs: dict[int, dict[str, tuple[Rate, RateTerms, int]]] = {}
        """Typical duration -> prefix -> (its rate, its terms, the typical call's cost)."""

    def costs_for(self, typical: int) -> dict[str, tuple[Rate, RateTerms, int]]:
        """The cache of typical-call costs for one typical duration."""
        cache = self.costs.get(typical)
        if cache is None:
            cache = self.costs[typical] = {}
        return cache

    def price(
        self, rate: Rate, typical: int, cache: dict[str, tuple[Rate, RateTerms, int]]
    ) -> tuple[Rate, RateTerms, int]:
        """The rate's terms on this carrier and the cost of a typical call, kept in ``cache``.

        Keyed by prefix (the deck's own string, its hash already computed); a prefix with
        several rates (dated versions, bands) keeps the last one priced, which the caller
        checks by identity.
        """
        carrier = self.carrier
        terms = RateTerms(
            rate.rate_micros,
            rate.connect_fee_micros,
            rate.first_block_s,
            rate.increment_s,
            rate.grace_s,
            carrier.scope,
            carrier.mode,
        )
        if len(cache) >= COST_CACHE_LIMIT:
            cache.clear()
        found = cache[rate.prefix] = (rate, terms, terms.cost(typical))
        return found


class _Entry:
    """A route plan entry with its prepared carrier (None: unknown) or why it is skipped."""

    __slots__ = (
        "candidates",
        "carrier",
        "costs",
        "entry",
        "foreign",
        "preference",
        "skip",
        "slot",
    )

    def __init__(
        self, entry: RouteEntry, carrier: _Carrier | None, typical: int, home: str
    ) -> None:
        self.entry = entry
        self.carrier = carrier
        self.slot = carrier.deck_slot if carrier is not None else 0
        self.foreign = carrier is not None and carrier.currency != home
        """The carrier's deck is not in the operator's currency."""
        self.skip = (
            Skipped(entry.carrier_id, SkipReason.UNKNOWN_CARRIER)
            if carrier is None
            else carrier.skip
        )
        self.costs = carrier.costs_for(typical) if carrier is not None else {}
        self.candidates: dict[str, _Priced] = {}
        """Prefix -> the last candidate built for a rate of that prefix."""
        self.preference = (
            entry.priority,
            carrier.carrier.priority if carrier is not None else 0,
            entry.carrier_id,
        )


class _Plan:
    """A route plan prepared for the call path: entries per prefix, thresholds resolved."""

    __slots__ = (
        "compiled",
        "durations",
        "groups",
        "lengths",
        "min_micros",
        "percent_den",
        "percent_num",
        "plan",
        "plan_id",
        "typical",
    )

    def __init__(
        self,
        compiled: CompiledPlan,
        settings: LcrSettings,
        carriers: dict[str, _Carrier],
        home: str,
    ) -> None:
        plan = compiled.plan
        self.compiled = compiled
        self.plan = plan
        self.plan_id = plan.plan_id
        self.typical = typical = plan.typical_duration_s or settings.typical_duration_s
        self.durations = (
            typical,
            *(d for d in settings.margin_check_durations_s if d != typical),
        )
        self.min_micros = (
            plan.min_margin_micros
            if plan.min_margin_micros is not None
            else settings.min_margin_micros
        )
        percent = Fraction(
            plan.min_margin_percent
            if plan.min_margin_percent is not None
            else settings.min_margin_percent
        )
        self.percent_num = percent.numerator
        self.percent_den = percent.denominator
        grouped: dict[str, list[_Entry]] = {}
        for entry in plan.entries:
            grouped.setdefault(entry.prefix, []).append(
                _Entry(entry, carriers.get(entry.carrier_id), typical, home)
            )
        self.groups = {prefix: _Group(tuple(entries)) for prefix, entries in grouped.items()}
        """Prefix -> its entries."""
        self.lengths = tuple(sorted({len(p) for p in grouped}, reverse=True))

    def entries_for(self, number: str) -> tuple[str, _Group]:
        """The longest entry prefix starting ``number`` and its entries (as ``CompiledPlan``)."""
        groups = self.groups
        size = len(number)
        for length in self.lengths:
            if length <= size:
                prefix = number[:length]
                found = groups.get(prefix)
                if found is not None:
                    return prefix, found
        return "", _NO_GROUP


class _Kept:
    """What a group's entries gave for some prefixes found: the candidates, in entry order,
    and the carriers left out."""

    __slots__ = ("candidates", "dearest", "drops", "no_rate", "ranked", "skipped", "strategy")

    def __init__(self, candidates: list[Candidate], skipped: list[Skipped]) -> None:
        self.candidates: tuple[_Priced, ...] = tuple(candidates)  # type: ignore[arg-type]
        self.dearest = max((c.cost_home for c in candidates), default=0)
        """The highest cost: a margin is short for a dearer carrier if it is for a cheaper."""
        self.skipped = tuple(skipped)
        self.strategy: Strategy | None = None
        """The strategy that ranked the candidates last, if it needs no seed."""
        self.ranked: tuple[Candidate, ...] = ()
        self.drops: tuple[Skipped, ...] = ()
        """The candidates the strategy left out."""
        self.no_rate: tuple[str | None, ...] | None = None
        """Per skipped carrier, its id when it has no rate (else None); None: none has."""
        if any(s.reason is SkipReason.NO_RATE for s in skipped):
            self.no_rate = tuple(
                s.carrier_id if s.reason is SkipReason.NO_RATE else None for s in skipped
            )

    def pays(self, prepared: _Plan, revenues: list[list[int | Fraction]]) -> bool:
        """Whether every level pays every candidate's cost plus the margin, at every duration."""
        if not self.candidates:
            return True
        min_micros = prepared.min_micros
        percent_num = prepared.percent_num
        percent_den = prepared.percent_den
        if len(revenues) == 1 and len(revenues[0]) == 1:
            # One level, one duration: the margin left falls as the cost rises.
            revenue = revenues[0][0]
            left = revenue - self.dearest
            return not (
                left < min_micros
                or (percent_num and left * 100 * percent_den < percent_num * revenue)
            )
        durations = prepared.durations
        return not any(
            _short(
                revenues,
                durations,
                candidate.terms,
                candidate.cost_home,
                None,
                min_micros,
                percent_num,
                percent_den,
            )
            for candidate in self.candidates
        )

    def skipped_for(self, number: str) -> list[Skipped]:
        """The carriers left out, for a call to ``number``."""
        if self.no_rate is None:
            return list(self.skipped)
        detail = f"no rate for {number}"
        return [
            s if carrier_id is None else Skipped(carrier_id, SkipReason.NO_RATE, detail)
            for s, carrier_id in zip(self.skipped, self.no_rate, strict=True)
        ]


class _Group:
    """The entries of one plan prefix, and what they gave per prefixes found."""

    __slots__ = ("entries", "kept", "local", "wanted")

    def __init__(self, entries: tuple[_Entry, ...]) -> None:
        self.entries = entries
        self.wanted = 0
        """The bits of the decks to look up for the entries."""
        for e in entries:
            if e.skip is None and e.carrier is not None:
                self.wanted |= e.carrier.deck_bit
        self.local = not any(e.foreign for e in entries if e.skip is None)
        """No usable carrier prices in another currency (whose cost moves with the
        exchange rate): what the entries give depends on the prefixes found alone."""
        self.kept: dict[tuple[str | None, ...], _Kept] = {}
        """Each deck's prefix found (by position) -> what the entries gave for them, while
        the quality snapshot is the same."""


_NO_GROUP = _Group(())


class _Priced(Candidate):
    """A candidate with what the router found for it.

    Nothing in it depends on the call but the rate, the quality entry and (for a deck in
    another currency) the exchange rate, so a plan entry keeps its candidate per prefix and
    the next call with the same rate and quality entry reuses it.
    """

    __slots__ = (
        "destination",
        "prefix",
        "prepared",
        "rate",
        "rate_micros",
        "terms",
        "typical_cost",
    )

    def __init__(
        self,
        prepared: _Carrier,
        entry: _Entry,
        cost_home: int | Fraction,
        quality: QualityEntry | None,
        rate: Rate,
        prefix: str,
        terms: RateTerms,
        typical_cost: int,
    ) -> None:
        self.carrier = prepared.carrier
        self.entry = entry.entry
        self.preference = entry.preference
        self.cost_home = cost_home
        self.quality = quality
        self.prepared = prepared
        self.rate = rate
        # What a route shows of the rate, kept here so that a decision served from this
        # candidate never reads the rate (nor its deck) again. The price is a new int: a
        # route holding the deck's own would write to it (its reference count), out among
        # the million others of the deck, at every decision.
        self.prefix = prefix
        self.destination = rate.destination
        self.rate_micros = terms.rate_micros + 0
        self.terms = terms
        self.typical_cost = typical_cost


class Router:
    """Ranks carriers for calls; immutable, rebuilt when routing data changes."""

    def __init__(
        self,
        catalog: Catalog,
        settings: LcrSettings | None = None,
        *,
        fx: FxTable | None = None,
        home_currency: str = "USD",
        quality: QualityBoard | None = None,
        reuse: Router | None = None,
        now: float | None = None,
    ) -> None:
        """Prepare the catalog; ``reuse``: a router whose deck index serves if decks match;
        ``now``: the moment whose rates in force the deck index holds (the clock's)."""
        self.catalog = catalog
        self.settings = settings = settings or LcrSettings()
        self.fx = fx or FxTable()
        self.home_currency = home_currency
        self._quality = quality or QualityBoard()
        self._prefix_mode = settings.portability_mode == "prefix"
        self._reference = ReferenceRouter(
            catalog, settings, fx=self.fx, home_currency=home_currency, quality=self._quality
        )
        decks = catalog.decks
        used: list[Deck] = []
        slots: dict[str, int] = {}
        for view in catalog.carriers.values():
            deck_id = view.carrier.deck_id
            if deck_id and deck_id not in slots and deck_id in decks:
                slots[deck_id] = len(used)
                used.append(decks[deck_id])
        previous = reuse._union if reuse is not None else None
        moment = int(time.time() if now is None else now)
        same = previous is not None and len(previous.decks) == len(used)
        if same and previous is not None:
            same = previous.covers(moment) and all(
                a is b for a, b in zip(previous.decks, used, strict=True)
            )
        # Built on the rates in force now: a deck keeping its history (rates an import ended,
        # rates scheduled) is walked as if it held only those, until ``rates_change_at``.
        self._union: DeckUnion = (
            previous if same and previous is not None else DeckUnion(used, moment)
        )
        self._carriers: dict[str, _Carrier] = {}
        for carrier_id, view in catalog.carriers.items():
            deck_id = view.carrier.deck_id
            slot = slots.get(deck_id, -1) if deck_id else -1
            self._carriers[carrier_id] = _Carrier(
                view, decks[deck_id] if slot >= 0 and deck_id else None, max(slot, 0)
            )
        self._plans = {
            plan_id: _Plan(compiled, settings, self._carriers, home_currency)
            for plan_id, compiled in catalog.plans.items()
        }
        self._account_bindings: dict[str, Binding] = {}
        self._tariff_bindings: dict[str, Binding] = {}
        for (kind, subject), binding in catalog.bindings.items():
            if kind is BindingKind.ACCOUNT:
                self._account_bindings[subject] = binding
            else:
                self._tariff_bindings[subject] = binding
        self._default_plan = (
            self._plans.get(settings.default_route_plan) if settings.default_route_plan else None
        )
        self._kept_for: QualitySnapshot | None = None
        """The quality snapshot the groups' kept results were found with."""
        self._keeping: list[_Group] = []
        """The groups with kept results."""

    @property
    def quality(self) -> QualityBoard:
        """The board whose snapshot of quality figures and demotions the router reads."""
        return self._quality

    @quality.setter
    def quality(self, board: QualityBoard) -> None:
        self._quality = board
        self._reference.quality = board

    # -- numbers and plans -------------------------------------------------------------

    def resolve(self, number: str) -> NumberResolution:
        """Look the dialled number up in the portability table."""
        ported = self.catalog.portability.lookup(number)
        if ported is None:
            return _new(NumberResolution, (number, number, "", ""))
        rating = ported.routing_number + number if self._prefix_mode else ported.routing_number
        return NumberResolution(number, rating, ported.routing_number, ported.carrier_id)

    def plan_for(self, account_id: str, tariff_plan_id: str = "") -> RoutePlan | None:
        """The route plan that applies to an account."""
        return self._reference.plan_for(account_id, tariff_plan_id)

    @property
    def rates_change_at(self) -> int:
        """When a carrier rate starts or ends after the moment the deck index was built on
        (UTC second; ``rating.deck.NEVER``: none does): a router built then routes the
        calls from that moment on the fast walk again."""
        return self._union.until

    # -- routing -----------------------------------------------------------------------

    def route(self, request: RouteRequest) -> RouteDecision:
        """Rank the routes of one call."""
        resolution = request.resolution or self.resolve(request.number)
        account_binding = self._account_bindings.get(request.account_id)
        tariff_binding = (
            self._tariff_bindings.get(request.tariff_plan_id) if request.tariff_plan_id else None
        )
        prepared: _Plan | None
        if account_binding is not None and account_binding.route_plan_id is not None:
            prepared = self._plans[account_binding.route_plan_id]
        elif tariff_binding is not None and tariff_binding.route_plan_id is not None:
            prepared = self._plans[tariff_binding.route_plan_id]
        else:
            prepared = self._default_plan
        home = self.home_currency
        if prepared is None:
            return RouteDecision(
                resolution,
                "",
                "",
                self.settings.typical_duration_s,
                home,
                (),
                (),
                NoRouteReason.NO_PLAN,
            )
        number = resolution.rating_number
        typical = prepared.typical
        group, found_group = prepared.entries_for(number)
        strategy = prepared.compiled.strategy_for(number)
        if not found_group.entries:
            return RouteDecision(
                resolution,
                prepared.plan_id,
                strategy.name,
                typical,
                home,
                (),
                (),
                NoRouteReason.NO_CARRIER,
            )
        at = request.at
        revenues: list[list[int | Fraction]] | None = None
        price = request.price
        if price is not None:
            try:
                revenues = self._revenues(prepared.durations, price, at)
            except NoExchangeRate:
                # Rare (an exchange rate missing); the reference says what follows.
                return self._reference.route(request)
        snapshot = self._quality.snapshot
        if snapshot is not self._kept_for:
            self._forget_kept(snapshot)
        union = self._union
        wanted = found_group.wanted
        candidates: Sequence[Candidate] | None = None
        skipped: list[Skipped]
        key: tuple[str | None, ...] | None = None
        kept: _Kept | None = None
        found: list[str | None] = []
        # Decks whose every rate is in force (the usual case): the walk only finds each
        # deck's prefix, and the prefixes found decide the candidates and skipped carriers.
        plain = union.plain(at)
        if plain:
            if wanted:
                found = union.prefixes(number, wanted)
            if found_group.local:
                key = tuple(found)
                kept = found_group.kept.get(key)
                if kept is not None and (revenues is None or kept.pays(prepared, revenues)):
                    candidates = kept.candidates
                    skipped = kept.skipped_for(number)
                else:
                    kept = None
        if candidates is None:
            candidates, skipped, reusable = self._candidates(
                found_group.entries,
                wanted,
                prepared,
                group,
                number,
                plain,
                found,
                revenues,
                price,
                at,
                snapshot.entries,
            )
            if key is not None and reusable:
                kept_map = found_group.kept
                if not kept_map:
                    self._keeping.append(found_group)
                elif len(kept_map) >= COST_CACHE_LIMIT:
                    kept_map.clear()
                kept = _Kept(candidates, skipped)
                # Keyed by the candidates' own prefix texts where it can be: the lookup
                # compares the key's texts, and a route takes the candidate's text anyway.
                texts = list(key)
                for priced in kept.candidates:
                    texts[priced.prepared.deck_slot] = priced.prefix
                kept_map[tuple(texts)] = kept
        if not candidates:
            return RouteDecision(
                resolution,
                prepared.plan_id,
                strategy.name,
                typical,
                home,
                (),
                tuple(skipped),
                no_route_reason(s.reason for s in skipped),
            )
        ranked: Sequence[Candidate]
        if kept is not None and kept.strategy is strategy:
            ranked = kept.ranked
            drops = kept.drops
        else:
            order, dropped = strategy.rank(
                list(candidates),
                _new(
                    RankContext, (request.seed, prepared.plan.quality_floor, self.settings.quality)
                ),
            )
            ranked = order
            drops = tuple(Skipped(c.carrier_id, reason, detail) for c, reason, detail in dropped)
            if kept is not None and not strategy.uses_seed:
                kept.strategy = strategy
                kept.ranked = tuple(order)
                kept.drops = drops
        if drops:
            skipped.extend(drops)
        routes = self._routes(
            ranked,
            resolution,
            request,
            account_binding,
            tariff_binding,
            group,
            skipped,
            revenues[0] if revenues is not None else None,
        )
        return _new(
            RouteDecision,
            (
                resolution,
                prepared.plan_id,
                strategy.name,
                typical,
                home,
                routes,
                tuple(skipped),
                None if routes else no_route_reason(s.reason for s in skipped),
            ),
        )

    def _candidates(
        self,
        entries: tuple[_Entry, ...],
        wanted: int,
        prepared: _Plan,
        group: str,
        number: str,
        plain: bool,
        found: list[str | None],
        revenues: list[list[int | Fraction]] | None,
        price: CallPrice | None,
        at: int,
        quality_entries: Mapping[tuple[str, str], QualityEntry],
    ) -> tuple[list[Candidate], list[Skipped], bool]:
        """The entries' carriers that may carry the call, those left out, and whether that
        holds for every call with the same prefixes found whose margins all pass (no carrier
        left out for its margin or a missing exchange rate)."""
        union = self._union
        home = self.home_currency
        typical = prepared.typical
        rates = (
            union.lookup(
                number,
                at,
                (at // SECONDS_PER_DAY + _EPOCH_WEEKDAY) % 7,
                at % SECONDS_PER_DAY,
                wanted,
            )
            if wanted and not plain
            else []
        )
        snapshot = quality_entries
        skipped: list[Skipped] = []
        candidates: list[Candidate] = []
        reusable = True
        min_micros = prepared.min_micros
        percent_num = prepared.percent_num
        percent_den = prepared.percent_den
        durations = prepared.durations
        single = len(durations) == 1
        one_level = single and revenues is not None and len(revenues[0]) == 1
        revenue0 = revenues[0][0] if one_level and revenues is not None else 0
        for e in entries:
            if e.skip is not None:
                skipped.append(e.skip)
                continue
            carrier = e.carrier
            assert carrier is not None
            rate: Rate | None
            candidate: _Priced | None
            if plain:
                prefix = found[e.slot]
                if prefix is None:
                    skipped.append(
                        Skipped(carrier.carrier_id, SkipReason.NO_RATE, f"no rate for {number}")
                    )
                    continue
                candidate = e.candidates.get(prefix)
                # The rate is read only to price it: a kept candidate is for the same rate.
                rate = None if candidate is not None else union.rate(e.slot, prefix)
            else:
                rate = rates[e.slot]
                if rate is None:
                    skipped.append(
                        Skipped(carrier.carrier_id, SkipReason.NO_RATE, f"no rate for {number}")
                    )
                    continue
                prefix = rate.prefix
                candidate = e.candidates.get(prefix)
                if candidate is not None and candidate.rate is not rate:
                    candidate = None
            quality = snapshot.get((carrier.carrier_id, group)) if snapshot else None
            if quality is not None and quality.state is _DEMOTED:
                until = datetime.fromtimestamp(quality.demoted_until or 0, UTC)
                skipped.append(
                    Skipped(carrier.carrier_id, SkipReason.DEMOTED, f"until {until:%H:%M:%S}Z")
                )
                continue
            if candidate is not None:
                terms = candidate.terms
                cost = candidate.typical_cost
            else:
                assert rate is not None
                priced = e.costs.get(prefix)
                if priced is None or priced[0] is not rate:
                    priced = carrier.price(rate, typical, e.costs)
                terms = priced[1]
                cost = priced[2]
            to_home: Fraction | None = None
            if e.foreign:
                try:
                    to_home = self.fx.factor(carrier.currency, home, at)[0]
                except NoExchangeRate as exc:
                    skipped.append(
                        Skipped(carrier.carrier_id, SkipReason.NO_EXCHANGE_RATE, str(exc))
                    )
                    reusable = False
                    continue
            cost_home: int | Fraction = cost if to_home is None else cost * to_home
            if revenues is not None:
                if one_level:
                    # One level and one duration (the usual case): no lists.
                    left = revenue0 - cost_home
                    short = left < min_micros or bool(
                        percent_num and left * 100 * percent_den < percent_num * revenue0
                    )
                else:
                    short = _short(
                        revenues,
                        durations,
                        terms,
                        cost_home,
                        to_home,
                        min_micros,
                        percent_num,
                        percent_den,
                    )
                if short:
                    reference = self._reference
                    assert price is not None
                    failure = reference.check_margin(
                        reference.margin(prepared.plan, typical, price, at),
                        terms,
                        typical,
                        cost_home,
                        to_home,
                        [],
                    )
                    skipped.append(Skipped(carrier.carrier_id, SkipReason.BELOW_MARGIN, failure))
                    reusable = False
                    continue
            if candidate is None or candidate.quality is not quality or e.foreign:
                if candidate is not None:
                    rate = candidate.rate
                assert rate is not None
                candidate = _Priced(carrier, e, cost_home, quality, rate, prefix, terms, cost)
                if len(e.candidates) >= COST_CACHE_LIMIT:
                    e.candidates.clear()
                e.candidates[prefix] = candidate
            candidates.append(candidate)
        return candidates, skipped, reusable

    def _forget_kept(self, snapshot: QualitySnapshot) -> None:
        """Start the groups' kept results afresh for another quality snapshot."""
        for found_group in self._keeping:
            found_group.kept.clear()
        self._keeping.clear()
        self._kept_for = snapshot

    def _revenues(
        self, durations: tuple[int, ...], price: CallPrice, at: int
    ) -> list[list[int | Fraction]]:
        """What every level pays at each duration, in the operator's currency."""
        home = self.home_currency
        levels = price.levels
        if len(durations) == 1 and len(levels) == 1 and levels[0].currency == home:
            # One level in the operator's currency, one duration: the usual case.
            costs: list[int | Fraction] = list(price.level_costs(durations[0]))
            return [costs]
        factors: list[Fraction | None] | None = None
        for position, level in enumerate(price.levels):
            if level.currency != home:
                if factors is None:
                    factors = [None] * len(price.levels)
                factors[position] = self.fx.factor(level.currency, home, at)[0]
        revenues: list[list[int | Fraction]] = []
        for duration in durations:
            costs = list(price.level_costs(duration))
            if factors is not None:
                costs = [
                    amount if factor is None else amount * factor
                    for amount, factor in zip(costs, factors, strict=True)
                ]
            revenues.append(costs)
        return revenues

    def _routes(
        self,
        ranked: Sequence[Candidate],
        resolution: NumberResolution,
        request: RouteRequest,
        account_binding: Binding | None,
        tariff_binding: Binding | None,
        group: str,
        skipped: list[Skipped],
        revenues: list[int | Fraction] | None,
    ) -> tuple[Route, ...]:
        """The ranked candidates as routes; ``revenues``: each level's at the typical duration."""
        catalog = self.catalog
        limit = self.settings.max_routes
        caller_rule = None
        for binding in (account_binding, tariff_binding):
            if binding is not None and binding.caller_id_rule is not None:
                caller_rule = binding.caller_id_rule
                break
        calling = (
            request.calling
            if caller_rule is None
            else catalog.apply_caller_id(caller_rule, request.calling)
        )
        seed = request.seed
        ported = bool(resolution.routing_number)
        dialled = resolution.dialled
        one = revenues is not None and len(revenues) == 1
        revenue = revenues[0] if one and revenues is not None else 0
        routes: list[Route] = []
        for candidate in ranked:
            priced: _Priced = candidate  # type: ignore[assignment]
            prepared = priced.prepared
            carrier = priced.carrier
            carrier_number = (
                resolution.rating_number if ported and carrier.send_routing_number else dialled
            )
            for rule in carrier.number_rules:
                carrier_number = rule.apply(carrier_number)
            quality = priced.quality
            if quality is None:
                asr = acd_s = ner = pdd_ms = None
                samples = 0
                probe = False
            else:
                figures = quality.figures
                asr = figures.asr
                acd_s = figures.acd_s
                ner = figures.ner
                pdd_ms = figures.pdd_ms
                samples = figures.attempts
                probe = quality.state is _PROBE
            legs = prepared.legs
            if not prepared.ordered:
                legs = tuple(
                    sorted(
                        weighted_order(legs, lambda g: g.weight, lambda g: g.trunk_id, seed),
                        key=lambda g: g.priority,
                    )
                )
            # What each level keeps of a typical call (rounded down to a micro-unit).
            margin: int | None
            level_margins: tuple[int, ...]
            if one:
                left = revenue - priced.cost_home
                margin = left if left.__class__ is int else int(left // 1)
                level_margins = (margin,)
            elif revenues is not None:
                cost_home = priced.cost_home
                level_margins = tuple(int((r - cost_home) // 1) for r in revenues)
                margin = level_margins[0] if level_margins else None
            else:
                margin = None
                level_margins = ()
            for leg in legs:
                if len(routes) >= limit:
                    skipped.append(
                        Skipped(
                            carrier.carrier_id,
                            SkipReason.BEYOND_MAX_ROUTES,
                            f"max_routes is {limit}",
                            leg.trunk_id,
                        )
                    )
                    continue
                number = carrier_number
                for rule in leg.number_rules:
                    number = rule.apply(number)
                rule_id = leg.caller_id_rule
                routes.append(
                    _new(
                        Route,
                        (
                            carrier.carrier_id,
                            leg.trunk_id,
                            leg.address,
                            leg.tech_prefix + number,
                            calling
                            if rule_id is None
                            else catalog.apply_caller_id(rule_id, calling),
                            priced.typical_cost,
                            priced.rate_micros,
                            prepared.currency,
                            margin,
                            level_margins,
                            priced.prefix,
                            priced.destination,
                            group,
                            asr,
                            acd_s,
                            ner,
                            pdd_ms,
                            samples,
                            probe,
                            prepared.max_calls,
                            prepared.max_cps,
                            leg.max_calls,
                            leg.max_cps,
                            priced.terms,
                        ),
                    )
                )
        return tuple(routes)


def _short(
    revenues: list[list[int | Fraction]],
    durations: tuple[int, ...],
    terms: RateTerms,
    cost_home: int | Fraction,
    to_home: Fraction | None,
    min_micros: int,
    percent_num: int,
    percent_den: int,
) -> bool:
    """Whether some level pays less than the carrier costs plus the margin, at any duration."""
    for index, level_revenues in enumerate(revenues):
        if index == 0:
            cost: int | Fraction = cost_home
        else:
            raw = terms.cost(durations[index])
            cost = raw if to_home is None else raw * to_home
        for revenue in level_revenues:
            left = revenue - cost
            if left < min_micros or (
                percent_num and left * 100 * percent_den < percent_num * revenue
            ):
                return True
    return False
