"""The drill runner: a scenario against live traffic to a verdict and a report.

Phases: lock -> finish a killed predecessor -> lab up -> steering/records set-up -> traffic ->
warm-up -> steady state (exit 3 if it does not hold) -> the fault timeline (seeded timing, abort
conditions and confirm-mode approvals watched every tick) -> revert -> recovery wait -> steady
state again -> compute -> write. Ctrl-C / SIGTERM (task cancellation) reverts every fault and
writes a partial report marked `incomplete`; a killed runner is finished by the next run or
`wobble drill recover` from var/drill/state.json.

Every contact with the world goes through a seam (`Seams`): traffic, chaos, steering, records,
the event log, the lab and the clock. `lab.drill.wiring` has the real ones; the unit tests drive
the whole runner with fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lab.drill import measure, report, verdict
from lab.drill.lock import DrillLock, LabBusy, RunState
from lab.drill.scenario import FaultStep, Scenario

#: A call still open this long after its invoke counts as answered for the live checks only
#: (failures are known within seconds; successes only when the call ends).
PROVISIONAL_OK_S = 6.0
#: How long to wait for the calls of a steady-state window to complete before judging it.
SETTLE_MAX_S = 12.0
TICK_S = 1.0


# ------------------------------------------------------------------------------------------------
# Seams
# ------------------------------------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class LoadSpec:
    steer: str
    cps: float
    duration_s: float
    hold_s: float
    hold_dist: str
    arrivals: str
    seed: int


class Traffic(Protocol):
    async def start(self, specs: Sequence[LoadSpec]) -> list[str]:
        """Start the load runs; returns their run ids."""

    async def stop(self) -> list[dict[str, Any]]:
        """Stop them (as Ctrl-C would) and wait for their summaries."""


class Chaos(Protocol):
    async def add(self, kind: str, target: str, duration_s: float, params: Mapping[str, Any]) -> str:
        """Apply a fault; returns its id once live."""

    async def remove(self, fault_id: str) -> None:
        """Revert it (already ended: fine)."""

    async def listed(self) -> list[str]:
        """Ids of the faults the controller holds now."""


class Steering(Protocol):
    async def state(self) -> dict[str, Any]: ...
    async def set_mode(self, mode: str) -> str:
        """Set the mode; returns the previous one."""

    async def approve(self, who: str) -> None: ...


class Records(Protocol):
    async def set_mode(self, mode: str) -> str | None:
        """Set the replication mode; returns the previous one."""

    async def reconcile(self, region: str, since: float) -> dict[str, Any]:
        """`wobble records reconcile` as a dict: {rpo_records, counts, ...}."""


class EventLog(Protocol):
    def read_new(self) -> list[dict[str, Any]]:
        """What was appended since the last call."""

    def read_range(self, t0: float, t1: float) -> list[dict[str, Any]]:
        """Every event with ts in [t0, t1]."""


class Lab(Protocol):
    def is_up(self) -> bool: ...
    def up(self) -> None: ...
    def commit(self) -> str: ...
    def region_of_uri(self, uri: str | None) -> str | None: ...


class View(Protocol):
    def update(self, status: LiveStatus) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


class NullView:
    def update(self, status: LiveStatus) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Seams:
    clock: Clock
    traffic: Traffic
    chaos: Chaos
    steering: Steering
    records: Records
    events: EventLog
    lab: Lab
    view: View = field(default_factory=NullView)


@dataclass
class LiveStatus:
    scenario: str
    phase: str = "starting"
    elapsed_s: float = 0.0
    success_last: list[float | None] = field(default_factory=list)  # per second, newest last
    faults: list[dict[str, Any]] = field(default_factory=list)  # {kind, target, left_s}
    regions: dict[str, str] = field(default_factory=dict)
    mode: str | None = None
    note: str = ""


@dataclass
class Outcome:
    verdict: str
    reason: str
    exit_code: int
    results: Path | None
    summary: dict[str, Any] | None = None


class NotReady(Exception):
    """The lab is not up, or steady state does not hold before the fault (exit 3)."""


# ------------------------------------------------------------------------------------------------
# Pure helpers
# ------------------------------------------------------------------------------------------------


def load_specs(scn: Scenario, duration_s: float) -> list[LoadSpec]:
    """One load run per steering mode, its share of the CPS; seeds derived from the scenario's."""
    return [
        LoadSpec(
            steer=mode,
            cps=round(scn.load.cps * share, 4),
            duration_s=round(duration_s, 1),
            hold_s=scn.load.hold_s,
            hold_dist=scn.load.hold_dist,
            arrivals=scn.load.arrivals,
            seed=scn.seed * 10 + i,
        )
        for i, (mode, share) in enumerate(sorted(scn.load.shares().items()))
    ]


