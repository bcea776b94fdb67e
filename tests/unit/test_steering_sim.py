"""The steering policy over simulated days of probe loss: no false failovers, and the model holds.

The day-long runs go to worker processes (each seed is independent), so the file stays fast.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from lab.steering.policy import PolicyConfig
from lab.steering.simulator import SimReport, simulate

SEEDS = (1, 2, 3, 4, 5)


def _quiet_day(seed: int) -> SimReport:
    return simulate(PolicyConfig(), hours=24.0, loss=0.2, traffic_every_s=None, seed=seed)


def _busy_day(seed: int) -> SimReport:
    return simulate(PolicyConfig(), hours=24.0, loss=0.2, traffic_every_s=3.0, seed=seed)


@pytest.fixture(scope="module")
def days() -> dict[str, list[SimReport]]:
    with ProcessPoolExecutor(max_workers=min(len(SEEDS), os.cpu_count() or 1)) as pool:
        quiet = pool.map(_quiet_day, SEEDS)
        busy = pool.map(_busy_day, SEEDS[:1])
        return {"quiet": list(quiet), "busy": list(busy)}


def test_no_traffic_at_most_one_false_down_per_day_on_every_seed(days: dict[str, list[SimReport]]) -> None:
    """24 h of 20 % independent probe loss on a healthy region, no calls: every seed, not a lucky one."""
    reports = days["quiet"]
    for r in reports:
        assert r.probes == 2 * 24 * 3600 * 5
        assert r.false_down_count <= 1, r
        assert r.expected_false_down_per_day < 0.1
        # one-path runs are expected (2 * 432000 * 0.8 * 0.2^5 = 221/day) and harmless: SUSPECT only
        assert 150 < r.suspect_count < 300, r
    mean = sum(r.false_down_count for r in reports) / len(reports)
    print(f"false DOWN per day over seeds {SEEDS}: {[r.false_down_count for r in reports]} (mean {mean})")
    assert mean <= 0.4


def test_steady_successful_calls_mean_no_down_at_all(days: dict[str, list[SimReport]]) -> None:
    for r in days["busy"]:
        assert r.calls == 24 * 3600 // 3 - 1  # one every 3 s from t = 3 s
        assert r.false_down_count == 0 and r.down_seconds == 0.0, r


def test_the_analytic_model_matches_the_simulation() -> None:
    """With a threshold low enough to see many false DOWNs, the docstring's formula predicts them."""
    cfg = PolicyConfig(fail_threshold=2)
    r = simulate(cfg, hours=12.0, loss=0.2, seed=11, phases=(0.0, 0.1))
    predicted = r.expected_false_down_per_day * r.hours / 24
    assert predicted == pytest.approx(22.1, abs=0.1)
    # a first-order model (leading term only; a region already DOWN cannot go DOWN again), one noisy day
    assert 0.5 * predicted <= r.false_down_count <= 1.6 * predicted, r


@pytest.mark.parametrize("phases", [(0.0, 0.0), (0.05, 0.12), (0.19, 0.01)])
def test_simulated_crash_is_detected_within_the_bound(phases: tuple[float, float]) -> None:
    cfg = PolicyConfig()
    r = simulate(cfg, hours=0.01, loss=0.0, seed=1, phases=phases, crash_at=20.0)
    assert r.false_down_count == 0 and r.detection_s is not None
    assert r.detection_s < cfg.detection_bound_s() + cfg.interval_s
    assert r.detection_s <= 1.1


def test_crash_with_traffic_is_confirmed_by_the_failing_calls() -> None:
    r = simulate(PolicyConfig(), hours=0.02, loss=0.0, seed=1, traffic_every_s=1.0, crash_at=30.0)
    assert r.detection_s is not None and r.detection_s <= 2.0 + 1.0  # the first failed call's report


def test_same_seed_same_day() -> None:
    one = simulate(hours=0.5, seed=42, traffic_every_s=5.0)
    assert one == simulate(hours=0.5, seed=42, traffic_every_s=5.0)
    assert one.phases != simulate(hours=0.01, seed=43).phases
