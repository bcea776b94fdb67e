"""The workload and soak benchmarks' pure parts: the step rule, the fleet size, CPU deltas above
idle and their slope, concurrency over a window, SIPp's statistics, G.711, the soak's figures."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.bench import measure, sipp, soak, workload
from lab.bench import workload_model as wm

GOOD = {
    "attempts": 300,
    "ok": 300,
    "ok_ratio": 1.0,
    "pdd_ms_p95": 120.0,
    "mos_p5": 4.3,
    "harness_reasons": {},
    "fail_reasons": {},
}


# ---------------------------------------------------------------- the step rule


def test_a_clean_step_holds() -> None:
    assert wm.step_verdict(GOOD) == (True, [])


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"harness_reasons": {"capacity": 1}}, "1 capacity refusals"),
        ({"ok_ratio": 0.99}, "ok ratio 0.99"),
        ({"pdd_ms_p95": 500.1}, "PDD p95 500.1"),
        ({"pdd_ms_p95": None}, "PDD p95 None"),
        ({"mos_p5": 3.99}, "MOS p5 3.99"),
        ({"mos_p5": None}, "MOS p5 None"),
        ({"attempts": 0}, "no attempts"),
        ({"error": "boom"}, "generator error: boom"),
    ],
)
def test_each_bar_breaks_a_step_on_its_own(change: dict[str, object], why: str) -> None:
    held, reasons = wm.step_verdict({**GOOD, **change})
    assert not held
    assert any(r.startswith(why) for r in reasons), reasons


def test_the_bars_are_inclusive() -> None:
    assert wm.step_verdict({**GOOD, "pdd_ms_p95": 500.0, "mos_p5": 4.0, "ok_ratio": 0.995})[0]


def test_capacity_refusals_fall_back_to_fail_reasons_for_older_summaries() -> None:
    old = {k: v for k, v in GOOD.items() if k != "harness_reasons"} | {"fail_reasons": {"capacity": 2}}
    assert wm.capacity_refusals(old) == 2
    assert not wm.step_verdict(old)[0]
    # harness_reasons, when present, is the authority (a customer `capacity` cannot exist)
    assert wm.capacity_refusals({"harness_reasons": {"worker_lost": 1}, "fail_reasons": {"capacity": 3}}) == 0


def test_the_old_results_eight_cps_step_does_not_hold_any_more() -> None:
    """bench/results/workload.json before this rule called 8 CPS held with one capacity refusal and a
    2.5 s PDD p95."""
    step = {"attempts": 240, "ok": 239, "ok_ratio": 0.9958, "pdd_ms_p95": 2557.42, "mos_p5": 3.938,
            "fail_reasons": {"capacity": 1}}  # fmt: skip
    held, why = wm.step_verdict(step)
    assert not held and len(why) == 3


@given(
    refusals=st.integers(0, 5),
    ratio=st.floats(0.9, 1.0),
    pdd=st.floats(0.0, 3000.0),
    mos=st.floats(1.0, 4.5),
)
def test_holds_exactly_when_every_bar_is_met(refusals: int, ratio: float, pdd: float, mos: float) -> None:
    s = {
        "attempts": 100,
        "ok_ratio": ratio,
        "pdd_ms_p95": pdd,
        "mos_p5": mos,
        "harness_reasons": {"capacity": refusals},
    }
    held, why = wm.step_verdict(s)
    assert held == (refusals == 0 and ratio >= 0.995 and pdd <= 500.0 and mos >= 4.0)
    assert held == (not why)


def test_the_ceiling_is_the_unbroken_run_of_held_steps() -> None:
    steps = [{"cps": 2.0, "held": True}, {"cps": 4.0, "held": True}, {"cps": 6.0, "held": False},
             {"cps": 8.0, "held": True}]  # fmt: skip
    assert wm.ceiling(steps) == 4.0
    assert wm.ceiling([{"cps": 2.0, "held": False}]) == 0.0
    assert wm.ceiling([]) == 0.0


# ---------------------------------------------------------------- the generator's fleet


@given(cps=st.floats(0.1, 40.0), hold=st.floats(1.0, 20.0))
def test_the_generator_cap_sits_well_above_the_offered_load(cps: float, hold: float) -> None:
    cap = wm.generator_cap(cps, hold)
    assert cap <= wm.GENERATOR_CAP_MAX
    if 2 * cps * hold <= wm.GENERATOR_CAP_MAX:
        assert cap >= 2 * cps * hold
    assert cap >= 8


def test_the_generator_cap_at_the_ladders_steps() -> None:
    assert wm.generator_cap(8.0, 5.0) == 80  # 2 x 40 (Little + spread: 74)
    assert wm.generator_cap(2.0, 5.0) == 31  # `wobble load`'s own choice is larger than 2 x 10
    assert wm.generator_cap(100.0, 5.0) == 400  # agents.load's limit


# ---------------------------------------------------------------- CPU


def test_cpu_deltas_leave_out_restarted_and_new_containers() -> None:
    before = wm.CpuSample(0.0, {"pbx-a": 1_000_000_000, "sbc-a": 5_000_000_000, "gone": 1})
    after = wm.CpuSample(10.0, {"pbx-a": 3_000_000_000, "sbc-a": 1_000, "media-a": 7})
    assert wm.cpu_delta_s(before, after) == {"pbx-a": 2.0}
    assert wm.cpu_pct({"pbx-a": 2.0}, 10.0) == {"pbx-a": 20.0}
    with pytest.raises(ValueError):
        wm.cpu_pct({}, 0.0)


def test_services_map_to_groups_by_the_topology() -> None:
    groups = {
        s: wm.service_group(s) for s in ("pbx-a", "pbx-b", "media-b", "sbc-a", "agents-b", "caller", "steering", "db-a")
    }
    assert groups == {"pbx-a": "pbx", "pbx-b": "pbx", "media-b": "media", "sbc-a": "sbc", "agents-b": "agents",
                      "caller": "caller", "steering": "others", "db-a": "others"}  # fmt: skip
    summed = wm.by_group({"pbx-a": 10.0, "pbx-b": 5.0, "dns": 1.0})
    assert summed == {"pbx": 15.0, "media": 0.0, "sbc": 0.0, "agents": 0.0, "caller": 0.0, "others": 1.0}
    assert wm.above_idle({"pbx": 15.0, "x": 1.0}, {"pbx": 5.0}) == {"pbx": 10.0, "x": 1.0}


@given(
    slope=st.floats(-50, 50),
    intercept=st.floats(-100, 100),
    xs=st.lists(st.floats(0, 200), min_size=2, max_size=10, unique=True),
)
def test_least_squares_recovers_a_line(slope: float, intercept: float, xs: list[float]) -> None:
    if max(xs) - min(xs) < 1e-3:
        return
    fit = wm.least_squares(xs, [slope * x + intercept for x in xs])
    assert fit is not None
    assert math.isclose(fit[0], slope, abs_tol=1e-6 * (1 + abs(slope)) + 1e-6)
    assert math.isclose(fit[1], intercept, abs_tol=1e-4 * (1 + abs(intercept) + abs(slope) * max(xs)))


def test_least_squares_needs_two_distinct_points() -> None:
    assert wm.least_squares([1.0], [2.0]) is None
    assert wm.least_squares([3.0, 3.0], [1.0, 2.0]) is None
    with pytest.raises(ValueError):
        wm.least_squares([1.0, 2.0], [1.0])
    slope, icpt = wm.least_squares([0.0, 1.0, 2.0], [1.0, 2.0, 4.0]) or (0.0, 0.0)
    assert math.isclose(slope, 1.5) and math.isclose(icpt, 5 / 6)


def test_mean_concurrency_counts_call_seconds_inside_the_window() -> None:
    calls = [(0.0, 10.0), (5.0, 6.0), (20.0, 30.0), (9.0, 25.0)]
    # window [5, 15]: 5 + 1 + 0 + 6 = 12 call-seconds over 10 s
    assert wm.mean_concurrency(calls, 5.0, 15.0) == pytest.approx(1.2)
    with pytest.raises(ValueError):
        wm.mean_concurrency(calls, 5.0, 5.0)


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 50)), max_size=30))
def test_mean_concurrency_never_exceeds_the_number_of_calls(spans: list[tuple[float, float]]) -> None:
    calls = [(a, a + d) for a, d in spans]
    c = wm.mean_concurrency(calls, 10.0, 60.0)
    assert 0.0 <= c <= len(calls) + 1e-9


def test_call_intervals_take_placed_calls_of_the_run() -> None:
    lines = [
        {"kind": "load_invoke", "run_id": "r1", "t_invoke": 1.0},
        {"kind": "load_ok", "run_id": "r1", "t_invoke": 1.0, "t_end": 7.0},
        {"kind": "load_fail", "run_id": "r1", "t_invoke": 2.0, "t_end": 2.0, "end_reason": "capacity"},
        {"kind": "load_fail", "run_id": "r1", "t_invoke": 3.0, "t_end": 4.0, "end_reason": "rejected"},
        {"kind": "load_ok", "run_id": "r2", "t_invoke": 1.0, "t_end": 7.0},
        {"kind": "load_ok", "run_id": "r1", "t_invoke": 5.0, "t_end": None},
    ]
    assert wm.call_intervals(lines, "r1") == [(1.0, 7.0), (3.0, 4.0)]


def _step(conc: float, pct: dict[str, float], held: bool = True) -> dict[str, object]:
    return {"held": held, "cpu_window_s": 20.0, "mean_concurrent_calls": conc, "cpu_pct_by_service": pct}


def test_cpu_per_call_is_above_idle_and_the_slope_is_fitted_over_held_steps() -> None:
    idle = {"pbx-a": 10.0, "caller": 10.0}  # 20 % idle
    steps = [
        _step(10.0, {"pbx-a": 30.0, "caller": 20.0}),  # 50 %: 30 above idle for 10 calls
        _step(20.0, {"pbx-a": 50.0, "caller": 30.0}),  # 80 %: 60 above idle for 20 calls
        _step(40.0, {"pbx-a": 500.0, "caller": 500.0}, held=False),  # left out
    ]
    cpu = workload.summarize_cpu(steps, idle)
    assert cpu["cpu_idle_pct"] == 20.0
    assert cpu["cpu_pct_per_call"] == 3.0  # (30 + 60) / (10 + 20)
    assert cpu["cpu_slope_pct_per_call"] == 3.0
    assert cpu["cpu_slope_intercept_pct"] == 20.0
    pbx = cpu["cpu_by_service"]["pbx"]
    assert pbx["idle_pct"] == 10.0 and pbx["pct_per_call"] == 2.0 and pbx["slope_pct_per_call"] == 2.0
    assert cpu["cpu_by_service"]["caller"]["pct_per_call"] == 1.0
    assert set(cpu["cpu_by_service"]) == set(wm.GROUPS)


def test_cpu_with_no_held_step_is_null_not_zero() -> None:
    cpu = workload.summarize_cpu([_step(10.0, {"x": 1.0}, held=False)], {"x": 1.0})
    assert cpu["cpu_pct_per_call"] is None and cpu["cpu_slope_pct_per_call"] is None


def test_every_figure_has_a_method() -> None:
    m = workload.methods(wm.RULE, 5.0, 30.0, 30.0, 2.0, "cgroup", "nsenter")
    for key in ("max_cps", "max_concurrent_calls", "ok_ratio", "cpu_pct_per_call", "sipp_ratio", "generator_cap",
                "cpu_idle_pct", "cpu_slope_pct_per_call", "cpu_by_service", "sipp_ratio_signalling",
                "sipp_ratio_media"):  # fmt: skip
        assert m[key]


def test_cgroup_counters_are_read_for_v1_and_v2(tmp_path: Path) -> None:
    v1 = tmp_path / "cpuacct" / "docker" / "abc"
    v1.mkdir(parents=True)
    (v1 / "cpuacct.usage").write_text("123456789\n")
    assert measure.cgroup_usage_ns("abc", tmp_path) == 123456789
    v2 = tmp_path / "system.slice" / "docker-def.scope"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n")
    assert measure.cgroup_usage_ns("def", tmp_path) == 2_500_000
    assert measure.cgroup_usage_ns("nope", tmp_path) is None


def test_the_event_tail_sees_only_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text('{"kind": "load_invoke", "run_id": "old", "t_invoke": 1.0}\n')
    tail = measure.EventTail(log)
    with log.open("a") as f:
        f.write('{"kind": "load_invoke", "run_id": "r", "t_invoke": 5.0}\nnot json\n')
        f.write('{"kind": "load_invoke", "run_id": "r", "t_invoke": 4.0}\n')
    assert [e["run_id"] for e in tail.lines()] == ["r", "r"]
    assert tail.first_invoke("r", timeout_s=0.0) == 4.0
    assert tail.first_invoke("old", timeout_s=0.0) is None


# ---------------------------------------------------------------- SIPp

STAT_ROW = {
    "SuccessfulCall(C)": "118",
    "FailedCall(C)": "2",
    "Retransmissions(C)": "3",
    "FatalErrors(C)": "0",
    "WatchdogMajor(C)": "0",
    "WatchdogMinor(C)": "0",
    "FailedMaxUDPRetrans(C)": "1",
    "DeadCallMsgs(C)": "0",
}


def test_sipp_counters_come_from_the_last_row() -> None:
    c = wm.sipp_counters([{"SuccessfulCall(C)": "1"}, STAT_ROW])
    assert c["ok"] == 118 and c["failed"] == 2 and c["retransmissions"] == 3 and c["failed_max_udp_retrans"] == 1
    assert wm.sipp_counters([]) == {}


def test_sipp_response_times_by_name() -> None:
    rows = [{"Date_ms": "1", "response_time_ms": "12", "rtd_no": "pdd"},
            {"Date_ms": "1", "response_time_ms": "40", "rtd_no": "setup"},
            {"Date_ms": "2", "response_time_ms": "x", "rtd_no": "pdd"},
            {"Date_ms": "3", "response_time_ms": "7", "rtd_no": "1"}]  # fmt: skip
    rtts = wm.sipp_rtts(rows)
    assert rtts == {"pdd": [12.0], "setup": [40.0], "1": [7.0]}
    assert wm.sipp_pdd(rtts)[0] == [12.0]
    assert wm.sipp_pdd({"1": [7.0]})[0] == [7.0]
    assert wm.sipp_pdd({}) == ([], "no response times")


def _agent(call_id: str, rx: int, loss: float = 0.0, code: int = 200) -> dict[str, object]:
    return {"kind": "agent_call", "call_id": call_id, "rx_packets": rx, "loss_pct": loss, "jitter_ms": 1.0,
            "rtt_ms": 2.0, "final_code": code}  # fmt: skip


def test_sipp_media_is_what_the_agents_received_of_its_calls() -> None:
    events = [_agent("sippm1-1", 250), _agent("sippm1-2", 100), _agent("sippm1-3", 0), _agent("other-1", 0),
              _agent("sippm1-4", 250, code=486)]  # fmt: skip
    m = wm.sipp_media(events, "sippm1", hold_s=5.0)
    assert m["answered_by_agents"] == 3 and m["media_ok"] == 1 and m["no_audio"] == 1
    assert m["media_ok_ratio"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["agent_mos_p5"] is not None and m["agent_mos_p5"] > 4.0


def _sipp_step(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"attempts": 100, "ok": 100, "ok_ratio": 1.0, "retransmissions": 0,
                               "pdd_ms_p95": 50.0, "rtp_errors": 0,
                               "media": {"media_ok_ratio": 1.0, "agent_mos_p5": 4.4}}  # fmt: skip
    return base | kw


def test_sipp_verdict() -> None:
    assert wm.sipp_verdict(_sipp_step(), media=True) == (True, [])
    assert not wm.sipp_verdict(_sipp_step(retransmissions=2), media=False)[0]
    assert wm.sipp_verdict(_sipp_step(retransmissions=1), media=False)[0]
    assert not wm.sipp_verdict(_sipp_step(ok_ratio=0.99), media=False)[0]
    assert not wm.sipp_verdict(_sipp_step(rtp_errors=1), media=True)[0]
    assert wm.sipp_verdict(_sipp_step(rtp_errors=1), media=False)[0]  # signalling: RTP is not its job
    assert not wm.sipp_verdict(_sipp_step(media={"media_ok_ratio": 0.9, "agent_mos_p5": 4.4}), media=True)[0]
    assert not wm.sipp_verdict(_sipp_step(media={}), media=True)[0]
    assert not wm.sipp_verdict(_sipp_step(pdd_ms_p95=900.0), media=False)[0]
    assert not wm.sipp_verdict(_sipp_step(error="no statistics"), media=False)[0]
    assert wm.ratio(8.0, 12.0) == 0.667 and wm.ratio(8.0, None) is None and wm.ratio(8.0, 0.0) is None


def test_sipp_command_line() -> None:
    cmd = sipp.sipp_cmd("10.77.0.11:5060", Path("/x/uac_rtp.xml"), "10.77.0.50", 5096, 31000, 3.0, 90, 40, 5.0,
                        95.0, "sippm1")  # fmt: skip
    assert cmd[:2] == ["sipp", "10.77.0.11:5060"]
    joined = " ".join(cmd)
    parts = ["-sf /x/uac_rtp.xml", "-i 10.77.0.50", "-p 5096", "-mp 31000", "-r 3 ", "-m 90", "-l 40", "-d 5000"]
    parts += ["-key tag sippm1", "-trace_rtt", "-rtt_freq 1", "-stf stat.csv", "-error_file err.log"]
    for part in parts:
        assert part in joined, part
    assert sipp.rtp_errors("Unable to send RTP packet\nfoo\nrtpstream: bad\n") == 2
    assert len(sipp.SBCS) == 2


def test_the_scenarios_are_on_file() -> None:
    text = sipp.MEDIA.read_text()
    assert 'rtp_stream="wobble_tone.pcmu,-1,0"' in text and "X-Wobble-Call: [tag]-[call_number]" in text
    assert sipp.SIGNALLING.exists()


# ---------------------------------------------------------------- G.711


def test_ulaw_known_values() -> None:
    assert wm.ulaw_byte(0) == 0xFF
    assert wm.ulaw_byte(-1) == 0x7F
    assert wm.ulaw_byte(32767) == 0x80
    assert wm.ulaw_byte(-32768) == 0x00


@given(st.integers(-32768, 32767))
def test_ulaw_is_monotonic_in_magnitude_and_keeps_the_sign(x: int) -> None:
    b = wm.ulaw_byte(x)
    assert 0 <= b <= 255
    assert (b & 0x80 == 0) == (x < 0)
    if 0 <= x < 32767:
        # larger magnitude never codes to a smaller segment/step (u-law is inverted)
        assert (~wm.ulaw_byte(x + 1) & 0x7F) >= (~b & 0x7F)


def test_the_tone_is_one_second_of_8_khz_ulaw() -> None:
    tone = wm.ulaw_tone(1.0)
    assert len(tone) == 8000 and len(set(tone)) > 20


# ---------------------------------------------------------------- soak


def test_soak_figures() -> None:
    recs = [
        {"kind": "load_invoke", "run_id": "r"},
        {"kind": "load_ok", "run_id": "r", "status": "ok", "fate": "survived", "pdd_ms": 50.0, "mos": 4.4,
         "rx_packets": 500, "tx_packets": 500},
        {"kind": "load_fail", "run_id": "r", "status": "fail", "fate": "silent", "pdd_ms": 70.0, "mos": 1.0,
         "rx_packets": 0, "tx_packets": 500, "whose": "customer"},
        {"kind": "load_fail", "run_id": "r", "status": "fail", "end_reason": "capacity", "whose": "harness"},
        {"kind": "load_info", "run_id": "r", "status": "info", "end_reason": "worker_lost", "whose": "harness"},
        {"kind": "load_ok", "run_id": "other", "status": "ok"},
    ]  # fmt: skip
    f = soak.figures(recs, "r")
    assert (f["attempts"], f["ok"], f["customer_failed"], f["harness_failed"]) == (4, 1, 1, 2)
    assert f["answered"] == 2 and f["no_audio_calls"] == 1 and f["one_way_calls"] == 1
    assert f["pdd_ms"]["p50"] == 60.0 and f["mos"]["p50"] == pytest.approx(2.7)
    assert set(soak.methods(5, 600, 10, "constant")) >= {"load", "pdd_ms", "mos", "no_audio_calls", "verify"}