def fault_schedule(scn: Scenario) -> list[tuple[float, FaultStep]]:
    """(offset from the method's start, step), with each step's jitter drawn from the seed."""
    rng = random.Random(f"{scn.seed}/faults")
    out = [(step.at + (rng.uniform(0, step.jitter_s) if step.jitter_s else 0.0), step) for step in scn.method]
    return sorted(out, key=lambda x: x[0])


def live_records(
    events: Sequence[Mapping[str, Any]],
    run_ids: Sequence[str],
    now: float,
    region_of: Callable[[str | None], str | None],
) -> tuple[list[dict[str, Any]], float]:
    """Completed calls plus provisional successes (invokes open >= PROVISIONAL_OK_S), and the time
    up to which every call is judged (the oldest younger-than-that open invoke)."""
    done = measure.call_records(events, run_ids)
    ids = {str(r.get("call_id")) for r in done}
    out = list(done)
    horizon = now
    for inv in measure.invokes(events, run_ids):
        if str(inv.get("call_id")) in ids or inv.get("t_invoke") is None:
            continue
        t = float(inv["t_invoke"])
        if now - t >= PROVISIONAL_OK_S:
            out.append(
                {
                    "call_id": inv.get("call_id"),
                    "t_invoke": t,
                    "status": "ok",
                    "provisional": True,
                    "steered_region": region_of(inv.get("target")),
                }
            )
        else:
            horizon = min(horizon, t)
    return out, horizon


