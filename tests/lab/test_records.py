"""Call records in the real lab: real calls through pbx-a write CDRs and recordings into db-a, which
streams them to region-b's standby over the backbone's WAN profile; a region loss then loses what
had not crossed yet, and reconcile counts it from the crashed primary's own data directory.

(The sync-mode drill, the clean stop and the commit-latency cost run on the records-only lab in
tests/records, with a synthetic writer whose commit times are known exactly.)
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from core import paths
from lab.records import config
from lab.records.lag import Lag, LagProbe
from tests.helpers import logged, loss_band, wait_until
from tests.lab.conftest import ROOT, WOBBLE, last_json, run_wobble, wait_agents_home

#: A slow WAN, so that real calls (a recording is 16 KB per second of talk) build a lag of seconds.
SLOW_WAN = ("--latency-ms", "40", "--jitter-ms", "5", "--rate-kbs", "48")
CPS, HOLD_MEAN, LOAD_S = 2.0, 3.0, 25.0


def ok(*args: str, timeout: float = 180) -> dict[str, Any]:
    proc = run_wobble(*args, timeout=timeout)
    assert proc.returncode == 0, f"wobble {' '.join(args)}: exit {proc.returncode}: {proc.stderr[-800:]}"
    return last_json(proc.stdout)


def reconcile(region: str, since: float) -> tuple[int, dict[str, Any]]:
    proc = run_wobble("records", "reconcile", "--region", region, "--since", str(since), "--json", timeout=180)
    assert proc.returncode in (0, 1), f"reconcile {region}: exit {proc.returncode}: {proc.stderr[-800:]}"
    return proc.returncode, last_json(proc.stdout)


@pytest.fixture
def region_a_restored(lab_up: None) -> Iterator[list[str]]:
    """Whatever happens: the fault reverted, region-a's records rebuilt and handed back, the WAN
    and the commit mode as the config has them, every agent home."""
    steps: list[str] = []
    yield steps
    run_wobble("fault", "clear")
    if "promoted" in steps:
        run_wobble("records", "wan", "--off")  # pg_rewind copies whole WAL segments: not over 48 KB/s
        if "resynced" not in steps:
            run_wobble("records", "resync", "--region", "region-a", timeout=300)
        if "failed_back" not in steps:
            run_wobble("records", "failback", "--region", "region-a", timeout=300)
    run_wobble("records", "wan")  # the config's profile again
    run_wobble("records", "mode", "async")
    wait_agents_home()


def test_a_call_answered_in_region_a_is_readable_in_region_b(lab_up: None) -> None:
    since = time.time()
    rec = last_json(run_wobble("call", "--region", "region-a", "--hold", "3", "--json").stdout)
    assert rec["final_code"] == 200 and rec["region"] == "region-a", rec
    last: list[dict[str, Any]] = [{}]

    def readable() -> bool:
        rc, last[0] = reconcile("region-b", since)
        mine = [r for r in last[0]["records"] if r["call_id"] == rec["call_id"]]
        return rc == 0 and last[0]["counts"]["ok"] >= 1 and not mine  # listed records are the problems

    wait_until(readable, 20, lambda: f"the call's records readable in region-b: {last[0]}", every=1)


def test_async_region_loss_loses_what_the_lag_said_then_nothing_after_resync_and_failback(
    region_a_restored: list[str],
) -> None:
    ok("records", "mode", "async", "--json")
    ok("records", "wan", *SLOW_WAN, "--json")
    since = time.time()
    load = subprocess.Popen(
        [
            *WOBBLE,
            "load",
            "--cps",
            str(CPS),
            "--duration",
            "120",
            "--steer",
            "region-a",
            "--hold-mean",
            str(HOLD_MEAN),
            "--json",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    samples: list[tuple[float, Lag]] = []  # the lag, read every 0.2 s until the region is gone
    stop = threading.Event()

    def sample() -> None:
        probe = LagProbe(config.load(), "region-a")
        try:
            while not stop.is_set():
                samples.append((time.time(), probe.read()))
                time.sleep(0.2)
        except Exception:  # the cut (no replication row any more) or the kill ends the readings
            samples.append((time.time(), Lag("region-a->region-b", "gone", None, None, None)))
        finally:
            probe.close()

    try:
        time.sleep(LOAD_S)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        time.sleep(2.0)
        gone = run_wobble("fault", "add", "region_down", "--target", "region-a", "--for", "600s")
        assert gone.returncode == 0, gone.stderr[-800:]
    finally:
        stop.set()
        load.send_signal(signal.SIGTERM)  # its calls into the dead region would only fail now
        summary = json.loads(load.communicate(timeout=120)[0].strip().splitlines()[-1])
    seen = [(t, x) for t, x in samples if x.state != "gone"]
    assert seen and samples[-1][1].state == "gone", samples[-3:]
    t_seen, lag = seen[-1]  # the lag observed just before the kill
    t_cut = samples[-1][0]  # no later than this the egress was cut and the region killed
    region_a_restored.append("promoted")
    promoted = ok("records", "promote", "--region", "region-a", "--json")
    rc, report = reconcile("region-b", since)
    lost = report["counts"]["committed_not_replicated"]
    # What the lag said: every call that ended (its CDR committed, its recording a moment later)
    # after the standby's replay point and before the cut had not crossed.
    run = summary["run_id"]
    ended = sorted(
        float(e["t_end"])
        for e in logged(paths.EVENTS)
        if e.get("run_id") == run and e.get("kind") == "load_ok" and e.get("region") == "region-a"
    )
    lag_s = float(lag.seconds or 0.0)
    predicted = sum(1 for t in ended if t_seen - lag_s < t <= t_cut)
    # The band, from what the run measured: the count in a window of the lag (plus the last reading's
    # age) spreads with the calls' per-second rate and its spread (Poisson at least), +-max(3, 3 sigma).
    # A fixed one-second band (+-2 at 2 CPS) failed on a fresh machine: lost 25, predicted 22.
    band = loss_band(ended, lag_s + (t_cut - t_seen))
    print(
        f"lag {lag_s:.2f} s ({lag.bytes} B) read {t_cut - t_seen:.2f} s before the cut, lost {lost}, "
        f"predicted {predicted} +- {band.half_width} ({band}), "
        f"promote {promoted.get('seconds')} s, counts {report['counts']}"
    )
    assert rc == 1 and lost > 0, report["counts"]
    assert band.holds(lost, predicted), (lost, predicted, band, lag)
    # The region comes back: its old primary rebuilt from the promoted copy (after salvaging the
    # records only it had), then handed back; region-a then holds every record it committed.
    cleared = run_wobble("fault", "clear")
    assert cleared.returncode == 0, cleared.stderr[-800:]
    run_wobble("records", "wan", "--off")
    ok("records", "resync", "--region", "region-a", "--json", timeout=300)
    region_a_restored.append("resynced")
    ok("records", "failback", "--region", "region-a", "--json", timeout=300)
    region_a_restored.append("failed_back")
    rc_a, after = reconcile("region-a", since)
    assert rc_a == 0 and after["counts"]["committed_not_replicated"] == 0, after["counts"]
    assert after["counts"]["ok"] >= report["counts"]["ok"] + lost, (after["counts"], report["counts"])
