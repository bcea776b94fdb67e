"""Small statistics shared by the load summary, the drills' measurements and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float | None], p: float) -> float | None:
    """Linear-interpolation percentile (numpy's default) of the values that are not None, rounded to
    3 places; p in 0..100 (clamped); None for no values."""
    xs = sorted(float(v) for v in values if v is not None)
    if not xs:
        return None
    k = (len(xs) - 1) * min(100.0, max(0.0, p)) / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 3)
