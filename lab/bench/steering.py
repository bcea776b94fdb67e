"""`make bench` (steering): stop sbc-a under a steady call rate, 10 times per steering mode.

Per repetition: detection time (stop -> steering says DOWN), time to the first successful new
call (stop -> start of the first call begun after the stop that got 200), and failed new calls
(begun after the stop, not 200). Written to bench/results/steering.json with median and p95.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from core import dockerctl, paths
from core.errors import WobbleError
from lab import lifecycle
from lab.call import place_call
from lab.steering import client

log = logging.getLogger("wobble.bench")
REPS = 10
CPS = 2.0
BEFORE_S = 3.0
AFTER_S = 8.0


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summary(values: list[float]) -> dict[str, float | None]:
    return {"median": round(statistics.median(values), 3) if values else None, "p95": pct(values, 0.95)}


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
    t0 = time.monotonic()
    sbc.stop(timeout=0)
    detection = wait(lambda: client.request("/v1/state", timeout=1.0)["regions"]["region-a"]["state"] == "DOWN", 10)
    time.sleep(max(0.0, AFTER_S - (time.monotonic() - t0)))
    stop_load.set()
    loader.join()
    results = []
    for started, fut in calls:
        try:
            rec = fut.result(timeout=60)
        except Exception as exc:
            rec = {"final_code": 0, "error": str(exc)}
        results.append((started - t0, rec))
    pool.shutdown()
    sbc.start()
    new = [(dt, r) for dt, r in results if dt >= 0]
    ok_new = [dt for dt, r in new if r.get("final_code") == 200]
    rerouted = [r for _, r in new if len(r.get("targets_tried") or []) > 1 and r.get("final_code") == 200]
    return {
        "detection_s": round(detection, 3) if detection is not None else None,
        "first_success_s": round(min(ok_new), 3) if ok_new else None,
        "failed_new_calls": sum(1 for _, r in new if r.get("final_code") != 200),
        "new_calls": len(new),
        "rerouted_calls": len(rerouted),
        "rerouted_setup_ms": [r.get("setup_ms") for r in rerouted],
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("wobble.call").setLevel(logging.WARNING)
    brought_up = False
    if not lifecycle.is_up():
        lifecycle.up()
        brought_up = True
    out: dict[str, Any] = {"reps": REPS, "cps": CPS, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        for steer in ("http", "dns"):
            reps = []
            for i in range(REPS):
                rep = one_rep(steer)
                log.info("%s rep %d: %s", steer, i + 1, rep)
                reps.append(rep)
            out[steer] = {
                "detection_s": summary([r["detection_s"] for r in reps if r["detection_s"] is not None]),
                "first_success_s": summary([r["first_success_s"] for r in reps if r["first_success_s"] is not None]),
                "failed_new_calls": summary([float(r["failed_new_calls"]) for r in reps]),
                "reps": reps,
            }
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
