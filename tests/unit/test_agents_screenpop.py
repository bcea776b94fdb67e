"""The agents' screen pop: deadline, fallback, cache and circuit breaker against a scripted CRM
(fake clock), and one real call on loopback whose CRM is down: answered, card from the fallback."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agents import agent
from agents.model import CallOutcome
from agents.screenpop import CLOSED, HALF_OPEN, OPEN, Breaker, PopResult, ScreenPop
from lab.deps import crm
from tests.helpers import logged, skip_or_fail
from tests.unit.loopback import agent_calls, agents_cmd, agents_health, free_port, loopback_env, run_caller, wait_metric

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeCrm:
    """A CRM whose next answers are scripted: 'ok', 'late' (advances the fake clock 0.8 s),
    'slow' (really sleeps past the hard timeout), 500, 'garbage' (200 with a non-object body)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.mode = "ok"
        self.hits: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/v1/screenpop/{caller}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        caller = request.match_info["caller"]
        self.hits.append(caller)
        if self.mode == "500":
            return web.json_response({"error": "boom"}, status=500)
        if self.mode == "slow":
            await asyncio.sleep(1.0)
        if self.mode == "late":
            self.clock.advance(0.8)
        if self.mode == "garbage":
            return web.json_response([1, 2])
        return web.json_response(crm.card_for(caller))


Scenario = Callable[[ScreenPop, FakeCrm, FakeClock], Awaitable[None]]


def run(scenario: Scenario, **kw: Any) -> None:
    async def main() -> None:
        clock = FakeClock()
        fake = FakeCrm(clock)
        server = TestServer(fake.app)
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                opts: dict[str, Any] = {"hard_timeout_s": 0.3, "cooldown_s": 5.0, "clock": clock, **kw}
                pop = ScreenPop(session, str(server.make_url("/")), **opts)
                await scenario(pop, fake, clock)
        finally:
            await server.close()

    asyncio.run(main())


def test_ok_within_deadline() -> None:
    async def s(pop: ScreenPop, fake: FakeCrm, clock: FakeClock) -> None:
        res = await pop.fetch("w1")
        assert res.status == "ok" and res.ms == 0.0 and res.card == crm.card_for("w1") and res.error is None
        assert fake.hits == ["w1"] and pop.breaker.state == CLOSED

    run(s)


def test_late_answer_still_brings_the_card() -> None:
    async def s(pop: ScreenPop, fake: FakeCrm, clock: FakeClock) -> None:
        fake.mode = "late"
        res = await pop.fetch("w1")
        assert res.status == "late" and res.ms == 800.0 and res.card == crm.card_for("w1")
        assert pop.breaker.failures == 0  # slow is not broken

    run(s, deadline_ms=500)


def test_deadline_is_configurable() -> None:
    async def s(pop: ScreenPop, fake: FakeCrm, clock: FakeClock) -> None:
        fake.mode = "late"
        assert (await pop.fetch("w1")).status == "ok"

    run(s, deadline_ms=1000)


@pytest.mark.parametrize("mode", ["500", "slow", "garbage"])
def test_failure_falls_back_to_a_generic_card(mode: str) -> None:
    async def s(pop: ScreenPop, fake: FakeCrm, clock: FakeClock) -> None:
        fake.mode = mode
        res = await pop.fetch("w1")
        assert res.status == "fallback" and res.card is not None
        assert res.card["caller"] == "w1" and res.card["fallback"] is True and res.card["cached"] is False
        assert res.error == {"500": "http 500", "slow": "timeout after 0.3 s", "garbage": "not a JSON object"}[mode]
        assert pop.breaker.failures == 1

    run(s)


def test_fallback_uses_the_last_good_card_of_that_caller() -> None:
    async def s(pop: ScreenPop, fake: FakeCrm, clock: FakeClock) -> None:
        good = await pop.fetch("w1")
        fake.mode = "500"
        res = await pop.fetch("w1")
        assert res.status == "fallback" and res.card is not None and good.card is not None
        assert res.card == {**good.card, "fallback": True, "cached": True}
        other = await pop.fetch("w2")
        assert other.card is not None and other.card["cached"] is False and other.card["name"] == "Unknown caller"

    run(s)


