"""`python -m lab.bench.truth [--reps 5]`: the measurement-truth crash, repeated, counted twice.

Per repetition: `wobble load` at 5 CPS for 45 s (5 s mean hold); 15 s after its first call, sbc-a's
main process is SIGKILLed from the host; a tshark capture of the carrier bridge, taken here and not
by the generator, says which of the run's calls were answered on the wire. Written to
bench/results/truth.json: per repetition the lab's failed new calls beside the wire's, the
generator's own limits (`capacity`, `worker_lost`) and worker restarts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from core import dockerctl, events, paths, wire
from core.errors import WobbleError
from lab import lifecycle
from lab.bench.steering import settled, wait

log = logging.getLogger("wobble.bench.truth")
CPS, DURATION, HOLD, KILL_AFTER_S = 5, 45, 5, 15
METHOD = (
    "wobble load --cps 5 --duration 45 --hold-mean 5; SIGKILL (os.kill from the host) of sbc-a's main "
    "process 15 s after the run's first load_invoke; lab_failed = the run's completion records not ok and "
    "without a fate (failed new calls); wire_failed = the run's calls with no 2xx to any of their INVITEs in "
    "this script's own tshark capture of the carrier bridge (udp port 5060)"
)


def _invoked_since(n0: int) -> bool:
    return any(e.kind == "load_invoke" for e in list(events.read(paths.EVENTS))[n0:])


def one_rep(workdir: Path) -> dict[str, Any]:
    if wait(settled, 120, 0.5) is None:
        raise WobbleError("regions did not settle UP before the repetition")
    pcap = workdir / f"carrier-{time.time():.0f}.pcap"
    n0 = sum(1 for _ in events.read(paths.EVENTS))
    result: dict[str, Any] = {}
    cmd = [sys.executable, "-m", "lab.cli", "load", "--cps", str(CPS), "--duration", str(DURATION),
           "--hold-mean", str(HOLD), "--json"]  # fmt: skip

    def run() -> None:
        result["proc"] = subprocess.run(cmd, cwd=paths.ROOT, capture_output=True, text=True, timeout=DURATION + 180)

    with wire.capture(wire.bridge_of("wobble_carrier"), pcap):
        runner = threading.Thread(target=run)
        runner.start()
        if wait(lambda: _invoked_since(n0), 60, 0.2) is None:
            raise WobbleError("the load run placed no call within 60 s")
        time.sleep(KILL_AFTER_S)
        sbc = dockerctl.service_container("sbc-a")
        sbc.reload()
        os.kill(int(sbc.attrs["State"]["Pid"]), signal.SIGKILL)
        runner.join(DURATION + 200)
    for c in dockerctl.lab_containers(all_states=True):
        if c.labels.get("com.docker.compose.service") == "sbc-a" and c.status != "running":
            c.start()
    proc: subprocess.CompletedProcess[str] = result["proc"]
    if proc.returncode != 0:
        raise WobbleError(f"wobble load failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    run_id = summary["run_id"]
    done = {
        d["call_id"]: d
        for d in (e.to_dict() for e in events.read(paths.EVENTS))
        if d.get("run_id") == run_id and d["kind"] in ("load_ok", "load_fail", "load_info")
    }
    agree = wire.agreement(done, wire.outcomes(pcap))
    pcap.unlink(missing_ok=True)
    reasons = summary.get("harness_reasons") or {}
    return {
        **agree.as_dict(),
        "attempts": summary["attempts"],
        "customer_failed": summary["customer_failed"],
        "harness_failed": summary["harness_failed"],
        "capacity": int(reasons.get("capacity", 0)),
        "worker_lost": int(reasons.get("worker_lost", 0)),
        "worker_restarts": summary.get("worker_restarts"),
        "agree_within_1": agree.difference <= 1 and not agree.never_on_wire,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    brought_up = False
    if not lifecycle.is_up():
        lifecycle.up()
        brought_up = True
    reps: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="wobble-truth-") as tmp:
            for i in range(args.reps):
                rep = one_rep(Path(tmp))
                log.info("rep %d: %s", i + 1, rep)
                reps.append(rep)
    finally:
        if brought_up:
            lifecycle.down()
    out = {
        "commit": paths.git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": METHOD,
        "pairs_lab_wire": [[r["lab_failed"], r["wire_failed"]] for r in reps],
        "capacity_total": sum(r["capacity"] for r in reps),
        "worker_lost_total": sum(r["worker_lost"] for r in reps),
        "all_agree_within_1": all(r["agree_within_1"] for r in reps),
        "reps": reps,
    }
    dest = paths.ROOT / "bench" / "results" / "truth.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "reps"}))
    return 0 if out["all_agree_within_1"] and not out["capacity_total"] and not out["worker_lost_total"] else 1


if __name__ == "__main__":
    sys.exit(main())
