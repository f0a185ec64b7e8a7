"""Carriers, trunks, route plans, number and caller-ID rules, ported numbers: routing master data.

Everything here is an immutable value; ``lcr.catalog`` indexes them for the call path and
``ocsd.lcr_store`` keeps them in the records database. Identifiers are plain text without
``|`` (the hot store joins them with it) or spaces.
"""

from __future__ import annotations

import enum
import re
import zlib
from dataclasses import dataclass, field
from decimal import Decimal

from rating.money import Rounding, RoundingScope

_ID_RE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,64}$")
_DIGITS_RE = re.compile(r"^[0-9#*+]*$")


def check_id(kind: str, value: str) -> None:
    """Raise ValueError unless ``value`` is a usable identifier."""
    if not _ID_RE.match(value):
        raise ValueError(
            f"{kind} id {value!r} must be 1-64 letters, digits or _.:@+- (no spaces or |)"
        )


def check_digits(kind: str, value: str) -> None:
    """Raise ValueError unless ``value`` is digits (``#`` and ``*`` allowed, as switches use)."""
    if not _DIGITS_RE.match(value):
        raise ValueError(f"{kind} {value!r} must be digits, #, * or +")


@dataclass(frozen=True, slots=True)
class NumberRule:
    """One manipulation step of a number, applied only to numbers starting with ``when``.

    The step removes ``strip`` leading digits and puts ``add`` in front; when ``match`` is
    set, its first match (a regular expression) is then replaced by ``replace``.
    """

    when: str = ""
    strip: int = 0
    add: str = ""
    match: str = ""
    replace: str = ""

    def __post_init__(self) -> None:
        check_digits("rule prefix", self.when)
        check_digits("rule addition", self.add)
        if self.strip < 0:
            raise ValueError("a rule cannot strip a negative number of digits")
        if self.match:
            try:
                re.compile(self.match)
            except re.error as exc:
                raise ValueError(
                    f"rule {self.match!r} is not a regular expression: {exc}"
                ) from None
        if not (self.strip or self.add or self.match):
            raise ValueError("a rule must strip, add or match something")

    def apply(self, number: str) -> str:
        """Return ``number`` after this step (unchanged when it does not start with ``when``)."""
        if not number.startswith(self.when):
            return number
        if self.strip or self.add:
            number = self.add + number[self.strip :]
        if self.match:
            number = _compiled(self.match).sub(self.replace, number, count=1)
        return number

    def describe(self) -> str:
        """The rule as ``ocsd`` prints and parses it: ``WHEN:STRIP:ADD`` or ``/MATCH/REPLACE/``."""
        if self.match and not (self.strip or self.add or self.when):
            return f"/{self.match}/{self.replace}/"
        text = f"{self.when}:{self.strip}:{self.add}"
        if self.match:
            text += f" /{self.match}/{self.replace}/"
        return text


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    found = _PATTERNS.get(pattern)
    if found is None:
        found = _PATTERNS[pattern] = re.compile(pattern)
    return found


def parse_number_rule(text: str) -> NumberRule:
    """Parse ``WHEN:STRIP:ADD`` (e.g. ``0044:4:44``) or ``/MATCH/REPLACE/``."""
    cleaned = text.strip()
    if cleaned.startswith("/"):
        parts = cleaned[1:].split("/")
        if len(parts) != 3 or parts[2]:
            raise ValueError(f"rule {text!r} is not /MATCH/REPLACE/")
        return NumberRule(match=parts[0], replace=parts[1])
    parts = cleaned.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        raise ValueError(f"rule {text!r} is not WHEN:STRIP:ADD (e.g. 0044:4:44) or /MATCH/REPLACE/")
    return NumberRule(when=parts[0], strip=int(parts[1]), add=parts[2])


def apply_rules(rules: tuple[NumberRule, ...], number: str) -> str:
    """Apply rules in order."""
    for rule in rules:
        number = rule.apply(number)
    return number


