"""Real pjsua2 calls on loopback: an agents service (direct mode) and one caller; an agents service
registering to a tiny fake registrar, and one re-homing to a second registrar when the first goes
silent, then returning. Skipped where pjsua2 is not installed. ~25 s."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import logged, skip_or_fail
from tests.unit.loopback import (
    agent_calls,
    agents_cmd,
    agents_health,
    caller_cmd,
    free_port,
    loopback_env,
    run_caller,
    wait_metric,
)

if importlib.util.find_spec("pjsua2") is None:  # the ua extra; under CI its absence fails
    skip_or_fail("pjsua2 is not installed (the ua extra: `make setup`)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
HOLD_S = 3


def _wait_healthy(env: dict[str, str], timeout: float = 8.0) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = agents_health(env)
        last = proc.stdout.strip()
        if proc.returncode == 0:
            return last
        time.sleep(0.2)
    raise AssertionError(f"agents never became healthy: {last}\n{_agents_log(env)}")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def _agents(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    cmd = agents_cmd(*extra)
    with Path(env["WOBBLE_EVENTS"]).with_name("agents.log").open("ab") as log:  # read back on failure
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def _agents_log(env: dict[str, str]) -> str:
    path = Path(env["WOBBLE_EVENTS"]).with_name("agents.log")
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@pytest.fixture
def direct_agent(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    env = loopback_env(tmp_path)
    port = free_port()
    proc = _agents(env, "--count", "1", "--proxy", "127.0.0.1", "--sip-port", str(port), "--no-register")
    try:
        _wait_healthy(env)
        yield port, env
    finally:
        assert _stop(proc) == 0, _agents_log(env)


def test_loopback_call_measures_both_ends(direct_agent: tuple[int, dict[str, str]]) -> None:
    port, env = direct_agent
    call_id = "t" + uuid.uuid4().hex[:10]
    proc = run_caller(env, port, call_id, HOLD_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip(), f"{proc.stderr[-2000:]}\n{_agents_log(env)}"
    rec: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = HOLD_S * 50  # 20 ms packets
    assert rec["call_id"] == call_id and rec["final_code"] == 200 and rec["end_reason"] == "caller_bye"
    assert 0 < rec["pdd_ms"] <= rec["setup_ms"] < 2000
    assert abs(rec["rx_packets"] - expected) <= 10 and abs(rec["tx_packets"] - expected) <= 10
    assert rec["loss_pct"] == 0.0 and rec["rx_lost"] == 0
    assert rec["reply_headers"]["X-Wobble-Region"] == "region-a" and rec["region"] == "region-a"
    assert rec["reply_headers"]["X-Wobble-Agent"] == "a-001"
    assert abs(rec["duration_s"] - HOLD_S) < 0.5

    found = agent_calls(env, call_id)
    assert found, f"no agent_call event\n{_agents_log(env)}"
    ev = found[0]
    assert ev["agent"] == "a-001" and ev["agent_region"] == "region-a" and ev["end_reason"] == "remote_bye"
    assert ev["sip_call_id"] == rec["sip_call_id"]
    assert abs(ev["rx_packets"] - expected) <= 10 and abs(ev["tx_packets"] - expected) <= 10
    assert ev["loss_pct"] == 0.0 and abs(ev["duration_s"] - HOLD_S) < 0.5


class FakeRegistrar(threading.Thread):
    """Answers every REGISTER with 200 OK (echoing Contact and expiry) and every OPTIONS with 200 OK;
    remembers what it saw. `answering = False`: it stays silent (a dead registrar / SBC)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.seen: list[tuple[str, int]] = []  # (To user, expires) of answered REGISTERs
        self.log: list[tuple[float, str, int]] = []  # (monotonic, To user, expires), the same
        self.answering = True
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            msg = data.decode(errors="replace")
            if not self.answering or not msg.startswith(("REGISTER ", "OPTIONS ")):
                continue
            head = msg.split("\r\n\r\n", 1)[0].split("\r\n")
            keep = [h for h in head[1:] if re.match(r"(?i)^(via|from|to|call-id|cseq):", h)]
            keep = [h + ";tag=reg" if h.lower().startswith("to:") and "tag=" not in h else h for h in keep]
            lines = ["SIP/2.0 200 OK", *keep]
            if msg.startswith("REGISTER "):
                contact = next((h.split(":", 1)[1].strip() for h in head if re.match(r"(?i)^(contact|m):", h)), "")
                exp_hdr = next((h.split(":", 1)[1].strip() for h in head if h.lower().startswith("expires:")), "60")
                expires = int(exp_hdr)
                to_user = re.search(r"sip:([^@>]+)@", next(h for h in keep if h.lower().startswith("to:")))
                user = to_user.group(1) if to_user else "?"
                self.seen.append((user, expires))
                self.log.append((time.monotonic(), user, expires))
                if expires and contact:
                    lines.append(f"Contact: {contact.split(';expires')[0]};expires={expires}")
                lines.append(f"Expires: {expires}")
            lines += ["Content-Length: 0", "", ""]
            self.sock.sendto("\r\n".join(lines).encode(), addr)

    def registered_since(self, t: float) -> dict[str, float]:
        """User -> monotonic time of its first REGISTER (expires > 0) answered at or after `t`."""
        out: dict[str, float] = {}
        for ts, user, expires in list(self.log):
            if ts >= t and expires > 0:
                out.setdefault(user, ts)
        return out

    def stop(self) -> None:
        self.running = False
        self.join(2)
        self.sock.close()


