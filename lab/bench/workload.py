"""`make bench` (workload): how much real traffic this machine carries with the whole lab running.

Steps the call rate up (fixed 5 s calls, 30 s per step) until fewer than 99.5 % of attempts are
`ok`; the last step that held is `max_cps`, the most calls in flight during a step that held is
`max_concurrent_calls`. CPU per call is the whole lab's CPU time (every container's cgroup) over
the held steps divided by call-seconds carried. Written to bench/results/workload.json.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core import dockerctl, paths
from lab import lifecycle
from lab.load import run_load

log = logging.getLogger("wobble.bench")
STEPS = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0)
STEP_S = 30.0
HOLD_S = 5.0
OK_FLOOR = 0.995
#: SIPp's uac with the route set followed (its built-in one cannot pass a record-routing SBC).
SIPP_SCENARIO = paths.ROOT / "bench" / "sipp" / "uac.xml"


def lab_cpu_seconds() -> float:
    """CPU time used so far by every container of the lab (docker stats: cgroup total usage)."""
    total = 0
    for c in dockerctl.lab_containers():
        stats = c.stats(stream=False, one_shot=True)  # one sample now, not two a second apart
        total += int(stats["cpu_stats"]["cpu_usage"]["total_usage"])
    return total / 1e9


#: Both regions' SBCs (carrier side): our generator's calls are steered across both, so SIPp's are
#: split across both too, or it would meet half the agents.
SIPP_SBCS = ("10.77.0.11:5060", "10.77.0.12:5060")


def sipp_step(cps: float, host_ip: str = "10.77.0.1") -> dict[str, Any]:
    """SIPp (bench/sipp/uac.xml) through the same SBCs, to the same queues and agents, at one rate:
    one SIPp per SBC at half the rate each, run side by side.

    Same call shape as our step (fixed hold, same duration); SIPp sends no RTP, so it measures
    signalling capacity: the ceiling our generator is compared against.
    """
    share = cps / len(SIPP_SBCS)
    calls = int(share * STEP_S)
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for i, sbc in enumerate(SIPP_SBCS):
            stat = Path(tmp) / f"stat-{i}.csv"
            cmd = ["sipp", sbc, "-sf", str(SIPP_SCENARIO), "-s", "support", "-i", host_ip, "-p", str(5098 + i),
                   "-r", str(share), "-m", str(calls), "-l", "80", "-d", str(int(HOLD_S * 1000)), "-nostdin",
                   "-timeout", str(int(STEP_S + 60)), "-timeout_error", "-recv_timeout", "10000",
                   "-trace_stat", "-stf", str(stat), "-fd", "1"]  # fmt: skip
            procs.append((stat, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                                 cwd=tmp)))  # fmt: skip
        ok = failed = 0
        errors: list[str] = []
        for stat, proc in procs:
            try:
                _, err = proc.communicate(timeout=STEP_S + 120)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            rows = list(csv.DictReader(stat.open(), delimiter=";")) if stat.exists() else []
            if not rows:
                errors.append((err or "").strip()[-200:] or f"sipp exit {proc.returncode}, no statistics")
                continue
            ok += int(rows[-1]["SuccessfulCall(C)"])
            failed += int(rows[-1]["FailedCall(C)"])
    ratio = round(ok / max(1, ok + failed), 4)
    step: dict[str, Any] = {"cps": cps, "attempts": ok + failed, "ok": ok, "ok_ratio": ratio}
    if errors:
        step.update(ok_ratio=0.0, error="; ".join(errors))
    return step


def sipp_max_cps() -> tuple[float | None, list[dict[str, Any]]]:
    """The highest step SIPp holds at the same floor; None without a sipp binary."""
    if shutil.which("sipp") is None:
        return None, []
    steps: list[dict[str, Any]] = []
    for cps in STEPS:
        step = sipp_step(cps)
        steps.append(step)
        log.info("sipp step %.0f CPS: %s", cps, step)
        if step["ok_ratio"] < OK_FLOOR:
            break
        time.sleep(HOLD_S + 2)  # let the last calls end before the next step
    held = [st["cps"] for st in steps if st["ok_ratio"] >= OK_FLOOR]
    return (max(held) if held else 0.0), steps


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    brought_up = False
    if not lifecycle.is_up():
        lifecycle.up()
        brought_up = True
    steps: list[dict[str, Any]] = []
    cpu_s = call_s = 0.0
    try:
        for cps in STEPS:
            cpu0, t0 = lab_cpu_seconds(), time.monotonic()
            s = run_load(cps, STEP_S, "http", HOLD_S, max_concurrent=80, seed=int(cps),
                         extra=["--hold-dist", "fixed"])  # fmt: skip
            cpu, wall = lab_cpu_seconds() - cpu0, time.monotonic() - t0
            step = {k: s.get(k) for k in ("attempts", "ok", "fail", "info", "ok_ratio", "max_concurrent_seen",
                                          "pdd_ms_p95", "mos_p5", "fail_reasons", "cps_achieved")}  # fmt: skip
            step.update(cps=cps, lab_cpu_pct=round(100 * cpu / wall, 1))
            steps.append(step)
            log.info("step %.0f CPS: %s", cps, step)
            if (s.get("ok_ratio") or 0) < OK_FLOOR:
                break
            cpu_s += cpu
            call_s += (s.get("ok") or 0) * HOLD_S
        sipp_cps, sipp_steps = sipp_max_cps()
    finally:
        if brought_up:
            lifecycle.down()
    held = [st for st in steps if (st["ok_ratio"] or 0) >= OK_FLOOR]
    out = {
        "max_cps": max((st["cps"] for st in held), default=0.0),
        "max_concurrent_calls": max((st["max_concurrent_seen"] or 0 for st in held), default=0),
        "ok_ratio": held[-1]["ok_ratio"] if held else None,
        # % of one core per concurrent call: lab CPU seconds per call-second carried
        "cpu_pct_per_call": round(100 * cpu_s / call_s, 2) if call_s else None,
        # our generator's sustained CPS over SIPp's through the same SBC, in the same run (null: no sipp)
        "sipp_ratio": round(max((st["cps"] for st in held), default=0.0) / sipp_cps, 3) if sipp_cps else None,
        "sipp_max_cps": sipp_cps,
        "sipp_steps": sipp_steps,
        "hold_s": HOLD_S,
        "step_s": STEP_S,
        "ok_floor": OK_FLOOR,
        "steps": steps,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    dest = paths.ROOT / "bench" / "results" / "workload.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "steps"}, indent=2))


if __name__ == "__main__":
    main()
