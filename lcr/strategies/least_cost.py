"""Least cost: cheapest typical call first (connection fee, first block and increments in)."""

from __future__ import annotations

from typing import ClassVar

from lcr.strategies.base import Candidate, RankContext, Ranked


class LeastCost:
    """Order by the full cost of a typical call in the operator's currency."""

    name: ClassVar[str] = "least_cost"

    def rank(self, candidates: list[Candidate], context: RankContext) -> Ranked:
        """Cheapest first; equal costs by priority, then id."""
        # (cost, (entry priority, carrier priority, id)) orders as the flat tuple would.
        return sorted(candidates, key=lambda c: (c.cost_home, c.preference)), []
