"""Pure logic of the traffic generator (`agents.load`): the seeded arrival schedule and hold times,
per-direction RTP tracking, fate and status of a call, its event record, the run summary.

Nothing here imports pjsua2, asyncio or the network, so all of it is unit-testable anywhere.
The record's core fields, the schema version, and the fate/status rules below live in core.schema
(shared with `wobble call`); docs/events.md documents them.

Fate of an answered call (None for an unanswered one), in this order of precedence:
- `silent`: no RTP at all, neither received nor sent.
- `dropped`: ended early — the far end hung up (remote_bye), RTP stopped arriving for the media
  timeout (media_timeout: a dead media relay looks like this), or a transport error.
- `one_way`: held to the end, but RTP flowed in one direction only (a direction counted nothing,
  or one direction's counter stood still for >= ONE_WAY_S while the other kept counting).
- `survived`: held to the end (or until the run was stopped) with RTP flowing both ways.

Status of a call record (the event kind is `load_<status>`):
- `ok`: answered (200) and survived.
- `fail`: definitely not served: rejected, no route, no response, capacity, timed out before an
  answer, transport error, or answered but dropped / one-way / silent.
- `info`: outcome unknown: the worker holding the call died (worker_lost), the run stopped
  waiting for it (abandoned), the run was stopped before the call was answered (stopped), or
  the supervisor itself died and a later recovery closed the call (recovered, see core.history).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.schema import EARLY_END as EARLY_END
from core.schema import FATES as FATES
from core.schema import ONE_WAY_S as ONE_WAY_S
from core.schema import SCHEMA_VERSION, record_from_result
from core.schema import STATUSES as STATUSES
from core.schema import UNKNOWN_END as UNKNOWN_END
from core.schema import call_mos as call_mos
from core.schema import classify_fate as classify_fate
from core.schema import classify_status as classify_status
from core.schema import invoke_record as invoke_record
from core.stats import percentile

#: The event-log schema version (core.schema.SCHEMA_VERSION; the call record of `wobble call` shares it).
SCHEMA = SCHEMA_VERSION
#: Final codes after which an RFC 3263 client tries its next target (0: no response at all).
RETRY_NEXT_TARGET = frozenset({0, 408, 503})


# --------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    index: int
    t: float  # seconds after the run's start
    hold_s: float


def arrival_times(cps: float, duration: float, kind: str, rng: random.Random) -> list[float]:
    """Offsets (s) of call arrivals in [0, duration): `constant` every 1/cps s starting at 0, or
    `poisson` (exponential gaps of mean 1/cps)."""
    if cps <= 0 or duration <= 0:
        return []
    out: list[float] = []
    if kind == "constant":
        n = math.ceil(duration * cps - 1e-9)
        return [round(k / cps, 6) for k in range(n) if k / cps < duration]
    if kind != "poisson":
        raise ValueError(f"unknown arrival process {kind!r}")
    t = rng.expovariate(cps)
    while t < duration:
        out.append(round(t, 6))
        t += rng.expovariate(cps)
    return out


def hold_time(dist: str, mean: float, minimum: float, rng: random.Random) -> float:
    """One hold time: `fixed` = mean; `exp` = exponential of mean `mean`, floored at `minimum`
    (so the true mean is minimum + mean * exp(-minimum / mean), slightly above `mean`)."""
    if dist == "fixed":
        return float(mean)
    if dist != "exp":
        raise ValueError(f"unknown hold-time distribution {dist!r}")
    return max(float(minimum), round(rng.expovariate(1.0 / mean), 3))


def expected_hold_mean(dist: str, mean: float, minimum: float) -> float:
    if dist == "fixed":
        return float(mean)
    return minimum + mean * math.exp(-minimum / mean)


def schedule(
    cps: float, duration: float, arrivals: str, hold_dist: str, hold_mean: float, hold_min: float, seed: int
) -> list[Arrival]:
    """The whole run, precomputed from the seed: the same arguments always give the same calls."""
    rng = random.Random(seed)
    times = arrival_times(cps, duration, arrivals, rng)
    hold_rng = random.Random(f"{seed}/hold")
    return [Arrival(i, t, hold_time(hold_dist, hold_mean, hold_min, hold_rng)) for i, t in enumerate(times)]


# --------------------------------------------------------------------------------------------
# Media tracking and fate
# --------------------------------------------------------------------------------------------


@dataclass
class MediaTrack:
    """Per-direction RTP counters sampled during a call; finds the longest one-way stretch."""

    samples: int = 0
    rx: int = 0
    tx: int = 0
    rx_since: float = 0.0  # when rx last moved
    tx_since: float = 0.0
    tx_at_rx_since: int = 0  # tx counter when rx last moved
    rx_at_tx_since: int = 0
    one_way_s: float = 0.0  # longest stretch with one direction still and the other counting

    def feed(self, t: float, rx: int, tx: int) -> None:
        if self.samples == 0:
            self.rx_since = self.tx_since = t
            self.rx, self.tx = rx, tx
            self.tx_at_rx_since, self.rx_at_tx_since = tx, rx
            self.samples = 1
            return
        self.samples += 1
        if rx != self.rx:
            self.rx, self.rx_since, self.tx_at_rx_since = rx, t, tx
        if tx != self.tx:
            self.tx, self.tx_since, self.rx_at_tx_since = tx, t, rx
        if rx == self.rx and t > self.rx_since and tx > self.tx_at_rx_since:
            self.one_way_s = max(self.one_way_s, t - self.rx_since)
        if tx == self.tx and t > self.tx_since and rx > self.rx_at_tx_since:
            self.one_way_s = max(self.one_way_s, t - self.tx_since)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def new_call_id(rng: random.Random | None = None) -> str:
    """`l` + 12 hex digits."""
    r = rng or random.SystemRandom()
    return "l" + f"{r.getrandbits(48):012x}"


def call_record(
    *,
    run_id: str,
    call_id: str,
    hold_s: float,
    chosen_by: str,
    worker: int | None,
    t_invoke: float,
    t_end: float,
    result: Mapping[str, Any] | None = None,
    end_reason: str | None = None,
    targets_tried: Sequence[str] = (),
    one_way_s: float = 0.0,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The completion record of one call: the shared core (core.schema.record_from_result) plus
    `worker`, `one_way_s` and `extra`. `result` is an `agents.caller.result_dict`-shaped dict of
    the last attempt (None when no INVITE was ever sent); `end_reason` overrides its end_reason."""
    rec = record_from_result(
        result,
        run_id=run_id,
        call_id=call_id,
        chosen_by=chosen_by,
        hold_s=hold_s,
        t_invoke=t_invoke,
        t_end=t_end,
        targets_tried=targets_tried,
        end_reason=end_reason,
        one_way_s=one_way_s,
    )
    rec["worker"] = worker
    rec["one_way_s"] = round(one_way_s, 3)
    if extra:
        rec.update(extra)
    return rec


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def fail_key(rec: Mapping[str, Any]) -> str:
    """Why a failed call failed: its fate when it was answered (dropped/one_way/silent), else its
    end_reason."""
    return str(rec.get("fate") or rec.get("end_reason") or "failed")


