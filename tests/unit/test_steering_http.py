"""Steering's HTTP face through aiohttp's test client: tokens, bad bodies, routing answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lab.steering import config as configmod
from lab.steering.http import make_app
from lab.steering.service import Steering

TOKEN = "t0ken"


def with_client(fn: Callable[[TestClient[Any, Any], Steering], Awaitable[None]]) -> None:
    async def main() -> None:
        steering = Steering(configmod.load(), None, None)
        async with TestClient(TestServer(make_app(steering, TOKEN))) as client:
            await fn(client, steering)

    asyncio.run(main())


@pytest.fixture(autouse=True)
def events_to_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WOBBLE_EVENTS", str(tmp_path / "events.jsonl"))


def test_route_and_state() -> None:
    async def check(client: TestClient[Any, Any], steering: Steering) -> None:
        route = await (await client.get("/v1/route")).json()
        assert route["region"] in ("region-a", "region-b") and route["ttl"] == 5
        assert route["uri"] == f"sip:support@{route['sbc']}:5060"
        state = await (await client.get("/v1/state")).json()
        assert state["mode"] == "auto" and state["config"] == "last-known-good"
        assert set(state["regions"]) == {"region-a", "region-b"}

    with_client(check)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "t0ken"}])
def test_operator_calls_without_the_token_are_401_and_change_nothing(headers: dict[str, str]) -> None:
    async def check(client: TestClient[Any, Any], steering: Steering) -> None:
        resp = await client.post("/v1/mode", json={"mode": "manual"}, headers=headers)
        assert resp.status == 401
        resp = await client.post("/v1/failover", json={"to": "region-b"}, headers=headers)
        assert resp.status == 401
        assert steering.policy.mode == "auto" and steering.policy.pinned is None

    with_client(check)


def test_failover_with_token_pins_routing_and_is_logged(tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def check(client: TestClient[Any, Any], steering: Steering) -> None:
        resp = await client.post("/v1/failover", json={"to": "region-b", "who": "alice"}, headers=auth)
        assert resp.status == 200
        routes = {(await (await client.get("/v1/route")).json())["region"] for _ in range(20)}
        assert routes == {"region-b"}
        assert (await client.post("/v1/failover", json={"to": "mars"}, headers=auth)).status == 400
        assert (await client.post("/v1/failover", json={"approve": True}, headers=auth)).status == 409
        assert (await client.post("/v1/mode", json={"mode": "sideways"}, headers=auth)).status == 400
        assert (await client.post("/v1/mode", data=b"not json", headers=auth)).status == 400

    with_client(check)
    log = (tmp_path / "events.jsonl").read_text()
    assert '"rule":"operator-failover"' in log and '"approved_by":"alice"' in log


def test_probe_reports_feed_the_policy() -> None:
    async def check(client: TestClient[Any, Any], steering: Steering) -> None:
        import time

        now = time.time()
        results = [{"t": now + i * 0.2, "region": "region-a", "ok": True, "latency_ms": 1.0} for i in range(3)]
        results.append({"t": now, "region": "nowhere", "ok": True})
        resp = await client.post("/v1/probes", json={"vantage": "carrier", "results": results})
        assert (await resp.json())["accepted"] == 3
        assert (await client.post("/v1/evidence", json={"region": "mars", "ok": True})).status == 400

    with_client(check)
