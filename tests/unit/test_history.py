"""Recovery of calls a dead load run left open (core.history): every invoke ends with exactly one
completion, completed calls are never touched, live runs are left alone, twice closes nothing new."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from core import events, history, paths, schema
from tests.helpers import logged

RUNS = ("r1", "r2", "r3")
COMPLETIONS = schema.LOAD_COMPLETIONS


def _invoke(run: str, call_id: str, ts: float) -> dict[str, Any]:
    inv = schema.invoke_record(run, call_id, ts, f"sip:support@10.77.0.11:5060;{call_id}", "http", 1, 3.0)
    return {"ts": ts, "kind": "load_invoke", **inv}


def _completion(kind: str, run: str, call_id: str, ts: float) -> dict[str, Any]:
    status = kind.removeprefix("load_")
    rec = schema.core_record(run_id=run, call_id=call_id, status=status, end_reason="caller_bye")
    return {"ts": ts, "kind": kind, **rec}


# A history: calls (run, completion kind or None), their events shuffled except that a call's
# invoke always comes before its completion (one writer thread per run), plus unrelated events.
call_st = st.tuples(st.sampled_from(RUNS), st.one_of(st.none(), st.sampled_from(COMPLETIONS)))


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    calls = draw(st.lists(call_st, max_size=40))
    pending: list[list[dict[str, Any]]] = []
    for n, (run, kind) in enumerate(calls):
        call_id = f"l{n:012x}"
        evs = [_invoke(run, call_id, float(n))]
        if kind is not None:
            evs.append(_completion(kind, run, call_id, float(n) + 0.5))
        pending.append(evs)
    noise = draw(st.integers(0, 5))
    pending += [[{"ts": 0.0, "kind": "agent_call", "call_id": f"l{i:012x}"}] for i in range(noise)]
    out: list[dict[str, Any]] = []
    while pending:  # interleave the calls, each call's own events in order
        i = draw(st.integers(0, len(pending) - 1))
        out.append(pending[i].pop(0))
        if not pending[i]:
            pending.pop(i)
    return out


def _completions(evs: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["call_id"] for e in evs if e["kind"] in COMPLETIONS)


@given(hist=histories(), live=st.sets(st.sampled_from(RUNS)))
@settings(max_examples=200, deadline=None)
def test_every_invoke_ends_with_exactly_one_completion(hist: list[dict[str, Any]], live: set[str]) -> None:
    invokes = {e["call_id"]: e for e in hist if e["kind"] == "load_invoke"}
    before = _completions(hist)
    recovered = history.recover(hist, live_runs=live, recovered_by="test")
    closed = [r["call_id"] for r in recovered]
    # completed calls are untouched, live runs' calls are left open, nothing closed twice
    assert not set(closed) & set(before) and len(closed) == len(set(closed))
    assert all(invokes[c]["run_id"] not in live for c in closed)
    after = hist + [{"ts": 99.0, "kind": "load_info", **r} for r in recovered]
    done = _completions(after)
    for call_id, inv in invokes.items():
        expected = 0 if inv["run_id"] in live and call_id not in before else 1
        assert done[call_id] == expected, (call_id, inv["run_id"], live)
    # idempotent: with the recovered records appended, nothing more to close
    assert history.recover(after, live_runs=live) == []
    # once those runs are over too, what is left is exactly their open calls
    assert {r["call_id"] for r in history.recover(after)} == {
        c for c, inv in invokes.items() if inv["run_id"] in live and c not in before
    }
    everything = hist + [{"ts": 99.0, "kind": "load_info", **r} for r in history.recover(hist)]
    assert set(_completions(everything).values()) <= {1} and set(_completions(everything)) == set(invokes)
    for r in recovered:
        inv = invokes[r["call_id"]]
        assert r["status"] == "info" and r["end_reason"] == "recovered" and r["recovered_by"] == "test"
        assert (r["run_id"], r["target"], r["t_invoke"], r["hold_s"]) == (
            inv["run_id"],
            inv["target"],
            inv["t_invoke"],
            inv["hold_s"],
        )
        assert tuple(r)[: len(schema.CORE_FIELDS)] == schema.CORE_FIELDS and r["schema"] == schema.SCHEMA_VERSION


@given(hist=histories(), cut=st.floats(0, 45))
@settings(max_examples=100, deadline=None)
def test_invokes_written_after_the_cut_are_left_open(hist: list[dict[str, Any]], cut: float) -> None:
    recovered = history.recover(hist, before=cut)
    assert all(r["t_invoke"] < cut for r in recovered)
    assert {r["call_id"] for r in recovered} == {e["call_id"] for e in history.open_invokes(hist) if e["ts"] < cut}


def test_open_invokes_ignores_completion_order_and_other_kinds() -> None:
    hist = [
        _completion("load_ok", "r1", "a", 1.0),  # never written so, but a completion is a completion
        _invoke("r1", "a", 0.5),
        _invoke("r1", "b", 2.0),
        {"kind": "call_invoke", "call_id": "c"},
        {"kind": "load_invoke"},  # torn / foreign: no call_id
    ]
    assert [e["call_id"] for e in history.open_invokes(hist)] == ["b"]


def test_recover_log_closes_dead_runs_leaves_live_ones_and_is_idempotent(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    for run, call_id in (("dead", "l1"), ("dead", "l2"), ("alive", "l3"), ("done", "l4")):
        events.append(
            events.LoadInvoke.of(schema.invoke_record(run, call_id, 1.0, "sip:x@10.77.0.12", "ttl", 0, 2.0)), log
        )
    events.append(events.LoadOk.of(schema.core_record(run_id="done", call_id="l4", status="ok")), log)
    with history.RunLock(log, "alive") as lock:
        assert lock.path == tmp_path / "runs" / "alive.lock" and lock.path.exists()
        assert history.live_runs(log) == {"alive"}
        first = history.recover_log(log, recovered_by="cli")
        assert sorted(r["call_id"] for r in first.closed) == ["l1", "l2"] and first.still_running == 1
        again = history.recover_log(log, recovered_by="cli")
        assert again.closed == [] and again.still_running == 1
    assert not lock.path.exists() and history.live_runs(log) == set()
    last = history.recover_log(log, recovered_by="load:next")  # the run is over (or died): close it
    assert [r["call_id"] for r in last.closed] == ["l3"] and last.closed[0]["recovered_by"] == "load:next"
    infos = [e for e in logged(log) if e["kind"] == "load_info"]
    assert sorted(e["call_id"] for e in infos) == ["l1", "l2", "l3"]
    assert all(e["end_reason"] == "recovered" and e["status"] == "info" for e in infos)
    assert history.recover_log(log, recovered_by="cli").closed == []


def test_a_killed_runs_lock_file_does_not_keep_it_alive(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "killed.lock").touch()  # what SIGKILL leaves: the file, no lock
    events.append(events.LoadInvoke.of(schema.invoke_record("killed", "l9", 1.0, None, "http", None)), log)
    assert history.live_runs(log) == set()
    assert [r["call_id"] for r in history.recover_log(log, "cli").closed] == ["l9"]


@pytest.mark.parametrize("as_json", [True, False])
def test_cli_events_recover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    from lab.cli import app

    log = tmp_path / "events.jsonl"
    monkeypatch.setattr(paths, "EVENTS", log)
    events.append(events.LoadInvoke.of(schema.invoke_record("gone", "l7", 1.0, "sip:x@h", "http", 0, 1.0)), log)
    args = ["events", "recover", *(["--json"] if as_json else [])]
    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    if as_json:
        assert json.loads(first.stdout) == {"closed": 1, "call_ids": ["l7"], "still_running": 0}
        assert json.loads(second.stdout)["closed"] == 0
    else:
        assert first.stdout.startswith("closed 1 open calls") and second.stdout.startswith("closed 0 open calls")