def test_agents_register_and_health(tmp_path: Path) -> None:
    env = loopback_env(tmp_path)
    reg = FakeRegistrar()
    reg.start()
    metrics_port = free_port(socket.SOCK_STREAM)
    proc = _agents(
        env,
        "--count",
        "2",
        "--proxy",
        f"127.0.0.1:{reg.port}",
        "--sip-port",
        str(free_port()),
        "--expires",
        "30",
        "--metrics-port",
        str(metrics_port),
    )
    try:
        assert _wait_healthy(env) == "ok: 2/2 agents registered"
        wait_metric(metrics_port, "wobble_agents_logged_in", 2, region="region-a")
        assert {u for u, e in reg.seen if e > 0} == {"a-001", "a-002"}
        worker = json.loads((tmp_path / "agents.json.d" / "worker-0.json").read_text())
        assert worker["agents"]["a-001"]["code"] == 200 and worker["agents"]["a-001"]["expires"] > 0
    finally:
        code = _stop(proc)
        reg.stop()
    assert code == 0
    assert {u for u, e in reg.seen if e == 0} == {"a-001", "a-002"}, "no unregister on SIGTERM"
    assert agents_health(env).returncode != 0  # workers wrote 'stopping'


def _run_script(script: str) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh interpreter (the project on its path)."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _ua_script(call_tag: str, rest: str) -> str:
    """A script whose `main()` starts a UserAgent with an auto-answering a-001 and a `caller`
    account, places call `call_tag` from caller to a-001 (handle `h`), then goes on with `rest`
    (the rest of main's body, indented, and what runs it)."""
    return (
        """
import asyncio, gc, json, os, sys
from agents.ua import AccountSpec, CallEnded, UaOptions, UserAgent

async def main() -> None:
    ua = UserAgent(UaOptions(bind_addr="127.0.0.1", log_level=0))
    addr = await ua.start()
    await ua.add_account(AccountSpec(name="a-001", id_uri="sip:a-001@127.0.0.1", auto_answer=True,
                                     ring_delay=0.05, make_default=True))
    await ua.add_account(AccountSpec(name="caller", id_uri="sip:CALL_TAG@127.0.0.1"))
    h = await ua.make_call("caller", f"sip:a-001@{addr}", {"X-Wobble-Call": "CALL_TAG"})
""".replace("CALL_TAG", call_tag)
        + rest
    )


GC_SCRIPT = _ua_script(
    "gc-test",
    r"""    for _ in range(60):  # both legs (ours and the auto-answering one) must exist before we look
        if len((await ua.inspect()).calls) == 2:
            break
        await asyncio.sleep(0.05)
    refs = (await ua.inspect()).call_objects
    await asyncio.sleep(1.0)
    await ua.hangup(h, "caller_bye")
    ended = []
    while len(ended) < 2:
        ev = await asyncio.wait_for(ua.events.get(), 5)
        if isinstance(ev, CallEnded):
            ended.append(ev.outcome)
    # the graveyard is emptied by the worker loop; on a loaded machine that may take a few passes
    for _ in range(60):
        alive = sum(r() is not None for r in refs)
        if alive == 0:
            break
        await asyncio.sleep(0.05)
    gc.collect()  # in THIS (non-pjsua) thread: must not destroy any pjsua2 object
    live = (await ua.inspect(count_objects=True)).call_objects_alive
    reasons = sorted(o.end_reason for o in ended)
    print(json.dumps([len(refs), alive, live, reasons, [o.lab_call_id for o in ended]]), flush=True)
    await ua.stop(2)

gc.disable()
asyncio.run(main())
os._exit(0)
""",
)


