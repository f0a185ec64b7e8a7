"""Prometheus metrics of the daemon, one registry per process.

Labels are small closed sets (protocol, command, result, reason): never a session, account or
number. With several workers each process exports its own series under ``worker``; the main
process merges them for ``/metrics`` (see ``ocsd.workers``).

The per-request series (requests, their latency, store latency) are tallied in plain dicts on
the call path and folded into the prometheus_client metrics when the registry is read, when
``/metrics`` is served, and at most ``FLUSH_INTERVAL_S`` after the first unflushed request:
a labelled ``inc``/``observe`` takes a lock per value (a file write per value with several
workers), which cost several microseconds per request.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

LATENCY_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

FLUSH_INTERVAL_S = 1.0
"""The longest a tallied request waits before it shows in the exported metrics."""


class _Flusher:
    """Registered first in the registry: folds the tallies in before any metric is read."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        self._metrics.flush()
        return []


class Metrics:
    """Every metric the daemon exports."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.flush_interval_s = flush_interval_s
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        # Requests answered and latency observations not yet in the prometheus metrics.
        self._answers: dict[tuple[str, str, str], int] = {}
        self._latencies: dict[tuple[Any, ...], list[float]] = {}
        self._flush_timer: asyncio.TimerHandle | None = None
        r.register(_Flusher(self))
        self.requests = Counter(
            "ocsd_requests",
            "Requests answered, by protocol, command and result.",
            ("protocol", "command", "result"),
            registry=r,
        )
        self.latency = Histogram(
            "ocsd_request_seconds",
            "Time from a request's arrival to its answer.",
            ("protocol", "command"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.drops = Counter(
            "ocsd_drops",
            "Messages dropped without an answer, by protocol and reason.",
            ("protocol", "reason"),
            registry=r,
        )
        self.denials = Counter(
            "ocsd_denials",
            "Requests refused, by protocol and reason.",
            ("protocol", "reason"),
            registry=r,
        )
        self.store_latency = Histogram(
            "ocsd_store_seconds",
            "Balance store call latency, by operation.",
            ("operation",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "ocsd_store_errors",
            "Balance store calls that failed.",
            ("operation",),
            registry=r,
        )
        # With several workers each writes its own value: open sessions and peers add up,
        # the queue (one for all) is what the latest reader saw.
        self.open_sessions = Gauge(
            "ocsd_open_sessions",
            "Charging sessions the workers hold in memory.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.reservations = Gauge(
            "ocsd_reservations",
            "Open sessions holding money in the balance store (every worker's and node's).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.reaped = Counter(
            "ocsd_sessions_reaped",
            "Silent sessions ended by ocsd.",
            registry=r,
        )
        self.queue_depth = Gauge(
            "ocsd_record_queue_depth",
            "CDR and ledger records waiting to be stored.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.queue_alarm = Gauge(
            "ocsd_record_queue_alarm",
            "1 while the record queue is above the writer's alarm depth.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.records_written = Counter(
            "ocsd_records_written",
            "Records stored in the records database, by kind.",
            ("kind",),
            registry=r,
        )
        self.peers = Gauge(
            "ocsd_peers",
            "Protocol peers by state.",
            ("protocol", "state"),
            registry=r,
            multiprocess_mode="livesum",
        )
        self.fraud = {
            "ocsd_fraud_decisions_total": Counter(
                "ocsd_fraud_decisions",
                "Fraud rules tripped, by rule and action.",
                ("rule", "action"),
                registry=r,
            ),
            "ocsd_fraud_checks_total": Counter(
                "ocsd_fraud_checks",
                "Fraud verdicts, by stage and outcome.",
                ("stage", "outcome"),
                registry=r,
            ),
            "ocsd_fraud_counter_errors_total": Counter(
                "ocsd_fraud_counter_errors",
                "Fraud counter store failures.",
                ("operation",),
                registry=r,
            ),
            "ocsd_fraud_actions_total": Counter(
                "ocsd_fraud_actions",
                "Fraud actions, by action and result.",
                ("action", "result"),
                registry=r,
            ),
            "ocsd_fraud_dropped_total": Counter(
                "ocsd_fraud_dropped",
                "Fraud work dropped on a full queue.",
                ("queue",),
                registry=r,
            ),
            "ocsd_fraud_webhook_total": Counter(
                "ocsd_fraud_webhook",
                "Fraud webhook deliveries, by result.",
                ("result",),
                registry=r,
            ),
            "ocsd_fraud_audit_errors_total": Counter(
                "ocsd_fraud_audit_errors",
                "Fraud audit entries not written.",
                registry=r,
            ),
        }
        self._seen: dict[tuple[object, ...], int] = {}
        self.in_flight = Gauge(
            "ocsd_in_flight",
            "Requests being processed.",
            ("protocol",),
            registry=r,
        )
        self._children: dict[tuple[object, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: ``labels()`` costs microseconds per call."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def _add(self, key: tuple[object, ...], value: int, metric: Any) -> None:
        delta = value - self._seen.get(key, 0)
        if delta > 0:
            metric.inc(delta)
        self._seen[key] = value

    def sync_fraud(self, samples: Iterable[tuple[str, dict[str, str], int]]) -> None:
        """Bring the fraud controls' in-process counters into the exported ones."""
        for name, labels, value in samples:
            metric = self.fraud.get(name)
            if metric is None:
                continue
            target = metric.labels(**labels) if labels else metric
            self._add((name, *sorted(labels.items())), value, target)

    def sync_writer(self, stats: Mapping[str, Any]) -> None:
        """Bring the CDR writer's counters and queue depth into the exported ones."""
        for kind in ("cdrs", "ledger", "duplicates", "problems"):
            value = stats.get(kind)
            if isinstance(value, int):
                self._add(("writer", kind), value, self.child(self.records_written, kind))
        depth = stats.get("queue_depth")
        if isinstance(depth, int):
            self.queue_depth.set(depth)
        alarming = stats.get("alarming")
        if isinstance(alarming, bool):
            self.queue_alarm.set(int(alarming))

    def answered(self, protocol: str, command: str, result: str, seconds: float) -> None:
        """Count one answered request and its latency."""
        answers = self._answers
        key = (protocol, command, result)
        answers[key] = answers.get(key, 0) + 1
        self._observe(self.latency, seconds, protocol, command)

    def observe_store(self, operation: str, seconds: float) -> None:
        """Record one balance store call's latency."""
        self._observe(self.store_latency, seconds, operation)

    def _observe(self, histogram: Histogram, seconds: float, *labels: str) -> None:
        key = (id(histogram), *labels)
        tally = self._latencies.get(key)
        if tally is None:
            # [sum, count per bucket (the last one +Inf)]
            tally = self._latencies[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        tally[0] += seconds
        # prometheus_client's bucket: the first upper bound >= the value.
        tally[1 + bisect_left(LATENCY_BUCKETS, seconds)] += 1
        if self._flush_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._flush_timer = loop.call_later(self.flush_interval_s, self.flush)

    def flush(self) -> None:
        """Fold the tallied requests and latencies into the exported metrics."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        answers, self._answers = self._answers, {}
        for (protocol, command, result), count in answers.items():
            self.child(self.requests, protocol, command, result).inc(count)
        latencies = self._latencies
        histograms = {id(self.latency): self.latency, id(self.store_latency): self.store_latency}
        for key, tally in latencies.items():
            if not any(tally[1:]):
                continue
            child = self.child(histograms[key[0]], *key[1:])
            child._sum.inc(tally[0])
            for bucket, observed in zip(child._buckets, tally[1:], strict=True):
                if observed:
                    bucket.inc(observed)
            tally[:] = [0.0] * len(tally)


def enable_multiprocess_metrics(directory: str) -> None:
    """Keep metric values in files under ``directory`` so that workers' series add up.

    Must run before any metric is created (the Metrics objects are built in the workers).
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def registry_for_export(metrics: Metrics) -> CollectorRegistry:
    """The registry ``/metrics`` serves: this process's, or all workers' in multiprocess mode."""
    metrics.flush()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return metrics.registry
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry
