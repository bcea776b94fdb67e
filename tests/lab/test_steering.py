"""Steering against the real lab: a dead SBC is declared DOWN, calls follow, and come back."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from core import dockerctl, paths
from core.topology import Topology
from lab.steering import client
from tests.helpers import logged, wait_until
from tests.lab.conftest import last_json, run_wobble, state


def post(path: str, body: dict[str, Any], token: str | None) -> int:
    req = urllib.request.Request(
        Topology.default().steering_url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_both_regions_up_and_config_live(lab_up: None) -> None:
    snap = state()
    assert {n: r["state"] for n, r in snap["regions"].items()} == {"region-a": "UP", "region-b": "UP"}
    assert snap["config"] == "live" and snap["mode"] == "auto"


def test_operator_actions_need_the_token(lab_up: None) -> None:
    before = state()["mode"]
    assert post("/v1/mode", {"mode": "manual"}, None) == 401
    assert post("/v1/mode", {"mode": "manual"}, "not-the-token") == 401
    assert post("/v1/failover", {"to": "region-b"}, "not-the-token") == 401
    assert state()["mode"] == before


def test_openapi_and_metrics(lab_up: None) -> None:
    doc = client.request("/v1/openapi.json")
    assert {"/v1/route", "/v1/state", "/v1/failover", "/v1/mode"} <= set(doc["paths"])
    with urllib.request.urlopen(Topology.default().steering_url + "/metrics", timeout=3) as resp:
        text = resp.read().decode()
    assert 'wobble_steering_region_state{region="region-a",state="UP"} 1.0' in text
    assert "wobble_steering_probe_latency_seconds_bucket" in text


def test_sbc_down_calls_follow_then_fail_back_after_hold(stopped: list[str]) -> None:
    sbc = dockerctl.service_container("sbc-a")
    stopped.append("sbc-a")
    t0 = time.monotonic()
    sbc.stop(timeout=0)
    wait_until(lambda: state()["regions"]["region-a"]["state"] == "DOWN", 4.0, lambda: f"region-a DOWN: {state()}", 0.1)
    detected = time.monotonic() - t0
    assert client.request("/v1/route")["region"] == "region-b"
    assert client.srv_targets()[0].region == "region-b"
    for steer in ("http", "dns", "http", "dns"):
        rec = last_json(run_wobble("call", "--hold", "1", "--steer", steer, "--json").stdout)
        assert rec["final_code"] == 200 and rec["region"] == "region-b", rec
    down_since = state()["regions"]["region-a"]["since"]
    sbc.start()
    stopped.remove("sbc-a")
    wait_until(lambda: state()["regions"]["region-a"]["state"] == "UP", 60, lambda: f"region-a UP: {state()}", 0.2)
    snap = state()
    hold = snap["regions"]["region-a"].get("hold_s", 0)
    assert snap["regions"]["region-a"]["since"] - down_since >= hold  # never back before the hold time
    # slow start: region-a begins at a tenth of its weight, so allow it a number of calls
    for _ in range(20):
        if last_json(run_wobble("call", "--hold", "1", "--json").stdout)["region"] == "region-a":
            break
    else:
        pytest.fail("no new call reached region-a after it returned to UP")
    print(f"detected in {detected:.2f} s")


def test_config_api_down_keeps_routing_on_last_known_good(stopped: list[str]) -> None:
    api = dockerctl.service_container("config-api")
    stopped.append("config-api")
    api.stop(timeout=0)
    wait_until(lambda: state()["config"] == "last-known-good", 5, lambda: f"last-known-good: {state()}", 0.1)
    rec = last_json(run_wobble("call", "--hold", "1", "--json").stdout)
    assert rec["final_code"] == 200
    api.start()
    stopped.remove("config-api")
    wait_until(lambda: state()["config"] == "live", 10, lambda: f"the live config: {state()}", 0.1)


def test_manual_mode_only_the_operator_moves_traffic(lab_up: None) -> None:
    proc = run_wobble("steering", "mode", "manual")
    assert proc.returncode == 0, proc.stderr
    try:
        assert state()["mode"] == "manual"
        proc = run_wobble("failover", "--to", "region-b")
        assert proc.returncode == 0, proc.stderr
        assert all(client.request("/v1/route")["region"] == "region-b" for _ in range(10))
        rec = last_json(run_wobble("call", "--hold", "1", "--json").stdout)
        assert rec["final_code"] == 200 and rec["region"] == "region-b"
        bad = run_wobble("failover", "--to", "region-z")
        assert bad.returncode != 0 and "unknown region 'region-z'" in bad.stderr.strip().splitlines()[-1]
    finally:
        run_wobble("failover", "--release")
        run_wobble("steering", "mode", "auto")
    assert state()["mode"] == "auto"
    decisions = [e for e in logged(paths.EVENTS) if e.get("kind") == "steering_decision"]
    assert any(d.get("rule") == "operator-failover" and d.get("approved_by") for d in decisions[-10:]), decisions[-3:]
