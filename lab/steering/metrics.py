"""Prometheus metrics of the steering service (its own registry, served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STATES = ("UP", "SUSPECT", "DOWN")


class SteeringMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.region_state = Gauge(
            "wobble_steering_region_state",
            "1 for the region's current state",
            ["region", "state"],
            registry=self.registry,
        )
        self.probe_latency = Histogram(
            "wobble_steering_probe_latency_seconds",
            "SIP OPTIONS probe round trip",
            ["region", "vantage"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5),
            registry=self.registry,
        )
        self.probes = Counter(
            "wobble_steering_probes_total",
            "Probes by result",
            ["region", "vantage", "result"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "wobble_steering_decisions_total", "Decisions by rule", ["region", "rule"], registry=self.registry
        )
        self.flips = Counter(
            "wobble_steering_flips_total", "State changes", ["region", "before", "after"], registry=self.registry
        )
        self.config_live = Gauge(
            "wobble_steering_config_live", "1 when the config API answers, 0 on last-known-good", registry=self.registry
        )

    def set_state(self, region: str, state: str) -> None:
        for s in STATES:
            self.region_state.labels(region, s).set(1 if s == state else 0)
