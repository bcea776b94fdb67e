"""Check a finished load run against the workload's bar, from the event log and the recordings.

`python -m lab.verify_workload RUN_ID [--min-ok 0.999] [--min-mos-p5 4.0]`: every `ok` call must have
RTP both ways (the caller's and the agent's counters) and a recording with audio; the ok ratio and
MOS p5 must meet the bar. Prints one JSON object; exit 0 when the run meets it, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core import events, paths

WAV_HEADER = 44


def check(run_id: str, log: list[dict[str, Any]], recordings: Path, min_ok: float, min_mos_p5: float) -> dict[str, Any]:
    """Pure over the log (plus recording sizes): the verdict and every call that missed the bar."""
    done = [e for e in log if e.get("run_id") == run_id and e.get("kind") in ("load_ok", "load_fail", "load_info")]
    oks = [e for e in done if e["kind"] == "load_ok"]
    agent = {e.get("call_id"): e for e in log if e.get("kind") == "agent_call"}
    problems: list[dict[str, Any]] = []
    for e in oks:
        cid = e["call_id"]
        a = agent.get(cid, {})
        wav = recordings / str(e.get("region")) / f"{cid}.wav"
        size = wav.stat().st_size if wav.exists() else 0
        why = []
        if not (e.get("rx_packets", 0) > 0 and e.get("tx_packets", 0) > 0):
            why.append("caller RTP one way or none")
        if not (a.get("rx_packets", 0) > 0 and a.get("tx_packets", 0) > 0):
            why.append("agent RTP one way or none" if a else "no agent record")
        if size <= WAV_HEADER:
            why.append("no recording" if size == 0 else "empty recording")
        if why:
            problems.append({"call_id": cid, "region": e.get("region"), "why": why})
    mos = sorted(float(e["mos"]) for e in oks if e.get("mos") is not None)
    mos_p5 = mos[int(0.05 * (len(mos) - 1))] if mos else None
    ratio = len(oks) / len(done) if done else 0.0
    return {
        "run_id": run_id,
        "attempts": len(done),
        "ok": len(oks),
        "ok_ratio": round(ratio, 5),
        "mos_p5": mos_p5,
        "ok_without_media_or_recording": len(problems),
        "problems": problems[:20],
        "fail_reasons": sorted(
            {str(e.get("final_code") or e.get("end_reason")) for e in done if e["kind"] != "load_ok"}
        ),
        "passed": bool(done) and ratio >= min_ok and not problems and mos_p5 is not None and mos_p5 >= min_mos_p5,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.verify_workload")
    ap.add_argument("run_id")
    ap.add_argument("--min-ok", type=float, default=0.999)
    ap.add_argument("--min-mos-p5", type=float, default=4.0)
    args = ap.parse_args(argv)
    log = [ev.to_dict() for ev in events.read(paths.EVENTS)]
    verdict = check(args.run_id, log, paths.VAR / "recordings", args.min_ok, args.min_mos_p5)
    print(json.dumps(verdict))
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
