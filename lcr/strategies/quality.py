"""Quality: the carrier that completes most talk time per attempt first.

The score is ASR x ACD, the answered seconds one attempt is worth; NER and then PDD break
ties, then cost. A carrier without ``min_samples`` attempts in the window is scored with
the configured priors, so a new carrier gets traffic and earns its own figures.
"""

from __future__ import annotations

from typing import ClassVar

from lcr.strategies.base import Candidate, RankContext, Ranked, quality_score


class Quality:
    """Best quality first."""

    name: ClassVar[str] = "quality"
    uses_seed: ClassVar[bool] = False

    def rank(self, candidates: list[Candidate], context: RankContext) -> Ranked:
        """Order by score (high first), NER (high), PDD (low), cost, id."""

        def key(c: Candidate) -> tuple[float, float, float, object, str]:
            figures = c.quality.figures if c.quality is not None and c.quality.enough else None
            ner = figures.ner if figures and figures.ner is not None else 1.0
            pdd = figures.pdd_ms if figures and figures.pdd_ms is not None else 0.0
            return (-quality_score(c, context.quality), -ner, pdd, c.cost_home, c.carrier_id)

        return sorted(candidates, key=key), []
