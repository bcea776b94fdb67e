"""What a drill measures: pure functions over the run's events (plain dicts, docs/events.md) and
its fault timeline. No I/O, no clocks: the same log always gives the same numbers.

Times are UNIX seconds in the events; series are per second, offset from the run's `t0`.

Whose failure: a call record says `whose` (`customer` or `harness`, issue 11); a record without it
is judged by its end_reason: the generator's own troubles (HARNESS_REASONS) are the harness's,
everything else that failed is what a customer saw. A `stopped` call (the run ended before it was
answered) is nobody's. Harness failures are never customer failures; above 1 % of the attempts
they make the run invalid.

New calls vs calls in flight: a call answered before a fault started and still up then is "in
flight" at that fault: its fate (survived / dropped / one_way / silent) counts there, not in the
new-call success series.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.stats import percentile
from lab.drill import sources

LOAD_KINDS = ("load_ok", "load_fail", "load_info")
HARNESS_REASONS = frozenset({"capacity", "worker_lost", "abandoned", "error", "recovered", "no_worker"})
FATES = ("survived", "dropped", "one_way", "silent")
HARNESS_INVALID_RATIO = 0.01
DOWN = "DOWN"
UP = "UP"
SUSPECT = "SUSPECT"

Event = Mapping[str, Any]


# ------------------------------------------------------------------------------------------------
# Calls
# ------------------------------------------------------------------------------------------------


def call_records(events: Iterable[Event], run_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The load generator's call completions (load_ok/fail/info), of the given runs if any; one per call."""
    runs = set(run_ids) if run_ids is not None else None
    seen: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("kind") in LOAD_KINDS and (runs is None or e.get("run_id") in runs):
            seen.setdefault(str(e.get("call_id")), dict(e))
    return list(seen.values())


