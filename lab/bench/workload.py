"""`make bench` (workload): how much real traffic this machine carries with the whole lab running,
and what each call costs in CPU above the idle lab. Written to bench/results/workload.json.

1. Idle: every lab container's cumulative CPU counter over `--idle-s` (a step's length) with no load.
2. Ladder: offered CPS steps, fixed `--hold-s` calls (concurrency offered = CPS x hold), each
   `--step-s` of arrivals through steering (http), the generator's fleet sized for
   `--cap-factor` x the offered concurrency (workload_model.generator_cap). A step holds
   (workload_model.step_verdict) with no capacity refusals, ok ratio >= 99.5 %, PDD p95 <= 500 ms and
   MOS p5 >= 4.0; the ladder stops at the first step that does not. CPU is read over each step's
   steady window (from one hold after its first INVITE to its last arrival), beside the mean
   number of calls in flight over that window (from the event log's call intervals).
3. SIPp through the same SBCs, signalling only (bench/sipp/uac.xml) and with RTP
   (bench/sipp/uac_rtp.xml), each stepped until SIPp itself fails (lab.bench.sipp).

Every figure's method is in `methods`; `commit` is the checkout's commit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.paths import git_commit
from lab import lifecycle
from lab.bench import sipp
from lab.bench import workload_model as wm
from lab.bench.measure import CpuMeter, EventTail, sleep_until, utc_now, write_result
from lab.load import start_load

log = logging.getLogger("wobble.bench")
STEPS = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0)
STEP_S = 30.0
HOLD_S = 5.0
OK_FLOOR = wm.OK_FLOOR
#: Summary keys of agents.load copied into each step.
STEP_KEYS = ("run_id", "attempts", "ok", "fail", "info", "ok_ratio", "customer_failed", "harness_failed",
             "harness_reasons", "max_concurrent_seen", "pdd_ms_p50", "pdd_ms_p95", "mos_p5", "mos_p50",
             "fail_reasons", "cps_achieved", "generator_slots", "spare_workers", "workers")  # fmt: skip


def measure_idle(meter: CpuMeter, idle_s: float) -> dict[str, float]:
    """CPU % per service of the lab with no load, over idle_s."""
    s0 = meter.sample()
    time.sleep(idle_s)
    s1 = meter.sample()
    return wm.cpu_pct(wm.cpu_delta_s(s0, s1), s1.t - s0.t)


def run_step(cps: float, meter: CpuMeter, hold_s: float, step_s: float, cap_factor: float) -> dict[str, Any]:
    """One load step: its summary, verdict, and CPU over its steady window."""
    cap = wm.generator_cap(cps, hold_s, cap_factor)
    tail = EventTail()
    before = meter.sample()
    run = start_load(cps, step_s, "http", hold_s, max_concurrent=cap, seed=int(cps * 10),
                     extra=["--hold-dist", "fixed"])  # fmt: skip
    window = "steady"
    try:
        first = tail.first_invoke(run.run_id, timeout_s=60.0)
        if first is not None and first + step_s - 0.5 > time.time() + hold_s:
            sleep_until(first + hold_s + 1.0)
            s0 = meter.sample()
            sleep_until(first + step_s - 0.5)
            s1 = meter.sample()
        else:
            s0 = s1 = before
        summary = run.wait(timeout=step_s + 240)
    except KeyboardInterrupt:
        run.stop()
        run.wait(timeout=60)
        raise
    if s1 is before:  # the first INVITE was never seen: the whole run is the window
        window = "whole run (no load_invoke seen in time)"
        s0, s1 = before, meter.sample()
    wall = max(1e-6, s1.t - s0.t)
    pct = wm.cpu_pct(wm.cpu_delta_s(s0, s1), wall)
    conc = wm.mean_concurrency(wm.call_intervals(tail.lines(), run.run_id), s0.t, s1.t)
    held, why = wm.step_verdict(summary)
    step: dict[str, Any] = {k: summary.get(k) for k in STEP_KEYS}
    step.update(
        cps=cps,
        offered_concurrency=round(cps * hold_s, 1),
        generator_cap=summary.get("generator_cap", cap),
        capacity_refusals=wm.capacity_refusals(summary),
        held=held,
        why_not=why,
        cpu_window=window,
        cpu_window_s=round(wall, 2),
        mean_concurrent_calls=round(conc, 2),
        lab_cpu_pct=round(sum(pct.values()), 1),
        cpu_pct_by_service=pct,  # per compose service, raw; rounded and grouped in `summarize`
    )
    if summary.get("error"):
        step["error"] = summary["error"]
    return step


def summarize_cpu(steps: Sequence[Mapping[str, Any]], idle_pct: Mapping[str, float]) -> dict[str, Any]:
    """Per-call CPU above idle over the held steps, the slope of lab CPU % against concurrency, and
    both per service group. Pure."""
    held = [s for s in steps if s.get("held")]
    idle_total = sum(idle_pct.values())
    idle_groups = wm.by_group(idle_pct)
    above_s = call_s = 0.0
    group_above_s = dict.fromkeys(wm.GROUPS, 0.0)
    xs: list[float] = []
    ys: list[float] = []
    gys: dict[str, list[float]] = {g: [] for g in wm.GROUPS}
    for s in held:
        wall, conc = float(s["cpu_window_s"]), float(s["mean_concurrent_calls"])
        pct = s["cpu_pct_by_service"]
        above_s += (sum(pct.values()) - idle_total) * wall / 100.0
        call_s += conc * wall
        groups = wm.by_group(pct)
        for g in wm.GROUPS:
            group_above_s[g] += (groups[g] - idle_groups[g]) * wall / 100.0
            gys[g].append(groups[g])
        xs.append(conc)
        ys.append(sum(pct.values()))
    fit = wm.least_squares(xs, ys)
    by_service: dict[str, Any] = {}
    for g in wm.GROUPS:
        gfit = wm.least_squares(xs, gys[g])
        by_service[g] = {
            "what": wm.GROUP_WHAT[g],
            "idle_pct": round(idle_groups[g], 2),
            "pct_per_call": wm.rnd(wm.cpu_per_call(group_above_s[g], call_s), 3),
            "slope_pct_per_call": wm.rnd(gfit[0] if gfit else None, 3),
        }
    return {
        "cpu_idle_pct": round(idle_total, 1),
        "cpu_pct_per_call": wm.rnd(wm.cpu_per_call(above_s, call_s), 2),
        "cpu_slope_pct_per_call": wm.rnd(fit[0] if fit else None, 2),
        "cpu_slope_intercept_pct": wm.rnd(fit[1] if fit else None, 1),
        "cpu_fit_points": [[round(x, 2), round(y, 1)] for x, y in zip(xs, ys, strict=True)],
        "cpu_by_service": by_service,
    }


def methods(rule: wm.Rule, hold_s: float, step_s: float, idle_s: float, cap_factor: float, cpu_source: str,
            sipp_where: str) -> dict[str, str]:  # fmt: skip
    """What each figure timed, from what."""
    return {
        "held": rule.describe()
        + f"; each step offers CPS x {hold_s:g} s fixed-hold calls for {step_s:g} s of arrivals "
        "through steering (http) from the caller container (agents.load)",
        "max_cps": "the highest offered CPS of the unbroken run of held steps from the bottom of the ladder",
        "max_concurrent_calls": "the most calls the generator had in flight (max_concurrent_seen: INVITE sent to "
        "call recorded) in any held step; what was reached, not the generator's limit",
        "generator_cap": f"calls the generator was allowed in flight (--max-concurrent; {cap_factor:g} x the offered "
        "concurrency, at least `wobble load`'s own choice), per step and at the max_cps step; generator_slots: its "
        "pjsua2 workers x 4 calls",
        "ok_ratio": "ok calls over attempts (every attempt, harness refusals included) at the max_cps step",
        "pdd_ms_p95": "INVITE sent -> first 18x/2xx received, at the caller (pjsua2), 95th percentile of the step",
        "mos_p5": "E-model MOS (core.mos) of each answered call from the caller's RTCP receive loss/jitter/RTT, "
        "5th percentile of the step",
        "cpu_idle_pct": f"% of one core used by every lab container together with no load, from cumulative CPU "
        f"counter deltas over {idle_s:g} s before the ladder ({cpu_source})",
        "lab_cpu_pct": "per step: % of one core used by every lab container together over the step's steady window "
        "(one hold after its first INVITE to its last arrival), from cumulative CPU counter deltas",
        "mean_concurrent_calls": "per step: call-seconds inside the steady window (each placed call's t_invoke..t_end "
        "from the event log) over the window's length",
        "cpu_pct_per_call": "% of one core per concurrent call above the idle lab: over the held steps, sum of "
        "(lab CPU seconds in the window - idle rate x window) over sum of call-seconds in the windows, x 100",
        "cpu_slope_pct_per_call": "least-squares slope of lab_cpu_pct against mean_concurrent_calls across held steps "
        "(needs two); its intercept should be near cpu_idle_pct",
        "cpu_by_service": "the same per service group, compose services mapped by core.topology: pbx = Asterisk, "
        "media = rtpengine, sbc = Kamailio, agents, caller (our generator; SIPp runs outside containers, so its CPU "
        "is in none of these), others",
        "sipp": f"{sipp_where}; one SIPp per SBC at half the rate, same hold and step length; a SIPp step holds when "
        "its ok ratio >= the floor, retransmissions <= 1 % of calls, no fatal/watchdog errors and PDD p95 (its "
        "response time INVITE -> 18x) within the rule; with RTP also no RTP errors in its error log and the agents "
        "received >= 80 % of the hold's packets on >= the floor's share of calls with agent-side MOS p5 >= the rule's",
        "sipp_ratio_signalling": "max_cps / SIPp's ceiling with bench/sipp/uac.xml (no RTP)",
        "sipp_ratio_media": "max_cps / SIPp's ceiling with bench/sipp/uac_rtp.xml (G.711 u-law RTP for the whole "
        "hold): like with like",
        "sipp_ratio": "as sipp_ratio_media when SIPp's RTP ladder ran, else as sipp_ratio_signalling; sipp_max_cps "
        "and sipp_steps are that ladder's",
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m lab.bench.workload", description=__doc__.splitlines()[0] if __doc__ else None
    )
    ap.add_argument("--steps", type=float, nargs="+", default=list(STEPS), help="offered CPS steps, in order")
    ap.add_argument("--step-s", type=float, default=STEP_S, help="seconds of arrivals per step")
    ap.add_argument("--hold-s", type=float, default=HOLD_S, help="fixed call hold, s")
    ap.add_argument("--idle-s", type=float, default=None, help="idle CPU sample, s (default: --step-s)")
    ap.add_argument("--cap-factor", type=float, default=wm.CAP_FACTOR, help="generator cap over offered concurrency")
    ap.add_argument("--no-sipp", action="store_true", help="skip the SIPp ladders")
    ap.add_argument("--sipp-from", choices=("caller-netns", "host"), default="caller-netns")
    ap.add_argument("--sipp-steps", type=float, nargs="+", default=list(sipp.LADDER))
    ap.add_argument("--out", default="workload.json", help="file name under bench/results/")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    idle_s = args.idle_s if args.idle_s is not None else args.step_s
    started = utc_now()
    commit = git_commit()
    brought_up = False
    if not lifecycle.is_up():
        lifecycle.up()
        brought_up = True
    meter = CpuMeter()
    steps: list[dict[str, Any]] = []
    sig: tuple[float | None, list[dict[str, Any]]] = (None, [])
    med: tuple[float | None, list[dict[str, Any]]] = (None, [])
    sipp_where = "not run"
    try:
        log.info("idle lab: sampling CPU for %.0f s", idle_s)
        idle_pct = measure_idle(meter, idle_s)
        for cps in args.steps:
            step = run_step(cps, meter, args.hold_s, args.step_s, args.cap_factor)
            steps.append(step)
            log.info("step %g CPS: held=%s %s", cps, step["held"], step["why_not"])
            if not step["held"]:
                break
            time.sleep(3.0)
        if not args.no_sipp:
            at = sipp.where(args.sipp_from)
            sipp_where = at.what
            sig = sipp.ladder(False, args.hold_s, args.step_s, at, args.sipp_steps)
            med = sipp.ladder(True, args.hold_s, args.step_s, at, args.sipp_steps)
    finally:
        if brought_up:
            lifecycle.down()
    held = [st for st in steps if st["held"]]
    max_cps = wm.ceiling(steps)
    top = next((st for st in steps if st["cps"] == max_cps and st["held"]), steps[0] if steps else {})
    cpu = summarize_cpu(steps, idle_pct)
    for st in steps:  # per step: above idle, grouped
        pct = st.pop("cpu_pct_by_service")
        st["lab_cpu_pct_above_idle"] = round(sum(pct.values()) - cpu["cpu_idle_pct"], 1)
        st["cpu_by_service"] = {g: round(v, 2) for g, v in wm.by_group(pct).items()}
    sig_cps, sig_steps = sig
    med_cps, med_steps = med
    headline = (med_cps, med_steps) if med_steps else (sig_cps, sig_steps)
    out: dict[str, Any] = {
        "max_cps": max_cps,
        "max_concurrent_calls": max((int(st["max_concurrent_seen"] or 0) for st in held), default=0),
        "ok_ratio": top.get("ok_ratio") if held else None,
        "cpu_pct_per_call": cpu["cpu_pct_per_call"],
        "sipp_ratio": wm.ratio(max_cps, headline[0]),
        "sipp_ratio_signalling": wm.ratio(max_cps, sig_cps),
        "sipp_ratio_media": wm.ratio(max_cps, med_cps),
        "sipp_max_cps": headline[0],
        "sipp_max_cps_signalling": sig_cps,
        "sipp_max_cps_media": med_cps,
        "generator_cap": top.get("generator_cap"),
        "generator_slots": top.get("generator_slots"),
        "pdd_ms_p95": top.get("pdd_ms_p95") if held else None,
        "mos_p5": top.get("mos_p5") if held else None,
        **cpu,
        "hold_s": args.hold_s,
        "step_s": args.step_s,
        "idle_s": idle_s,
        "ok_floor": wm.RULE.ok_floor,
        "pdd_p95_max_ms": wm.RULE.pdd_p95_max_ms,
        "mos_p5_min": wm.RULE.mos_p5_min,
        "cap_factor": args.cap_factor,
        "cpu_idle_pct_by_service": {g: round(v, 2) for g, v in wm.by_group(idle_pct).items()},
        "steps": steps,
        "sipp_steps": headline[1],
        "sipp_steps_signalling": sig_steps,
        "sipp_steps_media": med_steps,
        "methods": methods(wm.RULE, args.hold_s, args.step_s, idle_s, args.cap_factor, meter.source, sipp_where),
        "commit": commit,
        "cpus": os.cpu_count(),
        "started": started,
        "finished": utc_now(),
    }
    dest = write_result(args.out, out)
    log.info("written %s", dest)
    print(json.dumps({k: v for k, v in out.items() if not k.endswith("steps") and k != "methods"}, indent=2))


if __name__ == "__main__":
    main()
