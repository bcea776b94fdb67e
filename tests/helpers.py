"""Helpers shared by the unit and lab tests."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

from core import events

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str], every: float = 0.05) -> T:
    """Poll `predicate` every `every` seconds until it returns something truthy, and return that;
    after `timeout` seconds fail the test with an AssertionError saying what was waited for (`what`,
    or what it returns then: the state worth seeing) and the predicate's last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {said} (last: {value!r})")
        time.sleep(every)


def logged(path: Path | None = None) -> list[dict[str, Any]]:
    """The event log as raw JSON objects (every line whole: envelope, declared and unknown fields),
    as the acceptance checks read it."""
    return [ev.to_dict() for ev in events.read(path)]


def skip_or_fail(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip a test whose environment is missing (root, a kernel tool, an image), or fail it under CI
    (the environment variable `CI` set and not empty): on CI a missing tool is a broken runner, and a
    test that silently skips there proves nothing."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing prerequisite fails instead of skipping)", pytrace=False)
    pytest.skip(reason, allow_module_level=allow_module_level)


@dataclass(frozen=True)
class Band:
    """How far a count of events in a window may stray from its prediction (see loss_band)."""

    rate_per_s: float  #: mean events per second over the run
    dispersion: float  #: per-second variance used: the observed one, never below the mean (Poisson)
    window_s: float
    sigma: float  #: the spread of the count in the window
    half_width: int  #: the band is prediction +- this

    def holds(self, measured: int, predicted: int) -> bool:
        return abs(measured - predicted) <= self.half_width


def loss_band(event_times: Sequence[float], window_s: float, k: float = 3.0, floor: int = 3) -> Band:
    """The band for a count of events (calls ending, records committed) in a window of `window_s`
    seconds, from what the run measured: the events per whole second from the first to the last give
    a mean m and a variance v; the count in the window spreads like sqrt(max(m, v) * window_s) (a
    Poisson process at least, the observed spread when the run was burstier), and the band is
    max(floor, ceil(k * sigma)). Pure: the records lab test's RPO check uses it."""
    times = sorted(event_times)
    if len(times) < 2 or times[-1] <= times[0]:
        sigma = 0.0
        return Band(0.0, 0.0, window_s, sigma, floor)
    n_bins = max(1, math.ceil(times[-1] - times[0]))
    counts = [0] * n_bins
    for t in times:
        counts[min(n_bins - 1, int(t - times[0]))] += 1
    mean = sum(counts) / n_bins
    var = sum((c - mean) ** 2 for c in counts) / (n_bins - 1) if n_bins > 1 else mean
    dispersion = max(mean, var)
    sigma = math.sqrt(dispersion * max(0.0, window_s))
    return Band(mean, dispersion, window_s, sigma, max(floor, math.ceil(k * sigma)))
