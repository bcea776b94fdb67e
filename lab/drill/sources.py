"""Everything the drill package reads from the lab's core, in one place.

Issue 12 moves the event log, schema, topology and docker access to a bottom-layer package and
makes events typed models; the drill package reads them only through this module, as plain dicts,
so re-pointing it is a change here alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from chaos.catalog import REGION_SERVICES
from core import events as _events
from core import paths as _paths

#: The lab's root (the checkout) and its event log.
ROOT: Path = _paths.ROOT
EVENTS: Path = _paths.EVENTS
VAR: Path = _paths.VAR
RESULTS: Path = ROOT / "results"
DRILLS: Path = ROOT / "drills"

#: Region name -> the compose services that make it up (sbc, media, pbx, db).
REGIONS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in REGION_SERVICES.items()}


def region_of_uri(uri: str | None) -> str | None:
    """The region whose SBC a request URI (sip:support@10.77.0.11:5060) points at; None if none."""
    if not uri:
        return None
    from core.topology import Topology

    host = str(uri).split("@", 1)[-1].split(";", 1)[0].rsplit(":", 1)[0]
    for r in Topology.default().regions:
        if host in (r.sbc_carrier_ip, r.sbc_region_ip):
            return r.name
    return None


def lab_services() -> tuple[str, ...]:
    """The compose services of the lab (what a fault may target)."""
    from lab.lifecycle import SERVICES

    return tuple(SERVICES)


def read_events(path: Path | None = None) -> Iterator[dict[str, Any]]:
    """Every well-formed event of the log as a plain dict (torn lines skipped)."""
    return (e.to_dict() for e in _events.read(path or EVENTS))


def events_between(evs: Iterable[dict[str, Any]], t0: float, t1: float | None = None) -> list[dict[str, Any]]:
    """The events written in [t0, t1] (by their envelope `ts`)."""
    return [e for e in evs if float(e.get("ts") or 0.0) >= t0 and (t1 is None or float(e.get("ts") or 0.0) <= t1)]


class EventTail:
    """Reads what was appended to the event log since the last read (by byte offset)."""

    def __init__(self, path: Path | None = None, from_end: bool = True) -> None:
        self.path = path or EVENTS
        self.offset = self.path.stat().st_size if from_end and self.path.exists() else 0
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                if fh.seek(0, 2) < self.offset:
                    self.offset = 0
                fh.seek(self.offset)
                chunk = fh.read()
                self.offset = fh.tell()
        except FileNotFoundError:
            return []
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        out: list[dict[str, Any]] = []
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                out.append(ev)
        return out
