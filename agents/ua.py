"""The user-agent engine: pjsua2 in one dedicated thread, an asyncio-facing API outside it.

Threading model (pjsua2 is not thread-friendly; this is the only arrangement that has been stable):
- ONE worker thread creates the Endpoint and makes every pjsua2 call: it polls
  `libHandleEvents()` (threadCnt=0), drains a `queue.Queue` of commands (closures submitted by the
  asyncio side, answered through a concurrent Future), runs its own timers (ring delay), and samples
  RTP stats of every call with media every `stats_interval` seconds (pjsua drops a call's stats
  once it is DISCONNECTED, so the last sample, plus one taken at hang-up / stream destruction, is
  what the outcome reports).
- Callbacks never block: they update the call's record and hand events to asyncio with
  `loop.call_soon_threadsafe(events.put_nowait, ev)`.
- `stop()` hangs up, unregisters (best effort), calls `libDestroy()`; the process should then
  leave with `os._exit()` (pjsua2 teardown at interpreter exit can hang or crash).

At most 4 calls per process (PJSUA_MAX_CALLS in every PyPI wheel).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import heapq
import itertools
import logging
import os
import queue
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TextIO, TypeVar

import pjsua2 as pj

from agents.model import (
    CALL_HEADER,
    REPLY_HEADERS,
    CallOutcome,
    RtpStats,
    lab_call_id,
    parse_status_line,
    select_headers,
    stats_from_rtcp,
)

__all__ = [
    "AccountSpec",
    "CallAnswered",
    "CallEnded",
    "CallOutcome",
    "CallProgress",
    "IncomingCall",
    "MediaActive",
    "PortInUseError",
    "RegState",
    "Rehomed",
    "RtpStats",
    "UaEvent",
    "UaOptions",
    "UserAgent",
    "redirect_stdout_to_stderr",
]

log = logging.getLogger("agents.ua")
#: pj_status_t of EADDRINUSE (PJ_ERRNO_START_SYS + errno 98 on Linux)
PJ_EADDRINUSE = 120000 + 98


PJ_ETOOMANY = 70010
#: pjsip: the INVITE session has already ended (answering a call the caller cancelled).
PJSIP_ESESSIONTERMINATED = 171140
#: An incoming call still ringing after this long is stale (the PBX rings an agent for 15 s).
STALE_RING_S = 45.0
#: An answered call whose media has not started after this long is stale.
MIN_MEDIA_START_S = 10.0
#: How long pjsua gets to end a reaped call before our record of it is dropped.
REAP_GRACE_S = 5.0


class CallSlotsBusy(RuntimeError):
    """pjsua has no free call slot yet (a just-ended call is still being torn down)."""


class PortInUseError(OSError):
    """The SIP port asked for is taken."""


T = TypeVar("T")
MAX_CALLS = 4
#: libHandleEvents wait (ms) with no call in the process; 10 ms while calls are up.
IDLE_POLL_MS = 40


def redirect_stdout_to_stderr() -> TextIO:
    """Point fd 1 at stderr (pjlib prints to stdout before any log config applies) and return a
    text stream on the original stdout, for the one line of machine-readable output."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(saved, "w", buffering=1)


# --------------------------------------------------------------------------------------------
# Configuration and events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UaOptions:
    sip_port: int = 0  # 0: any free port
    bind_addr: str = ""  # "" = all interfaces
    public_addr: str = ""  # address to advertise in Via/Contact/SDP ("" = pjsua's guess)
    log_level: int = 1  # pjsua log level (0-6), printed to stderr
    stats_interval: float = 0.5
    user_agent: str = "wobble-lab"
    codecs: tuple[str, ...] = ("PCMU/8000", "PCMA/8000")  # preferred, in this order


@dataclass(frozen=True)
class AccountSpec:
    name: str  # our key, e.g. "a-001"
    id_uri: str  # sip:a-001@10.77.1.11
    registrar: str | None = None  # sip:10.77.1.11 ; None: no registration (direct mode / caller)
    expires: int = 60
    rtp_port: int = 0  # first RTP port of this account's range (0: pjsua picks)
    rtp_port_range: int = 0
    auto_answer: bool = False
    ring_delay: float = 0.2  # seconds between 180 Ringing and 200 OK
    max_calls: int = 1  # further INVITEs to a busy account get 486
    tone_hz: int = 440
    answer_headers: tuple[tuple[str, str], ...] = ()  # extra headers on our 200 OK
    media_timeout_s: float = 0.0  # hang up a confirmed call whose RX counter stalls this long; 0 = off
    make_default: bool = False
    media_addr: str = ""  # address for this account's SDP (overrides UaOptions.public_addr); "" = that


