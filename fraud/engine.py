"""The fraud engine: an immutable, pure evaluator of the rules over the lists and counters.

Built once from the configuration and the database (``FraudEngine.build``) and swapped whole on
reload. For an attempt, the caller:

1. may ``screen`` it on the lists alone (no counters: a refusal needs no round trip);
2. asks ``attempt_plan`` for the counter operations, runs them in the counter store (one
   atomic step that reads the counters and counts the attempt);
3. calls ``check(attempt, counters)`` for the verdict.

The plan's gate (each operation's ``trip_at``) trips exactly when the counter rules refuse the
attempt, so a caller that folds the counter step into the balance reservation skips the
reservation of every call the verdict will refuse, and holds no money for it.

After a call (and, optionally, on interim reports) ``usage_plan`` and ``check_usage`` do the
same for what it used: spend, minutes, short calls, the end of a live call, a new country.
Nothing here reads a clock, a socket or a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fraud.counters import CounterOp, CounterPlan, CounterValues, OpKind
from fraud.country import country_of
from fraud.listing import ListEntry, ListKind, Scope, StaticLists, display_prefix
from fraud.model import CallAttempt, CallUsage, Hit, Stage, Value, Verdict
from fraud.rule import REFUSALS, Action, RuleError, Rules, apply_overrides
from fraud.settings import FraudSettings

LIVE = "live"
COUNTRIES = "countries"
SPEND_RULES = ("spend_per_hour", "spend_per_day")


def calls_name(window_s: int) -> str:
    """The counter of call attempts in a window."""
    return f"calls:{window_s}"


def spend_name(window_s: int) -> str:
    """The counter of money spent in a window (micro-units)."""
    return f"spend:{window_s}"


def country_spend_name(country: str, window_s: int) -> str:
    """The counter of money spent on one destination country in a window."""
    return f"cc:{country}:spend:{window_s}"


def country_seconds_name(country: str, window_s: int) -> str:
    """The counter of seconds used to one destination country in a window."""
    return f"cc:{country}:secs:{window_s}"


def short_name(shorter_than_s: int, window_s: int) -> str:
    """The counter of short calls in a window."""
    return f"short:{shorter_than_s}:{window_s}"


@dataclass(frozen=True, slots=True)
class FraudData:
    """What the records database holds for the fraud controls."""

    entries: tuple[ListEntry, ...] = ()
    overrides: Mapping[str, Mapping[str, Mapping[str, object]]] = field(default_factory=dict)
    """Account id (``""``: every account) -> rule id -> setting -> value."""
    marker: int = 0
    """The database's change marker when this was read."""


def settings_entries(settings: FraudSettings) -> list[ListEntry]:
    """The global list entries written in the configuration."""
    lists = settings.lists
    entries = [
        ListEntry(kind, Scope.GLOBAL, "", value, "config")
        for kind, values in (
            (ListKind.DENY, lists.deny_prefixes),
            (ListKind.ALLOW, lists.allow_prefixes),
            (ListKind.DNC, lists.dnc_numbers),
            (ListKind.HIGH_RISK, lists.high_risk_prefixes),
        )
        for value in values
    ]
    for peer, networks in lists.peer_networks.items():
        entries.extend(
            ListEntry(ListKind.IP, Scope.PEER, peer, network, "config") for network in networks
        )
    return entries


