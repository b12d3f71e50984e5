"""Prometheus metrics of the service, and the ``/metrics`` exposition.

Label values are bounded: services come from the discovery list (an unknown id is counted as
``unknown``), rules from the rule library, tiers and outcomes from fixed sets, status codes
from what the service answers.

With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before
the service starts: prometheus_client then keeps each process's values in files there and
``/metrics`` (answered by any one worker) adds up all of them.

The analytics cycle runs elsewhere and publishes a status file; its metrics are read from that
file at scrape time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from engine.runtime.cycle_status import OUTCOMES, read_status

PREFIX = "pgx_loop"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HOOK_LATENCY = Histogram(
    f"{PREFIX}_hook_request_duration_seconds",
    "Time to answer a hook call or feedback, by service, endpoint (hook or feedback) and HTTP status",
    ["service", "endpoint", "status"],
    buckets=LATENCY_BUCKETS,
)
CARDS = Counter(f"{PREFIX}_cards", "Cards returned to the EHR, by rule and tier", ["rule", "tier"])
FEEDBACK = Counter(f"{PREFIX}_feedback", "Feedback items recorded (repeats not counted)", ["service", "outcome"])
RELOAD_FAILURES = Counter(
    f"{PREFIX}_reload_failures", "Failed reloads of rules, strengths or products (the last good kept serving)", ["what"]
)
EVENT_LOG_BATCH = Histogram(
    f"{PREFIX}_event_log_batch_requests",
    "Requests made durable by one fdatasync of the event log (sync mode always)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
# Versions only grow (a rollback publishes a new one), so the largest across workers is the newest served.
STRENGTHS_VERSION = Gauge(
    f"{PREFIX}_strengths_version", "Version of the strengths snapshot served (0: none)", multiprocess_mode="max"
)


def multiprocess() -> bool:
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


class AnalyticsStatusCollector(Collector):
    """Metrics of the last analytics cycle, read from its status file at each scrape."""

    def __init__(self, path: Path):
        self.path = path

    def collect(self) -> Iterator[Metric]:
        status = read_status(self.path)
        if status is None:
            return
        name = f"{PREFIX}_analytics_cycle"
        yield GaugeMetricFamily(f"{name}_duration_seconds", "Duration of the last cycle", status.duration_seconds)
        yield GaugeMetricFamily(
            f"{name}_last_finished_timestamp_seconds", "When the last cycle ended", status.finished.timestamp()
        )
        if status.last_success is not None:
            yield GaugeMetricFamily(
                f"{name}_last_success_timestamp_seconds", "When a cycle last succeeded", status.last_success.timestamp()
            )
        outcome = GaugeMetricFamily(
            f"{name}_last_status", "How the last cycle ended (1 for its status)", labels=["status"]
        )
        for value in OUTCOMES:
            outcome.add_metric([value], float(value == status.status))
        yield outcome


def exposition(analytics_status: Path) -> bytes:
    """The text exposition of this process's (or all workers') metrics and the analytics status."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        served = generate_latest(registry)
    else:
        served = generate_latest(REGISTRY)
    analytics = CollectorRegistry()
    analytics.register(AnalyticsStatusCollector(analytics_status))
    return served + generate_latest(analytics)
