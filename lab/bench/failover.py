"""Pure figures of one SBC-crash repetition, from the calls placed around it (no I/O).

A call is `(started, record)`: `started` in seconds relative to the moment just before the SIGKILL,
`record` the lab's call record (final_code, setup_ms, targets_tried).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

Call = tuple[float, dict[str, Any]]


def ok(record: dict[str, Any]) -> bool:
    return record.get("final_code") == 200


def all_ok_after(calls: Sequence[Call]) -> float | None:
    """The start time (relative to the kill) after which every new call succeeded.

    0.0 when no new call failed; None when the last new call failed (it never settled in the window).
    """
    new = sorted(((t, r) for t, r in calls if t >= 0), key=lambda c: c[0])
    if not new:
        return None
    last_fail = max((i for i, (_, r) in enumerate(new) if not ok(r)), default=None)
    if last_fail is None:
        return 0.0
    if last_fail == len(new) - 1:
        return None
    return new[last_fail + 1][0]


def rerouted(record: dict[str, Any]) -> bool:
    """A call that reached its answer only at a second target (SRV next target, or a retry)."""
    return ok(record) and len(record.get("targets_tried") or []) > 1


def baseline_setup_ms(calls: Sequence[Call]) -> float | None:
    """Median setup time of the successful calls begun before the kill (the undisturbed path)."""
    before = [float(r["setup_ms"]) for t, r in calls if t < 0 and ok(r) and isinstance(r.get("setup_ms"), int | float)]
    return statistics.median(before) if before else None


def rep_figures(calls: Sequence[Call], detection_s: float | None) -> dict[str, Any]:
    new = [(t, r) for t, r in calls if t >= 0]
    base = baseline_setup_ms(calls)
    settled = all_ok_after(calls)
    extra = [
        round(float(r["setup_ms"]) - base, 1)
        for _, r in new
        if rerouted(r) and base is not None and isinstance(r.get("setup_ms"), int | float)
    ]
    return {
        "detection_s": None if detection_s is None else round(detection_s, 3),
        "all_ok_after_s": None if settled is None else round(settled, 3),
        "failed_new_calls": sum(1 for _, r in new if not ok(r)),
        "new_calls": len(new),
        "rerouted_calls": sum(1 for _, r in new if rerouted(r)),
        "rerouted_extra_pdd_ms": extra,
        "baseline_setup_ms": None if base is None else round(base, 1),
    }


def pct(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of a small sample; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-round(q * 1000) * len(ordered) // 1000))  # ceil(q * n), integer-exact
    return round(ordered[min(len(ordered), rank) - 1], 3)


def spread(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "median": round(statistics.median(values), 3) if values else None,
        "p95": pct(values, 0.95),
        "n": len(values),
    }


def headline(reps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One steering mode's figures over its repetitions."""
    detected = [float(r["detection_s"]) for r in reps if r["detection_s"] is not None]
    settled = [float(r["all_ok_after_s"]) for r in reps if r["all_ok_after_s"] is not None]
    extra = [x for r in reps for x in r["rerouted_extra_pdd_ms"]]
    return {
        "detection_s": spread(detected),
        "never_detected": sum(1 for r in reps if r["detection_s"] is None),
        "all_ok_after_s": spread(settled),
        "never_settled": sum(1 for r in reps if r["all_ok_after_s"] is None),
        "failed_new_calls": spread([float(r["failed_new_calls"]) for r in reps]),
        "failed_new_calls_total": sum(int(r["failed_new_calls"]) for r in reps),
        "new_calls_total": sum(int(r["new_calls"]) for r in reps),
        "rerouted_calls_total": sum(int(r["rerouted_calls"]) for r in reps),
        "rerouted_extra_pdd_ms": spread(extra),
    }
