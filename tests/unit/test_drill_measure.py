"""lab.drill.measure on hand-built logs: every measurement, and properties of RTO and success."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.drill import measure
from lab.drill.measure import Bin, FaultWindow
from tests.unit.drill_logs import T0, agent_call, call, decision, fault, invoke, login

A, B = "region-a", "region-b"


def test_whose_uses_the_field_then_the_end_reason() -> None:
    assert measure.whose(call(0)) is None
    assert measure.whose(call(0, "fail")) == "customer"
    assert measure.whose(call(0, "fail", end_reason="capacity")) == "harness"
    assert measure.whose(call(0, "fail", end_reason="capacity", whose="customer")) == "customer"
    assert measure.whose(call(0, "info", end_reason="worker_lost")) == "harness"
    assert measure.whose(call(0, "info", end_reason="stopped")) is None
    assert measure.whose(call(0, "fail", end_reason="rejected", whose="harness")) == "harness"


def test_call_records_keeps_one_per_call_of_the_given_runs() -> None:
    a = call(1)
    other = call(2, run_id="r9")
    evs = [a, a, other, {"kind": "steering_decision"}]
    assert [r["call_id"] for r in measure.call_records(evs, ["r1"])] == [a["call_id"]]
    assert len(measure.call_records(evs)) == 2


def test_success_series_bins_by_invoke_second_and_keeps_harness_apart() -> None:
    recs = [call(0.1), call(0.9, "fail"), call(1.5, "fail", end_reason="capacity"), call(2.2), call(7.0)]
    bins = measure.success_series(recs, T0, T0 + 3)
    assert [(b.ok, b.fail, b.harness) for b in bins] == [(1, 1, 0), (0, 0, 1), (1, 0, 0)]
    assert bins[0].ratio == 0.5 and bins[1].ratio is None


def test_success_series_region_and_exclusions() -> None:
    a, b = call(0.1, region=A), call(0.2, region=B)
    failed_to_b = call(0.3, "fail", region=None, steered=B)
    bins = measure.success_series([a, b, failed_to_b], T0, T0 + 1, region=B)
    assert (bins[0].ok, bins[0].fail) == (1, 1)
    bins = measure.success_series([a, b], T0, T0 + 1, exclude=[a["call_id"]])
    assert bins[0].ok == 1


def _bins(pattern: str) -> list[Bin]:
    """'o' = one ok call, 'x' = one customer failure, '.' = no call, per second."""
    return [Bin(i, ok=int(c == "o"), fail=int(c == "x")) for i, c in enumerate(pattern)]


def test_rto_is_the_start_of_the_first_good_window() -> None:
    bins = _bins("oooooxxxxooooooooo")
    assert measure.rto(bins, 5.0, 3, 1.0) == 4.0
    assert measure.rto(bins, 5.4, 3, 1.0) == 3.6
    assert measure.rto(_bins("oooooooo"), 2.0, 3, 0.95) == 0.0
    assert measure.rto(_bins("oooooxxxxxx"), 5.0, 3, 0.95) is None
    assert measure.rto(_bins("ooooo...ooo"), 5.0, 3, 0.95) == 3.0  # silence proves nothing: from the first call
    assert measure.rto(_bins("ooxxo.o"), 2.0, 3, 0.66) == 2.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60),
    st.floats(0, 59),
    st.integers(1, 10),
    st.floats(0.0, 1.0),
)
def test_rto_properties(cells: list[tuple[int, int]], start: float, width: int, ratio: float) -> None:
    bins = [Bin(i, ok=o, fail=f) for i, (o, f) in enumerate(cells)]
    got = measure.rto(bins, start, width, ratio)
    first = int(start)
    candidates = range(first, len(bins) - width + 1)

    def good(s: int) -> bool:
        v, att = measure.window_ratio(bins, s, width)
        return v is not None and att >= 1 and v >= ratio - 1e-12

    goods = [s for s in candidates if good(s)]
    if got is None:
        assert not goods
    else:
        assert goods and got >= 0
        begin = next(b for b in range(goods[0], goods[0] + width) if bins[b].attempts)
        assert got == round(max(0.0, begin - start), 3)  # the first good window, from its first attempt


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 3)), max_size=40))
def test_success_ratio_properties(cells: list[tuple[int, int, int]]) -> None:
    bins = [Bin(i, ok=o, fail=f, harness=h) for i, (o, f, h) in enumerate(cells)]
    ok, fail = sum(c[0] for c in cells), sum(c[1] for c in cells)
    r = measure.success_ratio(bins)
    if ok + fail == 0:
        assert r is None
    else:
        assert r is not None and 0.0 <= r <= 1.0
        assert abs(r - ok / (ok + fail)) < 1e-12  # harness failures never count against the customer
    more_fail = [Bin(b.t, b.ok, b.fail + 1, b.harness) for b in bins]
    r2 = measure.success_ratio(more_fail)
    if r is not None and r2 is not None:
        assert r2 <= r  # one more failure never raises the ratio


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 29.99), st.sampled_from(["ok", "fail", "harness", "stopped"])), max_size=50))
def test_success_series_counts_every_call_once(calls: list[tuple[float, str]]) -> None:
    recs = []
    for t, kind in calls:
        if kind == "ok":
            recs.append(call(t))
        elif kind == "fail":
            recs.append(call(t, "fail"))
        elif kind == "harness":
            recs.append(call(t, "fail", end_reason="capacity"))
        else:
            recs.append(call(t, "info", end_reason="stopped"))
    bins = measure.success_series(recs, T0, T0 + 30)
    assert sum(b.ok for b in bins) == sum(k == "ok" for _, k in calls)
    assert sum(b.fail for b in bins) == sum(k == "fail" for _, k in calls)
    assert sum(b.harness for b in bins) == sum(k == "harness" for _, k in calls)


def test_fault_windows_from_the_log() -> None:
    evs = fault("f1", "kill", "sbc-a", 10, 40) + fault("f2", "loss", "media-a", 12, None, {"pct": 20})
    evs.append({"ts": T0 + 50, "kind": "fault_fail", "id": "f3", "fault": "delay", "target": "sbc-b", "error": "x"})
    ws = measure.fault_windows(evs, ["f1", "f2", "f3"])
    assert [w.id for w in ws] == ["f1", "f2", "f3"]
    f1, f2, f3 = ws
    assert f1.applied and f1.start == T0 + 10 and f1.end == T0 + 40 and f1.warden_exit == 0 and f1.ended
    assert f2.params == {"pct": 20} and f2.end is None and f2.active_at(T0 + 1000)
    assert not f3.applied and f3.failed == "x"
    assert f1.active_at(T0 + 41, grace_s=2) and not f1.active_at(T0 + 41)


def test_justifies_down() -> None:
    j = measure.justifies_down
    assert j("kill", "sbc-a", {}, A) and not j("kill", "sbc-a", {}, B)
    assert j("region_down", "region-b", {}, B)
    assert j("partition", "region-a", {"network": "carrier"}, A)
    assert not j("partition", "region-a", {"network": "backbone"}, A)
    assert not j("sip_drop", "sbc-a", {"method": "OPTIONS"}, A)  # health checks only: ride it out
    assert j("sip_drop", "sbc-a", {"method": "INVITE", "pct": 100}, A)
    assert not j("loss", "media-a", {"pct": 10}, A) and j("loss", "sbc-a", {"pct": 80}, A)
    assert not j("delay", "sbc-a", {"ms": 200}, A)
    assert not j("latency", "crm", {"ms": 800}, A) and not j("dns_slow", "steering", {"ms": 500}, A)
    assert not j("kill", "db-a", {}, A)


def test_inflight_fates_per_region() -> None:
    # fault at +20: calls answered before and still up then are in flight
    up_a = call(10, hold=20, region=A)
    dropped = call(12, "fail", fate="dropped", end_reason="media_timeout", region=A, hold=20)
    one_way = call(14, "fail", fate="one_way", region=B, hold=20)
    ended_before = call(5, hold=5)
    later = call(25)
    r = measure.inflight_fates([up_a, dropped, one_way, ended_before, later], [T0 + 20])
    assert (r["survived"], r["dropped"], r["one_way"], r["silent"], r["total"]) == (1, 1, 1, 0, 3)
    assert r["by_region"][A] == {"survived": 1, "dropped": 1, "one_way": 0, "silent": 0}
    assert set(r["call_ids"]) == {up_a["call_id"], dropped["call_id"], one_way["call_id"]}
    # ringing (not answered yet) at the fault start is a new call, not one in flight
    ringing = call(19.9, setup_ms=500)
    assert measure.inflight_fates([ringing], [T0 + 20])["total"] == 0


def test_quality_in_and_out_of_fault_windows() -> None:
    fw = FaultWindow("f", "delay", "sbc-a", {}, start=T0 + 10, end=T0 + 20)
    recs = [call(t, pdd_ms=100.0, mos=4.4) for t in range(0, 10)] + [
        call(t, pdd_ms=900.0, mos=3.0) for t in range(10, 20)
    ]
    q = measure.quality(recs, [fw])
    assert q["pdd_p95_ms_in_fault"] == 900.0 and q["pdd_p95_ms_out_of_fault"] == 100.0
    assert q["mos_p5_in_fault"] == 3.0 and q["mos_p5_out_of_fault"] == 4.4


def test_region_share() -> None:
    recs = [call(1, region=A), call(2, region=A), call(6, region=B), call(7, "fail")]
    share = measure.region_share(recs, T0, T0 + 10)
    assert share == [{"t": 0.0, "counts": {A: 2}}, {"t": 5.0, "counts": {B: 1}}]


def test_steering_detection_decision_flips_false_failovers() -> None:
    faults = measure.fault_windows(
        fault("f1", "kill", "sbc-a", 10, 40) + fault("f2", "sip_drop", "sbc-b", 50, 80, {"method": "OPTIONS"})
    )
    decs = measure.decisions(
        [
            decision(10.5, A, "UP", "SUSPECT"),
            decision(10.9, A, "SUSPECT", "DOWN"),
            decision(55, B, "UP", "SUSPECT", rule="probes-fail-calls-succeed"),
            decision(60, B, "SUSPECT", "DOWN", rule="failure-ratio"),  # OPTIONS dropped only: false failover
            decision(75, B, "DOWN", "UP", rule="recovered-after-hold"),
            decision(90, A, "DOWN", "UP", rule="recovered-after-hold"),
        ]
    )
    m = measure.steering_metrics(decs, faults, [A, B], grace_s=5)
    f1 = m["per_fault"][0]
    assert f1["regions"] == [A] and f1["detection_s"] == 0.5 and f1["decision_s"] == 0.9
    assert m["per_fault"][1]["detection_s"] is None  # it justifies no region
    assert m["false_failovers"] == 1 and m["false_failover_decisions"][0]["region"] == B
    assert m["flips"] == 4
    assert [d["rule"] for d in m["decided"]][:2] == ["consecutive-failures-both-vantages", "failure-ratio"]


def test_confirm_mode_operator_wait_and_who() -> None:
    faults = measure.fault_windows(fault("f1", "kill", "sbc-a", 10, 40))
    decs = measure.decisions(
        [
            decision(11, A, "SUSPECT", "DOWN", rule="mode-confirm-proposes-down", applied=False, mode="confirm"),
            decision(
                19,
                A,
                "DOWN",
                "DOWN",
                rule="operator-approved",
                approved_by="drill",
                wait_s=8.0,
                mode="confirm",
                decision="approval",
            ),
        ]
    )
    m = measure.steering_metrics(decs, faults, [A, B])
    assert m["per_fault"][0]["decision_s"] == 9.0  # the approval moved the traffic, not the proposal
    assert m["operator_wait_s"] == 8.0
    assert m["decided"][1]["approved_by"] == "drill"


def test_state_timeline() -> None:
    decs = measure.decisions(
        [decision(10, A, "UP", "SUSPECT"), decision(11, A, "SUSPECT", "DOWN"), decision(30, A, "DOWN", "UP")]
    )
    tl = measure.state_timeline(decs, [A, B], T0, T0 + 40)
    assert [s["state"] for s in tl[A]] == ["UP", "SUSPECT", "DOWN", "UP"]
    assert tl[A][2] == {"from": 11.0, "to": 30.0, "state": "DOWN"}
    assert tl[B] == [{"from": 0.0, "to": 40.0, "state": "UP"}]


def test_supporting_tier() -> None:
    evs = [
        login(1, True),
        login(2, True),
        login(3, False),
        agent_call(4, "ok"),
        agent_call(5, "fallback"),
        agent_call(6, "late"),
        agent_call(7, "none"),
    ]
    lg = measure.agent_logins(evs)
    assert (lg["attempts"], lg["ok"], lg["ratio"], lg["errors"]) == (3, 2, 0.6667, {"http 503": 1})
    sp = measure.screen_pops(evs)
    assert (sp["ok"], sp["late"], sp["fallback"], sp["none"], sp["fallback_ratio"]) == (1, 1, 1, 1, 0.3333)
    assert measure.agent_logins([])["ratio"] is None


def test_harness_invalid_above_one_percent() -> None:
    assert not measure.harness_invalid(1, 100)
    assert measure.harness_invalid(2, 100)
    assert not measure.harness_invalid(0, 0)


def test_settled_bins_wait_for_every_completion() -> None:
    done = call(1)
    pending = call(3)
    invs = [invoke(done), invoke(pending)]
    assert measure.settled_bins([done], invs, T0, T0 + 10) == 3
    assert measure.settled_bins([done, pending], invs, T0, T0 + 10) == 10


def test_check_floor() -> None:
    bins = _bins("oooooxxxx")
    assert measure.check_floor(bins, "new_call_success", 0.5, None, 5) == (True, 0.2)
    assert measure.check_floor(bins, "new_call_success", 0.5, None, 20) == (False, None)
    assert measure.check_floor(bins, "failed_new_calls", None, 3, 5) == (True, 4.0)


def test_steady_state() -> None:
    recs = [call(t) for t in range(10)] + [call(3.5, "fail")]
    res = measure.steady_state(recs, T0, T0 + 10, 0.95, pdd_p95_max_ms=200)
    assert res[0] == {"name": "new_call_success_min", "value": 0.9091, "limit": 0.95, "pass": False}
    assert res[1]["pass"]


def _crash_log() -> list[dict[str, Any]]:
    """60 s at 2 CPS; sbc-a killed at +20 for 20 s; calls to region-a fail until steering moved them at +21."""
    evs: list[dict[str, Any]] = []
    for i in range(120):
        t = i / 2
        if 20 <= t < 21:
            evs.append(call(t, "fail", region=None, steered=A))
        else:
            evs.append(call(t, region=B if 20 <= t < 45 else A, hold=3))
    evs.append(call(18.5, "fail", fate="dropped", end_reason="media_timeout", hold=10))  # in flight at the kill
    evs.append(call(30, "fail", end_reason="capacity"))  # the harness's, not a customer's
    evs += fault("f1", "kill", "sbc-a", 20, 40)
    evs += [
        decision(20.9, A, "UP", "SUSPECT"),
        decision(20.9, A, "SUSPECT", "DOWN"),
        decision(55, A, "DOWN", "UP", rule="recovered-after-hold"),
    ]
    evs += [login(5, True), agent_call(10, "ok")]
    return evs


def test_run_metrics_of_a_region_crash() -> None:
    evs = _crash_log()
    faults = measure.fault_windows(evs, ["f1"])
    m = measure.run_metrics(evs, faults, T0, T0 + 60, run_ids=["r1"], window_s=5, ratio=0.95, grace_s=5)
    assert m["rto_s"] == 1.0 and m["rto_recovered"]
    assert m["failed_new_calls"] == 2 and m["harness_failed"] == 1
    assert m["inflight"]["dropped"] == 1 and m["inflight_lost"] == 1
    assert m["false_failovers"] == 0 and m["flips"] == 2 and m["detection_s"] == 0.9
    assert m["new_call_success"] == 1.0  # outside the fault window (+ grace) nothing failed
    assert m["agent_login_success"] == 1.0 and m["screen_pop_fallback_ratio"] == 0.0
    assert len(m["series"]["success"]) == 60
    assert m["fail_reasons"] == {"no_response": 2}


def test_run_metrics_never_recovered_gives_a_lower_bound() -> None:
    evs = [call(t, "fail", region=None) for t in range(20, 40)] + [call(t) for t in range(20)]
    evs += fault("f1", "kill", "sbc-a", 20, 40)
    m = measure.run_metrics(evs, measure.fault_windows(evs), T0, T0 + 40, window_s=5, ratio=0.9)
    assert not m["rto_recovered"] and m["rto_s"] == 20.0
