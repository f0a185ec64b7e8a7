"""Weighted load balancing: calls shared between carriers in proportion to their weights.

Weighted sampling without replacement (Efraimidis-Spirakis): each candidate draws
``u ** (1 / weight)`` from a per-call hash and the largest draws go first, so over many calls
a carrier of weight 3 is first three times as often as one of weight 1, and the same call
always gets the same order (a retransmission is routed the same way, on any worker).
Weights are the route entry's times the carrier's; weight 0 is only used as a last resort.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, TypeVar

from lcr.strategies.base import Candidate, RankContext, Ranked, unit_hash

T = TypeVar("T")


def weighted_order(
    items: Sequence[T], weight: Callable[[T], int], key: Callable[[T], str], seed: int
) -> list[T]:
    """Order ``items`` by weighted random draws from ``seed``; zero weights last."""
    drawn: list[tuple[int, float, str, T]] = []
    for item in items:
        w = weight(item)
        name = key(item)
        if w <= 0:
            drawn.append((1, 0.0, name, item))
        else:
            drawn.append((0, -(unit_hash(seed, name) ** (1.0 / w)), name, item))
    drawn.sort(key=lambda d: (d[0], d[1], d[2]))
    return [d[3] for d in drawn]


class Weighted:
    """Share calls by weight."""

    name: ClassVar[str] = "weighted"
    uses_seed: ClassVar[bool] = True

    def rank(self, candidates: list[Candidate], context: RankContext) -> Ranked:
        """Order by weighted draws of this call's seed."""
        return (
            weighted_order(
                candidates,
                lambda c: c.entry.weight * c.carrier.weight,
                lambda c: c.carrier.carrier_id,
                context.seed,
            ),
            [],
        )
