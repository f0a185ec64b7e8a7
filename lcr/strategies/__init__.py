"""Routing strategies, one module each, found by name in a registry.

A route plan names its strategy (and may name another per prefix); ``get`` returns it.
A new strategy is a module with a class that has ``name``, ``uses_seed`` and ``rank`` (see
``base``), registered below.
"""

from __future__ import annotations

from lcr.strategies.base import Candidate, RankContext, Ranked, Strategy
from lcr.strategies.cost_with_quality_floor import CostWithQualityFloor
from lcr.strategies.least_cost import LeastCost
from lcr.strategies.priority import Priority
from lcr.strategies.quality import Quality
from lcr.strategies.weighted import Weighted

REGISTRY: dict[str, Strategy] = {}


class UnknownStrategy(KeyError):
    """A route plan names a strategy that does not exist."""


def register(strategy: Strategy) -> None:
    """Make a strategy available by its name."""
    if strategy.name in REGISTRY:
        raise ValueError(f"strategy {strategy.name!r} is already registered")
    REGISTRY[strategy.name] = strategy


def get(name: str) -> Strategy:
    """The strategy called ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownStrategy(f"unknown routing strategy {name!r} (known: {known})") from None


def names() -> list[str]:
    """Every registered strategy's name."""
    return sorted(REGISTRY)


for _strategy in (LeastCost(), Quality(), Priority(), Weighted(), CostWithQualityFloor()):
    register(_strategy)

__all__ = [
    "Candidate",
    "RankContext",
    "Ranked",
    "Strategy",
    "UnknownStrategy",
    "get",
    "names",
    "register",
]
