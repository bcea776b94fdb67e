"""Where an agents fleet registers: its home region, or a fallback region while home is down.

Pure: no I/O and no clock of its own. The agents supervisor (agents.agent) feeds it timestamped
observations of the home region (one clock, monotonic seconds) and acts on the decisions it returns.

Observations (`observe`, `observe_registrations`):
- probe sources, named by the caller: SIP OPTIONS to the home SBC (`sbc`), to the home PBX (`pbx`,
  optional); `probes` (constructor) lists those the home needs to be called healthy;
- `registrations`: the REGISTER results of the accounts registered through the home proxy (some
  registered: ok; none registered and some failed: fail; nothing known yet: no information). Only
  counted while the fleet is at home: at the fallback they say nothing about home, and they are
  forgotten at every switch;
- `fallback`: probes of the fallback SBC. Not a home signal: a fallback known to be failing is
  never moved to (the switch waits until it answers again).

State of home at any moment, from the latest value of each source:
- BAD: some source's latest value is a failure;
- GOOD: every probe source in `probes` answered ok and nothing counted is failing;
- neither (a probe source not heard from yet): no streak runs.

Rules (decisions are returned by the call that triggers them and kept in `decisions`):
- home -> fallback when home has been BAD continuously for `rehome_after_s` (rule `home-down`);
- fallback -> home when home has been GOOD continuously for `return_after_s` (default:
  `rehome_after_s`; rule `home-recovered`);
- a streak counts from the later of its own start and the previous decision, so two decisions are
  always at least a threshold apart, and there is one decision per sustained period at most;
- without a fallback (`has_fallback=False`) the fleet never leaves home.
`tick(t)` re-evaluates without a new observation (a streak that crosses its threshold between two
observations is acted on at the next tick).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

HOME = "home"
FALLBACK = "fallback"
PLACEMENTS = (HOME, FALLBACK)
SBC = "sbc"
PBX = "pbx"
REGISTRATIONS = "registrations"
FALLBACK_PROBE = "fallback"
#: Decision rules.
HOME_DOWN = "home-down"
HOME_RECOVERED = "home-recovered"


@dataclass(frozen=True)
class Reading:
    """The latest value of one source."""

    ok: bool
    detail: str
    t: float


@dataclass(frozen=True)
class Decision:
    t: float  # the caller's clock (the observation or tick that triggered it)
    placement: str  # where accounts go now: home | fallback
    previous: str
    rule: str  # home-down | home-recovered
    reason: str  # one line for humans
    streak_s: float  # how long home had been BAD (home-down) or GOOD (home-recovered)
    evidence: dict[str, str] = field(default_factory=dict)  # source -> "ok" | "fail: <detail>"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RehomePolicy:
    def __init__(
        self,
        rehome_after_s: float = 10.0,
        return_after_s: float | None = None,
        *,
        has_fallback: bool = True,
        probes: tuple[str, ...] = (SBC,),
    ) -> None:
        if rehome_after_s < 0 or (return_after_s is not None and return_after_s < 0):
            raise ValueError("thresholds must be >= 0")
        if not probes or REGISTRATIONS in probes or FALLBACK_PROBE in probes:
            raise ValueError("probes: one or more home probe source names")
        self.rehome_after_s = float(rehome_after_s)
        self.return_after_s = float(rehome_after_s if return_after_s is None else return_after_s)
        self.has_fallback = has_fallback
        self.probes = tuple(probes)
        self.placement = HOME
        self.decisions: list[Decision] = []
        self.readings: dict[str, Reading] = {}
        self.now = -math.inf
        self.bad_since: float | None = None
        self.good_since: float | None = None
        self.last_decision_t = -math.inf
        #: why a due switch to the fallback is not made (the fallback is failing), else None
        self.blocked: str | None = None

    # ------------------------------------------------------------------ inputs

    def observe(self, t: float, source: str, ok: bool, detail: str = "") -> Decision | None:
        """One probe result (`sbc`, `pbx`, ..., or `fallback`)."""
        if source == REGISTRATIONS:
            raise ValueError("use observe_registrations")
        t = self._clock(t)
        self.readings[source] = Reading(ok, "" if ok else detail or "failed", t)
        return self._step(t)

    def observe_registrations(self, t: float, registered: int, failed: int) -> Decision | None:
        """REGISTER results of the accounts registered through the home proxy right now: how many
        are registered and how many have failed (the rest: not tried yet). Ignored at the fallback."""
        t = self._clock(t)
        if self.placement == HOME:
            if registered > 0:
                self.readings[REGISTRATIONS] = Reading(True, "", t)
            elif failed > 0:
                self.readings[REGISTRATIONS] = Reading(False, f"all {failed} failed", t)
            else:
                self.readings.pop(REGISTRATIONS, None)
        return self._step(t)

    def tick(self, t: float) -> Decision | None:
        return self._step(self._clock(t))

    # ------------------------------------------------------------------ state

    def home_bad(self) -> bool:
        return any(not r.ok for src, r in self.readings.items() if src != FALLBACK_PROBE)

    def home_good(self) -> bool:
        return not self.home_bad() and all(src in self.readings for src in self.probes)

    def fallback_failing(self) -> bool:
        r = self.readings.get(FALLBACK_PROBE)
        return r is not None and not r.ok

    def evidence(self) -> dict[str, str]:
        return {src: "ok" if r.ok else f"fail: {r.detail}" for src, r in sorted(self.readings.items())}

    def snapshot(self) -> dict[str, Any]:
        """For status files: placement, the home streaks, the latest readings."""
        return {
            "placement": self.placement,
            "home": "bad" if self.home_bad() else "good" if self.home_good() else "unknown",
            "bad_for_s": None if self.bad_since is None else round(self.now - self.bad_since, 3),
            "good_for_s": None if self.good_since is None else round(self.now - self.good_since, 3),
            "readings": self.evidence(),
            "blocked": self.blocked,
            "decisions": len(self.decisions),
            "rehome_after_s": self.rehome_after_s,
            "return_after_s": self.return_after_s,
        }

    # ------------------------------------------------------------------ internals

    def _clock(self, t: float) -> float:
        """Time never goes backwards: an older timestamp counts as now."""
        self.now = max(self.now, float(t))
        return self.now

    def _streaks(self, t: float) -> None:
        if self.home_bad():
            self.bad_since = t if self.bad_since is None else self.bad_since
        else:
            self.bad_since = None
        if self.home_good():
            self.good_since = t if self.good_since is None else self.good_since
        else:
            self.good_since = None

    def _step(self, t: float) -> Decision | None:
        self._streaks(t)
        self.blocked = None
        if not self.has_fallback:
            return None
        if self.placement == HOME and self.bad_since is not None:
            since = max(self.bad_since, self.last_decision_t)
            if t - since < self.rehome_after_s:
                return None
            if self.fallback_failing():
                self.blocked = f"fallback failing: {self.readings[FALLBACK_PROBE].detail}"
                return None
            failing = ", ".join(f"{s}: {r.detail}" for s, r in sorted(self.readings.items()) if not r.ok)
            reason = f"home down for {t - since:.1f} s ({failing})"
            return self._switch(t, FALLBACK, HOME_DOWN, reason, t - since)
        if self.placement == FALLBACK and self.good_since is not None:
            since = max(self.good_since, self.last_decision_t)
            if t - since < self.return_after_s:
                return None
            reason = f"home healthy for {t - since:.1f} s ({', '.join(self.probes)} ok)"
            return self._switch(t, HOME, HOME_RECOVERED, reason, t - since)
        return None

    def _switch(self, t: float, to: str, rule: str, reason: str, streak: float) -> Decision:
        decision = Decision(t, to, self.placement, rule, reason, round(streak, 3), self.evidence())
        self.placement = to
        self.last_decision_t = t
        self.decisions.append(decision)
        # Registration results belong to where the accounts were: they say nothing about home now.
        self.readings.pop(REGISTRATIONS, None)
        self._streaks(t)
        return decision