@dataclass(frozen=True)
class RegState:
    account: str
    code: int
    reason: str
    active: bool
    expires: int
    ts: float
    registrar: str | None = None  # the registrar URI this result is about


@dataclass(frozen=True)
class Rehomed:
    """An account now registers at another registrar (`UserAgent.rehome_account`). Queued in order
    with RegState: every RegState after it is about the new registrar."""

    account: str
    registrar: str
    id_uri: str
    ts: float


@dataclass(frozen=True)
class IncomingCall:
    handle: int
    account: str
    remote_uri: str
    lab_call_id: str | None
    sip_call_id: str


@dataclass(frozen=True)
class CallProgress:
    handle: int
    code: int
    reason: str
    t_ms: float  # since INVITE sent


@dataclass(frozen=True)
class CallAnswered:
    handle: int
    t_ms: float


@dataclass(frozen=True)
class MediaActive:
    handle: int


@dataclass(frozen=True)
class CallEnded:
    outcome: CallOutcome


UaEvent = RegState | Rehomed | IncomingCall | CallProgress | CallAnswered | MediaActive | CallEnded


# --------------------------------------------------------------------------------------------
# pjsua2 subclasses (only ever touched by the worker thread)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UaSnapshot:
    """What the engine holds at one moment (`UserAgent.inspect`), for tests and status."""

    accounts: tuple[str, ...]
    #: Live calls: handle -> the account's name.
    calls: dict[int, str]
    #: Weak references to the live calls' pjsua2 Call objects (dead once freed in the pjsua2 thread).
    call_objects: tuple[weakref.ref[Any], ...]
    #: Ended calls waiting to be freed in the pjsua2 thread.
    graveyard: int
    #: pjsua2 Call objects alive in the process (only with `inspect(count_objects=True)`; else -1).
    call_objects_alive: int = -1


