"""Priority: the operator's order (route entry priority, then carrier priority), cost last."""

from __future__ import annotations

from typing import ClassVar

from lcr.strategies.base import Candidate, RankContext, Ranked


class Priority:
    """Lowest priority number first; equal priorities cheapest first."""

    name: ClassVar[str] = "priority"
    uses_seed: ClassVar[bool] = False

    def rank(self, candidates: list[Candidate], context: RankContext) -> Ranked:
        """Order by entry priority, carrier priority, cost, id."""
        return (
            sorted(
                candidates,
                key=lambda c: (
                    c.entry.priority,
                    c.carrier.priority,
                    c.cost_home,
                    c.carrier.carrier_id,
                ),
            ),
            [],
        )