def test_breaker_opens_after_three_failures_and_stops_calling() -> None:
    async def s(pop: ScreenPop, fake: FakeCrm, clock: FakeClock) -> None:
        fake.mode = "500"
        for _ in range(3):
            assert (await pop.fetch("w1")).error == "http 500"
        assert pop.breaker.state == OPEN and len(fake.hits) == 3
        fake.mode = "ok"  # healthy again, but the breaker has not looked yet
        for _ in range(5):
            res = await pop.fetch("w1")
            assert res.status == "fallback" and res.error == "breaker open"
        clock.advance(4.9)
        assert (await pop.fetch("w1")).error == "breaker open"
        assert len(fake.hits) == 3  # not hammered
        assert pop.counts["fallback"] == 9 and pop.status()["breaker"] == "open"

    run(s)


def test_half_open_trial_success_closes_the_breaker() -> None:
    async def s(pop: ScreenPop, fake: FakeCrm, clock: FakeClock) -> None:
        fake.mode = "500"
        for _ in range(3):
            await pop.fetch("w1")
        clock.advance(5.0)
        assert pop.breaker.state == HALF_OPEN
        fake.mode = "ok"
        assert (await pop.fetch("w1")).status == "ok"
        assert pop.breaker.state == CLOSED and pop.breaker.failures == 0 and len(fake.hits) == 4
        assert (await pop.fetch("w2")).status == "ok"

    run(s)


def test_half_open_trial_failure_reopens_for_another_cooldown() -> None:
    async def s(pop: ScreenPop, fake: FakeCrm, clock: FakeClock) -> None:
        fake.mode = "500"
        for _ in range(3):
            await pop.fetch("w1")
        clock.advance(5.0)
        assert (await pop.fetch("w1")).error == "http 500"  # the trial
        assert pop.breaker.state == OPEN and len(fake.hits) == 4 and pop.breaker.opens == 2
        clock.advance(2.0)
        assert (await pop.fetch("w1")).error == "breaker open"
        assert len(fake.hits) == 4

    run(s)


def test_half_open_lets_only_one_trial_through() -> None:
    async def s(pop: ScreenPop, fake: FakeCrm, clock: FakeClock) -> None:
        fake.mode = "500"
        for _ in range(3):
            await pop.fetch("w1")
        clock.advance(5.0)
        fake.mode = "slow"  # the trial hangs; others arriving meanwhile fall back at once
        results = await asyncio.gather(*(pop.fetch(f"c{i}") for i in range(4)))
        assert len(fake.hits) == 4
        assert sorted(r.error or "" for r in results) == ["breaker open"] * 3 + ["timeout after 0.3 s"]

    run(s, hard_timeout_s=0.3)


def test_cancelled_trial_frees_the_half_open_slot() -> None:
    async def s(pop: ScreenPop, fake: FakeCrm, clock: FakeClock) -> None:
        fake.mode = "500"
        for _ in range(3):
            await pop.fetch("w1")
        clock.advance(5.0)
        fake.mode = "slow"
        task = asyncio.ensure_future(pop.fetch("w1"))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        fake.mode = "ok"
        assert (await pop.fetch("w1")).status == "ok"

    run(s, hard_timeout_s=2.0)


def test_no_crm_configured_is_none() -> None:
    async def main() -> PopResult:
        return await ScreenPop(None, None).fetch("w1")

    assert asyncio.run(main()) == PopResult("none", None)


def test_breaker_unit() -> None:
    clock = FakeClock()
    b = Breaker(failures_to_open=2, cooldown_s=1.0, clock=clock)
    assert b.allow()
    b.failure()
    assert b.state == CLOSED
    b.success()
    b.failure()
    assert b.state == CLOSED  # consecutive failures only
    b.failure()
    assert b.state == OPEN and not b.allow()
    clock.advance(1.0)
    assert b.allow() and not b.allow()
    b.success()
    assert b.state == CLOSED and b.allow()


