"""Quality statistics of carriers per destination: a sliding window, figures, demotion.

Rules:

- Every ended call attempt on a carrier adds to the bucket of the minute it ended in, per
  (carrier, destination group): attempts, answered, user-side failures, answered seconds,
  post-dial delay. Figures are sums over the buckets of the last ``window_s`` seconds.
- ASR = answered / attempts. ACD = answered seconds / answered. NER (ITU-T E.411) =
  (answered + failures caused by the called user: busy, no answer, rejected) / attempts, so
  it counts only what the network failed. PDD = average of the delays reported.
- Figures judge a carrier only once it has ``min_samples`` attempts in the window. Below a
  threshold (ASR, NER, ACD, PDD) it is demoted: skipped for ``cooldown_s``; after that one
  call (the probe) is let through. A probe that is answered or fails on the user's side
  lifts the demotion and starts the figures afresh; a probe the network fails demotes the
  carrier for another cool-down.
- The window lives in the hot store, shared by every worker; workers read it as a snapshot
  every ``refresh_interval_s`` (never per call) and decide demotions from that snapshot.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lcr.settings import QualitySettings


class CallResult(enum.Enum):
    """How an attempt ended, as far as the carrier's quality is concerned."""

    ANSWERED = "answered"
    USER_FAILURE = "user_failure"
    """Busy, no answer, rejected, cancelled by the caller: not the network's fault."""
    NETWORK_FAILURE = "network_failure"


# Q.850 causes that the called user, not the network, is responsible for (ITU-T E.411 NER).
_USER_CAUSES = frozenset({1, 16, 17, 18, 19, 21, 22, 31})
# SIP final responses on the user's side: busy, no answer, declined, moved, cancelled.
_USER_SIP = frozenset({404, 410, 480, 484, 486, 487, 600, 603, 604})


def classify_q850(cause: int, answered: bool = False) -> CallResult:
    """Classify an attempt by its Q.850 release cause."""
    if answered:
        return CallResult.ANSWERED
    return CallResult.USER_FAILURE if cause in _USER_CAUSES else CallResult.NETWORK_FAILURE


def classify_sip(status: int, answered: bool = False) -> CallResult:
    """Classify an attempt by its final SIP status."""
    if answered or 200 <= status < 300:
        return CallResult.ANSWERED
    return CallResult.USER_FAILURE if status in _USER_SIP else CallResult.NETWORK_FAILURE


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """One ended attempt on a carrier, as accounting reported it."""

    carrier_id: str
    group: str
    result: CallResult
    ended_at: float
    """UTC epoch seconds."""
    duration_s: int = 0
    pdd_ms: int | None = None
    probe: bool = False
    """The attempt was the probe of a demoted carrier (``Route.probe``)."""
    call_id: str = ""
    """Frees the call's capacity slot when given."""

    @property
    def counts(self) -> Counts:
        """This outcome as bucket increments."""
        answered = self.result is CallResult.ANSWERED
        return Counts(
            attempts=1,
            answered=int(answered),
            user_failures=int(self.result is CallResult.USER_FAILURE),
            duration_s=self.duration_s if answered else 0,
            pdd_ms=self.pdd_ms or 0,
            pdd_samples=int(self.pdd_ms is not None),
        )

    @property
    def probe_passed(self) -> bool:
        """Whether a probe with this outcome lifts the demotion."""
        return self.result is not CallResult.NETWORK_FAILURE


@dataclass(slots=True)
class Counts:
    """Additive counters of one bucket (or of a whole window)."""

    attempts: int = 0
    answered: int = 0
    user_failures: int = 0
    duration_s: int = 0
    pdd_ms: int = 0
    pdd_samples: int = 0

    FIELDS = ("attempts", "answered", "user_failures", "duration_s", "pdd_ms", "pdd_samples")

    def add(self, other: Counts) -> None:
        """Add another bucket's counters."""
        self.attempts += other.attempts
        self.answered += other.answered
        self.user_failures += other.user_failures
        self.duration_s += other.duration_s
        self.pdd_ms += other.pdd_ms
        self.pdd_samples += other.pdd_samples

    def as_tuple(self) -> tuple[int, ...]:
        """The counters in ``FIELDS`` order (the hot store's layout)."""
        return (
            self.attempts,
            self.answered,
            self.user_failures,
            self.duration_s,
            self.pdd_ms,
            self.pdd_samples,
        )