@dataclass
class RunStats:
    cps_asked: float
    launch_s: float = 0.0  # how long arrivals were being launched
    duration_s: float = 0.0  # whole run
    max_concurrent_seen: int = 0
    workers: int = 0
    worker_restarts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def summarize(run_id: str, records: Sequence[Mapping[str, Any]], stats: RunStats) -> dict[str, Any]:
    """The run's summary line. cps_achieved counts the attempts that reached a worker (not those
    refused for capacity or with no route) over the launch window."""
    by_status = {s: 0 for s in STATUSES}
    by_region: dict[str, int] = {}
    fail_reasons: dict[str, int] = {}
    fates: dict[str, int] = {}
    whose = {"customer": 0, "harness": 0}
    harness_reasons: dict[str, int] = {}
    launched = 0
    for r in records:
        status = str(r.get("status"))
        by_status[status] = by_status.get(status, 0) + 1
        if status == "ok":
            region = str(r.get("region") or "unknown")
            by_region[region] = by_region.get(region, 0) + 1
        elif status == "fail":
            key = fail_key(r)
            fail_reasons[key] = fail_reasons.get(key, 0) + 1
        if status != "ok":
            side = str(r.get("whose") or "customer")
            whose[side] = whose.get(side, 0) + 1
            if side == "harness":
                key = str(r.get("end_reason") or "unknown")
                harness_reasons[key] = harness_reasons.get(key, 0) + 1
        if r.get("fate"):
            fates[str(r["fate"])] = fates.get(str(r["fate"]), 0) + 1
        if r.get("end_reason") not in ("capacity", "no_route"):
            launched += 1
    attempts = len(records)
    answered = [r for r in records if r.get("fate")]
    return {
        "run_id": run_id,
        "attempts": attempts,
        "ok": by_status["ok"],
        "fail": by_status["fail"],
        "info": by_status["info"],
        # Failed or unknown calls split by whose they are: a customer saw it on the wire, or the
        # generator could not place or follow the call (core.schema.HARNESS_END).
        "customer_failed": whose["customer"],
        "harness_failed": whose["harness"],
        "harness_reasons": dict(sorted(harness_reasons.items())),
        "ok_ratio": round(by_status["ok"] / attempts, 4) if attempts else 0.0,
        "pdd_ms_p50": percentile((r.get("pdd_ms") for r in records), 50),
        "pdd_ms_p95": percentile((r.get("pdd_ms") for r in records), 95),
        "setup_ms_p50": percentile((r.get("setup_ms") for r in answered), 50),
        "mos_p5": percentile((r.get("mos") for r in answered), 5),
        "mos_p50": percentile((r.get("mos") for r in answered), 50),
        "cps_asked": stats.cps_asked,
        "cps_achieved": round(launched / stats.launch_s, 3) if stats.launch_s > 0 else 0.0,
        "duration_s": round(stats.duration_s, 3),
        "max_concurrent_seen": stats.max_concurrent_seen,
        "by_region": dict(sorted(by_region.items())),
        "fail_reasons": dict(sorted(fail_reasons.items())),
        "fates": dict(sorted(fates.items())),
        "workers": stats.workers,
        "worker_restarts": stats.worker_restarts,
        **stats.extra,
    }
