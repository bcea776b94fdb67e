"""The workload bar, checked from the event log: ok ratio, MOS p5, RTP both ways, a recording."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.verify_workload import check


def ok(cid: str, mos: float = 4.4, rx: int = 100) -> dict[str, Any]:
    return {
        "kind": "load_ok",
        "run_id": "r1",
        "call_id": cid,
        "region": "region-a",
        "rx_packets": rx,
        "tx_packets": 100,
        "mos": mos,
    }


def agent(cid: str, rx: int = 100) -> dict[str, Any]:
    return {"kind": "agent_call", "call_id": cid, "rx_packets": rx, "tx_packets": 100}


def recordings(tmp: Path, *cids: str, size: int = 8044) -> Path:
    (tmp / "region-a").mkdir(parents=True, exist_ok=True)
    for cid in cids:
        (tmp / "region-a" / f"{cid}.wav").write_bytes(b"\0" * size)
    return tmp


def test_a_clean_run_passes(tmp_path: Path) -> None:
    log = [ok("c1"), agent("c1"), ok("c2"), agent("c2"), {"kind": "load_ok", "run_id": "other", "call_id": "x"}]
    v = check("r1", log, recordings(tmp_path, "c1", "c2"), 0.999, 4.0)
    assert v["passed"] and v["attempts"] == 2 and v["ok_ratio"] == 1.0


def test_one_way_audio_or_missing_recording_fails(tmp_path: Path) -> None:
    log = [ok("c1"), agent("c1", rx=0), ok("c2", rx=0), agent("c2"), ok("c3"), agent("c3")]
    v = check("r1", log, recordings(tmp_path, "c1", "c2"), 0.999, 4.0)
    assert not v["passed"]
    why = {p["call_id"]: p["why"] for p in v["problems"]}
    assert why == {"c1": ["agent RTP one way or none"], "c2": ["caller RTP one way or none"], "c3": ["no recording"]}


def test_ok_ratio_and_mos_bars(tmp_path: Path) -> None:
    log = [ok(f"c{i}") for i in range(999)] + [agent(f"c{i}") for i in range(999)]
    log.append({"kind": "load_fail", "run_id": "r1", "call_id": "f", "final_code": 503})
    rec = recordings(tmp_path, *(f"c{i}" for i in range(999)))
    assert check("r1", log, rec, 0.999, 4.0)["passed"]
    log.append({"kind": "load_info", "run_id": "r1", "call_id": "g"})
    assert not check("r1", log, rec, 0.999, 4.0)["passed"]
    bad_mos = [ok("c1", mos=3.0), agent("c1")]
    assert not check("r1", bad_mos, recordings(tmp_path, "c1"), 0.9, 4.0)["passed"]


def test_an_empty_run_does_not_pass(tmp_path: Path) -> None:
    assert not check("r1", [], tmp_path, 0.999, 4.0)["passed"]
