"""`make bench` (steering): SIGKILL sbc-a under a steady call rate, 10 times per steering mode.

Every time is counted from `t_kill`, the host's wall clock read just before the SIGKILL is sent to
the SBC container's main process (os.kill from the host: no docker round trip in the timing).
Per repetition (lab/bench/failover.py):
- detection_s: t_kill -> the steering service's own `since` of region-a's DOWN decision (the same
  kernel clock); a repetition with no DOWN within DETECT_WINDOW_S counts in `never_detected`;
- all_ok_after_s: t_kill -> the start of the first new call after which every new call got 200;
- failed_new_calls: calls begun after t_kill that did not get 200 (what a customer saw);
- rerouted_calls and their extra PDD: answered only at a second target, setup time above the median
  setup of the calls before the kill.
Written to bench/results/steering.json with median and p95 per mode.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from core import dockerctl, paths
from core.errors import WobbleError
from lab import lifecycle
from lab.bench.failover import Call, headline, rep_figures
from lab.call import place_call
from lab.steering import client

log = logging.getLogger("wobble.bench")
REPS = 10
CPS = 2.0
BEFORE_S = 3.0
AFTER_S = 8.0
DETECT_WINDOW_S = 10.0
METHOD = {
    "t_kill": "host time.time() just before os.kill(SIGKILL) of sbc-a's main process (PID from docker inspect)",
    "detection_s": "steering's own `since` of region-a's DOWN (GET /v1/state) minus t_kill; same kernel clock",
    "all_ok_after_s": "start of the first call after t_kill after which every new call got 200, minus t_kill",
    "failed_new_calls": "calls begun after t_kill whose final code was not 200 (the caller's own SIP result)",
    "rerouted_extra_pdd_ms": "setup_ms of a call answered at its second target minus the median setup_ms before t_kill",
}


def settled() -> bool:
    """Both regions UP and any fail-back ramp finished (full weight)."""
    try:
        snap = client.request("/v1/state", timeout=1.0)
    except WobbleError:
        return False
    return all(r["state"] == "UP" and r["weight"] >= 0.99 * r["configured_weight"] for r in snap["regions"].values())


def wait(pred: Any, timeout: float, every: float = 0.05) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(every)
    return None


def one_rep(steer: str) -> dict[str, Any]:
    if wait(settled, 90, 0.5) is None:
        raise WobbleError("regions did not settle UP before the repetition")
    calls: list[tuple[float, Future[dict[str, Any]]]] = []
    stop_load = threading.Event()
    pool = ThreadPoolExecutor(max_workers=12)

    def load() -> None:
        next_at = time.monotonic()
        while not stop_load.is_set():
            calls.append((time.monotonic(), pool.submit(place_call, None, 1, steer=steer, timeout_s=10,
                                                         response_timeout_s=1.0)))  # fmt: skip
            next_at += 1 / CPS
            time.sleep(max(0.0, next_at - time.monotonic()))

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    time.sleep(BEFORE_S)
    sbc = dockerctl.service_container("sbc-a")
    sbc.reload()
    pid = int(sbc.attrs["State"]["Pid"])
    t0 = time.monotonic()
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    down_since: list[float] = []

    def down() -> bool:
        region = client.request("/v1/state", timeout=1.0)["regions"]["region-a"]
        if region["state"] == "DOWN":
            down_since.append(float(region["since"]))
            return True
        return False

    wait(down, DETECT_WINDOW_S)
    detection = down_since[0] - t_kill if down_since else None
    time.sleep(max(0.0, AFTER_S - (time.monotonic() - t0)))
    stop_load.set()
    loader.join()
    results: list[Call] = []
    for started, fut in calls:
        try:
            rec = fut.result(timeout=60)
        except Exception as exc:
            rec = {"final_code": 0, "error": str(exc)}
        results.append((started - t0, rec))
    pool.shutdown()
    sbc.start()
    return rep_figures(results, detection)


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("wobble.call").setLevel(logging.WARNING)
    brought_up = False
    if not lifecycle.is_up():
        lifecycle.up()
        brought_up = True
    out: dict[str, Any] = {
        "commit": paths.git_commit(),
        "reps": REPS,
        "cps": CPS,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": METHOD,
    }
    try:
        for steer in ("http", "dns"):
            reps = []
            for i in range(REPS):
                rep = one_rep(steer)
                log.info("%s rep %d: %s", steer, i + 1, rep)
                reps.append(rep)
            out[steer] = {**headline(reps), "reps": reps}
    finally:
        for c in dockerctl.lab_containers(all_states=True):
            if c.labels.get("com.docker.compose.service") == "sbc-a" and c.status != "running":
                c.start()
        if brought_up:
            lifecycle.down()
    dest = paths.ROOT / "bench" / "results" / "steering.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != "reps"}
                      for k, v in out.items()}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
