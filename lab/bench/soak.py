"""`make bench-soak`: a steady load at a realistic rate for a long while (default 5 CPS for 10
minutes, exponential hold times with a 10 s mean, through steering), then the workload's bar
(lab.verify_workload) over the run. Written to bench/results/workload_soak.json with the commit.

    python -m lab.bench.soak [--cps 5] [--duration 600] [--hold-mean 10] [--arrivals constant]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from core import paths
from core.paths import git_commit
from core.stats import percentile
from lab import lifecycle, verify_workload
from lab.bench.measure import EventTail, utc_now, write_result
from lab.load import default_max_concurrent, run_load

log = logging.getLogger("wobble.bench.soak")
COMPLETIONS = ("load_ok", "load_fail", "load_info")


def figures(records: Iterable[Mapping[str, Any]], run_id: str) -> dict[str, Any]:
    """The soak's figures from the run's call records (load_ok/load_fail/load_info). Pure."""
    recs = [r for r in records if r.get("run_id") == run_id and r.get("kind") in COMPLETIONS]
    answered = [r for r in recs if r.get("fate")]
    failed = [r for r in recs if r.get("status") != "ok"]
    pdd = [r.get("pdd_ms") for r in recs]
    mos = [r.get("mos") for r in answered]
    return {
        "attempts": len(recs),
        "ok": sum(1 for r in recs if r.get("status") == "ok"),
        "customer_failed": sum(1 for r in failed if (r.get("whose") or "customer") == "customer"),
        "harness_failed": sum(1 for r in failed if r.get("whose") == "harness"),
        "answered": len(answered),
        "no_audio_calls": sum(1 for r in answered if not int(r.get("rx_packets") or 0)),
        "one_way_calls": sum(
            1 for r in answered if bool(int(r.get("rx_packets") or 0)) != bool(int(r.get("tx_packets") or 0))
        ),
        "pdd_ms": {f"p{p}": percentile(pdd, p) for p in (50, 95, 99)},
        "mos": {f"p{p}": percentile(mos, p) for p in (1, 5, 50)},
    }


def methods(cps: float, duration: float, hold_mean: float, arrivals: str) -> dict[str, str]:
    return {
        "load": f"wobble load --cps {cps:g} --duration {duration:g} --hold-mean {hold_mean:g} --arrivals {arrivals} "
        "--steer http (agents.load in the caller container; exponential hold times, floor 1 s), whole lab running",
        "summary": "agents.load's own run summary, as it printed it",
        "attempts/ok": "call records of the run in var/events.jsonl (load_ok/load_fail/load_info)",
        "customer_failed/harness_failed": "failed or unknown calls by `whose` (core.schema.HARNESS_END: harness)",
        "pdd_ms": "INVITE sent -> first 18x/2xx received, at the caller (pjsua2), percentiles over every attempt "
        "that got one",
        "mos": "E-model MOS (core.mos) of each answered call from the caller's RTCP receive loss/jitter/RTT, "
        "percentiles",
        "no_audio_calls": "answered calls whose caller received no RTP packet at all (rx_packets 0)",
        "one_way_calls": "answered calls with RTP in only one direction at the caller",
        "verify": "python -m lab.verify_workload RUN_ID: every ok call with RTP both ways at caller and agent and a "
        "recording with audio; ok ratio >= 0.999 and MOS p5 >= 4.0",
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lab.bench.soak")
    ap.add_argument("--cps", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of arrivals")
    ap.add_argument("--hold-mean", type=float, default=10.0)
    ap.add_argument("--arrivals", choices=("constant", "poisson"), default="constant")
    ap.add_argument("--out", default="workload_soak.json", help="file name under bench/results/")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    started, commit = utc_now(), git_commit()
    brought_up = False
    if not lifecycle.is_up():
        lifecycle.up()
        brought_up = True
    try:
        tail = EventTail()
        cap = default_max_concurrent(args.cps, args.hold_mean)
        summary = run_load(args.cps, args.duration, "http", args.hold_mean, max_concurrent=cap, arrivals=args.arrivals)
        run_id = str(summary.get("run_id") or "")
        lines = list(tail.lines())
        verdict = verify_workload.check(run_id, lines, paths.VAR / "recordings", 0.999, 4.0)
    finally:
        if brought_up:
            lifecycle.down()
    out = {
        "what": f"wobble load --cps {args.cps:g} --duration {args.duration:g} (hold: exponential, "
        f"{args.hold_mean:g} s mean), whole lab on this {__import__('os').cpu_count()}-core machine; then "
        "python -m lab.verify_workload RUN_ID",
        "date": started[:10],
        "summary": summary,
        "verify": verdict,
        "figures": figures(lines, run_id),
        "methods": methods(args.cps, args.duration, args.hold_mean, args.arrivals),
        "generator_cap": summary.get("generator_cap", cap),
        "commit": commit,
        "started": started,
        "finished": utc_now(),
    }
    dest = write_result(args.out, out)
    log.info("written %s", dest)
    print(json.dumps({k: out[k] for k in ("figures", "verify", "commit")}, indent=2))
    sys.exit(0 if verdict.get("passed") else 1)


if __name__ == "__main__":
    main()
