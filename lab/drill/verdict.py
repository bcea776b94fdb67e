"""From measurements to a verdict: each SLO as {name, value, limit, pass}, each fault's proof of
injection and revert, and the run's verdict.

Verdicts, first match wins:
- `incomplete`: the run was interrupted (Ctrl-C, SIGTERM, a killed runner finished later);
- `aborted`: an abort condition tripped (everything was reverted at once);
- `invalid`: the run proves nothing: a fault never took effect or was not cleanly reverted, the
  steady state did not hold before the fault, or the generator's own failures exceed 1 % of the
  attempts;
- `fail`: an SLO (or the steady state after recovery) failed;
- `pass`.

Exit codes (every `wobble` command): 0 pass, 1 fail, 2 bad input, 3 lab not up / steady state
before the fault, 4 aborted, 5 invalid or incomplete.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.stats import percentile
from lab.drill import measure
from lab.drill.measure import FaultWindow

VERDICTS = ("pass", "fail", "aborted", "invalid", "incomplete")
EXIT_CODES = {"pass": 0, "fail": 1, "aborted": 4, "invalid": 5, "incomplete": 5}
EXIT_BAD_INPUT = 2
EXIT_NOT_READY = 3
#: Kinds whose effect must show on the calls or in steering (a crash nobody noticed did not happen).
MUST_SHOW = frozenset({"kill", "stop", "pause", "region_down", "partition", "blackhole"})

#: SLO name -> (metric key in summary.metrics, "max" or "min").
SLO_METRICS: dict[str, tuple[str, str]] = {
    "rto_max_s": ("rto_s", "max"),
    "new_call_success_min": ("new_call_success", "min"),
    "failed_new_calls_max": ("failed_new_calls", "max"),
    "inflight_dropped_max": ("inflight_lost", "max"),
    "false_failovers_max": ("false_failovers", "max"),
    "pdd_p95_max_ms": ("pdd_p95_ms_in_fault", "max"),
    "mos_p5_min": ("mos_p5_in_fault", "min"),
    "agent_login_success_min": ("agent_login_success", "min"),
    "screen_pop_fallback_max": ("screen_pop_fallback_ratio", "max"),
    "rpo_max_records": ("rpo_records", "max"),
}
#: SLOs that pass when there was nothing to measure (no login attempted, no pop shown, no fault window call).
NO_DATA_PASSES = frozenset({"agent_login_success_min", "screen_pop_fallback_max", "pdd_p95_max_ms", "mos_p5_min"})


def slo_result(name: str, value: float | None, limit: float, tier: str = "", note: str = "") -> dict[str, Any]:
    """One SLO: value against limit. A max SLO passes at value <= limit, a min SLO at value >= limit;
    no value fails, except the SLOs in NO_DATA_PASSES (nothing happened that they judge)."""
    _, how = SLO_METRICS.get(name, (name, "max" if name.endswith("_max") else "min"))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        ok = name in NO_DATA_PASSES
        note = note or "no data"
    else:
        ok = value <= limit + 1e-9 if how == "max" else value >= limit - 1e-9
    out: dict[str, Any] = {"name": name, "tier": tier, "value": value, "limit": limit, "pass": bool(ok)}
    if note:
        out["note"] = note
    return out


def evaluate_slos(slos: Iterable[tuple[str, str, float]], metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every SLO the scenario sets, against the run's metrics (rto: also fails if never recovered)."""
    out = []
    for tier, name, limit in slos:
        key, _ = SLO_METRICS[name]
        value = metrics.get(key)
        if name == "rto_max_s" and not metrics.get("rto_recovered", True):
            res = slo_result(name, value, limit, tier, note="never recovered within the run; value is a lower bound")
            res["pass"] = False
        else:
            res = slo_result(name, value, limit, tier)
        out.append(res)
    return out


def describe_slo(s: Mapping[str, Any]) -> str:
    """One line: `rto_max_s: 12.3 > 10 (limit)`."""
    _, how = SLO_METRICS.get(str(s["name"]), ("", "max"))
    value = "no data" if s.get("value") is None else f"{s['value']:g}"
    ops = {("max", True): "<=", ("min", True): ">=", ("max", False): ">", ("min", False): "<"}
    op = ops[(how, bool(s.get("pass")))]
    text = f"{s['name']}: {value} {op} {s['limit']:g} (limit)"
    return text + (f"; {s['note']}" if s.get("note") else "")


# ------------------------------------------------------------------------------------------------
# Fault proof
# ------------------------------------------------------------------------------------------------


