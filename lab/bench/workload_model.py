"""The workload benchmark's arithmetic, pure (no I/O, no docker): whether a step held, how big the
generator's fleet is, CPU deltas above the idle lab and their least-squares slope, per-service
groups, mean concurrency over a window, SIPp's statistics and the agents' view of SIPp's media.

`lab.bench.workload`, `lab.bench.sipp` and `lab.bench.soak` do the measuring; this does the sums,
so they are unit tested (tests/unit/test_bench_workload.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.mos import mos as emodel_mos
from core.stats import percentile
from core.topology import Topology

# --------------------------------------------------------------------------------------------
# When a step holds
# --------------------------------------------------------------------------------------------

OK_FLOOR = 0.995
PDD_P95_MAX_MS = 500.0
MOS_P5_MIN = 4.0
#: The generator's fleet is sized for this many times the step's offered concurrency (CPS x hold).
CAP_FACTOR = 2.0
#: agents.load / lab.load accept at most this many calls in flight.
GENERATOR_CAP_MAX = 400


@dataclass(frozen=True)
class Rule:
    """The bar a step must meet to hold."""

    ok_floor: float = OK_FLOOR
    pdd_p95_max_ms: float = PDD_P95_MAX_MS
    mos_p5_min: float = MOS_P5_MIN
    max_capacity_refusals: int = 0

    def describe(self) -> str:
        return (
            f"a step holds when its generator refused no call for capacity (harness `capacity` failures "
            f"<= {self.max_capacity_refusals}), ok ratio >= {self.ok_floor}, PDD p95 <= {self.pdd_p95_max_ms:g} ms "
            f"and MOS p5 >= {self.mos_p5_min:g}"
        )


RULE = Rule()


def capacity_refusals(summary: Mapping[str, Any]) -> int:
    """Calls the generator refused for want of a slot (a harness failure, core.schema.HARNESS_END):
    `harness_reasons.capacity`; a summary without `harness_reasons` counts `fail_reasons.capacity`."""
    reasons = summary.get("harness_reasons")
    if not isinstance(reasons, Mapping):
        reasons = summary.get("fail_reasons")
    if not isinstance(reasons, Mapping):
        return 0
    return int(reasons.get("capacity") or 0)


def step_verdict(summary: Mapping[str, Any], rule: Rule = RULE) -> tuple[bool, list[str]]:
    """Whether a load step held, and every reason it did not (empty when it held)."""
    why: list[str] = []
    if summary.get("error"):
        why.append(f"generator error: {summary['error']}")
    attempts = int(summary.get("attempts") or 0)
    if attempts <= 0:
        why.append("no attempts")
    refusals = capacity_refusals(summary)
    if refusals > rule.max_capacity_refusals:
        why.append(f"{refusals} capacity refusals")
    ratio = summary.get("ok_ratio")
    if ratio is None or not float(ratio) >= rule.ok_floor:
        why.append(f"ok ratio {ratio} < {rule.ok_floor}")
    pdd = summary.get("pdd_ms_p95")
    if pdd is None or not float(pdd) <= rule.pdd_p95_max_ms:
        why.append(f"PDD p95 {pdd} ms > {rule.pdd_p95_max_ms:g} ms")
    mos = summary.get("mos_p5")
    if mos is None or not float(mos) >= rule.mos_p5_min:
        why.append(f"MOS p5 {mos} < {rule.mos_p5_min:g}")
    return (not why), why


def ceiling(steps: Sequence[Mapping[str, Any]], key: str = "cps") -> float:
    """The highest offered rate of the unbroken run of held steps from the bottom of the ladder
    (a step that holds above one that did not is luck, not capacity); 0.0 when the first failed."""
    best = 0.0
    for st in sorted(steps, key=lambda s: float(s[key])):
        if not st.get("held"):
            break
        best = float(st[key])
    return best


def generator_cap(cps: float, hold_s: float, factor: float = CAP_FACTOR) -> int:
    """Calls in flight the generator may hold for a step: `factor` x the offered concurrency
    (CPS x hold), and never below what `wobble load` itself would choose (lab.load's
    default_max_concurrent: Little's law plus room for its spread), within agents.load's limit."""
    offered = cps * hold_s
    little = math.ceil(offered + 4 * math.sqrt(offered) + 8)
    return max(8, min(GENERATOR_CAP_MAX, max(math.ceil(factor * offered), little)))


# --------------------------------------------------------------------------------------------
# CPU
# --------------------------------------------------------------------------------------------

#: Service groups for cpu_by_service, in report order.
GROUPS = ("pbx", "media", "sbc", "agents", "caller", "others")
GROUP_WHAT = {
    "pbx": "Asterisk (pbx-a, pbx-b)",
    "media": "rtpengine (media-a, media-b)",
    "sbc": "Kamailio (sbc-a, sbc-b)",
    "agents": "pjsua2 agents (agents-a, agents-b)",
    "caller": "the caller container: our load generator's pjsua2 workers, the carrier probe (and nothing of SIPp's)",
    "others": "every other lab container (steering, dns, dbs, toxiproxy, crm, idp, chaos, ...)",
}


def service_group(service: str, topology: Topology | None = None) -> str:
    """The cpu_by_service group of a compose service name (core.topology's names)."""
    topo = topology or Topology.default()
    for r in topo.regions:
        if service == r.pbx_service:
            return "pbx"
        if service == r.media_service:
            return "media"
        if service == r.sbc_service:
            return "sbc"
        if service == r.agents_service:
            return "agents"
    return "caller" if service == "caller" else "others"


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU time (ns) per compose service at one moment (monotonic seconds)."""

    t: float
    usage_ns: Mapping[str, int] = field(default_factory=dict)


def cpu_delta_s(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """CPU seconds each service used between two samples. A service missing from either sample, or
    whose counter went backwards (its container restarted), is left out rather than guessed."""
    out: dict[str, float] = {}
    for svc, end in after.usage_ns.items():
        start = before.usage_ns.get(svc)
        if start is None or end < start:
            continue
        out[svc] = (end - start) / 1e9
    return out


def cpu_pct(delta_s: Mapping[str, float], wall_s: float) -> dict[str, float]:
    """Percent of one core per service over a wall-clock interval."""
    if wall_s <= 0:
        raise ValueError("wall_s must be > 0")
    return {svc: 100.0 * s / wall_s for svc, s in delta_s.items()}


def by_group(per_service: Mapping[str, float], topology: Topology | None = None) -> dict[str, float]:
    """Sum a per-service figure into GROUPS (every group present, 0.0 when empty)."""
    out = dict.fromkeys(GROUPS, 0.0)
    for svc, v in per_service.items():
        out[service_group(svc, topology)] += v
    return out


def above_idle(loaded_pct: Mapping[str, float], idle_pct: Mapping[str, float]) -> dict[str, float]:
    """Loaded CPU % minus the idle lab's, key by key (a key absent from idle counts as idle 0)."""
    return {k: v - idle_pct.get(k, 0.0) for k, v in loaded_pct.items()}


def least_squares(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """(slope, intercept) of the ordinary least-squares line y = slope*x + intercept; None with fewer
    than two distinct x."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 1e-12 * max(1.0, mx * mx):
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def mean_concurrency(intervals: Iterable[tuple[float, float]], w0: float, w1: float) -> float:
    """Mean number of intervals [start, end] open over the window [w0, w1] (call-seconds inside the
    window over its length)."""
    if w1 <= w0:
        raise ValueError("empty window")
    inside = 0.0
    for start, end in intervals:
        lo, hi = max(start, w0), min(end, w1)
        if hi > lo:
            inside += hi - lo
    return inside / (w1 - w0)


def call_intervals(records: Iterable[Mapping[str, Any]], run_id: str) -> list[tuple[float, float]]:
    """[t_invoke, t_end] of every completed call record (load_ok/load_fail/load_info) of a run that
    was placed (a capacity refusal or a no-route never held a call)."""
    out: list[tuple[float, float]] = []
    for r in records:
        if r.get("run_id") != run_id or r.get("kind") not in ("load_ok", "load_fail", "load_info"):
            continue
        if r.get("end_reason") in ("capacity", "no_route"):
            continue
        t0, t1 = r.get("t_invoke"), r.get("t_end")
        if isinstance(t0, int | float) and isinstance(t1, int | float) and t1 >= t0:
            out.append((float(t0), float(t1)))
    return out


def rnd(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def cpu_per_call(above_idle_cpu_s: float, call_s: float) -> float | None:
    """% of one core per concurrent call: CPU seconds above idle per call-second carried, x 100."""
    return 100.0 * above_idle_cpu_s / call_s if call_s > 0 else None


# --------------------------------------------------------------------------------------------
# SIPp
# --------------------------------------------------------------------------------------------

#: A SIPp step fails when more than this share of its calls needed a retransmission
#: (SIPp's Retransmissions(C) over calls attempted): SIPp or the path is not keeping up.
SIPP_RETRANS_MAX = 0.01


def sipp_counters(rows: Sequence[Mapping[str, str]]) -> dict[str, int]:
    """The cumulative counters of SIPp's last statistics row (-trace_stat CSV, `;` separated)."""
    if not rows:
        return {}
    last = rows[-1]

    def num(key: str) -> int:
        try:
            return int(float(str(last.get(key) or 0)))
        except ValueError:
            return 0

    return {
        "ok": num("SuccessfulCall(C)"),
        "failed": num("FailedCall(C)"),
        "retransmissions": num("Retransmissions(C)"),
        "failed_max_udp_retrans": num("FailedMaxUDPRetrans(C)"),
        "dead_call_msgs": num("DeadCallMsgs(C)"),
        "fatal_errors": num("FatalErrors(C)"),
        "watchdog": num("WatchdogMajor(C)") + num("WatchdogMinor(C)"),
    }


def sipp_rtts(rows: Iterable[Mapping[str, str]]) -> dict[str, list[float]]:
    """Per-call response times (ms) from SIPp's -trace_rtt CSV (`Date_ms;response_time_ms;rtd_no`),
    by response-time name: bench/sipp/uac_rtp.xml names `pdd` (INVITE -> 18x) and `setup`
    (INVITE -> 200); uac.xml's single unnamed one is `1` (INVITE -> 200)."""
    out: dict[str, list[float]] = {}
    for row in rows:
        which = str(row.get("rtd_no") or "").strip()
        try:
            ms = float(str(row.get("response_time_ms") or ""))
        except ValueError:
            continue
        if which:
            out.setdefault(which, []).append(ms)
    return out


def sipp_pdd(rtts: Mapping[str, Sequence[float]]) -> tuple[list[float], str]:
    """SIPp's PDD samples and what they time: INVITE -> 18x when the scenario timed it, else INVITE -> 200."""
    if rtts.get("pdd"):
        return list(rtts["pdd"]), "INVITE -> first 180/183 (SIPp response time 'pdd')"
    for key in ("setup", "1"):
        if rtts.get(key):
            return list(rtts[key]), "INVITE -> 200 (SIPp response time; no 18x timed)"
    return [], "no response times"


#: An agent heard SIPp's media when it received at least this share of the packets a 20 ms stream
#: sends over the hold.
MEDIA_RX_SHARE = 0.8


def sipp_media(
    agent_calls: Iterable[Mapping[str, Any]], tag: str, hold_s: float, ptime_ms: float = 20.0
) -> dict[str, Any]:
    """What the agents received of SIPp's RTP: their `agent_call` events whose call_id starts with
    `tag-` (the X-Wobble-Call SIPp sends). A call is `media_ok` when the agent received at least
    MEDIA_RX_SHARE of the hold's packets; MOS is the E-model (core.mos) over the agent's receive
    loss, jitter and RTT."""
    calls = [e for e in agent_calls if str(e.get("call_id") or "").startswith(f"{tag}-") and e.get("final_code") == 200]
    want = MEDIA_RX_SHARE * hold_s * 1000.0 / ptime_ms
    ok = [e for e in calls if int(e.get("rx_packets") or 0) >= want]
    mos = [
        emodel_mos(float(e.get("loss_pct") or 0.0), float(e.get("jitter_ms") or 0.0), float(e.get("rtt_ms") or 0.0))
        for e in calls
    ]
    return {
        "answered_by_agents": len(calls),
        "media_ok": len(ok),
        "no_audio": sum(1 for e in calls if int(e.get("rx_packets") or 0) == 0),
        "media_ok_ratio": round(len(ok) / len(calls), 4) if calls else None,
        "agent_mos_p5": percentile(mos, 5),
        "agent_loss_pct_p95": percentile((float(e.get("loss_pct") or 0.0) for e in calls), 95),
    }


def sipp_verdict(step: Mapping[str, Any], media: bool, rule: Rule = RULE) -> tuple[bool, list[str]]:
    """Whether a SIPp step held (SIPp itself kept up): no launch error, ok ratio at the floor, no
    more than SIPP_RETRANS_MAX retransmissions per call, no fatal or watchdog errors, PDD p95 within
    the rule; with media, also RTP send errors none and the agents heard SIPp's audio on at least
    the floor's share of calls with MOS p5 at the rule's."""
    why: list[str] = []
    if step.get("error"):
        why.append(f"sipp: {step['error']}")
    attempts = int(step.get("attempts") or 0)
    if attempts <= 0:
        why.append("no attempts")
    ratio = step.get("ok_ratio")
    if ratio is None or not float(ratio) >= rule.ok_floor:
        why.append(f"ok ratio {ratio} < {rule.ok_floor}")
    retrans = int(step.get("retransmissions") or 0)
    if attempts and retrans / attempts > SIPP_RETRANS_MAX:
        why.append(f"{retrans} retransmissions over {attempts} calls")
    if int(step.get("fatal_errors") or 0) or int(step.get("watchdog") or 0):
        why.append("sipp fatal errors or watchdog")
    pdd = step.get("pdd_ms_p95")
    if pdd is not None and not float(pdd) <= rule.pdd_p95_max_ms:
        why.append(f"PDD p95 {pdd} ms > {rule.pdd_p95_max_ms:g} ms")
    if media:
        if int(step.get("rtp_errors") or 0):
            why.append(f"{step['rtp_errors']} RTP errors in SIPp's error log")
        m = step.get("media") or {}
        mratio = m.get("media_ok_ratio")
        if mratio is None or not float(mratio) >= rule.ok_floor:
            why.append(f"agents heard SIPp's audio on {mratio} of calls < {rule.ok_floor}")
        mos = m.get("agent_mos_p5")
        if mos is None or not float(mos) >= rule.mos_p5_min:
            why.append(f"agent-side MOS p5 {mos} < {rule.mos_p5_min:g}")
    return (not why), why


def ratio(ours: float, theirs: float | None) -> float | None:
    """Our ceiling over SIPp's (null when SIPp has none: no sipp binary, or it held no step)."""
    return round(ours / theirs, 3) if theirs else None


# --------------------------------------------------------------------------------------------
# G.711
# --------------------------------------------------------------------------------------------


def ulaw_byte(sample: int) -> int:
    """One 16-bit linear PCM sample to G.711 u-law (ITU-T G.711, with the 0x84 bias)."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    mag = min(clip, -sample if sample < 0 else sample) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not mag & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_tone(seconds: float = 1.0, hz: float = 440.0, amplitude: float = 0.3, rate: int = 8000) -> bytes:
    """Raw u-law of a sine tone (what SIPp's rtp_stream plays: raw codec bytes, 160 per 20 ms)."""
    n = int(seconds * rate)
    return bytes(ulaw_byte(int(amplitude * 32767 * math.sin(2 * math.pi * hz * i / rate))) for i in range(n))
