"""Helpers shared by the loopback tests that run real pjsua2 agents and callers on 127.0.0.1."""

from __future__ import annotations

import os
import socket
from pathlib import Path

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
