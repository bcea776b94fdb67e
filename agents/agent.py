"""The agents service: registered contact-center agents that auto-answer and talk.

    python -m agents.agent --region region-a --prefix a --count 4 --proxy 10.77.1.11 \
        --sip-port 5070 --rtp-base 30000 [--per-process 4] [--expires 60]

The supervisor (this command) starts ceil(count / per-process) worker processes (pjsua2 holds at
most 4 calls per process) and restarts any that dies (backoff 1 s doubling to 10 s). Worker N
serves agents [N*per .. N*per+per) on SIP port `--sip-port + N`; agent number g (0-based, across
workers) gets RTP ports [rtp-base + g*rtp-span, +rtp-span).

Each agent: idUri sip:<prefix>-NNN@<proxy host>, registrar sip:<proxy> (the SBC forwards the
REGISTER to the PBX, adding Path), re-registers by itself (retry every 5 s after a failure). Its SDP
advertises the local address towards the proxy (unless --public-addr/--bind say otherwise), so an
agent on several region networks is reachable on the one it registered through.
Incoming INVITE: 180 at once, 200 after --ring-delay, a --tone Hz tone; a second INVITE to a busy
agent gets 486. When a call ends one event is appended to the lab event log:
    agent_call {call_id, agent, agent_region, rx_packets, tx_packets, rx_lost, loss_pct, jitter_ms,
                jitter_max_ms, rtt_ms, duration_s, end_reason, sip_call_id, final_code, remote_uri,
                worker}
call_id is the INVITE's X-Wobble-Call header, else the From user. end_reason: remote_bye,
media_timeout (no RTP for --media-timeout s: the agent hangs up), cancelled (caller gave up while
ringing), busy, shutdown.

--no-register (direct mode): no registration; callers reach a worker at sip:<anything>@<bind>:<port>
(an unknown user lands on the worker's first agent). Used by the loopback test.

Supporting tier (optional; without these flags nothing below happens):
--idp-url http://10.77.1.62:8090 [--idp-secret S] [--login-retry-s 3]: each agent logs in to the
  identity provider (agents.login) BEFORE it registers; one that cannot log in retries every
  --login-retry-s and stays unregistered until it can. A logged-in agent keeps answering if the IdP
  fails later (it is only asked again to renew the token). Every attempt: an `agent_login` event.
--crm-url http://10.77.1.61:8091 [--pop-deadline-ms 500]: on each answered call the worker fetches
  the caller's card (From user, else the call id) from the CRM as a background task (agents.screenpop:
  deadline, 2 s hard timeout, circuit breaker, cached/generic fallback); answering never waits for it.
Every agent_call event carries screen_pop (ok | late | fallback | none: no CRM configured or the
call was never answered), screen_pop_ms and screen_pop_error.

Re-homing (optional; without --fallback-proxy the agents never leave home):
--fallback-proxy 10.77.2.11 --fallback-region region-b [--home-pbx 10.77.1.31]
[--rehome-after 10] [--return-after S (default: --rehome-after)]
  The supervisor sends a SIP OPTIONS every second to the home SBC (--proxy), the home PBX
  (--home-pbx, if given) and the fallback SBC (core.sipprobe, 0.5 s timeout), and counts
  the REGISTER results of the accounts registered at home (worker status files, every 2 s). The
  state machine agents.rehome decides: home BAD (a probe failing, or every home registration
  failing) for --rehome-after s -> the fallback (never to a fallback whose probe fails); home GOOD
  (every home probe answering) for --return-after s -> home; a decision waits at least its
  threshold after the previous one. On a decision the supervisor rewrites the control file
  (agents.status: P.d/control.json {proxy, region, placement, seq}) and appends
      agent_rehome {region, to_region, from_region, proxy, placement, rule, reason, streak_s,
                    evidence, agents, rehome_after_s, return_after_s, seq}
  Workers check the control file every second (and read it at start: a restarted worker registers
  where the fleet is) and move every account through the new proxy with pjsua2 Account.modify()
  (UserAgent.rehome_account: the old registration is dropped best effort, a REGISTER goes to the new
  registrar; same Account object). An account in a call keeps its call and moves when it ends.
  Worker status entries carry `proxy` and `proxy_region` (where each account registers); the health
  check counts a re-homed registered agent as in service.

Metrics (agents.metrics): the supervisor serves Prometheus on --metrics-port (default 9101, 0: off):
wobble_agents_logged_in{region}, wobble_agent_logins_total{region,result},
wobble_agent_calls_answered_total{region}, wobble_agent_screen_pops_total{region,result},
wobble_agents_rehomed{region,to_region} (in service through another region's SBC),
wobble_agent_rehomes_total{region,to_region} (decisions). Workers count in their status file
(`counters`); the supervisor reads those files every 2 s.

Status: see agents.status (WOBBLE_AGENT_STATUS). SIGTERM: workers hang up, unregister (best
effort), libDestroy, os._exit; the supervisor forwards SIGTERM and kills stragglers after 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from agents.metrics import AGENT_PORT, AgentMetrics, WorkerCounters, serve
from agents.model import TOKEN_RE, parse_valid_args, strip_port, uri_user
from agents.rehome import FALLBACK, FALLBACK_PROBE, HOME, PBX, SBC, Decision, RehomePolicy
from agents.status import (
    DEFAULT_MAX_AGE_S,
    ControlReader,
    control_path,
    evaluate,
    read_json,
    registrations_via,
    status_path,
    worker_path,
    write_control,
    write_health,
    write_json_atomic,
)
from core.settings import AgentsSettings

if TYPE_CHECKING:
    from agents.screenpop import PopResult

log = logging.getLogger("agents.agent")
#: How often a worker checks the supervisor's control file, and the supervisor probes home, s.
CONTROL_POLL_S = 1.0
PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agents.agent", description="Run registered SIP agents.")
    p.add_argument("--region", required=True, help="home region name, e.g. region-a")
    p.add_argument("--prefix", required=True, help="agent name prefix: a -> a-001, a-002, ...")
    p.add_argument("--count", type=int, required=True, help="number of agents")
    p.add_argument("--proxy", required=True, help="SBC (registrar) host[:port]")
    p.add_argument("--sip-port", type=int, default=5070, help="SIP port of worker 0 (worker N: +N)")
    p.add_argument("--rtp-base", type=int, default=30000, help="first RTP port")
    p.add_argument("--rtp-span", type=int, default=20, help="RTP ports per agent")
    p.add_argument("--per-process", type=int, default=4, help="agents per worker process (max 4)")
    p.add_argument("--expires", type=int, default=60, help="registration expiry, s")
    p.add_argument("--ring-delay", type=float, default=0.2, help="seconds between 180 and 200")
    p.add_argument("--tone", type=int, default=620, help="tone frequency the agents send, Hz")
    p.add_argument("--media-timeout", type=float, default=10.0, help="hang up after this long without RTP (0: off)")
    p.add_argument("--bind", default="", help="local address for SIP and RTP (default: all)")
    p.add_argument("--public-addr", default="", help="address to advertise in Contact/SDP")
    p.add_argument("--no-register", action="store_true", help="direct mode: do not register")
    p.add_argument("--log-level", type=int, default=1, help="pjsua log level 0-6 (stderr)")
    p.add_argument("--idp-url", default="", help="identity provider base URL; agents log in before registering")
    p.add_argument("--idp-secret", default=AgentsSettings.from_env().idp_secret, help="login secret (env IDP_SECRET)")
    p.add_argument("--login-retry-s", type=float, default=3.0, help="seconds between failed login attempts")
    p.add_argument("--crm-url", default="", help="CRM base URL; answered calls get a screen pop")
    p.add_argument("--pop-deadline-ms", type=float, default=500.0, help="a screen pop later than this is 'late'")
    p.add_argument("--metrics-port", type=int, default=AGENT_PORT, help="Prometheus /metrics port (0: off)")
    p.add_argument("--fallback-proxy", default="", help="the other region's SBC host[:port]; empty: never re-home")
    p.add_argument("--fallback-region", default="", help="the fallback proxy's region name, e.g. region-b")
    p.add_argument("--home-pbx", default="", help="home PBX host[:port], probed with OPTIONS too (optional)")
    p.add_argument("--rehome-after", type=float, default=10.0, help="re-home after home is down this long, s")
    p.add_argument("--return-after", type=float, default=None, help="return after home is up this long, s "
                   "(default: --rehome-after)")  # fmt: skip
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    return parse_valid_args(p, argv, validate_args)


def validate_args(args: argparse.Namespace) -> list[str]:
    problems: list[str] = []
    if not TOKEN_RE.match(str(args.prefix)):
        problems.append("--prefix must be 1-64 characters of [A-Za-z0-9._~-]")
    if not 1 <= args.count <= 999:
        problems.append("--count must be 1-999")
    if not 1 <= args.per_process <= 4:
        problems.append("--per-process must be 1-4 (pjsua2 wheels allow 4 calls per process)")
    if args.expires < 10:
        problems.append("--expires must be >= 10 s")
    if args.rtp_span < 2 or args.rtp_span % 2:
        problems.append("--rtp-span must be an even number >= 2")
    if args.ring_delay < 0 or args.media_timeout < 0:
        problems.append("--ring-delay and --media-timeout must be >= 0")
    if not _hostport_ok(args.proxy):
        problems.append("--proxy must be host[:port]")
    if args.fallback_proxy or args.fallback_region:
        if not _hostport_ok(args.fallback_proxy) or args.fallback_proxy == args.proxy:
            problems.append("--fallback-proxy must be host[:port], not --proxy")
        if not TOKEN_RE.match(str(args.fallback_region)) or args.fallback_region == args.region:
            problems.append("--fallback-region must name the other region (with --fallback-proxy)")
        if args.no_register:
            problems.append("--fallback-proxy needs registration (not --no-register)")
    if args.home_pbx and not _hostport_ok(args.home_pbx):
        problems.append("--home-pbx must be host[:port]")
    if not args.rehome_after > 0 or (args.return_after is not None and not args.return_after > 0):
        problems.append("--rehome-after and --return-after must be > 0")
    for flag, url in (("--idp-url", args.idp_url), ("--crm-url", args.crm_url)):
        if url and not url.startswith(("http://", "https://")):
            problems.append(f"{flag} must be an http:// or https:// URL")
    if not 0 <= args.metrics_port <= 65535:
        problems.append("--metrics-port must be 0 (off) or a TCP port")
    if args.login_retry_s <= 0 or args.pop_deadline_ms <= 0:
        problems.append("--login-retry-s and --pop-deadline-ms must be > 0")
    if args.count >= 1 and args.per_process >= 1:
        nworkers = worker_count(args.count, args.per_process)
        if args.sip_port < 1 or args.sip_port + nworkers - 1 > 65535:
            problems.append("--sip-port range does not fit in 1-65535")
        if args.rtp_base < 1024 or args.rtp_base + args.count * args.rtp_span - 1 > 65535:
            problems.append("--rtp-base range does not fit in 1024-65535")
        if args.sip_port <= args.rtp_base + args.count * args.rtp_span - 1 and args.rtp_base <= (
            args.sip_port + nworkers - 1
        ):
            problems.append("SIP ports overlap the RTP port range")
        if args.worker is not None and not 0 <= args.worker < nworkers:
            problems.append("--worker out of range")
    return problems


def _hostport_ok(value: str) -> bool:
    return bool(value) and "/" not in value and not value.startswith("sip:") and not any(c.isspace() for c in value)


def hostport(value: str, default_port: int = 5060) -> tuple[str, int]:
    """'10.77.1.11' -> ('10.77.1.11', 5060); '127.0.0.1:5099' -> ('127.0.0.1', 5099)."""
    host = strip_port(value)
    rest = value[len(host) + 1 :] if value != host else ""
    return host.strip("[]"), int(rest) if rest.isdigit() else default_port


def route_source_ip(host: str) -> str:
    """The local address the kernel sends from towards `host` (an IP literal; '' otherwise or when
    there is no route). A connect() on a UDP socket: no packet is sent."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return ""
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, 5060))
            return str(s.getsockname()[0])
        except OSError:
            return ""


