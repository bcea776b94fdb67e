"""Re-homing plumbing of the agents service: flags, the supervisor -> worker control file, what the
supervisor counts from worker status files, the health verdict and metrics of re-homed agents, and
the supervisor's probe -> decision -> control file + `agent_rehome` event path (a fake prober)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents import agent, status
from agents.metrics import AgentMetrics
from core.sipprobe import ProbeReply
from tests.helpers import logged

BASE = ["--region", "region-a", "--prefix", "a", "--count", "6", "--proxy", "10.77.1.11"]
REHOME = ["--fallback-proxy", "10.77.2.11", "--fallback-region", "region-b"]
HOME = {"proxy": "10.77.1.11", "region": "region-a"}
AWAY = {"proxy": "10.77.2.11", "region": "region-b"}


def test_flags_default_to_no_rehoming() -> None:
    args = agent.parse_args(BASE)
    assert args.fallback_proxy == "" and args.fallback_region == "" and args.home_pbx == ""
    assert args.rehome_after == 10.0 and args.return_after is None


def test_flags_accepted() -> None:
    args = agent.parse_args([*BASE, *REHOME, "--home-pbx", "10.77.1.31", "--rehome-after", "5", "--return-after", "20"])
    assert (args.fallback_proxy, args.fallback_region, args.home_pbx) == ("10.77.2.11", "region-b", "10.77.1.31")
    assert (args.rehome_after, args.return_after) == (5.0, 20.0)


@pytest.mark.parametrize(
    "extra",
    [
        ["--fallback-proxy", "10.77.2.11"],  # no region
        ["--fallback-region", "region-b"],  # no proxy
        ["--fallback-proxy", "10.77.1.11", "--fallback-region", "region-b"],  # the home proxy
        ["--fallback-proxy", "10.77.2.11", "--fallback-region", "region-a"],  # the home region
        ["--fallback-proxy", "sip:10.77.2.11", "--fallback-region", "region-b"],
        [*REHOME, "--no-register"],
        [*REHOME, "--rehome-after", "0"],
        [*REHOME, "--return-after", "-1"],
        ["--home-pbx", "a b"],
    ],
)
def test_bad_flags(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        agent.parse_args(BASE + extra)
    assert exc.value.code == 2 and "error" in capsys.readouterr().err


def test_hostport_and_route_source() -> None:
    assert agent.hostport("10.77.1.11") == ("10.77.1.11", 5060)
    assert agent.hostport("127.0.0.1:5099") == ("127.0.0.1", 5099)
    assert agent.route_source_ip("127.0.0.1") == "127.0.0.1"
    assert agent.route_source_ip("sbc-a") == ""  # names are left to pjsua (no lookup here)


# --------------------------------------------------------------------------------------------
# The control file
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "want"),
    [
        ({**AWAY, "seq": 1}, AWAY),
        (None, HOME),
        ([], HOME),
        ({"proxy": "10.77.2.11"}, HOME),
        ({"proxy": "", "region": "region-b"}, HOME),
        ({"proxy": "sip:10.77.2.11", "region": "region-b"}, HOME),
        ({"proxy": "10.77.2.11 x", "region": "region-b"}, HOME),
        ({"proxy": 5, "region": "region-b"}, HOME),
    ],
)
def test_control_target(data: Any, want: dict[str, str]) -> None:
    assert status.control_target(data, HOME) == want


def test_control_reader_follows_the_supervisor(tmp_path: Path) -> None:
    main = tmp_path / "agents.json"
    reader = status.ControlReader(status.control_path(main), HOME)
    assert not reader.poll() and reader.target == HOME  # no file yet: home
    status.write_control(main, HOME, "home", 0, "start")
    assert not reader.poll() and reader.target == HOME
    status.write_control(main, AWAY, "fallback", 1, "home down for 10.0 s (sbc: timeout)")
    assert (
        reader.poll()
        and reader.target == AWAY
        and reader.regions == {"10.77.1.11": "region-a", "10.77.2.11": "region-b"}
    )
    assert not reader.poll()  # unchanged file: one stat(), nothing read
    status.write_control(main, AWAY, "fallback", 2, "again")  # same target
    assert not reader.poll()
    status.control_path(main).write_text("{torn")  # unreadable: keep the last word
    assert not reader.poll() and reader.target == AWAY
    status.write_control(main, HOME, "home", 3, "home healthy for 10.0 s (sbc ok)")
    assert reader.poll() and reader.target == HOME
    data = json.loads(status.control_path(main).read_text())
    assert data["placement"] == "home" and data["seq"] == 3 and data["reason"].startswith("home healthy")


# --------------------------------------------------------------------------------------------
# What the supervisor and the health check read from worker status files
# --------------------------------------------------------------------------------------------

NOW = 1_000_000.0
REG = {"code": 200, "active": True, "reason": "OK"}


def _worker(agents: dict[str, dict[str, Any]], age: float = 1.0, state: str = "running") -> dict[str, Any]:
    return {"updated": NOW - age, "loop_age_s": 0.01, "state": state, "agents": agents}


def _at(entry: dict[str, Any], where: dict[str, str]) -> dict[str, Any]:
    return {**entry, "proxy": where["proxy"], "proxy_region": where["region"]}


def test_registrations_via_the_home_proxy() -> None:
    fail = {"code": 408, "active": False, "reason": "Request Timeout"}
    fresh = {"code": 0, "active": False, "reason": "re-registering"}
    workers: dict[int, dict[str, Any] | None] = {
        0: _worker({"a-001": _at(REG, HOME), "a-002": _at(fail, HOME), "a-003": _at(REG, AWAY)}),
        1: _worker({"a-004": _at(fresh, HOME), "a-005": _at(fail, HOME)}),
        2: _worker({"a-006": _at(REG, HOME)}, age=60),  # stale: not counted
        3: None,
        4: _worker({"a-007": _at(REG, HOME)}, state="stopping"),
    }
    assert status.registrations_via(workers, "10.77.1.11", NOW, 20) == (1, 2)
    assert status.registrations_via(workers, "10.77.2.11", NOW, 20) == (1, 0)
    assert status.registrations_via({0: _worker({"a-001": _at(fail, HOME)})}, "10.77.1.11", NOW, 20) == (0, 1)


def test_health_counts_rehomed_agents_as_in_service() -> None:
    main = {"region": "region-a", "agents": ["a-001", "a-002"], "workers": {"0": {"agents": ["a-001", "a-002"]}}}
    ok, why = status.evaluate(main, {0: _worker({"a-001": _at(REG, AWAY), "a-002": _at(REG, HOME)})}, NOW, 20)
    assert ok and why == "ok: 2/2 agents registered (1 re-homed to region-b)"
    ok, why = status.evaluate(main, {0: _worker({"a-001": _at(REG, HOME), "a-002": _at(REG, HOME)})}, NOW, 20)
    assert ok and why == "ok: 2/2 agents registered"
    moving = {"code": 0, "active": False, "reason": "re-registering via region-b"}
    ok, why = status.evaluate(main, {0: _worker({"a-001": _at(moving, AWAY), "a-002": _at(REG, HOME)})}, NOW, 20)
    assert not ok and "a-001: code 0 re-registering via region-b" in why


def test_rehomed_metrics() -> None:
    reg = CollectorRegistry()
    m = AgentMetrics("region-a", reg, fallback_region="region-b")
    labels = {"region": "region-a", "to_region": "region-b"}
    assert reg.get_sample_value("wobble_agents_rehomed", labels) == 0
    assert reg.get_sample_value("wobble_agent_rehomes_total", labels) == 0
    w = {
        "worker": 0,
        "pid": 1,
        "state": "running",
        "updated": 100.0,
        "direct": False,
        "counters": {},
        "agents": {
            "a-001": _at(REG, AWAY),
            "a-002": _at(REG, AWAY),
            "a-003": _at(REG, HOME),
            "a-004": _at({"code": 408, "active": False}, AWAY),
        },
    }
    m.observe_worker(0, w, now=101.0)
    assert reg.get_sample_value("wobble_agents_rehomed", labels) == 2
    assert reg.get_sample_value("wobble_agents_logged_in", {"region": "region-a"}) == 3
    m.rehome_decision("region-b")
    m.rehome_decision("region-a")
    assert reg.get_sample_value("wobble_agent_rehomes_total", labels) == 1
    assert reg.get_sample_value("wobble_agent_rehomes_total", {"region": "region-a", "to_region": "region-a"}) == 1
    m.observe_worker(0, None, now=102.0)  # the worker is gone: nobody in service anywhere
    assert reg.get_sample_value("wobble_agents_rehomed", labels) == 0


# --------------------------------------------------------------------------------------------
# The supervisor: probes -> policy -> control file + event (no workers, a fake prober)
# --------------------------------------------------------------------------------------------


class FakeProber:
    def __init__(self) -> None:
        self.up: dict[tuple[str, int], bool] = {}
        self.sent: list[tuple[str, int]] = []

    async def probe(self, host: str, port: int = 5060, timeout_s: float = 0.3, resend_s: float = 0.1) -> ProbeReply:
        self.sent.append((host, port))
        if self.up.get((host, port), True):
            return ProbeReply(True, 1.0, 200)
        return ProbeReply(False, None, None, "timeout")


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WOBBLE_AGENT_STATUS", str(tmp_path / "agents.json"))
    monkeypatch.setenv("WOBBLE_EVENTS", str(tmp_path / "events.jsonl"))
    return tmp_path


def _supervisor(*extra: str) -> tuple[agent.Supervisor, FakeProber]:
    argv = [*BASE, "--count", "2", *REHOME, "--rehome-after", "3", "--return-after", "2", "--metrics-port", "0", *extra]
    sup = agent.Supervisor(agent.parse_args(argv), argv)
    prober = FakeProber()
    sup.probers = {source: prober for source, _, _ in sup.probe_targets()}
    sup.write_control()
    return sup, prober


def _control(files: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((files / "agents.json.d" / "control.json").read_text())
    return data


def test_no_fallback_no_policy(files: Path) -> None:
    argv = [*BASE, "--metrics-port", "0"]
    sup = agent.Supervisor(agent.parse_args(argv), argv)
    assert sup.policy is None
    sup.write_control()
    assert _control(files)["proxy"] == "10.77.1.11" and _control(files)["placement"] == "home"


def test_probe_targets(files: Path) -> None:
    sup, _ = _supervisor("--home-pbx", "10.77.1.31")
    assert sup.probe_targets() == [
        ("sbc", "10.77.1.11", 5060),
        ("pbx", "10.77.1.31", 5060),
        ("fallback", "10.77.2.11", 5060),
    ]
    assert sup.policy is not None and sup.policy.probes == ("sbc", "pbx")


def test_supervisor_moves_the_fleet_and_brings_it_back(files: Path) -> None:
    sup, prober = _supervisor()
    assert _control(files) | {"t": 0} == {**HOME, "placement": "home", "seq": 0, "reason": "start", "t": 0}

    async def probes(t0: float, t1: float) -> None:
        t = t0
        while t <= t1:
            await sup.probe_once(t)
            t += 1.0

    prober.up[("10.77.1.11", 5060)] = False
    asyncio.run(probes(0, 2))  # failing since t=0: 2 s, not yet
    assert _control(files)["seq"] == 0 and not (files / "events.jsonl").exists()
    asyncio.run(probes(3, 3))
    ctl = _control(files)
    assert (ctl["proxy"], ctl["region"], ctl["placement"], ctl["seq"]) == ("10.77.2.11", "region-b", "fallback", 1)
    assert ctl["reason"] == "home down for 3.0 s (sbc: timeout)"
    (ev,) = [e for e in logged() if e["kind"] == "agent_rehome"]
    assert ev["region"] == "region-a" and ev["to_region"] == "region-b" and ev["from_region"] == "region-a"
    assert ev["proxy"] == "10.77.2.11" and ev["agents"] == ["a-001", "a-002"] and ev["rule"] == "home-down"
    assert ev["evidence"] == {"fallback": "ok", "sbc": "fail: timeout"} and ev["seq"] == 1
    assert ev["rehome_after_s"] == 3.0 and ev["return_after_s"] == 2.0
    main = json.loads((files / "agents.json").read_text())
    assert main["rehome"]["placement"] == "fallback" and main["rehome"]["target"] == {**AWAY, "seq": 1}
    assert main["rehome"]["last_decisions"][0]["to_region"] == "region-b"
    labels = {"region": "region-a", "to_region": "region-b"}
    assert sup.metrics.registry.get_sample_value("wobble_agent_rehomes_total", labels) == 1

    prober.up[("10.77.1.11", 5060)] = True
    asyncio.run(probes(4, 5))
    assert _control(files)["seq"] == 1  # 1 s healthy: not yet
    asyncio.run(probes(6, 6))
    ctl = _control(files)
    assert (ctl["proxy"], ctl["placement"], ctl["seq"]) == ("10.77.1.11", "home", 2)
    kinds = [(e["to_region"], e["proxy"]) for e in logged() if e["kind"] == "agent_rehome"]
    assert kinds == [("region-b", "10.77.2.11"), ("region-a", "10.77.1.11")]
    assert prober.sent.count(("10.77.2.11", 5060)) == 7  # the fallback is probed every round too


def test_a_dead_fallback_is_not_moved_to(files: Path) -> None:
    sup, prober = _supervisor()
    prober.up[("10.77.1.11", 5060)] = False
    prober.up[("10.77.2.11", 5060)] = False
    for t in range(10):
        asyncio.run(sup.probe_once(float(t)))
    assert _control(files)["seq"] == 0
    assert sup.policy is not None and sup.policy.blocked == "fallback failing: timeout"


def test_supervisor_counts_failing_home_registrations(files: Path) -> None:
    """The SBC answers OPTIONS but every REGISTER through it fails (e.g. its PBX is gone)."""
    sup, _ = _supervisor()
    fail = _at({"code": 408, "active": False, "reason": "Request Timeout"}, HOME)
    now = time.time()
    sup.workers = {0: {**_worker({"a-001": fail, "a-002": fail}), "updated": now}}
    asyncio.run(sup.probe_once(0.0))
    assert sup.observe_registrations(0.0) is None
    decision = sup.observe_registrations(3.0)
    assert decision is not None and decision.placement == "fallback"
    assert "registrations: all 2 failed" in decision.reason


def test_worker_status_files_are_not_touched(files: Path) -> None:
    """The supervisor only writes its own file and the control file."""
    sup, _ = _supervisor()
    sup.write_status()
    assert sorted(os.listdir(files / "agents.json.d")) == ["control.json"]
