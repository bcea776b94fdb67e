"""Scenario files: valid ones load; every problem names the file, the line and the field, and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import BadInput
from lab.drill import scenario
from lab.drill.scenario import ScenarioError

GOOD = """\
name: demo
description: a crash of sbc-a
seed: 7
load:
  cps: 2
  steer: {http: 3, sticky: 1}
method:
  - kind: kill
    target: sbc-a
    at: 5s
    for: 30s
  - kind: loss
    target: media-b
    at: 10
    for: 20
    pct: 10
abort:
  - {metric: new_call_success, region: region-b, below: 0.5, for_s: 10}
slos:
  critical: {rto_max_s: 15, false_failovers_max: 0}
  supporting: {agent_login_success_min: 0.9}
"""


def _write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        scenario.load(_write(tmp_path, text))
    return info.value.problems


def test_a_good_scenario_loads(tmp_path: Path) -> None:
    scn = scenario.load(_write(tmp_path, GOOD))
    assert scn.method[0].for_s == 30.0 and scn.method[0].at == 5.0
    assert scn.method[1].params == {"pct": 10}
    assert scn.load.shares() == {"http": 0.75, "sticky": 0.25}
    assert scn.slos.items() == [
        ("critical", "rto_max_s", 15.0),
        ("critical", "false_failovers_max", 0.0),
        ("supporting", "agent_login_success_min", 0.9),
    ]
    assert scn.method_span_s == 35.0
    assert scn.recovery_ratio == 0.95


def test_unknown_fault_names_file_line_field_and_allowed(tmp_path: Path) -> None:
    (p,) = _problems(tmp_path, GOOD.replace("kind: loss", "kind: lossy"))
    assert p.startswith(f"{tmp_path / 'demo.yaml'}:12: method[1].kind: unknown fault 'lossy'; allowed: ")
    assert "loss" in p and "delay" in p


def test_unknown_target(tmp_path: Path) -> None:
    (p,) = _problems(tmp_path, GOOD.replace("target: sbc-a", "target: sbc-z"))
    assert ":9: method[0].target: kill cannot target 'sbc-z'; targets for kill: " in p


def test_unknown_fault_parameter_points_at_its_line(tmp_path: Path) -> None:
    (p,) = _problems(tmp_path, GOOD.replace("pct: 10", "pctt: 10"))
    assert ":16: method[1].pctt:" in p


def test_unknown_slo_and_tier(tmp_path: Path) -> None:
    (p,) = _problems(tmp_path, GOOD.replace("rto_max_s: 15", "rto_max: 15"))
    assert ":20: slos.critical.rto_max: unknown SLO 'rto_max'; allowed: rto_max_s, new_call_success_min" in p
    (p,) = _problems(tmp_path, GOOD.replace("supporting:", "support:"))
    assert ":21: slos.support: unknown tier 'support'; allowed: critical, supporting, records" in p


def test_unknown_top_level_key_steer_mode_region_and_duration(tmp_path: Path) -> None:
    (p,) = _problems(tmp_path, GOOD + "extra: 1\n")
    assert ":22: extra: unknown field 'extra'; allowed: name, description, seed" in p
    (p,) = _problems(tmp_path, GOOD.replace("sticky: 1", "stale: 1"))
    assert ":6: load.steer.stale: 'stale' is not allowed; allowed: 'http', 'ttl' or 'sticky'" in p
    (p,) = _problems(tmp_path, GOOD.replace("region: region-b", "region: region-q"))
    assert ":18: abort[0].region: unknown region 'region-q'; allowed: region-a, region-b" in p
    (p,) = _problems(tmp_path, GOOD.replace("at: 5s", "at: soon"))
    assert ":10: method[0].at: 'soon' is not a duration" in p


def test_missing_fields_and_bad_yaml(tmp_path: Path) -> None:
    probs = _problems(tmp_path, "name: demo\ndescription: x\nseed: 1\n")
    assert any(p.endswith(": load: required; give load") for p in probs)
    assert any(": method: required" in p for p in probs)
    (p,) = _problems(tmp_path, "name: demo\n  bad: [\n")
    assert "not valid YAML" in p
    (p,) = _problems(tmp_path, GOOD + "seed: 8\n")
    assert ":22: seed: given twice" in p


def test_name_must_be_the_file_name(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r":1: name: 'demo' must be the file's name 'other'"):
        scenario.load(_write(tmp_path, GOOD, "other"))


def test_abort_needs_one_bound_and_rpo_needs_a_region(tmp_path: Path) -> None:
    (p,) = _problems(tmp_path, GOOD.replace("below: 0.5, ", ""))
    assert "abort[0]: give exactly one of below or above" in p
    (p,) = _problems(tmp_path, GOOD + "  records: {rpo_max_records: 3}\n")
    assert "slos.records.rpo_max_records: needs records.reconcile_region" in p


def test_resolve_name_or_file(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    assert scenario.resolve("demo", tmp_path) == tmp_path / "demo.yaml"
    assert scenario.resolve(str(tmp_path / "demo.yaml"), tmp_path) == tmp_path / "demo.yaml"
    with pytest.raises(BadInput, match="unknown scenario 'nope'; known: demo"):
        scenario.resolve("nope", tmp_path)
