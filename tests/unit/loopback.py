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