def invokes(events: Iterable[Event], run_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    runs = set(run_ids) if run_ids is not None else None
    return [dict(e) for e in events if e.get("kind") == "load_invoke" and (runs is None or e.get("run_id") in runs)]


def whose(rec: Mapping[str, Any]) -> str | None:
    """`customer` or `harness` for a call that was not served; None for a served or nobody's call."""
    status = rec.get("status")
    if status == "ok":
        return None
    given = rec.get("whose")
    if given in ("customer", "harness"):
        return str(given)
    reason = rec.get("end_reason")
    if reason in HARNESS_REASONS:
        return "harness"
    if status == "info":  # stopped, or an outcome nobody knows: nobody's
        return None
    return "customer"


def outcome(rec: Mapping[str, Any]) -> str:
    """`ok`, `customer` (a failure a customer saw), `harness` (the generator's), or `none` (nobody's)."""
    if rec.get("status") == "ok":
        return "ok"
    return whose(rec) or "none"


def sent_region(rec: Mapping[str, Any]) -> str | None:
    """The region a call was sent to: steering's answer, the first SRV target, else who answered."""
    if rec.get("steered_region"):
        return str(rec["steered_region"])
    srv = rec.get("srv_regions") or []
    if srv:
        return str(srv[0])
    region = rec.get("region")
    return str(region) if region else None


def answered_at(rec: Mapping[str, Any]) -> float | None:
    """When an answered call was answered (t_invoke + setup); None if it never was."""
    if rec.get("fate") is None or rec.get("t_invoke") is None:
        return None
    setup = rec.get("setup_ms")
    if setup is None:
        setup = rec.get("pdd_ms") or 0.0
    return float(rec["t_invoke"]) + float(setup) / 1000.0


def in_flight_at(rec: Mapping[str, Any], t: float) -> bool:
    """Answered before t and not yet ended at t."""
    a = answered_at(rec)
    if a is None or a > t:
        return False
    end = rec.get("t_end")
    return end is None or float(end) > t


# ------------------------------------------------------------------------------------------------
# Faults
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultWindow:
    """One fault of the run as the event log tells it."""

    id: str
    kind: str
    target: str
    params: Mapping[str, Any] = field(default_factory=dict)
    asked_at: float | None = None  # fault_invoke
    start: float | None = None  # fault_apply started_at (None: never applied)
    end: float | None = None  # the revert (or fault_end when no revert was logged)
    duration_s: float | None = None
    failed: str | None = None  # fault_fail error
    revert_reason: str | None = None
    revert_failed: str | None = None
    warden_exit: int | None = None
    ended: bool = False  # fault_end seen
    revert_logged: bool = False  # the warden's own fault_revert seen

    @property
    def applied(self) -> bool:
        return self.start is not None

    def active_at(self, t: float, grace_s: float = 0.0) -> bool:
        if self.start is None or t < self.start:
            return False
        end = self.end if self.end is not None else math.inf
        return t <= end + grace_s


def fault_windows(events: Iterable[Event], ids: Sequence[str] | None = None) -> list[FaultWindow]:
    """Each fault's lifecycle (fault_invoke/apply/fail/revert/revert_failed/end), in the order asked."""
    info: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for e in events:
        kind = str(e.get("kind", ""))
        if not kind.startswith("fault_") or e.get("id") is None:
            continue
        fid = str(e["id"])
        if ids is not None and fid not in ids:
            continue
        d = info.setdefault(fid, {"id": fid})
        if fid not in order:
            order.append(fid)
        for k in ("target", "params", "duration_s"):
            if e.get(k) is not None:
                d.setdefault(k, e[k])
        if e.get("fault"):
            d.setdefault("kind", e["fault"])
        ts = float(e.get("ts") or 0.0)
        if kind == "fault_invoke":
            d["asked_at"] = ts
        elif kind == "fault_apply":
            d["start"] = float(e.get("started_at") or ts)
        elif kind == "fault_fail":
            d["failed"] = str(e.get("error") or "failed")
        elif kind == "fault_revert":
            d["end"] = min(d.get("end", math.inf), ts)
            d["revert_reason"] = e.get("reason")
            d["revert_logged"] = True
        elif kind == "fault_revert_failed":
            d["revert_failed"] = str(e.get("error") or "revert failed")
            d["end"] = min(d.get("end", math.inf), ts)
        elif kind == "fault_end":
            d["ended"] = True
            d["warden_exit"] = e.get("warden_exit")
            d.setdefault("end", ts)
            d.setdefault("revert_reason", e.get("reason"))
    if ids is not None:
        order = [i for i in ids if i in info]
    out = []
    for fid in order:
        d = info[fid]
        out.append(
            FaultWindow(
                id=fid,
                kind=str(d.get("kind", "?")),
                target=str(d.get("target", "?")),
                params=dict(d.get("params") or {}),
                asked_at=d.get("asked_at"),
                start=d.get("start"),
                end=d.get("end"),
                duration_s=d.get("duration_s"),
                failed=d.get("failed"),
                revert_reason=d.get("revert_reason"),
                revert_failed=d.get("revert_failed"),
                warden_exit=d.get("warden_exit"),
                ended=bool(d.get("ended")),
                revert_logged=bool(d.get("revert_logged")),
            )
        )
    return out


def in_any_fault(t: float, faults: Sequence[FaultWindow], grace_s: float = 0.0) -> bool:
    return any(f.active_at(t, grace_s) for f in faults)


def _pct(params: Mapping[str, Any]) -> float:
    try:
        return float(params.get("pct", 100.0) if params.get("pct") is not None else 100.0)
    except (TypeError, ValueError):
        return 100.0


def justifies_down(kind: str, target: str, params: Mapping[str, Any], region: str) -> bool:
    """Does this fault justify steering marking `region` DOWN? A dead or unreachable SBC, media
    relay or PBX of the region does; wobble (delay, jitter, some loss, slow DNS, OPTIONS dropped
    while calls work, a slow CRM) does not: it should be ridden out."""
    services = sources.REGIONS.get(region, ())
    edge = tuple(s for s in services if s.startswith(("sbc-", "media-", "pbx-")))
    if kind == "region_down":
        return target == region
    if kind in ("kill", "stop", "pause"):
        return target in edge
    if kind == "partition":
        return (target == region or target in edge) and params.get("network") in ("carrier", region)
    if kind == "blackhole":
        return target in edge
    if kind in ("loss", "sip_503"):
        return target in edge and _pct(params) >= 50
    if kind == "sip_drop":
        return target in edge and str(params.get("method", "")).upper() == "INVITE" and _pct(params) >= 50
    return False


def justified_regions(fault: FaultWindow, regions: Iterable[str]) -> list[str]:
    return [r for r in regions if justifies_down(fault.kind, fault.target, fault.params, r)]


# ------------------------------------------------------------------------------------------------
# New-call success
# ------------------------------------------------------------------------------------------------


@dataclass
class Bin:
    """One second of new calls (by t_invoke): served, failed as a customer saw, failed by the harness."""

    t: int
    ok: int = 0
    fail: int = 0
    harness: int = 0

    @property
    def attempts(self) -> int:
        """Customer-relevant attempts: served + customer failures (harness failures are not attempts of a customer)."""
        return self.ok + self.fail

    @property
    def ratio(self) -> float | None:
        return self.ok / self.attempts if self.attempts else None


def success_series(
    records: Iterable[Mapping[str, Any]],
    t0: float,
    t1: float,
    exclude: Iterable[str] = (),
    region: str | None = None,
) -> list[Bin]:
    """Per-second new-call outcomes for every second of [t0, t1), by t_invoke. `exclude`: call ids
    not counted as new calls (the in-flight ones); `region`: only calls sent to that region."""
    skip = set(exclude)
    n = max(0, math.ceil(t1 - t0))
    bins = [Bin(i) for i in range(n)]
    for r in records:
        if r.get("t_invoke") is None or str(r.get("call_id")) in skip:
            continue
        if region is not None and sent_region(r) != region:
            continue
        i = math.floor(float(r["t_invoke"]) - t0)
        if not 0 <= i < n:
            continue
        o = outcome(r)
        if o == "ok":
            bins[i].ok += 1
        elif o == "customer":
            bins[i].fail += 1
        elif o == "harness":
            bins[i].harness += 1
    return bins


def window_ratio(bins: Sequence[Bin], start: int, width: int) -> tuple[float | None, int]:
    """(success ratio, attempts) over bins[start:start+width]."""
    part = bins[max(0, start) : max(0, start + width)]
    ok = sum(b.ok for b in part)
    att = sum(b.attempts for b in part)
    return (ok / att if att else None), att


def rto(bins: Sequence[Bin], fault_start: float, window_s: float, ratio: float, min_attempts: int = 1) -> float | None:
    """Fault start -> the start of the first window of `window_s` seconds (whole bins, all inside the
    series) whose new-call success is >= `ratio` with at least `min_attempts` attempts; the window
    starts at its first second with an attempt. `fault_start` is an offset from the series' t0.
    0 when success never dipped; None when it never came back."""
    width = max(1, math.ceil(window_s))
    first = max(0, math.floor(fault_start))
    for s in range(first, len(bins) - width + 1):
        value, att = window_ratio(bins, s, width)
        if value is not None and att >= min_attempts and value >= ratio - 1e-12:
            # the window starts with its first attempt: seconds nobody called prove nothing
            begin = next(b for b in range(s, s + width) if bins[b].attempts)
            return round(max(0.0, begin - fault_start), 3)
    return None


def success_ratio(bins: Sequence[Bin]) -> float | None:
    value, _ = window_ratio(bins, 0, len(bins))
    return value


def settled_ids(records: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(r.get("call_id")) for r in records}


def settled_bins(
    records: Sequence[Mapping[str, Any]], invoked: Sequence[Mapping[str, Any]], t0: float, t1: float
) -> int:
    """How many leading seconds of [t0, t1) have every invoked call completed (live checks only
    judge seconds whose outcomes are all known: a failure is known in seconds, a success only
    when the call ends)."""
    done = settled_ids(records)
    pending = [float(i["t_invoke"]) for i in invoked if str(i.get("call_id")) not in done and i.get("t_invoke")]
    n = max(0, math.ceil(t1 - t0))
    if not pending:
        return n
    return max(0, min(n, math.floor(min(pending) - t0)))


# ------------------------------------------------------------------------------------------------
# Calls in flight, quality, regions
# ------------------------------------------------------------------------------------------------


def inflight_fates(records: Iterable[Mapping[str, Any]], fault_starts: Sequence[float]) -> dict[str, Any]:
    """The calls up (answered, not ended) when a fault started, by fate and region. A call spanning
    several fault starts counts once (at the first). Returns {survived, dropped, one_way, silent,
    total, by_region: {region: {fate: n}}, call_ids: [...]}."""
    totals = Counter({f: 0 for f in FATES})
    by_region: dict[str, Counter[str]] = {}
    ids: list[str] = []
    for r in records:
        if not any(in_flight_at(r, t) for t in fault_starts):
            continue
        fate = str(r.get("fate"))
        if fate not in FATES:
            continue
        totals[fate] += 1
        region = str(r.get("region") or "unknown")
        by_region.setdefault(region, Counter({f: 0 for f in FATES}))[fate] += 1
        ids.append(str(r.get("call_id")))
    return {
        **{f: totals[f] for f in FATES},
        "total": sum(totals.values()),
        "by_region": {k: {f: v[f] for f in FATES} for k, v in sorted(by_region.items())},
        "call_ids": ids,
    }


def quality(
    records: Iterable[Mapping[str, Any]], faults: Sequence[FaultWindow], grace_s: float = 0.0
) -> dict[str, float | None]:
    """PDD p50/p95 and MOS p5/p50 of the calls placed inside fault windows (+ grace) and outside them."""
    inside: list[Mapping[str, Any]] = []
    outside: list[Mapping[str, Any]] = []
    for r in records:
        if r.get("t_invoke") is None:
            continue
        (inside if in_any_fault(float(r["t_invoke"]), faults, grace_s) else outside).append(r)

    def stats(rs: list[Mapping[str, Any]], tag: str) -> dict[str, float | None]:
        answered = [r for r in rs if r.get("fate")]
        return {
            f"pdd_p50_ms_{tag}": percentile((r.get("pdd_ms") for r in rs), 50),
            f"pdd_p95_ms_{tag}": percentile((r.get("pdd_ms") for r in rs), 95),
            f"mos_p5_{tag}": percentile((r.get("mos") for r in answered), 5),
            f"mos_p50_{tag}": percentile((r.get("mos") for r in answered), 50),
        }

    return {**stats(inside, "in_fault"), **stats(outside, "out_of_fault")}


def region_share(
    records: Iterable[Mapping[str, Any]], t0: float, t1: float, step_s: float = 5.0
) -> list[dict[str, Any]]:
    """Which region served the served calls, per `step_s` slice of [t0, t1): [{t, counts: {region: n}}]."""
    n = max(0, math.ceil((t1 - t0) / step_s))
    out: list[dict[str, Any]] = [{"t": round(i * step_s, 3), "counts": {}} for i in range(n)]
    for r in records:
        if r.get("status") != "ok" or r.get("t_invoke") is None:
            continue
        i = math.floor((float(r["t_invoke"]) - t0) / step_s)
        if 0 <= i < n:
            region = str(r.get("region") or "unknown")
            out[i]["counts"][region] = out[i]["counts"].get(region, 0) + 1
    return out


def counts(records: Iterable[Mapping[str, Any]], exclude: Iterable[str] = ()) -> dict[str, int]:
    """attempts, ok, customer_failed, harness_failed, nobody (stopped) of the new calls."""
    skip = set(exclude)
    c = Counter(outcome(r) for r in records if str(r.get("call_id")) not in skip)
    return {
        "attempts": sum(c.values()),
        "ok": c["ok"],
        "customer_failed": c["customer"],
        "harness_failed": c["harness"],
        "nobody": c["none"],
    }


def harness_invalid(harness_failed: int, attempts: int, limit: float = HARNESS_INVALID_RATIO) -> bool:
    """The generator could not place or follow more than `limit` of the attempts: the run proves nothing."""
    return attempts > 0 and harness_failed / attempts > limit


def fail_reasons(records: Iterable[Mapping[str, Any]], exclude: Iterable[str] = ()) -> dict[str, int]:
    """Customer-visible failures by reason (the fate of an answered call, else the SIP code, else end_reason)."""
    skip = set(exclude)
    c: Counter[str] = Counter()
    for r in records:
        if str(r.get("call_id")) in skip or outcome(r) != "customer":
            continue
        code = int(r.get("final_code") or 0)
        c[str(r.get("fate") or (code if code >= 300 else r.get("end_reason") or "failed"))] += 1
    return dict(sorted(c.items()))


# ------------------------------------------------------------------------------------------------
# Steering
# ------------------------------------------------------------------------------------------------


def decisions(events: Iterable[Event]) -> list[dict[str, Any]]:
    return sorted(
        (dict(e) for e in events if e.get("kind") == "steering_decision"),
        key=lambda d: float(d.get("t") or d.get("ts") or 0.0),
    )


def _t(d: Mapping[str, Any]) -> float:
    return float(d.get("t") or d.get("ts") or 0.0)


def state_timeline(
    decs: Sequence[Mapping[str, Any]], regions: Iterable[str], t0: float, t1: float, initial: str = UP
) -> dict[str, list[dict[str, Any]]]:
    """Each region's health state as spans [{from, to, state}] (offsets from t0) over [t0, t1]."""
    out: dict[str, list[dict[str, Any]]] = {}
    for region in regions:
        spans: list[dict[str, Any]] = []
        state, since = initial, 0.0
        for d in decs:
            if d.get("region") != region or d.get("decision", "health") != "health":
                continue
            at = _t(d) - t0
            if at < 0:
                state = str(d.get("after") or state)
                continue
            if at > t1 - t0:
                break
            new = str(d.get("after") or state)
            if new != state:
                if at > since:
                    spans.append({"from": round(since, 3), "to": round(at, 3), "state": state})
                state, since = new, at
        spans.append({"from": round(since, 3), "to": round(t1 - t0, 3), "state": state})
        out[region] = spans
    return out


def _decides(d: Mapping[str, Any]) -> bool:
    """A decision that moved traffic: an applied DOWN, or the operator's approval of one."""
    return (d.get("after") == DOWN and bool(d.get("applied", True))) or d.get("rule") == "operator-approved"


def false_failovers(
    decs: Sequence[Mapping[str, Any]], faults: Sequence[FaultWindow], grace_s: float = 5.0
) -> list[dict[str, Any]]:
    """Every decision marking a region DOWN while no fault that justifies it was active (+ grace)."""
    out = []
    for d in decs:
        if d.get("after") != DOWN or d.get("region") in (None, "*"):
            continue
        region, t = str(d["region"]), _t(d)
        if not any(f.active_at(t, grace_s) and justifies_down(f.kind, f.target, f.params, region) for f in faults):
            out.append(dict(d))
    return out


def flips(decs: Sequence[Mapping[str, Any]]) -> int:
    """Routing changes: a region going DOWN or coming back from DOWN."""
    return sum(1 for d in decs if d.get("region") not in (None, "*") and DOWN in (d.get("after"), d.get("before")))


def steering_metrics(
    decs: Sequence[Mapping[str, Any]], faults: Sequence[FaultWindow], regions: Iterable[str], grace_s: float = 5.0
) -> dict[str, Any]:
    """Detection (first SUSPECT/DOWN of a justified region after the fault started) and decision
    (first applied DOWN, or the operator's approval) per fault; flips; false failovers; the
    operator's waits in confirm mode; who decided each failover and by which rule."""
    names = list(regions)
    per_fault: list[dict[str, Any]] = []
    for f in faults:
        if f.start is None:
            continue
        targets = justified_regions(f, names)
        horizon = (f.end if f.end is not None else math.inf) + grace_s
        seen = [d for d in decs if d.get("region") in targets and f.start <= _t(d) <= horizon]
        detect = next((d for d in seen if d.get("after") in (SUSPECT, DOWN)), None)
        decide = next((d for d in seen if _decides(d)), None)
        per_fault.append(
            {
                "id": f.id,
                "kind": f.kind,
                "target": f.target,
                "regions": targets,
                "detection_s": round(_t(detect) - f.start, 3) if detect else None,
                "decision_s": round(_t(decide) - f.start, 3) if decide else None,
            }
        )
    who = [
        {
            "t": _t(d),
            "region": d.get("region"),
            "before": d.get("before"),
            "after": d.get("after"),
            "rule": d.get("rule"),
            "mode": d.get("mode"),
            "applied": d.get("applied", True),
            "approved_by": d.get("approved_by"),
            "wait_s": d.get("wait_s"),
        }
        for d in decs
        if d.get("after") == DOWN or str(d.get("rule", "")).startswith("operator-") or d.get("before") == DOWN
    ]
    waits = [float(d["wait_s"]) for d in decs if d.get("wait_s") is not None]
    detections = [p["detection_s"] for p in per_fault if p["detection_s"] is not None]
    decided = [p["decision_s"] for p in per_fault if p["decision_s"] is not None]
    ff = false_failovers(decs, faults, grace_s)
    return {
        "per_fault": per_fault,
        "detection_s": max(detections) if detections else None,
        "decision_s": max(decided) if decided else None,
        "flips": flips(decs),
        "false_failovers": len(ff),
        "false_failover_decisions": ff,
        "operator_wait_s": max(waits) if waits else None,
        "decided": who,
    }


# ------------------------------------------------------------------------------------------------
# Supporting tier
# ------------------------------------------------------------------------------------------------


def agent_logins(events: Iterable[Event]) -> dict[str, Any]:
    """Login attempts at the IdP: attempts, ok, ratio, latency p95, failures by error."""
    logins = [e for e in events if e.get("kind") == "agent_login"]
    ok = [e for e in logins if e.get("ok")]
    errors = Counter(str(e.get("error") or "failed") for e in logins if not e.get("ok"))
    return {
        "attempts": len(logins),
        "ok": len(ok),
        "ratio": round(len(ok) / len(logins), 4) if logins else None,
        "latency_p95_ms": percentile((e.get("latency_ms") for e in logins), 95),
        "errors": dict(errors),
    }


def screen_pops(events: Iterable[Event]) -> dict[str, Any]:
    """Screen pops of the calls agents answered: ok / late / fallback, and the fallback ratio among pops."""
    c = Counter(
        str(e.get("screen_pop") or "none")
        for e in events
        if e.get("kind") == "agent_call" and int(e.get("final_code") or 200) == 200
    )
    pops = c["ok"] + c["late"] + c["fallback"]
    return {
        "ok": c["ok"],
        "late": c["late"],
        "fallback": c["fallback"],
        "none": c["none"],
        "fallback_ratio": round(c["fallback"] / pops, 4) if pops else None,
    }


def rehomes(events: Iterable[Event]) -> list[dict[str, Any]]:
    keys = ("ts", "region", "to_region", "placement", "rule", "reason")
    return [{k: e.get(k) for k in keys} for e in events if e.get("kind") == "agent_rehome"]


# ------------------------------------------------------------------------------------------------
# Live checks: steady state and abort conditions
# ------------------------------------------------------------------------------------------------


def check_floor(
    bins: Sequence[Bin], metric: str, below: float | None, above: float | None, width: int
) -> tuple[bool, float | None]:
    """Is the metric over the last `width` bins past its bound? (tripped, value). Needs `width` bins."""
    if len(bins) < width or width <= 0:
        return False, None
    part = bins[-width:]
    value: float | None
    if metric == "new_call_success":
        value, _ = window_ratio(part, 0, width)
    elif metric == "failed_new_calls":
        value = float(sum(b.fail for b in part))
    elif metric == "harness_failed":
        value = float(sum(b.harness for b in part))
    else:
        raise ValueError(f"unknown abort metric {metric!r}")
    if value is None:
        return False, None
    if below is not None and value < below:
        return True, value
    if above is not None and value > above:
        return True, value
    return False, value


def steady_state(
    records: Sequence[Mapping[str, Any]],
    t_from: float,
    t_to: float,
    success_min: float,
    pdd_p95_max_ms: float | None = None,
    mos_p5_min: float | None = None,
) -> list[dict[str, Any]]:
    """The steady-state SLOs over the calls placed in [t_from, t_to): [{name, value, limit, pass}]."""
    rs = [r for r in records if r.get("t_invoke") is not None and t_from <= float(r["t_invoke"]) < t_to]
    c = counts(rs)
    att = c["ok"] + c["customer_failed"]
    ratio = c["ok"] / att if att else None
    out = [
        {
            "name": "new_call_success_min",
            "value": None if ratio is None else round(ratio, 4),
            "limit": success_min,
            "pass": ratio is not None and ratio >= success_min,
        }
    ]
    if pdd_p95_max_ms is not None:
        p = percentile((r.get("pdd_ms") for r in rs), 95)
        out.append(
            {
                "name": "pdd_p95_max_ms",
                "value": p,
                "limit": pdd_p95_max_ms,
                "pass": p is not None and p <= pdd_p95_max_ms,
            }
        )
    if mos_p5_min is not None:
        m = percentile((r.get("mos") for r in rs if r.get("fate")), 5)
        out.append({"name": "mos_p5_min", "value": m, "limit": mos_p5_min, "pass": m is not None and m >= mos_p5_min})
    return out


# ------------------------------------------------------------------------------------------------
# The whole run
# ------------------------------------------------------------------------------------------------


def run_metrics(
    events: Sequence[Event],
    faults: Sequence[FaultWindow],
    t0: float,
    t1: float,
    *,
    run_ids: Iterable[str] | None = None,
    regions: Iterable[str] = ("region-a", "region-b"),
    window_s: float = 10.0,
    ratio: float = 0.95,
    grace_s: float = 10.0,
    measure_from: float | None = None,
) -> dict[str, Any]:
    """Every metric of a run (summary.json's `metrics`) and the series the report plots.

    `measure_from`: calls placed before it (warm-up) are left out of the counts and SLOs.
    rto_s is always a number: with `rto_recovered` false it is a lower bound (the observation ended).
    """
    names = list(regions)
    records = call_records(events, run_ids)
    starts = [f.start for f in faults if f.start is not None]
    inflight = inflight_fates(records, starts)
    exclude = set(inflight["call_ids"])
    since = t0 if measure_from is None else measure_from
    measured = [r for r in records if r.get("t_invoke") is not None and float(r["t_invoke"]) >= since]
    bins = success_series(records, t0, t1, exclude=exclude)
    c = counts(measured, exclude=exclude)
    rtos: list[dict[str, Any]] = []
    for f in faults:
        if f.start is None:
            continue
        value = rto(bins, f.start - t0, window_s, ratio)
        rtos.append({"id": f.id, "kind": f.kind, "target": f.target, "rto_s": value, "recovered": value is not None})
    recovered = all(r["recovered"] for r in rtos)
    observed = max(0.0, t1 - min(starts)) if starts else 0.0
    rto_s = max((r["rto_s"] if r["rto_s"] is not None else observed) for r in rtos) if rtos else 0.0
    new_calls = [r for r in measured if str(r.get("call_id")) not in exclude]
    out_of_fault = [r for r in new_calls if not in_any_fault(float(r["t_invoke"]), faults, grace_s)]
    oc = counts(out_of_fault)
    oatt = oc["ok"] + oc["customer_failed"]
    decs = decisions(events)
    steer = steering_metrics(decs, faults, names, grace_s)
    logins = agent_logins(events)
    pops = screen_pops(events)
    q = quality([r for r in measured if str(r.get("call_id")) not in exclude], faults, grace_s)
    lost = inflight["dropped"] + inflight["one_way"] + inflight["silent"]
    return {
        "rto_s": round(rto_s, 3),
        "rto_recovered": recovered,
        "rto_by_fault": rtos,
        "attempts": c["attempts"],
        "ok": c["ok"],
        "failed_new_calls": c["customer_failed"],
        "harness_failed": c["harness_failed"],
        "harness_failed_ratio": round(c["harness_failed"] / c["attempts"], 4) if c["attempts"] else 0.0,
        "harness_invalid": harness_invalid(c["harness_failed"], c["attempts"]),
        "nobodys": c["nobody"],
        "fail_reasons": fail_reasons(measured, exclude),
        "new_call_success": round(oc["ok"] / oatt, 4) if oatt else None,
        "new_call_success_all": round(c["ok"] / (c["ok"] + c["customer_failed"]), 4)
        if c["ok"] + c["customer_failed"]
        else None,
        "inflight": {k: inflight[k] for k in (*FATES, "total", "by_region")},
        "inflight_lost": lost,
        **q,
        "false_failovers": steer["false_failovers"],
        "flips": steer["flips"],
        "detection_s": steer["detection_s"],
        "decision_s": steer["decision_s"],
        "operator_wait_s": steer["operator_wait_s"],
        "steering": steer,
        "agent_logins": logins,
        "agent_login_success": logins["ratio"],
        "screen_pops": pops,
        "screen_pop_fallback_ratio": pops["fallback_ratio"],
        "rehomes": rehomes(events),
        "series": {
            "success": [{"t": b.t, "ok": b.ok, "fail": b.fail, "harness": b.harness} for b in bins],
            "region_share": region_share(measured, t0, t1),
            "steering": state_timeline(decs, names, t0, t1),
            "calls": [
                {
                    "t": round(float(r["t_invoke"]) - t0, 3),
                    "pdd_ms": r.get("pdd_ms"),
                    "mos": r.get("mos"),
                    "outcome": outcome(r),
                    "region": r.get("region"),
                }
                for r in records
                if r.get("t_invoke") is not None
            ],
        },
    }