class _Program:
    """One rule set compiled into the counter operations it needs."""

    __slots__ = (
        "attempt_ops",
        "country_ops",
        "country_seconds_windows",
        "country_spend_windows",
        "live_trip_at",
        "new_country_gate",
        "rules",
        "spend_windows",
        "uses_counters",
    )

    def __init__(self, rules: Rules, countries_ttl_s: int) -> None:
        self.rules = rules
        refusing = _refusing
        ops: dict[str, CounterOp] = {}
        rate = rules.calls_per_minute
        if rate.enabled:
            _merge(
                ops,
                OpKind.WINDOW,
                calls_name(rate.window_s),
                rate.window_s,
                1,
                rate.max_calls + 1 if refusing(rate) else -1,
            )
        spend_windows: list[int] = []
        for rule_id in SPEND_RULES:
            rule = getattr(rules, rule_id)
            if rule.enabled:
                spend_windows.append(rule.window_s)
                _merge(
                    ops,
                    OpKind.WINDOW,
                    spend_name(rule.window_s),
                    rule.window_s,
                    0,
                    rule.max_spend_micros if refusing(rule) else -1,
                )
        short = rules.short_calls
        if short.enabled:
            _merge(
                ops,
                OpKind.WINDOW,
                short_name(short.shorter_than_s, short.window_s),
                short.window_s,
                0,
                short.max_calls if refusing(short) else -1,
            )
        self.attempt_ops = tuple(ops.values())
        self.spend_windows = tuple(sorted(set(spend_windows)))
        cs, cm = rules.country_spend_per_hour, rules.country_minutes_per_hour
        self.country_spend_windows = (cs.window_s,) if cs.enabled else ()
        self.country_seconds_windows = (cm.window_s,) if cm.enabled else ()
        concurrent = rules.concurrent_calls
        self.live_trip_at = (
            concurrent.max_calls + 1 if concurrent.enabled and refusing(concurrent) else -1
        )
        new = rules.new_country
        self.new_country_gate = new.min_known_countries if new.enabled and refusing(new) else -1
        """The known countries from which a first call to another one refuses (-1: never)."""
        self.country_ops: dict[str, tuple[CounterOp, ...]] = {}
        self.uses_counters = bool(
            self.attempt_ops
            or cs.enabled
            or cm.enabled
            or concurrent.enabled
            or rules.new_country.enabled
        )

    def for_country(self, country: str, countries_ttl_s: int) -> tuple[CounterOp, ...]:
        """The operations that depend on the destination's country (memoised)."""
        cached = self.country_ops.get(country)
        if cached is not None:
            return cached
        rules = self.rules
        ops: dict[str, CounterOp] = {}
        cs, cm = rules.country_spend_per_hour, rules.country_minutes_per_hour
        if cs.enabled:
            _merge(
                ops,
                OpKind.WINDOW,
                country_spend_name(country, cs.window_s),
                cs.window_s,
                0,
                cs.max_spend_micros if _refusing(cs) else -1,
                country,
            )
        if cm.enabled:
            _merge(
                ops,
                OpKind.WINDOW,
                country_seconds_name(country, cm.window_s),
                cm.window_s,
                0,
                cm.max_minutes * 60 if _refusing(cm) else -1,
                country,
            )
        result = [*self.attempt_ops, *ops.values()]
        if rules.new_country.enabled:
            result.append(CounterOp(OpKind.SET_TEST, COUNTRIES, countries_ttl_s, 0, country))
            result.append(CounterOp(OpKind.SET_SIZE, COUNTRIES, countries_ttl_s))
        found = tuple(result)
        if len(self.country_ops) < 1024:
            self.country_ops[country] = found
        return found


def _refusing(rule: Any) -> bool:
    return Action.REFUSE in rule.actions


def _merge(
    ops: dict[str, CounterOp],
    kind: OpKind,
    name: str,
    window_s: int,
    add: int,
    trip_at: int,
    group: str = "",
) -> None:
    current = ops.get(name)
    if current is not None and (trip_at < 0 or 0 <= current.trip_at <= trip_at):
        return
    ops[name] = CounterOp(kind, name, window_s, add, "", trip_at, group)


