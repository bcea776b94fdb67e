"""The supporting tier fails, the critical tier keeps answering (real CRM and IdP containers)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from core import dockerctl, paths
from lab import lifecycle
from tests.helpers import logged, wait_until
from tests.lab.conftest import last_json, run_wobble, wait_agents_home


@pytest.fixture
def stopped(lab_up: None) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for c in dockerctl.lab_containers(all_states=True):
        if c.labels.get("com.docker.compose.service") in names and c.status != "running":
            c.start()
    wait_until(lifecycle.is_up, 90, "the lab healthy again after the test", every=0.5)
    wait_agents_home()


def test_idp_down_logged_in_agents_answer_new_logins_fail(stopped: list[str]) -> None:
    stopped.append("idp")
    since = time.time()
    dockerctl.service_container("idp").stop(timeout=0)
    rec = last_json(run_wobble("call", "--region", "region-b", "--hold", "1", "--json").stdout)
    assert rec["final_code"] == 200 and rec["agent_region"] == "region-b"
    # a fresh agents container must log in again: it cannot, and says so in the event log
    stopped.append("agents-b")
    dockerctl.service_container("agents-b").restart(timeout=3)
    failed = wait_until(
        lambda: [
            e
            for e in logged(paths.EVENTS)
            if e.get("kind") == "agent_login" and e.get("ts", 0) > since and e.get("ok") is False
        ],
        20,
        "a failed agent_login of the restarted agents",
        every=0.5,
    )
    assert failed[0]["agent"].startswith("b-") and failed[0]["error"]


def test_crm_down_calls_answered_with_screen_pop_fallback(stopped: list[str]) -> None:
    rec = last_json(run_wobble("call", "--region", "region-a", "--hold", "1", "--json").stdout)
    assert rec["final_code"] == 200
    assert rec["screen_pop"] in ("ok", "late"), rec
    stopped.append("crm")
    dockerctl.service_container("crm").stop(timeout=0)
    pops = []
    for _ in range(3):
        rec = last_json(run_wobble("call", "--region", "region-a", "--hold", "1", "--json").stdout)
        assert rec["final_code"] == 200, rec
        pops.append(rec["screen_pop"])
    assert set(pops) == {"fallback"}, pops