@dataclass(frozen=True, slots=True)
class Carrier:
    """A termination partner: whom we pay to complete calls, at its rate deck."""

    carrier_id: str
    name: str = ""
    currency: str = "USD"
    deck_id: str | None = None
    """The carrier's termination deck (a ``rate_decks`` row, imported like a tariff)."""
    enabled: bool = True
    priority: int = 0
    """Lower is preferred by the priority strategy and breaks ties elsewhere."""
    weight: int = 1
    """Share of calls under weighted load balancing."""
    max_calls: int = 0
    """Concurrent calls at most; 0: no limit."""
    max_cps: int = 0
    """New calls per second at most; 0: no limit."""
    tech_prefix: str = ""
    """Digits the carrier wants before the number (unless a trunk has its own)."""
    number_rules: tuple[NumberRule, ...] = ()
    caller_id_rule: str | None = None
    send_routing_number: bool = False
    """Send a ported number's routing number to this carrier instead of the dialled one."""
    scope: RoundingScope = RoundingScope.PER_CALL
    mode: Rounding = Rounding.UP
    """How the carrier rounds its own bills (to compute what a call costs us)."""

    def __post_init__(self) -> None:
        check_id("carrier", self.carrier_id)
        check_digits("tech prefix", self.tech_prefix)
        if self.priority < 0 or self.weight < 0 or self.max_calls < 0 or self.max_cps < 0:
            raise ValueError("priority, weight, max calls and max cps must not be negative")


@dataclass(frozen=True, slots=True)
class Trunk:
    """One way into a carrier: a gateway address with its own limits and number format."""

    trunk_id: str
    carrier_id: str
    address: str = ""
    """``host[:port]`` the switch sends the call to (empty: the switch knows the trunk)."""
    enabled: bool = True
    priority: int = 0
    weight: int = 1
    max_calls: int = 0
    max_cps: int = 0
    tech_prefix: str | None = None
    """Replaces the carrier's tech prefix when set (``""`` sends none)."""
    number_rules: tuple[NumberRule, ...] = ()
    """Applied after the carrier's rules."""
    caller_id_rule: str | None = None
    """Replaces the carrier's caller-ID rule when set."""

    def __post_init__(self) -> None:
        check_id("trunk", self.trunk_id)
        check_id("carrier", self.carrier_id)
        if self.tech_prefix:
            check_digits("tech prefix", self.tech_prefix)
        if self.priority < 0 or self.weight < 0 or self.max_calls < 0 or self.max_cps < 0:
            raise ValueError("priority, weight, max calls and max cps must not be negative")


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """A carrier allowed to carry calls to numbers starting with ``prefix`` in a plan."""

    prefix: str
    carrier_id: str
    priority: int = 0
    weight: int = 1

    def __post_init__(self) -> None:
        check_digits("route prefix", self.prefix)
        check_id("carrier", self.carrier_id)
        if self.priority < 0 or self.weight < 0:
            raise ValueError("priority and weight must not be negative")


