"""The ground truth of a crashed primary: what it had committed, read from its own data directory.

A throwaway container (network none) of the db image mounts the dead server's volume read-only,
starts a private copy of its home cluster (crash recovery replays the WAL it had flushed, i.e.
exactly what it had committed) and prints the records as CSV. The result is cached per crash (the
container's FinishedAt), so repeated reconciles do not start PostgreSQL again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from docker.errors import ContainerError, DockerException, ImageNotFound

from core import dockerctl, paths
from lab.records import sources
from lab.records.config import RecordsConfig
from lab.records.errors import DbMissing, OperationFailed
from lab.records.reconcile import Records

log = logging.getLogger("wobble.records")
DATA_MOUNT = "/var/lib/wobble-db"
SEPARATOR = "@@wobble-next@@"


@dataclass(frozen=True)
class ServerState:
    container: Any | None
    running: bool
    finished_at: float | None  # when it stopped (None: running or never existed)
    volume: str | None


def server_state(cfg: RecordsConfig, region: str) -> ServerState:
    c = dockerctl.find_service(dockerctl.client(), cfg.region(region).service, project=cfg.project, running=False)
    if c is None:
        return ServerState(None, False, None, None)
    c.reload()
    state = c.attrs.get("State") or {}
    running = bool(state.get("Running"))
    vol = next((m.get("Name") for m in c.attrs.get("Mounts") or [] if m.get("Destination") == DATA_MOUNT), None)
    finished = None if running else _parse_time(str(state.get("FinishedAt") or ""))
    return ServerState(c, running, finished, vol)


def _parse_time(text: str) -> float | None:
    """Docker's RFC 3339 time with nanoseconds, as UNIX seconds (None for its zero time)."""
    if not text or text.startswith("0001-"):
        return None
    head, _, frac = text.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(head + "+00:00").timestamp()
    return stamp + (float("0." + frac) if frac.isdigit() else 0.0)


def _cache_file(cfg: RecordsConfig, region: str) -> Path:
    return paths.VAR / "records" / f"groundtruth-{cfg.project}-{region}.json"


def run_sql(cfg: RecordsConfig, region: str, state: ServerState, sqls: list[str]) -> list[str]:
    """Run each SQL (a COPY ... TO STDOUT) on a private copy of `region`'s stopped home cluster;
    returns each output."""
    if state.container is None or state.volume is None:
        raise DbMissing(f"{cfg.region(region).service}: no container or data volume to read from")
    image = state.container.attrs.get("Config", {}).get("Image") or "wobble/db:dev"
    try:
        out = dockerctl.client().containers.run(
            image,
            ["groundtruth", *sqls],
            volumes={state.volume: {"bind": "/src", "mode": "ro"}},
            network_mode="none",
            remove=True,
            stdout=True,
            stderr=False,
        )
    except ContainerError as exc:
        err = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise OperationFailed(f"reading {region}'s data directory failed: {err[-1] if err else exc}") from exc
    except (ImageNotFound, DockerException) as exc:
        raise OperationFailed(f"reading {region}'s data directory failed: {exc}; run `make images`") from exc
    return [part.lstrip("\n") for part in out.decode().split(SEPARATOR + "\n")]


def read(cfg: RecordsConfig, region: str, state: ServerState) -> Records:
    """What `region`'s home primary had committed when it stopped; `state` must be a stopped server."""
    if state.container is None or state.volume is None:
        raise DbMissing(f"{cfg.region(region).service}: no container or data volume to read the ground truth from")
    cache = _cache_file(cfg, region)
    key = f"{state.volume}@{state.finished_at}"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return sources.records_from_rows(cached["cdr"], cached["recordings"])
    except (OSError, ValueError, KeyError):
        pass
    log.info("reading %s's committed records from volume %s", region, state.volume)
    cdr_text, rec_text = run_sql(
        cfg, region, state, [sources.copy_csv(sources.CDR_SQL), sources.copy_csv(sources.REC_SQL)]
    )
    cdr_rows, rec_rows = sources.parse_csv(cdr_text), sources.parse_csv(rec_text)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "cdr": cdr_rows, "recordings": rec_rows}))
    return sources.records_from_rows(cdr_rows, rec_rows)