def test_ended_calls_are_freed_in_the_pjsua_thread() -> None:
    """Regression: a call<->record reference cycle left pj.Call objects to the cyclic GC, which ran
    their destructors in a non-pjsua thread: pjlib asserted and the agents worker died (-6)."""
    proc = _run_script(GC_SCRIPT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    calls, alive, live, reasons, call_ids = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (calls, alive, live) == (2, 0, 0), "ended pj.Call objects not freed in the pjsua2 thread"
    assert reasons == ["caller_bye", "remote_bye"] and call_ids == ["gc-test", "gc-test"]


REMOVE_SCRIPT = _ua_script(
    "rm-test",
    r"""    await asyncio.sleep(0.5)
    busy = await ua.remove_account("caller")  # its call is up: not yet
    await ua.hangup(h, "caller_bye")
    ended = 0
    while ended < 2:
        ev = await asyncio.wait_for(ua.events.get(), 5)
        ended += isinstance(ev, CallEnded)
    gone = await ua.remove_account("caller")
    again = await ua.remove_account("caller")  # already gone: nothing to do
    try:
        await ua.make_call("caller", f"sip:a-001@{addr}")
        usable = True
    except KeyError:
        usable = False
    print(json.dumps([busy, gone, again, usable]), flush=True)
    await ua.stop(2)

asyncio.run(main())
os._exit(0)
""",
)


def test_remove_account_waits_for_its_calls() -> None:
    proc = _run_script(REMOVE_SCRIPT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, True, True, False]


def _wait_for(what: str, cond: Callable[[], bool], env: dict[str, str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{_agents_log(env)}")
        time.sleep(0.1)


def test_agents_rehome_when_home_goes_silent_and_return(tmp_path: Path) -> None:
    """Home (registrar + OPTIONS) stops answering: after --rehome-after the agents register at the
    fallback, stay healthy, show where they are; home answers again: after --return-after, back."""
    env = loopback_env(tmp_path)
    home, away = FakeRegistrar(), FakeRegistrar()
    home.start()
    away.start()
    metrics_port = free_port(socket.SOCK_STREAM)
    delay = 2.0
    proc = _agents(
        env,
        "--count",
        "2",
        "--proxy",
        f"127.0.0.1:{home.port}",
        "--sip-port",
        str(free_port()),
        "--expires",
        "30",
        "--metrics-port",
        str(metrics_port),
        "--fallback-proxy",
        f"127.0.0.1:{away.port}",
        "--fallback-region",
        "region-b",
        "--rehome-after",
        str(delay),
        "--return-after",
        str(delay),
    )
    agents = {"a-001", "a-002"}
    wfile = tmp_path / "agents.json.d" / "worker-0.json"
    try:
        assert _wait_healthy(env) == "ok: 2/2 agents registered"
        assert {u for u, e in home.seen if e > 0} == agents and not away.seen

        # home goes silent: nothing moves before the delay, everything moves after it
        home.answering = False
        t_down = time.monotonic()
        _wait_for("REGISTERs at the fallback", lambda: set(away.registered_since(t_down)) == agents, env)
        first = min(away.registered_since(t_down).values())
        assert first - t_down >= delay, f"moved after {first - t_down:.2f} s, before the {delay} s delay"
        assert first - t_down < delay + 4.0
        assert _wait_healthy(env) == "ok: 2/2 agents registered (2 re-homed to region-b)"
        worker = json.loads(wfile.read_text())
        for name in agents:
            entry = worker["agents"][name]
            assert entry["proxy"] == f"127.0.0.1:{away.port}" and entry["proxy_region"] == "region-b"
            assert entry["code"] == 200 and entry["active"]
        assert worker["target"] == {"proxy": f"127.0.0.1:{away.port}", "region": "region-b"}
        wait_metric(metrics_port, "wobble_agents_rehomed", 2, region="region-a", to_region="region-b")
        wait_metric(metrics_port, "wobble_agents_logged_in", 2, region="region-a")
        main = json.loads((tmp_path / "agents.json").read_text())
        assert main["rehome"]["placement"] == "fallback" and main["rehome"]["target"]["region"] == "region-b"

        # home answers again: back after the return delay, and the fallback is told goodbye
        home.answering = True
        t_up = time.monotonic()
        _wait_for("REGISTERs at home again", lambda: set(home.registered_since(t_up)) == agents, env)
        back = min(home.registered_since(t_up).values())
        assert back - t_up >= delay, f"returned after {back - t_up:.2f} s, before the {delay} s delay"
        assert _wait_healthy(env) == "ok: 2/2 agents registered"
        _wait_for("unREGISTERs at the fallback", lambda: {u for u, e in away.seen if e == 0} == agents, env)
        wait_metric(metrics_port, "wobble_agents_rehomed", 0, region="region-a", to_region="region-b")
        worker = json.loads(wfile.read_text())
        assert {worker["agents"][n]["proxy_region"] for n in agents} == {"region-a"}
    finally:
        code = _stop(proc)
        home.stop()
        away.stop()
    assert code == 0, _agents_log(env)
    moves = [e for e in logged(Path(env["WOBBLE_EVENTS"])) if e["kind"] == "agent_rehome"]
    assert [(e["to_region"], e["placement"], e["rule"]) for e in moves] == [
        ("region-b", "fallback", "home-down"),
        ("region-a", "home", "home-recovered"),
    ]
    assert moves[0]["region"] == "region-a" and moves[0]["proxy"] == f"127.0.0.1:{away.port}"
    assert moves[0]["agents"] == ["a-001", "a-002"] and moves[0]["evidence"]["sbc"] == "fail: timeout"
    assert moves[1]["proxy"] == f"127.0.0.1:{home.port}" and moves[1]["from_region"] == "region-b"


def test_an_agent_in_a_call_keeps_it_and_moves_when_it_ends(tmp_path: Path) -> None:
    """Re-homing never drops a call: the busy agent stays registered where it is until its call
    has ended (normally, with the caller's BYE), then moves; the idle one moves at once."""
    env = loopback_env(tmp_path)
    home, away = FakeRegistrar(), FakeRegistrar()
    home.start()
    away.start()
    sip_port = free_port()
    delay, hold = 1.0, 6.0
    proc = _agents(
        env,
        "--count",
        "2",
        "--proxy",
        f"127.0.0.1:{home.port}",
        "--sip-port",
        str(sip_port),
        "--expires",
        "30",
        "--metrics-port",
        "0",
        "--fallback-proxy",
        f"127.0.0.1:{away.port}",
        "--fallback-region",
        "region-b",
        "--rehome-after",
        str(delay),
    )
    wfile = tmp_path / "agents.json.d" / "worker-0.json"
    call_id = "r" + uuid.uuid4().hex[:10]
    caller: subprocess.Popen[str] | None = None
    try:
        _wait_healthy(env)
        cmd = caller_cmd(f"sip:a-001@127.0.0.1:{sip_port}", call_id, hold)
        caller = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for("a-001 in a call", lambda: "a-001" in json.loads(wfile.read_text()).get("in_call", []), env)
        home.answering = False
        t_down = time.monotonic()
        _wait_for("a-002 at the fallback", lambda: "a-002" in away.registered_since(t_down), env)
        assert "a-001" not in away.registered_since(t_down)
        _wait_for(
            "a-001 waiting for its call", lambda: "rehome" in json.loads(wfile.read_text())["agents"]["a-001"], env
        )
        assert caller.poll() is None, "the call should still be up"
        assert "a-001" not in away.registered_since(t_down), "a-001 moved during its call"
        out, err = caller.communicate(timeout=hold + 10)
        t_call_end = time.monotonic()
        assert caller.returncode == 0, err[-2000:]
        rec = json.loads(out.strip().splitlines()[-1])
        assert rec["final_code"] == 200 and rec["end_reason"] == "caller_bye"
        assert rec["rx_packets"] >= (hold - 1) * 50 and rec["loss_pct"] == 0.0  # media flowed throughout
        _wait_for("a-001 at the fallback", lambda: "a-001" in away.registered_since(t_down), env)
        assert away.registered_since(t_down)["a-001"] <= t_call_end + 3.0
        assert _wait_healthy(env) == "ok: 2/2 agents registered (2 re-homed to region-b)"
    finally:
        if caller is not None and caller.poll() is None:
            caller.kill()
        code = _stop(proc)
        home.stop()
        away.stop()
    assert code == 0, _agents_log(env)
    ended = [e for e in logged(Path(env["WOBBLE_EVENTS"])) if e["kind"] == "agent_call" and e["call_id"] == call_id]
    assert len(ended) == 1 and ended[0]["end_reason"] == "remote_bye" and ended[0]["agent"] == "a-001"
    assert ended[0]["registered_region"] == "region-a"  # it took the call where it was registered then
