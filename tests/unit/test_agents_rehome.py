"""The re-homing state machine (agents.rehome): examples and properties (hypothesis).

The properties are checked against a replay of the observations that is written independently of
the implementation: home's state at any moment is a step function of the latest value of each
source, and "BAD (GOOD) continuously for D" is checked as a window over that function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.rehome import FALLBACK, HOME, HOME_DOWN, HOME_RECOVERED, PBX, SBC, RehomePolicy

D = 10.0


def test_sustained_sbc_failure_rehomes_after_the_delay_and_returns_after_recovery() -> None:
    p = RehomePolicy(D)
    assert p.return_after_s == D
    for t in range(5):
        assert p.observe(t, SBC, True) is None
    for t in range(5, 15):  # failing from t=5: 9 s at t=14, not yet
        assert p.observe(t, SBC, False, "timeout") is None
        assert p.placement == HOME
    d = p.observe(15, SBC, False, "timeout")
    assert d is not None and d.placement == FALLBACK and d.previous == HOME and d.rule == HOME_DOWN
    assert d.t == 15 and d.streak_s == 10.0 and d.evidence == {SBC: "fail: timeout"}
    assert d.reason == "home down for 10.0 s (sbc: timeout)"
    for t in range(16, 26):  # healthy from 16: 9 s at 25
        assert p.observe(t, SBC, True) is None
    d = p.observe(26, SBC, True)
    assert d is not None and d.placement == HOME and d.rule == HOME_RECOVERED and d.streak_s == 10.0
    assert [x.placement for x in p.decisions] == [FALLBACK, HOME]


def test_a_single_success_resets_the_outage() -> None:
    p = RehomePolicy(D)
    for t in range(0, 9):
        p.observe(t, SBC, False)
    p.observe(9, SBC, True)
    for t in range(10, 19):
        assert p.observe(t, SBC, False) is None
    assert p.observe(20, SBC, False) is not None  # 10 s since t=10


def test_tick_acts_between_observations() -> None:
    p = RehomePolicy(D)
    p.observe(0, SBC, False)
    assert p.tick(9.9) is None
    d = p.tick(10.0)
    assert d is not None and d.placement == FALLBACK


def test_pbx_probe_and_registrations_count_at_home() -> None:
    p = RehomePolicy(D, probes=(SBC, PBX))
    p.observe(0, SBC, True)
    assert not p.home_good()  # the PBX has not answered yet
    p.observe(0, PBX, False, "timeout")
    assert p.home_bad()
    p.observe(5, PBX, True)
    assert p.home_good()
    # registrations: none registered and some failed is a failure; nothing known is no information
    p.observe_registrations(6, registered=0, failed=0)
    assert p.home_good()
    p.observe_registrations(7, registered=0, failed=3)
    assert p.home_bad()
    d = p.observe_registrations(17, registered=0, failed=4)
    assert d is not None and d.placement == FALLBACK and "registrations: all 4 failed" in d.reason
    # at the fallback, registration results (of accounts elsewhere) are not a home signal
    assert p.observe_registrations(18, registered=0, failed=9) is None
    assert p.home_good()
    d = p.tick(27)
    assert d is not None and d.placement == HOME  # probes were fine all along: 10 s after the switch


def test_unknown_probe_does_not_start_a_return() -> None:
    p = RehomePolicy(1.0, probes=(SBC, PBX))
    p.observe(0, SBC, False)
    assert p.observe(1, SBC, False) is not None
    p.observe(2, SBC, True)  # PBX never heard from
    assert p.tick(100) is None and p.placement == FALLBACK


def test_no_fallback_never_leaves_home() -> None:
    p = RehomePolicy(D, has_fallback=False)
    for t in range(100):
        assert p.observe(t, SBC, False) is None
    assert p.placement == HOME and not p.decisions and p.snapshot()["home"] == "bad"


def test_a_failing_fallback_is_not_moved_to() -> None:
    p = RehomePolicy(D)
    p.observe(0, "fallback", False, "timeout")
    for t in range(20):
        assert p.observe(t, SBC, False) is None
    assert p.blocked == "fallback failing: timeout"
    d = p.observe(20, "fallback", True)
    assert d is not None and d.placement == FALLBACK and p.blocked is None


def test_fallback_probe_is_not_a_home_signal() -> None:
    p = RehomePolicy(D)
    p.observe(0, SBC, True)
    p.observe(0, "fallback", False)
    assert p.home_good() and not p.home_bad()


def test_time_never_goes_backwards() -> None:
    p = RehomePolicy(D)
    p.observe(100, SBC, False)
    p.observe(50, SBC, False)  # counts as t=100
    assert p.tick(109) is None
    assert p.tick(110) is not None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        RehomePolicy(-1)
    with pytest.raises(ValueError):
        RehomePolicy(1, probes=())
    with pytest.raises(ValueError):
        RehomePolicy(1).observe(0, "registrations", True)


def test_snapshot() -> None:
    p = RehomePolicy(D, 5)
    p.observe(0, SBC, False, "timeout")
    p.tick(4)
    snap = p.snapshot()
    assert snap["placement"] == HOME and snap["home"] == "bad" and snap["bad_for_s"] == 4.0
    assert snap["readings"] == {SBC: "fail: timeout"} and snap["return_after_s"] == 5.0


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Obs:
    t: float
    source: str  # sbc | pbx | registrations
    ok: bool


def timelines(sources: tuple[str, ...] = (SBC,), max_dt: float = 3.0) -> st.SearchStrategy[list[Obs]]:
    """Observations at strictly increasing times, failures in bursts of varied length."""
    step = st.tuples(
        st.floats(0.05, max_dt, allow_nan=False),
        st.sampled_from(sources),
        st.booleans(),
        st.integers(1, 12),  # repeat: bursts make sustained periods likely
    )

    def build(steps: list[tuple[float, str, bool, int]]) -> list[Obs]:
        out: list[Obs] = []
        t = 0.0
        for dt, src, ok, n in steps:
            for _ in range(n):
                t = round(t + dt, 3)
                out.append(Obs(t, src, ok))
        return out

    return st.lists(step, max_size=40).map(build)


def run(policy: RehomePolicy, obs: list[Obs]) -> list[str]:
    """Feed `obs`; the placement after each one."""
    after: list[str] = []
    for o in obs:
        if o.source == "registrations":
            policy.observe_registrations(o.t, registered=int(o.ok), failed=int(not o.ok))
        else:
            policy.observe(o.t, o.source, o.ok)
        after.append(policy.placement)
    return after


def states(obs: list[Obs], probes: tuple[str, ...], placements: list[str]) -> list[str]:
    """Home's state after each observation: bad / good / unknown (the replay)."""
    latest: dict[str, bool] = {}
    out: list[str] = []
    placement = HOME
    for o, after in zip(obs, placements, strict=True):
        if o.source == "registrations" and placement != HOME:
            pass  # ignored at the fallback
        else:
            latest[o.source] = o.ok
        if after != placement:  # a switch forgets registration results
            latest.pop("registrations", None)
            placement = after
        if not all(latest.values()):
            out.append("bad")
        elif all(p in latest for p in probes):
            out.append("good")
        else:
            out.append("unknown")
    return out


