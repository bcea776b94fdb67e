"""`wobble drill ...`: run a scenario to a verdict and a report; list, validate, recover.

Exit codes (every `wobble` command): 0 pass (or done), 1 failed, 2 bad input (flags, scenario
file), 3 the lab is not up / another drill holds it / steady state does not hold before the
fault, 4 aborted, 5 invalid or incomplete.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from core.errors import BadInput

if TYPE_CHECKING:
    from lab.drill.scenario import Scenario

T = TypeVar("T")

drill_app = typer.Typer(
    no_args_is_help=True, help="Drills: a scenario against live traffic, to a verdict and a report."
)
JsonOpt = Annotated[bool, typer.Option("--json", help="The summary as one JSON object, the last stdout line.")]


def _load(name_or_file: str) -> tuple[Path, Scenario]:
    from lab.drill import scenario

    try:
        path = scenario.resolve(name_or_file)
        return path, scenario.load(path)
    except BadInput as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr, flush=True)
        raise typer.Exit(2) from exc


async def _main_with_sigterm(start: Callable[[], Awaitable[T]]) -> T:
    """Run the runner as a task; SIGTERM cancels it as Ctrl-C does (faults reverted, report written)."""
    task = asyncio.ensure_future(start())
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


@drill_app.command("run")
def run(
    scenario_: Annotated[str, typer.Argument(metavar="FILE|NAME", help="drills/NAME.yaml by name, or a file.")],
    as_json: JsonOpt = False,
) -> None:
    """Run a scenario: warm-up, steady state, the fault timeline under traffic, recovery, verdict, report."""
    from lab.drill import sources
    from lab.drill.live import RichView
    from lab.drill.runner import Runner
    from lab.drill.wiring import real_seams

    _, scn = _load(scenario_)
    seams = real_seams(RichView())
    runner = Runner(scn, seams, sources.RESULTS, sources.VAR / "drill")
    outcome = asyncio.run(_main_with_sigterm(runner.run))
    where = f" -> {outcome.results}" if outcome.results else ""
    print(f"{scn.name}: {outcome.verdict}: {outcome.reason}{where}", file=sys.stderr, flush=True)
    if as_json:
        s = outcome.summary or {"verdict": outcome.verdict, "reason": outcome.reason}
        small = {k: v for k, v in s.items() if k not in ("series", "steering")}
        small["results"] = str(outcome.results) if outcome.results else None
        print(json.dumps(small, default=str), flush=True)
    raise typer.Exit(outcome.exit_code)


@drill_app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """The scenario library (drills/*.yaml): name, longest planned length, description."""
    from lab.drill import scenario
    from lab.drill.runner import SETTLE_MAX_S

    rows = []
    for path in scenario.library():
        try:
            scn = scenario.load(path)
            rows.append(
                {
                    "name": scn.name,
                    "planned_s": round(scn.planned_s(min(SETTLE_MAX_S, scn.load.hold_s * 3 + 5)), 1),
                    "description": scn.description,
                    "faults": [f"{m.kind} {m.target}" for m in scn.method],
                }
            )
        except BadInput as exc:
            rows.append({"name": path.stem, "error": str(exc).splitlines()[0]})
    if as_json:
        print(json.dumps(rows), flush=True)
        return
    for r in rows:
        if "error" in r:
            print(f"{r['name']:24} INVALID {r['error']}")
        else:
            print(f"{r['name']:24} <={r['planned_s']:5.0f} s  {r['description']}")


@drill_app.command("validate")
def validate(
    files: Annotated[list[str], typer.Argument(metavar="FILE|NAME...", help="Scenario files or names.")],
) -> None:
    """Check scenario files without running them; each problem as FILE:LINE: FIELD: what is allowed."""
    from lab.drill import scenario

    bad = 0
    for f in files:
        try:
            scn = scenario.load(scenario.resolve(f))
        except BadInput as exc:
            bad += 1
            for line in str(exc).splitlines():
                print(f"error: {line}", file=sys.stderr, flush=True)
            continue
        print(f"{f}: ok ({scn.name}: {len(scn.method)} faults, {len(scn.slos.items())} SLOs)")
    if bad:
        raise typer.Exit(2)


@drill_app.command("recover")
def recover(as_json: JsonOpt = False) -> None:
    """Finish a drill whose runner was killed: revert its faults, write its report marked incomplete."""
    from lab.drill import runner, sources
    from lab.drill.live import RichView
    from lab.drill.lock import DrillLock, RunState
    from lab.drill.wiring import real_seams

    lock = DrillLock(sources.VAR / "drill")
    if lock.held_by_someone():
        print(f"error: a drill is running ({lock.holder()}); it will finish itself", file=sys.stderr, flush=True)
        raise typer.Exit(3)
    state = RunState(sources.VAR / "drill")
    outcome = asyncio.run(runner.recover(real_seams(RichView()), state, sources.RESULTS))
    result = {
        "recovered": outcome is not None,
        "results": str(outcome.results) if outcome and outcome.results else None,
    }
    print(
        json.dumps(result)
        if as_json
        else (
            "nothing to recover"
            if outcome is None
            else f"finished the dead drill's report (incomplete): {result['results']}"
        ),
        flush=True,
    )
