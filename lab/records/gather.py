"""Gather what `wobble records reconcile --region R` needs: the calls placed (event log) and, per
origin region, what R can see of its records, what its primary committed, and whether it crashed.

I/O only; the classification is lab.records.reconcile (pure)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from core import events
from lab.records import db, groundtruth, sources
from lab.records.config import RecordsConfig
from lab.records.errors import DbUnreachable, EmptyEventLog
from lab.records.placed import PlacedCall, from_events, outages
from lab.records.reconcile import OriginView, Records, Report, reconcile

log = logging.getLogger("wobble.records")


def origin_truth(cfg: RecordsConfig, origin: str) -> tuple[Records | None, float | None]:
    """(Records the origin's primary committed or None, when it crashed or None): read live while
    it answers; from its data directory (groundtruth) when its server is stopped."""
    try:
        return sources.read_live(cfg, db.home(cfg, origin)), None
    except DbUnreachable:
        pass
    state = groundtruth.server_state(cfg, origin)
    if state.container is None or state.running:
        # Running but not answering (partitioned, or its home fenced down): its data is in use.
        return None, None
    return groundtruth.read(cfg, origin, state), state.finished_at


def run(cfg: RecordsConfig, region: str, since: float | None, event_log: Path, now: float | None = None) -> Report:
    cfg.region(region)  # unknown region: BadInput
    peer = cfg.region(region).peer
    home_ep, copy_ep = db.home(cfg, region), db.copy(cfg, region)
    try:
        own = sources.read_live(cfg, home_ep)
    except DbUnreachable as exc:
        raise DbUnreachable(
            f"region {region} is down or unreachable ({exc}); reconcile against a surviving region"
        ) from exc
    peer_visible = sources.read_live(cfg, copy_ep)
    # By default only calls placed since each origin's database was created count: calls of an
    # earlier lab run went with its volumes.
    created = {region: sources.created_at(cfg, home_ep), peer: sources.created_at(cfg, copy_ep)}
    cutoff = {o: since if since is not None else created[o] for o in created}
    truth, crashed_at = origin_truth(cfg, peer)
    log_events = [ev.to_dict() for ev in events.read(event_log)]

    def outages_of(origin: str) -> tuple[float, ...]:  # its services are named by its letter: db-a, pbx-a
        return outages(log_events, origin, cfg.region(origin).service.rsplit("-", 1)[-1])

    views = {
        region: OriginView(own, own, None, outages_of(region)),
        peer: OriginView(peer_visible, truth, crashed_at, outages_of(peer)),
    }
    lowest = min((c for c in cutoff.values() if c is not None), default=None)
    calls = [c for c in from_events(log_events, since=lowest) if _after(c, cutoff, lowest)]
    if not calls:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(lowest)) + " UTC" if lowest else "the start"
        raise EmptyEventLog(
            f"no calls in {event_log} since {when} (when the records databases were created); "
            "place calls first (`wobble call --region region-a`) or pass --since"
        )
    return reconcile(region, calls, views, now if now is not None else time.time(), since=lowest)


def _after(call: PlacedCall, cutoff: dict[str, float | None], lowest: float | None) -> bool:
    limit = cutoff.get(call.region) if call.region is not None else lowest
    return limit is None or call.t_invoke >= limit
