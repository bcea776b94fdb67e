"""Records replication and RPO on real PostgreSQL streaming replication (see conftest.py)."""

from __future__ import annotations

import json
import time

import pytest

from lab.records import db, scenarios, sources, writer
from lab.records.config import RecordsConfig
from tests.helpers import wait_until

pytestmark = [pytest.mark.records, pytest.mark.timeout(600)]


def test_streaming_replication_both_ways(rt: RecordsConfig) -> None:
    scenarios.fresh(rt)
    ws = [writer.Writer(rt, region, rate=10, audio_s=0.5).start() for region in ("region-a", "region-b")]
    time.sleep(1.0)
    for w in ws:
        w.stop()
    for w in ws:
        peer = rt.region(w.region).peer
        want = {x.call_id for x in w.committed}
        assert want, w.error

        def replicated(peer: str = peer, want: set[str] = want) -> bool:
            seen = sources.read_live(rt, db.copy(rt, peer))
            return want <= seen.cdrs and want <= set(seen.recordings)

        wait_until(replicated, 20, f"{w.region}'s records on {peer}'s standby", every=0.5)


def test_async_region_loss_rpo_matches_lag_then_resync_loses_nothing(rt: RecordsConfig) -> None:
    res = scenarios.crash(rt, "async")
    print("async crash:", scenarios.dumps(res))
    rate = res["load"]["records_per_s"]
    lost = res["committed_not_replicated"]
    assert res["lag_before_kill"]["seconds"] > 1.0, "the WAN profile made no lag: nothing measured"
    assert lost > 0
    # Within one second of traffic of what the lag seen just before the kill predicts: the records
    # committed in the last `lag seconds` before it (the writer is bursty on a busy machine, so
    # counted, not rate x seconds; both are reported).
    assert abs(lost - res["predicted_in_window"]) <= max(rate, res["traffic_in_1s_at_boundary"]), res
    assert res["counts"]["not_written"] == 0 and res["counts"]["missing"] == 0
    assert res["counts"]["never_committed"] <= 1  # the one record in flight at the kill, at most
    resync = scenarios.resync_after_crash(rt)
    print("resync:", json.dumps(resync))
    assert resync["fenced_before_resync"], "the old primary came back as a primary (split brain)"
    assert resync["method"] in ("pg_rewind", "basebackup")
    assert resync["source_rows"] == resync["rebuilt_rows"]
    # The records only the crashed primary had were salvaged into the promoted one before the
    # rewind: every committed record, before and after the failover, is there.
    assert resync["salvaged"]["recordings"] == lost
    assert resync["missing_after_resync"] == []
    # Failback: region-a's own server is the primary again, with every row, and replicates again.
    assert resync["failback"]["rows"] == resync["rebuilt_rows"]
    assert resync["failback"]["replicating_again"]


def test_sync_mode_loses_no_committed_record_and_costs_latency(rt: RecordsConfig) -> None:
    a = scenarios.crash(rt, "async", seconds=8.0, audio_s=1.0)
    s = scenarios.crash(rt, "sync", seconds=8.0, audio_s=1.0)
    print("sync crash:", scenarios.dumps(s))
    print("commit ms async", a["commit_ms"], "sync", s["commit_ms"])
    assert s["acknowledged_lost"] == 0, s
    assert s["counts"]["not_written"] == 0 and s["counts"]["missing"] == 0
    # A sync commit waits for the standby across the WAN (latency both ways): at least one RTT.
    assert s["commit_ms"]["p50"] > a["commit_ms"]["p50"] + rt.wan.latency_ms


def test_clean_stop_loses_nothing(rt: RecordsConfig) -> None:
    res = scenarios.clean_stop(rt)
    print("clean stop:", json.dumps(res))
    assert res["lag_before_stop"]["seconds"] > 0.5, "no lag to ship at the stop: nothing proved"
    assert res["counts"]["ok"] == res["committed"]
    assert res["counts"]["committed_not_replicated"] == 0 and res["counts"]["not_written"] == 0
