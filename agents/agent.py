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
from collections.abc import Callable
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
from core import events
from core.settings import AgentsSettings

if TYPE_CHECKING:
    from pathlib import Path

    from agents.model import CallOutcome
    from agents.screenpop import PopResult, ScreenPop
    from agents.ua import AccountSpec, CallAnswered, IncomingCall, RegState, Rehomed, UaEvent, UserAgent

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
    p.add_argument(
        "--return-after",
        type=float,
        default=None,
        help="return after home is up this long, s (default: --rehome-after)",
    )
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
    return {
        "call_id": outcome.lab_call_id,
        "agent": outcome.account,
        "agent_region": region,
        "registered_region": registered_region,
        **outcome.stats.as_dict(),
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


class Accounts:
    """The worker's accounts: where each registers (the supervisor's control file says where the
    fleet goes), their registration state for the status file, and re-homing them."""

    def __init__(
        self, args: argparse.Namespace, index: int, mine: dict[str, Any], ua: UserAgent, control: ControlReader
    ) -> None:
        self.args = args
        self.index = index
        self.mine = mine
        self.ua = ua
        self.control = control
        #: The region of every proxy seen (for the status file).
        self.proxy_regions = control.regions
        #: Each agent's entry in the status file.
        self.agents: dict[str, dict[str, Any]] = {}
        #: Accounts the engine holds.
        self.added: set[str] = set()
        self.rehoming: list[asyncio.Task[None]] = []

    def media_addr(self, proxy: str) -> str:
        """The SDP address of an account registering through `proxy`: the local address towards
        it (agents may sit on several region networks), unless --public-addr/--bind fix one."""
        if self.args.public_addr or self.args.bind or self.args.no_register:
            return ""
        return route_source_ip(hostport(proxy)[0])

    def spec(self, n: int, name: str, proxy: str) -> AccountSpec:
        from agents.ua import AccountSpec

        args = self.args
        first, last = self.mine["rtp"][name]
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
            media_addr=self.media_addr(proxy),
        )

    def registered_in(self, account: str) -> str | None:
        """The region an account is registered through (direct mode: its own)."""
        if self.args.no_register:
            return str(self.args.region)
        got = self.agents.get(account, {}).get("proxy_region")
        return str(got) if got else None

    async def add(self, n: int, name: str) -> None:
        proxy = self.control.target["proxy"]
        self.agents[name].update(proxy=proxy, proxy_region=self.proxy_regions.get(proxy, "unknown"))
        await self.ua.add_account(self.spec(n, name, proxy))
        self.added.add(name)

    def poll_control(self) -> None:
        if self.control.poll():
            new = self.control.target
            log.warning("worker %d: accounts move to %s (%s)", self.index, new["region"], new["proxy"])

    def left_behind(self, ev: RegState) -> bool:
        """A result about a registrar the account has since left (it was queued before the move)."""
        proxy = self.agents.get(ev.account, {}).get("proxy")
        return bool(ev.registrar and proxy and ev.registrar != f"sip:{proxy}")

    async def rehome(self, in_a_call: Callable[[], set[str]]) -> None:
        """Move every account not registering through the target there; one in a call keeps its
        call and moves when it has ended (asked again then, and at every control check)."""
        busy = in_a_call()
        for name in sorted(self.added):
            entry = self.agents[name]
            proxy = self.control.target["proxy"]
            if entry.get("proxy") == proxy:
                entry.pop("rehome", None)
                continue
            if name in busy:
                entry["rehome"] = f"after its call, to {self.control.target['region']}"
                continue
            try:
                moved = await self.ua.rehome_account(
                    name, f"sip:{proxy}", f"sip:{name}@{strip_port(proxy)}", self.media_addr(proxy)
                )
            except Exception:
                log.exception("worker %d: re-homing %s failed (retried)", self.index, name)
                continue
            if not moved:
                entry["rehome"] = f"after its call, to {self.control.target['region']}"

    def kick_rehome(self, in_a_call: Callable[[], set[str]]) -> None:
        if self.args.no_register or (self.rehoming and not self.rehoming[0].done()):
            return
        if any(self.agents[name].get("proxy") != self.control.target["proxy"] for name in self.added):
            self.rehoming[:] = [asyncio.ensure_future(self.rehome(in_a_call))]

    def on_rehomed(self, ev: Rehomed) -> None:
        entry = self.agents.setdefault(ev.account, {})
        proxy = ev.registrar.removeprefix("sip:")
        where = self.proxy_regions.get(proxy, "unknown")
        if entry.get("code") == 200 and entry.get("active"):
            entry["since"] = ev.ts
        entry.update(
            proxy=proxy, proxy_region=where, code=0, reason=f"re-registering via {where}", active=False, expires=0
        )
        entry.pop("rehome", None)
        log.info("worker %d: %s re-registers through %s (%s)", self.index, ev.account, proxy, where)

    def on_reg_state(self, ev: RegState) -> None:
        entry = self.agents.setdefault(ev.account, {})
        was = entry.get("code") == 200 and entry.get("active")
        entry.update(code=ev.code, reason=ev.reason, active=ev.active, expires=ev.expires)
        now_ok = ev.code == 200 and ev.active
        if now_ok != was:
            entry["since"] = ev.ts
            state = "registered" if now_ok else "NOT registered"
            log.info("worker %d: %s %s (%d %s)", self.index, ev.account, state, ev.code, ev.reason)

    def stopping(self) -> None:
        for entry in self.agents.values():
            entry.update(active=False, reason="stopping")


