"""The steering policy: detection bound, one-path faults, passive evidence, fail-back damping, modes."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lab.steering.policy import (
    ALLOWED_TRANSITIONS,
    R_APPROVED,
    R_BOTH,
    R_CALLS_BAD,
    R_CALLS_OK,
    R_FAILOVER,
    R_MODE_APPLIES,
    R_ONE,
    R_ONE_CALLS_BAD,
    R_RECOVERED,
    R_STOPPED,
    CallEvidence,
    Decision,
    Mode,
    Policy,
    PolicyConfig,
    ProbeResult,
    State,
)

CFG = PolicyConfig()
IV, TO = CFG.interval_s, CFG.timeout_s
LAT = 0.002  # seconds: a healthy reply
A, B = "region-a", "region-b"


def schedule(
    start: float,
    end: float,
    phases: tuple[float, float] = (0.0, 0.1),
    region: str = A,
    fails: dict[str, tuple[float, float]] | None = None,
) -> list[ProbeResult]:
    """Both vantage points' probes sent in [start, end), as delivered: in completion order.

    `fails`: vantage -> [from, to) of send times whose probes fail (time out); the rest answer in 2 ms.
    """
    out = []
    for vantage, phase in zip(CFG.vantages, phases, strict=True):
        k = math.ceil((start - phase) / IV - 1e-9)
        while (sent := phase + k * IV) < end:
            lo, hi = (fails or {}).get(vantage, (math.inf, math.inf))
            if lo <= sent < hi:
                out.append(ProbeResult(sent + TO, region, vantage, False, None))
            else:
                out.append(ProbeResult(sent + LAT, region, vantage, True, LAT * 1000))
            k += 1
    return sorted(out, key=lambda r: r.t)


def feed(policy: Policy, items: list[ProbeResult | CallEvidence]) -> list[Decision]:
    out: list[Decision] = []
    for item in sorted(items, key=lambda x: x.t):
        out += policy.observe_probe(item) if isinstance(item, ProbeResult) else policy.observe_call(item)
    return out


def both_down(crash: float, until: float) -> dict[str, tuple[float, float]]:
    return {v: (crash, until) for v in CFG.vantages}


def first_send_at_or_after(t: float, phase: float) -> float:
    k = math.ceil((t - phase) / IV - 1e-9)
    return phase + k * IV if phase + k * IV >= t else phase + (k + 1) * IV


# -- 1. detection


def test_default_detection_bound_is_under_a_second() -> None:
    assert CFG.fail_threshold == 4
    assert CFG.detection_bound_s() == pytest.approx(0.9)
    assert CFG.detection_bound_s() <= 1.0


def check_crash(crash: float, phases: tuple[float, float]) -> None:
    policy = Policy(CFG, t=0.0)
    decisions = feed(policy, schedule(0.0, crash + 5.0, phases, fails=both_down(crash, math.inf)))
    downs = [d for d in decisions if d.after == "DOWN"]
    assert downs, "a clean crash must be declared DOWN"
    firsts = [first_send_at_or_after(crash, p) for p in phases]
    expected = max(firsts) + CFG.detection_bound_s()
    assert downs[0].t == pytest.approx(expected, abs=1e-9)
    assert downs[0].rule == R_BOTH and downs[0].applied
    # measured from the first lost probe of the vantage point failing last: exactly the bound
    assert downs[0].t - max(firsts) <= CFG.detection_bound_s() + 1e-9
    # measured from the crash instant: under timeout + N * interval (the crash may fall just after a probe)
    assert downs[0].t - crash < TO + CFG.fail_threshold * IV + 1e-9
    assert [(d.before, d.after) for d in decisions] == [("UP", "SUSPECT"), ("SUSPECT", "DOWN")]
    assert policy.routable_weights(downs[0].t)[A] == 0.0


@pytest.mark.parametrize("phases", [(0.0, 0.0), (0.0, 0.1), (0.03, 0.17), (0.19, 0.01)])
@pytest.mark.parametrize("crash", [10.0, 10.001, 10.1, 10.199])
def test_clean_crash_detected_exactly_at_the_bound(crash: float, phases: tuple[float, float]) -> None:
    check_crash(crash, phases)


@settings(max_examples=150, deadline=None)
@given(
    crash=st.floats(min_value=1.0, max_value=30.0),
    phase_a=st.floats(min_value=0.0, max_value=IV, exclude_max=True),
    phase_b=st.floats(min_value=0.0, max_value=IV, exclude_max=True),
)
def test_clean_crash_detection_any_time_any_phase(crash: float, phase_a: float, phase_b: float) -> None:
    check_crash(crash, (phase_a, phase_b))


def test_a_success_overtaking_a_timeout_breaks_the_run() -> None:
    """N lost probes followed by an answered one never show as a run of N: the answer is known first."""
    policy = Policy(CFG, t=0.0)
    n = CFG.fail_threshold
    fails = {v: (10.0, 10.0 + n * IV - 1e-6) for v in CFG.vantages}  # exactly N lost, then answers again
    decisions = feed(policy, schedule(0.0, 20.0, (0.0, 0.1), fails=fails))
    assert not [d for d in decisions if d.after == "DOWN"]
    fails = {v: (10.0, 10.0 + (n + 1) * IV - 1e-6) for v in CFG.vantages}  # N + 1 lost: the Nth shows
    decisions = feed(Policy(CFG, t=0.0), schedule(0.0, 20.0, (0.0, 0.1), fails=fails))
    assert [d for d in decisions if d.after == "DOWN"]


# -- 4. one vantage point, passive evidence


@pytest.mark.parametrize("vantage", CFG.vantages)
def test_one_vantage_failing_is_suspect_not_down(vantage: str) -> None:
    policy = Policy(CFG, t=0.0)
    decisions = feed(policy, schedule(0.0, 60.0, fails={vantage: (5.0, 40.0)}))
    assert [(d.before, d.after, d.rule) for d in decisions] == [
        ("UP", "SUSPECT", R_ONE),
        ("SUSPECT", "UP", R_STOPPED),
    ]
    assert decisions[0].evidence["vantages"][vantage]["fail_streak"] >= CFG.fail_threshold
    assert policy.state(A) is State.UP


def test_probes_failing_while_calls_succeed_is_suspect_not_down() -> None:
    policy = Policy(CFG, t=0.0)
    # steady traffic (a call answered every 0.5 s) keeps succeeding while every probe fails
    calls: list[ProbeResult | CallEvidence] = [CallEvidence(t / 2, A, True, "sbc") for t in range(0, 120)]
    decisions = feed(policy, [*schedule(0.0, 60.0, fails=both_down(5.0, 40.0)), *calls])
    assert not [d for d in decisions if d.after == "DOWN"]
    assert [d.after for d in decisions] == ["SUSPECT", "UP"]
    policy = Policy(CFG, t=0.0)
    feed(policy, [*schedule(0.0, 30.0, fails=both_down(5.0, 40.0)), *calls[:60]])
    assert (policy.state(A), policy.snapshot(30.0)["regions"][A]["reason"]) == (State.SUSPECT, R_CALLS_OK)
    assert policy.routable_weights(30.0)[A] == 50.0


def test_calls_answered_before_a_crash_do_not_delay_its_detection() -> None:
    """Under load, successes from before the probes began failing say nothing about the region now."""
    policy = Policy(CFG, t=0.0)
    crash = 10.05
    calls: list[ProbeResult | CallEvidence] = [CallEvidence(t / 4, A, True, "caller") for t in range(0, 40)]
    decisions = feed(policy, [*schedule(0.0, 20.0, fails=both_down(crash, math.inf)), *calls])
    down = next(d for d in decisions if d.after == "DOWN")
    assert down.rule == R_BOTH
    assert down.t - crash <= CFG.detection_bound_s() + CFG.interval_s + 1e-9


def test_probes_failing_after_the_calls_stop_is_down() -> None:
    """Call successes only count while recent: when they age out, the probes decide."""
    policy = Policy(CFG, t=0.0)
    calls: list[ProbeResult | CallEvidence] = [CallEvidence(t, A, True, "sbc") for t in range(0, 20, 2)]
    decisions = feed(policy, [*schedule(0.0, 60.0, fails=both_down(10.0, math.inf)), *calls])
    down = next(d for d in decisions if d.after == "DOWN")
    assert 18.0 + CFG.passive_window_s <= down.t < 18.0 + CFG.passive_window_s + 0.3


def test_a_failing_call_lifts_the_passive_veto_at_once() -> None:
    policy = Policy(CFG, t=0.0)
    items: list[ProbeResult | CallEvidence] = [CallEvidence(t, A, True, "sbc") for t in range(0, 12, 2)]
    items += [CallEvidence(13.0, A, False, "caller"), CallEvidence(13.5, A, False, "caller")]
    decisions = feed(policy, [*schedule(0.0, 30.0, fails=both_down(10.0, math.inf)), *items])
    down = next(d for d in decisions if d.after == "DOWN")
    assert down.t == 13.0 and down.rule == R_BOTH  # newest call outcome is a failure: no veto


def test_one_vantage_plus_failing_calls_is_down() -> None:
    policy = Policy(CFG, t=0.0)
    items: list[ProbeResult | CallEvidence] = [CallEvidence(12.0 + t, A, False, "caller") for t in range(3)]
    decisions = feed(policy, [*schedule(0.0, 30.0, fails={"carrier": (10.0, math.inf)}), *items])
    assert [(d.after, d.rule) for d in decisions][:2] == [("SUSPECT", R_ONE), ("DOWN", R_ONE_CALLS_BAD)]
    assert decisions[1].t == 13.0


def test_failing_calls_with_healthy_probes_is_only_suspect() -> None:
    policy = Policy(CFG, t=0.0)
    items: list[ProbeResult | CallEvidence] = [CallEvidence(5.0 + t, A, False, "caller") for t in range(3)]
    decisions = feed(policy, [*schedule(0.0, 30.0), *items])
    assert [(d.after, d.rule) for d in decisions] == [("SUSPECT", R_CALLS_BAD), ("UP", R_STOPPED)]
    assert decisions[1].t > 6.0 + CFG.passive_window_s  # back once fewer than passive_min_fail remain


def test_a_silent_vantage_point_is_no_evidence() -> None:
    """Only steering's prober reports (the carrier's is dead): its failures alone never make DOWN."""
    policy = Policy(CFG, t=0.0)
    only = [r for r in schedule(0.0, 40.0, fails=both_down(10.0, math.inf)) if r.vantage == "steering"]
    decisions = feed(policy, list(only))
    assert [d.after for d in decisions] == ["SUSPECT"]


# -- 3. fail-back damping and slow start


def test_fail_back_waits_for_the_hold_then_ramps() -> None:
    policy = Policy(CFG, t=0.0)
    decisions = feed(policy, schedule(0.0, 40.0, fails=both_down(10.0, 12.0)))
    down = next(d for d in decisions if d.after == "DOWN")
    up = next(d for d in decisions if d.before == "DOWN")
    assert up.rule == R_RECOVERED
    assert up.t - down.t >= CFG.hold_s
    assert up.t - down.t < CFG.hold_s + IV + LAT + 1e-9  # the first probe after the hold brings it back
    assert up.evidence["held_s"] == pytest.approx(up.t - down.t)
    w = policy.routable_weights
    assert w(up.t)[A] == pytest.approx(5.0)  # 10 % of 50
    assert w(up.t + CFG.ramp_s / 2)[A] == pytest.approx(27.5)
    assert w(up.t + CFG.ramp_s)[A] == pytest.approx(50.0)


def test_fail_back_needs_m_successes_from_both_vantages() -> None:
    policy = Policy(CFG, t=0.0)
    fails = {"steering": (10.0, 40.0), "carrier": (10.0, 12.0)}
    decisions = feed(policy, schedule(0.0, 60.0, fails=fails))
    up = next(d for d in decisions if d.before == "DOWN")
    assert up.t > 40.0 + (CFG.recover_threshold - 1) * IV
    assert all(v["ok_streak"] >= CFG.recover_threshold for v in up.evidence["vantages"].values())


# -- modes


def crash_feed(policy: Policy, until: float = 20.0) -> list[Decision]:
    return feed(policy, schedule(0.0, until, fails=both_down(10.0, math.inf)))


def test_confirm_mode_proposes_and_keeps_routing_until_approved() -> None:
    policy = Policy(CFG, mode="confirm", t=0.0)
    decisions = crash_feed(policy)
    down = next(d for d in decisions if d.after == "DOWN")
    assert not down.applied and down.mode == "confirm"
    assert policy.pending(down.t)[0]["region"] == A
    assert policy.snapshot(down.t)["pending"][0]["region"] == A
    assert policy.routable_weights(down.t + 5)[A] == 50.0
    assert {policy.route(down.t + 5, u / 10) for u in range(10)} == {A, B}
    approved = policy.approve(down.t + 7.5, "alice")
    assert len(approved) == 1
    a = approved[0]
    assert (a.rule, a.approved_by, a.applied, a.kind) == (R_APPROVED, "alice", True, "approval")
    assert a.wait_s == pytest.approx(7.5)
    assert policy.routable_weights(down.t + 8)[A] == 0.0
    assert {policy.route(down.t + 8, u / 10) for u in range(10)} == {B}
    assert policy.approve(down.t + 9, "alice") == []  # nothing left to approve


def test_confirm_proposal_is_withdrawn_if_the_region_recovers_first() -> None:
    policy = Policy(CFG, mode="confirm", t=0.0)
    decisions = feed(policy, schedule(0.0, 40.0, fails=both_down(10.0, 12.0)))
    up = next(d for d in decisions if d.before == "DOWN")
    assert "withdrawn_proposal_since" in up.evidence
    assert policy.pending(40.0) == [] and policy.approve(40.0, "bob") == []


def test_manual_mode_only_the_operator_moves_traffic() -> None:
    policy = Policy(CFG, mode="manual", t=0.0)
    decisions = crash_feed(policy)
    down = next(d for d in decisions if d.after == "DOWN")
    assert not down.applied  # advisory
    assert policy.routable_weights(20.0) == {A: 50.0, B: 50.0}
    [fo] = policy.failover(20.0, B, "carol")
    assert (fo.rule, fo.kind, fo.approved_by) == (R_FAILOVER, "routing", "carol")
    assert {policy.route(20.0, u / 10) for u in range(10)} == {B}
    assert policy.release(21.0, "carol")[0].evidence["released"] == B
    assert policy.routable_weights(21.0) == {A: 50.0, B: 50.0}  # back to the frozen weights
    changes = policy.set_mode(22.0, "auto", "carol")
    assert [d.rule for d in changes] == ["mode-change", R_MODE_APPLIES]
    assert policy.routable_weights(22.0) == {A: 0.0, B: 50.0}


def test_manual_mode_freezes_the_weights_in_force() -> None:
    policy = Policy(CFG, t=0.0)
    crash_feed(policy)
    assert policy.routable_weights(20.0) == {A: 0.0, B: 50.0}
    policy.set_mode(20.0, Mode.MANUAL, "dave")
    feed(policy, schedule(20.0, 60.0))  # region-a recovers: health says UP, traffic stays where it was
    assert policy.state(A) is State.UP
    assert policy.routable_weights(60.0) == {A: 0.0, B: 50.0}
    policy.set_mode(60.0, Mode.AUTO, "dave")
    assert policy.routable_weights(60.0)[A] > 0


def test_operator_failover_pins_in_auto_mode_too() -> None:
    policy = Policy(CFG, t=0.0)
    policy.failover(1.0, A, "erin")
    crash_feed(policy)
    assert policy.route(20.0, 0.99) == A  # the operator's word stands until release
    policy.release(20.0, "erin")
    assert policy.route(20.0, 0.0) == B


def test_entering_confirm_mode_proposes_unapplied_downs() -> None:
    policy = Policy(CFG, mode="manual", t=0.0)
    crash_feed(policy)
    out = policy.set_mode(20.0, "confirm", "frank")
    assert [d.rule for d in out] == ["mode-change", "mode-confirm-proposes-down"]
    assert policy.approve(25.0, "frank")[0].wait_s == pytest.approx(5.0)
    assert policy.set_mode(26.0, "confirm", "frank") == []


# -- routing


def test_route_never_returns_none_and_prefers_the_least_bad() -> None:
    policy = Policy(CFG, t=0.0)
    feed(
        policy,
        [
            *schedule(0.0, 20.0, fails=both_down(10.0, math.inf)),
            *schedule(0.0, 20.0, fails=both_down(11.0, math.inf), region=B),
        ],
    )
    assert policy.state(A) is State.DOWN and policy.state(B) is State.DOWN
    choice = policy.route_choice(20.0, random.Random(1))
    assert choice.region == A and choice.fallback  # all DOWN: configured order breaks the tie
    assert policy.snapshot(20.0)["last_route_fallback"] is True


def test_route_is_weighted_and_accepts_a_uniform_draw() -> None:
    cfg = PolicyConfig(weights={A: 75.0, B: 25.0})
    policy = Policy(cfg, t=0.0)
    assert policy.route(0.0, 0.74) == A and policy.route(0.0, 0.75) == B
    rng = random.Random(7)
    picks = [policy.route(0.0, rng) for _ in range(4000)]
    assert 0.72 < picks.count(A) / 4000 < 0.78
    with pytest.raises(ValueError):
        policy.route(0.0, 1.0)


def test_active_standby_takes_the_first_routable_and_ramps_back() -> None:
    cfg = PolicyConfig(routing="active-standby", standby_order=[B, A])
    policy = Policy(cfg, t=0.0)
    assert policy.routable_weights(0.0) == {A: 0.0, B: 100.0}
    items = schedule(0.0, 40.0, fails=both_down(10.0, 12.0), region=B)
    decisions = feed(policy, [r for r in items if r.t < 15.0])
    assert policy.routable_weights(15.0) == {A: 100.0, B: 0.0}
    decisions += feed(policy, [r for r in items if r.t >= 15.0])
    up = next(d for d in decisions if d.before == "DOWN")
    w = policy.routable_weights(up.t)
    assert w[B] == pytest.approx(10.0) and w[A] == pytest.approx(90.0)  # slow start, rest to the standby
    assert policy.routable_weights(up.t + CFG.ramp_s) == {A: 0.0, B: 100.0}


def test_snapshot_is_json_and_complete() -> None:
    policy = Policy(CFG, mode="confirm", t=0.0)
    crash_feed(policy)
    snap = policy.snapshot(20.0)
    json.dumps(snap)
    ra = snap["regions"][A]
    assert ra["state"] == "DOWN" and ra["reason"] == R_BOTH and ra["weight"] == 50.0 and ra["pending"]
    assert ra["hold_s"] == CFG.hold_s and ra["health"]["vantages"]["carrier"]["fail_streak"] > 0
    assert snap["mode"] == "confirm" and snap["pending"][0]["region"] == A
    json.dumps([d.to_dict() for d in crash_feed(Policy(CFG, t=0.0))])


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError):
        PolicyConfig(standby_order=[A])
    with pytest.raises(ValidationError):
        PolicyConfig(weights={A: -1.0})
    with pytest.raises(ValidationError):
        PolicyConfig(weights={A: 0.0, B: 0.0})
    with pytest.raises(ValidationError):
        PolicyConfig(fail_threshold=0)
    with pytest.raises(ValidationError):
        PolicyConfig(window_s=1.0)  # the ratio rule could never collect its samples
    with pytest.raises(ValueError):
        Policy(CFG, regions=[A, "region-c"])
    with pytest.raises(ValueError):
        Policy(CFG).observe_probe(ProbeResult(0.0, A, "moon", True, 1.0))


def test_failure_ratio_catches_flapping_that_breaks_the_streaks() -> None:
    """Three of every four probes lost, forever: no run reaches N on both sides, the ratio does."""
    policy = Policy(CFG, t=0.0)
    items = []
    for vantage, phase in zip(CFG.vantages, (0.0, 0.1), strict=True):
        for k in range(300):
            sent = phase + k * IV
            ok = sent < 10.0 or k % 4 == 0
            items.append(ProbeResult(sent + (LAT if ok else TO), A, vantage, ok, LAT * 1000 if ok else None))
    decisions = feed(policy, list(items))
    assert [d.rule for d in decisions if d.after == "DOWN"] == ["failure-ratio"]


# -- 3. invariants over arbitrary evidence

EVENT = st.tuples(
    st.floats(min_value=0.0, max_value=3.0),  # time step
    st.sampled_from(["probe", "probe", "probe", "probe", "call", "tick"]),
    st.sampled_from([A, B]),
    st.sampled_from(CFG.vantages),
    st.booleans(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(EVENT, max_size=250),
    mode=st.sampled_from(["auto", "confirm", "manual"]),
    hold=st.sampled_from([0.0, 2.0, 10.0]),
    draws=st.lists(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), min_size=1, max_size=5),
)
def test_invariants_under_arbitrary_evidence(
    events: list[tuple[float, str, str, str, bool]], mode: str, hold: float, draws: list[float]
) -> None:
    cfg = PolicyConfig(hold_s=hold, fail_threshold=2, recover_threshold=2)
    policy = Policy(cfg, mode=mode, t=0.0)
    state = {A: State.UP, B: State.UP}
    down_at: dict[str, float] = {}
    t = 0.0
    for dt, kind, region, vantage, ok in events:
        t += dt
        if kind == "probe":
            decisions = policy.observe_probe(ProbeResult(t, region, vantage, ok, 1.0 if ok else None))
        elif kind == "call":
            decisions = policy.observe_call(CallEvidence(t, region, ok, "test"))
        else:
            decisions = policy.tick(t)
        for d in decisions:
            assert d.t == t
            if d.kind != "health":
                continue
            before, after = State(d.before), State(d.after)
            assert (before, after) in ALLOWED_TRANSITIONS
            assert state[d.region] is before
            state[d.region] = after
            if after is State.DOWN:
                down_at[d.region] = t
            if before is State.DOWN:
                assert t - down_at[d.region] >= hold  # never back before the hold
        for name in (A, B):
            assert policy.state(name) is state[name]
            if mode == "auto":
                assert policy.excluded(name) == (state[name] is State.DOWN)
            else:
                assert not policy.excluded(name)
        weights = policy.routable_weights(t)
        for u in draws:
            choice = policy.route_choice(t, u)
            if any(w > 0 for w in weights.values()):
                assert not choice.fallback and weights[choice.region] > 0
                assert not policy.excluded(choice.region)
            else:
                assert choice.fallback
