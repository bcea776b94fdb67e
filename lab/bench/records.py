"""`python -m lab.bench.records`: RPO and commit-latency cost of the records replication modes,
written to bench/results/records.json.

Runs on the records-only lab (lab.records.scenarios: project wobble-rt, 10.78.x; the main lab is
not touched) under the default WAN profile (lab/records/records.yaml) and the default load (5
records/s, each a CDR and a 4 s recording): async and sync crashes of region-a with their RPO in
records and seconds, the commit latency of each and the cost of sync, a promote + resync, and a
clean stop. Takes the records lab down at the end.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from core import paths
from lab.records import scenarios

RESULTS = paths.ROOT / "bench" / "results" / "records.json"


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "load",
        "lag_before_kill",
        "committed",
        "rpo_records",
        "rpo_seconds",
        "predicted_in_window",
        "lag_only_prediction",
        "acknowledged_lost",
        "commit_ms",
        "promote_s",
        "counts",
    )
    return {k: r[k] for k in keep}


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    cfg = scenarios.rt_config()
    out: dict[str, Any] = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wan": cfg.wan.model_dump(),
        "lab": f"{cfg.project} (records only)",
    }
    try:
        a = scenarios.crash(cfg, "async")
        out["async"] = _summary(a)
        out["resync"] = scenarios.resync_after_crash(cfg)
        s = scenarios.crash(cfg, "sync")
        out["sync"] = _summary(s)
        pa, ps = a["commit_ms"]["p50"], s["commit_ms"]["p50"]
        out["sync_commit_cost_ms"] = {
            "p50": round(ps - pa, 1) if pa is not None and ps is not None else None,
            "mean": round(s["commit_ms"]["mean"] - a["commit_ms"]["mean"], 1)
            if a["commit_ms"]["mean"] is not None and s["commit_ms"]["mean"] is not None
            else None,
        }
        out["clean_stop"] = scenarios.clean_stop(cfg)
    finally:
        scenarios.down(cfg)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(
        json.dumps(
            {
                "async_rpo_records": out["async"]["rpo_records"],
                "sync_rpo_records": out["sync"]["rpo_records"],
                "sync_commit_cost_ms": out["sync_commit_cost_ms"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
