"""The supporting tier's services (IdP, CRM) through aiohttp's test client, and the agents' login
client against them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents import login as loginmod
from lab.deps import crm, idp
from tests.helpers import logged

Check = Callable[[TestClient[Any, Any]], Awaitable[None]]


def with_client(app: web.Application, fn: Check) -> None:
    async def main() -> None:
        async with TestClient(TestServer(app)) as client:
            await fn(client)

    asyncio.run(main())


@pytest.fixture(autouse=True)
def events_to_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv("WOBBLE_EVENTS", str(path))
    return path


# ------------------------------------------------------------------------------------------ IdP


def test_login_ok_then_verify() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/v1/login", json={"agent": "a-001", "secret": "s3"})
        assert resp.status == 200
        body = await resp.json()
        assert body["expires_in"] == 3600 and isinstance(body["token"], str) and len(body["token"]) > 20
        resp = await client.get("/v1/verify", headers={"Authorization": f"Bearer {body['token']}"})
        assert resp.status == 200 and (await resp.json())["agent"] == "a-001"
        other = await (await client.post("/v1/login", json={"agent": "a-002", "secret": "s3"})).json()
        assert other["token"] != body["token"]

    with_client(idp.make_app(secret="s3"), check)


@pytest.mark.parametrize("secret", ["wrong", "", "s3 "])
def test_login_bad_secret_is_401_json(secret: str) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/v1/login", json={"agent": "a-001", "secret": secret})
        assert resp.status == 401 and "error" in await resp.json()

    with_client(idp.make_app(secret="s3"), check)


@pytest.mark.parametrize("body", [None, [], {"agent": "a-001"}, {"secret": "s3"}, {"agent": "", "secret": "s3"}])
def test_login_malformed_is_400(body: Any) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/v1/login", data=b"{not json" if body is None else None, json=body)
        assert resp.status == 400 and "error" in await resp.json()

    with_client(idp.make_app(secret="s3"), check)


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic abc", "token"])
def test_verify_rejects_missing_or_unknown_tokens(header: str | None) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.get("/v1/verify", headers={"Authorization": header} if header else {})
        assert resp.status == 401 and "error" in await resp.json()

    with_client(idp.make_app(), check)


def test_tokens_expire() -> None:
    now = [100.0]
    app = idp.make_app(ttl_s=60, clock=lambda: now[0])

    async def check(client: TestClient[Any, Any]) -> None:
        token = (await (await client.post("/v1/login", json={"agent": "a", "secret": "wobble"})).json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        now[0] += 59
        assert (await client.get("/v1/verify", headers=auth)).status == 200
        now[0] += 2
        assert (await client.get("/v1/verify", headers=auth)).status == 401

    with_client(app, check)


def test_idp_health_and_metrics() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        assert (await client.get("/healthz")).status == 200
        await client.post("/v1/login", json={"agent": "a-001", "secret": "wobble"})
        await client.post("/v1/login", json={"agent": "a-001", "secret": "x"})
        text = await (await client.get("/metrics")).text()
        assert 'wobble_idp_logins_total{result="ok"} 1.0' in text
        assert 'wobble_idp_logins_total{result="denied"} 1.0' in text
        assert "wobble_idp_login_latency_seconds_count 2.0" in text

    with_client(idp.make_app(), check)


# ------------------------------------------------------------------------------------------ CRM


def test_screenpop_card_shape_and_determinism() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.get("/v1/screenpop/w0123abcd")
        assert resp.status == 200
        card = await resp.json()
        assert set(card) == {"caller", "name", "tier", "open_tickets", "last_contact"}
        assert card["caller"] == "w0123abcd" and card["tier"] in ("standard", "gold", "platinum")
        assert 0 <= card["open_tickets"] < 5 and len(card["last_contact"]) == 10
        assert await (await client.get("/v1/screenpop/w0123abcd")).json() == card
        assert card == crm.card_for("w0123abcd")

    with_client(crm.make_app(), check)
    # A fresh CRM (another replica, a restart) gives the same card; callers differ.
    with_client(crm.make_app(), lambda c: _same_card(c, "w0123abcd"))
    cards = [crm.card_for(f"c{i}") for i in range(50)]
    assert len({(c["name"], c["tier"], c["open_tickets"], c["last_contact"]) for c in cards}) > 40


async def _same_card(client: TestClient[Any, Any], caller: str) -> None:
    assert await (await client.get(f"/v1/screenpop/{caller}")).json() == crm.card_for(caller)


def test_screenpop_odd_caller_ids() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        assert (await client.get("/v1/screenpop/%2B4930123")).status == 200
        assert (await (await client.get("/v1/screenpop/%2B4930123")).json())["caller"] == "+4930123"
        assert (await client.get("/v1/screenpop/" + "x" * 200)).status == 400
        assert (await client.get("/v1/screenpop/")).status == 404

    with_client(crm.make_app(), check)


def test_crm_health_and_metrics() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        assert (await client.get("/healthz")).status == 200
        await client.get("/v1/screenpop/a")
        await client.get("/v1/screenpop/b")
        text = await (await client.get("/metrics")).text()
        assert 'wobble_crm_requests_total{code="200",endpoint="/v1/screenpop/{caller}"} 2.0' in text
        assert 'wobble_crm_request_latency_seconds_count{endpoint="/v1/screenpop/{caller}"} 2.0' in text

    with_client(crm.make_app(), check)


# ---------------------------------------------------------------------------- agents' login client


def test_login_client_ok_and_denied(events_to_tmp: Path) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        url = str(client.make_url("/")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            ok = await loginmod.login(session, url, "a-001", "wobble", 2.0)
            bad = await loginmod.login(session, url, "a-001", "nope", 2.0)
        assert ok.ok and ok.token and ok.error is None and ok.expires_in == 3600 and ok.latency_ms >= 0
        assert not bad.ok and bad.token is None and bad.error is not None and bad.error.startswith("http 401")

    with_client(idp.make_app(), check)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on return: nothing listens there


def test_login_client_unreachable_and_timeout() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/login", slow)

    async def check(client: TestClient[Any, Any]) -> None:
        url = str(client.make_url("/")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            late = await loginmod.login(session, url, "a-001", "wobble", 0.2)
            dead = await loginmod.login(session, f"http://127.0.0.1:{_closed_port()}", "a-001", "wobble", 1.0)
        assert not late.ok and late.error == "timeout after 0.2 s" and 150 < late.latency_ms < 1500
        assert not dead.ok and dead.error and "Connect" in dead.error

    with_client(app, check)


def test_login_until_ok_retries_and_records_each_attempt(events_to_tmp: Path) -> None:
    """The IdP fails twice (503), then the third attempt logs in; every attempt is an event."""
    inner = idp.make_app()
    calls = [0]

    async def flaky(request: web.Request) -> web.StreamResponse:
        calls[0] += 1
        if calls[0] <= 2:
            return web.json_response({"error": "overloaded"}, status=503)
        return await idp.login(request)

    app = web.Application()
    app[idp.STATE] = inner[idp.STATE]
    app.router.add_post("/v1/login", flaky)
    seen: list[bool] = []

    async def check(client: TestClient[Any, Any]) -> None:
        url = str(client.make_url("/")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            res = await loginmod.login_until_ok(
                session, url, "a-007", "wobble", "region-b", retry_s=0.05, on_attempt=lambda r: seen.append(r.ok)
            )
        assert res.ok and res.token

    with_client(app, check)
    assert seen == [False, False, True]
    evs = [e for e in logged(events_to_tmp) if e["kind"] == "agent_login"]
    assert [e["ok"] for e in evs] == [False, False, True]
    assert all(e["agent"] == "a-007" and e["region"] == "region-b" and e["relogin"] is False for e in evs)
    assert evs[0]["error"] == "http 503: overloaded" and evs[2]["error"] is None
    assert all(isinstance(e["latency_ms"], float) for e in evs)
    assert "token" not in evs[2]


def test_relogin_delay() -> None:
    assert loginmod.relogin_delay(None) is None and loginmod.relogin_delay(0) is None
    assert loginmod.relogin_delay(3600) == 2880.0 and loginmod.relogin_delay(10) == 30.0
