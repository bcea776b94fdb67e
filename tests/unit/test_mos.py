"""E-model MOS: bounds, monotonicity and known reference points."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.mos import mos, r_factor

pct = st.floats(min_value=0, max_value=100, allow_nan=False)
ms = st.floats(min_value=0, max_value=5000, allow_nan=False)


def test_clean_g711_is_about_4_4() -> None:
    assert 4.3 <= mos(0.0) <= 4.45


def test_heavy_loss_is_poor() -> None:
    assert mos(20.0) < 3.0
    assert mos(100.0) < 1.5


@given(pct, ms, ms)
def test_bounded(loss: float, jitter: float, rtt: float) -> None:
    assert 1.0 <= mos(loss, jitter, rtt) <= 4.5


@given(pct, pct, ms)
def test_more_loss_never_helps(a: float, b: float, rtt: float) -> None:
    lo, hi = sorted((a, b))
    assert r_factor(hi, 0, rtt) <= r_factor(lo, 0, rtt)
    assert mos(hi, 0, rtt) <= mos(lo, 0, rtt)


@given(ms, ms)
def test_more_delay_never_helps(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert mos(1.0, 0, hi) <= mos(1.0, 0, lo)


def test_negative_inputs_are_clamped() -> None:
    assert mos(-5.0, -1.0, -10.0) == mos(0.0)
