"""Lab tests run against the real, running lab (`make test` brings it up when needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab import lifecycle

ROOT = Path(__file__).resolve().parents[2]
WOBBLE = [sys.executable, "-m", "lab.cli"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(ROOT / "tests" / "lab"):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab_up() -> None:
    # Failing (not skipping) on purpose: a lab test that silently skips proves nothing.
    if not lifecycle.is_up():
        pytest.fail("the lab is not up: run the lab tests with `make test` (it brings the lab up)")


def run_wobble(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WOBBLE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def last_json(out: str) -> dict[str, Any]:
    lines = out.strip().splitlines()
    assert lines, "no output on stdout"
    record: dict[str, Any] = json.loads(lines[-1])
    return record
