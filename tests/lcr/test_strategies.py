"""Every strategy on tables of candidates: the order it gives and what it leaves out."""

from __future__ import annotations

from collections import Counter

import pytest

from lcr import strategies
from lcr.decision import SkipReason
from lcr.model import Carrier, QualityFloor, RouteEntry
from lcr.quality import Figures, QualityEntry
from lcr.settings import QualitySettings
from lcr.strategies import Candidate, RankContext


def cand(
    carrier_id: str,
    cost: int,
    *,
    priority: int = 0,
    entry_priority: int = 0,
    weight: int = 1,
    asr: float | None = None,
    acd: float | None = None,
    ner: float | None = None,
    pdd: float | None = None,
    samples: int = 100,
) -> Candidate:
    quality = None
    if asr is not None:
        quality = QualityEntry(Figures(samples, asr, acd, ner, pdd), enough=samples >= 20)
    return Candidate(
        Carrier(carrier_id, priority=priority),
        RouteEntry("44", carrier_id, priority=entry_priority, weight=weight),
        cost,
        quality,
    )


CTX = RankContext(seed=7, floor=QualityFloor(), quality=QualitySettings())


def order(name: str, candidates: list[Candidate], context: RankContext = CTX) -> list[str]:
    ranked, left = strategies.get(name).rank(candidates, context)
    return [c.carrier_id for c in ranked] + [f"-{c.carrier_id}:{r.value}" for c, r, _ in left]


@pytest.mark.parametrize(
    ("name", "candidates", "expected"),
    [
        pytest.param(
            "least_cost",
            [cand("a", 300), cand("b", 100), cand("c", 200)],
            ["b", "c", "a"],
            id="least-cost-by-cost",
        ),
        pytest.param(
            "least_cost",
            [cand("a", 100, priority=2), cand("b", 100, priority=1), cand("c", 100, priority=1)],
            ["b", "c", "a"],
            id="least-cost-ties-by-priority-then-id",
        ),
        pytest.param(
            "priority",
            [
                cand("a", 100, entry_priority=2),
                cand("b", 300, entry_priority=1),
                cand("c", 50, entry_priority=3),
            ],
            ["b", "a", "c"],
            id="priority-entry-first",
        ),
        pytest.param(
            "priority",
            [cand("a", 300, priority=1), cand("b", 200, priority=1), cand("c", 900, priority=0)],
            ["c", "b", "a"],
            id="priority-carrier-then-cost",
        ),
        pytest.param(
            "quality",
            [
                cand("a", 100, asr=0.5, acd=100),
                cand("b", 300, asr=0.6, acd=120),
                cand("c", 50, asr=0.2, acd=300),
            ],
            ["b", "c", "a"],
            id="quality-by-asr-times-acd",
        ),
        pytest.param(
            "quality",
            [
                cand("a", 100, asr=0.5, acd=100, ner=0.9),
                cand("b", 300, asr=0.5, acd=100, ner=0.99),
            ],
            ["b", "a"],
            id="quality-ties-by-ner",
        ),
        pytest.param(
            "quality",
            [
                cand("a", 100, asr=0.5, acd=100, ner=0.9, pdd=900),
                cand("b", 300, asr=0.5, acd=100, ner=0.9, pdd=300),
            ],
            ["b", "a"],
            id="quality-then-pdd",
        ),
        pytest.param(
            "quality",
            [cand("new", 100, asr=0.0, acd=0, samples=3), cand("bad", 100, asr=0.1, acd=60)],
            ["new", "bad"],
            id="quality-prior-for-few-samples",
        ),
        pytest.param(
            "cost_with_quality_floor",
            [
                cand("a", 100, asr=0.1, acd=60),
                cand("b", 200, asr=0.5, acd=60),
                cand("c", 300, asr=0.6, acd=60),
            ],
            ["b", "c"],
            id="floor-drops-cheap-bad",
        ),
        pytest.param(
            "cost_with_quality_floor",
            [cand("a", 100, asr=0.1, acd=60, samples=5), cand("b", 200, asr=0.5, acd=60)],
            ["a", "b"],
            id="floor-keeps-unjudged",
        ),
        pytest.param(
            "cost_with_quality_floor",
            [cand("a", 100, asr=0.1), cand("b", 200, asr=0.1)],
            [],
            id="floor-drops-all",
        ),
    ],
)
def test_strategy_orders(name: str, candidates: list[Candidate], expected: list[str]) -> None:
    context = CTX
    if name == "cost_with_quality_floor":
        context = RankContext(7, QualityFloor(min_asr=0.3), QualitySettings())
    got = order(name, candidates, context)
    kept = [g for g in got if not g.startswith("-")]
    assert kept == expected
    dropped = {g[1:].split(":")[0] for g in got if g.startswith("-")}
    assert dropped == {c.carrier_id for c in candidates} - set(expected)
    assert all(g.endswith(SkipReason.BELOW_QUALITY_FLOOR.value) for g in got if g.startswith("-"))


@pytest.mark.parametrize(
    ("floor", "figures", "kept"),
    [
        pytest.param(
            QualityFloor(min_acd_s=60), Figures(50, 0.5, 30.0, 0.9, 100.0), False, id="acd"
        ),
        pytest.param(
            QualityFloor(min_ner=0.8), Figures(50, 0.5, 30.0, 0.7, 100.0), False, id="ner"
        ),
        pytest.param(
            QualityFloor(max_pdd_ms=500), Figures(50, 0.5, 30.0, 0.9, 900.0), False, id="pdd"
        ),
        pytest.param(
            QualityFloor(min_asr=0.4, max_pdd_ms=500),
            Figures(50, 0.5, 30.0, 0.9, 100.0),
            True,
            id="meets",
        ),
    ],
)
def test_the_quality_floor_on_each_figure(
    floor: QualityFloor, figures: Figures, kept: bool
) -> None:
    candidate = Candidate(
        Carrier("a"), RouteEntry("", "a"), 100, QualityEntry(figures, enough=True)
    )
    ranked, left = strategies.get("cost_with_quality_floor").rank(
        [candidate], RankContext(0, floor, QualitySettings())
    )
    assert bool(ranked) is kept and bool(left) is not kept


def test_weighted_shares_calls_by_weight_and_is_stable_per_call() -> None:
    candidates = [cand("a", 100, weight=1), cand("b", 100, weight=3), cand("zero", 1, weight=0)]
    firsts: Counter[str] = Counter()
    for seed in range(8000):
        ranked, _ = strategies.get("weighted").rank(
            candidates, RankContext(seed, QualityFloor(), QualitySettings())
        )
        firsts[ranked[0].carrier_id] += 1
        assert ranked[-1].carrier_id == "zero"
    share = firsts["b"] / (firsts["a"] + firsts["b"])
    assert 0.72 < share < 0.78
    again = [c.carrier_id for c in strategies.get("weighted").rank(candidates, CTX)[0]]
    assert again == [c.carrier_id for c in strategies.get("weighted").rank(candidates, CTX)[0]]


def test_the_registry_knows_every_strategy_and_refuses_unknown_ones() -> None:
    assert strategies.names() == [
        "cost_with_quality_floor",
        "least_cost",
        "priority",
        "quality",
        "weighted",
    ]
    with pytest.raises(strategies.UnknownStrategy, match="least_cost"):
        strategies.get("cheapest")
    with pytest.raises(ValueError, match="already registered"):
        strategies.register(strategies.get("least_cost"))
