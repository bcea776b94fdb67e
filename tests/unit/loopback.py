"""Helpers shared by the loopback tests that run real pjsua2 agents and callers on 127.0.0.1."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agents import caller
from tests.helpers import logged

ROOT = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port nothing listens on right now (UDP by default)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_env(tmp: Path) -> dict[str, str]:
    """Environment for a UA subprocess: its event log and agent status under `tmp`."""
    return {
        **os.environ,
        "WOBBLE_EVENTS": str(tmp / "events.jsonl"),
        "WOBBLE_AGENT_STATUS": str(tmp / "agents.json"),
        "PYTHONPATH": str(ROOT),
    }


def agents_cmd(*extra: str, rtp_base: int | None = None) -> list[str]:
    """`python -m agents.agent` in region-a (agents a-001, ...) on 127.0.0.1, then `extra`; its RTP
    ports from `rtp_base`, a random base when not given."""
    base = random.randrange(40000, 59000, 100) if rtp_base is None else rtp_base
    return [
        sys.executable,
        "-m",
        "agents.agent",
        "--region",
        "region-a",
        "--prefix",
        "a",
        "--rtp-base",
        str(base),
        "--bind",
        "127.0.0.1",
        *extra,
    ]


def caller_cmd(target: str, call_id: str, hold_s: float) -> list[str]:
    """`python -m agents.caller --json` on 127.0.0.1: one call of `hold_s` seconds to `target`."""
    return caller.command(sys.executable, target, call_id, hold_s, "--bind", "127.0.0.1", "--timeout", "5")


def run_caller(env: dict[str, str], port: int, call_id: str, hold_s: float) -> subprocess.CompletedProcess[str]:
    """One call of `hold_s` seconds to the agents at 127.0.0.1:`port` (`caller_cmd`), to its end."""
    cmd = caller_cmd(f"sip:support@127.0.0.1:{port}", call_id, hold_s)
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)


def agents_health(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m agents.health` against the agent status under `env`."""
    return subprocess.run(
        [sys.executable, "-m", "agents.health"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=10
    )


def agent_calls(env: dict[str, str], call_id: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The `agent_call` events of `call_id` in the event log, once there is one (empty after `timeout`)."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:
        found = [
            e
            for e in logged(Path(env["WOBBLE_EVENTS"]))
            if e.get("kind") == "agent_call" and e.get("call_id") == call_id
        ]
        time.sleep(0.1)
    return found


def metric(port: int, name: str, **labels: str) -> float | None:
    """One sample from a Prometheus endpoint on 127.0.0.1 (None: not there, or nothing listens)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def wait_metric(port: int, name: str, want: float, timeout: float = 8.0, **labels: str) -> None:
    """Wait until the sample equals `want` (the agents supervisor reads worker files every 2 s)."""
    import time

    deadline = time.monotonic() + timeout
    seen = metric(port, name, **labels)
    while seen != want and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = metric(port, name, **labels)
    assert seen == want, f"{name}{labels} = {seen}, wanted {want}"
