"""What a routing strategy works on: candidates already priced and checked, and its context.

A strategy orders the candidates a route plan allows for a destination; it may leave some
out (with a reason). It never prices, checks margins or reads stores: the router has done
that, so every strategy is a pure function of its inputs, and a table of cases tests it.
"""

from __future__ import annotations

import zlib
from fractions import Fraction
from typing import ClassVar, NamedTuple, Protocol

from lcr.decision import SkipReason
from lcr.model import Carrier, QualityFloor, RouteEntry
from lcr.quality import QualityEntry
from lcr.settings import QualitySettings


class Candidate:
    """A carrier that may carry the call, with its cost and quality."""

    __slots__ = ("carrier", "cost_home", "entry", "preference", "quality")

    def __init__(
        self,
        carrier: Carrier,
        entry: RouteEntry,
        cost_home: int | Fraction,
        quality: QualityEntry | None,
    ) -> None:
        self.carrier = carrier
        self.entry = entry
        self.cost_home = cost_home
        """Cost of a typical call in the operator's currency (exact) — comparable."""
        self.quality = quality
        self.preference = (entry.priority, carrier.priority, carrier.carrier_id)
        """The tie-break every strategy ends with: entry priority, carrier priority, id."""

    @property
    def carrier_id(self) -> str:
        """The carrier's id."""
        return self.carrier.carrier_id

    def __repr__(self) -> str:
        return f"Candidate({self.carrier.carrier_id}, cost={self.cost_home})"


class RankContext(NamedTuple):
    """What a strategy may look at besides the candidates."""

    seed: int
    """Per-call randomness (a hash of the call id): the same call ranks the same way."""
    floor: QualityFloor
    quality: QualitySettings


Ranked = tuple[list[Candidate], list[tuple[Candidate, SkipReason, str]]]
"""The candidates in order, and those left out with a reason and detail."""


class Strategy(Protocol):
    """Orders candidates; one module per strategy under ``lcr.strategies``."""

    name: ClassVar[str]
    uses_seed: ClassVar[bool]
    """Whether the order depends on the call's seed; if not, the same candidates in the same
    context always rank the same, and the router may keep the order."""

    def rank(self, candidates: list[Candidate], context: RankContext) -> Ranked:
        """Return the candidates in the order to try them, and those left out."""


def preference(candidate: Candidate) -> tuple[int, int, str]:
    """The tie-break every strategy ends with: entry priority, carrier priority, id."""
    return candidate.preference


def quality_score(candidate: Candidate, settings: QualitySettings) -> float:
    """Expected answered seconds per attempt (ASR x ACD); priors stand in without samples."""
    entry = candidate.quality
    if entry is None or not entry.enough:
        return settings.prior_asr * settings.prior_acd_s
    figures = entry.figures
    return (figures.asr or 0.0) * (figures.acd_s or 0.0)


def unit_hash(seed: int, key: str) -> float:
    """A number in (0, 1] drawn from ``seed`` and ``key``: stable, and spread evenly."""
    value = zlib.crc32(key.encode(), seed & 0xFFFFFFFF)
    # Mix the bits (crc32 of short keys clusters) with a multiplicative hash.
    value = (value * 2654435761) & 0xFFFFFFFF
    return (value + 1) / 2**32