class CallRecords:
    """The worker's incoming calls: which are in progress, their screen pops, and the `agent_call`
    event each writes when it ends (after its pop, if that is still being fetched)."""

    def __init__(
        self, args: argparse.Namespace, index: int, pop: ScreenPop, counters: WorkerCounters, accounts: Accounts
    ) -> None:
        self.args = args
        self.index = index
        self.pop = pop
        self.counters = counters
        self.accounts = accounts
        #: Incoming call handle -> the agent's account.
        self.in_call: dict[int, str] = {}
        self.total = 0
        # Screen pops: incoming call handle -> caller id (known at INVITE), -> (fetch task, start) once answered.
        self.pop_callers: dict[int, str] = {}
        self.pops: dict[int, tuple[asyncio.Task[PopResult], float]] = {}
        self.late_writers: set[asyncio.Task[None]] = set()

    def busy(self) -> set[str]:
        """The accounts in a call now."""
        return set(self.in_call.values())

    def record(self, outcome: CallOutcome, pop: PopResult | None) -> dict[str, Any]:
        return agent_event(outcome, self.args.region, self.index, pop, self.accounts.registered_in(outcome.account))

    def settled(self, handle: int) -> PopResult | None:
        """The pop of a call whose fetch is over (or abandoned: reported as an unfinished fallback)."""
        from agents.screenpop import FALLBACK, PopResult

        self.pop_callers.pop(handle, None)
        entry = self.pops.pop(handle, None)
        if entry is None:
            return None
        task, t0 = entry
        if task.done() and not task.cancelled() and task.exception() is None:
            return task.result()
        task.cancel()
        return PopResult(FALLBACK, round((time.monotonic() - t0) * 1000.0, 1), None, "unfinished")

    async def append(self, record: dict[str, Any]) -> None:
        self.counters.call_ended(record)
        try:
            await asyncio.to_thread(events.append, events.AgentCall.of(record))
        except OSError:
            log.exception("could not append agent_call event")

    async def append_when_popped(self, outcome: CallOutcome, task: asyncio.Task[PopResult]) -> None:
        """The call ended before its pop finished: the event waits for the pop (bounded by the hard
        timeout), without holding up the worker's event loop."""
        await asyncio.wait({task}, timeout=self.pop.hard_timeout_s + 1.0)
        await self.append(self.record(outcome, self.settled(outcome.handle)))

    def on_incoming(self, ev: IncomingCall) -> None:
        self.in_call[ev.handle] = ev.account
        if self.pop.configured:
            self.pop_callers[ev.handle] = pop_caller(ev.remote_uri, ev.lab_call_id)
        log.info("worker %d: %s <- call %s (%s)", self.index, ev.account, ev.lab_call_id, ev.sip_call_id)

    def on_answered(self, ev: CallAnswered) -> None:
        if ev.handle in self.in_call:
            self.counters.answered()
        if ev.handle in self.pop_callers and ev.handle not in self.pops:
            # Answered already (in the pjsua2 thread); the card is fetched alongside.
            fetch = asyncio.ensure_future(self.pop.fetch(self.pop_callers[ev.handle]))
            self.pops[ev.handle] = (fetch, time.monotonic())

    async def on_ended(self, outcome: CallOutcome) -> None:
        self.in_call.pop(outcome.handle, None)
        self.total += 1
        if self.accounts.agents.get(outcome.account, {}).get("rehome"):
            self.accounts.kick_rehome(self.busy)
        record = self.record(outcome, None)
        log.info(
            "worker %d: %s call %s ended: %s, %.1fs, rx %d tx %d loss %.1f%%",
            self.index,
            record["agent"],
            record["call_id"],
            record["end_reason"],
            record["duration_s"],
            record["rx_packets"],
            record["tx_packets"],
            record["loss_pct"],
        )
        pending = self.pops.get(outcome.handle)
        if pending is not None and not pending[0].done():
            writer = asyncio.ensure_future(self.append_when_popped(outcome, pending[0]))
            self.late_writers.add(writer)
            writer.add_done_callback(self.late_writers.discard)
        else:
            await self.append(self.record(outcome, self.settled(outcome.handle)))

    async def drain(self, ua: UserAgent) -> None:
        """After the engine stopped: its final CallEnded events (calls hung up by the shutdown) go to
        the event log (a screen pop still in flight is an unfinished fallback), and the late
        writers get a second to finish."""
        from agents.ua import CallEnded

        while not ua.events.empty():
            ev = ua.events.get_nowait()
            if isinstance(ev, CallEnded) and ev.outcome.direction == "in":
                record = self.record(ev.outcome, self.settled(ev.outcome.handle))
                self.counters.call_ended(record)
                with contextlib.suppress(OSError):
                    events.append(events.AgentCall.of(record))
        for fetch, _ in self.pops.values():
            fetch.cancel()
        if self.late_writers:
            await asyncio.wait(self.late_writers, timeout=1.0)


