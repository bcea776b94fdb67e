"""The GSLB steering policy: pure logic that turns probe and call evidence into region states and routing.

No I/O, no asyncio, no clocks: every call takes the time it happens at, so the same inputs always give
the same decisions (the simulator and the tests replay days of evidence in milliseconds).

States per region: UP -> SUSPECT -> DOWN, SUSPECT -> UP, DOWN -> UP (nothing else; a DOWN condition
met while UP passes through SUSPECT at the same instant, so the log shows both steps).

Rules (the stable ids recorded in every `Decision.rule`):

- ``consecutive-failures-both-vantages``: every vantage point's latest ``fail_threshold`` (N) probes,
  ordered by send time, all failed -> DOWN. Detection bound for a clean crash: the DOWN comes exactly
  ``timeout_s + (N - 1) * interval_s`` after the first failed probe of the vantage that started failing
  last, i.e. less than ``timeout_s + N * interval_s`` after the crash itself.
- ``failure-ratio``: every vantage point failing (streak >= N, or >= ``fail_ratio`` of at least
  ``ratio_min_samples`` probes sent in the last ``window_s``) -> DOWN. Catches heavy flapping loss that
  keeps breaking the streaks.
- ``one-vantage-only``: only some vantage points fail -> SUSPECT. A fault on one network path is not
  a dead region (and failing over would not help the callers on the healthy path).
- ``probes-fail-calls-succeed``: all vantage points fail but real calls through the region succeed
  (a success within ``passive_window_s``, successes outnumber failures there, and the newest call
  outcome is a success) -> SUSPECT. Failing over a region that carries calls is a false failover.
- ``one-vantage-and-calls-failing``: passive failure evidence supports DOWN: one vantage point fails
  AND calls fail (>= ``passive_min_fail`` failures in the passive window, at least as many as the
  successes, newest outcome a failure) -> DOWN. The typical case: the callers' path to the region is
  cut while steering's own probes still get through. Calls failing while every probe succeeds is only
  SUSPECT (``calls-failing-probes-ok``): calls fail for reasons a failover cannot fix (agents, PBX).
- ``failures-stopped``: SUSPECT -> UP once no rule holds and every fresh vantage point has
  ``suspect_recover_threshold`` (default: N) consecutive successes.
- ``recovered-after-hold``: DOWN -> UP only after ``recover_threshold`` (M) consecutive successes
  from every vantage point, no failing rule (including the ratio), no failing calls, AND ``hold_s``
  since the DOWN (fail-back damping). The region then ramps from ``ramp_start`` of its weight to all
  of it over ``ramp_s`` (slow start).

A vantage point that has not reported for ``stale_s`` counts as neither failing nor succeeding: a
dead prober is no evidence about the region (DOWN then needs the calls to confirm it).

Why "consecutive" means "in send order, newest known result": a probe's failure is only known
`timeout_s` (0.3 s) after it was sent, but the next probe's success is known a few ms after *it* is
sent, 0.2 s later, i.e. before the timeout. So a run of N failures followed by a success never shows
as a run of N: when the Nth failure is known, a success sent after it is already known too. A run
shows as N only if every probe sent since (the ones still in flight, 1-2 per vantage point) has not
answered either. A clean crash loses nothing to this (its probes all fail), so the detection bound
stays ``timeout_s + (N - 1) * interval_s``; random loss needs N + 1 or N + 2 failures per vantage point.

False DOWN rate, healthy region, independent probe loss p, no traffic: the condition "both vantage
points show a run >= N" is entered when vantage v's Nth failure (sent at s) becomes known, with a
success before the run (1 - p), the a = floor((timeout - latency) / interval) probes v sent since then
also lost (p^a), and the other vantage point w showing a run of N with its b probes sent in
(s, s + timeout - latency] also lost (p^(N + b); b is 1 or 2 depending on the phase offset). Rate per
day = sum over v of (86400 / interval) * (1 - p) * p^(N + a) * p^(N + b) =
`PolicyConfig.expected_false_down_per_day`. With the defaults (N = 4, replies in 2 ms) and p = 0.2:
0.071/day with the vantage points in phase (the worst case), 0.042/day out of phase; N = 3 would be
1.8/day, N = 5 would need 1.1 s to detect. Detection with N = 4: 0.3 + 3 * 0.2 = 0.9 s after the first
lost probe of the vantage point that fails last, so under 1.1 s after the crash instant (the crash
can fall just after a probe). Caveat: replies slower than ``timeout_s - interval_s`` (0.1 s, e.g. an
injected 200 ms delay) no longer overtake, and the false rate under loss rises towards 1.8/day.

Modes (the health states are always computed and logged; the mode decides what moves traffic):

- ``auto``: a DOWN is applied at once (the region gets no new calls).
- ``confirm``: a DOWN is proposed (``pending``); the region keeps its traffic until `Policy.approve`,
  whose decision records ``wait_s`` = approval time - proposal time. A recovery before approval
  withdraws the proposal. Fail-back (DOWN -> UP) needs no approval.
- ``manual``: the policy never moves traffic: routing is frozen at the weights in force when manual
  mode began, and DOWN decisions are advisory (``applied=False``).

Operator routing, in any mode: `Policy.failover` pins every new call to one region until
`Policy.release`, which hands routing back to the mode (frozen weights in manual, health-driven in auto
and confirm). Mode changes never touch the pin. Entering auto applies every unapplied DOWN; entering
confirm proposes them.

Static stability: capacity is pre-provisioned, so routing never waits for anything to scale.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class State(StrEnum):
    UP = "UP"
    SUSPECT = "SUSPECT"
    DOWN = "DOWN"


class Mode(StrEnum):
    AUTO = "auto"
    CONFIRM = "confirm"
    MANUAL = "manual"


#: The only health transitions the policy ever makes.
ALLOWED_TRANSITIONS: frozenset[tuple[State, State]] = frozenset(
    {(State.UP, State.SUSPECT), (State.SUSPECT, State.UP), (State.SUSPECT, State.DOWN), (State.DOWN, State.UP)}
)

VANTAGES: tuple[str, ...] = ("steering", "carrier")
GLOBAL = "*"  # Decision.region of decisions that are about no single region (mode changes)

# Rule ids, stable: dashboards and drills match on them.
R_BOTH = "consecutive-failures-both-vantages"
R_RATIO = "failure-ratio"
R_ONE = "one-vantage-only"
R_CALLS_OK = "probes-fail-calls-succeed"
R_ONE_CALLS_BAD = "one-vantage-and-calls-failing"
R_CALLS_BAD = "calls-failing-probes-ok"
R_STOPPED = "failures-stopped"
R_RECOVERED = "recovered-after-hold"
R_APPROVED = "operator-approved"
R_FAILOVER = "operator-failover"
R_RELEASE = "operator-release"
R_MODE = "mode-change"
R_MODE_APPLIES = "mode-auto-applies-down"
R_MODE_PROPOSES = "mode-confirm-proposes-down"

_RANK = {State.UP: 0, State.SUSPECT: 1, State.DOWN: 2}
_RECENT = 32  # per vantage point: results kept to re-order late arrivals (thresholds must stay below)


class PolicyConfig(BaseModel):
    """Thresholds and routing. The defaults meet the lab's goals; see the module docstring for why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(default=0.2, gt=0, description="each vantage point probes this often")
    timeout_s: float = Field(default=0.3, gt=0, description="a probe without a reply by then failed")
    fail_threshold: int = Field(default=4, ge=1, lt=_RECENT, description="N: consecutive failures per vantage point")
    recover_threshold: int = Field(default=5, ge=1, lt=_RECENT, description="M: consecutive successes to leave DOWN")
    suspect_recover_threshold: int | None = Field(
        default=None, ge=1, lt=_RECENT, description="to leave SUSPECT; None=N"
    )
    hold_s: float = Field(default=10.0, ge=0, description="minimum time DOWN before UP (fail-back damping)")
    window_s: float = Field(default=10.0, gt=0, description="failure-ratio window (by probe send time)")
    fail_ratio: float = Field(default=0.7, gt=0, le=1)
    ratio_min_samples: int = Field(default=20, ge=1, description="per vantage point, for the ratio rule to count")
    passive_window_s: float = Field(default=10.0, gt=0, description="how recent call evidence must be to count")
    passive_min_fail: int = Field(default=2, ge=1, description="failed calls needed before they count as failing")
    stale_s: float = Field(default=2.0, gt=0, description="a vantage point silent this long is no evidence")
    ramp_s: float = Field(default=10.0, ge=0, description="slow start after fail-back")
    ramp_start: float = Field(default=0.1, gt=0, le=1, description="share of its weight a recovered region starts at")
    weights: dict[str, float] = Field(default_factory=lambda: {"region-a": 50.0, "region-b": 50.0})
    routing: Literal["active-active", "active-standby"] = "active-active"
    standby_order: list[str] | None = Field(default=None, description="active-standby preference; None = weights order")
    vantages: tuple[str, ...] = VANTAGES

    @model_validator(mode="after")
    def _consistent(self) -> PolicyConfig:
        if not self.weights or any(w < 0 or not math.isfinite(w) for w in self.weights.values()):
            raise ValueError("weights must map at least one region to a finite weight >= 0")
        if sum(self.weights.values()) <= 0:
            raise ValueError("at least one region needs a weight above 0")
        if self.standby_order is not None and sorted(self.standby_order) != sorted(self.weights):
            raise ValueError(f"standby_order {self.standby_order} must list exactly the regions {list(self.weights)}")
        if not self.vantages or len(set(self.vantages)) != len(self.vantages):
            raise ValueError("vantages must be distinct and not empty")
        if self.stale_s < self.interval_s + self.timeout_s:
            raise ValueError("stale_s must be at least interval_s + timeout_s, or live vantage points look silent")
        if self.window_s / self.interval_s < self.ratio_min_samples:
            raise ValueError("window_s / interval_s must reach ratio_min_samples, or the ratio rule can never fire")
        return self

    @property
    def regions(self) -> list[str]:
        return list(self.weights)

    @property
    def order(self) -> list[str]:
        return list(self.standby_order) if self.standby_order is not None else self.regions

    @property
    def suspect_recover(self) -> int:
        return self.suspect_recover_threshold or self.fail_threshold

    def detection_bound_s(self) -> float:
        """Clean crash: DOWN this long after the first failed probe of the vantage point failing last."""
        return self.timeout_s + (self.fail_threshold - 1) * self.interval_s

    def expected_false_down_per_day(
        self, loss: float, latency_s: float = 0.002, phases: tuple[float, ...] | None = None
    ) -> float:
        """Analytic false-DOWN rate (per day, per region) under independent probe loss and no traffic.

        `phases`: each vantage point's send phase (default: all in step, the worst case). See the
        module docstring for the derivation.
        """
        interval, n = self.interval_s, self.fail_threshold
        phases = phases or tuple(0.0 for _ in self.vantages)
        in_flight = self.timeout_s - latency_s  # sends this recent would have answered by now if they could
        eps = 1e-9

        def unanswered(delta: float) -> int:  # sends in (s, s + in_flight] of a vantage point offset by delta
            delta %= interval
            if delta < eps or interval - delta < eps:
                return max(0, math.floor(in_flight / interval + eps))
            return math.floor((in_flight - delta) / interval + eps) + 1 if delta <= in_flight + eps else 0

        total = 0.0
        for i, phase_v in enumerate(phases):
            term = (86400.0 / interval) * (1 - loss) * loss ** (n + unanswered(0.0))
            for j, phase_w in enumerate(phases):
                if j != i:
                    term *= loss ** (n + unanswered(phase_w - phase_v))
            total += term
        return total


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One SIP OPTIONS probe. `t`: when its outcome was known (reply, or the timeout expiring).

    The send time is derived: ``t - latency_ms / 1000`` when there is a latency, else ``t - timeout_s``.
    Streaks count probes in send order, because a success can arrive before an earlier probe times out.
    """

    t: float
    region: str
    vantage: str
    ok: bool
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class CallEvidence:
    """Passive evidence: the outcome of a real call through `region`, known at `t`."""

    t: float
    region: str
    ok: bool
    source: str = "caller"


@dataclass(frozen=True)
class Decision:
    """One state change or operator action, returned by the call that caused it (for the event log).

    kind: ``health`` (before/after are states), ``approval`` and ``routing`` (before/after are the
    region's state, unchanged), ``mode`` (region is ``*``, before/after are modes).
    """

    t: float
    region: str
    before: str
    after: str
    rule: str
    evidence: dict[str, Any]
    mode: str
    approved_by: str | None = None
    applied: bool = True
    wait_s: float | None = None
    kind: str = "health"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RouteChoice:
    """`region` for the next call; `fallback` when no region was routable and this is the least bad."""

    region: str
    fallback: bool
    weights: dict[str, float]


class _Vantage:
    """What one vantage point says about one region: runs by send order, a ratio window, freshness."""

    __slots__ = ("fail_streak", "first_fail_sent", "last_report", "last_sent", "ok_streak", "recent", "win", "win_fail")

    def __init__(self) -> None:
        self.fail_streak = 0
        self.ok_streak = 0
        self.first_fail_sent: float | None = None
        self.last_sent = -math.inf
        self.last_report = -math.inf
        self.recent: deque[tuple[float, bool]] = deque(maxlen=_RECENT)
        self.win: deque[tuple[float, bool]] = deque()
        self.win_fail = 0

    def add(self, sent: float, ok: bool, now: float, window_s: float) -> None:
        if sent >= self.last_sent:
            self.last_sent = sent
            self.recent.append((sent, ok))
            if ok:
                self.ok_streak += 1
                self.fail_streak = 0
            else:
                if self.fail_streak == 0:
                    self.first_fail_sent = sent
                self.fail_streak += 1
                self.ok_streak = 0
        else:  # a late arrival (a timeout reported after a later probe's reply): re-sort and recount
            items = list(self.recent)
            bisect.insort(items, (sent, ok))
            self.recent = deque(items, maxlen=_RECENT)
            self._recount()
        self.win.append((sent, ok))
        if not ok:
            self.win_fail += 1
        cutoff = now - window_s
        win = self.win
        while win and win[0][0] < cutoff:
            if not win.popleft()[1]:
                self.win_fail -= 1
        if now > self.last_report:
            self.last_report = now

    def _recount(self) -> None:
        items = self.recent
        last_ok = items[-1][1]
        run = 0
        first = None
        for sent, ok in reversed(items):
            if ok != last_ok:
                break
            run += 1
            first = sent
        if last_ok:
            self.ok_streak, self.fail_streak = run, 0
        else:
            self.ok_streak, self.fail_streak, self.first_fail_sent = 0, run, first

    def expire(self, now: float, window_s: float) -> None:
        cutoff = now - window_s
        while self.win and self.win[0][0] < cutoff:
            if not self.win.popleft()[1]:
                self.win_fail -= 1

    def fresh(self, now: float, stale_s: float) -> bool:
        return now - self.last_report <= stale_s

    def ratio_bad(self, cfg: PolicyConfig) -> bool:
        n = len(self.win)
        return n >= cfg.ratio_min_samples and self.win_fail >= cfg.fail_ratio * n

    def failing(self, cfg: PolicyConfig) -> bool:
        return self.fail_streak >= cfg.fail_threshold or self.ratio_bad(cfg)

    def view(self, now: float, cfg: PolicyConfig) -> dict[str, Any]:
        n = len(self.win)
        return {
            "fail_streak": self.fail_streak,
            "ok_streak": self.ok_streak,
            "first_fail_sent": self.first_fail_sent if self.fail_streak else None,
            "window_fail": self.win_fail,
            "window_samples": n,
            "fail_ratio": round(self.win_fail / n, 4) if n else None,
            "fresh": self.fresh(now, cfg.stale_s),
            "last_report": self.last_report if math.isfinite(self.last_report) else None,
        }


@dataclass
class _Calls:
    """Recent call outcomes through one region (passive evidence)."""

    items: deque[tuple[float, bool]] = field(default_factory=deque)
    ok: int = 0
    fail: int = 0
    newest_t: float = -math.inf
    newest_ok: bool = True

    def add(self, t: float, ok: bool) -> None:
        self.items.append((t, ok))
        if ok:
            self.ok += 1
        else:
            self.fail += 1
        if t >= self.newest_t:
            self.newest_t, self.newest_ok = t, ok

    def expire(self, now: float, window_s: float) -> None:
        cutoff = now - window_s
        while self.items and self.items[0][0] < cutoff:
            if self.items.popleft()[1]:
                self.ok -= 1
            else:
                self.fail -= 1

    def succeeding(self, since: float = -math.inf) -> bool:
        """Calls succeed *while* probes fail: only outcomes known at or after `since` count.

        A call answered before the probes started failing says nothing about the region now; it
        must not hold off a DOWN (a crash under load would otherwise wait for a failed call).
        """
        ok = sum(1 for t, good in self.items if good and t >= since)
        fail = sum(1 for t, good in self.items if not good and t >= since)
        return ok >= 1 and ok > fail and self.newest_ok and self.newest_t >= since

    def failing(self, cfg: PolicyConfig) -> bool:
        return self.fail >= cfg.passive_min_fail and self.fail >= self.ok and not self.newest_ok

    def view(self) -> dict[str, Any]:
        return {"ok": self.ok, "fail": self.fail, "newest_ok": self.newest_ok if self.items else None}


class _Region:
    __slots__ = ("calls", "down_at", "evidence", "excluded", "pending_since", "reason", "since", "state", "up_at", "v")

    def __init__(self, vantages: tuple[str, ...], t: float) -> None:
        self.v = {name: _Vantage() for name in vantages}
        self.calls = _Calls()
        self.state = State.UP
        self.since = t
        self.reason = "initial"
        self.evidence: dict[str, Any] = {}
        self.down_at: float | None = None
        self.excluded = False  # routing: no new calls (an applied DOWN)
        self.pending_since: float | None = None  # confirm mode: a proposed DOWN awaiting approval
        self.up_at: float | None = None  # slow start: when routing got the region back


class Policy:
    """The steering policy for a fixed set of regions. Every method takes the time it happens at."""

    def __init__(
        self,
        config: PolicyConfig | None = None,
        regions: list[str] | None = None,
        mode: Mode | str = Mode.AUTO,
        t: float = 0.0,
    ) -> None:
        self.config = config or PolicyConfig()
        names = list(regions) if regions is not None else self.config.regions
        if sorted(names) != sorted(self.config.regions):
            raise ValueError(f"regions {names} do not match the configured weights {self.config.regions}")
        self.regions = names
        self.mode = Mode(mode)
        self._r = {name: _Region(self.config.vantages, t) for name in names}
        self.pinned: str | None = None
        self.frozen: dict[str, float] | None = None
        self.last_route_fallback = False
        if self.mode is Mode.MANUAL:
            self.frozen = self.routable_weights(t)

    # -- evidence in

    def observe_probe(self, result: ProbeResult, now: float | None = None) -> list[Decision]:
        """Take one probe result (`now` defaults to ``result.t``); returns the decisions it caused."""
        reg = self._r.get(result.region)
        if reg is None:
            raise ValueError(f"unknown region {result.region!r}")
        vant = reg.v.get(result.vantage)
        if vant is None:
            raise ValueError(f"unknown vantage point {result.vantage!r}; expected one of {self.config.vantages}")
        cfg = self.config
        t = result.t if now is None else now
        sent = result.t - (result.latency_ms / 1000.0 if result.latency_ms is not None else cfg.timeout_s)
        vant.add(sent, result.ok, t, cfg.window_s)
        if reg.state is State.UP and result.ok and not reg.calls.items and not vant.ratio_bad(cfg):
            return []  # fast path: this success cannot make an UP region without call evidence worse
        return self._evaluate(result.region, reg, t)

    def observe_call(self, evidence: CallEvidence, now: float | None = None) -> list[Decision]:
        reg = self._r.get(evidence.region)
        if reg is None:
            raise ValueError(f"unknown region {evidence.region!r}")
        t = evidence.t if now is None else now
        reg.calls.add(evidence.t, evidence.ok)
        return self._evaluate(evidence.region, reg, t)

    def tick(self, now: float) -> list[Decision]:
        """Re-evaluate every region as time passes (evidence ages out, holds expire)."""
        out: list[Decision] = []
        for name, reg in self._r.items():
            out += self._evaluate(name, reg, now)
        return out

    def reconfigure(self, config: PolicyConfig, now: float) -> list[Decision]:
        """New thresholds/weights for the same regions; state and evidence are kept."""
        if sorted(config.regions) != sorted(self.regions):
            raise ValueError("reconfigure cannot change the set of regions")
        if config.vantages != self.config.vantages:
            raise ValueError("reconfigure cannot change the vantage points")
        self.config = config
        return self.tick(now)

    # -- the rules

    def _evaluate(self, name: str, reg: _Region, now: float) -> list[Decision]:
        cfg = self.config
        vs = reg.v.values()
        for vant in vs:
            vant.expire(now, cfg.window_s)
        reg.calls.expire(now, cfg.passive_window_s)
        fresh = [vant for vant in vs if vant.fresh(now, cfg.stale_s)]
        failing = [vant for vant in fresh if vant.failing(cfg)]
        calls_bad = reg.calls.failing(cfg)
        target: State | None
        if failing and len(failing) == len(reg.v):
            streak_start = min((v.first_fail_sent for v in failing if v.first_fail_sent is not None), default=now)
            if reg.calls.succeeding(since=streak_start):
                target, rule = State.SUSPECT, R_CALLS_OK
            elif all(vant.fail_streak >= cfg.fail_threshold for vant in failing):
                target, rule = State.DOWN, R_BOTH
            else:
                target, rule = State.DOWN, R_RATIO
        elif failing:
            target, rule = (State.DOWN, R_ONE_CALLS_BAD) if calls_bad else (State.SUSPECT, R_ONE)
        elif calls_bad:
            target, rule = State.SUSPECT, R_CALLS_BAD
        else:
            target, rule = None, ""  # no rule holds: recovery is possible

        state = reg.state
        if target is None:
            if state is State.SUSPECT and fresh and all(vant.ok_streak >= cfg.suspect_recover for vant in fresh):
                return [self._move(name, reg, now, State.UP, R_STOPPED)]
            if (
                state is State.DOWN
                and len(fresh) == len(reg.v)
                and all(vant.ok_streak >= cfg.recover_threshold for vant in fresh)
                and reg.down_at is not None
                and now - reg.down_at >= cfg.hold_s
            ):
                return [self._move(name, reg, now, State.UP, R_RECOVERED)]
            return []
        if target is State.SUSPECT:
            if state is State.UP:
                return [self._move(name, reg, now, State.SUSPECT, rule)]
            if state is State.SUSPECT:
                reg.reason = rule
            return []
        # target DOWN
        if state is State.UP:
            first = self._move(name, reg, now, State.SUSPECT, rule)
            return [first, self._move(name, reg, now, State.DOWN, rule)]
        if state is State.SUSPECT:
            return [self._move(name, reg, now, State.DOWN, rule)]
        return []

    def _evidence(self, reg: _Region, now: float) -> dict[str, Any]:
        cfg = self.config
        return {
            "vantages": {name: vant.view(now, cfg) for name, vant in reg.v.items()},
            "calls": reg.calls.view(),
            "fail_threshold": cfg.fail_threshold,
            "recover_threshold": cfg.recover_threshold,
        }

    def _move(self, name: str, reg: _Region, now: float, after: State, rule: str) -> Decision:
        before = reg.state
        assert (before, after) in ALLOWED_TRANSITIONS, (before, after)
        evidence = self._evidence(reg, now)
        applied = True
        if after is State.DOWN:
            reg.down_at = now
            if self.mode is Mode.AUTO:
                reg.excluded = True
            elif self.mode is Mode.CONFIRM:
                reg.pending_since = now
                applied = False
            else:
                applied = False
        elif before is State.DOWN:  # DOWN -> UP
            evidence["held_s"] = now - reg.down_at if reg.down_at is not None else None
            if reg.pending_since is not None:
                evidence["withdrawn_proposal_since"] = reg.pending_since
                reg.pending_since = None
            if reg.excluded:
                reg.excluded = False
                reg.up_at = now
            applied = self.mode is not Mode.MANUAL
        reg.state, reg.since, reg.reason, reg.evidence = after, now, rule, evidence
        return Decision(now, name, str(before), str(after), rule, evidence, str(self.mode), None, applied)

    # -- operator actions

    def approve(self, t: float, who: str, region: str | None = None) -> list[Decision]:
        """Confirm mode: apply the pending failover proposals (all, or `region`'s)."""
        out = []
        for name, reg in self._r.items():
            if reg.pending_since is None or (region is not None and name != region):
                continue
            wait = t - reg.pending_since
            reg.pending_since = None
            reg.excluded = True
            ev = {"proposed_at": t - wait, "proposal_rule": reg.reason, "proposal_evidence": reg.evidence}
            state = str(reg.state)
            out.append(Decision(t, name, state, state, R_APPROVED, ev, str(self.mode), who, True, wait, "approval"))
        return out

    def failover(self, t: float, to_region: str, who: str) -> list[Decision]:
        """Send every new call to `to_region` (any mode) until `release`."""
        if to_region not in self._r:
            raise ValueError(f"unknown region {to_region!r}; choose one of {self.regions}")
        before = self.routable_weights(t)
        self.pinned = to_region
        state = str(self._r[to_region].state)
        ev = {"weights_before": before, "weights_after": self.routable_weights(t)}
        return [Decision(t, to_region, state, state, R_FAILOVER, ev, str(self.mode), who, True, None, "routing")]

    def release(self, t: float, who: str) -> list[Decision]:
        """Drop the operator pin: routing goes back to the mode (frozen weights in manual, else health)."""
        if self.pinned is None:
            return []
        name, self.pinned = self.pinned, None
        state = str(self._r[name].state)
        ev = {"released": name, "weights_after": self.routable_weights(t)}
        return [Decision(t, name, state, state, R_RELEASE, ev, str(self.mode), who, True, None, "routing")]

    def set_mode(self, t: float, mode: Mode | str, who: str) -> list[Decision]:
        new = Mode(mode)
        old = self.mode
        if new is old:
            return []
        ev: dict[str, Any] = {"pinned": self.pinned}
        out = [Decision(t, GLOBAL, str(old), str(new), R_MODE, ev, str(new), who, True, None, "mode")]
        if new is Mode.MANUAL:
            self.frozen = self.routable_weights(t)
            dropped = [n for n, r in self._r.items() if r.pending_since is not None]
            for name in dropped:
                self._r[name].pending_since = None
            out[0].evidence.update(frozen_weights=dict(self.frozen), dropped_proposals=dropped)
        self.mode = new
        if new is not Mode.MANUAL:
            self.frozen = None
            for name, reg in self._r.items():
                if reg.state is not State.DOWN or reg.excluded:
                    continue
                state = str(reg.state)
                if new is Mode.AUTO:
                    reg.pending_since = None
                    reg.excluded = True
                    out.append(Decision(t, name, state, state, R_MODE_APPLIES, reg.evidence, str(new), who))
                elif reg.pending_since is None:
                    reg.pending_since = t
                    out.append(Decision(t, name, state, state, R_MODE_PROPOSES, reg.evidence, str(new), None, False))
        return out

    # -- routing

    def _factor(self, reg: _Region, now: float) -> float:
        cfg = self.config
        if reg.up_at is None or cfg.ramp_s <= 0 or now - reg.up_at >= cfg.ramp_s:
            return 1.0
        return cfg.ramp_start + (1.0 - cfg.ramp_start) * max(0.0, now - reg.up_at) / cfg.ramp_s

    def routable_weights(self, t: float) -> dict[str, float]:
        """region -> weight for new calls (configured units; 0 = no new calls)."""
        cfg = self.config
        total = sum(cfg.weights.values())
        if self.pinned is not None:
            return {name: (total if name == self.pinned else 0.0) for name in self.regions}
        if self.mode is Mode.MANUAL and self.frozen is not None:
            return dict(self.frozen)
        out = dict.fromkeys(self.regions, 0.0)
        if cfg.routing == "active-active":
            for name, reg in self._r.items():
                if not reg.excluded:
                    out[name] = cfg.weights[name] * self._factor(reg, t)
            return out
        share = 1.0  # active-standby: the first routable region takes all; a ramping one passes the rest on
        for name in cfg.order:
            reg = self._r[name]
            if reg.excluded:
                continue
            take = share * self._factor(reg, t)
            out[name] = take * total
            share -= take
            if share <= 1e-12:
                break
        return out

    def route_choice(self, t: float, rng: random.Random | float) -> RouteChoice:
        weights = self.routable_weights(t)
        live = [(name, w) for name, w in weights.items() if w > 0]
        if not live:  # nothing routable: the least bad region, never nothing
            order = {name: i for i, name in enumerate(self.config.order)}
            best = min(self.regions, key=lambda n: (self._r[n].excluded, _RANK[self._r[n].state], order[n]))
            self.last_route_fallback = True
            return RouteChoice(best, True, weights)
        u = rng.random() if isinstance(rng, random.Random) else float(rng)
        if not 0.0 <= u < 1.0:
            raise ValueError(f"a uniform draw must be in [0, 1), got {u}")
        point = u * sum(w for _, w in live)
        chosen = live[-1][0]  # floating-point leftovers land on the last one
        for name, w in live:
            point -= w
            if point < 0:
                chosen = name
                break
        self.last_route_fallback = False
        return RouteChoice(chosen, False, weights)

    def route(self, t: float, rng: random.Random | float) -> str:
        """The region for the next call (weighted among routable regions; never None, see `route_choice`)."""
        return self.route_choice(t, rng).region

    # -- views

    def state(self, region: str) -> State:
        return self._r[region].state

    def excluded(self, region: str) -> bool:
        return self._r[region].excluded

    def pending(self, t: float) -> list[dict[str, Any]]:
        return [
            {"region": n, "since": r.pending_since, "waiting_s": t - r.pending_since, "rule": r.reason}
            for n, r in self._r.items()
            if r.pending_since is not None
        ]

    def snapshot(self, t: float) -> dict[str, Any]:
        """A JSON-able view of everything: mode, per-region state and evidence, pending proposals."""
        cfg = self.config
        weights = self.routable_weights(t)
        regions = {}
        for name, reg in self._r.items():
            regions[name] = {
                "state": str(reg.state),
                "since": reg.since,
                "reason": reg.reason,
                "health": self._evidence(reg, t),
                "weight": weights[name],
                "configured_weight": cfg.weights[name],
                "excluded": reg.excluded,
                "pending": reg.pending_since is not None,
                "hold_s": cfg.hold_s,
                "evidence": reg.evidence,
            }
        return {
            "mode": str(self.mode),
            "routing": cfg.routing,
            "pinned": self.pinned,
            "frozen_weights": self.frozen,
            "regions": regions,
            "pending": self.pending(t),
            "last_route_fallback": self.last_route_fallback,
        }
