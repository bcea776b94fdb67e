"""RPO scenarios on a records-only lab (tests/records/compose.yaml: two records servers and the
toxiproxy between them, project wobble-rt on 10.78.x, so they run beside a live lab). The records
lab tests assert on their results and `python -m lab.bench.records` writes them down.

Each scenario starts from fresh volumes, applies the config's WAN profile, drives a steady write
load (lab.records.writer) into region-a's primary, then loses, stops or fails over region-a.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from core import events, paths
from core.dockerctl import compose_bin
from lab.records import config, db, failover, gather, groundtruth, lag, sources, wan, writer
from lab.records.config import RecordsConfig
from lab.records.errors import OperationFailed, RecordsError

log = logging.getLogger("wobble.records")
RT_DIR = paths.ROOT / "tests" / "records"
ORIGIN, SURVIVOR = "region-a", "region-b"


def rt_config() -> RecordsConfig:
    return config.load(RT_DIR / "records.yaml")


def compose(cfg: RecordsConfig, *args: str) -> None:
    cmd = [str(compose_bin()), "-p", cfg.project, "-f", str(RT_DIR / "compose.yaml"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise OperationFailed(f"compose {' '.join(args)} for {cfg.project} failed: {last}")


def fresh(cfg: RecordsConfig, timeout_s: float = 120.0) -> None:
    """A new records lab: volumes removed, both servers up, both standbys streaming, WAN applied."""
    compose(cfg, "down", "-v", "--remove-orphans", "--timeout", "5")
    compose(cfg, "up", "-d", "--wait")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if all(x.state == "streaming" for x in lag.all_lags(cfg)):
                break
        except RecordsError:
            pass
        if time.monotonic() > deadline:
            raise OperationFailed(f"{cfg.project}: standbys not streaming after {timeout_s:.0f} s")
        time.sleep(0.5)
    wan.apply(cfg, cfg.wan)


def down(cfg: RecordsConfig) -> None:
    compose(cfg, "down", "-v", "--remove-orphans", "--timeout", "5")


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))], 1)


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def event_log_of(w: writer.Writer, path: Path) -> Path:
    """The writer's records as the lab's event log would have them (`call` / `call_invoke`)."""
    for rec in w.done:
        if rec.t_commit is None:
            events.append(events.CallInvoke(call_id=rec.call_id, t_invoke=rec.t_start), path)
            continue
        call = events.CallRecord(
            call_id=rec.call_id,
            status="ok",
            fate="survived",
            region=w.region,
            t_invoke=rec.t_start,
            answered_at=rec.t_start,
            t_end=rec.t_commit,
            duration_s=w.audio_s,
        )
        events.append(call, path)
    return path


def load_then(cfg: RecordsConfig, seconds: float, rate: float, audio_s: float) -> tuple[writer.Writer, lag.Lag]:
    """Drive the load for `seconds`; returns the writer (still running) and the lag just now."""
    w = writer.Writer(cfg, ORIGIN, rate=rate, audio_s=audio_s).start()
    time.sleep(seconds)
    if w.error:
        raise OperationFailed(f"writer failed: {w.error}")
    return w, lag.standby_lag(cfg, ORIGIN)


def crash(
    cfg: RecordsConfig, mode: str, seconds: float = 15.0, rate: float = 5.0, audio_s: float = 4.0
) -> dict[str, Any]:
    """Load, observe the lag, lose region-a abruptly, promote its standby in region-b, reconcile
    there from the event log against the crashed primary's own data directory."""
    fresh(cfg)
    failover.set_mode(cfg, mode)  # type: ignore[arg-type]
    loss = failover.RegionLoss(cfg, ORIGIN)
    probe = lag.LagProbe(cfg, ORIGIN)
    w = writer.Writer(cfg, ORIGIN, rate=rate, audio_s=audio_s).start()
    time.sleep(seconds)
    if w.error:
        raise OperationFailed(f"writer failed: {w.error}")
    before, t_seen = probe.read(), time.time()
    t_cut, t_kill = loss.now()
    probe.close()
    w.stop()
    committed = w.committed
    span = committed[-1].t_commit - committed[0].t_commit if len(committed) > 1 else 0.0  # type: ignore[operator]
    actual_rate = (len(committed) - 1) / span if span > 0 else rate
    promoted = failover.promote(cfg, ORIGIN)
    with tempfile.TemporaryDirectory() as tmp:
        report = gather.run(cfg, SURVIVOR, None, event_log_of(w, Path(tmp) / "events.jsonl"))
    counts = report.counts
    lost_ids = {f.call_id for f in report.findings if f.cls == "committed_not_replicated"}
    acked_lost = [x for x in committed if x.call_id in lost_ids]
    lat = w.commit_latencies_ms()
    # The lag at the cut, extrapolated from the lag seen just before it: after the cut nothing
    # more reaches the standby, so every commit until the kill adds to it.
    lag_at_kill = (before.seconds or 0.0) + (t_kill - t_seen)
    predicted = lag_at_kill * actual_rate
    # The same prediction in records actually written (the load is bursty on a busy machine): every
    # commit after (lag read - lag seconds) was not on the standby yet.
    boundary = t_seen - (before.seconds or 0.0)
    in_window = sum(1 for x in committed if x.t_commit is not None and x.t_commit > boundary)
    one_s = sum(1 for x in committed if x.t_commit is not None and boundary - 0.5 < x.t_commit <= boundary + 0.5)
    return {
        "mode": mode,
        "wan": cfg.wan.model_dump(),
        "load": {
            "records_per_s": round(actual_rate, 2),
            "recording_bytes": int(audio_s * writer.BYTES_PER_S),
            "seconds": seconds,
        },
        "lag_before_kill": {"seconds": before.seconds, "bytes": before.bytes, "state": before.state},
        "cut_after_lag_read_s": round(t_cut - t_seen, 3),
        "kill_after_lag_read_s": round(t_kill - t_seen, 3),
        "committed": len(committed),
        "counts": counts,
        "committed_not_replicated": counts["committed_not_replicated"],
        "acknowledged_lost": len(acked_lost),
        "predicted_from_lag": round(predicted, 1),
        "lag_only_prediction": round((before.seconds or 0.0) * actual_rate, 1),
        "predicted_in_window": in_window,
        "traffic_in_1s_at_boundary": one_s,
        "rpo_records": counts["committed_not_replicated"],
        "rpo_seconds": round(counts["committed_not_replicated"] / actual_rate, 2) if actual_rate else None,
        "commit_ms": {
            "p50": _p(lat, 0.5),
            "p95": _p(lat, 0.95),
            "mean": round(statistics.fmean(lat), 1) if lat else None,
        },
        "promote_s": promoted["seconds"],
        "writer": w,
    }