class FraudEngine:
    """The rules, the lists and the counter layout, for one configuration; never mutated."""

    def __init__(
        self,
        rules: Rules | None = None,
        lists: StaticLists | None = None,
        *,
        account_rules: Mapping[str, Rules] | None = None,
        enabled: bool = True,
        buckets: int = 12,
        live_ttl_s: int = 14_400,
        countries_ttl_s: int = 400 * 86_400,
        block_prefix_digits: int = 0,
        marker: int = 0,
        problems: Iterable[str] = (),
    ) -> None:
        self.rules = rules or Rules()
        self.lists = lists or StaticLists()
        self.account_rules = dict(account_rules or {})
        self.enabled = enabled
        self.buckets = buckets
        self.live_ttl_s = live_ttl_s
        self.countries_ttl_s = countries_ttl_s
        self.block_prefix_digits = block_prefix_digits
        self.marker = marker
        self.problems = tuple(problems)
        """Overrides that could not be applied (logged by whoever built the engine)."""
        self._default = _Program(self.rules, countries_ttl_s)
        self._programs = {
            account: _Program(account_rules_, countries_ttl_s)
            for account, account_rules_ in self.account_rules.items()
        }

    @classmethod
    def build(
        cls,
        settings: FraudSettings,
        data: FraudData | None = None,
        extra_entries: Iterable[ListEntry] = (),
    ) -> FraudEngine:
        """Compile the configuration, the database's lists and overrides, and extra entries
        (range files) into an engine. Overrides that do not apply are left out and named in
        ``problems``; bad list entries raise ``ListError``."""
        data = data or FraudData()
        problems: list[str] = []
        rules = settings.rules
        global_overrides = data.overrides.get("", {})
        for rule_id, changes in global_overrides.items():
            try:
                rules = apply_overrides(rules, {rule_id: changes})
            except RuleError as exc:
                problems.append(f"global override {exc}")
        account_rules: dict[str, Rules] = {}
        for account, overrides in data.overrides.items():
            if not account:
                continue
            own = rules
            for rule_id, changes in overrides.items():
                try:
                    own = apply_overrides(own, {rule_id: changes})
                except RuleError as exc:
                    problems.append(f"account {account} override {exc}")
            if own != rules:
                account_rules[account] = own
        entries = [*settings_entries(settings), *extra_entries, *data.entries]
        counters = settings.counters
        return cls(
            rules,
            StaticLists(entries),
            account_rules=account_rules,
            enabled=settings.enabled,
            buckets=counters.window_buckets,
            live_ttl_s=counters.live_ttl_s,
            countries_ttl_s=counters.countries_ttl_days * 86_400,
            block_prefix_digits=settings.actions.block_prefix_digits,
            marker=data.marker,
            problems=problems,
        )

    # -- helpers -------------------------------------------------------------------------

    def rules_for(self, account_id: str) -> Rules:
        """The rules in force for an account (its overrides applied)."""
        return self.account_rules.get(account_id, self.rules)

    def _program(self, account_id: str) -> _Program:
        return self._programs.get(account_id, self._default)

    def block_target(self, number: str) -> str:
        """What ``block_destination`` blocks for a number: its high-risk range, else its
        first ``block_prefix_digits`` digits (the whole number when 0)."""
        found = self.lists.high_risk(number)
        if found is not None:
            return found[0]
        digits = self.block_prefix_digits
        return number[:digits] if digits else number

    @staticmethod
    def _hit(
        rules: Rules, rule_id: str, message: str, values: dict[str, Value], target: str = ""
    ) -> Hit:
        rule = getattr(rules, rule_id)
        return Hit(rule_id, rule.actions, REFUSALS[rule_id], message, values, target)

    # -- attempts ------------------------------------------------------------------------

    def screen(self, attempt: CallAttempt) -> Verdict:
        """The verdict of the lists alone (no counters)."""
        return self.check(attempt, None)

    def attempt_plan(self, attempt: CallAttempt, country: str | None = None) -> CounterPlan | None:
        """The counter operations an attempt needs (None: no counter rule is enabled);
        ``country``, the destination's if known (a verdict's), saves looking it up again."""
        if not self.enabled:
            return None
        program = self._program(attempt.account_id)
        if not program.uses_counters:
            return None
        if country is None:
            country = country_of(attempt.called)
        ops = program.for_country(country, self.countries_ttl_s)
        gate = program.new_country_gate
        if gate >= 0:
            # The refusing new-country rule joins the gate (unless an allow-list entry lets
            # the number through), so that the gate trips exactly when the verdict refuses.
            match = self.lists.destination(attempt.account_id, attempt.called)
            if match is None or match.kind is not ListKind.ALLOW:
                new = CounterOp(OpKind.SET_NEW, COUNTRIES, self.countries_ttl_s, gate, country, 1)
                ops = (*ops, new)
        if attempt.session_id:
            live = CounterOp(
                OpKind.LIVE_ADD,
                LIVE,
                self.live_ttl_s,
                0,
                attempt.session_id,
                program.live_trip_at,
            )
            ops = (*ops, live)
        return CounterPlan(attempt.account_id, int(attempt.now * 1000), ops, self.buckets)

    def check(
        self,
        attempt: CallAttempt,
        counters: CounterValues | None,
        screened: Verdict | None = None,
    ) -> Verdict:
        """Evaluate every enabled rule; counter rules only when ``counters`` are given.
        ``screened``, this engine's ``screen`` of the same attempt, saves checking the lists
        again."""
        country = screened.country if screened is not None else country_of(attempt.called)
        if not self.enabled:
            return Verdict(
                Stage.ATTEMPT,
                attempt.account_id,
                attempt.session_id,
                attempt.called,
                country,
                attempt.now,
            )
        rules = self._program(attempt.account_id).rules
        hits: list[Hit] = []
        if screened is not None:
            hits.extend(screened.hits)
        else:
            self._static(rules, attempt, hits)
        if counters is not None:
            self._velocity(rules, attempt, country, counters, hits)
        return Verdict(
            Stage.ATTEMPT,
            attempt.account_id,
            attempt.session_id,
            attempt.called,
            country,
            attempt.now,
            tuple(hits),
            counters.values if counters is not None else {},
        )

    def _static(self, rules: Rules, attempt: CallAttempt, hits: list[Hit]) -> None:
        lists = self.lists
        account, called = attempt.account_id, attempt.called
        if rules.caller_is_callee.enabled and attempt.calling and attempt.calling == called:
            hits.append(
                self._hit(
                    rules,
                    "caller_is_callee",
                    f"the caller {called} calls itself",
                    {"calling": attempt.calling, "called": called},
                )
            )
        if rules.peer_ip.enabled and attempt.peer:
            networks = lists.peer_networks(attempt.peer)
            if networks is not None and attempt.source_ip not in networks:
                hits.append(
                    self._hit(
                        rules,
                        "peer_ip",
                        f"peer {attempt.peer} sent from {attempt.source_ip or 'no address'}, "
                        "outside its networks",
                        {
                            "peer": attempt.peer,
                            "source_ip": attempt.source_ip,
                            "allowed": _networks(networks.networks),
                        },
                    )
                )
        if rules.account_ip.enabled:
            networks = lists.account_networks(account)
            if networks is not None:
                address = attempt.caller_ip or attempt.source_ip
                if address not in networks:
                    hits.append(
                        self._hit(
                            rules,
                            "account_ip",
                            f"call from {address or 'no address'}, outside the account's networks",
                            {"address": address, "allowed": _networks(networks.networks)},
                        )
                    )
        if rules.dnc.enabled:
            scope = lists.dnc(account, called)
            if scope is not None:
                hits.append(
                    self._hit(
                        rules,
                        "dnc",
                        f"{called} is on the {scope.value} Do-Not-Call list",
                        {"number": called, "list": scope.value},
                    )
                )
        if rules.deny_destination.enabled:
            match = lists.destination(account, called)
            if match is not None and match.kind is not ListKind.ALLOW:
                prefix = display_prefix(match.prefix)
                verb = "blocked" if match.kind is ListKind.BLOCKED else "denied"
                hits.append(
                    self._hit(
                        rules,
                        "deny_destination",
                        f"{called} is {verb} by {match.scope.value} prefix {prefix}",
                        {
                            "prefix": prefix,
                            "list": match.kind.value,
                            "scope": match.scope.value,
                            "source": match.source,
                        },
                        match.prefix,
                    )
                )
        if rules.high_risk_destination.enabled:
            found = lists.high_risk(called)
            if found is not None and lists.opted_in(account, called) is None:
                prefix, label = found
                hits.append(
                    self._hit(
                        rules,
                        "high_risk_destination",
                        f"{called} is in high-risk range {prefix}"
                        + (f" ({label})" if label else "")
                        + " and the account has not opted in",
                        {"range": prefix, "label": label},
                        prefix,
                    )
                )

    def _velocity(
        self,
        rules: Rules,
        attempt: CallAttempt,
        country: str,
        counters: CounterValues,
        hits: list[Hit],
    ) -> None:
        called = attempt.called
        rate = rules.calls_per_minute
        if rate.enabled:
            calls = counters.get(calls_name(rate.window_s))
            if calls > rate.max_calls:
                hits.append(
                    self._hit(
                        rules,
                        "calls_per_minute",
                        f"{calls} call attempts in {rate.window_s} s, more than {rate.max_calls}",
                        {"calls": calls, "max_calls": rate.max_calls, "window_s": rate.window_s},
                        self.block_target(called),
                    )
                )
        concurrent = rules.concurrent_calls
        if concurrent.enabled and attempt.session_id:
            live = counters.get(LIVE)
            if live > concurrent.max_calls:
                hits.append(
                    self._hit(
                        rules,
                        "concurrent_calls",
                        f"{live} calls at once, more than {concurrent.max_calls}",
                        {"live_calls": live, "max_calls": concurrent.max_calls},
                        self.block_target(called),
                    )
                )
        self._money(rules, attempt.account_id, called, country, counters, hits, at_attempt=True)
        short = rules.short_calls
        if short.enabled:
            count = counters.get(short_name(short.shorter_than_s, short.window_s))
            if count >= short.max_calls:
                hits.append(self._short_hit(rules, count, called))
        new = rules.new_country
        if new.enabled:
            known = counters.get(f"{COUNTRIES}#")
            member = counters.get(f"{COUNTRIES}?{country}", 1)
            if not member and known >= new.min_known_countries:
                match = self.lists.destination(attempt.account_id, called)
                if match is None or match.kind is not ListKind.ALLOW:
                    hits.append(
                        self._hit(
                            rules,
                            "new_country",
                            f"first call to {country} (the account has called {known} countries)",
                            {"country": country, "known_countries": known},
                            self.block_target(called),
                        )
                    )

    def _short_hit(self, rules: Rules, count: int, called: str) -> Hit:
        short = rules.short_calls
        return self._hit(
            rules,
            "short_calls",
            f"{count} calls shorter than {short.shorter_than_s} s in {short.window_s} s "
            f"(limit {short.max_calls})",
            {
                "short_calls": count,
                "max_calls": short.max_calls,
                "shorter_than_s": short.shorter_than_s,
                "window_s": short.window_s,
            },
            self.block_target(called),
        )

    def _money(
        self,
        rules: Rules,
        account_id: str,
        called: str,
        country: str,
        counters: CounterValues,
        hits: list[Hit],
        *,
        at_attempt: bool,
        spent: bool = True,
        used: bool = True,
    ) -> None:
        for rule_id in SPEND_RULES:
            rule = getattr(rules, rule_id)
            if rule.enabled and spent:
                value = counters.get(spend_name(rule.window_s))
                if value >= rule.max_spend_micros:
                    hits.append(
                        self._hit(
                            rules,
                            rule_id,
                            f"{_money(value)} spent in {rule.window_s} s, limit "
                            f"{_money(rule.max_spend_micros)}",
                            {
                                "spent_micros": value,
                                "max_spend_micros": rule.max_spend_micros,
                                "window_s": rule.window_s,
                            },
                            self.block_target(called),
                        )
                    )
        cs = rules.country_spend_per_hour
        if cs.enabled and spent:
            value = counters.get(country_spend_name(country, cs.window_s))
            if value >= cs.max_spend_micros:
                hits.append(
                    self._hit(
                        rules,
                        "country_spend_per_hour",
                        f"{_money(value)} spent on {country} in {cs.window_s} s, limit "
                        f"{_money(cs.max_spend_micros)}",
                        {
                            "country": country,
                            "spent_micros": value,
                            "max_spend_micros": cs.max_spend_micros,
                            "window_s": cs.window_s,
                        },
                        self.block_target(called),
                    )
                )
        cm = rules.country_minutes_per_hour
        if cm.enabled and used:
            seconds = counters.get(country_seconds_name(country, cm.window_s))
            if seconds >= cm.max_minutes * 60:
                hits.append(
                    self._hit(
                        rules,
                        "country_minutes_per_hour",
                        f"{seconds // 60} min to {country} in {cm.window_s} s, limit "
                        f"{cm.max_minutes}",
                        {
                            "country": country,
                            "seconds": seconds,
                            "max_minutes": cm.max_minutes,
                            "window_s": cm.window_s,
                        },
                        self.block_target(called),
                    )
                )

    # -- usage ---------------------------------------------------------------------------

    def _counts_short(self, rules: Rules, usage: CallUsage) -> bool:
        short = rules.short_calls
        return (
            short.enabled
            and usage.final
            and usage.connected
            and usage.duration_s < short.shorter_than_s
        )

    def usage_plan(self, usage: CallUsage) -> CounterPlan | None:
        """The counter operations that record what a call used (None: nothing to record)."""
        if not self.enabled:
            return None
        program = self._program(usage.account_id)
        rules = program.rules
        country = country_of(usage.called)
        ops: list[CounterOp] = []
        if usage.spend_micros:
            ops.extend(
                CounterOp(OpKind.WINDOW, spend_name(w), w, usage.spend_micros)
                for w in program.spend_windows
            )
            ops.extend(
                CounterOp(
                    OpKind.WINDOW,
                    country_spend_name(country, w),
                    w,
                    usage.spend_micros,
                    group=country,
                )
                for w in program.country_spend_windows
            )
        if usage.seconds:
            ops.extend(
                CounterOp(
                    OpKind.WINDOW, country_seconds_name(country, w), w, usage.seconds, group=country
                )
                for w in program.country_seconds_windows
            )
        if self._counts_short(rules, usage):
            short = rules.short_calls
            ops.append(
                CounterOp(
                    OpKind.WINDOW,
                    short_name(short.shorter_than_s, short.window_s),
                    short.window_s,
                    1,
                )
            )
        if usage.session_id:
            kind = OpKind.LIVE_REMOVE if usage.final else OpKind.LIVE_TOUCH
            ops.append(CounterOp(kind, LIVE, self.live_ttl_s, 0, usage.session_id))
        if usage.seconds > 0 or usage.duration_s > 0:
            ops.append(CounterOp(OpKind.SET_ADD, COUNTRIES, self.countries_ttl_s, 0, country))
        if not ops:
            return None
        return CounterPlan(usage.account_id, int(usage.now * 1000), tuple(ops), self.buckets)

    def check_usage(self, usage: CallUsage, counters: CounterValues) -> Verdict:
        """The rules a usage report trips (spend, minutes, short calls), after counting it."""
        country = country_of(usage.called)
        hits: list[Hit] = []
        if self.enabled:
            rules = self._program(usage.account_id).rules
            self._money(
                rules,
                usage.account_id,
                usage.called,
                country,
                counters,
                hits,
                at_attempt=False,
                spent=usage.spend_micros > 0,
                used=usage.seconds > 0,
            )
            if self._counts_short(rules, usage):
                short = rules.short_calls
                count = counters.get(short_name(short.shorter_than_s, short.window_s))
                if count >= short.max_calls:
                    hits.append(self._short_hit(rules, count, usage.called))
        return Verdict(
            Stage.USAGE,
            usage.account_id,
            usage.session_id,
            usage.called,
            country,
            usage.now,
            tuple(hits),
            counters.values,
        )


def _networks(networks: tuple[str, ...], shown: int = 8) -> str:
    """A network list for a hit's values, cut short for the audit log."""
    text = ",".join(networks[:shown])
    return text + f",... ({len(networks)} in all)" if len(networks) > shown else text


def _money(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), 1_000_000)
    return f"{sign}{whole}.{frac:06d}"


__all__ = [
    "COUNTRIES",
    "LIVE",
    "FraudData",
    "FraudEngine",
    "calls_name",
    "country_seconds_name",
    "country_spend_name",
    "settings_entries",
    "short_name",
    "spend_name",
]
