"""chaos.net.delayline's scheduler: pure decisions, checked statistically with seeded randomness."""

from __future__ import annotations

import itertools
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.net.delayline import DelayParams, GilbertElliott, Scheduler, zero_udp_checksum

ms = st.floats(min_value=0, max_value=1000, allow_nan=False)
gaps = st.lists(st.floats(min_value=0, max_value=0.2, allow_nan=False), min_size=1, max_size=200)


def arrivals(gap_list: list[float], start: float = 1000.0) -> list[float]:
    out, t = [], start
    for g in gap_list:
        t += g
        out.append(t)
    return out


@given(ms, ms, gaps, st.integers(0, 2**32))
def test_fifo_without_reorder(delay: float, jitter: float, gap_list: list[float], seed: int) -> None:
    sched = Scheduler(DelayParams(delay_ms=delay, jitter_ms=jitter), random.Random(seed))
    releases = []
    prev = float("-inf")
    for t in arrivals(gap_list):
        d = sched.decide(t)
        assert not d.drop and not d.duplicate
        assert d.release_at >= t  # never before arrival
        assert d.release_at >= prev  # never overtakes
        # Never later than its own latest draw or the packet ahead of it.
        assert d.release_at <= max(t + (delay + jitter) / 1000, prev) + 1e-9
        prev = d.release_at
        releases.append(d.release_at)
    assert releases == sorted(releases)


@given(ms, gaps)
def test_no_jitter_is_exact_delay(delay: float, gap_list: list[float]) -> None:
    sched = Scheduler(DelayParams(delay_ms=delay), random.Random(1))
    for t in arrivals(gap_list):
        assert sched.decide(t).release_at == pytest.approx(t + delay / 1000)


@settings(max_examples=30)
@given(st.floats(10, 500), st.floats(0, 100), st.integers(0, 2**32))
def test_mean_delay_when_packets_are_sparse(delay: float, jitter: float, seed: int) -> None:
    """Spaced wider than the jitter range, FIFO never holds a packet back: mean = delay."""
    jitter = min(jitter, delay)
    sched = Scheduler(DelayParams(delay_ms=delay, jitter_ms=jitter), random.Random(seed))
    n = 4000
    added = [sched.decide(t).release_at - t for t in (i * 1.0 for i in range(n))]
    mean_ms = 1000 * sum(added) / n
    sd = jitter / 3**0.5  # uniform(-j, j)
    assert abs(mean_ms - delay) <= 5 * sd / n**0.5 + 1e-6
    if jitter > 1:
        assert 1000 * max(added) > delay and 1000 * min(added) < delay


def test_dense_traffic_pays_for_fifo_with_a_bit_more_delay() -> None:
    """At 100 pps with 30 ms jitter, keeping order adds a few ms on average (documented)."""
    sched = Scheduler(DelayParams(delay_ms=100, jitter_ms=30), random.Random(7))
    added = [sched.decide(i * 0.01).release_at - i * 0.01 for i in range(20000)]
    mean_ms = 1000 * sum(added) / len(added)
    assert 100 < mean_ms < 115


@settings(max_examples=25)
@given(st.floats(0, 100), st.integers(0, 2**32))
def test_random_loss_rate(pct: float, seed: int) -> None:
    sched = Scheduler(DelayParams(loss_pct=pct), random.Random(seed))
    n = 20000
    lost = sum(sched.decide(float(i)).drop for i in range(n))
    p = pct / 100
    assert abs(lost / n - p) <= 5 * (p * (1 - p) / n) ** 0.5 + 1e-9


@settings(max_examples=25, deadline=None)
@given(st.floats(5, 95), st.floats(5, 95), st.integers(0, 2**32))
def test_gilbert_elliott_stationary_loss(p: float, r: float, seed: int) -> None:
    ge = GilbertElliott(p=p, r=r)
    sched = Scheduler(DelayParams(ge=ge), random.Random(seed))
    n = 50000
    lost = [sched.decide(float(i)).drop for i in range(n)]
    expected = p / (p + r)
    assert ge.stationary_loss() == pytest.approx(expected)
    assert abs(sum(lost) / n - expected) < 0.04


def test_gilbert_elliott_bursts_and_partial_states() -> None:
    ge = GilbertElliott(p=2, r=25, h=20, k=99)
    sched = Scheduler(DelayParams(ge=ge), random.Random(3))
    n = 200_000
    lost = [sched.decide(float(i)).drop for i in range(n)]
    pb = 2 / 27
    assert ge.stationary_loss() == pytest.approx((1 - pb) * 0.01 + pb * 0.8)
    assert abs(sum(lost) / n - ge.stationary_loss()) < 0.01
    # Losses come in bursts: after a loss, another is far likelier than on average.
    after_loss = [b for a, b in itertools.pairwise(lost) if a]
    assert sum(after_loss) / len(after_loss) > 3 * sum(lost) / n


def test_gilbert_elliott_mean_burst_length_is_one_over_r() -> None:
    sched = Scheduler(DelayParams(ge=GilbertElliott(p=1, r=20)), random.Random(5))
    lost = [sched.decide(float(i)).drop for i in range(300_000)]
    bursts, run = [], 0
    for x in lost:
        if x:
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    assert sum(bursts) / len(bursts) == pytest.approx(1 / 0.20, rel=0.1)


@settings(max_examples=20)
@given(st.floats(0, 100), st.integers(0, 2**32))
def test_duplicate_rate(pct: float, seed: int) -> None:
    sched = Scheduler(DelayParams(dup_pct=pct), random.Random(seed))
    n = 20000
    dups = sum(sched.decide(float(i)).duplicate for i in range(n))
    p = pct / 100
    assert abs(dups / n - p) <= 5 * (p * (1 - p) / n) ** 0.5 + 1e-9


@settings(max_examples=20)
@given(st.floats(1, 99), st.integers(0, 2**32))
def test_reorder_sends_a_share_ahead(pct: float, seed: int) -> None:
    sched = Scheduler(DelayParams(delay_ms=20, immediate_pct=pct), random.Random(seed))
    n = 20000
    decisions = [(t, sched.decide(t)) for t in (i * 0.005 for i in range(n))]
    ahead = [d for t, d in decisions if d.release_at == t]
    p = pct / 100
    assert abs(len(ahead) / n - p) <= 5 * (p * (1 - p) / n) ** 0.5
    # The delayed ones stay in order among themselves.
    delayed = [d.release_at for t, d in decisions if d.release_at != t]
    assert delayed == sorted(delayed)
    # And some packets really are overtaken.
    order = [t for t, d in sorted(decisions, key=lambda x: x[1].release_at)]
    assert order != sorted(order)


def test_loss_then_nothing_else() -> None:
    sched = Scheduler(DelayParams(loss_pct=100, dup_pct=100, delay_ms=50), random.Random(0))
    d = sched.decide(5.0)
    assert d.drop and not d.duplicate


def test_zero_udp_checksum() -> None:
    ip = bytes([0x45, 0, 0, 36]) + bytes(5) + bytes([17]) + bytes(10)
    udp = struct.pack("!HHHH", 1000, 2000, 16, 0xBEEF) + b"payload!"
    out = zero_udp_checksum(ip + udp)
    assert out[:20] == ip and out[20:26] == udp[:6] and out[26:28] == b"\0\0" and out[28:] == b"payload!"
    tcp = bytes([0x45]) + bytes(8) + bytes([6]) + bytes(30)
    assert zero_udp_checksum(tcp) == tcp
    assert zero_udp_checksum(b"short") == b"short"