# ------------------------------------------------------------------------------------------------
# The runner
# ------------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, scn: Scenario, seams: Seams, results_root: Path, state_dir: Path) -> None:
        self.scn = scn
        self.s = seams
        self.results_root = results_root
        self.lock = DrillLock(state_dir)
        self.state = RunState(state_dir)
        self.events: list[dict[str, Any]] = []
        self.run_ids: list[str] = []
        self.applied: dict[str, dict[str, Any]] = {}  # id -> {kind, target, ends}
        self.reverted: set[str] = set()
        self.timeline: list[dict[str, Any]] = []
        self.phases: list[dict[str, Any]] = []
        self.aborts: list[dict[str, Any]] = []
        self.failed_asks: list[dict[str, Any]] = []
        self.t0 = 0.0
        self.t_measure = 0.0
        self.steady_before: list[dict[str, Any]] | None = None
        self.steady_after: list[dict[str, Any]] | None = None
        self.load_summaries: list[dict[str, Any]] = []
        self.previous_mode: str | None = None
        self.previous_records_mode: str | None = None
        self.live = LiveStatus(scn.name)
        self.out: Path | None = None

    # ---- bookkeeping -----------------------------------------------------------------------

    def now(self) -> float:
        return self.s.clock.now()

    def mark(self, phase: str) -> None:
        t = self.now()
        self.phases.append({"t": t, "phase": phase})
        self.timeline.append({"t": t, "what": "phase", "phase": phase})
        self.live.phase = phase
        self.s.view.message(f"{phase} (+{t - self.t0:.0f} s)")
        self._refresh()

    def _save(self, **extra: Any) -> None:
        self.state.save(
            {
                "scenario": self.scn.name,
                "seed": self.scn.seed,
                "t0": self.t0,
                "results": str(self.out),
                "faults": sorted(self.applied),
                "reverted": sorted(self.reverted),
                "run_ids": self.run_ids,
                "phase": self.live.phase,
                "previous_mode": self.previous_mode,
                **extra,
            }
        )

    def _pull(self) -> None:
        self.events.extend(self.s.events.read_new())

    def _refresh(self) -> None:
        now = self.now()
        self.live.elapsed_s = now - self.t0 if self.t0 else 0.0
        self.live.faults = [
            {"kind": f["kind"], "target": f["target"], "left_s": max(0.0, f["ends"] - now)}
            for fid, f in self.applied.items()
            if fid not in self.reverted and f["ends"] > now
        ]
        self.s.view.update(self.live)

    # ---- the run ---------------------------------------------------------------------------

    async def run(self) -> Outcome:
        try:
            self.lock.acquire(self.scn.name)
        except LabBusy as exc:
            return Outcome("refused", str(exc), verdict.EXIT_NOT_READY, None)
        interrupted: str | None = None
        not_ready: str | None = None
        aborted: str | None = None
        try:
            await recover(self.s, self.state, self.results_root)
            if not await asyncio.to_thread(self.s.lab.is_up):
                self.s.view.message("the lab is not up: bringing it up")
                try:
                    await asyncio.to_thread(self.s.lab.up)
                except Exception as exc:
                    return Outcome("refused", f"the lab did not come up: {exc}", verdict.EXIT_NOT_READY, None)
            self.t0 = self.now()
            self.out = report.results_dir(self.results_root, self.scn.name, self.t0)
            self._save()
            try:
                aborted = await self._drive()
            except NotReady as exc:
                not_ready = str(exc)
        except (asyncio.CancelledError, KeyboardInterrupt):
            interrupted = f"interrupted during {self.live.phase} (Ctrl-C or SIGTERM); every fault reverted"
        except Exception as exc:  # an operation failed (steering, traffic, ...): stop, revert, report
            interrupted = f"stopped by an error during {self.live.phase}: {exc}; every fault reverted"
        finally:
            outcome = await asyncio.shield(self._finish(interrupted, not_ready, aborted))
            self.state.clear()
            self.lock.release()
            self.s.view.close()
        return outcome

    async def _drive(self) -> str | None:
        scn = self.scn
        await self._setup()
        settle = min(SETTLE_MAX_S, scn.load.hold_s * 3 + 5)
        specs = load_specs(scn, scn.planned_s(settle) + 5)
        self.run_ids = await self.s.traffic.start(specs)
        self.timeline.append(
            {"t": self.now(), "what": "traffic", "runs": self.run_ids, "specs": [s.__dict__ for s in specs]}
        )
        self._save()
        self.mark("warm-up")
        await self._wait(scn.warmup_s)
        self.mark("steady-state")
        self.t_measure = t_ss = self.now()
        await self._wait(scn.steady_state.window_s)
        t_ss_end = self.now()
        await self._settle(t_ss, t_ss_end, settle)
        self.steady_before = self._steady(t_ss, t_ss_end)
        bad = [s for s in self.steady_before if not s["pass"]]
        if bad:
            raise NotReady(f"steady state does not hold before the fault: {verdict.describe_slo(bad[0])}")
        self.mark("method")
        aborted = await self._method()
        self.mark("revert")
        await self._revert_all()
        if aborted:
            return aborted
        self.mark("recovery")
        await self._recover_wait()
        self.mark("steady-state-after")
        t_a = self.now()
        await self._wait(scn.steady_state.window_s)
        t_a_end = self.now()
        await self._settle(t_a, t_a_end, settle)
        self.steady_after = self._steady(t_a, t_a_end)
        return None

    async def _setup(self) -> None:
        scn = self.scn
        if scn.steering.mode is not None:
            self.previous_mode = await self.s.steering.set_mode(scn.steering.mode)
            self.timeline.append(
                {"t": self.now(), "what": "steering_mode", "mode": scn.steering.mode, "previous": self.previous_mode}
            )
        if scn.records.mode is not None:
            self.previous_records_mode = await self.s.records.set_mode(scn.records.mode)
            self.timeline.append({"t": self.now(), "what": "records_mode", "mode": scn.records.mode})

    async def _wait(self, seconds: float) -> None:
        """Sleep in ticks, keeping the live view and the event buffer fresh."""
        end = self.now() + seconds
        while self.now() < end:
            await self.s.clock.sleep(min(TICK_S, max(0.0, end - self.now())))
            self._pull()
            self._live_success()

    async def _settle(self, t_from: float, t_to: float, max_s: float) -> None:
        """Until every call placed in [t_from, t_to) has completed, or max_s."""
        deadline = self.now() + max_s
        while self.now() < deadline:
            done = {str(r.get("call_id")) for r in measure.call_records(self.events, self.run_ids)}
            pending = [
                i
                for i in measure.invokes(self.events, self.run_ids)
                if t_from <= float(i.get("t_invoke") or 0) < t_to and str(i.get("call_id")) not in done
            ]
            if not pending:
                return
            await self.s.clock.sleep(TICK_S)
            self._pull()
            self._live_success()

    def _steady(self, t_from: float, t_to: float) -> list[dict[str, Any]]:
        ss = self.scn.steady_state
        recs = measure.call_records(self.events, self.run_ids)
        return measure.steady_state(recs, t_from, t_to, ss.new_call_success_min, ss.pdd_p95_max_ms, ss.mos_p5_min)

    def _live_bins(self, region: str | None = None, since: float | None = None) -> list[measure.Bin]:
        recs, horizon = live_records(self.events, self.run_ids, self.now(), self.s.lab.region_of_uri)
        start = self.t0 if since is None else since
        return measure.success_series(recs, start, max(start, math.floor(horizon - start) + start), region=region)

    def _live_success(self) -> None:
        bins = self._live_bins()
        self.live.success_last = [b.ratio for b in bins[-30:]]
        self._refresh()

    async def _method(self) -> str | None:
        """Apply the timeline; watch aborts and approvals; return an abort reason or None."""
        scn = self.scn
        t_m = self.now()
        todo = fault_schedule(scn)
        last_end = t_m + max(off + step.for_s for off, step in todo)
        approved: set[tuple[str, float]] = set()
        while True:
            now = self.now()
            while todo and now >= t_m + todo[0][0]:
                _, step = todo.pop(0)
                await self._apply(step)
                now = self.now()
            await self._steering_tick(approved)
            reason = self._check_aborts(t_m)
            if reason:
                self.aborts.append({"t": self.now(), "reason": reason})
                self.timeline.append({"t": self.now(), "what": "abort", "reason": reason})
                self.s.view.message(f"ABORT: {reason}")
                return reason
            for fid, f in self.applied.items():
                if fid not in self.reverted and now >= f["ends"] + 1.0:
                    await self._remove(fid)
            if not todo and now >= last_end and all(now >= f["ends"] for f in self.applied.values()):
                return None
            await self.s.clock.sleep(TICK_S)
            self._pull()
            self._live_success()

    async def _apply(self, step: FaultStep) -> None:
        t = self.now()
        self.timeline.append(
            {
                "t": t,
                "what": "fault_asked",
                "kind": step.kind,
                "target": step.target,
                "for_s": step.for_s,
                "params": dict(step.params),
            }
        )
        try:
            fid = await self.s.chaos.add(step.kind, step.target, step.for_s, dict(step.params))
        except Exception as exc:  # refused or failed to apply: nothing is live; the proof says so
            self.failed_asks.append(
                {
                    "kind": step.kind,
                    "target": step.target,
                    "error": str(exc),
                    "asked": {"for_s": step.for_s, **dict(step.params)},
                }
            )
            self.timeline.append({"t": self.now(), "what": "fault_failed", "kind": step.kind, "error": str(exc)})
            self.s.view.message(f"fault {step.kind} on {step.target} FAILED: {exc}")
            return
        self.applied[fid] = {"kind": step.kind, "target": step.target, "ends": self.now() + step.for_s, "asked": t}
        self.timeline.append(
            {"t": self.now(), "what": "fault_live", "id": fid, "kind": step.kind, "target": step.target}
        )
        self._save()
        self.s.view.message(f"fault {step.kind} on {step.target} for {step.for_s:g} s: live ({fid})")

    async def _remove(self, fid: str) -> None:
        try:
            await self.s.chaos.remove(fid)
        finally:
            self.reverted.add(fid)
            self.timeline.append({"t": self.now(), "what": "fault_reverted", "id": fid})
            self._save()

    async def _revert_all(self) -> None:
        for fid in list(self.applied):
            if fid not in self.reverted:
                try:
                    await self._remove(fid)
                except Exception as exc:  # keep reverting the others; the proof will show it
                    self.timeline.append({"t": self.now(), "what": "revert_error", "id": fid, "error": str(exc)})

    async def _steering_tick(self, approved: set[tuple[str, float]]) -> None:
        try:
            st = await self.s.steering.state()
        except Exception as exc:
            self.live.note = f"steering: {exc}"
            return
        self.live.mode = st.get("mode")
        self.live.regions = {name: str(r.get("state")) for name, r in (st.get("regions") or {}).items()}
        after = self.scn.steering.operator_approves_after_s
        if after is None:
            return
        for p in st.get("pending") or []:
            key = (str(p.get("region")), float(p.get("since") or 0.0))
            if key not in approved and float(p.get("waiting_s") or 0.0) >= after:
                approved.add(key)
                await self.s.steering.approve("drill-operator")
                self.timeline.append({"t": self.now(), "what": "operator_approved", "region": key[0]})
                self.s.view.message(f"operator approved the failover of {key[0]}")

    def _check_aborts(self, t_m: float) -> str | None:
        for cond in self.scn.abort:
            bins = self._live_bins(cond.region, since=t_m)
            tripped, value = measure.check_floor(bins, cond.metric, cond.below, cond.above, math.ceil(cond.for_s))
            if tripped:
                return f"abort condition: {cond.describe()} (measured {value:g})"
        return None

    async def _recover_wait(self) -> None:
        """Until new calls succeed at the recovery ratio over W s of judged calls, or recovery.wait_s."""
        rec = self.scn.recovery
        width = math.ceil(rec.window_s)
        t_r = self.now()
        deadline = t_r + rec.wait_s
        while self.now() < deadline:
            bins = self._live_bins(since=t_r)
            if len(bins) >= width:
                value, att = measure.window_ratio(bins, len(bins) - width, width)
                if value is not None and att and value >= self.scn.recovery_ratio:
                    return
            await self.s.clock.sleep(TICK_S)
            self._pull()
            self._live_success()

    # ---- the end ---------------------------------------------------------------------------

    async def _finish(self, interrupted: str | None, not_ready: str | None, aborted: str | None) -> Outcome:
        """Revert, stop traffic, restore modes, compute and write. Runs whatever happened."""
        with contextlib.suppress(Exception):
            await self._revert_all()
        if self.run_ids:
            with contextlib.suppress(Exception):
                self.load_summaries = await self.s.traffic.stop()
        if self.previous_mode is not None:
            with contextlib.suppress(Exception):
                await self.s.steering.set_mode(self.previous_mode)
        if self.previous_records_mode is not None:
            with contextlib.suppress(Exception):
                await self.s.records.set_mode(self.previous_records_mode)
        if self.out is None:  # never started: nothing to report
            reason = interrupted or not_ready or "not started"
            return Outcome(
                "incomplete" if interrupted else "refused", reason, 5 if interrupted else verdict.EXIT_NOT_READY, None
            )
        t_end = self.now()
        self._pull()
        listed: list[str] = []
        with contextlib.suppress(Exception):
            listed = await self.s.chaos.listed()
        rpo: dict[str, Any] | None = None
        if self.scn.records.reconcile_region and not (interrupted or not_ready):
            try:
                rpo = await self.s.records.reconcile(self.scn.records.reconcile_region, self.t0)
            except Exception as exc:
                rpo = {"error": str(exc), "rpo_records": None}
        evs = self.s.events.read_range(self.t0, t_end) or self.events
        summary = compute_summary(
            self.scn,
            evs,
            self.run_ids,
            list(self.applied),
            self.t0,
            t_end,
            self.t_measure or self.t0,
            commit=self.s.lab.commit(),
            listed=listed,
            steady_before=self.steady_before,
            steady_after=self.steady_after,
            phases=self.phases,
            aborts=self.aborts,
            load=self.load_summaries,
            interrupted=interrupted,
            aborted=aborted,
            not_ready=not_ready,
            rpo=rpo,
            failed_asks=self.failed_asks,
        )
        report.write_all(self.out, evs, self.timeline, summary)
        code = verdict.EXIT_NOT_READY if not_ready else verdict.exit_code(summary["verdict"])
        self.s.view.message(f"verdict {summary['verdict']}: {summary['reason']} -> {self.out}")
        return Outcome(summary["verdict"], summary["reason"], code, self.out, summary)


