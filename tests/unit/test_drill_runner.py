"""The drill runner end to end against a simulated lab: every seam (clock, traffic, chaos, steering,
records, event log, lab) is a fake sharing one little world that places calls, crashes SBCs and
makes steering decide. No docker, no sleeping: the fake clock jumps."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from lab.drill import runner, scenario
from lab.drill.lock import DrillLock, RunState
from lab.drill.runner import LoadSpec, Outcome, Runner, Seams
from lab.drill.scenario import Scenario

T0 = 1_700_000_000.0
A, B = "region-a", "region-b"

SCENARIO = """\
name: sim-crash
description: sbc-a dies under load
seed: 5
warmup_s: 2
load: {cps: 4, hold_s: 2, hold_dist: fixed, arrivals: constant}
steady_state: {window_s: 5, new_call_success_min: 0.9}
method:
  - {kind: kill, target: sbc-a, at: 2, for: 10}
abort:
  - {metric: new_call_success, region: region-b, below: 0.5, for_s: 3}
recovery: {window_s: 3, wait_s: 15, grace_s: 3}
slos:
  critical: {rto_max_s: 5, failed_new_calls_max: 10, inflight_dropped_max: 8, false_failovers_max: 0}
  supporting: {screen_pop_fallback_max: 0.5}
"""


def _scn(text: str = SCENARIO, **replace: str) -> Scenario:
    for old, new in replace.items():
        text = text.replace(old, new)
    return scenario.parse(text, "sim.yaml")


class World:
    """Two regions, callers alternating between the UP ones; a killed SBC fails the calls sent to
    it until steering marks its region DOWN `detect_s` later; calls in flight on it are dropped."""

    def __init__(self, detect_s: float = 1.0, mode: str = "auto") -> None:
        self.t = T0
        self.events: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []  # completions not yet written
        self.cps = 0.0
        self.next_call = math.inf
        self.traffic_end = math.inf
        self.n = 0
        self.hold = 2.0
        self.down: dict[str, bool] = {A: False, B: False}
        self.dead: dict[str, float] = {}  # region -> since
        self.faults: dict[str, dict[str, Any]] = {}
        self.detect_s = detect_s
        self.mode = mode
        self.proposed: dict[str, float] = {}
        self.broken: set[str] = set()  # regions whose calls fail for no fault at all
        self.success_before = 1.0  # share of calls that succeed (steady-state tests)
        self.notice_kills = True

    # -- time ---------------------------------------------------------------------------------
    def advance(self, to: float) -> None:
        while True:
            nxt = min(self.next_call, *(p["ts"] for p in self.pending), math.inf)
            if nxt > to:
                break
            self.t = nxt
            if nxt == self.next_call:
                self._place()
            for p in [p for p in self.pending if p["ts"] <= self.t]:
                self.pending.remove(p)
                self.events.append(p)
        self.t = to
        self._steer()

    def _emit(self, kind: str, **rec: Any) -> None:
        self.events.append({"ts": self.t, "kind": kind, **rec})

    def decide(self, region: str, before: str, after: str, rule: str, mode: str, applied: bool, **extra: Any) -> None:
        """A `steering_decision` event now: `extra` (before its `decision`, "health" by default)."""
        decision = extra.pop("decision", "health")
        self._emit(
            "steering_decision",
            t=self.t,
            region=region,
            before=before,
            after=after,
            rule=rule,
            mode=mode,
            applied=applied,
            **extra,
            decision=decision,
        )

    def _steer(self) -> None:
        for region, since in list(self.dead.items()):
            if self.down[region] or not self.notice_kills or self.t < since + self.detect_s:
                continue
            if self.mode == "auto":
                self.down[region] = True
                self.decide(region, "SUSPECT", "DOWN", "consecutive-failures-both-vantages", "auto", True)
            elif region not in self.proposed:
                self.proposed[region] = self.t
                self.decide(region, "SUSPECT", "DOWN", "mode-confirm-proposes-down", "confirm", False)

    def _place(self) -> None:
        self.n += 1
        cid = f"l{self.n:012x}"
        up = [r for r in (A, B) if not self.down[r]]
        region = up[self.n % len(up)]
        t = self.t
        self._emit("load_invoke", run_id="r1", call_id=cid, t_invoke=t, target=f"sip:{region}", chosen_by="http")
        base = {
            "run_id": "r1",
            "call_id": cid,
            "t_invoke": t,
            "steered_region": region,
            "chosen_by": "http",
            "target": f"sip:{region}",
        }
        failing = region in self.dead or region in self.broken or (self.n % 10) >= self.success_before * 10
        if failing:
            self.pending.append(
                {
                    "ts": t + 0.5,
                    "kind": "load_fail",
                    **base,
                    "status": "fail",
                    "region": None,
                    "fate": None,
                    "end_reason": "no_response",
                    "final_code": 0,
                    "pdd_ms": None,
                    "t_end": t + 0.5,
                }
            )
        else:
            self.pending.append(
                {
                    "ts": t + self.hold + 0.1,
                    "kind": "load_ok",
                    **base,
                    "status": "ok",
                    "region": region,
                    "fate": "survived",
                    "end_reason": "caller_bye",
                    "final_code": 200,
                    "pdd_ms": 100.0,
                    "setup_ms": 100.0,
                    "mos": 4.3,
                    "t_end": t + self.hold + 0.1,
                }
            )
            self.pending.append(
                {
                    "ts": t + self.hold + 0.1,
                    "kind": "agent_call",
                    "final_code": 200,
                    "screen_pop": "ok",
                    "agent_region": region,
                }
            )
        nxt = t + 1.0 / self.cps
        self.next_call = nxt if nxt < self.traffic_end else math.inf

    # -- faults ---------------------------------------------------------------------------------
    def apply(self, kind: str, target: str, duration_s: float, params: Mapping[str, Any]) -> str:
        fid = f"f{len(self.faults) + 1}"
        self._emit("fault_invoke", id=fid, fault=kind, target=target, params=dict(params), duration_s=duration_s)
        self._emit(
            "fault_apply",
            id=fid,
            fault=kind,
            target=target,
            params=dict(params),
            started_at=self.t,
            ends_at=self.t + duration_s,
        )
        self.faults[fid] = {"kind": kind, "target": target}
        if kind == "kill" and target.startswith("sbc-"):
            region = f"region-{target[-1]}"
            self.dead[region] = self.t
            for p in self.pending:  # calls in flight on the dead SBC: dropped
                if p.get("kind") == "load_ok" and p.get("region") == region:
                    p.update(kind="load_fail", status="fail", fate="dropped", end_reason="media_timeout")
        return fid

    def revert(self, fid: str) -> None:
        f = self.faults.pop(fid, None)
        if f is None:
            return
        self._emit("fault_revert", id=fid, fault=f["kind"], target=f["target"], reason="lease missing")
        self._emit("fault_end", id=fid, fault=f["kind"], target=f["target"], reason="cleared", warden_exit=0)
        if f["kind"] == "kill":
            region = f"region-{f['target'][-1]}"
            self.dead.pop(region, None)
            if self.down[region]:
                self.down[region] = False
                self.decide(region, "DOWN", "UP", "recovered-after-hold", self.mode, True)


class Clock:
    def __init__(self, world: World) -> None:
        self.w = world

    def now(self) -> float:
        return self.w.t

    async def sleep(self, seconds: float) -> None:
        self.w.advance(self.w.t + seconds)
        await asyncio.sleep(0)


class Traffic:
    def __init__(self, world: World) -> None:
        self.w = world
        self.specs: list[LoadSpec] = []

    async def start(self, specs: Sequence[LoadSpec]) -> list[str]:
        self.specs = list(specs)
        self.w.cps = sum(s.cps for s in specs)
        self.w.hold = specs[0].hold_s
        self.w.traffic_end = self.w.t + specs[0].duration_s
        self.w.next_call = self.w.t
        return ["r1"]

    async def stop(self) -> list[dict[str, Any]]:
        self.w.next_call = math.inf
        self.w.advance(self.w.t + 5)  # let the calls in flight end
        return [{"run_id": "r1", "attempts": self.w.n}]


class Chaos:
    def __init__(self, world: World) -> None:
        self.w = world
        self.removed: list[str] = []

    async def add(self, kind: str, target: str, duration_s: float, params: Mapping[str, Any]) -> str:
        return self.w.apply(kind, target, duration_s, params)

    async def remove(self, fault_id: str) -> None:
        self.removed.append(fault_id)
        self.w.revert(fault_id)

    async def listed(self) -> list[str]:
        return list(self.w.faults)


class Steering:
    def __init__(self, world: World) -> None:
        self.w = world
        self.modes: list[str] = []

    async def state(self) -> dict[str, Any]:
        regions = {r: {"state": "DOWN" if d or r in self.w.proposed else "UP"} for r, d in self.w.down.items()}
        pending = [{"region": r, "since": s, "waiting_s": self.w.t - s} for r, s in self.w.proposed.items()]
        return {"mode": self.w.mode, "regions": regions, "pending": pending}

    async def set_mode(self, mode: str) -> str:
        before, self.w.mode = self.w.mode, mode
        self.modes.append(mode)
        return before

    async def approve(self, who: str) -> None:
        for region, since in list(self.w.proposed.items()):
            self.w.down[region] = True
            self.w.decide(
                region,
                "DOWN",
                "DOWN",
                "operator-approved",
                "confirm",
                True,
                approved_by=who,
                wait_s=self.w.t - since,
                decision="approval",
            )
            del self.w.proposed[region]


class Records:
    async def set_mode(self, mode: str) -> str | None:
        return "async"

    async def reconcile(self, region: str, since: float) -> dict[str, Any]:
        return {"rpo_records": 0, "counts": {}}


class Events:
    def __init__(self, world: World) -> None:
        self.w = world
        self.seen = 0

    def read_new(self) -> list[dict[str, Any]]:
        new = self.w.events[self.seen :]
        self.seen = len(self.w.events)
        return list(new)

    def read_range(self, t0: float, t1: float) -> list[dict[str, Any]]:
        return [e for e in self.w.events if t0 <= e["ts"] <= t1 + 2]


class Lab:
    def __init__(self, up: bool = True) -> None:
        self.up_ = up
        self.brought_up = False

    def is_up(self) -> bool:
        return self.up_

    def up(self) -> None:
        self.brought_up = self.up_ = True

    def commit(self) -> str:
        return "abc123def456"

    def region_of_uri(self, uri: str | None) -> str | None:
        return uri.removeprefix("sip:") if uri else None


class Recorder:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.phases: list[str] = []

    def update(self, status: runner.LiveStatus) -> None:
        if not self.phases or self.phases[-1] != status.phase:
            self.phases.append(status.phase)

    def message(self, text: str) -> None:
        self.messages.append(text)

    def close(self) -> None:
        pass


def _seams(world: World, lab: Lab | None = None) -> tuple[Seams, Chaos, Recorder]:
    chaos, view = Chaos(world), Recorder()
    s = Seams(
        clock=Clock(world),
        traffic=Traffic(world),
        chaos=chaos,
        steering=Steering(world),
        records=Records(),
        events=Events(world),
        lab=lab or Lab(),
        view=view,
    )
    return s, chaos, view


def _run(tmp_path: Path, scn: Scenario, world: World, lab: Lab | None = None) -> tuple[Outcome, Chaos, Recorder]:
    seams, chaos, view = _seams(world, lab)
    out = asyncio.run(Runner(scn, seams, tmp_path / "results", tmp_path / "var").run())
    return out, chaos, view


def test_a_region_crash_drill_passes_end_to_end(tmp_path: Path) -> None:
    world = World(detect_s=1.0)
    lab = Lab(up=False)
    out, chaos, view = _run(tmp_path, _scn(), world, lab)
    assert out.verdict == "pass", out.reason
    assert out.exit_code == 0 and lab.brought_up
    d = out.results
    assert d is not None and d.parent == tmp_path / "results" and d.name.endswith("-sim-crash")
    for f in ("events.jsonl", "timeline.json", "summary.json", "junit.xml", "report.html"):
        assert (d / f).exists()
    s = json.loads((d / "summary.json").read_text())
    m = s["metrics"]
    assert s["seed"] == 5 and s["commit"] == "abc123def456"
    assert 0 < m["rto_s"] <= 5 and m["rto_recovered"]
    assert 1 <= m["failed_new_calls"] <= 10 and m["harness_failed"] == 0 and m["false_failovers"] == 0
    assert m["inflight"]["dropped"] >= 1
    assert [f["took_effect"] and f["clean_after"] for f in s["faults"]] == [True]
    assert {x["name"] for x in s["slos"]} >= {"rto_max_s", "failed_new_calls_max", "false_failovers_max"}
    assert chaos.removed == ["f1"] and not world.faults
    assert view.phases[:4] == ["warm-up", "steady-state", "method", "revert"]
    assert "steady-state-after" in view.phases
    assert not (tmp_path / "var" / "state.json").exists()  # a finished drill leaves no state


def test_same_seed_same_schedule() -> None:
    scn = _scn(SCENARIO.replace("at: 2, for: 10}", "at: 2, for: 10, jitter_s: 5}"))
    assert runner.fault_schedule(scn) == runner.fault_schedule(scn)
    other = _scn(SCENARIO.replace("at: 2, for: 10}", "at: 2, for: 10, jitter_s: 5}").replace("seed: 5", "seed: 6"))
    assert runner.fault_schedule(scn)[0][0] != runner.fault_schedule(other)[0][0]
    mixed = _scn(SCENARIO.replace("cps: 4,", "cps: 4, steer: {http: 3, sticky: 1},"))
    specs = runner.load_specs(mixed, 100)
    assert [(s.steer, s.cps) for s in specs] == [("http", 3.0), ("sticky", 1.0)]
    assert specs == runner.load_specs(mixed, 100) and len({s.seed for s in specs}) == 2


def test_steady_state_failing_before_the_fault_is_exit_3(tmp_path: Path) -> None:
    world = World()
    world.success_before = 0.5
    out, chaos, _ = _run(tmp_path, _scn(), world)
    assert out.exit_code == 3 and out.verdict == "invalid"
    assert "steady state does not hold before the fault: new_call_success_min: 0.5" in out.reason
    assert chaos.removed == [] and not world.faults  # nothing was injected


def test_an_abort_condition_reverts_everything_and_exits_4(tmp_path: Path) -> None:
    world = World()
    scn = _scn()
    seams, chaos, view = _seams(world)
    r = Runner(scn, seams, tmp_path / "results", tmp_path / "var")

    async def go() -> Outcome:
        task = asyncio.create_task(r.run())
        while "method" not in view.phases:
            await asyncio.sleep(0)
        world.broken.add(B)  # the region the scenario does not touch starts failing
        return await task

    out = asyncio.run(go())
    assert out.exit_code == 4 and out.verdict == "aborted"
    assert "new_call_success in region-b below 0.5 for 3 s" in out.reason
    assert not world.faults and chaos.removed == ["f1"]
    s = json.loads((out.results / "summary.json").read_text())  # type: ignore[operator]
    assert s["aborts"] and s["verdict"] == "aborted"


def test_ctrl_c_reverts_and_writes_an_incomplete_report(tmp_path: Path) -> None:
    world = World()
    seams, chaos, _ = _seams(world)
    r = Runner(_scn(), seams, tmp_path / "results", tmp_path / "var")

    async def go() -> Outcome:
        task = asyncio.create_task(r.run())
        while not world.faults:
            await asyncio.sleep(0)
        task.cancel()
        return await task

    out = asyncio.run(go())
    assert out.verdict == "incomplete" and out.exit_code == 5
    assert "interrupted during method" in out.reason
    assert not world.faults and chaos.removed == ["f1"]
    s = json.loads((out.results / "summary.json").read_text())  # type: ignore[operator]
    assert s["verdict"] == "incomplete"
    assert not (tmp_path / "var" / "state.json").exists()


def test_a_fault_nobody_noticed_makes_the_drill_invalid(tmp_path: Path) -> None:
    world = World()
    world.notice_kills = False
    world.dead = _NeverDead()  # type: ignore[assignment]
    out, _, _ = _run(tmp_path, _scn(), world)
    assert out.verdict == "invalid" and out.exit_code == 5
    assert "never took effect" in out.reason


class _NeverDead(dict[str, float]):
    """A kill the world ignores (e.g. a warden that says LIVE but did nothing)."""

    def __setitem__(self, key: str, value: float) -> None:
        pass


def test_confirm_mode_the_operators_wait_is_measured(tmp_path: Path) -> None:
    world = World(detect_s=1.0)
    scn = _scn(
        SCENARIO.replace("recovery:", "steering: {mode: confirm, operator_approves_after_s: 2}\nrecovery:").replace(
            "rto_max_s: 5", "rto_max_s: 8"
        )
    )
    seams, _, _ = _seams(world)
    out = asyncio.run(Runner(scn, seams, tmp_path / "results", tmp_path / "var").run())
    s = out.summary
    assert s is not None and out.verdict in ("pass", "fail"), out.reason
    assert s["metrics"]["operator_wait_s"] is not None and s["metrics"]["operator_wait_s"] >= 2
    assert seams.steering.modes == ["confirm", "auto"]  # type: ignore[attr-defined]
    assert "approved the failover" in s["questions"]["who_decided"]


def test_another_drill_holding_the_lab_is_refused(tmp_path: Path) -> None:
    other = DrillLock(tmp_path / "var")
    other.acquire("region-crash")
    try:
        out, _, _ = _run(tmp_path, _scn(), World())
    finally:
        other.release()
    assert out.exit_code == 3 and "held by drill region-crash" in out.reason


def test_a_killed_runner_is_finished_by_recover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    seams, chaos, _ = _seams(world)
    fid = world.apply("kill", "sbc-a", 30, {})
    results = tmp_path / "results" / "20231114T221320Z-sim-crash"
    RunState(tmp_path / "var").save(
        {
            "scenario": "sim-crash",
            "seed": 5,
            "t0": T0,
            "results": str(results),
            "faults": [fid],
            "run_ids": ["r1"],
            "phase": "method",
            "previous_mode": None,
        }
    )
    world.advance(T0 + 20)
    scn = _scn()
    out = asyncio.run(runner.recover(seams, RunState(tmp_path / "var"), tmp_path / "results",
                                     scn_loader=lambda _name: scn))  # fmt: skip
    assert out is not None and out.verdict == "incomplete" and out.results == results
    assert not world.faults and chaos.removed == [fid]
    assert json.loads((results / "summary.json").read_text())["verdict"] == "incomplete"
    assert not (tmp_path / "var" / "state.json").exists()
    assert asyncio.run(runner.recover(seams, RunState(tmp_path / "var"), tmp_path / "results")) is None


class _RefusingChaos(Chaos):
    async def add(self, kind: str, target: str, duration_s: float, params: Mapping[str, Any]) -> str:
        raise RuntimeError("kill cannot target 'sbc-a' right now")


def test_a_fault_the_controller_refuses_makes_the_drill_invalid(tmp_path: Path) -> None:
    world = World()
    seams, _, _ = _seams(world)
    seams.chaos = _RefusingChaos(world)
    out = asyncio.run(Runner(_scn(), seams, tmp_path / "results", tmp_path / "var").run())
    assert out.verdict == "invalid" and out.exit_code == 5
    assert "never took effect: not applied: kill cannot target" in out.reason


class _DeadSteering(Steering):
    async def set_mode(self, mode: str) -> str:
        raise ConnectionError("steering does not answer")


def test_an_operation_failing_mid_drill_still_reverts_and_reports(tmp_path: Path) -> None:
    world = World()
    seams, _, _ = _seams(world)
    seams.steering = _DeadSteering(world)
    scn = _scn(SCENARIO.replace("recovery:", "steering: {mode: confirm}\nrecovery:"))
    out = asyncio.run(Runner(scn, seams, tmp_path / "results", tmp_path / "var").run())
    assert out.verdict == "incomplete" and out.exit_code == 5 and "steering does not answer" in out.reason
    assert out.results is not None and (out.results / "summary.json").exists()
