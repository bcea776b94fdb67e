"""Place ONE call and print its measurements as one JSON object (the last stdout line).

    python -m agents.caller --target sip:support@10.77.0.11 --hold 5 --call-id ID --json

The INVITE carries `X-Wobble-Call: <id>` and From user = the call id (or --from-user), so the PBX
can attribute the call either way. After the 200 OK the call is held `--hold` seconds (playing a
440 Hz tone), then the caller sends BYE.

Result fields (see `result_dict`):
- final_code: the final SIP response received for the INVITE (200, 486, 503, ...). When none came:
  408 (end_reason 'timeout') if we gave up after `--timeout` although the far end had sent a 1xx
  (it rang, nobody picked up), and 0 when nothing at all came back (no 1xx either: end_reason
  'no_response', or 'transport_error' when sending failed). A code pjsip makes up locally (its own 408 on timer B,
  503 on a transport error) is never reported as if the network had sent it.
- pdd_ms: INVITE sent -> first 18x or 2xx; setup_ms: INVITE sent -> 200 OK.
- end_reason: caller_bye (held the full time, then BYE), remote_bye (the far end hung up while
  held), rejected (final >= 300), timeout (no final response within --timeout), no_response,
  transport_error, media_timeout (no RTP received for --media-timeout s while held; we then hang
  up), failed, watchdog (the engine stalled: fields are whatever was known).
- rx_packets/tx_packets/rx_lost/loss_pct (receive direction)/jitter_ms (mean receive jitter)/
  jitter_max_ms/rtt_ms (mean RTCP RTT, null until an RTCP report came back: needs ~7-10 s calls).
- reply_headers: from the final response: every X-* header (X-Wobble-Region is set by the SBC),
  Server, Reason, Retry-After. `region` repeats X-Wobble-Region (null if absent).

Exit code 0 whenever the call was attempted (the host decides what a failure is); 2 on usage
errors; 3 when --local-port is already taken (end_reason 'port_in_use'); 1 when the engine itself
failed (end_reason 'error', plus an `error` field). A JSON line is printed in every case but 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from agents.model import CALL_HEADER, TOKEN_RE, CallOutcome, RtpStats, parse_valid_args, strip_port, uri_host

log = logging.getLogger("agents.caller")
#: Exit codes: 0 the call was attempted (whatever its outcome), 1 engine failure, 2 usage error,
#: 3 the local SIP port (--local-port) is taken.
EXIT_PORT_IN_USE = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agents.caller", description="Place one measured SIP call.")
    p.add_argument("--target", required=True, help="request URI, e.g. sip:support@10.77.0.11")
    p.add_argument("--hold", type=float, default=5.0, help="seconds to stay connected after 200 OK")
    p.add_argument("--call-id", required=True, help="the lab's call id (X-Wobble-Call, From user)")
    p.add_argument("--from-user", default=None, help="From user part (default: the call id)")
    p.add_argument("--from-domain", default=None, help="From host (default: the target's host)")
    p.add_argument("--local-port", type=int, default=0, help="local SIP UDP port (0: any)")
    p.add_argument("--rtp-port", type=int, default=0, help="first local RTP port (0: pjsua picks)")
    p.add_argument("--bind", default="", help="local address to bind SIP and RTP to")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a final response")
    p.add_argument(
        "--response-timeout",
        type=float,
        default=0.0,
        help="give up after this long without ANY response, not even 100 Trying (0: only --timeout); "
        "an RFC 3263 client then tries its next target",
    )
    p.add_argument(
        "--media-timeout", type=float, default=5.0, help="end a held call after this long without RTP (0: off)"
    )
    p.add_argument("--tone", type=int, default=440, help="tone frequency to send, Hz")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line (always done)")
    p.add_argument("--log-level", type=int, default=1, help="pjsua log level 0-6 (stderr)")
    return parse_valid_args(p, argv, validate_args)


def validate_args(args: argparse.Namespace) -> list[str]:
    problems: list[str] = []
    target = str(args.target)
    if not (target.startswith("sip:") or target.startswith("sips:")) or uri_host(target) is None:
        problems.append(f"--target must be a sip: URI with a host, got {target!r}")
    if not TOKEN_RE.match(str(args.call_id)):
        problems.append("--call-id must be 1-64 characters of [A-Za-z0-9._~-]")
    if args.from_user is not None and not TOKEN_RE.match(str(args.from_user)):
        problems.append("--from-user must be 1-64 characters of [A-Za-z0-9._~-]")
    if not 0 <= args.hold <= 86400:
        problems.append("--hold must be between 0 and 86400 seconds")
    if args.response_timeout < 0:
        problems.append("--response-timeout must be >= 0")
    if not 0 < args.timeout <= 600:
        problems.append("--timeout must be in (0, 600] seconds")
    if args.media_timeout < 0:
        problems.append("--media-timeout must be >= 0")
    for name in ("local_port", "rtp_port"):
        if not 0 <= getattr(args, name) <= 65535:
            problems.append(f"--{name.replace('_', '-')} must be a port number")
    if not 0 <= args.log_level <= 6:
        problems.append("--log-level must be 0-6")
    return problems


def command(python: str, target: str, call_id: str, hold_s: float, *options: str) -> list[str]:
    """The argv that runs this caller with `python`: one call to `target` held `hold_s` seconds as
    lab call id `call_id`, with `options` (`--bind`, `--timeout`, ...), its record printed as JSON."""
    return [
        python,
        "-m",
        "agents.caller",
        "--target",
        target,
        "--hold",
        str(hold_s),
        "--call-id",
        call_id,
        *options,
        "--json",
    ]


def result_dict(
    call_id: str, target: str, outcome: CallOutcome | None, end_reason: str | None = None
) -> dict[str, Any]:
    """The caller's JSON record. `outcome` None means the call never started."""
    if outcome is None:
        return {
            "call_id": call_id,
            "target": target,
            "final_code": 0,
            "final_reason": "",
            "response_seen": False,
            "pdd_ms": None,
            "setup_ms": None,
            "duration_s": 0.0,
            **RtpStats().as_dict(),
            "end_reason": end_reason or "failed",
            "reply_headers": {},
            "region": None,
            "sip_call_id": "",
            "started_at": time.time(),
        }
    reason = end_reason or outcome.end_reason
    code = outcome.final_code
    if code == 0 and reason == "timeout":
        if outcome.response_seen:
            code = 408  # it rang (or at least said 100 Trying) but nobody answered in time
        else:
            reason = "no_response"  # nothing at all came back
    return {
        "call_id": call_id,
        "target": target,
        "final_code": code,
        "final_reason": outcome.final_reason if outcome.final_code else "",
        "response_seen": outcome.response_seen,
        "pdd_ms": outcome.pdd_ms,
        "setup_ms": outcome.setup_ms,
        "duration_s": outcome.duration_s,
        **outcome.stats.as_dict(),
        "end_reason": reason,
        "reply_headers": dict(outcome.reply_headers),
        "region": outcome.reply_headers.get("X-Wobble-Region"),
        "sip_call_id": outcome.sip_call_id,
        "started_at": outcome.started_at,
    }


