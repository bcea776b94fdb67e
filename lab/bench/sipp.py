"""SIPp, the reference generator, through the same SBCs to the same queue and agents as ours.

Run from the carrier network at the caller's address: the host's `sipp` inside the `caller`
container's network namespace (`nsenter -t <its PID> -n sipp ...`; the lab networks are internal, so
this is how a host binary reaches them as a customer would). `--sipp-from host` runs it on the host
at the carrier bridge's address instead (10.77.0.1; older runs did that).

Two scenarios, the same call shape as our steps (fixed hold, same step length, half the rate to each
region's SBC): bench/sipp/uac.xml, signalling only, and bench/sipp/uac_rtp.xml, which streams G.711
u-law (a tone written at run time, `wobble_tone.pcmu`) for the whole hold. A step holds when SIPp
kept up (workload_model.sipp_verdict): its failed calls, retransmissions, fatal/watchdog errors, PDD
p95 and, with RTP, its RTP errors and what the agents received of its audio (their agent_call events,
matched by the X-Wobble-Call SIPp sends).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import dockerctl, paths
from core.stats import percentile
from core.topology import Topology
from lab.bench import workload_model as wm
from lab.bench.measure import EventTail

log = logging.getLogger("wobble.bench.sipp")

SIGNALLING = paths.ROOT / "bench" / "sipp" / "uac.xml"
MEDIA = paths.ROOT / "bench" / "sipp" / "uac_rtp.xml"
TONE = "wobble_tone.pcmu"
SIP_PORT_BASE = 5096  # our generator's workers start at 5100
MEDIA_PORT_BASE = 31000  # ours at 40000; the agents' and rtpengine's are in other namespaces
#: Both regions' SBCs on the carrier network: our generator's calls are steered across both, so
#: SIPp's are split across both, or it would meet half the agents.
SBCS = tuple(f"{r.sbc_carrier_ip}:5060" for r in Topology.default().regions)
HOST_IP = "10.77.0.1"  # the carrier bridge's address on the host
#: Whatever SIPp is asked, a ladder stops here.
LADDER = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 20.0, 24.0)


@dataclass(frozen=True)
class Where:
    """How SIPp reaches the carrier network: a command prefix and the local address it binds."""

    prefix: tuple[str, ...]
    local_ip: str
    what: str


def where(mode: str = "caller-netns") -> Where:
    if mode == "host":
        return Where((), HOST_IP, f"sipp on the host at the carrier bridge's address {HOST_IP}")
    caller = dockerctl.service_container("caller")
    caller.reload()
    pid = int(caller.attrs["State"]["Pid"])
    sudo: tuple[str, ...] = () if os.geteuid() == 0 else ("sudo", "-n")
    ip = Topology.default().caller_ip
    return Where(
        (*sudo, "nsenter", "-t", str(pid), "-n", "--"),
        ip,
        f"the host's sipp in the caller container's network namespace (nsenter -n), from {ip} on the carrier network",
    )


def sipp_cmd(
    sbc: str, scenario: Path, local_ip: str, sip_port: int, media_port: int, rate: float, calls: int,
    limit: int, hold_s: float, timeout_s: float, tag: str,
) -> list[str]:  # fmt: skip
    """One SIPp UAC: `calls` calls at `rate` per second to `sbc`, each held `hold_s`, at most `limit`
    at once; statistics every second (stat.csv), each call's response times (*_rtt.csv), errors
    (err.log), all in its working directory."""
    return ["sipp", sbc, "-sf", str(scenario), "-s", "support", "-i", local_ip, "-p", str(sip_port),
            "-mi", local_ip, "-mp", str(media_port), "-key", "tag", tag,
            "-r", f"{rate:g}", "-m", str(calls), "-l", str(limit), "-d", str(int(hold_s * 1000)), "-nostdin",
            "-timeout", str(int(timeout_s)), "-timeout_error", "-recv_timeout", "10000",
            "-trace_stat", "-stf", "stat.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
            "-trace_err", "-error_file", "err.log"]  # fmt: skip


def rtp_errors(err_log: str) -> int:
    """Lines of SIPp's error log (or stderr) about RTP: a stream that could not be read or sent."""
    return sum(1 for line in err_log.splitlines() if "rtp" in line.lower())


def read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f, delimiter=";"))
    except OSError:
        return []


