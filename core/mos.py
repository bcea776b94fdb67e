"""E-model (ITU-T G.107) MOS estimate for a G.711 call from loss, jitter and round-trip time.

Hand-written because it is a few lines of published arithmetic that no maintained library offers.
"""

from __future__ import annotations

import math

#: G.711 with packet-loss concealment (G.113 Appendix I): equipment impairment and robustness.
IE_G711 = 0.0
BPL_G711_PLC = 25.1
#: Packetisation plus a nominal jitter buffer, in ms, added to the one-way network delay.
CODEC_DELAY_MS = 20.0


def delay_impairment(one_way_ms: float) -> float:
    """Id for an absolute one-way delay (simplified G.107 form, exact enough below ~400 ms)."""
    d = max(0.0, one_way_ms)
    return 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)


def r_factor(loss_pct: float, jitter_ms: float = 0.0, rtt_ms: float = 0.0) -> float:
    """Transmission rating R for G.711 with PLC and random loss (BurstR = 1)."""
    ppl = min(100.0, max(0.0, loss_pct))
    # Jitter counts twice: the jitter buffer must hold about two jitter spans to ride it out.
    one_way = max(0.0, rtt_ms) / 2.0 + 2.0 * max(0.0, jitter_ms) + CODEC_DELAY_MS
    ie_eff = IE_G711 + (95.0 - IE_G711) * ppl / (ppl + BPL_G711_PLC)
    return 93.2 - delay_impairment(one_way) - ie_eff


def mos_from_r(r: float) -> float:
    if math.isnan(r) or r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)


def mos(loss_pct: float, jitter_ms: float = 0.0, rtt_ms: float = 0.0) -> float:
    """MOS-CQE in [1, 4.5], rounded to two places."""
    return round(min(4.5, max(1.0, mos_from_r(r_factor(loss_pct, jitter_ms, rtt_ms)))), 2)
