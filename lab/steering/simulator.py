"""A seeded, discrete-tick simulator of the steering policy: days of probe loss in seconds.

Each vantage point probes one region every `interval_s` from its own phase; each probe independently
fails with probability `loss` (a failure is reported `timeout_s` after it was sent, a success
`latency_ms` after). Results reach the policy in the order they complete, as they would live, so late
timeouts overtake nothing and early replies overtake late timeouts. Optional passive traffic adds a
successful call every `traffic_every_s`; an optional crash at `crash_at` makes every later probe and
call fail (failed calls are reported `call_fail_delay_s` late, like a caller giving up).

Nothing here reads a clock or global randomness: one `random.Random(seed)` drives everything, so a
seed is a reproducible day.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from lab.steering.policy import CallEvidence, Decision, Mode, Policy, PolicyConfig, ProbeResult, State


@dataclass(frozen=True)
class SimReport:
    """What one simulated run saw. `false_down_count`: DOWNs of a healthy region (before any crash)."""

    seed: int
    hours: float
    loss: float
    traffic_every_s: float | None
    fail_threshold: int
    phases: tuple[float, ...]
    probes: int
    calls: int
    false_down_count: int
    suspect_count: int
    down_seconds: float
    expected_false_down_per_day: float
    crash_at: float | None = None
    detected_at: float | None = None
    detection_s: float | None = None
    rules: dict[str, int] = field(default_factory=dict)

    @property
    def false_down_per_day(self) -> float:
        return self.false_down_count * 24.0 / self.hours


def simulate(
    config: PolicyConfig | None = None,
    hours: float = 24.0,
    loss: float = 0.2,
    traffic_every_s: float | None = None,
    seed: int = 0,
    *,
    phases: tuple[float, ...] | None = None,
    latency_ms: float = 2.0,
    crash_at: float | None = None,
    call_fail_delay_s: float = 2.0,
    region: str | None = None,
) -> SimReport:
    """Run `hours` of simulated probes against one region and count what the policy decided.

    `phases`: each vantage point's first send time (default: drawn from the seeded generator in
    [0, interval_s)), so the vantage points are generally out of step, as in the lab.
    """
    cfg = config or PolicyConfig()
    rng = random.Random(seed)
    name = region or cfg.regions[0]
    vantages = cfg.vantages
    interval, timeout = cfg.interval_s, cfg.timeout_s
    if phases is None:
        phases = tuple(rng.uniform(0.0, interval) for _ in vantages)
    if len(phases) != len(vantages):
        raise ValueError(f"need one phase per vantage point {vantages}, got {phases}")
    policy = Policy(cfg, mode=Mode.AUTO, t=0.0)
    end = hours * 3600.0
    crash = float("inf") if crash_at is None else crash_at
    lat_s = latency_ms / 1000.0

    # (deliver_t, seq, vantage index or -1 for a call, ok)
    heap: list[tuple[float, int, int, bool]] = []
    seq = 0
    probes = calls = false_downs = suspects = 0
    down_since: float | None = None
    down_seconds = 0.0
    detected_at: float | None = None
    rules: dict[str, int] = {}

    def account(decisions: list[Decision]) -> None:
        nonlocal false_downs, suspects, down_since, down_seconds, detected_at
        for d in decisions:
            rules[d.rule] = rules.get(d.rule, 0) + 1
            if d.after == State.DOWN:
                down_since = d.t
                if d.t < crash:
                    false_downs += 1
                elif detected_at is None:
                    detected_at = d.t
            elif d.before == State.UP and d.after == State.SUSPECT:
                suspects += 1
            if d.before == State.DOWN and down_since is not None:
                down_seconds += d.t - down_since
                down_since = None

    def deliver_until(t: float) -> None:
        while heap and heap[0][0] <= t:
            when, _, vi, ok = heapq.heappop(heap)
            if vi < 0:
                account(policy.observe_call(CallEvidence(when, name, ok, "sim")))
            else:
                lat = lat_s * 1000.0 if ok else None
                account(policy.observe_probe(ProbeResult(when, name, vantages[vi], ok, lat)))

    # Every send time, in order: a merge of the vantage points' tick trains and the calls.
    next_send = list(phases)
    ticks = [0] * len(vantages)
    next_call = traffic_every_s if traffic_every_s else float("inf")
    push = heapq.heappush
    random_ = rng.random
    while True:
        vi = min(range(len(vantages)), key=next_send.__getitem__)
        sent = next_send[vi]
        if next_call < sent:
            if next_call >= end:
                break
            deliver_until(next_call)
            calls += 1
            ok = next_call < crash
            seq += 1
            push(heap, (next_call if ok else next_call + call_fail_delay_s, seq, -1, ok))
            next_call += traffic_every_s or float("inf")
            continue
        if sent >= end:
            break
        deliver_until(sent)
        probes += 1
        ok = sent < crash and random_() >= loss
        seq += 1
        push(heap, (sent + lat_s if ok else sent + timeout, seq, vi, ok))
        ticks[vi] += 1
        next_send[vi] = phases[vi] + ticks[vi] * interval  # no accumulated rounding over a day
    deliver_until(end)
    if down_since is not None:
        down_seconds += end - down_since
    return SimReport(
        seed=seed,
        hours=hours,
        loss=loss,
        traffic_every_s=traffic_every_s,
        fail_threshold=cfg.fail_threshold,
        phases=tuple(phases),
        probes=probes,
        calls=calls,
        false_down_count=false_downs,
        suspect_count=suspects,
        down_seconds=round(down_seconds, 3),
        expected_false_down_per_day=cfg.expected_false_down_per_day(loss, latency_ms / 1000.0, tuple(phases)),
        crash_at=crash_at,
        detected_at=detected_at,
        detection_s=None if detected_at is None or crash_at is None else detected_at - crash_at,
        rules=rules,
    )