def test_agent_event_carries_the_screen_pop() -> None:
    out = CallOutcome(handle=1, direction="in", account="a-001", lab_call_id="w9", final_code=200)
    plain = agent.agent_event(out, "region-a", 0)
    assert plain["screen_pop"] == "none" and plain["screen_pop_ms"] is None and plain["screen_pop_error"] is None
    ev = agent.agent_event(out, "region-a", 0, PopResult("late", 812.5, {"name": "x"}))
    assert ev["screen_pop"] == "late" and ev["screen_pop_ms"] == 812.5 and "card" not in ev
    assert agent.pop_caller('"w9" <sip:w9@10.0.0.1>;tag=1', "x") == "w9"
    assert agent.pop_caller("<sip:10.0.0.1>", "w9") == "w9"


def test_agent_cli_supporting_tier_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["--region", "region-a", "--prefix", "a", "--count", "1", "--proxy", "10.77.1.11"]
    monkeypatch.setenv("IDP_SECRET", "from-env")
    args = agent.parse_args(base)
    assert args.idp_url == "" and args.crm_url == "" and args.pop_deadline_ms == 500.0
    assert args.idp_secret == "from-env"
    args = agent.parse_args(
        [
            *base,
            "--idp-url",
            "http://10.77.1.62:8090",
            "--crm-url",
            "http://10.77.1.61:8091",
            "--pop-deadline-ms",
            "300",
            "--idp-secret",
            "s",
        ]
    )
    assert args.idp_url.endswith(":8090") and args.crm_url.endswith(":8091") and args.pop_deadline_ms == 300
    for bad in (["--crm-url", "10.77.1.61:8091"], ["--idp-url", "ftp://x"], ["--pop-deadline-ms", "0"]):
        with pytest.raises(SystemExit):
            agent.parse_args([*base, *bad])


# ------------------------------------------------------------------------------------ loopback


@pytest.fixture
def _pjsua() -> None:
    if __import__("importlib").util.find_spec("pjsua2") is None:
        skip_or_fail("pjsua2 is not installed (the ua extra: `make setup`)")


pytest_pjsua = pytest.mark.usefixtures("_pjsua")


def _log(tmp: Path) -> str:
    path = tmp / "agents.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


Stopper = Callable[[], None]
Starter = Callable[[str, dict[str, str]], Stopper]


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Starter]:
    """Starts `python -m lab.deps.<name>` (env PORT) and waits until it accepts connections;
    returns a function that stops it."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, env: dict[str, str]) -> Stopper:
        with (tmp_path / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"lab.deps.{name}"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", int(env["PORT"])), timeout=0.2):
                    return lambda: _terminate(proc)
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{name} did not start: {(tmp_path / f'{name}.log').read_text()}")

    yield start
    for proc in procs:
        _terminate(proc)


def _call_through_agent(
    tmp_path: Path, env: dict[str, str], *extra: str, check: Callable[[], None] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One agent (direct mode) with `extra` flags, one 2 s call; returns (caller result, agent_call
    event). `check` runs after the call, while the agent still runs."""
    port = free_port(socket.SOCK_DGRAM)
    cmd = agents_cmd("--count", "1", "--proxy", "127.0.0.1", "--sip-port", str(port), "--no-register", *extra)
    with (tmp_path / "agents.log").open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 8
        while agents_health(env).returncode:
            assert time.monotonic() < deadline, f"agents never became healthy\n{_log(tmp_path)}"
            time.sleep(0.2)
        call_id = "p" + uuid.uuid4().hex[:10]
        done = run_caller(env, port, call_id, 2)
        assert done.returncode == 0, done.stderr[-2000:]
        rec: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        found = agent_calls(env, call_id)
        assert found, f"no agent_call event\n{_log(tmp_path)}"
        if check is not None:
            check()
        return rec, found[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=8) == 0, _log(tmp_path)


@pytest_pjsua
def test_loopback_crm_down_call_answered_with_fallback_pop(tmp_path: Path) -> None:
    env = loopback_env(tmp_path)
    dead = f"http://127.0.0.1:{free_port(socket.SOCK_STREAM)}"  # nothing listens there
    rec, ev = _call_through_agent(tmp_path, env, "--crm-url", dead)
    assert rec["final_code"] == 200 and rec["end_reason"] == "caller_bye" and rec["setup_ms"] < 2000
    assert ev["final_code"] == 200 and ev["end_reason"] == "remote_bye"
    assert ev["screen_pop"] == "fallback" and ev["screen_pop_ms"] is not None and ev["screen_pop_error"]