def resync_after_crash(
    cfg: RecordsConfig, more_s: float = 3.0, keep_wan: bool = False, salvage: bool = True
) -> dict[str, Any]:
    """After `crash`: write to the promoted copy, bring region-a back (its home stays fenced),
    resync it by pg_rewind, and prove the rebuilt standby holds every row the promoted one has."""
    promoted_cfg = cfg.model_copy(
        update={
            "regions": {
                **cfg.regions,
                ORIGIN: cfg.regions[ORIGIN].model_copy(
                    update={"host": cfg.regions[SURVIVOR].host, "home_port": cfg.regions[SURVIVOR].copy_port}
                ),
            }
        }
    )
    truth = groundtruth.read(cfg, ORIGIN, groundtruth.server_state(cfg, ORIGIN))
    w = writer.Writer(promoted_cfg, ORIGIN, rate=5.0, audio_s=1.0).start()
    time.sleep(more_s)
    w.stop()
    failover.region_back(cfg, ORIGIN)
    state = groundtruth.server_state(cfg, ORIGIN)
    fenced = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and state.container is not None:
        if b"FENCED" in state.container.logs(tail=50):
            fenced = True
            break
        time.sleep(0.5)
    if not keep_wan:
        wan.clear(cfg)  # pg_rewind copies whole WAL segments: ~4 min at 256 KB/s; measured apart
    res = failover.resync(cfg, ORIGIN, salvage=salvage)
    rebuilt = sources.read_live(cfg, db.home(cfg, ORIGIN))
    # Nothing lost: every record the crashed primary had committed, and every record written to
    # the promoted one since, is in the rebuilt standby.
    want_ids = set(truth.cdrs) | {x.call_id for x in w.committed}
    res["missing_after_resync"] = sorted(want_ids - set(rebuilt.cdrs) | (want_ids - set(rebuilt.recordings)))
    res["fenced_before_resync"] = fenced
    fb = failover.failback(cfg, ORIGIN)
    # Back to normal: a new record in region-a's own primary reaches region-b's standby again.
    w2 = writer.Writer(cfg, ORIGIN, rate=5.0, audio_s=0.5).start()
    time.sleep(1.0)
    w2.stop()
    deadline = time.monotonic() + 30
    new = {x.call_id for x in w2.committed}
    while time.monotonic() < deadline and not new <= sources.read_live(cfg, db.copy(cfg, SURVIVOR)).cdrs:
        time.sleep(0.5)
    fb["replicating_again"] = bool(new) and new <= sources.read_live(cfg, db.copy(cfg, SURVIVOR)).cdrs
    res["failback"] = fb
    res["post_failover_writes"] = len(w.committed)
    res["wan_during_resync"] = keep_wan
    return res


def clean_stop(cfg: RecordsConfig, seconds: float = 10.0, rate: float = 5.0, audio_s: float = 4.0) -> dict[str, Any]:
    """Load with lag, then a clean stop of region-a's server: the standby must end up with every
    committed record (a fast shutdown ships all WAL first)."""
    fresh(cfg)
    w, before = load_then(cfg, seconds, rate, audio_s)
    w.stop()
    state = groundtruth.server_state(cfg, ORIGIN)
    if state.container is None:
        raise OperationFailed(f"{cfg.region(ORIGIN).service} has no container")
    t0 = time.monotonic()
    state.container.stop(timeout=120)
    stop_s = time.monotonic() - t0
    with tempfile.TemporaryDirectory() as tmp:
        report = gather.run(cfg, SURVIVOR, None, event_log_of(w, Path(tmp) / "events.jsonl"))
    return {
        "lag_before_stop": before.as_dict(),
        "stop_s": round(stop_s, 2),
        "committed": len(w.committed),
        "counts": report.counts,
    }


def dumps(result: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in result.items() if k != "writer"}, default=str)
