"""The traffic generator on loopback: an agents service in direct mode answers, `agents.load` places
12 calls at 2 CPS through its worker pool. Skipped where pjsua2 is not installed. ~15 s."""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from core import events, history, schema
from tests.helpers import logged, skip_or_fail
from tests.unit.loopback import agents_cmd, agents_health, free_port, loopback_env, metric

if importlib.util.find_spec("pjsua2") is None:  # the ua extra; under CI its absence fails
    skip_or_fail("pjsua2 is not installed (the ua extra: `make setup`)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
AGENT_SIP = 25070
AGENT_RTP = 26000
LOAD_SIP = 25100
LOAD_RTP = 27000
AGENTS = 8  # two agent workers (ports 25070, 25071) of 4 agents each


def _wait_healthy(env: dict[str, str], log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agents_health(env).returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"agents never became healthy\n{log.read_text(errors='replace')[-3000:]}")


def test_load_on_loopback(tmp_path: Path) -> None:
    env = loopback_env(tmp_path)
    # An earlier run that was killed (its lock file left, unlocked) with one call in flight: this
    # run closes that call as info/recovered before it starts.
    log = Path(env["WOBBLE_EVENTS"])
    dead = schema.invoke_record("deadrun", "ldead00000001", 1.0, "sip:x@h", "target", 0, 2.0)
    events.append(events.LoadInvoke.of(dead), log)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "deadrun.lock").touch()
    metrics_port = free_port(socket.SOCK_STREAM)
    agent_log = tmp_path / "agents.log"
    with agent_log.open("ab") as fh:
        agents = subprocess.Popen(
            agents_cmd(
                "--count",
                str(AGENTS),
                "--per-process",
                "4",
                "--proxy",
                "127.0.0.1",
                "--sip-port",
                str(AGENT_SIP),
                "--no-register",
                rtp_base=AGENT_RTP,
            ),
            env=env,
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(env, agent_log)
        # Direct mode: an agent takes one call at a time, so rotate the calls over all 8 agents (each
        # gets a call every 4 s; a call lasts ~2.3 s).
        targets: list[str] = []
        for n in range(AGENTS):
            targets += ["--target", f"sip:a-{n + 1:03d}@127.0.0.1:{AGENT_SIP + n // 4}"]
        cmd = [
            sys.executable,
            "-m",
            "agents.load",
            *targets,
            "--cps",
            "2",
            "--duration",
            "6",
            "--hold-mean",
            "2",
            "--hold-dist",
            "fixed",
            "--max-concurrent",
            "8",
            "--seed",
            "1",
            "--sip-port-base",
            str(LOAD_SIP),
            "--rtp-base",
            str(LOAD_RTP),
            "--bind",
            "127.0.0.1",
            "--run-id",
            "looptest",
            "--json",
            "--metrics-port",
            str(metrics_port),
        ]
        t0 = time.monotonic()
        with (tmp_path / "load.log").open("w+") as err:
            load = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
            # while it runs: its metrics count the attempts, and it holds its run lock
            deadline = time.monotonic() + 10
            attempts = None
            while not attempts and time.monotonic() < deadline and load.poll() is None:
                time.sleep(0.2)
                attempts = metric(metrics_port, "wobble_call_attempts_total", region="unknown", chosen_by="target")
            assert attempts is not None and attempts >= 1, "no attempts on /metrics while the run went on"
            assert history.live_runs(log) == {"looptest"}
            out, _ = load.communicate(timeout=60)
            elapsed = time.monotonic() - t0
            err.seek(0)
            proc = subprocess.CompletedProcess(cmd, load.returncode, out, err.read())
    finally:
        agents.send_signal(signal.SIGTERM)
        try:
            agents.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agents.kill()
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["run_id"] == "looptest" and summary["attempts"] == 12, summary
    assert summary["ok"] == 12 and summary["fail"] == 0 and summary["info"] == 0, (summary, proc.stderr[-3000:])
    assert summary["ok_ratio"] == 1.0 and summary["by_region"] == {"region-a": 12}
    assert summary["workers"] == 2 and summary["worker_restarts"] == 0
    assert 1.8 <= summary["cps_achieved"] <= 2.2
    assert 0 < summary["pdd_ms_p50"] <= summary["pdd_ms_p95"] < 500
    assert summary["setup_ms_p50"] < 1000 and summary["mos_p5"] >= 4.0
    assert 2 <= summary["max_concurrent_seen"] <= 8
    assert elapsed < 25
    assert summary["recovered"] == 1 and not (tmp_path / "runs" / "looptest.lock").exists()
    recovered = [e for e in logged(log) if e.get("kind") == "load_info" and e.get("call_id") == "ldead00000001"]
    assert len(recovered) == 1 and recovered[0]["end_reason"] == "recovered"
    assert recovered[0]["recovered_by"] == "load:looptest" and recovered[0]["run_id"] == "deadrun"

    evs = [e for e in logged(Path(env["WOBBLE_EVENTS"])) if e.get("run_id") == "looptest"]
    invokes = [e for e in evs if e["kind"] == "load_invoke"]
    done = [e for e in evs if e["kind"] in ("load_ok", "load_fail", "load_info")]
    assert len(invokes) == 12 and all(e["schema"] == 1 and e["chosen_by"] == "target" for e in invokes)
    per_call = Counter(e["call_id"] for e in done)
    assert set(per_call) == {e["call_id"] for e in invokes} and set(per_call.values()) == {1}
    order = {(e["kind"] == "load_invoke", e["call_id"]): i for i, e in enumerate(evs)}
    assert all(order[(True, c)] < order[(False, c)] for c in per_call), "a completion came before its invoke"
    for rec in done:
        assert rec["kind"] == "load_ok" and rec["status"] == "ok", rec
        assert rec["call_id"].startswith("l") and len(rec["call_id"]) == 13
        assert rec["final_code"] == 200 and rec["fate"] == "survived" and rec["end_reason"] == "caller_bye"
        assert rec["region"] == "region-a" and rec["hold_s"] == 2.0 and abs(rec["duration_s"] - 2.0) < 0.5
        assert abs(rec["rx_packets"] - 100) <= 15 and abs(rec["tx_packets"] - 100) <= 15, rec
        assert rec["loss_pct"] == 0.0 and rec["mos"] >= 4.0 and rec["one_way_s"] < 1.0
        assert len(rec["targets_tried"]) == 1
    # The agents saw the same call ids (X-Wobble-Call / From user).
    agent_ids = {e["call_id"] for e in logged(Path(env["WOBBLE_EVENTS"])) if e.get("kind") == "agent_call"}
    assert set(per_call) <= agent_ids