@pytest_pjsua
def test_loopback_login_then_ok_pop(tmp_path: Path, service: Starter) -> None:
    env = loopback_env(tmp_path)
    idp_port, crm_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    service("idp", {**env, "PORT": str(idp_port), "IDP_SECRET": "s3cret"})
    service("crm", {**env, "PORT": str(crm_port)})
    urls = ["--idp-url", f"http://127.0.0.1:{idp_port}", "--crm-url", f"http://127.0.0.1:{crm_port}"]
    metrics_port = free_port(socket.SOCK_STREAM)

    def metrics_counted_it() -> None:  # the supervisor's Prometheus endpoint (agents.metrics)
        labels = {"region": "region-a"}
        wait_metric(metrics_port, "wobble_agent_screen_pops_total", 1, result="ok", **labels)
        wait_metric(metrics_port, "wobble_agent_calls_answered_total", 1, **labels)
        wait_metric(metrics_port, "wobble_agent_logins_total", 1, result="ok", **labels)
        wait_metric(metrics_port, "wobble_agents_logged_in", 1, **labels)  # direct mode: up = in service

    rec, ev = _call_through_agent(
        tmp_path, {**env, "IDP_SECRET": "s3cret"}, *urls, "--metrics-port", str(metrics_port), check=metrics_counted_it
    )
    assert rec["final_code"] == 200 and ev["screen_pop"] == "ok" and ev["screen_pop_ms"] < 500
    logins = [e for e in logged(Path(env["WOBBLE_EVENTS"])) if e.get("kind") == "agent_login"]
    assert logins and logins[0]["agent"] == "a-001" and logins[0]["ok"] is True and logins[0]["region"] == "region-a"


@pytest_pjsua
def test_loopback_no_registration_before_login_and_idp_loss_keeps_agent(tmp_path: Path, service: Starter) -> None:
    """IdP down at start: login attempts fail (events), nothing is REGISTERed. IdP up: the agent logs
    in, then registers. IdP down again: the agent stays registered (healthy)."""
    from tests.unit.test_agents_loopback import FakeRegistrar

    env = loopback_env(tmp_path)
    idp_port = free_port(socket.SOCK_STREAM)
    reg = FakeRegistrar()
    reg.start()
    cmd = [
        sys.executable,
        "-m",
        "agents.agent",
        "--region",
        "region-b",
        "--prefix",
        "b",
        "--count",
        "1",
        "--proxy",
        f"127.0.0.1:{reg.port}",
        "--sip-port",
        str(free_port(socket.SOCK_DGRAM)),
        "--rtp-base",
        str(random.randrange(40000, 59000, 100)),
        "--bind",
        "127.0.0.1",
        "--expires",
        "30",
        "--idp-url",
        f"http://127.0.0.1:{idp_port}",
        "--login-retry-s",
        "0.3",
    ]
    with (tmp_path / "agents.log").open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def healthy() -> bool:
        return (
            subprocess.run(
                [sys.executable, "-m", "agents.health"], env=env, cwd=ROOT, capture_output=True, timeout=10
            ).returncode
            == 0
        )

    def logins() -> list[dict[str, Any]]:
        return [e for e in logged(Path(env["WOBBLE_EVENTS"])) if e.get("kind") == "agent_login"]

    try:
        deadline = time.monotonic() + 8
        while len(logins()) < 3:
            assert time.monotonic() < deadline, _log(tmp_path)
            time.sleep(0.1)
        assert not any(e["ok"] for e in logins()) and reg.seen == [] and not healthy()
        stop_idp = service("idp", {**env, "PORT": str(idp_port)})
        deadline = time.monotonic() + 8
        while not healthy():
            assert time.monotonic() < deadline, _log(tmp_path)
            time.sleep(0.2)
        assert logins()[-1]["ok"] is True and logins()[-1]["agent"] == "b-001"
        assert [u for u, e in reg.seen if e > 0][:1] == ["b-001"]
        stop_idp()
        time.sleep(1.0)
        assert healthy() and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=8)
        reg.stop()
    assert code == 0, _log(tmp_path)