def fault_effect(
    fw: FaultWindow,
    records: Sequence[Mapping[str, Any]],
    decisions: Sequence[Mapping[str, Any]],
    regions: Iterable[str],
) -> dict[str, Any]:
    """What the calls and steering showed while the fault was live: calls placed in its window,
    those that failed, their loss/PDD, and the steering states of the regions it justifies."""
    names = list(regions)
    if fw.start is None:
        return {}
    end = fw.end if fw.end is not None else math.inf
    inside = [r for r in records if r.get("t_invoke") is not None and fw.start <= float(r["t_invoke"]) <= end]
    hit = measure.justified_regions(fw, names)
    targeted = [r for r in inside if measure.sent_region(r) in hit] if hit else inside
    answered = [r for r in inside if r.get("fate")]
    seen = sorted(
        {
            str(d.get("after"))
            for d in decisions
            if d.get("region") in hit and fw.start <= measure._t(d) <= end + 5.0 and d.get("after") != measure.UP
        }
    )
    held = (min(end, fw.end or end) - fw.start) if fw.end is not None else None
    losses = [float(r.get("loss_pct") or 0.0) for r in answered]
    return {
        "applied_at": fw.start,
        "reverted_at": fw.end,
        "held_s": None if held is None else round(held, 3),
        "calls_in_window": len(inside),
        "calls_failed_in_window": sum(1 for r in inside if measure.outcome(r) == "customer"),
        "calls_to_hit_region_failed": sum(1 for r in targeted if measure.outcome(r) == "customer") if hit else None,
        "loss_pct_mean": round(sum(losses) / len(losses), 3) if losses else None,
        "pdd_p95_ms": percentile((r.get("pdd_ms") for r in inside), 95),
        "steering_states": seen,
        "regions_hit": hit,
    }


def fault_proof(
    fw: FaultWindow,
    records: Sequence[Mapping[str, Any]],
    decisions: Sequence[Mapping[str, Any]],
    regions: Iterable[str],
    still_listed: Iterable[str] = (),
) -> dict[str, Any]:
    """{id, kind, target, asked, measured, took_effect, clean_after, why}.

    took_effect: the warden applied it and said LIVE (`fault_apply`, the warden's own read-back);
    for a crash-like fault (MUST_SHOW) that hits a region, steering or the calls to that region
    must also have shown it. clean_after: reverted (`fault_revert`, no `fault_revert_failed`), the
    warden exited 0 and the controller no longer lists it."""
    effect = fault_effect(fw, records, decisions, regions)
    why: list[str] = []
    took = fw.applied and fw.failed is None
    if fw.failed:
        why.append(f"not applied: {fw.failed}")
    elif not fw.applied:
        why.append("never applied (no fault_apply in the log)")
    if took and fw.kind in MUST_SHOW and effect.get("regions_hit"):
        shown = bool(effect.get("steering_states")) or (effect.get("calls_to_hit_region_failed") or 0) > 0
        if not shown:
            took = False
            why.append("applied, but neither steering nor any call to the region noticed it")
    # reverted: the warden logged its revert, or the controller saw it exit 0 (its "reverted cleanly")
    reverted = fw.revert_logged or (fw.ended and fw.warden_exit == 0)
    clean = fw.applied and fw.revert_failed is None and reverted
    if fw.revert_failed:
        why.append(f"revert failed: {fw.revert_failed}")
    elif fw.applied and not reverted:
        why.append("no revert in the log")
    if fw.revert_reason and str(fw.revert_reason).startswith("error"):
        clean = False
        why.append(f"reverted on an error: {fw.revert_reason}")
    if fw.warden_exit not in (None, 0):
        clean = False
        why.append(f"warden exited {fw.warden_exit}")
    if fw.id in set(still_listed):
        clean = False
        why.append("still listed by the chaos controller after the drill")
    asked: dict[str, Any] = {"for_s": fw.duration_s, **dict(fw.params)}
    return {
        "id": fw.id,
        "kind": fw.kind,
        "target": fw.target,
        "asked": asked,
        "measured": effect,
        "took_effect": bool(took),
        "clean_after": bool(clean),
        "why": "; ".join(why),
    }


# ------------------------------------------------------------------------------------------------
# The verdict
# ------------------------------------------------------------------------------------------------


def decide(
    *,
    slos: Sequence[Mapping[str, Any]],
    faults: Sequence[Mapping[str, Any]],
    harness_invalid: bool,
    steady_before: Sequence[Mapping[str, Any]] | None,
    steady_after: Sequence[Mapping[str, Any]] | None,
    aborted: str | None = None,
    interrupted: str | None = None,
) -> tuple[str, str]:
    """(verdict, reason in plain words)."""
    if interrupted:
        return "incomplete", interrupted
    if aborted:
        return "aborted", aborted
    if steady_before is not None and not all(s["pass"] for s in steady_before):
        bad = next(s for s in steady_before if not s["pass"])
        return "invalid", f"steady state did not hold before the fault: {describe_slo(bad)}"
    if not faults:
        return "invalid", "no fault was injected"
    for f in faults:
        if not f["took_effect"]:
            return "invalid", f"fault {f['kind']} on {f['target']} never took effect: {f.get('why') or 'no proof'}"
    for f in faults:
        if not f["clean_after"]:
            return "invalid", f"fault {f['kind']} on {f['target']} was not cleanly reverted: {f.get('why')}"
    if harness_invalid:
        return "invalid", "the traffic generator's own failures exceed 1 % of the attempts"
    failed = [s for s in slos if not s["pass"]]
    if steady_after is not None:
        failed += [{**s, "name": f"steady_state_after.{s['name']}"} for s in steady_after if not s["pass"]]
    if failed:
        return "fail", "; ".join(describe_slo(s) for s in failed)
    return "pass", f"all {len(slos)} SLOs held"


def exit_code(verdict: str) -> int:
    return EXIT_CODES.get(verdict, 1)
