"""The steering bench's figures of one SBC-crash repetition (lab/bench/failover.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lab.bench.failover import all_ok_after, headline, pct, rep_figures


def call(t: float, code: int, setup: float = 100.0, targets: int = 1) -> tuple[float, dict[str, Any]]:
    return t, {"final_code": code, "setup_ms": setup, "targets_tried": ["t"] * targets}


def test_all_ok_after_is_the_start_of_the_call_after_the_last_failure() -> None:
    calls = [call(-1, 200), call(0.2, 503), call(0.7, 200), call(1.1, 0), call(1.6, 200), call(2.1, 200)]
    assert all_ok_after(calls) == 1.6


def test_no_failure_is_zero_and_a_failing_last_call_never_settled() -> None:
    assert all_ok_after([call(-1, 0), call(0.5, 200)]) == 0.0  # failures before the kill do not count
    assert all_ok_after([call(0.5, 200), call(1.0, 503)]) is None
    assert all_ok_after([call(-0.5, 200)]) is None


def test_rerouted_calls_carry_their_extra_setup_over_the_baseline() -> None:
    calls = [call(-2, 200, 40), call(-1, 200, 60), call(0.3, 200, 1050, targets=2), call(0.8, 408)]
    fig = rep_figures(calls, 0.912)
    assert fig["baseline_setup_ms"] == 50.0
    assert fig["rerouted_calls"] == 1 and fig["rerouted_extra_pdd_ms"] == [1000.0]
    assert fig["failed_new_calls"] == 1 and fig["new_calls"] == 2
    assert fig["detection_s"] == 0.912 and fig["all_ok_after_s"] is None


def test_headline_counts_repetitions_that_never_detected_or_settled() -> None:
    reps = [rep_figures([call(0.1, 200)], 0.8), rep_figures([call(0.1, 503)], None)]
    h = headline(reps)
    assert h["never_detected"] == 1 and h["never_settled"] == 1
    assert h["detection_s"] == {"median": 0.8, "p95": 0.8, "n": 1}
    assert h["failed_new_calls_total"] == 1 and h["new_calls_total"] == 2


def test_pct_is_nearest_rank() -> None:
    assert pct(list(range(1, 21)), 0.95) == 19
    assert pct([5.0], 0.95) == 5.0
    assert pct([], 0.5) is None


@given(st.lists(st.tuples(st.floats(0, 30), st.sampled_from([200, 503, 0, 408])), min_size=1, unique_by=lambda c: c[0]))
def test_after_all_ok_after_every_new_call_succeeded(raw: list[tuple[float, int]]) -> None:
    calls = [call(t, c) for t, c in raw]
    settled = all_ok_after(calls)
    if settled is not None:
        assert all(r["final_code"] == 200 for t, r in calls if t >= settled)
    else:  # the latest new call failed
        assert sorted(calls, key=lambda c: c[0])[-1][1]["final_code"] != 200
