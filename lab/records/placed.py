"""The calls placed, from the lab's event log (docs/events.md): what reconcile expects records of.

Pure: a list of events in, PlacedCall values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Completed call records (`wobble call`, and the traffic generator's three outcomes).
COMPLETIONS = frozenset({"call", "load_ok", "load_fail", "load_info"})
#: A call attempt starting; without a completion it is still in flight (or its run died).
INVOKES = frozenset({"call_invoke", "load_invoke"})


@dataclass(frozen=True)
class PlacedCall:
    call_id: str
    region: str | None  # the region whose SBC (hence PBX, hence database) took the call
    answered: bool
    talk_s: float  # 200 OK -> disconnect, as the caller measured it
    t_invoke: float
    t_answer: float | None
    t_end: float | None  # None: no completion yet (in flight, or its run died)


def _answer_time(ev: Mapping[str, Any]) -> float | None:
    if ev.get("answered_at") is not None:
        return float(ev["answered_at"])
    if ev.get("setup_ms") is not None and ev.get("t_invoke") is not None:
        return float(ev["t_invoke"]) + float(ev["setup_ms"]) / 1000.0
    return None


def from_events(events: Iterable[Mapping[str, Any]], since: float | None = None) -> list[PlacedCall]:
    """Every call invoked at or after `since` (UNIX s), in order; the completion wins over its invoke.
    An answered call is one with a fate (core.schema: fate is null only when never answered)."""
    calls: dict[str, PlacedCall] = {}
    for ev in events:
        kind = ev.get("kind")
        cid = ev.get("call_id")
        if (kind not in COMPLETIONS and kind not in INVOKES) or not isinstance(cid, str) or not cid:
            continue
        t_invoke = ev.get("t_invoke")
        t0 = float(t_invoke) if t_invoke is not None else float(ev.get("ts") or 0.0)
        if since is not None and t0 < since:
            continue
        if kind in INVOKES:
            calls.setdefault(cid, PlacedCall(cid, None, False, 0.0, t0, None, None))
            continue
        answered = ev.get("fate") is not None
        t_end = ev.get("t_end")
        calls[cid] = PlacedCall(
            call_id=cid,
            region=ev.get("region") if isinstance(ev.get("region"), str) else None,
            answered=answered,
            talk_s=float(ev.get("duration_s") or 0.0) if answered else 0.0,
            t_invoke=t0,
            t_answer=_answer_time(ev) if answered else None,
            # a recovered call has no t_end, but it is over: its log line's time stands in
            t_end=float(t_end) if t_end is not None else float(ev.get("ts") or t0),
        )
    return list(calls.values())


#: Faults that take a region's records writer (its PBX) or its database down.
OUTAGE_KINDS = frozenset({"region_down", "kill", "stop", "pause"})


def outages(evs: Iterable[Mapping[str, Any]], region: str, letter: str) -> tuple[float, ...]:
    """When a fault took `region`'s PBX or records database down (fault_apply events), ascending."""
    mine = {f"pbx-{letter}", f"db-{letter}"}
    out = []
    for ev in evs:
        if ev.get("kind") != "fault_apply" or ev.get("fault") not in OUTAGE_KINDS:
            continue
        services = set(ev.get("services") or ()) | {str(ev.get("target"))}
        if region in services or mine & services:
            out.append(float(ev.get("started_at") or ev.get("ts") or 0.0))
    return tuple(sorted(out))