def worker_count(count: int, per_process: int) -> int:
    return math.ceil(count / per_process)


def agent_name(prefix: str, number: int) -> str:
    """1-based agent number -> name: ('a', 1) -> 'a-001'."""
    return f"{prefix}-{number:03d}"


def plan(args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    """Worker index -> {agents, sip_port, rtp: {agent: [first, last]}}."""
    out: dict[int, dict[str, Any]] = {}
    for w in range(worker_count(args.count, args.per_process)):
        first = w * args.per_process
        idx = range(first, min(args.count, first + args.per_process))
        out[w] = {
            "agents": [agent_name(args.prefix, g + 1) for g in idx],
            "sip_port": args.sip_port + w,
            "rtp": {
                agent_name(args.prefix, g + 1): [
                    args.rtp_base + g * args.rtp_span,
                    args.rtp_base + (g + 1) * args.rtp_span - 1,
                ]
                for g in idx
            },
        }
    return out


def answer_headers(name: str, region: str, direct: bool) -> tuple[tuple[str, str], ...]:
    """Headers on the agent's 200 OK. X-Wobble-Region only in direct mode (no SBC to add it), so
    a PBX that forwarded it could never mask the SBC's own."""
    out = [("X-Wobble-Agent", name)]
    if direct:
        out.append(("X-Wobble-Region", region))
    return tuple(out)


def agent_event(
    outcome: Any, region: str, worker: int, pop: PopResult | None = None, registered_region: str | None = None
) -> dict[str, Any]:
    """The `agent_call` event record for one ended incoming call (a CallOutcome) and its screen
    pop (None: no CRM configured or no pop fetched, i.e. the call was never answered).
    `registered_region`: the region whose SBC the agent was registered through (None: not known)."""
    s = outcome.stats
    return {
        "call_id": outcome.lab_call_id,
        "agent": outcome.account,
        "agent_region": region,
        "registered_region": registered_region,
        "rx_packets": s.rx_packets,
        "tx_packets": s.tx_packets,
        "rx_lost": s.rx_lost,
        "loss_pct": s.loss_pct,
        "jitter_ms": s.jitter_ms,
        "jitter_max_ms": s.jitter_max_ms,
        "rtt_ms": s.rtt_ms,
        "duration_s": outcome.duration_s,
        "end_reason": outcome.end_reason,
        "final_code": outcome.final_code,
        "sip_call_id": outcome.sip_call_id,
        "remote_uri": outcome.remote_uri,
        "worker": worker,
        "screen_pop": pop.status if pop is not None else "none",
        "screen_pop_ms": pop.ms if pop is not None else None,
        "screen_pop_error": pop.error if pop is not None else None,
    }


def pop_caller(remote_uri: str, lab_call_id: str | None) -> str:
    """Whose card to pop: the caller's From user, else the lab call id."""
    return uri_user(remote_uri) or lab_call_id or "anonymous"


# --------------------------------------------------------------------------------------------
# Worker
# --------------------------------------------------------------------------------------------


async def run_worker(args: argparse.Namespace) -> None:
    import aiohttp

    from agents.login import LoginResult, keep_logged_in, login_until_ok
    from agents.screenpop import FALLBACK, PopResult, ScreenPop
    from agents.ua import (
        AccountSpec,
        CallAnswered,
        CallEnded,
        IncomingCall,
        RegState,
        Rehomed,
        UaOptions,
        UserAgent,
    )
    from core import events

    index: int = args.worker
    mine = plan(args)[index]
    main_status = status_path()
    wpath = worker_path(main_status, index)
    parent = os.getppid()
    # Where accounts should register (the supervisor's control file; home until it says otherwise),
    # and the region of every proxy seen, for the status file.
    control = ControlReader(control_path(main_status), {"proxy": args.proxy, "region": args.region})
    proxy_regions = control.regions
    ua = UserAgent(
        UaOptions(
            sip_port=mine["sip_port"],
            bind_addr=args.bind,
            public_addr=args.public_addr,
            log_level=args.log_level,
            user_agent=f"wobble-agent/{args.region}",
        )
    )
    addr = await ua.start()
    log.info("worker %d: SIP on %s, agents %s", index, addr, ", ".join(mine["agents"]))
    session = aiohttp.ClientSession() if (args.idp_url or args.crm_url) else None
    pop = ScreenPop(session, args.crm_url or None, deadline_ms=args.pop_deadline_ms)
    agents: dict[str, dict[str, Any]] = {}
    counters = WorkerCounters()  # read by the supervisor for its metrics (agents.metrics)

    def media_addr(proxy: str) -> str:
        """The SDP address of an account registering through `proxy`: the local address towards
        it (agents may sit on several region networks), unless --public-addr/--bind fix one."""
        if args.public_addr or args.bind or args.no_register:
            return ""
        return route_source_ip(hostport(proxy)[0])

    def account_spec(n: int, name: str, proxy: str) -> AccountSpec:
        first, last = mine["rtp"][name]
        return AccountSpec(
            name=name,
            id_uri=f"sip:{name}@{strip_port(proxy)}",
            registrar=None if args.no_register else f"sip:{proxy}",
            expires=args.expires,
            rtp_port=first,
            rtp_port_range=last - first + 1,
            auto_answer=True,
            ring_delay=args.ring_delay,
            tone_hz=args.tone,
            media_timeout_s=args.media_timeout,
            answer_headers=answer_headers(name, args.region, args.no_register),
            make_default=n == 0,
            media_addr=media_addr(proxy),
        )

    added: set[str] = set()  # accounts the engine holds

    def registered_in(account: str) -> str | None:
        """The region an account is registered through (direct mode: its own)."""
        if args.no_register:
            return str(args.region)
        got = agents.get(account, {}).get("proxy_region")
        return str(got) if got else None

    async def add_account(n: int, name: str) -> None:
        proxy = control.target["proxy"]
        agents[name].update(proxy=proxy, proxy_region=proxy_regions.get(proxy, "unknown"))
        await ua.add_account(account_spec(n, name, proxy))
        added.add(name)

    bringups: set[asyncio.Task[None]] = set()
    fatal: list[BaseException] = []
    stop = asyncio.Event()

    async def bring_up(n: int, name: str) -> None:
        """IdP mode: log in (retrying), only then add (register) the account, then keep the token
        fresh. A later IdP failure never takes the agent out of service."""
        assert session is not None

        def note(res: LoginResult) -> None:
            agents[name]["login"] = "ok" if res.ok else f"failed: {res.error}"
            counters.login(res.ok)

        first = await login_until_ok(session, args.idp_url, name, args.idp_secret, args.region,
                                     retry_s=args.login_retry_s, on_attempt=note)  # fmt: skip
        agents[name]["reason"] = "not yet registered"
        await add_account(n, name)
        write_status()
        await keep_logged_in(session, args.idp_url, name, args.idp_secret, args.region, first,
                             retry_s=args.login_retry_s, on_attempt=note)  # fmt: skip

    def bring_up_done(task: asyncio.Task[None]) -> None:
        bringups.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("worker %d: bringing up an agent failed: %r", index, exc)
            fatal.append(exc)
            stop.set()

    def poll_control() -> None:
        if control.poll():
            new = control.target
            log.warning("worker %d: accounts move to %s (%s)", index, new["region"], new["proxy"])

    if not args.no_register:
        poll_control()  # a worker (re)started while the fleet is re-homed registers there at once

    for n, name in enumerate(mine["agents"]):
        agents[name] = {"code": 0, "reason": "not yet registered", "active": False, "expires": 0, "since": None}
        if not args.idp_url:
            await add_account(n, name)
            continue
        agents[name].update(reason="not logged in", login="pending")
        task = asyncio.ensure_future(bring_up(n, name))
        bringups.add(task)
        task.add_done_callback(bring_up_done)
    in_call: dict[int, str] = {}
    calls_total = 0
    # Screen pops: incoming call handle -> caller id (known at INVITE), -> (fetch task, start) once answered.
    pop_callers: dict[int, str] = {}
    pops: dict[int, tuple[asyncio.Task[PopResult], float]] = {}
    late_writers: set[asyncio.Task[None]] = set()

    def settled(handle: int) -> PopResult | None:
        """The pop of a call whose fetch is over (or abandoned: reported as an unfinished fallback)."""
        pop_callers.pop(handle, None)
        entry = pops.pop(handle, None)
        if entry is None:
            return None
        task, t0 = entry
        if task.done() and not task.cancelled() and task.exception() is None:
            return task.result()
        task.cancel()
        return PopResult(FALLBACK, round((time.monotonic() - t0) * 1000.0, 1), None, "unfinished")

    async def append_call(record: dict[str, Any]) -> None:
        counters.call_ended(record)
        try:
            await asyncio.to_thread(events.append, events.AgentCall.of(record))
        except OSError:
            log.exception("could not append agent_call event")

    async def append_when_popped(outcome: Any, task: asyncio.Task[PopResult]) -> None:
        """The call ended before its pop finished: the event waits for the pop (bounded by the hard
        timeout), without holding up the worker's event loop."""
        await asyncio.wait({task}, timeout=pop.hard_timeout_s + 1.0)
        await append_call(
            agent_event(outcome, args.region, index, settled(outcome.handle), registered_in(outcome.account))
        )

    def write_status(state: str = "running") -> None:
        write_json_atomic(
            wpath,
            {
                "worker": index,
                "pid": os.getpid(),
                "state": state,
                "region": args.region,
                "sip": addr,
                "updated": time.time(),
                "loop_age_s": round(max(0.0, time.monotonic() - ua.heartbeat), 3),
                "direct": bool(args.no_register),
                "agents": agents,
                "in_call": sorted(set(in_call.values())),
                "calls_total": calls_total,
                "counters": counters.as_dict(),
                "target": dict(control.target),
                **({"idp": args.idp_url} if args.idp_url else {}),
                **({"screen_pop": pop.status()} if pop.configured else {}),
            },
        )

    rehoming: list[asyncio.Task[None]] = []

    def left_behind(ev: RegState) -> bool:
        """A result about a registrar the account has since left (it was queued before the move)."""
        proxy = agents.get(ev.account, {}).get("proxy")
        return bool(ev.registrar and proxy and ev.registrar != f"sip:{proxy}")

    async def rehome() -> None:
        """Move every account not registering through the target there; one in a call keeps its
        call and moves when it has ended (asked again then, and at every control check)."""
        busy = set(in_call.values())
        for name in sorted(added):
            entry = agents[name]
            proxy = control.target["proxy"]
            if entry.get("proxy") == proxy:
                entry.pop("rehome", None)
                continue
            if name in busy:
                entry["rehome"] = f"after its call, to {control.target['region']}"
                continue
            try:
                moved = await ua.rehome_account(name, f"sip:{proxy}", f"sip:{name}@{strip_port(proxy)}",
                                                media_addr(proxy))  # fmt: skip
            except Exception:
                log.exception("worker %d: re-homing %s failed (retried)", index, name)
                continue
            if not moved:
                entry["rehome"] = f"after its call, to {control.target['region']}"

    def kick_rehome() -> None:
        if args.no_register or (rehoming and not rehoming[0].done()):
            return
        if any(agents[name].get("proxy") != control.target["proxy"] for name in added):
            rehoming[:] = [asyncio.ensure_future(rehome())]

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    write_status()
    next_write = time.monotonic() + 2.0
    next_control = time.monotonic() + CONTROL_POLL_S
    stopper = asyncio.ensure_future(stop.wait())
    while not stop.is_set():
        getter = asyncio.ensure_future(ua.events.get())
        wake = min(next_write, next_control)
        done, _ = await asyncio.wait(
            {getter, stopper}, timeout=max(0.05, wake - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
        )
        if getter not in done:
            getter.cancel()
        else:
            ev = getter.result()
            if isinstance(ev, Rehomed):
                entry = agents.setdefault(ev.account, {})
                proxy = ev.registrar.removeprefix("sip:")
                where = proxy_regions.get(proxy, "unknown")
                if entry.get("code") == 200 and entry.get("active"):
                    entry["since"] = ev.ts
                entry.update(proxy=proxy, proxy_region=where, code=0, reason=f"re-registering via {where}",
                             active=False, expires=0)  # fmt: skip
                entry.pop("rehome", None)
                log.info("worker %d: %s re-registers through %s (%s)", index, ev.account, proxy, where)
                write_status()
            elif isinstance(ev, RegState) and not left_behind(ev):
                entry = agents.setdefault(ev.account, {})
                was = entry.get("code") == 200 and entry.get("active")
                entry.update(code=ev.code, reason=ev.reason, active=ev.active, expires=ev.expires)
                now_ok = ev.code == 200 and ev.active
                if now_ok != was:
                    entry["since"] = ev.ts
                    log.info(
                        "worker %d: %s %s (%d %s)",
                        index,
                        ev.account,
                        "registered" if now_ok else "NOT registered",
                        ev.code,
                        ev.reason,
                    )
                write_status()
            elif isinstance(ev, IncomingCall):
                in_call[ev.handle] = ev.account
                if pop.configured:
                    pop_callers[ev.handle] = pop_caller(ev.remote_uri, ev.lab_call_id)
                log.info("worker %d: %s <- call %s (%s)", index, ev.account, ev.lab_call_id, ev.sip_call_id)
            elif isinstance(ev, CallAnswered):
                if ev.handle in in_call:
                    counters.answered()
                if ev.handle in pop_callers and ev.handle not in pops:
                    # Answered already (in the pjsua2 thread); the card is fetched alongside.
                    pops[ev.handle] = (asyncio.ensure_future(pop.fetch(pop_callers[ev.handle])), time.monotonic())
            elif isinstance(ev, CallEnded) and ev.outcome.direction == "in":
                in_call.pop(ev.outcome.handle, None)
                calls_total += 1
                if agents.get(ev.outcome.account, {}).get("rehome"):
                    kick_rehome()
                record = agent_event(ev.outcome, args.region, index, None, registered_in(ev.outcome.account))
                log.info(
                    "worker %d: %s call %s ended: %s, %.1fs, rx %d tx %d loss %.1f%%",
                    index,
                    record["agent"],
                    record["call_id"],
                    record["end_reason"],
                    record["duration_s"],
                    record["rx_packets"],
                    record["tx_packets"],
                    record["loss_pct"],
                )
                pending = pops.get(ev.outcome.handle)
                if pending is not None and not pending[0].done():
                    writer = asyncio.ensure_future(append_when_popped(ev.outcome, pending[0]))
                    late_writers.add(writer)
                    writer.add_done_callback(late_writers.discard)
                else:
                    await append_call(
                        agent_event(
                            ev.outcome,
                            args.region,
                            index,
                            settled(ev.outcome.handle),
                            registered_in(ev.outcome.account),
                        )
                    )
        if time.monotonic() >= next_control:
            next_control = time.monotonic() + CONTROL_POLL_S
            if not args.no_register:
                poll_control()
                kick_rehome()  # a move, or a retry of accounts that could not move yet
        if time.monotonic() >= next_write:
            next_write = time.monotonic() + 2.0
            if os.getppid() != parent:
                log.error("worker %d: supervisor gone, exiting", index)
                break
            with contextlib.suppress(OSError):
                write_status()
    log.info("worker %d: stopping", index)
    with contextlib.suppress(OSError):
        for entry in agents.values():
            entry.update(active=False, reason="stopping")
        write_status("stopping")
    for task in [*bringups, *rehoming]:
        task.cancel()
    await ua.stop(timeout=3.0)
    # Drain the final CallEnded events (calls hung up by the shutdown) into the event log; a screen
    # pop still in flight is reported as an unfinished fallback.
    while not ua.events.empty():
        ev = ua.events.get_nowait()
        if isinstance(ev, CallEnded) and ev.outcome.direction == "in":
            record = agent_event(
                ev.outcome, args.region, index, settled(ev.outcome.handle), registered_in(ev.outcome.account)
            )
            counters.call_ended(record)
            with contextlib.suppress(OSError):
                events.append(events.AgentCall.of(record))
    for fetch, _ in pops.values():
        fetch.cancel()
    if late_writers:
        await asyncio.wait(late_writers, timeout=1.0)
    with contextlib.suppress(OSError):  # the last counts, for the supervisor's metrics
        write_status("stopping")
    if session is not None:
        await session.close()
    if fatal:
        raise RuntimeError("an agent could not be brought up") from fatal[0]


def worker_main(args: argparse.Namespace) -> None:
    from agents.ua import redirect_stdout_to_stderr

    redirect_stdout_to_stderr()
    code = 0
    try:
        asyncio.run(run_worker(args))
    except Exception:
        log.exception("worker %s crashed", args.worker)
        code = 1
    sys.stderr.flush()
    os._exit(code)


# --------------------------------------------------------------------------------------------
# Supervisor
# --------------------------------------------------------------------------------------------


def rehome_event(args: argparse.Namespace, decision: Decision, agents: list[str], seq: int) -> dict[str, Any]:
    """The `agent_rehome` event record of one supervisor decision."""
    away = decision.placement == FALLBACK
    return {
        "region": args.region,
        "to_region": args.fallback_region if away else args.region,
        "from_region": args.region if away else args.fallback_region,
        "proxy": args.fallback_proxy if away else args.proxy,
        "placement": decision.placement,
        "rule": decision.rule,
        "reason": decision.reason,
        "streak_s": decision.streak_s,
        "evidence": decision.evidence,
        "agents": agents,
        "rehome_after_s": args.rehome_after,
        "return_after_s": args.rehome_after if args.return_after is None else args.return_after,
        "seq": seq,
    }


class Supervisor:
    def __init__(self, args: argparse.Namespace, argv: list[str]) -> None:
        self.args = args
        self.argv = argv
        self.plan = plan(args)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.started: dict[int, float] = {}
        self.backoff: dict[int, float] = {}
        self.next_start: dict[int, float] = {}
        self.restarts: dict[int, int] = dict.fromkeys(self.plan, 0)
        self.stopping = False
        self.metrics = AgentMetrics(args.region, fallback_region=args.fallback_region or None)
        self.next_scan = 0.0
        self.workers: dict[int, dict[str, Any] | None] = {}  # latest status file of each worker
        # Re-homing (only with --fallback-proxy): the policy, the probes feeding it, the control file.
        self.policy: RehomePolicy | None = None
        if args.fallback_proxy and not args.no_register:
            self.policy = RehomePolicy(
                args.rehome_after, args.return_after, probes=(SBC, PBX) if args.home_pbx else (SBC,)
            )
        # One core.sipprobe.OptionsProber (one socket) per probe source, made in the event
        # loop: a prober fails every pending probe on an ICMP error, so targets do not share one.
        self.probers: dict[str, Any] = {}
        self.seq = 0
        self.target = {"proxy": args.proxy, "region": args.region}
        self.decisions: list[dict[str, Any]] = []

    @property
    def agents(self) -> list[str]:
        return [a for w in self.plan.values() for a in w["agents"]]

    def scan(self, index: int) -> None:
        """Feed worker `index`'s status file to the metrics (cheap: a small JSON file)."""
        try:
            data = read_json(worker_path(status_path(), index))
        except (OSError, ValueError):
            data = None
        proc = self.procs.get(index)
        alive = proc is not None and proc.poll() is None
        data = data if isinstance(data, dict) else None
        self.workers[index] = data if alive else None
        self.metrics.observe_worker(index, data, time.time(), alive=alive)

    def status(self) -> dict[str, Any]:
        """The supervisor's status document (what write_status puts in the status file)."""
        return {
            "supervisor_pid": os.getpid(),
            "region": self.args.region,
            "proxy": self.args.proxy,
            "direct": bool(self.args.no_register),
            "agents": self.agents,
            "workers": {
                str(i): {**w, "pid": p.pid if (p := self.procs.get(i)) else None, "restarts": self.restarts[i]}
                for i, w in self.plan.items()
            },
            "updated": time.time(),
            **({"rehome": self.rehome_status()} if self.policy is not None else {}),
        }

    def write_status(self) -> None:
        write_json_atomic(status_path(), self.status())

    def write_health(self) -> None:
        """The HEALTHCHECK's verdict, from the status just scanned (see status.write_health)."""
        verdict = evaluate(self.status(), {i: self.workers.get(i) for i in self.plan}, time.time(), DEFAULT_MAX_AGE_S)
        with contextlib.suppress(OSError):
            write_health(status_path(), verdict)

    def rehome_status(self) -> dict[str, Any]:
        assert self.policy is not None
        return {
            **self.policy.snapshot(),
            "target": {**self.target, "seq": self.seq},
            "home": {"proxy": self.args.proxy, "region": self.args.region, "pbx": self.args.home_pbx or None},
            "fallback": {"proxy": self.args.fallback_proxy, "region": self.args.fallback_region},
            "last_decisions": self.decisions[-5:],
        }

    def write_control(self, reason: str = "start") -> None:
        placement = self.policy.placement if self.policy is not None else HOME
        write_control(status_path(), self.target, placement, self.seq, reason)

    # -- re-homing

    def probe_targets(self) -> list[tuple[str, str, int]]:
        """(policy source, host, port) probed every second."""
        out = [(SBC, *hostport(self.args.proxy))]
        if self.args.home_pbx:
            out.append((PBX, *hostport(self.args.home_pbx)))
        out.append((FALLBACK_PROBE, *hostport(self.args.fallback_proxy)))
        return out

    async def probe_once(self, now: float) -> None:
        """One OPTIONS to each target (concurrently), fed to the policy with the time they were sent."""
        assert self.policy is not None
        targets = self.probe_targets()
        replies = await asyncio.gather(
            *(self.probers[source].probe(host, port, timeout_s=PROBE_TIMEOUT_S, resend_s=PROBE_TIMEOUT_S / 2)
              for source, host, port in targets)
        )  # fmt: skip
        for (source, _, _), reply in zip(targets, replies, strict=True):
            detail = "" if reply.ok else reply.error or f"{reply.code}"
            decision = self.policy.observe(now, source, reply.ok, detail)
            if decision is not None:
                await self.apply(decision)

    async def probe_loop(self) -> None:
        while not self.stopping:
            t0 = time.monotonic()
            try:
                await self.probe_once(t0)
            except Exception:
                log.exception("supervisor: probing failed")
            await asyncio.sleep(max(0.05, PROBE_INTERVAL_S - (time.monotonic() - t0)))

    def observe_registrations(self, now: float) -> Decision | None:
        """REGISTER results of the accounts registering through the home proxy, from the status files."""
        assert self.policy is not None
        registered, failed = registrations_via(self.workers, self.args.proxy, time.time())
        return self.policy.observe_registrations(now, registered, failed)

    async def apply(self, decision: Decision) -> None:
        """Tell the workers (control file), count it, log it as an `agent_rehome` event."""
        away = decision.placement == FALLBACK
        self.target = (
            {"proxy": self.args.fallback_proxy, "region": self.args.fallback_region}
            if away
            else {"proxy": self.args.proxy, "region": self.args.region}
        )
        self.seq += 1
        self.write_control(decision.reason)
        self.metrics.rehome_decision(self.target["region"])
        record = rehome_event(self.args, decision, self.agents, self.seq)
        self.decisions.append(
            {k: record[k] for k in ("to_region", "proxy", "rule", "reason", "seq")} | {"t": time.time()}
        )
        log.warning("supervisor: agents move to %s (%s): %s", self.target["region"], self.target["proxy"],
                    decision.reason)  # fmt: skip
        self.write_status()
        from core import events

        try:
            await asyncio.to_thread(events.append, events.AgentRehome.of(record))
        except OSError:
            log.exception("could not append agent_rehome event")

    # -- the loop

    def spawn(self, index: int) -> None:
        cmd = [sys.executable, "-m", "agents.agent", *self.argv, "--worker", str(index)]
        self.procs[index] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        self.started[index] = time.monotonic()
        log.info("supervisor: worker %d started (pid %d)", index, self.procs[index].pid)

    def run(self) -> None:
        asyncio.run(self._run())
        self.shutdown()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig, None)
        serve(self.metrics.registry, self.args.metrics_port, self.args.bind)
        self.write_control()  # before any worker reads it: a stale one from an earlier run says nothing
        for i in self.plan:
            self.spawn(i)
        self.write_status()
        prober: asyncio.Task[None] | None = None
        if self.policy is not None:
            from core.sipprobe import OptionsProber

            for source, _, _ in self.probe_targets():
                self.probers[source] = OptionsProber(self.args.bind or "0.0.0.0")
                await self.probers[source].start()
            prober = asyncio.ensure_future(self.probe_loop())
            log.info("supervisor: re-homing to %s (%s) after %.1f s down, back after %.1f s up",
                     self.args.fallback_region, self.args.fallback_proxy, self.policy.rehome_after_s,
                     self.policy.return_after_s)  # fmt: skip
        try:
            while not self.stopping:
                await asyncio.sleep(0.5)
                await self.step()
        finally:
            if prober is not None:
                prober.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await prober
            for each in self.probers.values():
                each.close()

    async def step(self) -> None:
        changed = False
        now = time.monotonic()
        if now >= self.next_scan:
            self.next_scan = now + 2.0
            for i in self.plan:
                self.scan(i)
            self.write_health()
            if self.policy is not None:
                decision = self.observe_registrations(now)
                if decision is not None:
                    await self.apply(decision)
                else:
                    changed = True  # the status file shows the policy's view
        if self.policy is not None and (decision := self.policy.tick(time.monotonic())) is not None:
            await self.apply(decision)
        for i in self.plan:
            proc = self.procs.get(i)
            if proc is not None and proc.poll() is None:
                if now - self.started[i] > 60:
                    self.backoff[i] = 0.0
                continue
            if proc is not None:
                log.error("supervisor: worker %d exited with %s", i, proc.returncode)
                self.scan(i)  # its last counts, before a new worker overwrites the file
                del self.procs[i]
                delay = min(10.0, max(1.0, self.backoff.get(i, 0.0) * 2))
                self.backoff[i] = delay
                self.next_start[i] = now + delay
            if now >= self.next_start.get(i, 0.0) and not self.stopping:
                self.restarts[i] += 1
                self.spawn(i)
                changed = True
        if changed:
            self.write_status()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        log.info("supervisor: stopping %d workers", len(self.procs))
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("supervisor: killing worker pid %d", proc.pid)
                proc.kill()
        sys.stderr.flush()
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.worker is not None:
        worker_main(args)
        return
    Supervisor(args, raw).run()


if __name__ == "__main__":
    main()
