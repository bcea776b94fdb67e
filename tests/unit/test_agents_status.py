"""Agent status files and the health verdict."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agents import health, status

NOW = 1_000_000.0


def _main(direct: bool = False) -> dict[str, Any]:
    return {
        "agents": ["a-001", "a-002", "a-003"],
        "direct": direct,
        "workers": {"0": {"agents": ["a-001", "a-002"]}, "1": {"agents": ["a-003"]}},
    }


def _worker(agents: dict[str, dict[str, Any]], age: float = 1.0, loop_age: float = 0.01) -> dict[str, Any]:
    return {"updated": NOW - age, "loop_age_s": loop_age, "agents": agents}


REG = {"code": 200, "active": True, "reason": "OK"}


def test_all_registered_is_healthy() -> None:
    ok, why = status.evaluate(_main(), {0: _worker({"a-001": REG, "a-002": REG}), 1: _worker({"a-003": REG})}, NOW, 20)
    assert ok and why == "ok: 3/3 agents registered"


@pytest.mark.parametrize(
    ("workers", "expect"),
    [
        ({0: _worker({"a-001": REG, "a-002": REG}), 1: None}, "worker 1: no status"),
        ({0: _worker({"a-001": REG, "a-002": REG}), 1: _worker({"a-003": REG}, age=60)}, "worker 1: status 60s old"),
        ({0: _worker({"a-001": REG, "a-002": REG}), 1: _worker({"a-003": REG}, loop_age=30)}, "loop stalled"),
        (
            {
                0: _worker({"a-001": REG, "a-002": {"code": 408, "active": False, "reason": "Timeout"}}),
                1: _worker({"a-003": REG}),
            },
            "a-002: code 408 Timeout",
        ),
        ({0: _worker({"a-001": REG}), 1: _worker({"a-003": REG})}, "a-002: unknown to worker 0"),
        (
            {0: _worker({"a-001": REG, "a-002": {"code": 200, "active": False}}), 1: _worker({"a-003": REG})},
            "a-002: code 200",
        ),
    ],
)
def test_unhealthy_reasons(workers: dict[int, dict[str, Any] | None], expect: str) -> None:
    ok, why = status.evaluate(_main(), workers, NOW, 20)
    assert not ok and why.startswith("unhealthy:") and expect in why
    assert "\n" not in why


def test_direct_mode_needs_no_registration() -> None:
    down = {"code": 0, "active": False}
    ok, why = status.evaluate(
        _main(direct=True), {0: _worker({"a-001": down, "a-002": down}), 1: _worker({"a-003": down})}, NOW, 20
    )
    assert ok and "direct" in why


def test_no_supervisor_file() -> None:
    assert status.evaluate(None, {}, NOW, 20) == (False, "no supervisor status file")


def test_atomic_write_and_check_from_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main_path = tmp_path / "agents.json"
    status.write_json_atomic(main_path, _main())
    now = time.time()
    for idx, agents in ((0, {"a-001": REG, "a-002": REG}), (1, {"a-003": REG})):
        status.write_json_atomic(status.worker_path(main_path, idx), {"updated": now, "agents": agents})
    assert status.worker_path(main_path, 1) == tmp_path / "agents.json.d" / "worker-1.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agents.json", "agents.json.d"]  # no temp files left
    assert json.loads(main_path.read_text())["agents"] == ["a-001", "a-002", "a-003"]
    assert status.check(main_path)[0]
    assert health.main(["--status", str(main_path)]) == 0
    status.write_json_atomic(status.worker_path(main_path, 1), {"updated": now - 100, "agents": {"a-003": REG}})
    assert health.main(["--status", str(main_path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("ok:") and lines[1].startswith("unhealthy: worker 1")


def test_check_missing_file(tmp_path: Path) -> None:
    ok, why = status.check(tmp_path / "nope.json")
    assert not ok and why == "no supervisor status file"


def _compose_agents_check(health_file: Path) -> list[str]:
    """The agents' HEALTHCHECK command from compose.yaml, pointed at `health_file`."""
    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "compose.yaml").read_text())
    test = list(compose["services"]["agents-a"]["healthcheck"]["test"])
    assert test[:3] == ["CMD", "bash", "-c"]
    return ["bash", "-c", test[3].replace("$$", "$").replace("/tmp/wobble-agents.d/health", str(health_file))]


def test_health_verdict_file_drives_the_container_check(tmp_path: Path) -> None:
    import os
    import subprocess

    main_path = tmp_path / "wobble-agents"
    cmd = _compose_agents_check(status.health_path(main_path))
    missing = subprocess.run(cmd, capture_output=True, text=True)
    assert missing.returncode == 1 and "no verdict yet" in missing.stdout
    status.write_health(main_path, (True, "ok: 3/3 agents registered"))
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    status.write_health(main_path, (False, "unhealthy: worker 1 stale"))
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 1 and "worker 1 stale" in bad.stdout
    status.write_health(main_path, (True, "ok: 3/3 agents registered"))
    old = time.time() - 60  # a supervisor that stopped writing: its last "ok" goes stale
    os.utime(status.health_path(main_path), (old, old))
    assert subprocess.run(cmd, capture_output=True).returncode == 1