@dataclass(frozen=True, slots=True)
class QualityFloor:
    """The least quality a carrier needs under ``cost_with_quality_floor`` (0: no bound)."""

    min_asr: float = 0.0
    min_acd_s: int = 0
    min_ner: float = 0.0
    max_pdd_ms: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.min_asr <= 1 and 0 <= self.min_ner <= 1):
            raise ValueError("ASR and NER floors are ratios between 0 and 1")
        if self.min_acd_s < 0 or self.max_pdd_ms < 0:
            raise ValueError("ACD and PDD bounds must not be negative")


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Which carriers may carry which destinations, and how they are ranked.

    The entries whose prefix is the longest one starting the number are the candidates
    (``""`` matches every number); the strategy is the one of the longest prefix in
    ``prefix_strategies``, else ``strategy``.
    """

    plan_id: str
    name: str = ""
    strategy: str = "least_cost"
    entries: tuple[RouteEntry, ...] = ()
    prefix_strategies: tuple[tuple[str, str], ...] = ()
    typical_duration_s: int | None = None
    min_margin_micros: int | None = None
    min_margin_percent: Decimal | None = None
    quality_floor: QualityFloor = field(default_factory=QualityFloor)

    def __post_init__(self) -> None:
        check_id("route plan", self.plan_id)
        for prefix, _ in self.prefix_strategies:
            check_digits("strategy prefix", prefix)
        if self.typical_duration_s is not None and self.typical_duration_s <= 0:
            raise ValueError("typical duration must be positive")
        if self.min_margin_micros is not None and self.min_margin_micros < 0:
            raise ValueError("minimum margin must not be negative")
        if self.min_margin_percent is not None and not 0 <= self.min_margin_percent < 100:
            raise ValueError("minimum margin percent must be in [0, 100)")


class CallerIdAction(enum.Enum):
    """What a caller-ID rule does to the calling number."""

    PASS = "pass"
    """Leave it as it is."""
    REPLACE = "replace"
    """Present a number from a pool (the same caller always gets the same one)."""
    REWRITE = "rewrite"
    """Strip leading digits and add a prefix."""
    WITHHOLD = "withhold"
    """Present no number (anonymous)."""


@dataclass(frozen=True, slots=True)
class CallerIdRule:
    """How the calling number is presented; applied only to callers starting with ``when``."""

    rule_id: str
    action: CallerIdAction = CallerIdAction.PASS
    pool_id: str | None = None
    strip: int = 0
    add: str = ""
    when: str = ""

    def __post_init__(self) -> None:
        check_id("caller-ID rule", self.rule_id)
        check_digits("caller-ID prefix", self.when)
        check_digits("caller-ID addition", self.add)
        if self.strip < 0:
            raise ValueError("a caller-ID rule cannot strip a negative number of digits")
        if (self.action is CallerIdAction.REPLACE) != (self.pool_id is not None):
            raise ValueError("a pool goes with the replace action, and only with it")

    def apply(self, calling: str, pool: tuple[str, ...] = ()) -> str:
        """Return the presented number for ``calling``."""
        if not calling.startswith(self.when):
            return calling
        action = self.action
        if action is CallerIdAction.PASS or (not calling and action is CallerIdAction.REWRITE):
            return calling
        if action is CallerIdAction.WITHHOLD:
            return ""
        if action is CallerIdAction.REWRITE:
            return self.add + calling[self.strip :]
        if not pool:
            return calling
        # A stable choice: the same caller keeps the same presented number (call-backs reach
        # them again), and every worker picks the same without sharing state.
        return pool[zlib.crc32(calling.encode()) % len(pool)]


@dataclass(frozen=True, slots=True)
class CallerIdPool:
    """Numbers that may be presented instead of the caller's own."""

    pool_id: str
    numbers: tuple[str, ...]

    def __post_init__(self) -> None:
        check_id("caller-ID pool", self.pool_id)
        for number in self.numbers:
            if not number.isdigit():
                raise ValueError(f"pool number {number!r} must be digits")


class BindingKind(enum.Enum):
    """What a route plan or caller-ID rule is attached to."""

    ACCOUNT = "account"
    TARIFF_PLAN = "tariff_plan"


@dataclass(frozen=True, slots=True)
class Binding:
    """An account's (or a tariff plan's) route plan and caller-ID rule."""

    kind: BindingKind
    subject_id: str
    route_plan_id: str | None = None
    caller_id_rule: str | None = None


@dataclass(frozen=True, slots=True)
class PortedNumber:
    """A number moved to another network: where calls to it must really go."""

    number: str
    routing_number: str
    """An LRN (the number to rate and route on) or a routing prefix, per settings."""
    carrier_id: str = ""
    """The network now serving the number, as the portability source names it."""
