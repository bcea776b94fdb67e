"""lab.cli: every `wobble` command exits by one convention (core.exitcodes), seen through the CLI."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

import lab.cli
from core.errors import BadInput, DockerUnavailable, LabNotUp, WobbleError
from core.exitcodes import Exit
from lab import lifecycle
from lab.cli import app, run
from lab.steering import client as steering_client

runner = CliRunner()


def test_the_codes_are_the_convention() -> None:
    assert [(e.name, e.value) for e in Exit] == [
        ("PASS", 0),
        ("FAILED", 1),
        ("BAD_INPUT", 2),
        ("LAB_NOT_UP", 3),
        ("ABORTED", 4),
        ("INCOMPLETE", 5),
    ]


def test_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "running_services", dict)
    assert runner.invoke(app, ["status", "--json"]).exit_code == Exit.PASS


def test_a_failed_call_is_a_failed_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    def rejected(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"final_code": 486, "region": "region-a", "agent": None, "mos": None, "cdr_id": None}

    monkeypatch.setattr(lab.cli, "place_call", rejected)
    assert runner.invoke(app, ["call", "--json"]).exit_code == Exit.FAILED


def test_a_failed_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise WobbleError("steering refused the operator token")

    monkeypatch.setattr(steering_client, "request", refused)
    res = runner.invoke(app, ["steering", "mode", "auto"])
    assert res.exit_code == Exit.FAILED and res.stderr.startswith("error: steering refused")


def test_bad_input() -> None:
    res = runner.invoke(app, ["failover"])
    assert res.exit_code == Exit.BAD_INPUT and "exactly one of" in res.stderr
    assert runner.invoke(app, ["status", "--no-such-flag"]).exit_code == Exit.BAD_INPUT
    assert run(["status", "--no-such-flag"]) == Exit.BAD_INPUT


@pytest.mark.parametrize("error", [LabNotUp("steering does not answer"), DockerUnavailable("no docker daemon")])
def test_lab_not_up(monkeypatch: pytest.MonkeyPatch, error: WobbleError) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(steering_client, "request", down)
    assert runner.invoke(app, ["steering", "state"]).exit_code == Exit.LAB_NOT_UP


def test_aborted(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted() -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(lifecycle, "running_services", interrupted)
    assert run(["status"]) == Exit.ABORTED


def test_the_entry_point_returns_the_commands_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "running_services", dict)
    assert run(["status", "--json"]) == Exit.PASS
    assert run(["failover"]) == Exit.BAD_INPUT

    def bad(*args: Any, **kwargs: Any) -> Any:
        raise BadInput("unknown region 'region-z'")

    monkeypatch.setattr(lab.cli, "place_call", bad)
    assert run(["call", "--region", "region-z"]) == Exit.BAD_INPUT


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--cps", "-3"], "--cps"),
        (["--cps", "nan"], "--cps"),
        (["--duration", "0"], "--duration"),
        (["--hold-mean", "-1"], "--hold-mean"),
        (["--max-concurrent", "0"], "--max-concurrent"),
        (["--arrivals", "bursty"], "--arrivals"),
        (["--seed", "-1"], "--seed"),
        (["--steer", "carrier-pigeon"], "--steer"),
    ],
)
def test_load_bad_numbers_are_one_line_and_exit_2(flags: list[str], named: str) -> None:
    res = runner.invoke(app, ["load", *flags])
    assert res.exit_code == Exit.BAD_INPUT, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in res.output


def test_a_failed_load_run_prints_its_error_as_json_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import lab.load

    monkeypatch.setattr(lab.load, "run_load", lambda *a, **k: {"run_id": "r1", "error": "RuntimeError: boom"})
    res = runner.invoke(app, ["load", "--json"])
    assert res.exit_code == Exit.FAILED and json.loads(res.stdout.strip().splitlines()[-1])["error"]
