"""`make bench`: foundation timings, written to bench/results/foundation.json.

- cold `make setup`: a fresh clone, with the lab's images and base images removed first
- warm `make setup`: the same again with nothing changed
- `make up` to healthy
- one call's setup time (INVITE to 200 OK), over a few calls per region

Timings go to a file, not into assertions: these machines are shared and noisy.
"""

from __future__ import annotations

import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core import paths

CALLS_PER_REGION = 3
IMAGES = [
    "wobble/python:dev",
    "wobble/sbc:dev",
    "wobble/media:dev",
    "wobble/pbx:dev",
    "wobble/db:dev",
    "debian:bookworm-slim",
    "debian:sid-slim",
]


def timed(cmd: list[str], cwd: Path) -> float:
    print(f"bench: {' '.join(cmd)} (in {cwd})", file=sys.stderr, flush=True)
    start = time.monotonic()
    subprocess.run(cmd, cwd=cwd, check=True)
    return round(time.monotonic() - start, 2)


def main() -> None:
    results: dict[str, Any] = {
        "host": platform.node(),
        "cpus": __import__("os").cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    subprocess.run(["make", "down"], cwd=paths.ROOT, check=False, capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="wobble-bench-"))
    clone = work / "wobble"
    try:
        subprocess.run(["git", "clone", "-q", str(paths.ROOT), str(clone)], check=True)
        subprocess.run(["docker", "rmi", "-f", *IMAGES], check=False, capture_output=True)
        subprocess.run(["docker", "image", "prune", "-f"], check=False, capture_output=True)
        results["setup_cold_s"] = timed(["make", "setup"], clone)
        results["setup_warm_s"] = timed(["make", "setup"], clone)
        results["up_to_healthy_s"] = timed([str(clone / ".venv/bin/wobble"), "up"], clone)
        setups: list[float] = []
        pdds: list[float] = []
        for region in ("region-a", "region-b"):
            for _ in range(CALLS_PER_REGION):
                proc = subprocess.run(
                    [str(clone / ".venv/bin/wobble"), "call", "--region", region, "--hold", "2", "--json"],
                    cwd=clone,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                rec = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
                if rec.get("final_code") == 200:
                    setups.append(float(rec["setup_ms"]))
                    pdds.append(float(rec["pdd_ms"]))
        results["calls_ok"] = len(setups)
        results["calls_tried"] = 2 * CALLS_PER_REGION
        if setups:
            results["call_setup_ms_median"] = round(statistics.median(setups), 1)
            results["call_setup_ms_max"] = round(max(setups), 1)
            results["call_pdd_ms_median"] = round(statistics.median(pdds), 1)
    finally:
        subprocess.run([str(clone / ".venv/bin/wobble"), "down"], cwd=clone, check=False)
        shutil.rmtree(work, ignore_errors=True)
    out = paths.ROOT / "bench" / "results" / "foundation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
