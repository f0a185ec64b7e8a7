"""Least cost among carriers that meet the plan's quality floor.

A carrier with enough samples and a figure on the wrong side of the floor (ASR, ACD, NER,
PDD) is left out with ``below_quality_floor``; one without enough samples is kept (it
cannot be judged yet). The rest are ranked exactly like ``least_cost``.
"""

from __future__ import annotations

from typing import ClassVar

from lcr.decision import SkipReason
from lcr.model import QualityFloor
from lcr.quality import Figures
from lcr.strategies.base import Candidate, RankContext, Ranked
from lcr.strategies.least_cost import LeastCost


def floor_failures(figures: Figures, floor: QualityFloor) -> list[str]:
    """The bounds of ``floor`` these figures miss."""
    failed: list[str] = []
    if floor.min_asr and figures.asr is not None and figures.asr < floor.min_asr:
        failed.append(f"ASR {figures.asr:.2f} < {floor.min_asr}")
    if floor.min_acd_s and figures.acd_s is not None and figures.acd_s < floor.min_acd_s:
        failed.append(f"ACD {figures.acd_s:.0f}s < {floor.min_acd_s}s")
    if floor.min_ner and figures.ner is not None and figures.ner < floor.min_ner:
        failed.append(f"NER {figures.ner:.2f} < {floor.min_ner}")
    if floor.max_pdd_ms and figures.pdd_ms is not None and figures.pdd_ms > floor.max_pdd_ms:
        failed.append(f"PDD {figures.pdd_ms:.0f}ms > {floor.max_pdd_ms}ms")
    return failed


class CostWithQualityFloor:
    """Cheapest first among those good enough."""

    name: ClassVar[str] = "cost_with_quality_floor"
    uses_seed: ClassVar[bool] = False

    def rank(self, candidates: list[Candidate], context: RankContext) -> Ranked:
        """Leave out carriers below the floor, then rank by cost."""
        kept: list[Candidate] = []
        left: list[tuple[Candidate, SkipReason, str]] = []
        for candidate in candidates:
            entry = candidate.quality
            failed = (
                floor_failures(entry.figures, context.floor)
                if entry is not None and entry.enough
                else []
            )
            if failed:
                left.append((candidate, SkipReason.BELOW_QUALITY_FLOOR, ", ".join(failed)))
            else:
                kept.append(candidate)
        ranked, more = LeastCost().rank(kept, context)
        return ranked, left + more