@dataclass(frozen=True, slots=True)
class Figures:
    """Quality figures of one carrier and destination over the window."""

    attempts: int
    asr: float | None
    acd_s: float | None
    ner: float | None
    pdd_ms: float | None

    @classmethod
    def of(cls, counts: Counts) -> Figures:
        """Compute the ratios (None where there is nothing to divide)."""
        attempts = counts.attempts
        return cls(
            attempts=attempts,
            asr=counts.answered / attempts if attempts else None,
            acd_s=counts.duration_s / counts.answered if counts.answered else None,
            ner=(counts.answered + counts.user_failures) / attempts if attempts else None,
            pdd_ms=counts.pdd_ms / counts.pdd_samples if counts.pdd_samples else None,
        )

    def failed_thresholds(self, settings: QualitySettings) -> list[str]:
        """The thresholds these figures are on the wrong side of (empty: fine)."""
        failed: list[str] = []
        if self.asr is not None and settings.min_asr and self.asr < settings.min_asr:
            failed.append(f"ASR {self.asr:.2f} < {settings.min_asr}")
        if self.ner is not None and settings.min_ner and self.ner < settings.min_ner:
            failed.append(f"NER {self.ner:.2f} < {settings.min_ner}")
        if self.acd_s is not None and settings.min_acd_s and self.acd_s < settings.min_acd_s:
            failed.append(f"ACD {self.acd_s:.0f}s < {settings.min_acd_s}s")
        if self.pdd_ms is not None and settings.max_pdd_ms and self.pdd_ms > settings.max_pdd_ms:
            failed.append(f"PDD {self.pdd_ms:.0f}ms > {settings.max_pdd_ms}ms")
        return failed


class QualityState(enum.Enum):
    """Whether a carrier may be used for a destination."""

    OK = "ok"
    DEMOTED = "demoted"
    PROBE = "probe"
    """The cool-down is over: one call may try it."""


@dataclass(frozen=True, slots=True)
class QualityEntry:
    """What routing knows about one carrier and destination group."""

    figures: Figures
    state: QualityState = QualityState.OK
    demoted_until: float | None = None
    enough: bool = False
    """The figures rest on at least ``min_samples`` attempts."""


Pair = tuple[str, str]
"""(carrier id, destination group)."""


@dataclass(frozen=True, slots=True)
class QualitySnapshot:
    """Every carrier and destination's figures and state at one moment."""

    taken_at: float = 0.0
    entries: Mapping[Pair, QualityEntry] = field(default_factory=dict)

    def get(self, carrier_id: str, group: str) -> QualityEntry | None:
        """The entry of a carrier and destination group, if it has one."""
        return self.entries.get((carrier_id, group))


@dataclass(frozen=True, slots=True)
class WindowData:
    """The raw window as a hot store returns it."""

    buckets: Mapping[int, Mapping[Pair, Counts]]
    """Bucket number (``int(t // bucket_s)``) -> counters per pair."""
    demoted: Mapping[Pair, float]
    """Pair -> end of its cool-down (UTC epoch seconds)."""
    lifted: Mapping[Pair, float]
    """Pair -> when its last demotion was lifted (older outcomes no longer count)."""


def bucket_of(at: float, settings: QualitySettings) -> int:
    """The bucket number of a moment."""
    return int(at // settings.bucket_s)


def window_buckets(now: float, settings: QualitySettings) -> range:
    """The bucket numbers of the window ending at ``now``."""
    last = bucket_of(now, settings)
    return range(last - settings.window_s // settings.bucket_s + 1, last + 1)


def evaluate(
    data: WindowData, settings: QualitySettings, now: float
) -> tuple[QualitySnapshot, list[tuple[Pair, str]]]:
    """Build the snapshot of the window at ``now`` and find the pairs to demote.

    Returns the snapshot (with those pairs already demoted) and the newly demoted pairs with
    the thresholds they failed, for the caller to record in the hot store and the log.
    """
    window = window_buckets(now, settings)
    totals: dict[Pair, Counts] = {}
    for number in window:
        for pair, counts in data.buckets.get(number, {}).items():
            lifted = data.lifted.get(pair)
            if lifted is not None and number <= bucket_of(lifted, settings):
                continue
            total = totals.get(pair)
            if total is None:
                total = totals[pair] = Counts()
            total.add(counts)
    entries: dict[Pair, QualityEntry] = {}
    demote: list[tuple[Pair, str]] = []
    for pair in set(totals) | set(data.demoted):
        figures = Figures.of(totals.get(pair, Counts()))
        enough = figures.attempts >= settings.min_samples
        until = data.demoted.get(pair)
        if until is not None:
            state = QualityState.DEMOTED if now < until else QualityState.PROBE
            entries[pair] = QualityEntry(figures, state, until, enough)
            continue
        failed = figures.failed_thresholds(settings) if enough else []
        if failed:
            until = now + settings.cooldown_s
            entries[pair] = QualityEntry(figures, QualityState.DEMOTED, until, enough)
            demote.append((pair, ", ".join(failed)))
        else:
            entries[pair] = QualityEntry(figures, QualityState.OK, None, enough)
    return QualitySnapshot(now, entries), demote


class QualityBoard:
    """The current snapshot, swapped whole by the refresh task and read by the router."""

    __slots__ = ("snapshot",)

    def __init__(self, snapshot: QualitySnapshot | None = None) -> None:
        self.snapshot = snapshot or QualitySnapshot()


def merge_counts(items: Iterable[tuple[Pair, Counts]]) -> dict[Pair, Counts]:
    """Sum counters per pair."""
    out: dict[Pair, Counts] = {}
    for pair, counts in items:
        total = out.get(pair)
        if total is None:
            total = out[pair] = Counts()
        total.add(counts)
    return out
