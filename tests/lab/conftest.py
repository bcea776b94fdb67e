"""Lab tests run against the real, running lab (`make test` brings it up when needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import topology
from lab import lifecycle
from tests.helpers import wait_until

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


def agents_placement() -> dict[str, tuple[float, float]]:
    """Per home region: (agents in service, of those registered through another region)."""
    out: dict[str, tuple[float, float]] = {}
    for region in topology.Topology.default().regions:
        with urllib.request.urlopen(f"http://{region.agents_ip}:9101/metrics", timeout=3) as resp:
            text = resp.read().decode()
        logged_in = rehomed = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "wobble_agents_logged_in":
                    logged_in += sample.value
                elif sample.name == "wobble_agents_rehomed":
                    rehomed += sample.value
        out[region.name] = (logged_in, rehomed)
    return out


def wait_agents_home(count: int = 32, timeout: float = 90) -> None:
    """Until every region has `count` agents in service, none of them re-homed: a test that moved
    agents (a region out, a dead SBC) must not leave the next test a PBX with an empty queue."""
    seen: list[dict[str, tuple[float, float]] | str] = [{}]

    def all_home() -> bool:
        try:
            seen[0] = agents_placement()
        except OSError as exc:
            seen[0] = f"metrics unreadable: {exc}"
        placement = seen[0]
        return isinstance(placement, dict) and all(n >= count and away == 0 for n, away in placement.values())

    wait_until(all_home, timeout, lambda: f"every agent home and in service: {seen[0]}", every=0.5)


def state() -> dict[str, Any]:
    """Steering's state document (/v1/state)."""
    from lab.steering import client

    snap: dict[str, Any] = client.request("/v1/state")
    return snap


@pytest.fixture
def clean_faults(lab_up: None) -> Iterator[None]:
    """No fault before the test, none after it (`wobble fault clear` both times)."""
    run_wobble("fault", "clear")
    yield
    run_wobble("fault", "clear")


@pytest.fixture
def stopped(lab_up: None) -> Iterator[list[str]]:
    """Services this test stopped or killed; started again whatever happens, then every region UP
    and every agent home before the next test."""
    from core import dockerctl

    names: list[str] = []
    yield names
    for service in names:
        for c in dockerctl.lab_containers(all_states=True):
            if c.labels.get("com.docker.compose.service") == service and c.status != "running":
                c.start()
    wait_until(lambda: all(r["state"] == "UP" for r in state()["regions"].values()), 90, "every region UP", 0.5)
    wait_agents_home()
