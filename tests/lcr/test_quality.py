"""Quality figures from the window, demotion below thresholds, probes after the cool-down."""

from __future__ import annotations

import pytest

from lcr.quality import (
    CallOutcome,
    CallResult,
    Counts,
    Figures,
    QualityState,
    WindowData,
    classify_q850,
    classify_sip,
    evaluate,
)
from lcr.settings import QualitySettings

NOW = 1_767_225_600.0
SETTINGS = QualitySettings(min_samples=10, min_asr=0.3, min_ner=0.6, cooldown_s=300)


@pytest.mark.parametrize(
    ("classify", "code", "answered", "expected"),
    [
        pytest.param(classify_sip, 200, False, CallResult.ANSWERED, id="sip-200"),
        pytest.param(classify_sip, 486, False, CallResult.USER_FAILURE, id="sip-busy"),
        pytest.param(classify_sip, 487, False, CallResult.USER_FAILURE, id="sip-cancelled"),
        pytest.param(classify_sip, 503, False, CallResult.NETWORK_FAILURE, id="sip-503"),
        pytest.param(classify_sip, 408, False, CallResult.NETWORK_FAILURE, id="sip-timeout"),
        pytest.param(classify_q850, 16, True, CallResult.ANSWERED, id="q850-answered"),
        pytest.param(classify_q850, 17, False, CallResult.USER_FAILURE, id="q850-busy"),
        pytest.param(classify_q850, 34, False, CallResult.NETWORK_FAILURE, id="q850-no-circuit"),
        pytest.param(classify_q850, 38, False, CallResult.NETWORK_FAILURE, id="q850-network-out"),
    ],
)
def test_classification(classify, code: int, answered: bool, expected: CallResult) -> None:  # type: ignore[no-untyped-def]
    assert classify(code, answered) is expected


def window(
    counts: Counts, *, demoted: float | None = None, lifted: float | None = None, age_s: float = 0
) -> WindowData:
    bucket = int((NOW - age_s) // 60)
    pair = ("c", "44")
    return WindowData(
        {bucket: {pair: counts}},
        {pair: demoted} if demoted is not None else {},
        {pair: lifted} if lifted is not None else {},
    )


def test_figures() -> None:
    figures = Figures.of(
        Counts(attempts=10, answered=4, user_failures=3, duration_s=400, pdd_ms=3000, pdd_samples=6)
    )
    assert (figures.asr, figures.acd_s, figures.ner, figures.pdd_ms) == (0.4, 100.0, 0.7, 500.0)
    assert Figures.of(Counts()).asr is None


@pytest.mark.parametrize(
    ("counts", "state", "demoted"),
    [
        pytest.param(
            Counts(attempts=10, answered=5, user_failures=2), QualityState.OK, False, id="good"
        ),
        pytest.param(
            Counts(attempts=10, answered=2, user_failures=6),
            QualityState.DEMOTED,
            True,
            id="low-asr",
        ),
        pytest.param(
            Counts(attempts=10, answered=4, user_failures=1),
            QualityState.DEMOTED,
            True,
            id="low-ner",
        ),
        pytest.param(Counts(attempts=9, answered=0), QualityState.OK, False, id="too-few-samples"),
    ],
)
def test_demotion_needs_enough_samples_below_a_threshold(
    counts: Counts, state: QualityState, demoted: bool
) -> None:
    snapshot, demote = evaluate(window(counts), SETTINGS, NOW)
    entry = snapshot.get("c", "44")
    assert entry is not None and entry.state is state
    assert bool(demote) is demoted
    if demoted:
        assert entry.demoted_until == NOW + 300


def test_outcomes_leave_the_window_and_demotions_end_in_a_probe() -> None:
    bad = Counts(attempts=20)
    old, _ = evaluate(window(bad, age_s=901), SETTINGS, NOW)
    assert old.get("c", "44") is None
    during, demote = evaluate(window(bad, demoted=NOW + 10), SETTINGS, NOW)
    assert during.get("c", "44").state is QualityState.DEMOTED and demote == []  # type: ignore[union-attr]
    after, _ = evaluate(window(bad, demoted=NOW - 1), SETTINGS, NOW)
    assert after.get("c", "44").state is QualityState.PROBE  # type: ignore[union-attr]


def test_after_a_lift_only_newer_outcomes_count() -> None:
    snapshot, demote = evaluate(window(Counts(attempts=20), lifted=NOW), SETTINGS, NOW)
    entry = snapshot.get("c", "44")
    assert entry is None and demote == []


def test_outcome_counts() -> None:
    answered = CallOutcome("c", "44", CallResult.ANSWERED, NOW, duration_s=30, pdd_ms=800)
    assert answered.counts.as_tuple() == (1, 1, 0, 30, 800, 1)
    failed = CallOutcome("c", "44", CallResult.NETWORK_FAILURE, NOW, duration_s=0)
    assert failed.counts.as_tuple() == (1, 0, 0, 0, 0, 0) and not failed.probe_passed
