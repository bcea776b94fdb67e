"""The lab's own control services come back by themselves after a crash (core.topology.RESTART_ON_CRASH,
`restart: unless-stopped`), and a restarted chaos controller adopts the faults its wardens still hold.

A crash here is SIGKILL to the container's main process, sent from the host (`os.kill` of the PID
docker reports): docker sees the process die and applies the restart policy. `docker kill` would not
do: docker counts it as a manual stop and never restarts it (that case, the controller that does not
come back, is tests/lab/test_chaos.py's kill-9 test).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from core import paths, topology
from lab import lifecycle
from lab.resolver import server as resolver
from tests.helpers import logged, wait_until
from tests.lab.conftest import run_wobble, state
from tests.lab.test_chaos import container_of, fault_add, leftovers, wardens

TOPO = topology.Topology.default()
CHAOS_URL = TOPO.chaos_url


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=3) as resp:
        resp.read()
        return int(resp.status)


def _answers(check: Callable[[], object]) -> bool:
    try:
        return bool(check())
    except OSError:
        return False


#: Each control service doing its job again, seen from the host as its clients see it.
SERVING: dict[str, Callable[[], bool]] = {
    "chaos": lambda: _get(f"{CHAOS_URL}/healthz") == 200,  # 200 only once the backends are probed
    "config-api": lambda: _get(f"http://{TOPO.config_api_ip}:8081/healthz") == 200,
    "steering": lambda: all(r["state"] == "UP" for r in state()["regions"].values()),
    "dns": lambda: resolver.check(TOPO.resolver_ips["carrier"]) == 0,
}


_RFC3339 = re.compile(r"^(?P<head>[^.Z+]+T[\d:]+)(?P<frac>\.\d+)?(?P<tz>Z|[+-]\d\d:\d\d)$")


def _ts(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds as UNIX seconds: `StartedAt` is in UTC
    (`...T10:00:00.123456789Z`), a health check's `Start` in the daemon's zone (`...+02:00`)."""
    m = _RFC3339.match(text)
    assert m is not None, f"not an RFC 3339 time: {text!r}"
    tz = "+00:00" if m["tz"] == "Z" else m["tz"]
    return datetime.fromisoformat(m["head"] + tz).timestamp() + float(m["frac"] or 0.0)


def inspect(service: str) -> dict[str, Any]:
    c = container_of(service)
    c.reload()
    attrs: dict[str, Any] = c.attrs
    return attrs


def crash(service: str) -> tuple[int, str]:
    """SIGKILL the service's main process from the host; returns (RestartCount, StartedAt) before."""
    before = inspect(service)
    assert before["State"]["Running"], f"{service} is not running before the test"
    cid = before["Id"]
    pid = int(
        subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", cid], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    assert pid > 1, f"{service}: docker reports pid {pid}"
    os.kill(pid, signal.SIGKILL)
    return int(before["RestartCount"]), str(before["State"]["StartedAt"])


def wait_back(service: str, restarts_before: int, started_before: str, timeout: float = 90.0) -> dict[str, Any]:
    """Until docker has restarted the container (RestartCount up, a new StartedAt) and a health check
    run after that start passed; returns the container's inspect then."""
    seen: list[dict[str, Any]] = [{}]

    def back() -> bool:
        attrs = seen[0] = inspect(service)
        st = attrs["State"]
        if not st["Running"] or int(attrs["RestartCount"]) <= restarts_before or st["StartedAt"] == started_before:
            return False
        health = st.get("Health") or {}
        checks = health.get("Log") or []
        fresh = [h for h in checks if _ts(h["Start"]) >= _ts(st["StartedAt"]) and h.get("ExitCode") == 0]
        return health.get("Status") == "healthy" and bool(fresh)

    def said() -> str:
        st = seen[0].get("State", {})
        return (
            f"{service} restarted by docker and healthy (RestartCount {seen[0].get('RestartCount')} was "
            f"{restarts_before}; status {st.get('Status')}, health {(st.get('Health') or {}).get('Status')}, "
            f"exit code {st.get('ExitCode')})"
        )

    wait_until(back, timeout, said, every=0.5)
    return seen[0]


@pytest.fixture(autouse=True)
def whole_lab_after() -> Iterator[None]:
    """Leave the lab as found: a service that depends on the crashed one may report unhealthy for a
    while, and the lab tests after these need every service healthy."""
    yield
    wait_until(lifecycle.is_up, 120, "every lab service healthy again after the crash", every=0.5)


@pytest.mark.parametrize("service", sorted(topology.RESTART_ON_CRASH))
def test_a_control_service_comes_back_after_kill_9(lab_up: None, service: str) -> None:
    restarts, started = crash(service)
    after = wait_back(service, restarts, started)
    assert int(after["RestartCount"]) == restarts + 1, "restarted more than once: it crashed again"
    wait_until(lambda: _answers(SERVING[service]), 90, f"{service} serving its clients again", every=0.5)


def _events_since(t0: float, kind: str, ids: set[str]) -> list[dict[str, Any]]:
    return [e for e in logged(paths.EVENTS) if e["ts"] >= t0 and e["kind"] == kind and e.get("id") in ids]


def _listed() -> list[dict[str, Any]]:
    proc = run_wobble("fault", "list", "--json")
    assert proc.returncode == 0, proc.stderr[-800:]
    found: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return found


def test_a_restarted_controller_adopts_the_live_faults_and_reverts_them(clean_faults: None) -> None:
    pause = fault_add("pause", "crm", "300s")  # docker: the warden beside the docker socket
    loss = fault_add("loss", "media-b", "300s", "--pct", "30")  # nft, in media-b's own namespace
    ids = {pause, loss}
    assert {f["id"] for f in _listed()} == ids
    assert container_of("crm").attrs["State"]["Paused"] is True and leftovers("media-b")
    t0 = time.time()
    restarts, started = crash("chaos")
    wait_back("chaos", restarts, started)
    wait_until(lambda: _answers(SERVING["chaos"]), 60, "the restarted controller serving", every=0.5)

    listed = {f["id"]: f for f in _listed()}
    assert set(listed) == ids, f"the restarted controller lists {sorted(listed)}, not the live faults {sorted(ids)}"
    assert (listed[pause]["kind"], listed[pause]["target"]) == ("pause", "crm")
    assert (listed[loss]["kind"], listed[loss]["target"]) == ("loss", "media-b")
    assert all(f["started_at"] < t0 for f in listed.values()), "adopted faults keep their own start"
    assert {e["id"] for e in _events_since(t0, "fault_adopted", ids)} == ids
    # Held throughout: no warden reverted while the controller was down, and the faults are still on.
    assert _events_since(t0, "fault_revert", ids) == [], "a warden reverted: its lease lapsed during the restart"
    assert _events_since(t0, "fault_reconciled", ids) == []
    assert container_of("crm").attrs["State"]["Paused"] is True
    assert leftovers("media-b"), "the loss rules left media-b's namespace during the restart"

    for fid in ids:  # revert through the new controller, one by one
        proc = run_wobble("fault", "remove", fid)
        assert proc.returncode == 0, proc.stderr[-800:]
    assert _listed() == []
    assert container_of("crm").attrs["State"]["Paused"] is False
    assert leftovers("media-b") == []
    assert wardens() == []
    reverts = _events_since(t0, "fault_revert", ids)
    assert {e["id"] for e in reverts} == ids and all(e["reason"] == "lease missing" for e in reverts), reverts