class WorkerStatus:
    """The worker's status file (agents.status): what the supervisor reads for health and metrics."""

    def __init__(
        self,
        path: Path,
        args: argparse.Namespace,
        index: int,
        addr: str,
        ua: UserAgent,
        accounts: Accounts,
        calls: CallRecords,
        counters: WorkerCounters,
        pop: ScreenPop,
    ) -> None:
        self.path = path
        self.args = args
        self.index = index
        self.addr = addr
        self.ua = ua
        self.accounts = accounts
        self.calls = calls
        self.counters = counters
        self.pop = pop

    def write(self, state: str = "running") -> None:
        args = self.args
        write_json_atomic(
            self.path,
            {
                "worker": self.index,
                "pid": os.getpid(),
                "state": state,
                "region": args.region,
                "sip": self.addr,
                "updated": time.time(),
                "loop_age_s": round(max(0.0, time.monotonic() - self.ua.heartbeat), 3),
                "direct": bool(args.no_register),
                "agents": self.accounts.agents,
                "in_call": sorted(self.calls.busy()),
                "calls_total": self.calls.total,
                "counters": self.counters.as_dict(),
                "target": dict(self.accounts.control.target),
                **({"idp": args.idp_url} if args.idp_url else {}),
                **({"screen_pop": self.pop.status()} if self.pop.configured else {}),
            },
        )