@dataclass
class _Rec:
    """Worker-thread state of one call."""

    handle: int
    call: _Call
    account: _Account
    outcome: CallOutcome
    t0: float  # monotonic, INVITE sent / received
    t_answer: float | None = None
    t_end: float | None = None
    med_idx: int | None = None
    tone: Any = None
    hangup_reason: str | None = None
    net_final_code: int = 0
    net_final_reason: str = ""
    last_rx: int = -1
    last_rx_change: float = 0.0
    ended: bool = False
    end_event_type: int | None = None
    reaped_at: float | None = None  # monotonic: when the stale-call reaper hung it up
    extra: dict[str, Any] = field(default_factory=dict)


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, ua: UserAgent, acc: _Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.ua = ua
        self.rec: _Rec | None = None

    def onCallState(self, prm: Any) -> None:
        self.ua._guard(self.ua._on_call_state, self, prm)

    def onCallTsxState(self, prm: Any) -> None:
        self.ua._guard(self.ua._on_call_tsx_state, self, prm)

    def onCallMediaState(self, prm: Any) -> None:
        self.ua._guard(self.ua._on_call_media_state, self)

    def onStreamDestroyed(self, prm: Any) -> None:
        # The last moment the stream's counters exist (it precedes onCallState DISCONNECTED).
        self.ua._guard(self.ua._sample, self.rec, int(prm.streamIdx))


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, ua: UserAgent, spec: AccountSpec) -> None:
        super().__init__()
        self.ua = ua
        self.spec = spec

    def onRegState(self, prm: Any) -> None:
        self.ua._guard(self.ua._on_reg_state, self, prm)

    def onIncomingCall(self, prm: Any) -> None:
        self.ua._guard(self.ua._on_incoming, self, prm)


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class UserAgent:
    """pjsua2 in a worker thread. Use from one asyncio loop:

    ua = UserAgent(UaOptions(sip_port=5070))
    port = await ua.start()
    await ua.add_account(AccountSpec(name="a-001", id_uri="sip:a-001@10.77.1.11", ...))
    h = await ua.make_call("a-001", "sip:support@10.77.0.11", {"X-Wobble-Call": "c1"})
    ev = await ua.events.get()     # RegState | IncomingCall | CallProgress | ... | CallEnded
    await ua.hangup(h, "caller_bye")
    await ua.stop(); os._exit(0)
    """

    def __init__(self, options: UaOptions | None = None) -> None:
        self.opts = options or UaOptions()
        self.events: asyncio.Queue[UaEvent] = asyncio.Queue()
        self.local_address = ""
        #: time.monotonic() of the worker's latest loop pass (a liveness signal for health files)
        self.heartbeat = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cmds: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop_req = threading.Event()
        self._ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._ep: Any = None
        self._accounts: dict[str, _Account] = {}
        self._calls: dict[int, _Rec] = {}
        self._graveyard: list[_Rec] = []
        self._timers: list[tuple[float, int, Callable[[], object]]] = []
        self._seq = itertools.count(1)

    # ------------------------------------------------------------------ asyncio-facing API

    async def start(self) -> str:
        """Start the worker thread; returns the SIP transport's local address 'ip:port'."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="pjsua2", daemon=True)
        self._thread.start()
        self.local_address = await asyncio.wrap_future(self._ready)
        return self.local_address

    @property
    def local_port(self) -> int:
        return int(self.local_address.rsplit(":", 1)[1]) if self.local_address else 0

    async def stop(self, timeout: float = 3.0) -> bool:
        """Hang up everything, unregister, libDestroy. True if the worker finished in time."""
        if self._thread is None or self._done.done():
            return True
        self._stop_req.set()
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._done), timeout)
            return True
        except (TimeoutError, Exception):
            return False

    async def add_account(self, spec: AccountSpec) -> str:
        return await self._submit(lambda: self._add_account(spec))

    async def remove_account(self, name: str) -> bool:
        """Remove account `name` (unregistering it if it registered) once the engine holds no call
        of it. True when it is gone (or never existed); False while a call on it lingers (an
        unanswered INVITE stays until pjsip's timer B, for instance): ask again later."""
        return await self._submit(lambda: self._remove_account(name))

    async def rehome_account(self, name: str, registrar: str, id_uri: str, media_addr: str = "") -> bool:
        """Register account `name` at another registrar from now on (pjsua2 `Account.modify`: the
        old registration is dropped, best effort, and a REGISTER goes to the new one; the Account
        object, its default flag and its RTP range stay). True when done (or already there): a
        `Rehomed` event precedes the new registrar's RegStates. False while a call of the account
        lingers: its call is kept, ask again when it has ended. KeyError: no such account."""
        return await self._submit(lambda: self._rehome_account(name, registrar, id_uri, media_addr))

    async def make_call(self, account: str, uri: str, headers: dict[str, str] | None = None) -> int:
        return await self._submit(lambda: self._make_call(account, uri, headers or {}))

    async def hangup(self, handle: int, reason: str, code: int = 0) -> bool:
        """Send BYE/CANCEL (or a final response to an unanswered INVITE). `reason` becomes the
        call's end_reason. False if the call is already gone."""
        return await self._submit(lambda: self._hangup(handle, reason, code))

    async def answer(self, handle: int, code: int = 200) -> bool:
        return await self._submit(lambda: self._answer(handle, code))

    async def snapshot(self, handle: int) -> CallOutcome | None:
        """A copy of a live call's outcome so far (with end_reason as if it ended now)."""
        return await self._submit(lambda: self._snapshot(handle))

    async def reg_states(self) -> dict[str, RegState]:
        return await self._submit(self._reg_states)

    async def inspect(self, count_objects: bool = False) -> UaSnapshot:
        """What the engine holds now, read in the pjsua2 thread. `count_objects`: also count the
        pjsua2 Call objects alive in the process (walks the garbage collector's objects: slow)."""

        def take() -> UaSnapshot:
            alive = sum(isinstance(o, _Call) for o in gc.get_objects()) if count_objects else -1
            return UaSnapshot(
                accounts=tuple(self._accounts),
                calls={h: r.account.spec.name for h, r in self._calls.items()},
                call_objects=tuple(weakref.ref(r.call) for r in self._calls.values()),
                graveyard=len(self._graveyard),
                call_objects_alive=alive,
            )

        return await self._submit(take)

    async def _submit(self, fn: Callable[[], T]) -> T:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("user agent is not running")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._cmds.put((fn, fut))
        return await asyncio.wrap_future(fut)

    # ------------------------------------------------------------------ worker thread

    def _emit(self, ev: UaEvent) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop closed
            loop.call_soon_threadsafe(self.events.put_nowait, ev)

    def _guard(self, fn: Callable[..., object], *args: Any) -> None:
        """Run a callback body; an exception must never propagate into pjsua2's C++ frames."""
        try:
            fn(*args)
        except Exception:
            log.exception("pjsua2 callback %s failed", getattr(fn, "__name__", fn))

    def _run(self) -> None:
        try:
            self._init_lib()
        except PortInUseError as exc:
            log.error("pjsua2 init failed: %s", exc)
            self._ready.set_exception(exc)
            self._done.set_result(None)
            return
        except Exception as exc:
            log.exception("pjsua2 init failed")
            self._ready.set_exception(exc)
            self._done.set_result(None)
            return
        next_stats = time.monotonic()
        try:
            while not self._stop_req.is_set():
                self.heartbeat = time.monotonic()
                self._drain_commands()
                # Idle, a longer wait: a command then waits up to 40 ms (a ring, a dial), and twenty
                # idle workers no longer wake a hundred times a second each.
                self._ep.libHandleEvents(10 if self._calls else IDLE_POLL_MS)
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, fn = heapq.heappop(self._timers)
                    self._guard(fn)
                if now >= next_stats:
                    next_stats = now + self.opts.stats_interval
                    self._sample_all(now)
                self._bury()
        except Exception:
            log.exception("pjsua2 worker loop crashed")
        finally:
            self._shutdown()

    def _init_lib(self) -> None:
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = MAX_CALLS
        cfg.uaConfig.userAgent = self.opts.user_agent
        cfg.logConfig.level = self.opts.log_level
        cfg.logConfig.consoleLevel = self.opts.log_level
        cfg.logConfig.msgLogging = 1 if self.opts.log_level >= 4 else 0
        cfg.medConfig.noVad = True
        cfg.medConfig.threadCnt = 1  # RTP I/O in a native thread: jitter is timestamped without the GIL
        cfg.medConfig.hasIoqueue = True
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        tcfg = pj.TransportConfig()
        tcfg.port = self.opts.sip_port
        if self.opts.bind_addr:
            tcfg.boundAddress = self.opts.bind_addr
        if self.opts.public_addr:
            tcfg.publicAddress = self.opts.public_addr
        try:
            tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        except pj.Error as exc:
            if int(exc.status) == PJ_EADDRINUSE:
                raise PortInUseError(f"local SIP port {self.opts.sip_port} is in use") from None
            raise RuntimeError(f"SIP transport: {exc.reason} (status {exc.status})") from None
        ep.libStart()
        prio = 255
        for codec in self.opts.codecs:
            with contextlib.suppress(Exception):
                ep.codecSetPriority(codec, prio)
                prio -= 1
        self._ep = ep
        self._ready.set_result(str(ep.transportGetInfo(tid).localName))

    def _drain_commands(self) -> None:
        while True:
            try:
                fn, fut = self._cmds.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                # Its frames may hold pjsua2 objects: drop their locals here, in the pjsua2 thread,
                # before the error crosses to asyncio (where freeing them would abort the process).
                err: BaseException | None = exc
                while err is not None:
                    if err.__traceback__ is not None:
                        traceback.clear_frames(err.__traceback__)
                    err = err.__cause__ or err.__context__
                fut.set_exception(exc)

    def _pump(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._ep.libHandleEvents(10)
            if until is not None and until():
                return

    def _shutdown(self) -> None:
        ep = self._ep
        try:
            if ep is not None:
                for rec in list(self._calls.values()):
                    if rec.hangup_reason is None:
                        rec.hangup_reason = "shutdown"
                    self._sample(rec)
                with contextlib.suppress(Exception):
                    ep.hangupAllCalls()
                self._pump(0.5, until=lambda: not self._calls)
                registered = [a for a in self._accounts.values() if a.spec.registrar]
                for acc in registered:
                    with contextlib.suppress(Exception):
                        acc.setRegistration(False)
                if registered:
                    self._pump(1.0, until=lambda: all(not self._is_registered(a) for a in registered))
                self._bury()
                # Fail anything still queued so no awaiting coroutine hangs.
                while True:
                    try:
                        _, fut = self._cmds.get_nowait()
                    except queue.Empty:
                        break
                    if fut.set_running_or_notify_cancel():
                        fut.set_exception(RuntimeError("user agent stopped"))
                with contextlib.suppress(Exception):
                    ep.libDestroy()
        except Exception:
            log.exception("pjsua2 shutdown failed")
        finally:
            if not self._done.done():
                self._done.set_result(None)

    def _bury(self) -> None:
        """Free ended calls HERE, in the pjsua2 thread, outside their callbacks. The call <-> record
        back-reference is a cycle: left to Python's cyclic GC, the Call/ToneGenerator destructors
        would run in whichever thread happens to trigger a collection (the asyncio thread, an
        executor thread) and pjlib aborts the process ("Calling pjlib from unknown/external
        thread"). Breaking the cycle makes plain refcounting free them right here.

        Not while pjsua has given the ended call's slot (its id) to a newer call of ours: pjsua2's
        ~Call() clears the user data of, and hangs up, whatever call holds its id NOW, so freeing
        it then cut the newer call off from its callbacks (a record that never ended, an agent
        stuck "busy") and hung it up (answered, then a BYE). Such a record waits for the slot."""
        live = {self._slot(r) for r in self._calls.values()}
        keep: list[_Rec] = []
        while self._graveyard:
            rec = self._graveyard.pop()
            slot = self._slot(rec)
            if slot is not None and slot in live:
                keep.append(rec)
                continue
            rec.call.rec = None
            rec.tone = None
            del rec
        self._graveyard = keep

    @staticmethod
    def _slot(rec: _Rec) -> int | None:
        try:
            cid = int(rec.call.getId())
        except Exception:
            return None
        return cid if cid >= 0 else None

    def _holds_slot(self, rec: _Rec) -> bool:
        """Whether pjsua's call in `rec`'s slot is still `rec`'s own call (same SIP Call-ID)."""
        try:
            current = str(rec.call.getInfo().callIdString)
        except Exception:
            return False
        return not rec.outcome.sip_call_id or current == rec.outcome.sip_call_id

    @staticmethod
    def _is_registered(acc: _Account) -> bool:
        try:
            return bool(acc.getInfo().regIsActive)
        except Exception:
            return False

    # -- accounts

    def _add_account(self, spec: AccountSpec) -> str:
        if spec.name in self._accounts:
            raise ValueError(f"account {spec.name} exists")
        acc = _Account(self, spec)
        acc.create(self._account_config(spec), spec.make_default)
        self._accounts[spec.name] = acc
        return spec.name

    def _rehome_account(self, name: str, registrar: str, id_uri: str, media_addr: str) -> bool:
        acc = self._accounts[name]
        if any(r.account is acc for r in self._calls.values()):
            return False
        if not acc.spec.registrar:
            raise ValueError(f"account {name} does not register")
        spec = replace(acc.spec, registrar=registrar, id_uri=id_uri, media_addr=media_addr)
        if spec == acc.spec:
            return True
        acc.modify(self._account_config(spec))
        acc.spec = spec  # before any RegState of the new registrar can be reported
        self._emit(Rehomed(name, registrar, id_uri, time.time()))
        return True

    def _account_config(self, spec: AccountSpec) -> Any:
        """The whole pjsua2 AccountConfig of `spec` (modify() takes a complete one too)."""
        cfg = pj.AccountConfig()
        cfg.idUri = spec.id_uri
        if spec.registrar:
            cfg.regConfig.registrarUri = spec.registrar
            cfg.regConfig.timeoutSec = spec.expires
            cfg.regConfig.retryIntervalSec = 5
            cfg.regConfig.firstRetryIntervalSec = 1
            cfg.regConfig.randomRetryIntervalSec = 2
            cfg.regConfig.dropCallsOnFail = False
            cfg.regConfig.unregWaitMsec = 1000
            # Agents register through the SBC, which adds a Path (RFC 3327); a registrar rejects
            # a Path the UA did not say it supports (Asterisk: 420 Bad Extension).
            supported = pj.SipHeader()
            supported.hName = "Supported"
            supported.hValue = "path"
            cfg.regConfig.headers.append(supported)
        else:
            cfg.regConfig.registerOnAdd = False
        # The lab has no NAT: keep Contact/Via/SDP exactly as configured.
        cfg.natConfig.contactRewriteUse = 0
        cfg.natConfig.viaRewriteUse = 0
        cfg.natConfig.sdpNatRewriteUse = 0
        cfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        cfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        cfg.mediaConfig.transportConfig.port = spec.rtp_port
        cfg.mediaConfig.transportConfig.portRange = spec.rtp_port_range
        if self.opts.bind_addr:
            cfg.mediaConfig.transportConfig.boundAddress = self.opts.bind_addr
        if spec.media_addr or self.opts.public_addr:
            cfg.mediaConfig.transportConfig.publicAddress = spec.media_addr or self.opts.public_addr
        return cfg

    def _remove_account(self, name: str) -> bool:
        acc = self._accounts.get(name)
        if acc is None:
            return True
        if any(r.account is acc for r in self._calls.values()):
            return False
        del self._accounts[name]
        acc.shutdown()
        del acc
        return True

    def _on_reg_state(self, acc: _Account, prm: Any) -> None:
        info = acc.getInfo()
        self._emit(
            RegState(
                account=acc.spec.name,
                code=int(prm.code),
                reason=str(prm.reason),
                active=bool(info.regIsActive),
                expires=int(info.regExpiresSec),
                ts=time.time(),
                registrar=acc.spec.registrar,
            )
        )

    def _reg_states(self) -> dict[str, RegState]:
        out: dict[str, RegState] = {}
        for name, acc in self._accounts.items():
            try:
                info = acc.getInfo()
                out[name] = RegState(
                    name,
                    int(info.regStatus),
                    str(info.regStatusText),
                    bool(info.regIsActive),
                    int(info.regExpiresSec),
                    time.time(),
                    acc.spec.registrar,
                )
            except Exception:
                out[name] = RegState(name, 0, "unknown", False, 0, time.time(), acc.spec.registrar)
        return out

    # -- calls

    def _new_rec(self, call: _Call, acc: _Account, direction: str, remote_uri: str) -> _Rec:
        handle = next(self._seq)
        rec = _Rec(
            handle=handle,
            call=call,
            account=acc,
            outcome=CallOutcome(
                handle=handle,
                direction=direction,
                account=acc.spec.name,
                remote_uri=remote_uri,
                started_at=time.time(),
            ),
            t0=time.monotonic(),
        )
        call.rec = rec
        self._calls[handle] = rec
        return rec

    def _make_call(self, account: str, uri: str, headers: dict[str, str]) -> int:
        if len(self._calls) >= MAX_CALLS:
            raise RuntimeError(f"this process already holds {MAX_CALLS} calls (PJSUA_MAX_CALLS)")
        acc = self._accounts[account]
        call = _Call(self, acc)
        rec = self._new_rec(call, acc, "out", uri)
        rec.outcome.lab_call_id = headers.get(CALL_HEADER)
        prm = pj.CallOpParam(True)
        for name, value in headers.items():
            h = pj.SipHeader()
            h.hName = name
            h.hValue = value
            prm.txOption.headers.append(h)
        rec.t0 = time.monotonic()
        rec.outcome.started_at = time.time()
        failure: tuple[int, str] | None = None
        try:
            call.makeCall(uri, prm)
        except pj.Error as exc:
            failure = (int(exc.status), str(exc.reason))
        except Exception as exc:
            failure = (-1, f"{type(exc).__name__}: {exc}")
        if failure is not None:
            # The Call <-> record cycle must die in THIS thread: raised from here with `call` in a
            # frame of its traceback, it reached the asyncio thread, whose GC ran ~Call() there and
            # pjlib aborted the whole worker ("Calling pjlib from unknown/external thread"). The
            # graveyard frees it here; the error is raised outside the except block, with no context.
            del self._calls[rec.handle]
            self._graveyard.append(rec)
            del call, rec, prm
            status, reason = failure
            if status == PJ_ETOOMANY:
                # pjsua still holds an ended call's slot (its transaction not over): busy
                raise CallSlotsBusy(f"pjsua's {MAX_CALLS} call slots are still busy")
            raise RuntimeError(f"makeCall failed: {reason} (status {status})")
        with contextlib.suppress(Exception):
            rec.outcome.sip_call_id = str(call.getInfo().callIdString)
        return rec.handle

    def _on_incoming(self, acc: _Account, prm: Any) -> None:
        call = _Call(self, acc, int(prm.callId))
        info = call.getInfo()
        rec = self._new_rec(call, acc, "in", str(info.remoteUri))
        whole = str(prm.rdata.wholeMsg)
        out = rec.outcome
        out.sip_call_id = str(info.callIdString)
        out.invite_headers = select_headers(whole, (CALL_HEADER, *REPLY_HEADERS))
        out.lab_call_id = lab_call_id(whole, str(info.remoteUri))
        busy = sum(1 for r in self._calls.values() if r.account is acc and not r.ended) > acc.spec.max_calls
        self._emit(IncomingCall(rec.handle, acc.spec.name, out.remote_uri, out.lab_call_id, out.sip_call_id))
        if not acc.spec.auto_answer:
            return
        if busy:
            rec.hangup_reason = "busy"
            self._answer_call(rec, 486)
            return
        self._answer_call(rec, 180)
        handle = rec.handle
        self._schedule(acc.spec.ring_delay, lambda: self._answer(handle, 200))

    def _schedule(self, delay: float, fn: Callable[[], object]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay), next(self._seq), fn))

    def _answer_call(self, rec: _Rec, code: int) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        if code == 200:
            for name, value in rec.account.spec.answer_headers:
                h = pj.SipHeader()
                h.hName = name
                h.hValue = value
                prm.txOption.headers.append(h)
        try:
            rec.call.answer(prm)
        except pj.Error as exc:
            if int(exc.status) != PJSIP_ESESSIONTERMINATED:
                raise
            # The caller (the PBX) cancelled while we rang: onCallState DISCONNECTED ends the record.
            log.info("call %d: cancelled before our %d", rec.handle, code)

    def _answer(self, handle: int, code: int) -> bool:
        rec = self._calls.get(handle)
        if rec is None or rec.ended or rec.t_answer is not None:
            return False
        self._answer_call(rec, code)
        return True

    def _hangup(self, handle: int, reason: str, code: int = 0) -> bool:
        rec = self._calls.get(handle)
        if rec is None or rec.ended:
            return False
        if rec.hangup_reason is None:
            rec.hangup_reason = reason
        if not self._holds_slot(rec):
            # pjsua ended this call without telling us, and its slot may hold another call now:
            # hanging "it" up would hang that one up. Close our record instead.
            log.warning("call %d: pjsua no longer holds it; closing its record", handle)
            self._finish(rec)
            return True
        self._sample(rec)
        prm = pj.CallOpParam()
        if code:
            prm.statusCode = code
        try:
            rec.call.hangup(prm)
        except Exception:
            log.exception("hangup of call %d failed", handle)
            return False
        return True

    def _on_call_tsx_state(self, call: _Call, prm: Any) -> None:
        rec = call.rec
        e = prm.e
        if rec is None or e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx_ev = e.body.tsxState
        tsx = tsx_ev.tsx
        if tsx.method != "INVITE" or tsx.role != pj.PJSIP_ROLE_UAC:
            return
        if tsx_ev.type != pj.PJSIP_EVENT_RX_MSG:
            return
        self._on_invite_response(rec, str(tsx_ev.src.rdata.wholeMsg))

    def _on_invite_response(self, rec: _Rec, whole: str) -> None:
        """Every response to our INVITE (from onCallTsxState, with onCallState as a fallback)."""
        status = parse_status_line(whole)
        if status is None:
            return
        code, reason = status
        now = time.monotonic()
        t_ms = round((now - rec.t0) * 1000.0, 1)
        out = rec.outcome
        first = not out.response_seen
        out.response_seen = True
        if (180 <= code < 300) and out.pdd_ms is None:
            out.pdd_ms = t_ms
        if code >= 200 and rec.net_final_code == 0:
            rec.net_final_code = code
            rec.net_final_reason = reason
            out.reply_headers = select_headers(whole)
            if code < 300:
                out.setup_ms = t_ms
        if first or code >= 180:
            self._emit(CallProgress(rec.handle, code, reason, t_ms))

    def _on_call_state(self, call: _Call, prm: Any) -> None:
        rec = call.rec
        if rec is None or rec.ended:
            return
        info = call.getInfo()
        state = info.state
        if not rec.outcome.sip_call_id:
            rec.outcome.sip_call_id = str(info.callIdString)
        e = prm.e
        if rec.outcome.direction == "out" and e.type == pj.PJSIP_EVENT_TSX_STATE:
            tsx_ev = e.body.tsxState
            if tsx_ev.type == pj.PJSIP_EVENT_RX_MSG and tsx_ev.tsx.method == "INVITE":
                whole = str(tsx_ev.src.rdata.wholeMsg)
                st = parse_status_line(whole)
                if st and st[0] >= 200 and rec.net_final_code == 0:
                    self._on_invite_response(rec, whole)
        if state == pj.PJSIP_INV_STATE_CONFIRMED and rec.t_answer is None:
            rec.t_answer = time.monotonic()
            rec.last_rx_change = rec.t_answer
            if rec.outcome.direction == "in":
                rec.net_final_code = 200
                rec.net_final_reason = "OK"
            self._emit(CallAnswered(rec.handle, round((rec.t_answer - rec.t0) * 1000.0, 1)))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if e.type == pj.PJSIP_EVENT_TSX_STATE:
                rec.end_event_type = int(e.body.tsxState.type)
            # No stats sample here: the stream is gone (onStreamDestroyed took the last one).
            rec.extra["last_code"] = int(info.lastStatusCode)
            rec.extra["last_reason"] = str(info.lastReason)
            self._finish(rec)

    def _on_call_media_state(self, call: _Call) -> None:
        rec = call.rec
        if rec is None or rec.ended:
            return
        info = call.getInfo()
        for mi in info.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            rec.med_idx = int(mi.index)
            am = call.getAudioMedia(rec.med_idx)
            if rec.tone is None:
                tone = pj.ToneGenerator()
                tone.createToneGenerator()
                desc = pj.ToneDesc()
                desc.freq1 = rec.account.spec.tone_hz
                desc.freq2 = 0
                desc.on_msec = 1000
                desc.off_msec = 0
                desc.volume = 0
                tones = pj.ToneDescVector()
                tones.append(desc)
                tone.play(tones, True)
                rec.tone = tone
            rec.tone.startTransmit(am)
            if not rec.outcome.media_active:
                rec.outcome.media_active = True
                rec.last_rx_change = time.monotonic()
                self._emit(MediaActive(rec.handle))
            break

    def _sample(self, rec: _Rec | None, idx: int | None = None) -> None:
        if rec is None or rec.ended:
            return
        med = rec.med_idx if idx is None else idx
        if med is None:
            return
        try:
            st = stats_from_rtcp(rec.call.getStreamStat(med).rtcp)
        except Exception:
            return  # stream already gone
        rec.outcome.stats = rec.outcome.stats.merge(st)

    def _reap_stale(self, rec: _Rec, now: float) -> None:
        """An incoming call that never got going must not keep its account busy forever.

        Under load some inbound calls never reached DISCONNECTED here (still ringing long after the
        PBX gave up, or answered without media ever starting), and each made its agent answer 486
        to every later call while Asterisk saw the agent free. Hang such a call up; if pjsua does
        not end it within a grace period, drop our record of it.
        """
        if rec.outcome.direction != "in":
            return
        if rec.reaped_at is not None:
            if now - rec.reaped_at >= REAP_GRACE_S:
                log.warning("call %d: still not ended %.0f s after hangup; forgetting it", rec.handle, REAP_GRACE_S)
                self._finish(rec)
            return
        ringing_too_long = rec.t_answer is None and now - rec.t0 >= STALE_RING_S
        limit = max(rec.account.spec.media_timeout_s, MIN_MEDIA_START_S)
        no_media = rec.t_answer is not None and rec.med_idx is None and now - rec.t_answer >= limit
        if ringing_too_long or no_media:
            rec.reaped_at = now
            log.warning("call %d: stale (%s), hanging up", rec.handle, "ringing" if ringing_too_long else "no media")
            if not self._hangup(rec.handle, "stale"):
                self._finish(rec)

    def _sample_all(self, now: float) -> None:
        for rec in list(self._calls.values()):
            if not rec.ended:
                self._reap_stale(rec, now)
            if rec.ended or rec.med_idx is None:
                continue
            self._sample(rec)
            rx = rec.outcome.stats.rx_packets
            if rx != rec.last_rx:
                rec.last_rx = rx
                rec.last_rx_change = now
                continue
            limit = rec.account.spec.media_timeout_s
            if limit > 0 and rec.t_answer is not None and now - rec.last_rx_change >= limit:
                log.warning("call %d: no RTP received for %.1f s, hanging up", rec.handle, limit)
                self._hangup(rec.handle, "media_timeout")

    def _end_reason(self, rec: _Rec) -> str:
        if rec.hangup_reason:
            return rec.hangup_reason
        if rec.t_answer is not None:
            return "remote_bye"
        if rec.outcome.direction == "in":
            return "cancelled"
        if rec.net_final_code >= 300:
            return "rejected"
        if rec.end_event_type == pj.PJSIP_EVENT_TRANSPORT_ERROR:
            return "transport_error"
        if not rec.outcome.response_seen:
            return "no_response"
        return "failed"

    def _fill_outcome(self, rec: _Rec, end: float) -> CallOutcome:
        out = replace(rec.outcome)
        if rec.outcome.direction == "in":
            out.final_code = rec.net_final_code or int(rec.extra.get("last_code", 0))
            out.final_reason = rec.net_final_reason or str(rec.extra.get("last_reason", ""))
        else:
            out.final_code = rec.net_final_code
            out.final_reason = rec.net_final_reason or str(rec.extra.get("last_reason", ""))
        out.duration_s = round(end - rec.t_answer, 3) if rec.t_answer is not None else 0.0
        out.end_reason = self._end_reason(rec)
        return out

    def _finish(self, rec: _Rec) -> None:
        rec.ended = True
        rec.t_end = time.monotonic()
        outcome = self._fill_outcome(rec, rec.t_end)
        rec.outcome = outcome
        self._calls.pop(rec.handle, None)
        if rec.tone is not None:
            with contextlib.suppress(Exception):
                rec.tone.stop()
        self._graveyard.append(rec)
        self._emit(CallEnded(outcome))

    def _snapshot(self, handle: int) -> CallOutcome | None:
        rec = self._calls.get(handle)
        if rec is None:
            return None
        self._sample(rec)
        return self._fill_outcome(rec, time.monotonic())
