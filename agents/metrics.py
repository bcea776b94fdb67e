"""Prometheus metrics of the callers (agents.load) and the agents (agents.agent).

Each supervisor owns one registry and serves it with `serve` (prometheus_client's HTTP server: a
thread blocked in select, no polling of ours). The metrics are fed from what the supervisors
already get: the load supervisor from its call records (the same dicts it appends to the event
log), the agents supervisor from its workers' status files (agents.status), whose `counters`
object each worker keeps with `WorkerCounters`. Counts are best effort (a worker killed between
two status writes takes up to 2 s of its counts with it); the event log is the durable record.

Caller side (agents.load, --metrics-port, default 9102):
    wobble_call_attempts_total{region,chosen_by}   region: where the call was sent (steering's
                                                   answer or the target's SBC), `unknown`, `none`
    wobble_call_outcomes_total{outcome,reason}     outcome ok|fail|info; reason: core.schema.outcome_reason
    wobble_call_pdd_seconds                        histogram (calls that got a 18x/2xx)
    wobble_call_mos                                histogram (answered calls)
Agent side (agents.agent, --metrics-port, default 9101):
    wobble_agents_logged_in{region}                agents in service now (registered; direct mode: up),
                                                   wherever they are registered (home or re-homed)
    wobble_agents_rehomed{region,to_region}        of those, registered through another region's SBC
    wobble_agent_rehomes_total{region,to_region}   re-homing decisions of the supervisor (to_region =
                                                   the home region for a return)
    wobble_agent_logins_total{region,result}       IdP login attempts, result ok|fail
    wobble_agent_calls_answered_total{region}
    wobble_agent_screen_pops_total{region,result}  result ok|late|fallback|none, per ended call
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from agents.model import strip_port, uri_host
from agents.status import DEFAULT_MAX_AGE_S, agent_ok
from core.schema import STATUSES, outcome_reason

log = logging.getLogger("agents.metrics")

LOAD_PORT = 9102
AGENT_PORT = 9101
PDD_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
#: E-model MOS runs 1.0 (nothing heard) .. ~4.4 (G.711, no impairment); resolution where it matters.
MOS_BUCKETS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.1, 4.2, 4.3, 4.4, 4.5)
LOGIN_RESULTS = ("ok", "fail")
POP_RESULTS = ("ok", "late", "fallback", "none")


def serve(registry: CollectorRegistry, port: int, addr: str = "") -> WSGIServer | None:
    """Serve `registry` at http://addr:port/metrics from a daemon thread (port 0: off); returns the
    server (`.shutdown()` stops it). A port in use is logged, not fatal: metrics are not worth a
    caller or an agent."""
    if not port:
        return None
    host = addr or "0.0.0.0"
    try:
        server, _ = start_http_server(port, host, registry=registry)
    except OSError as exc:
        log.warning("metrics not served on %s:%d: %s", host, port, exc)
        return None
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server


# --------------------------------------------------------------------------------------------
# Callers
# --------------------------------------------------------------------------------------------


def sbc_regions() -> dict[str, str]:
    """SBC carrier address -> region name, from the lab topology."""
    from core.topology import Topology

    return {r.sbc_carrier_ip: r.name for r in Topology.default().regions}


def attempt_region(target: str | None, extra: Mapping[str, Any] | None, sbcs: Mapping[str, str]) -> str:
    """Where a call was sent: steering's region (HTTP), the first SRV target's region, else the
    region of the target's SBC; `none` without a target (no route), `unknown` otherwise."""
    extra = extra or {}
    if extra.get("steered_region"):
        return str(extra["steered_region"])
    srv = extra.get("srv_regions")
    if isinstance(srv, list) and srv:
        return str(srv[0])
    if not target:
        return "none"
    hostport = uri_host(target)
    return sbcs.get(strip_port(hostport), "unknown") if hostport else "unknown"


class LoadMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.attempts = Counter(
            "wobble_call_attempts",
            "Calls attempted, by the region they were sent to",
            ["region", "chosen_by"],
            registry=r,
        )
        self.outcomes = Counter(
            "wobble_call_outcomes", "Calls completed, by status and reason", ["outcome", "reason"], registry=r
        )
        self.pdd = Histogram(
            "wobble_call_pdd_seconds", "Post-dial delay (INVITE -> 18x/2xx)", buckets=PDD_BUCKETS, registry=r
        )
        self.mos = Histogram("wobble_call_mos", "E-model MOS of answered calls", buckets=MOS_BUCKETS, registry=r)

    def attempt(self, region: str, chosen_by: str) -> None:
        self.attempts.labels(region, chosen_by).inc()

    def complete(self, rec: Mapping[str, Any]) -> None:
        """One completion record (agents.loadmodel.call_record: load_ok/load_fail/load_info)."""
        status = str(rec.get("status"))
        self.outcomes.labels(status if status in STATUSES else "info", outcome_reason(rec)).inc()
        if isinstance(rec.get("pdd_ms"), int | float):
            self.pdd.observe(float(rec["pdd_ms"]) / 1000.0)
        if isinstance(rec.get("mos"), int | float):
            self.mos.observe(float(rec["mos"]))