class Worker:
    """One agents worker process: its user agent holds some of the fleet's accounts (at most
    PJSUA_MAX_CALLS calls), logs them in, answers their calls and follows the supervisor's moves.
    Its collaborators: `Accounts` (registration and re-homing), `CallRecords` (calls, screen pops,
    events) and `WorkerStatus` (the status file)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.index: int = args.worker
        self.mine = plan(args)[self.index]
        self.main_status = status_path()
        self.parent = os.getppid()
        self.counters = WorkerCounters()  # read by the supervisor for its metrics (agents.metrics)
        self.bringups: set[asyncio.Task[None]] = set()
        self.fatal: list[BaseException] = []
        self.stop = asyncio.Event()

    async def bring_up(self, n: int, name: str) -> None:
        """IdP mode: log in (retrying), only then add (register) the account, then keep the token
        fresh. A later IdP failure never takes the agent out of service."""
        from agents.login import LoginResult, keep_logged_in, login_until_ok

        args = self.args
        assert self.session is not None
        entry = self.accounts.agents[name]

        def note(res: LoginResult) -> None:
            entry["login"] = "ok" if res.ok else f"failed: {res.error}"
            self.counters.login(res.ok)

        first = await login_until_ok(
            self.session, args.idp_url, name, args.idp_secret, args.region, retry_s=args.login_retry_s, on_attempt=note
        )
        entry["reason"] = "not yet registered"
        await self.accounts.add(n, name)
        self.status.write()
        await keep_logged_in(
            self.session,
            args.idp_url,
            name,
            args.idp_secret,
            args.region,
            first,
            retry_s=args.login_retry_s,
            on_attempt=note,
        )

    def bring_up_done(self, task: asyncio.Task[None]) -> None:
        self.bringups.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("worker %d: bringing up an agent failed: %r", self.index, exc)
            self.fatal.append(exc)
            self.stop.set()

    async def start(self) -> None:
        """The user agent, the collaborators, and every account added (or being logged in)."""
        import aiohttp

        from agents.screenpop import ScreenPop
        from agents.ua import UaOptions, UserAgent

        args, index, mine = self.args, self.index, self.mine
        # Where accounts should register (the supervisor's control file; home until it says otherwise).
        control = ControlReader(control_path(self.main_status), {"proxy": args.proxy, "region": args.region})
        self.ua = UserAgent(
            UaOptions(
                sip_port=mine["sip_port"],
                bind_addr=args.bind,
                public_addr=args.public_addr,
                log_level=args.log_level,
                user_agent=f"wobble-agent/{args.region}",
            )
        )
        addr = await self.ua.start()
        log.info("worker %d: SIP on %s, agents %s", index, addr, ", ".join(mine["agents"]))
        self.session = aiohttp.ClientSession() if (args.idp_url or args.crm_url) else None
        self.pop = ScreenPop(self.session, args.crm_url or None, deadline_ms=args.pop_deadline_ms)
        self.accounts = Accounts(args, index, mine, self.ua, control)
        self.calls = CallRecords(args, index, self.pop, self.counters, self.accounts)
        self.status = WorkerStatus(
            worker_path(self.main_status, index),
            args,
            index,
            addr,
            self.ua,
            self.accounts,
            self.calls,
            self.counters,
            self.pop,
        )
        if not args.no_register:
            self.accounts.poll_control()  # a worker (re)started while the fleet is re-homed registers there at once
        for n, name in enumerate(mine["agents"]):
            self.accounts.agents[name] = {
                "code": 0,
                "reason": "not yet registered",
                "active": False,
                "expires": 0,
                "since": None,
            }
            if not args.idp_url:
                await self.accounts.add(n, name)
                continue
            self.accounts.agents[name].update(reason="not logged in", login="pending")
            task = asyncio.ensure_future(self.bring_up(n, name))
            self.bringups.add(task)
            task.add_done_callback(self.bring_up_done)

    async def handle(self, ev: UaEvent) -> None:
        from agents.ua import CallAnswered, CallEnded, IncomingCall, RegState, Rehomed

        if isinstance(ev, Rehomed):
            self.accounts.on_rehomed(ev)
            self.status.write()
        elif isinstance(ev, RegState) and not self.accounts.left_behind(ev):
            self.accounts.on_reg_state(ev)
            self.status.write()
        elif isinstance(ev, IncomingCall):
            self.calls.on_incoming(ev)
        elif isinstance(ev, CallAnswered):
            self.calls.on_answered(ev)
        elif isinstance(ev, CallEnded) and ev.outcome.direction == "in":
            await self.calls.on_ended(ev.outcome)

    async def run(self) -> None:
        await self.start()
        args, ua = self.args, self.ua
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        self.status.write()
        next_write = time.monotonic() + 2.0
        next_control = time.monotonic() + CONTROL_POLL_S
        stopper = asyncio.ensure_future(self.stop.wait())
        while not self.stop.is_set():
            getter = asyncio.ensure_future(ua.events.get())
            wake = min(next_write, next_control)
            done, _ = await asyncio.wait(
                {getter, stopper}, timeout=max(0.05, wake - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
            else:
                await self.handle(getter.result())
            if time.monotonic() >= next_control:
                next_control = time.monotonic() + CONTROL_POLL_S
                if not args.no_register:
                    self.accounts.poll_control()
                    # a move, or a retry of accounts that could not move yet
                    self.accounts.kick_rehome(self.calls.busy)
            if time.monotonic() >= next_write:
                next_write = time.monotonic() + 2.0
                if os.getppid() != self.parent:
                    log.error("worker %d: supervisor gone, exiting", self.index)
                    break
                with contextlib.suppress(OSError):
                    self.status.write()
        await self.shut_down()

    async def shut_down(self) -> None:
        log.info("worker %d: stopping", self.index)
        with contextlib.suppress(OSError):
            self.accounts.stopping()
            self.status.write("stopping")
        for task in [*self.bringups, *self.accounts.rehoming]:
            task.cancel()
        await self.ua.stop(timeout=3.0)
        await self.calls.drain(self.ua)
        with contextlib.suppress(OSError):  # the last counts, for the supervisor's metrics
            self.status.write("stopping")
        if self.session is not None:
            await self.session.close()
        if self.fatal:
            raise RuntimeError("an agent could not be brought up") from self.fatal[0]


async def run_worker(args: argparse.Namespace) -> None:
    await Worker(args).run()


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
            *(
                self.probers[source].probe(host, port, timeout_s=PROBE_TIMEOUT_S, resend_s=PROBE_TIMEOUT_S / 2)
                for source, host, port in targets
            )
        )
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
        log.warning(
            "supervisor: agents move to %s (%s): %s", self.target["region"], self.target["proxy"], decision.reason
        )
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
            log.info(
                "supervisor: re-homing to %s (%s) after %.1f s down, back after %.1f s up",
                self.args.fallback_region,
                self.args.fallback_proxy,
                self.policy.rehome_after_s,
                self.policy.return_after_s,
            )
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
