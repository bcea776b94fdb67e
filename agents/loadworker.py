"""One worker process of the traffic generator: a pjsua2 UserAgent placing up to 4 calls at once.

Started by `agents.load` (never by hand):

    python -m agents.loadworker --index N --sip-port P --rtp-base R [--bind ADDR] ...

Protocol: JSON lines. stdin (from the supervisor):
    {"op": "call", "call_id": "l0123456789ab", "targets": ["sip:support@10.77.0.11:5060", ...], "hold_s": 10}
    {"op": "stop"}    hang up every call now (end_reason "stopped"); their "done" lines follow
    {"op": "exit"}    (or EOF) stop the engine and leave
stdout (to the supervisor; pjlib's own prints are sent to stderr):
    {"ev": "ready", "sip": "127.0.0.1:5100", "pid": 123}
    {"ev": "done", "call_id": ..., "result": {caller result_dict of the last attempt}, "requeue": false,
     "targets_tried": [...], "one_way_s": 0.0, "lingering": n}
    {"ev": "slots", "lingering": n, "stuck": k}   n: slots of finished calls not yet free again (their
                                      account is removed once pjsua has let go of every call on it);
                                      k of them still wait after a first try (a transaction into a
                                      dead peer: up to timer B/F, 32 s)

Each call gets its own account (From user = the call id, like agents.caller) with its own RTP range
(slot s of this worker: rtp-base + s * RTP_SPAN); the account is removed when its calls have ended.
Targets are tried in order (RFC 3263) while the answer is 503, 408 or nothing at all within
--response-timeout. pdd_ms/setup_ms count from the FIRST INVITE (what the customer waits).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from agents.caller import result_dict
from agents.loadmodel import RETRY_NEXT_TARGET, MediaTrack
from agents.model import CALL_HEADER, strip_port, uri_host

if TYPE_CHECKING:
    from agents.ua import UaEvent, UserAgent

log = logging.getLogger("agents.loadworker")

SLOTS = 4  # PJSUA_MAX_CALLS
RTP_SPAN = 20  # RTP ports per slot (account)
SAMPLE_S = 0.5  # per-direction RTP sampling during a call
HANGUP_WAIT_S = 3.0  # after our BYE/CANCEL, how long to wait for DISCONNECTED
#: pjsua had no call slot for the first INVITE (an ended call's transaction still holds one): the
#: job is handed back ("requeue") and the slot kept out of use this long.
SLOTS_BUSY = "slots_busy"
SLOTS_BUSY_HOLD_S = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agents.loadworker")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--sip-port", type=int, required=True)
    p.add_argument("--rtp-base", type=int, required=True)
    p.add_argument("--bind", default="")
    p.add_argument("--response-timeout", type=float, default=2.0)
    p.add_argument("--answer-timeout", type=float, default=30.0)
    p.add_argument("--media-timeout", type=float, default=5.0)
    p.add_argument("--log-level", type=int, default=1)
    return p.parse_args(argv)


class Worker:
    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.ua: UserAgent | None = None
        self.queues: dict[int, asyncio.Queue[UaEvent]] = {}
        self.unclaimed: dict[int, list[UaEvent]] = {}
        self.free_slots = list(range(SLOTS))
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.lingering = 0  # slots of finished jobs whose account is not removed yet
        self.stuck = 0  # of those, the ones still waiting after a first try (a transaction to wait out)

    def send(self, msg: dict[str, Any]) -> None:
        self.out.write(json.dumps(msg, separators=(",", ":"), default=str) + "\n")
        self.out.flush()

    # -- engine events, routed per call handle

    async def pump(self) -> None:
        assert self.ua is not None
        from agents.ua import CallAnswered, CallEnded, CallProgress

        while True:
            ev = await self.ua.events.get()
            if isinstance(ev, CallEnded):
                handle = ev.outcome.handle
            elif isinstance(ev, CallProgress | CallAnswered):
                handle = ev.handle
            else:
                continue
            q = self.queues.get(handle)
            if q is None:
                self.unclaimed.setdefault(handle, []).append(ev)
            else:
                q.put_nowait(ev)

    def claim(self, handle: int) -> asyncio.Queue[UaEvent]:
        q: asyncio.Queue[UaEvent] = asyncio.Queue()
        for ev in self.unclaimed.pop(handle, []):
            q.put_nowait(ev)
        self.queues[handle] = q
        return q

    # -- one job

    async def job(self, msg: dict[str, Any]) -> None:
        call_id = str(msg["call_id"])
        targets = [str(t) for t in msg["targets"]]
        hold = float(msg["hold_s"])
        tried: list[str] = []
        track = MediaTrack()
        result: dict[str, Any] | None = None
        slot = self.free_slots.pop(0) if self.free_slots else None
        account = call_id
        try:
            if slot is None:
                result = result_dict(call_id, targets[0], None, end_reason=SLOTS_BUSY)
                return
            assert self.ua is not None
            from agents.ua import AccountSpec

            domain = strip_port(uri_host(targets[0]) or "invalid")
            await self.ua.add_account(
                AccountSpec(
                    name=account,
                    id_uri=f"sip:{call_id}@{domain}",
                    rtp_port=self.args.rtp_base + slot * RTP_SPAN,
                    rtp_port_range=RTP_SPAN,
                    media_timeout_s=self.args.media_timeout,
                )
            )
            t_first = time.monotonic()
            for i, uri in enumerate(targets):
                tried.append(uri)
                offset_ms = (time.monotonic() - t_first) * 1000.0
                result = await self.attempt(account, call_id, uri, hold, track)
                for key in ("pdd_ms", "setup_ms"):
                    if result.get(key) is not None:
                        result[key] = round(float(result[key]) + offset_ms, 1)
                if result["end_reason"] == SLOTS_BUSY:
                    if i > 0:  # the earlier attempt's INVITE went out: not a job to hand back
                        result["end_reason"] = "capacity"
                    break
                answered = result["final_code"] == 200
                retry = result["final_code"] in RETRY_NEXT_TARGET and result["end_reason"] != "timeout"
                if answered or not retry or self.stopping.is_set() or i == len(targets) - 1:
                    break
                log.info(
                    "worker %d: %s: %s answered %s; next target",
                    self.args.index,
                    call_id,
                    uri,
                    result["final_code"] or result["end_reason"],
                )
        except Exception as exc:
            log.exception("worker %d: call %s failed", self.args.index, call_id)
            result = result_dict(call_id, tried[-1] if tried else targets[0], None, end_reason="error")
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            requeue = result is not None and result.get("end_reason") == SLOTS_BUSY
            if slot is not None:
                self.lingering += 1
            self.send(
                {
                    "ev": "done",
                    "call_id": call_id,
                    "result": result,
                    "requeue": requeue,
                    "targets_tried": [] if requeue else tried,
                    "one_way_s": round(track.one_way_s, 3),
                    "lingering": self.lingering,
                }
            )
            if slot is not None and requeue:  # pjsua holds a slot we do not see: keep one out a while
                self.stuck += 1
                self.send({"ev": "slots", "lingering": self.lingering, "stuck": self.stuck})
                await asyncio.sleep(SLOTS_BUSY_HOLD_S)
                self.stuck -= 1
            if slot is not None:
                await self.release(account, slot)
                self.lingering -= 1
                self.send({"ev": "slots", "lingering": self.lingering, "stuck": self.stuck})

    async def release(self, account: str, slot: int) -> None:
        """Remove the call's account once no call of it is left in the engine (a call hung up
        without an answer may linger until pjsip's timer B), then free the slot."""
        ua = self.ua
        assert ua is not None
        deadline = time.monotonic() + 40.0
        stuck = False
        try:
            while time.monotonic() < deadline:
                try:
                    if await ua.remove_account(account):
                        break
                except Exception:
                    log.exception("worker %d: could not remove account %s", self.args.index, account)
                    break
                if not stuck:  # tell the supervisor: it starts a spare worker rather than run short
                    stuck = True
                    self.stuck += 1
                    self.send({"ev": "slots", "lingering": self.lingering, "stuck": self.stuck})
                await asyncio.sleep(1.0)
        finally:
            if stuck:
                self.stuck -= 1
            self.free_slots.append(slot)

    async def attempt(self, account: str, call_id: str, uri: str, hold: float, track: MediaTrack) -> dict[str, Any]:
        """One INVITE to `uri`, held `hold` s once answered; the caller's result dict."""
        from agents.ua import CallAnswered, CallEnded, CallProgress

        ua = self.ua
        assert ua is not None
        args = self.args
        loop = asyncio.get_running_loop()
        handle = -1
        tries = 5  # a just-ended call may hold its pjsua slot for a moment; after that: another worker
        for n in range(tries):
            try:
                handle = await ua.make_call(account, uri, {CALL_HEADER: call_id})
                break
            except RuntimeError:  # CallSlotsBusy, or our own count of calls at the limit
                if n == tries - 1:
                    return result_dict(call_id, uri, None, end_reason=SLOTS_BUSY)
                await asyncio.sleep(0.2)
        t0 = loop.time()
        q = self.claim(handle)
        try:
            answer_full = t0 + args.answer_timeout
            answer_deadline = min(answer_full, t0 + args.response_timeout) if args.response_timeout else answer_full
            hold_deadline: float | None = None
            hangup_deadline = 0.0
            hangup_reason = ""
            next_sample = 0.0
            stop_task = asyncio.ensure_future(self.stopping.wait())
            try:
                while True:
                    now = loop.time()
                    if hangup_reason:
                        deadline = hangup_deadline
                    elif hold_deadline is not None:
                        deadline = min(hold_deadline, next_sample)
                    else:
                        deadline = answer_deadline
                    getter = asyncio.ensure_future(q.get())
                    waits: set[asyncio.Future[Any]] = {getter}
                    if not hangup_reason:
                        waits.add(stop_task)
                    done, _ = await asyncio.wait(
                        waits, timeout=max(0.0, deadline - now), return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter not in done:
                        getter.cancel()
                    now = loop.time()
                    if getter in done:
                        ev = getter.result()
                        if isinstance(ev, CallProgress):
                            answer_deadline = answer_full  # something answers: wait the full time
                        elif isinstance(ev, CallAnswered) and hold_deadline is None and not hangup_reason:
                            hold_deadline = now + hold
                            next_sample = now
                        elif isinstance(ev, CallEnded):
                            return result_dict(call_id, uri, ev.outcome, end_reason=hangup_reason or None)
                        continue
                    if hangup_reason:  # no DISCONNECTED (a BYE/CANCEL into a dead proxy)
                        snap = await ua.snapshot(handle)
                        return result_dict(call_id, uri, snap, end_reason=hangup_reason)
                    if stop_task in done:
                        hangup_reason = "stopped"
                    elif hold_deadline is not None and now < hold_deadline:
                        next_sample = now + SAMPLE_S
                        snap = await ua.snapshot(handle)
                        if snap is not None:
                            track.feed(now, snap.stats.rx_packets, snap.stats.tx_packets)
                        continue
                    else:
                        hangup_reason = "caller_bye" if hold_deadline is not None else "timeout"
                    snap = await ua.snapshot(handle)
                    if snap is not None and hold_deadline is not None:
                        track.feed(now, snap.stats.rx_packets, snap.stats.tx_packets)
                    await ua.hangup(handle, hangup_reason)
                    hangup_deadline = loop.time() + HANGUP_WAIT_S
            finally:
                stop_task.cancel()
        finally:
            self.queues.pop(handle, None)

    # -- main loop

    async def run(self) -> None:
        from agents.ua import UaOptions, UserAgent

        args = self.args
        self.ua = UserAgent(
            UaOptions(
                sip_port=args.sip_port,
                bind_addr=args.bind,
                log_level=args.log_level,
                user_agent="wobble-load",
                stats_interval=SAMPLE_S,
            )
        )
        addr = await self.ua.start()
        log.info("worker %d: SIP on %s", args.index, addr)
        pump = asyncio.ensure_future(self.pump())
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self.send({"ev": "ready", "sip": addr, "pid": os.getpid()})
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                log.error("worker %d: bad line %r", args.index, line[:200])
                continue
            op = msg.get("op")
            if op == "call":
                task = asyncio.ensure_future(self.job(msg))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif op == "stop":
                self.stopping.set()
            elif op == "exit":
                break
        self.stopping.set()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=HANGUP_WAIT_S + 2.0)
        pump.cancel()
        await self.ua.stop(timeout=3.0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from agents.ua import PortInUseError, redirect_stdout_to_stderr

    out = redirect_stdout_to_stderr()
    code = 0
    try:
        asyncio.run(Worker(args, out).run())
    except PortInUseError as exc:
        log.error("worker %d: %s", args.index, exc)
        code = 3
    except Exception:
        log.exception("worker %d crashed", args.index)
        code = 1
    with contextlib.suppress(Exception):
        out.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
