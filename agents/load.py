"""The caller-side traffic generator: seeded call arrivals through a pool of pjsua2 worker processes.

    python -m agents.load --cps 5 --duration 60 [--arrivals constant|poisson] [--hold-mean 10]
        [--hold-dist exp|fixed] [--hold-min 1] [--max-concurrent 40] [--seed N]
        [--target sip:support@10.77.0.11:5060 | --steer http|ttl|sticky]
        [--steering-url http://10.77.0.5:8080] [--steering-dns 10.77.0.5] [--zone cx.lab]
        [--response-timeout 2] [--answer-timeout 30] [--media-timeout 5]
        [--sip-port-base 5100] [--rtp-base 40000] [--bind ADDR] [--run-id ID] [--json]
        [--metrics-port 9102]

pjsua2 holds at most 4 calls per process, so this supervisor runs N = ceil(max_concurrent / 4)
workers (`agents.loadworker`): worker i on SIP port sip-port-base + i, RTP ports
[rtp-base + i*160, +80) (after a restart: the next 80, then back). It restarts a worker that dies
(backoff 1 s doubling to 10 s); calls that worker held are recorded as `info` / `worker_lost`.

The schedule (arrival offsets and hold times) is computed up front from --seed (printed in the
summary), so a run can be replayed. An arrival finding --max-concurrent calls in flight (or no
worker slot) is recorded as a `fail` with end_reason `capacity`: nothing is queued.

Target per call: --target (chosen_by "target"; several --target: rotated call by call);
--steer http: GET {steering-url}/v1/route (1 s timeout; a failure is a `fail` / `no_route`);
--steer ttl: SRV _sip._udp.<zone> asked of --steering-dns, cached for its TTL, ordered by RFC 2782;
--steer sticky: the same, cached 300 s whatever the TTL (a stale resolver).
With SRV a call moves to the next target on 503, 408 or no response within --response-timeout
(RFC 3263).

Event log (core.events, WOBBLE_EVENTS; docs/events.md), Jepsen style: `load_invoke` {schema, run_id,
call_id, t_invoke, target, chosen_by, worker, hold_s} when a call is attempted, then exactly one of
`load_ok` / `load_fail` / `load_info` with the call record (agents.loadmodel.call_record).
A run holds core.history.RunLock (<events dir>/runs/<run_id>.lock) while it runs. On start it first
closes the calls that dead earlier runs left open (core.history.recover_log: `load_info`,
end_reason `recovered`); the summary's `recovered` says how many.

Metrics (agents.metrics): Prometheus on --metrics-port (default 9102, 0: off) while the run lasts:
wobble_call_attempts_total{region,chosen_by}, wobble_call_outcomes_total{outcome,reason},
wobble_call_pdd_seconds, wobble_call_mos.

stdout: the LAST line is the run summary (one JSON object, see agents.loadmodel.summarize);
logs go to stderr. SIGINT/SIGTERM: stop launching, hang up in-flight calls, record them, summarize.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import logging
import math
import os
import random
import signal
import sys
import time
import urllib.request
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from agents import loadmodel
from agents.metrics import LOAD_PORT, LoadMetrics, attempt_region, sbc_regions, serve
from agents.model import parse_valid_args, uri_host
from core import events, history

log = logging.getLogger("agents.load")

SLOTS = 4  # calls per worker (PJSUA_MAX_CALLS)
RTP_PER_WORKER = 160  # two generations of agents.loadworker's 4 slots x 20 ports
RTP_PER_GENERATION = 80
STICKY_S = 300.0
STOP_WAIT_S = 6.0  # after "stop": how long hung-up calls get to report


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agents.load", description="Generate measured SIP call load.")
    p.add_argument("--cps", type=float, required=True, help="calls per second asked")
    p.add_argument("--duration", type=float, required=True, help="seconds of arrivals")
    p.add_argument("--arrivals", choices=("constant", "poisson"), default="constant")
    p.add_argument("--hold-mean", type=float, default=10.0, help="mean hold time after answer, s")
    p.add_argument("--hold-dist", choices=("exp", "fixed"), default="exp")
    p.add_argument("--hold-min", type=float, default=1.0, help="floor of exponential hold times, s")
    p.add_argument("--max-concurrent", type=int, default=40, help="calls in flight at most (else: capacity)")
    p.add_argument("--seed", type=int, default=None, help="schedule seed (default: random, printed)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--target",
        action="append",
        help="fixed request URI, e.g. sip:support@10.77.0.11:5060; repeat it to rotate calls over several",
    )
    how.add_argument("--steer", choices=("http", "ttl", "sticky"), help="ask steering for each call's target")
    p.add_argument("--steering-url", default="http://10.77.0.5:8080")
    p.add_argument("--steering-dns", default="10.77.0.5")
    p.add_argument("--zone", default="cx.lab", help="SRV zone: _sip._udp.<zone>")
    p.add_argument("--response-timeout", type=float, default=2.0, help="no response at all this long: next target")
    p.add_argument("--answer-timeout", type=float, default=30.0, help="no final response this long: give up")
    p.add_argument("--media-timeout", type=float, default=5.0, help="no RTP received this long: hang up")
    p.add_argument("--sip-port-base", type=int, default=5100)
    p.add_argument("--rtp-base", type=int, default=40000)
    p.add_argument("--bind", default="", help="local address for SIP and RTP (default: all)")
    p.add_argument("--run-id", default=None)
    p.add_argument("--json", action="store_true", help="(the summary is always the last stdout line)")
    p.add_argument("--log-level", type=int, default=1, help="pjsua log level 0-6 of the workers")
    p.add_argument("--metrics-port", type=int, default=LOAD_PORT, help="Prometheus /metrics port (0: off)")
    args = parse_valid_args(p, argv, validate_args)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**31)
    if not args.run_id:
        args.run_id = f"load-{time.strftime('%Y%m%dT%H%M%S')}-{os.urandom(2).hex()}"
    return args


def worker_count(max_concurrent: int) -> int:
    return math.ceil(max_concurrent / SLOTS)


def max_worker_count(max_concurrent: int) -> int:
    """The fleet's ceiling: the base fleet plus spares for slots that linger. A call hung up before
    any response (an INVITE into a dead SBC) or a BYE into a dead SBC keeps its pjsua slot until
    the transaction times out (timer B/F, 32 s); spares take the new calls meanwhile."""
    n = worker_count(max_concurrent)
    return n + max(4, math.ceil(n / 2))


#: How long an arrival that finds no free slot waits for one (a spare starting) before it is
#: refused as `capacity` (a harness failure). The wait is before the INVITE: PDD does not include it.
SLOT_WAIT_S = 3.0
#: How many other workers a call is offered to when a worker's pjsua had no call slot free.
REQUEUE_MAX = 3


def validate_args(args: argparse.Namespace) -> list[str]:
    problems: list[str] = []
    if not 0 < args.cps <= 200:
        problems.append("--cps must be in (0, 200]")
    if not 0 < args.duration <= 86400:
        problems.append("--duration must be in (0, 86400]")
    if not 0 <= args.hold_mean <= 86400 or args.hold_min < 0:
        problems.append("--hold-mean and --hold-min must be >= 0")
    if args.hold_dist == "exp" and args.hold_mean <= 0:
        problems.append("--hold-mean must be > 0 for exponential hold times")
    if not 1 <= args.max_concurrent <= 400:
        problems.append("--max-concurrent must be 1-400")
    for target in args.target or []:
        if not str(target).startswith("sip:") or uri_host(target) is None:
            problems.append(f"--target must be a sip: URI with a host, got {target!r}")
    if not 0 <= args.metrics_port <= 65535:
        problems.append("--metrics-port must be 0 (off) or a TCP port")
    if args.response_timeout < 0 or not 0 < args.answer_timeout <= 600 or args.media_timeout < 0:
        problems.append("--response-timeout/--media-timeout must be >= 0, --answer-timeout in (0, 600]")
    if args.run_id is not None and not loadmodel_token(args.run_id):
        problems.append("--run-id must be 1-64 characters of [A-Za-z0-9._~-]")
    if args.max_concurrent >= 1:
        n = max_worker_count(args.max_concurrent)
        sip = (args.sip_port_base, args.sip_port_base + n - 1)
        rtp = (args.rtp_base, args.rtp_base + n * RTP_PER_WORKER - 1)
        if sip[0] < 1 or sip[1] > 65535:
            problems.append("--sip-port-base range does not fit in 1-65535")
        if rtp[0] < 1024 or rtp[1] > 65535:
            problems.append("--rtp-base range does not fit in 1024-65535")
        if sip[0] <= rtp[1] and rtp[0] <= sip[1]:
            problems.append("SIP ports overlap the RTP port range")
    return problems


def loadmodel_token(value: str) -> bool:
    from agents.model import TOKEN_RE

    return bool(TOKEN_RE.match(value))


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


class NoRouteError(Exception):
    pass


@dataclass
class Route:
    uris: list[str]
    chosen_by: str
    extra: dict[str, Any] = field(default_factory=dict)


class FixedRouter:
    """--target: the given URI; several --target: one after the other, call by call."""

    def __init__(self, uris: list[str]) -> None:
        self.uris = itertools.cycle(uris)

    async def route(self) -> Route:
        return Route([next(self.uris)], "target")


class HttpRouter:
    def __init__(self, base_url: str, timeout: float = 1.0) -> None:
        self.url = base_url.rstrip("/") + "/v1/route"
        self.timeout = timeout

    def _get(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:
            data = json.loads(resp.read())
        if not isinstance(data, dict):
            raise ValueError("route is not an object")
        return data

    async def route(self) -> Route:
        try:
            data = await asyncio.to_thread(self._get)
            uri = data.get("uri") or f"sip:support@{data['sbc']}:{int(data['port'])}"
        except Exception as exc:
            raise NoRouteError(f"{self.url}: {exc}") from None
        return Route([str(uri)], "http", {"steered_region": data.get("region")})


class SrvRouter:
    """RFC 3263 over the steering DNS. `sticky`: keep an answer STICKY_S whatever its TTL."""

    def __init__(self, server: str, zone: str, mode: str, rng: random.Random, timeout: float = 1.0) -> None:
        self.server = server
        self.qname = f"_sip._udp.{zone}"
        self.mode = mode
        self.rng = rng
        self.timeout = timeout
        self.records: list[Any] = []
        self.expires = 0.0
        self.lock = asyncio.Lock()
        self.queries = 0

    def _query(self) -> bytes:
        from dnslib import DNSRecord

        packet: bytes = DNSRecord.question(self.qname, "SRV").send(self.server, 53, timeout=self.timeout)
        return packet

    async def route(self) -> Route:
        from core.dnssrv import order_srv, parse_srv_reply

        async with self.lock:
            now = time.monotonic()
            if now >= self.expires or not self.records:
                self.queries += 1
                try:
                    records, ttl = parse_srv_reply(await asyncio.to_thread(self._query))
                except Exception as exc:
                    if not (self.mode == "sticky" and self.records):
                        raise NoRouteError(f"DNS {self.qname} @{self.server}: {exc}") from None
                    log.warning("DNS %s failed (%s); sticky: keeping the old answer", self.qname, exc)
                else:
                    if not records:
                        raise NoRouteError(f"DNS {self.qname} @{self.server}: no SRV records")
                    self.records = records
                    self.expires = now + (STICKY_S if self.mode == "sticky" else max(0, ttl))
            ordered = order_srv(list(self.records), self.rng)
        uris = [f"sip:support@{t.host}:{t.port}" for t in ordered]
        return Route(uris, self.mode, {"srv_regions": [t.region for t in ordered]})


# --------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------


@dataclass
class WorkerHandle:
    index: int
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    pending: dict[str, asyncio.Future[dict[str, Any] | None]] = field(default_factory=dict)
    lingering: int = 0
    stuck: int = 0  # lingering slots that wait out a transaction (spare workers replace them)
    started: float = 0.0
    backoff: float = 0.0
    restarts: int = 0
    reader: asyncio.Task[None] | None = None

    @property
    def free(self) -> int:
        if not self.ready or self.proc is None:
            return 0
        return SLOTS - len(self.pending) - self.lingering

    def send(self, msg: dict[str, Any]) -> bool:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return False
        try:
            proc.stdin.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())
        except (ConnectionError, RuntimeError):
            return False
        return True


class LoadRun:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id: str = args.run_id
        self.plan = loadmodel.schedule(
            args.cps, args.duration, args.arrivals, args.hold_dist, args.hold_mean, args.hold_min, args.seed
        )
        self.nworkers = worker_count(args.max_concurrent)
        self.max_workers = max_worker_count(args.max_concurrent)
        self.workers = [WorkerHandle(i) for i in range(self.nworkers)]
        self.spares_started = 0
        self.spawning: set[asyncio.Task[None]] = set()
        self.slot_waits = 0
        self.requeued = 0
        self.records: list[dict[str, Any]] = []
        self.inflight = 0
        self.max_seen = 0
        self.stop = asyncio.Event()
        self.stopping_workers = False
        self.calls: set[asyncio.Task[None]] = set()
        self.writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="events")
        self.writes: list[Awaitable[Any]] = []
        self.metrics = LoadMetrics()
        self.sbcs = sbc_regions()
        rng = random.Random(f"{args.seed}/srv")
        self.router: FixedRouter | HttpRouter | SrvRouter
        if args.target:
            self.router = FixedRouter(args.target)
        elif args.steer == "http":
            self.router = HttpRouter(args.steering_url)
        else:
            self.router = SrvRouter(args.steering_dns, args.zone, args.steer, rng)

    # -- event log (one writer thread: an invoke is always written before its completion)

    def emit(self, event: events.Event) -> None:
        loop = asyncio.get_running_loop()
        self.writes.append(loop.run_in_executor(self.writer, self._append, events.append, event))

    def invoke(
        self,
        call_id: str,
        t_invoke: float,
        target: str | None,
        chosen_by: str,
        worker: int | None,
        hold: float,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """A call is attempted: its `load_invoke` event, and the attempts metric."""
        self.emit(
            events.LoadInvoke.of(
                loadmodel.invoke_record(self.run_id, call_id, t_invoke, target, chosen_by, worker, hold)
            )
        )
        self.metrics.attempt(attempt_region(target, extra, self.sbcs), chosen_by)

    @staticmethod
    def _append(fn: Any, event: events.Event) -> None:
        try:
            fn(event)
        except OSError:
            log.exception("could not append %s event", event.kind)

    # -- workers

    async def spawn(self, w: WorkerHandle) -> None:
        a = self.args
        # A restarted worker uses the other half of its RTP range: the far ends of the calls its
        # predecessor lost may still be sending to the old ports.
        rtp = a.rtp_base + w.index * RTP_PER_WORKER + (w.restarts % 2) * RTP_PER_GENERATION
        cmd = [
            sys.executable,
            "-m",
            "agents.loadworker",
            "--index",
            str(w.index),
            "--sip-port",
            str(a.sip_port_base + w.index),
            "--rtp-base",
            str(rtp),
            "--response-timeout",
            str(a.response_timeout),
            "--answer-timeout",
            str(a.answer_timeout),
            "--media-timeout",
            str(a.media_timeout),
            "--log-level",
            str(a.log_level),
        ]
        if a.bind:
            cmd += ["--bind", a.bind]
        w.ready = False
        w.lingering = 0
        w.stuck = 0
        w.proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20
        )
        w.started = time.monotonic()
        w.reader = asyncio.ensure_future(self.read_worker(w, w.proc))
        log.info("worker %d started (pid %d)", w.index, w.proc.pid)

    async def read_worker(self, w: WorkerHandle, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                line = await proc.stdout.readline()
            except (ValueError, ConnectionError):
                line = b""
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            ev = msg.get("ev")
            if ev == "ready":
                w.ready = True
                log.info("worker %d ready: SIP on %s", w.index, msg.get("sip"))
            elif ev == "done":
                w.lingering = int(msg.get("lingering", 0))
                fut = w.pending.pop(str(msg.get("call_id")), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                self.keep_headroom()
            elif ev == "slots":
                w.lingering = int(msg.get("lingering", 0))
                w.stuck = int(msg.get("stuck", w.stuck))
                self.keep_headroom()
        code = await proc.wait()
        w.ready = False
        lost = list(w.pending.values())
        w.pending.clear()
        for fut in lost:
            if not fut.done():
                fut.set_result(None)
        if self.stopping_workers:
            return
        log.error("worker %d exited with %s; %d calls lost", w.index, code, len(lost))
        w.proc = None
        if time.monotonic() - w.started > 60:
            w.backoff = 0.0
        w.backoff = min(10.0, max(1.0, w.backoff * 2))
        await asyncio.sleep(w.backoff)
        if not self.stopping_workers:
            w.restarts += 1
            await self.spawn(w)

    def keep_headroom(self) -> None:
        """Replace stuck slots with a spare worker: the fleet keeps its base number of usable slots
        (max_concurrent's) while finished calls wait out their transactions, up to its ceiling."""
        if self.spawning or self.stopping_workers or len(self.workers) >= self.max_workers:
            return
        if any(w.proc is not None and not w.ready for w in self.workers):
            return  # one starting already
        stuck = sum(w.stuck for w in self.workers if w.proc is not None)
        if len(self.workers) * SLOTS - stuck >= self.nworkers * SLOTS:
            return
        w = WorkerHandle(len(self.workers))
        self.workers.append(w)
        self.spares_started += 1
        log.info("spare worker %d: %d slots wait out their transactions", w.index, stuck)
        task = asyncio.ensure_future(self.spawn(w))
        self.spawning.add(task)
        task.add_done_callback(self.spawning.discard)

    async def wait_worker(self, exclude: set[int] | None = None) -> WorkerHandle | None:
        """A worker with a free slot, waiting up to SLOT_WAIT_S (a spare starting) before giving up."""
        w = self.pick_worker(exclude)
        if w is not None:
            return w
        self.slot_waits += 1
        deadline = time.monotonic() + SLOT_WAIT_S
        while w is None and time.monotonic() < deadline and not self.stop.is_set():
            self.keep_headroom()
            await asyncio.sleep(0.05)
            w = self.pick_worker(exclude)
        return w

    def pick_worker(self, exclude: set[int] | None = None) -> WorkerHandle | None:
        best: WorkerHandle | None = None
        for w in self.workers:
            if exclude and w.index in exclude:
                continue
            if w.free > 0 and (best is None or w.free > best.free):
                best = w
        return best

    # -- one call

    async def launch(self, arrival: loadmodel.Arrival) -> None:
        call_id = loadmodel.new_call_id()
        t_invoke = time.time()
        hold = arrival.hold_s
        chosen_by = self.chosen_by_label()
        if self.inflight >= self.args.max_concurrent:
            self.finish_early(call_id, t_invoke, None, chosen_by, hold, "capacity")
            return
        self.inflight += 1
        self.max_seen = max(self.max_seen, self.inflight)
        try:
            try:
                route = await self.router.route()
            except NoRouteError as exc:
                log.warning("call %s: no route: %s", call_id, exc)
                self.finish_early(call_id, t_invoke, None, chosen_by, hold, "no_route")
                return
            refused: set[int] = set()
            msg: dict[str, Any] | None = None
            worker: int | None = None
            while True:
                w = await self.wait_worker(refused)
                if w is None:
                    if not refused:
                        self.finish_early(
                            call_id, t_invoke, route.uris[0], route.chosen_by, hold, "capacity", route.extra
                        )
                        return
                    msg = {"requeue": True}  # refused by every worker we tried: never sent
                    break
                worker = w.index
                fut: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
                w.pending[call_id] = fut
                self.keep_headroom()
                if not refused:
                    self.invoke(call_id, t_invoke, route.uris[0], route.chosen_by, w.index, hold, route.extra)
                if not w.send({"op": "call", "call_id": call_id, "targets": route.uris, "hold_s": hold}):
                    w.pending.pop(call_id, None)
                    fut.set_result(None)
                msg = await fut
                # A worker whose pjsua had no free call slot sent no INVITE: place the call on another.
                if msg is None or not msg.get("requeue") or len(refused) >= REQUEUE_MAX:
                    break
                refused.add(w.index)
                self.requeued += 1
                log.info("call %s: worker %d had no pjsua slot free; placing it on another", call_id, w.index)
            common: dict[str, Any] = dict(
                run_id=self.run_id, call_id=call_id, hold_s=hold, chosen_by=route.chosen_by, worker=worker,
                t_invoke=t_invoke, t_end=time.time(), extra=route.extra,
            )  # fmt: skip
            if msg is None:  # the worker died with the call in flight: outcome unknown
                rec = loadmodel.call_record(**common, end_reason="worker_lost", targets_tried=route.uris[:1])
            elif msg.get("requeue"):  # no worker had a pjsua slot: never sent
                rec = loadmodel.call_record(**common, end_reason="capacity")
            else:
                rec = loadmodel.call_record(
                    **common,
                    result=msg.get("result"),
                    targets_tried=msg.get("targets_tried") or [],
                    one_way_s=float(msg.get("one_way_s") or 0.0),
                )
            self.complete(rec)
        finally:
            self.inflight -= 1

    def finish_early(
        self,
        call_id: str,
        t_invoke: float,
        target: str | None,
        chosen_by: str,
        hold: float,
        reason: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.invoke(call_id, t_invoke, target, chosen_by, None, hold, extra)
        self.complete(
            loadmodel.call_record(
                run_id=self.run_id,
                call_id=call_id,
                hold_s=hold,
                chosen_by=chosen_by,
                worker=None,
                t_invoke=t_invoke,
                t_end=time.time(),
                end_reason=reason,
                extra=extra,
            )
        )

    def complete(self, rec: dict[str, Any]) -> None:
        self.records.append(rec)
        self.emit(events.load_completion(rec))
        self.metrics.complete(rec)
        if rec["status"] != "ok":
            log.info(
                "call %s: %s %s (%s, fate %s)",
                rec["call_id"],
                rec["status"],
                rec["end_reason"],
                rec["final_code"],
                rec["fate"],
            )

    # -- the run

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        t_start = time.monotonic()
        lock = await self.take_lock()
        recovered = await self.recover()
        serve(self.metrics.registry, self.args.metrics_port, self.args.bind)
        for w in self.workers:
            await self.spawn(w)
        ready_deadline = time.monotonic() + 15.0
        while not all(w.ready for w in self.workers) and time.monotonic() < ready_deadline and not self.stop.is_set():
            await asyncio.sleep(0.05)
        if not all(w.ready for w in self.workers):
            log.error("only %d/%d workers ready; going on", sum(w.ready for w in self.workers), self.nworkers)
        log.info(
            "run %s: %d calls over %.0f s (seed %d), %d workers",
            self.run_id,
            len(self.plan),
            self.args.duration,
            self.args.seed,
            self.nworkers,
        )
        t0 = time.monotonic()
        progress = asyncio.ensure_future(self.progress())
        for arrival in self.plan:
            delay = t0 + arrival.t - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
            if self.stop.is_set():
                break
            task = asyncio.ensure_future(self.launch(arrival))
            self.calls.add(task)
            task.add_done_callback(self.calls.discard)
        launch_s = min(time.monotonic() - t0, self.args.duration) if self.stop.is_set() else self.args.duration
        if not self.stop.is_set() and self.calls:
            max_hold = max((a.hold_s for a in self.plan), default=0.0)
            bound = max_hold + 10.0
            log.info("launching done; waiting up to %.0f s for %d calls", bound, len(self.calls))
            stopper = asyncio.ensure_future(self.stop.wait())
            deadline = loop.time() + bound
            while self.calls and not self.stop.is_set() and loop.time() < deadline:
                await asyncio.wait(
                    {stopper, *self.calls}, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
                )
            stopper.cancel()
        if self.calls:
            log.info("stopping: hanging up %d calls", len(self.calls))
            for w in self.workers:
                w.send({"op": "stop"})
            await asyncio.wait(set(self.calls), timeout=STOP_WAIT_S)
        for w in self.workers:  # whatever still has no answer
            for fut in w.pending.values():
                if not fut.done():
                    fut.set_result({"result": {"end_reason": "abandoned"}})
        if self.calls:
            await asyncio.wait(set(self.calls), timeout=1.0)
        progress.cancel()
        await self.shutdown_workers()
        for write in self.writes:
            with contextlib.suppress(Exception):
                await write
        self.writer.shutdown(wait=True)
        if lock is not None:
            lock.release()  # every event of the run is written: it may now be looked at as over
        stats = loadmodel.RunStats(
            cps_asked=self.args.cps,
            launch_s=launch_s,
            duration_s=time.monotonic() - t_start,
            max_concurrent_seen=self.max_seen,
            workers=len(self.workers),
            worker_restarts=sum(w.restarts for w in self.workers),
            extra={
                "seed": self.args.seed,
                "arrivals": self.args.arrivals,
                "chosen_by": self.chosen_by_label(),
                "planned": len(self.plan),
                "stopped": self.stop.is_set(),
                "recovered": recovered,
                # The generator's own limits, apart from what was reached (max_concurrent_seen).
                "generator_cap": self.args.max_concurrent,
                "generator_slots": len(self.workers) * SLOTS,
                "spare_workers": self.spares_started,
                "slot_waits": self.slot_waits,
                "requeued": self.requeued,
            },
        )
        return loadmodel.summarize(self.run_id, self.records, stats)

    async def take_lock(self) -> history.RunLock | None:
        """Mark this run live for recoverers (core.history) before its first event."""
        from core import events

        lock = history.RunLock(events.event_path(), self.run_id)
        try:
            await asyncio.to_thread(lock.acquire)
        except OSError as exc:
            log.error("no run lock %s (%s): a recovery meanwhile may close this run's calls", lock.path, exc)
            return None
        return lock

    async def recover(self) -> int:
        """Close the calls earlier runs that died left open (never this run's, nor a live run's)."""
        from core import events

        try:
            done = await asyncio.to_thread(history.recover_log, events.event_path(), f"load:{self.run_id}")
        except (OSError, ValueError) as exc:
            log.error("recovery of open calls failed: %s", exc)
            return 0
        if done.closed:
            log.warning("closed %d calls left open by dead runs as info/recovered", len(done.closed))
        return len(done.closed)

    def chosen_by_label(self) -> str:
        return "target" if self.args.target else str(self.args.steer)

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(10.0)
            counts = {s: sum(r["status"] == s for r in self.records) for s in loadmodel.STATUSES}
            log.info("progress: %d done (%s), %d in flight", len(self.records), counts, self.inflight)

    async def shutdown_workers(self) -> None:
        self.stopping_workers = True
        if self.spawning:  # a spare still starting: let it come up, then stop it like the rest
            await asyncio.wait(set(self.spawning), timeout=5.0)
        procs = [w.proc for w in self.workers if w.proc is not None]
        for w in self.workers:
            w.send({"op": "exit"})
            if w.proc is not None and w.proc.stdin is not None:
                with contextlib.suppress(Exception):
                    w.proc.stdin.close()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 8.0)
            except TimeoutError:
                log.error("killing worker pid %d", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for w in self.workers:
            if w.reader is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(w.reader, 1.0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    code = 0
    try:
        summary = asyncio.run(LoadRun(args).run())
    except Exception as exc:
        log.exception("load run failed")
        summary = {"run_id": args.run_id, "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
