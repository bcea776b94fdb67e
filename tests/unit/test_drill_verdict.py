"""lab.drill.verdict: SLOs against metrics, proof of each fault, the verdict and its exit code."""

from __future__ import annotations

from typing import Any

from lab.drill import measure, verdict
from tests.unit.drill_logs import T0, call, decision, fault

A = "region-a"


def test_slo_max_and_min_and_no_data() -> None:
    assert verdict.slo_result("rto_max_s", 9.0, 10.0)["pass"]
    assert not verdict.slo_result("rto_max_s", 11.0, 10.0)["pass"]
    assert verdict.slo_result("mos_p5_min", 3.6, 3.5)["pass"]
    assert not verdict.slo_result("new_call_success_min", 0.9, 0.95)["pass"]
    assert not verdict.slo_result("failed_new_calls_max", None, 3)["pass"]
    nodata = verdict.slo_result("agent_login_success_min", None, 0.9)
    assert nodata["pass"] and nodata["note"] == "no data"


def test_evaluate_slos_and_rto_never_recovered() -> None:
    metrics = {"rto_s": 40.0, "rto_recovered": False, "failed_new_calls": 3, "false_failovers": 0}
    res = verdict.evaluate_slos(
        [
            ("critical", "rto_max_s", 60.0),
            ("critical", "failed_new_calls_max", 5.0),
            ("critical", "false_failovers_max", 0.0),
        ],
        metrics,
    )
    assert [r["pass"] for r in res] == [False, True, True]
    assert "never recovered" in res[0]["note"]
    assert all({"name", "value", "limit", "pass"} <= set(r) for r in res)
    assert verdict.describe_slo(res[1]) == "failed_new_calls_max: 3 <= 5 (limit)"
    assert verdict.describe_slo({"name": "mos_p5_min", "value": 3.1, "limit": 3.5, "pass": False}) == (
        "mos_p5_min: 3.1 < 3.5 (limit)"
    )


def _proof(evs: list[dict[str, Any]], fid: str = "f1", listed: tuple[str, ...] = ()) -> dict[str, Any]:
    (fw,) = measure.fault_windows(evs, [fid])
    recs = measure.call_records(evs)
    return verdict.fault_proof(fw, recs, measure.decisions(evs), [A, "region-b"], listed)


def test_fault_proof_crash_seen_by_steering_and_reverted() -> None:
    evs = [*fault("f1", "kill", "sbc-a", 10, 40), decision(11, A, "UP", "DOWN")]
    p = _proof(evs)
    assert p["took_effect"] and p["clean_after"] and p["why"] == ""
    assert p["kind"] == "kill" and p["target"] == "sbc-a" and p["asked"]["for_s"] == 30.0
    assert p["measured"]["steering_states"] == ["DOWN"] and p["measured"]["held_s"] == 30.0


def test_fault_proof_crash_nobody_noticed_did_not_take_effect() -> None:
    evs = [*fault("f1", "kill", "sbc-a", 10, 40), call(15, region=A)]
    p = _proof(evs)
    assert not p["took_effect"] and "nobody" not in p["why"] and "noticed" in p["why"]
    evs = [*fault("f1", "kill", "sbc-a", 10, 40), call(15, "fail", region=None, steered=A)]
    assert _proof(evs)["took_effect"]  # a call to the region failed: it showed


def test_fault_proof_wobble_needs_the_warden_only_and_revert_problems_show() -> None:
    evs = fault("f1", "delay", "sbc-a", 10, 40, {"ms": 200}, warden_exit=1)
    p = _proof(evs)
    assert p["took_effect"] and not p["clean_after"] and "warden exited 1" in p["why"]
    assert p["asked"]["ms"] == 200
    p = _proof(fault("f1", "delay", "sbc-a", 10, None))
    assert not p["clean_after"] and "no revert" in p["why"]
    p = _proof(fault("f1", "delay", "sbc-a", 10, 40), listed=("f1",))
    assert not p["clean_after"] and "still listed" in p["why"]
    failed = [{"ts": T0, "kind": "fault_fail", "id": "f1", "fault": "delay", "target": "sbc-a", "error": "no nft"}]
    p = _proof(failed)
    assert not p["took_effect"] and "no nft" in p["why"]


def _decide(**kw: Any) -> tuple[str, str]:
    base: dict[str, Any] = {
        "slos": [{"name": "rto_max_s", "value": 3.0, "limit": 10.0, "pass": True}],
        "faults": [{"kind": "kill", "target": "sbc-a", "took_effect": True, "clean_after": True}],
        "harness_invalid": False,
        "steady_before": [{"name": "new_call_success_min", "value": 1.0, "limit": 0.95, "pass": True}],
        "steady_after": [{"name": "new_call_success_min", "value": 1.0, "limit": 0.95, "pass": True}],
    }
    base.update(kw)
    return verdict.decide(**base)


def test_verdicts_in_order() -> None:
    assert _decide() == ("pass", "all 1 SLOs held")
    assert _decide(interrupted="Ctrl-C", aborted="x")[0] == "incomplete"
    assert _decide(aborted="new_call_success in region-b below 0.5 for 10 s")[0] == "aborted"
    v, why = _decide(steady_before=[{"name": "new_call_success_min", "value": 0.8, "limit": 0.95, "pass": False}])
    assert v == "invalid" and "new_call_success_min: 0.8 < 0.95" in why
    never = {"kind": "kill", "target": "sbc-a", "took_effect": False, "clean_after": True, "why": "x"}
    v, why = _decide(faults=[never])
    assert v == "invalid" and "never took effect" in why
    assert _decide(faults=[])[0] == "invalid"
    assert _decide(harness_invalid=True)[0] == "invalid"
    v, why = _decide(slos=[{"name": "rto_max_s", "value": 30.0, "limit": 10.0, "pass": False}])
    assert v == "fail" and why == "rto_max_s: 30 > 10 (limit)"
    v, why = _decide(steady_after=[{"name": "new_call_success_min", "value": 0.5, "limit": 0.95, "pass": False}])
    assert v == "fail" and "steady_state_after.new_call_success_min" in why


def test_exit_codes() -> None:
    codes = {v: verdict.exit_code(v) for v in verdict.VERDICTS}
    assert codes == {"pass": 0, "fail": 1, "aborted": 4, "invalid": 5, "incomplete": 5}


def test_clean_after_from_the_controllers_fault_end_alone() -> None:
    evs = [e for e in fault("f1", "delay", "sbc-a", 10, 40) if e["kind"] != "fault_revert"]
    assert _proof(evs)["clean_after"]  # warden exit 0 at fault_end: reverted cleanly
    evs = [e for e in fault("f1", "delay", "sbc-a", 10, 40, warden_exit=None) if e["kind"] != "fault_revert"]
    p = _proof(evs)
    assert not p["clean_after"] and "no revert" in p["why"]
