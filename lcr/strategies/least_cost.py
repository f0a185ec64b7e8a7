"""Least cost: cheapest typical call first (connection fee, first block and increments in)."""

from __future__ import annotations

from operator import attrgetter
from typing import ClassVar

from lcr.strategies.base import Candidate, RankContext, Ranked


class LeastCost:
    """Order by the full cost of a typical call in the operator's currency."""

    name: ClassVar[str] = "least_cost"
    uses_seed: ClassVar[bool] = False

    def rank(self, candidates: list[Candidate], context: RankContext) -> Ranked:
        """Cheapest first; equal costs by priority, then id."""
        return sorted(candidates, key=_KEY), []


_KEY = attrgetter("cost_home", "preference")
"""(cost, (entry priority, carrier priority, id)): orders as the flat tuple would."""
