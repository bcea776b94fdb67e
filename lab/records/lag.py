"""Replication lag per standby: bytes (from the primary's pg_stat_replication) and seconds (from
the standby: now - the commit time of the last transaction it replayed, which is the RPO clock:
everything the primary committed after that instant is not yet on the standby)."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

from lab.records import db
from lab.records.config import RecordsConfig
from lab.records.errors import RecordsError

PRIMARY_SQL = (
    "SELECT application_name, state, sync_state, "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS replay_bytes, "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint AS flush_bytes, "
    "pg_current_wal_lsn()::text AS primary_lsn FROM pg_stat_replication"
)
STANDBY_SQL = (
    "SELECT pg_is_in_recovery() AS in_recovery, "
    "extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 AS replay_age_s, "
    "pg_last_wal_receive_lsn()::text AS receive_lsn, pg_last_wal_replay_lsn()::text AS replay_lsn, "
    "(SELECT status FROM pg_stat_wal_receiver) AS receiver"
)


@dataclass(frozen=True)
class Lag:
    standby: str  # e.g. "region-a->region-b": region-a's records on region-b's standby
    state: str  # streaming | catchup | disconnected | promoted | unknown
    sync_state: str | None
    bytes: int | None  # WAL the primary has that the standby has not flushed
    seconds: float | None  # age of the last replayed commit (0 when caught up and idle)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def standby_lag(cfg: RecordsConfig, origin: str) -> Lag:
    """Lag of `origin`'s records on the standby in its peer region."""
    peer = cfg.region(origin).peer
    name = f"{origin}->{peer}"
    primary_rows: list[dict[str, Any]] = []
    # The primary may be down: the standby alone still tells its replay age.
    with contextlib.suppress(RecordsError):
        primary_rows = db.query(cfg, db.home(cfg, origin), PRIMARY_SQL)
    mine = [r for r in primary_rows if r["application_name"] == peer.replace("-", "_")]
    try:
        (sb,) = db.query(cfg, db.copy(cfg, peer), STANDBY_SQL)
    except RecordsError:
        sb = None
    if sb is not None and not sb["in_recovery"]:
        return Lag(name, "promoted", None, None, None)
    seconds = None
    if sb is not None and sb["replay_age_s"] is not None:
        # Caught up (replayed == received == primary's current position): an idle primary is not lag.
        caught_up = bool(mine) and mine[0]["replay_bytes"] == 0
        seconds = 0.0 if caught_up else max(0.0, float(sb["replay_age_s"]))
    if mine:
        r = mine[0]
        return Lag(name, str(r["state"]), str(r["sync_state"]), int(r["flush_bytes"] or 0), seconds)
    return Lag(name, "disconnected" if sb is not None else "unknown", None, None, seconds)


def all_lags(cfg: RecordsConfig) -> list[Lag]:
    return [standby_lag(cfg, region) for region in sorted(cfg.regions)]


class LagProbe:
    """Lag of one origin's standby on connections opened once: reading it costs two queries, not
    two connects, so it can be taken right before a crash."""

    def __init__(self, cfg: RecordsConfig, origin: str) -> None:
        self.cfg, self.origin = cfg, origin
        self.peer = cfg.region(origin).peer
        self._primary = db.connect(cfg, db.home(cfg, origin))
        self._standby = db.connect(cfg, db.copy(cfg, self.peer))
        self._p = self._primary.__enter__()
        self._s = self._standby.__enter__()

    def read(self) -> Lag:
        (row,) = self._p.execute(
            PRIMARY_SQL + " WHERE application_name = %s", (self.peer.replace("-", "_"),)
        ).fetchall()
        (sb,) = self._s.execute(STANDBY_SQL).fetchall()
        seconds = 0.0 if row["replay_bytes"] == 0 else max(0.0, float(sb["replay_age_s"] or 0.0))
        return Lag(
            f"{self.origin}->{self.peer}", str(row["state"]), str(row["sync_state"]), int(row["flush_bytes"]), seconds
        )

    def close(self) -> None:
        for cm in (self._primary, self._standby):
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)
