"""lab.drill.report: the report set from a hand-built run, offline HTML with matplotlib plots, JUnit per SLO."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from lab.drill import measure, report, verdict
from tests.unit.drill_logs import T0, agent_call, call, decision, fault, login

A, B = "region-a", "region-b"


def _run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    evs: list[dict[str, Any]] = []
    for i in range(80):
        t = i / 2
        evs.append(call(t, "fail", region=None, steered=A) if 15 <= t < 16 else call(t, region=B if t >= 15 else A))
    evs.append(call(13, "fail", fate="dropped", end_reason="media_timeout", hold=10))
    evs += fault("f1", "kill", "sbc-a", 15, 30)
    evs += [decision(15.9, A, "UP", "SUSPECT"), decision(15.9, A, "SUSPECT", "DOWN")]
    evs += [login(2, True), agent_call(5, "ok"), agent_call(20, "fallback")]
    faults = measure.fault_windows(evs, ["f1"])
    m = measure.run_metrics(evs, faults, T0, T0 + 40, window_s=5, ratio=0.9, grace_s=5)
    slos = verdict.evaluate_slos(
        [
            ("critical", "rto_max_s", 10.0),
            ("critical", "failed_new_calls_max", 1.0),
            ("critical", "false_failovers_max", 0.0),
            ("supporting", "screen_pop_fallback_max", 0.9),
        ],
        m,
    )
    proofs = [verdict.fault_proof(f, measure.call_records(evs), measure.decisions(evs), [A, B]) for f in faults]
    v, why = verdict.decide(slos=slos, faults=proofs, harness_invalid=False, steady_before=None, steady_after=None)
    summary = report.build_summary(
        scenario="region-crash",
        description="d",
        seed=13,
        commit="abc123",
        verdict=v,
        reason=why,
        t0=T0,
        t_end=T0 + 40,
        metrics=m,
        slos=slos,
        faults=proofs,
        phases=[{"t": T0 + 10, "phase": "method"}],
    )
    return evs, summary


def test_the_report_set(tmp_path: Path) -> None:
    evs, summary = _run()
    out = report.write_all(report.results_dir(tmp_path, "region-crash", T0), evs, [{"t": 1}], summary)
    assert out.name == "20231114T221320Z-region-crash"
    for f in ("events.jsonl", "timeline.json", "summary.json", "junit.xml", "report.html"):
        assert (out / f).exists(), f
    s = json.loads((out / "summary.json").read_text())
    assert s["verdict"] == "fail" and s["seed"] == 13 and s["commit"] == "abc123"  # 2 failed new calls > 1
    for k in ("rto_s", "failed_new_calls", "harness_failed", "false_failovers"):
        assert isinstance(s["metrics"][k], int | float), k
    assert set(s["metrics"]["inflight"]) >= {"survived", "dropped", "one_way", "silent"}
    assert all({"name", "value", "limit", "pass"} <= set(x) for x in s["slos"])
    assert s["faults"][0]["took_effect"] is True and s["faults"][0]["clean_after"] is True
    assert len((out / "events.jsonl").read_text().splitlines()) == len(evs)
    cases = list(ET.parse(out / "junit.xml").getroot().iter("testcase"))
    assert len(cases) >= len(s["slos"])
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["failed_new_calls_max"]
    assert failed[0].find("failure").get("message") == "failed_new_calls_max: 2 > 1 (limit)"  # type: ignore[union-attr]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert not re.search(r'src="https?://|href="https?://', page)
    assert "Who decided failover" in page and "consecutive-failures-both-vantages" in page
    assert report.results_dir(tmp_path, "region-crash", T0).name.endswith(".2")  # a second run, same second


def test_three_questions_in_plain_words() -> None:
    _, summary = _run()
    q = report.three_questions(summary)
    assert "marked region-a DOWN by rule `consecutive-failures-both-vantages`" in q["who_decided"]
    assert "Detection took 0.9 s" in q["who_decided"]
    assert "1 dropped" in q["what_was_lost"] and "2 new calls failed" in q["what_was_lost"]
    assert "(RTO)" in q["what_worked"]
    quiet = report.three_questions({"metrics": {}, "steering": {}})
    assert quiet["who_decided"].startswith("Nobody failed over")


def test_junit_marks_an_invalid_run_as_an_error() -> None:
    _, summary = _run()
    summary["verdict"], summary["reason"] = "invalid", "fault kill on sbc-a never took effect"
    root = ET.fromstring(report.junit_xml(summary))
    errors = list(root.iter("error"))
    assert errors and "never took effect" in (errors[0].get("message") or "")


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no chromium here")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    evs, summary = _run()
    out = report.write_all(tmp_path / "run", evs, [], summary)
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    dom = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", (out / "report.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert dom.count("<img") == 3 and "data:image/png" in dom
