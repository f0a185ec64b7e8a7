"""Per-request metrics are tallied on the call path and read back exactly as if observed."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Histogram

from ocsd.metrics import LATENCY_BUCKETS, Metrics

# On, just below and just above every bound, and beyond the last one.
SECONDS = [
    value for bound in LATENCY_BUCKETS for value in (bound, bound * 0.999, bound * 1.001)
] + [0.0, 10.0]


def reference(values: list[float]) -> CollectorRegistry:
    registry = CollectorRegistry()
    histogram = Histogram(
        "ref", "", ("protocol", "command"), buckets=LATENCY_BUCKETS, registry=registry
    )
    for value in values:
        histogram.labels("radius", "accounting").observe(value)
    return registry


def test_tallied_latencies_read_back_as_observed() -> None:
    metrics = Metrics()
    for value in SECONDS:
        metrics.answered("radius", "accounting", "ok", value)
    expected = reference(SECONDS)
    for bound in (*LATENCY_BUCKETS, float("inf")):
        le = "+Inf" if bound == float("inf") else repr(float(bound))
        labels = {"protocol": "radius", "command": "accounting", "le": le}
        assert metrics.registry.get_sample_value("ocsd_request_seconds_bucket", labels) == (
            expected.get_sample_value("ref_bucket", labels)
        ), le
    labels = {"protocol": "radius", "command": "accounting"}
    assert metrics.registry.get_sample_value("ocsd_request_seconds_count", labels) == len(SECONDS)
    assert metrics.registry.get_sample_value("ocsd_request_seconds_sum", labels) == pytest.approx(
        sum(SECONDS)
    )
    assert metrics.registry.get_sample_value(
        "ocsd_requests_total", {**labels, "result": "ok"}
    ) == len(SECONDS)


def test_a_second_read_adds_only_what_came_since() -> None:
    metrics = Metrics()
    metrics.answered("diameter", "ccr_initial", "2001", 0.001)
    metrics.observe_store("hold", 0.0003)
    labels = {"protocol": "diameter", "command": "ccr_initial", "result": "2001"}
    assert metrics.registry.get_sample_value("ocsd_requests_total", labels) == 1
    assert metrics.registry.get_sample_value("ocsd_requests_total", labels) == 1
    metrics.answered("diameter", "ccr_initial", "2001", 0.001)
    assert metrics.registry.get_sample_value("ocsd_requests_total", labels) == 2
    store = {"operation": "hold"}
    assert metrics.registry.get_sample_value("ocsd_store_seconds_count", store) == 1


async def test_tallies_reach_the_metrics_by_themselves() -> None:
    metrics = Metrics(flush_interval_s=0.01)
    metrics.answered("radius", "accounting", "stop", 0.002)
    labels = {"protocol": "radius", "command": "accounting", "result": "stop"}
    # Read the child directly: reading the registry would fold the tally in itself.
    child = metrics.requests.labels("radius", "accounting", "stop")
    assert child._value.get() == 0
    await asyncio.sleep(0.05)
    assert child._value.get() == 1
    assert metrics.registry.get_sample_value("ocsd_requests_total", labels) == 1