def run_step(cps: float, media: bool, hold_s: float, step_s: float, at: Where) -> dict[str, Any]:
    """One step: one SIPp per SBC at half the rate each, side by side; the step's figures."""
    scenario = MEDIA if media else SIGNALLING
    share = cps / len(SBCS)
    calls = max(1, round(share * step_s))
    limit = max(4, wm.generator_cap(share, hold_s))
    tag = f"sipp{'m' if media else 's'}{uuid.uuid4().hex[:6]}"
    tail = EventTail()
    timeout_s = step_s + hold_s + 60
    work = Path(tempfile.mkdtemp(prefix=f"wobble-{tag}-"))
    procs = []
    t0 = time.monotonic()
    for i, sbc in enumerate(SBCS):
        cwd = work / str(i)
        cwd.mkdir(parents=True, exist_ok=True)
        if media:
            (cwd / TONE).write_bytes(wm.ulaw_tone(seconds=1.0))
        cmd = [*at.prefix, *sipp_cmd(sbc, scenario, at.local_ip, SIP_PORT_BASE + i, MEDIA_PORT_BASE + 100 * i,
                                     share, calls, limit, hold_s, timeout_s, tag)]  # fmt: skip
        procs.append(
            (cwd, subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        )
    totals: dict[str, int] = {}
    rtts: dict[str, list[float]] = {}
    errors: list[str] = []
    rtp_err = 0
    for cwd, proc in procs:
        try:
            _, err = proc.communicate(timeout=timeout_s + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            errors.append("sipp did not finish in time")
        counters = wm.sipp_counters(read_csv(cwd / "stat.csv"))
        if not counters:
            errors.append((err or "").strip()[-200:] or f"sipp exit {proc.returncode}, no statistics")
        for k, v in counters.items():
            totals[k] = totals.get(k, 0) + v
        for rtt in cwd.glob("*_rtt.csv"):
            for name, times in wm.sipp_rtts(read_csv(rtt)).items():
                rtts.setdefault(name, []).extend(times)
        err_log = (cwd / "err.log").read_text(errors="replace") if (cwd / "err.log").exists() else ""
        rtp_err += rtp_errors(err_log) + rtp_errors(err or "")
    wall = time.monotonic() - t0
    ok, failed = totals.get("ok", 0), totals.get("failed", 0)
    pdd, pdd_what = wm.sipp_pdd(rtts)
    step: dict[str, Any] = {
        "cps": cps,
        "attempts": ok + failed,
        "ok": ok,
        "failed": failed,
        "ok_ratio": round(ok / max(1, ok + failed), 4),
        "retransmissions": totals.get("retransmissions", 0),
        "failed_max_udp_retrans": totals.get("failed_max_udp_retrans", 0),
        "dead_call_msgs": totals.get("dead_call_msgs", 0),
        "fatal_errors": totals.get("fatal_errors", 0),
        "watchdog": totals.get("watchdog", 0),
        "pdd_ms_p50": percentile(pdd, 50),
        "pdd_ms_p95": percentile(pdd, 95),
        "pdd_method": pdd_what,
        "setup_ms_p95": percentile(rtts.get("setup") or rtts.get("1") or [], 95),
        "sipp_cap": limit * len(SBCS),
        "wall_s": round(wall, 1),
    }
    if media:
        step["rtp_errors"] = rtp_err
        time.sleep(3.0)  # the agents write agent_call as their side of the BYE completes
        step["media"] = wm.sipp_media((ev for ev in tail.lines() if ev.get("kind") == "agent_call"), tag, hold_s)
    if wall > step_s + hold_s + 20:
        errors.append(f"sipp fell behind: {wall:.0f} s for a {step_s:.0f} s step")
    if errors:
        step["error"] = "; ".join(errors)
    held, why = wm.sipp_verdict(step, media)
    step.update(held=held, why_not=why)
    shutil.rmtree(work, ignore_errors=True)
    return step


def ladder(
    media: bool, hold_s: float, step_s: float, at: Where, steps: Sequence[float] = LADDER
) -> tuple[float | None, list[dict[str, Any]]]:
    """Step up until SIPp itself fails a step; (its ceiling, the steps). None without a sipp binary."""
    if shutil.which("sipp") is None:
        log.warning("no sipp binary: the SIPp comparison is skipped")
        return None, []
    out: list[dict[str, Any]] = []
    for cps in steps:
        step = run_step(cps, media, hold_s, step_s, at)
        out.append(step)
        log.info("sipp %s step %g CPS: %s", "rtp" if media else "signalling", cps, step)
        if not step["held"]:
            break
        time.sleep(hold_s + 2)  # the last calls end before the next step
    return wm.ceiling(out), out