# --------------------------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------------------------


@dataclass
class WorkerCounters:
    """What one agents worker has counted since it started (the `counters` of its status file)."""

    logins: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOGIN_RESULTS, 0))
    calls_answered: int = 0
    screen_pops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(POP_RESULTS, 0))

    def login(self, ok: bool) -> None:
        self.logins["ok" if ok else "fail"] += 1

    def answered(self) -> None:
        self.calls_answered += 1

    def call_ended(self, record: Mapping[str, Any]) -> None:
        """One `agent_call` record: its screen pop's result."""
        pop = str(record.get("screen_pop") or "none")
        self.screen_pops[pop if pop in POP_RESULTS else "none"] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "logins": dict(self.logins),
            "calls_answered": self.calls_answered,
            "screen_pops": dict(self.screen_pops),
        }


def _flat(counters: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for name, value in counters.items():
        if isinstance(value, Mapping):
            out.update({(name, str(k)): int(v) for k, v in value.items() if isinstance(v, int)})
        elif isinstance(value, int):
            out[(name, "")] = value
    return out


class AgentMetrics:
    def __init__(
        self, region: str, registry: CollectorRegistry | None = None, *, fallback_region: str | None = None
    ) -> None:
        self.region = region
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.logged_in = Gauge("wobble_agents_logged_in", "Agents in service (registered)", ["region"], registry=r)
        self.logins = Counter("wobble_agent_logins", "IdP login attempts", ["region", "result"], registry=r)
        self.answered = Counter("wobble_agent_calls_answered", "Calls the agents answered", ["region"], registry=r)
        self.pops = Counter("wobble_agent_screen_pops", "Screen pops by result", ["region", "result"], registry=r)
        self.rehomed = Gauge(
            "wobble_agents_rehomed",
            "Agents in service registered through another region",
            ["region", "to_region"],
            registry=r,
        )
        self.rehomes = Counter("wobble_agent_rehomes", "Re-homing decisions", ["region", "to_region"], registry=r)
        self.logged_in.labels(region).set(0)
        if fallback_region:
            self.rehomed.labels(region, fallback_region).set(0)
            self.rehomes.labels(region, fallback_region)
            self.rehomes.labels(region, region)
        self.answered.labels(region)
        for res in LOGIN_RESULTS:
            self.logins.labels(region, res)
        for res in POP_RESULTS:
            self.pops.labels(region, res)
        self._seen: dict[int, tuple[Any, dict[tuple[str, str], int]]] = {}
        self._in_service: dict[int, int] = {}
        self._away: dict[int, dict[str, int]] = {}  # worker -> {region registered through: agents}
        self._away_regions: set[str] = {fallback_region} if fallback_region else set()

    def rehome_decision(self, to_region: str) -> None:
        self.rehomes.labels(self.region, to_region).inc()

    def observe_worker(
        self,
        index: int,
        status: Mapping[str, Any] | None,
        now: float,
        *,
        alive: bool = True,
        max_age: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        """Take in worker `index`'s status file (None: none readable). Counters are cumulative per
        worker process: a new pid starts from zero. A worker that is not `alive`, not `running`
        or whose file is older than `max_age` has no agent in service."""
        if status is None:
            self._in_service[index] = 0
            self._away[index] = {}
            self._publish()
            return
        flat = _flat(status.get("counters") or {})
        pid = status.get("pid")
        old_pid, old = self._seen.get(index, (None, {}))
        base = old if pid == old_pid else {}
        for key, value in flat.items():
            delta = value - base.get(key, 0)
            if delta > 0:
                self._count(key, delta)
        self._seen[index] = (pid, flat)
        fresh = alive and now - float(status.get("updated") or 0) <= max_age and status.get("state") == "running"
        agents: Mapping[str, Any] = status.get("agents") or {}
        direct = bool(status.get("direct"))
        in_service = [e for e in agents.values() if agent_ok(e, direct)[0]] if fresh else []
        self._in_service[index] = len(in_service)
        away: dict[str, int] = {}
        for e in in_service:
            where = e.get("proxy_region")
            if where and where != self.region:
                away[str(where)] = away.get(str(where), 0) + 1
        self._away[index] = away
        self._publish()

    def _count(self, key: tuple[str, str], delta: int) -> None:
        name, label = key
        if name == "logins" and label in LOGIN_RESULTS:
            self.logins.labels(self.region, label).inc(delta)
        elif name == "calls_answered":
            self.answered.labels(self.region).inc(delta)
        elif name == "screen_pops" and label in POP_RESULTS:
            self.pops.labels(self.region, label).inc(delta)

    def _publish(self) -> None:
        self.logged_in.labels(self.region).set(sum(self._in_service.values()))
        for counts in self._away.values():
            self._away_regions.update(counts)
        for where in self._away_regions:
            self.rehomed.labels(self.region, where).set(sum(c.get(where, 0) for c in self._away.values()))
