"""Measurement truth against the real lab: a region's SBC is SIGKILLed under 5 CPS and the lab's
count of failed new calls agrees with what a capture of the carrier network saw, with no harness
failures (the generator's own limits) and no worker deaths.

The capture is this test's own (tshark on the carrier bridge), not the generator's records.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core import dockerctl, paths, wire
from tests.helpers import logged, wait_until
from tests.lab.conftest import ROOT, last_json

CPS, DURATION, HOLD, KILL_AFTER_S = 5, 45, 5, 15


def _load(out: dict[str, Any]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lab.cli", "load", "--cps", str(CPS), "--duration", str(DURATION),
         "--hold-mean", str(HOLD), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=DURATION + 120,
    )  # fmt: skip
    out["proc"] = proc


def test_sbc_crash_counts_agree_with_the_wire(stopped: list[str], tmp_path: Path) -> None:
    pcap = tmp_path / "carrier-sip.pcap"
    n0 = len(logged(paths.EVENTS))
    result: dict[str, Any] = {}
    with wire.capture(wire.bridge_of("wobble_carrier"), pcap):
        runner = threading.Thread(target=_load, args=(result,))
        runner.start()
        wait_until(lambda: any(e["kind"] == "load_invoke" for e in logged(paths.EVENTS)[n0:]), 60, "the first call")
        time.sleep(KILL_AFTER_S)
        stopped.append("sbc-a")
        dockerctl.service_container("sbc-a").kill()  # SIGKILL: a crash, not a stop
        runner.join(DURATION + 150)
    proc: subprocess.CompletedProcess[str] = result["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = last_json(proc.stdout)
    run_id = summary["run_id"]
    done = {e["call_id"]: e for e in logged(paths.EVENTS) if e.get("run_id") == run_id and e["kind"] != "load_invoke"}
    assert summary["attempts"] == len(done) == CPS * DURATION, summary
    assert summary["harness_failed"] == 0 and summary["info"] == 0, summary
    assert summary["worker_restarts"] == 0, summary
    assert summary["customer_failed"] + summary["harness_failed"] == summary["fail"] + summary["info"]
    assert all(e.get("whose") in ("customer", "harness") for e in done.values() if e["status"] != "ok")

    agree = wire.agreement(done, wire.outcomes(pcap))
    assert not agree.never_on_wire, "calls the lab placed that never reached the wire"
    assert agree.difference <= 1, agree.as_dict()
    assert summary["customer_failed"] >= len(agree.lab_failed)
    print(f"failed new calls: {agree.as_dict()}; summary {summary}")