async def place_call(args: argparse.Namespace) -> dict[str, Any]:
    from agents.ua import AccountSpec, CallAnswered, CallEnded, CallProgress, UaOptions, UserAgent

    from_user = args.from_user or args.call_id
    domain = args.from_domain or strip_port(uri_host(args.target) or "invalid")
    ua = UserAgent(UaOptions(sip_port=args.local_port, bind_addr=args.bind, log_level=args.log_level))
    addr = await ua.start()
    log.info("caller %s: SIP on %s, calling %s", args.call_id, addr, args.target)
    await ua.add_account(
        AccountSpec(
            name="caller",
            id_uri=f"sip:{from_user}@{domain}",
            rtp_port=args.rtp_port,
            rtp_port_range=20 if args.rtp_port else 0,
            tone_hz=args.tone,
            media_timeout_s=args.media_timeout,
            make_default=True,
        )
    )
    handle = await ua.make_call("caller", args.target, {CALL_HEADER: args.call_id})
    loop = asyncio.get_running_loop()
    answer_deadline = loop.time() + args.timeout
    if args.response_timeout:  # until the first response, the shorter deadline holds
        answer_deadline_full = answer_deadline
        answer_deadline = min(answer_deadline, loop.time() + args.response_timeout)
    else:
        answer_deadline_full = answer_deadline
    hold_deadline: float | None = None
    hung_up = False
    hangup_reason = ""
    hangup_deadline = 0.0
    ended: CallOutcome | None = None
    while ended is None:
        now = loop.time()
        deadline = hold_deadline if hold_deadline is not None else answer_deadline
        if hung_up:
            deadline = hangup_deadline
        try:
            ev = await asyncio.wait_for(ua.events.get(), max(0.0, deadline - now))
        except TimeoutError:
            if hung_up:  # no DISCONNECTED (e.g. BYE to a dead proxy): report what we know
                snap = await ua.snapshot(handle)
                return result_dict(args.call_id, args.target, snap, end_reason=hangup_reason)
            hangup_reason = "caller_bye" if hold_deadline is not None else "timeout"
            await ua.hangup(handle, hangup_reason)
            hung_up = True
            hangup_deadline = loop.time() + 3.0
            continue
        if isinstance(ev, CallProgress) and ev.handle == handle:
            answer_deadline = answer_deadline_full  # something answers: wait the full --timeout
        if isinstance(ev, CallAnswered) and ev.handle == handle and hold_deadline is None and not hung_up:
            hold_deadline = loop.time() + args.hold
        elif isinstance(ev, CallEnded) and ev.outcome.handle == handle:
            ended = ev.outcome
    await ua.stop(timeout=2.0)
    return result_dict(args.call_id, args.target, ended)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = sys.stdout
    try:
        from agents.ua import redirect_stdout_to_stderr

        out = redirect_stdout_to_stderr()
    except Exception:  # pjsua2 missing: still print a JSON line below
        pass
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    code = 0
    watchdog = args.timeout + args.hold + 20.0
    try:
        result = asyncio.run(asyncio.wait_for(place_call(args), watchdog))
    except TimeoutError:
        log.error("caller %s: watchdog after %.0f s", args.call_id, watchdog)
        result = result_dict(args.call_id, args.target, None, end_reason="watchdog")
    except Exception as exc:
        if type(exc).__name__ == "PortInUseError":  # agents.ua may not import without pjsua2
            log.error("caller %s: %s", args.call_id, exc)
            result = result_dict(args.call_id, args.target, None, end_reason="port_in_use")
            code = EXIT_PORT_IN_USE
        else:
            log.exception("caller %s failed", args.call_id)
            result = result_dict(args.call_id, args.target, None, end_reason="error")
            code = 1
        result["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(result, separators=(",", ":")), file=out, flush=True)
    out.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
