"""The first calls on a fresh lab: 200 calls (4 CPS for 50 s) from the moment `make up` returns, and
every answered call has RTP both ways at the caller and at the agent; every call is ok.

Its own step of `.ci/run` (`make test-fresh`): it needs the lab DOWN when it starts, brings it up
itself with `make up` and takes it down at the end. A carrier+region capture (RTP headers and SIP) is
kept under results/fresh-<time>/ when a call misses, with the call's ids, for the post-mortem.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from core import dockerctl, events, paths, wire
from tests.helpers import skip_or_fail

ROOT = paths.ROOT
CPS, DURATION = 4, 50


def _lab_is_up() -> bool:
    out = subprocess.run([str(ROOT / ".venv/bin/wobble"), "status", "--json"], cwd=ROOT, capture_output=True, text=True)
    try:
        return bool(json.loads(out.stdout)["up"])
    except (ValueError, KeyError):
        return False


@pytest.fixture
def fresh_lab() -> Iterator[None]:
    if _lab_is_up():
        skip_or_fail("the lab is up: this test starts from a lab that is down (run `make down` first)")
    up = subprocess.run(["make", "up"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        yield
    finally:
        subprocess.run(["make", "down"], cwd=ROOT, capture_output=True, text=True, timeout=300)


def missed(record: dict[str, Any], agent: dict[str, Any] | None) -> list[str]:
    """Why an answered call is not a call with audio both ways (empty: it is)."""
    why = []
    if not (record.get("rx_packets") or 0) > 0:
        why.append("caller received no RTP")
    if not (record.get("tx_packets") or 0) > 0:
        why.append("caller sent no RTP")
    if agent is None:
        why.append("no agent record")
    else:
        if not (agent.get("rx_packets") or 0) > 0:
            why.append("agent received no RTP")
        if not (agent.get("tx_packets") or 0) > 0:
            why.append("agent sent no RTP")
    return why


def test_the_first_200_calls_after_make_up_have_audio_both_ways(fresh_lab: None) -> None:
    keep = ROOT / "results" / time.strftime("fresh-%Y%m%dT%H%M%SZ", time.gmtime())
    keep.mkdir(parents=True, exist_ok=True)
    pcap = keep / "carrier-and-regions.pcap"
    bridges = [wire.bridge_of(f"wobble_{n}") for n in ("carrier", "region-a", "region-b")]
    n0 = sum(1 for _ in events.read(paths.EVENTS))
    with wire.capture(bridges, pcap, bpf="udp", snaplen=200):
        proc = subprocess.run(
            [sys.executable, "-m", "lab.cli", "load", "--cps", str(CPS), "--duration", str(DURATION), "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=DURATION + 240,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    log = [e.to_dict() for e in list(events.read(paths.EVENTS))[n0:]]
    done = [
        e for e in log if e.get("run_id") == summary["run_id"] and e["kind"] in ("load_ok", "load_fail", "load_info")
    ]
    agents = {e.get("call_id"): e for e in log if e["kind"] == "agent_call"}
    answered = [e for e in done if e.get("final_code") == 200]
    bad = {e["call_id"]: missed(e, agents.get(e["call_id"])) for e in answered}
    bad = {c: why for c, why in bad.items() if why}
    not_ok = [
        (e["call_id"], e["status"], e.get("end_reason"), e.get("final_code")) for e in done if e["status"] != "ok"
    ]
    if bad or not_ok:
        (keep / "missed.json").write_text(json.dumps({"no_audio": bad, "not_ok": not_ok, "summary": summary}, indent=2))
        for service in ("sbc-a", "sbc-b", "media-a", "media-b", "pbx-a", "pbx-b"):  # their side of it
            (keep / f"{service}.log").write_text(dockerctl.last_logs(dockerctl.service_container(service), 20000))
    else:
        pcap.unlink(missing_ok=True)
        keep.rmdir()
    assert len(done) == CPS * DURATION, summary
    assert not bad, f"answered calls without RTP both ways (capture kept in {keep}): {bad}"
    assert not not_ok, f"calls not ok (capture kept in {keep}): {not_ok}"