def compute_summary(
    scn: Scenario,
    events: Sequence[Mapping[str, Any]],
    run_ids: Sequence[str],
    fault_ids: Sequence[str],
    t0: float,
    t_end: float,
    t_measure: float,
    *,
    commit: str,
    listed: Sequence[str] = (),
    steady_before: Sequence[Mapping[str, Any]] | None = None,
    steady_after: Sequence[Mapping[str, Any]] | None = None,
    phases: Sequence[Mapping[str, Any]] = (),
    aborts: Sequence[Mapping[str, Any]] = (),
    load: Sequence[Mapping[str, Any]] = (),
    interrupted: str | None = None,
    aborted: str | None = None,
    not_ready: str | None = None,
    rpo: Mapping[str, Any] | None = None,
    failed_asks: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Measure, judge and assemble summary.json (pure: the runner and `drill recover` share it)."""
    from lab.drill import sources

    regions = list(sources.REGIONS)
    faults = measure.fault_windows(events, list(fault_ids))
    metrics = measure.run_metrics(
        events,
        faults,
        t0,
        t_end,
        run_ids=run_ids or None,
        regions=regions,
        window_s=scn.recovery.window_s,
        ratio=scn.recovery_ratio,
        grace_s=scn.recovery.grace_s,
        measure_from=t_measure,
    )
    if rpo is not None:
        metrics["rpo_records"] = rpo.get("rpo_records")
        metrics["reconcile"] = dict(rpo)
    records = measure.call_records(events, run_ids or None)
    decs = measure.decisions(events)
    proofs = [verdict.fault_proof(f, records, decs, regions, listed) for f in faults]
    proofs += [
        {
            "id": None,
            "kind": a["kind"],
            "target": a["target"],
            "asked": a.get("asked", {}),
            "measured": {},
            "took_effect": False,
            "clean_after": True,
            "why": f"not applied: {a.get('error')}",
        }
        for a in failed_asks
    ]
    slos = verdict.evaluate_slos(scn.slos.items(), metrics)
    if not_ready:
        v, why = "invalid", not_ready
    else:
        v, why = verdict.decide(
            slos=slos,
            faults=proofs,
            harness_invalid=bool(metrics.get("harness_invalid")),
            steady_before=steady_before,
            steady_after=steady_after,
            aborted=aborted,
            interrupted=interrupted,
        )
    return report.build_summary(
        scenario=scn.name,
        description=scn.description,
        seed=scn.seed,
        commit=commit,
        verdict=v,
        reason=why,
        t0=t0,
        t_end=t_end,
        metrics=metrics,
        slos=slos,
        faults=proofs,
        steady_before=steady_before,
        steady_after=steady_after,
        phases=phases,
        aborts=aborts,
        load=load,
    )


def _load_by_name(name: str) -> Scenario:
    from lab.drill import scenario as scenario_mod

    return scenario_mod.load(scenario_mod.resolve(name))


async def recover(
    seams: Seams, state: RunState, results_root: Path, scn_loader: Callable[[str], Scenario] = _load_by_name
) -> Outcome | None:
    """Finish a drill whose runner died: revert its faults, stop nothing else (its load runs ended
    with it or will be closed by `wobble events recover`), write its partial report `incomplete`."""
    st = state.load()
    if st is None:
        return None
    for fid in st.get("faults") or []:
        with contextlib.suppress(Exception):
            await seams.chaos.remove(str(fid))
    listed: list[str] = []
    with contextlib.suppress(Exception):
        listed = await seams.chaos.listed()
    if st.get("previous_mode"):
        with contextlib.suppress(Exception):
            await seams.steering.set_mode(str(st["previous_mode"]))
    out_dir = Path(str(st.get("results"))) if st.get("results") not in (None, "None") else None
    t0 = float(st.get("t0") or 0.0)
    outcome: Outcome | None = None
    if out_dir is not None and t0:
        from lab.drill import sources

        scn: Scenario | None
        try:
            scn = scn_loader(str(st["scenario"]))
        except Exception:
            scn = None
        t_end = seams.clock.now()
        evs = seams.events.read_range(t0, t_end)
        why = f"the runner died during {st.get('phase')}; finished by a later run; its faults were reverted"
        if scn is not None:
            summary = compute_summary(
                scn,
                evs,
                st.get("run_ids") or [],
                st.get("faults") or [],
                t0,
                t_end,
                t0,
                commit=seams.lab.commit(),
                listed=listed,
                interrupted=why,
            )
        else:
            summary = report.build_summary(
                scenario=str(st.get("scenario")),
                description="",
                seed=int(st.get("seed") or 0),
                commit=seams.lab.commit(),
                verdict="incomplete",
                reason=why,
                t0=t0,
                t_end=t_end,
                metrics=measure.run_metrics(
                    evs, measure.fault_windows(evs, st.get("faults") or []), t0, t_end, regions=list(sources.REGIONS)
                ),
                slos=[],
                faults=[],
            )
        report.write_all(out_dir, evs, [{"t": t_end, "what": "recovered", "reason": why}], summary)
        outcome = Outcome("incomplete", why, verdict.EXIT_CODES["incomplete"], out_dir, summary)
        seams.view.message(f"finished the drill a dead runner left: {out_dir} (incomplete)")
    state.clear()
    return outcome