def held(obs: list[Obs], st_: list[str], want: str, t0: float, t1: float) -> bool:
    """Was home `want` at every moment of [t0, t1]? (the state at t0 is the one the last observation
    at or before t0 left; t0 before the first observation: unknown, so no)."""
    before = [i for i, o in enumerate(obs) if o.t <= t0]
    if not before or st_[before[-1]] != want:
        return False
    return all(st_[i] == want for i, o in enumerate(obs) if t0 < o.t <= t1)


@settings(max_examples=300, deadline=None)
@given(timelines(), st.floats(0.5, 15.0), st.floats(0.5, 15.0))
def test_never_switches_on_failures_shorter_than_the_delay(obs: list[Obs], d: float, r: float) -> None:
    """A run of failures (first failure .. last failure before a success) shorter than the delay
    never moves the fleet."""
    runs: list[float] = []
    start: float | None = None
    for o in obs:
        if not o.ok:
            start = o.t if start is None else start
            runs.append(o.t - start)
        else:
            start = None
    p = RehomePolicy(d, r)
    run(p, obs)
    if all(x < d for x in runs):
        assert p.decisions == []


@settings(max_examples=300, deadline=None)
@given(timelines((SBC, PBX, "registrations")), st.floats(0.5, 15.0), st.floats(0.5, 15.0))
def test_every_decision_follows_a_sustained_period(obs: list[Obs], d: float, r: float) -> None:
    """Each move to the fallback: home BAD for the whole [t - d, t]; each return: GOOD for the whole
    [t - r, t]; placements alternate; two decisions are at least the later one's threshold apart."""
    probes = (SBC, PBX)
    p = RehomePolicy(d, r, probes=probes)
    placements = run(p, obs)
    st_ = states(obs, probes, placements)
    previous = HOME
    last_t = -math.inf
    for dec in p.decisions:
        assert dec.previous == previous and dec.placement != previous
        need = d if dec.placement == FALLBACK else r
        assert dec.t - last_t >= need - 1e-9
        # the state just before the decision (the decision itself may forget registrations)
        i = max(k for k, o in enumerate(obs) if o.t <= dec.t)
        pre = [*st_[:i], _state_before_switch(obs, i, probes, placements)]
        # (1e-9: t - need can round below the first observation of the streak, e.g. 0.719 - 0.5)
        assert held(obs[: i + 1], pre, "bad" if dec.placement == FALLBACK else "good", dec.t - need + 1e-9, dec.t)
        previous, last_t = dec.placement, dec.t
    assert p.placement == previous


