"""The scenario library (drills/*.yaml): every file loads, the issue's 17 drills are there, the
library fits a nightly run, and the `wobble drill` commands that need no lab work."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli import app
from lab.drill import scenario
from lab.drill.runner import SETTLE_MAX_S

NAMES = {
    "latency-spike",
    "jitter-storm",
    "carrier-loss",
    "dns-timeouts",
    "stale-resolvers",
    "api-throttling",
    "crm-slow",
    "idp-down",
    "options-blackhole",
    "flapping-region",
    "sbc-crash",
    "region-crash",
    "region-partition",
    "control-plane-down",
    "manual-failover",
    "carrier-path-impaired",
    "region-loss-rpo",
}
LIBRARY = scenario.library()


def test_the_library_has_every_drill_of_the_issue() -> None:
    assert {p.stem for p in LIBRARY} == NAMES


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_each_scenario_loads_and_is_short(path: Path) -> None:
    scn = scenario.load(path)
    worst = scn.planned_s(min(SETTLE_MAX_S, scn.load.hold_s * 3 + 5))
    assert worst <= 150, f"{scn.name} may run {worst:.0f} s; keep a drill under 2.5 minutes"
    assert scn.slos.items(), "a drill without SLOs proves nothing"
    assert any(name == "false_failovers_max" for _, name, _ in scn.slos.items())
    assert scn.load.cps <= 3, "the reference machine has 2 cores: 2-3 CPS"


def test_the_library_fits_a_nightly_run() -> None:
    """Nominal length: everything planned, the recovery taking its window (not its whole wait)."""
    total = 0.0
    for p in LIBRARY:
        scn = scenario.load(p)
        total += scn.planned_s(5.0) - scn.recovery.wait_s + scn.recovery.window_s
    assert total <= 30 * 60 - 120, f"the library's nominal length is {total / 60:.1f} min"


def test_region_crash_is_what_make_drill_runs() -> None:
    scn = scenario.load(scenario.resolve("region-crash"))
    assert len(scn.slos.items()) >= 4 and scn.method[0].kind == "region_down"
    assert "SCENARIO ?= region-crash" in Path("Makefile").read_text()


def test_cli_validate_and_list(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["drill", "validate", "region-crash", "drills/sbc-crash.yaml"])
    assert r.exit_code == 0, r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text((Path("drills") / "sbc-crash.yaml").read_text().replace("kind: kill", "kind: lossy"))
    r = CliRunner().invoke(app, ["drill", "validate", str(bad)])
    assert r.exit_code == 2
    assert "method[0].kind: unknown fault 'lossy'; allowed:" in r.output
    r = CliRunner().invoke(app, ["drill", "run", "no-such-drill"])
    assert r.exit_code == 2 and "unknown scenario 'no-such-drill'" in r.output
    r = CliRunner().invoke(app, ["drill", "list"])
    assert r.exit_code == 0 and "region-crash" in r.output
