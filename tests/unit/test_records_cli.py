"""`wobble records ...`: bad input exits 2, no verdict 5 (core.exitcodes), each with one clear `error:` line
(CliRunner, no Docker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.exitcodes import Exit
from lab.cli import app
from lab.records import gather, sources
from lab.records.errors import DbMissing, DbUnreachable
from lab.records.reconcile import Records

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["records", *args])
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "events.jsonl"
    monkeypatch.setattr("core.paths.EVENTS", path)
    return path


def test_unknown_region(events: Path) -> None:
    code, _, err = run("reconcile", "--region", "region-z")
    assert code == 2 and "unknown region 'region-z'" in err


def test_region_down(events: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(cfg: object, ep: object) -> Records:
        raise DbUnreachable("db-a home (region-a's records, 10.77.1.70:5432) does not answer (timeout)")

    monkeypatch.setattr(sources, "read_live", down)
    code, out, err = run("reconcile", "--region", "region-a", "--json")
    assert code == Exit.INCOMPLETE and out == ""
    assert err.startswith("error: region region-a is down") and "surviving region" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_database(events: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(cfg: object, ep: object) -> Records:
        raise DbMissing("db-b home: database 'records' is missing; recreate its volume")

    monkeypatch.setattr(sources, "read_live", missing)
    code, _, err = run("reconcile", "--region", "region-b")
    assert code == Exit.INCOMPLETE and "database 'records' is missing" in err


def test_empty_event_log(events: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "read_live", lambda cfg, ep: Records())
    monkeypatch.setattr(sources, "created_at", lambda cfg, ep: 1_000.0)
    monkeypatch.setattr(gather, "origin_truth", lambda cfg, origin: (Records(), None))
    code, _, err = run("reconcile", "--region", "region-b", "--json")
    assert code == Exit.INCOMPLETE and "no calls in" in err and "place calls first" in err


def test_one_json_object_last_and_exit_1_when_a_committed_record_is_missing(
    events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events.write_text(
        json.dumps(
            {
                "kind": "call",
                "call_id": "w1",
                "t_invoke": 2_000.0,
                "region": "region-a",
                "fate": "survived",
                "duration_s": 3.0,
                "t_end": 2_004.0,
            }
        )
        + "\n"
    )
    monkeypatch.setattr(sources, "read_live", lambda cfg, ep: Records())
    monkeypatch.setattr(sources, "created_at", lambda cfg, ep: 1_000.0)
    monkeypatch.setattr(gather, "origin_truth", lambda cfg, origin: (Records(frozenset({"w1"})), None))
    code, out, _ = run("reconcile", "--region", "region-b", "--json")
    d = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and d["counts"]["committed_not_replicated"] == 1


def test_bad_since_and_bad_mode(events: Path) -> None:
    code, _, err = run("reconcile", "--region", "region-a", "--since", "yesterday")
    assert code == 2 and "--since 'yesterday'" in err
    code, _, err = run("mode", "fast")
    assert code == 2 and "async or sync" in err