def _state_before_switch(obs: list[Obs], i: int, probes: tuple[str, ...], placements: list[str]) -> str:
    """Home's state at observation i as the policy judged it (before a switch there cleared anything)."""
    latest: dict[str, bool] = {}
    placement = HOME
    for k, o in enumerate(obs[: i + 1]):
        if not (o.source == "registrations" and placement != HOME):
            latest[o.source] = o.ok
        if k < i and placements[k] != placement:
            latest.pop("registrations", None)
            placement = placements[k]
    if not all(latest.values()):
        return "bad"
    return "good" if all(x in latest for x in probes) else "unknown"


@settings(max_examples=300, deadline=None)
@given(timelines((SBC, PBX, "registrations")), st.floats(0.5, 15.0), st.floats(0.5, 15.0))
def test_sustained_periods_always_switch(obs: list[Obs], d: float, r: float) -> None:
    """Liveness: after every observation, if home has been BAD for >= d (counted from the later of
    the streak start and the last decision) the fleet is at the fallback; GOOD for >= r: at home."""
    probes = (SBC, PBX)
    p = RehomePolicy(d, r, probes=probes)
    placements: list[str] = []
    last_decision = -math.inf
    for k, o in enumerate(obs):
        placements.extend(run(p, [o]))
        if p.decisions:
            last_decision = p.decisions[-1].t
        st_ = states(obs[: k + 1], probes, placements)
        for want, need, where in (("bad", d, FALLBACK), ("good", r, HOME)):
            if st_[-1] != want:
                continue
            # the streak's start: the earliest observation since which the state stayed `want`
            j = k
            while j > 0 and st_[j - 1] == want:
                j -= 1
            since = max(obs[j].t, last_decision)
            if o.t - since >= need:
                assert p.placement == where, (want, since, o.t, p.decisions)


@settings(max_examples=300, deadline=None)
@given(timelines(), st.floats(0.5, 15.0), st.floats(0.5, 15.0))
def test_decisions_are_bounded_by_the_sustained_periods(obs: list[Obs], d: float, r: float) -> None:
    """No flapping: at most one decision per maximal run of failures lasting >= d or of successes
    lasting >= r (a run lasts from its first to its last observation)."""
    sustained = 0
    i = 0
    while i < len(obs):
        j = i
        while j + 1 < len(obs) and obs[j + 1].ok == obs[i].ok:
            j += 1
        if obs[j].t - obs[i].t >= (r if obs[i].ok else d):
            sustained += 1
        i = j + 1
    p = RehomePolicy(d, r)
    run(p, obs)
    assert len(p.decisions) <= sustained


@settings(max_examples=200, deadline=None)
@given(timelines((SBC, PBX, "registrations")), st.floats(0.0, 15.0))
def test_without_a_fallback_the_fleet_stays_home(obs: list[Obs], d: float) -> None:
    p = RehomePolicy(d, has_fallback=False, probes=(SBC, PBX))
    assert set(run(p, obs)) <= {HOME} and p.decisions == []


@settings(max_examples=200, deadline=None)
@given(
    timelines(),
    st.floats(0.5, 15.0),
    st.floats(0.5, 15.0),
    st.floats(0.0, 5.0),
    st.floats(0.1, 1.0),
)
def test_outage_then_recovery_round_trip(prefix: list[Obs], d: float, r: float, gap: float, every: float) -> None:
    """Whatever happened before: an outage observed every `every` s for longer than d ends at the
    fallback (at the first observation >= d into it, if it was home when it began); a recovery longer
    than r then brings the fleet home."""
    p = RehomePolicy(d, r)
    t_ok = (prefix[-1].t if prefix else 0.0) + 0.01
    run(p, [*prefix, Obs(t_ok, SBC, True)])  # the outage below starts fresh
    t0 = t_ok + gap + 0.01
    was = p.placement
    outage = [Obs(round(t0 + k * every, 3), SBC, False) for k in range(math.ceil(d / every) + 2)]
    placements = run(p, outage)
    assert p.placement == FALLBACK
    if was == HOME:
        first_due = next(k for k, o in enumerate(outage) if o.t - outage[0].t >= d)
        assert placements[first_due] == FALLBACK and FALLBACK not in placements[:first_due]
    t1 = outage[-1].t + every
    recovery = [Obs(round(t1 + k * every, 3), SBC, True) for k in range(math.ceil(r / every) + 2)]
    placements = run(p, recovery)
    assert p.placement == HOME
    first_due = next(k for k, o in enumerate(recovery) if o.t - recovery[0].t >= r)
    assert placements[first_due] == HOME and HOME not in placements[:first_due]
