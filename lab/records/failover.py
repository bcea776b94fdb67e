"""Region loss and return for the records: promote the survivor's standby of the lost region's
database, rebuild the returned old primary as a standby of the promoted one (resync), and the
commit mode (async / sync) of every primary."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

from lab.records import db, groundtruth
from lab.records.config import Mode, RecordsConfig
from lab.records.errors import OperationFailed, RecordsError

log = logging.getLogger("wobble.records")


def app_name(region: str) -> str:
    """The application_name a region's standbys stream under (synchronous_standby_names wants one)."""
    return region.replace("-", "_")


def _in_recovery(cfg: RecordsConfig, ep: db.Endpoint) -> bool:
    (row,) = db.query(cfg, ep, "SELECT pg_is_in_recovery() AS r")
    return bool(row["r"])


def promote(cfg: RecordsConfig, lost: str, force: bool = False) -> dict[str, Any]:
    """Promote the standby of `lost`'s records in its peer region. Refused while `lost`'s own
    primary still answers as a primary (two primaries = split brain) unless `force`."""
    survivor = cfg.region(lost).peer
    target = db.copy(cfg, survivor)
    if not force:
        with contextlib.suppress(RecordsError):
            if not _in_recovery(cfg, db.home(cfg, lost)):
                raise OperationFailed(
                    f"{lost}'s primary still answers; promoting its standby in {survivor} would make two "
                    f"primaries (split brain); stop {cfg.region(lost).service} first or pass --force"
                )
    started = time.monotonic()
    if not _in_recovery(cfg, target):
        return {"region": lost, "promoted_in": survivor, "already": True, "seconds": 0.0}
    with db.connect(cfg, target, dbname="postgres") as conn:
        (row,) = conn.execute("SELECT pg_promote(true, 60) AS ok").fetchall()
        if not row["ok"]:
            raise OperationFailed(f"{target}: pg_promote did not finish in 60 s; see `docker logs` of it")
        # The copy inherited the lost primary's synchronous_standby_names: with no standby of its
        # own yet, every commit would wait forever.
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
        conn.execute("SELECT pg_reload_conf()")
        # Until a checkpoint records the new timeline in pg_control, pg_rewind sees source and
        # target on one timeline and says "no rewind required" (then the rebuilt standby diverges).
        conn.execute("CHECKPOINT")
        (lsn,) = conn.execute("SELECT pg_current_wal_lsn()::text AS lsn").fetchall()
    return {
        "region": lost,
        "promoted_in": survivor,
        "already": False,
        "lsn": lsn["lsn"],
        "seconds": round(time.monotonic() - started, 3),
    }


def _proxy_listen(cfg: RecordsConfig, proxy: str) -> tuple[str, int]:
    """Where the backbone reaches a proxy: the toxiproxy server's address, the proxy's port."""
    from lab.records import wan

    port = int(str(wan.proxy(cfg, proxy).listen).rsplit(":", 1)[1])
    return urlsplit(cfg.toxiproxy_api).hostname or "127.0.0.1", port


def _counts(cfg: RecordsConfig, ep: db.Endpoint) -> dict[str, int]:
    (row,) = db.query(
        cfg,
        ep,
        "SELECT (SELECT count(*) FROM cdr) AS cdr, (SELECT count(*) FROM recordings) AS recordings, "
        "(SELECT count(*) FROM cel) AS cel",
    )
    return {k: int(v) for k, v in row.items()}


def resync(cfg: RecordsConfig, region: str, timeout_s: float = 300.0, salvage: bool = True) -> dict[str, Any]:
    """Rebuild `region`'s old primary (back after a loss) as a standby of its promoted copy in the
    peer region: pg_rewind, or a fresh base backup when rewind cannot. First (unless not
    `salvage`) the records only the old primary had (committed, never replicated) are copied into
    the promoted one, so nothing is lost. Returns when the rebuilt standby has replayed everything
    the promoted primary had, with row counts to prove it."""
    peer = cfg.region(region).peer
    source = db.copy(cfg, peer)
    try:
        promoted = not _in_recovery(cfg, source)
    except RecordsError as exc:
        raise OperationFailed(f"cannot resync {region}: its promoted copy is not reachable ({exc})") from exc
    if not promoted:
        raise OperationFailed(
            f"{peer}'s copy of {region} is still a standby: nothing to resync (promote first: "
            f"`wobble records promote --region {region}`)"
        )
    state = groundtruth.server_state(cfg, region)
    if state.container is None or not state.running:
        raise OperationFailed(f"{cfg.region(region).service} is not running; start it (the region came back?) first")
    host, port = _proxy_listen(cfg, cfg.region(region).copy_proxy)
    started = time.monotonic()
    salvaged: dict[str, Any] = {}
    if salvage:
        from lab.records.salvage import salvage as salvage_rows

        stop = state.container.exec_run(["wobble-db", "stop-home"], demux=True)
        if stop.exit_code != 0:
            raise OperationFailed(f"resync of {region}: its old home would not stop (exit {stop.exit_code})")
        salvaged = salvage_rows(cfg, region, state, source)
        log.info("resync %s: salvaged %s into the promoted primary", region, salvaged)
    with db.connect(cfg, source, dbname="postgres") as conn:
        conn.execute("CHECKPOINT")  # the promotion's timeline must be in pg_control (see promote)
        (tli,) = conn.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchall()
    res = state.container.exec_run(["wobble-db", "rewind-home", host, str(port)], demux=True)
    out, err = (b.decode(errors="replace") if b else "" for b in res.output)
    if res.exit_code != 0:
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise OperationFailed(f"resync of {region} failed: {last}")
    found = re.search(r"method=(\w+)", out)
    method = found.group(1) if found else "unknown"
    rewound_s = round(time.monotonic() - started, 3)
    target = db.home(cfg, region)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            (src,) = db.query(cfg, source, "SELECT pg_current_wal_lsn()::text AS lsn")
            (dst,) = db.query(
                cfg,
                target,
                "SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_is_in_recovery() AS r, "
                "(SELECT received_tli FROM pg_stat_wal_receiver) AS tli",
            )
            (cmp,) = db.query(
                cfg, source, "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn) AS d", (src["lsn"], dst["lsn"] or "0/0")
            )
            # Caught up on the promoted timeline (an unrewound old primary is "ahead" on the old one).
            if dst["r"] and dst["tli"] == tli["timeline_id"] and float(cmp["d"]) <= 0:
                break
        except RecordsError:
            pass  # the rebuilt standby is still starting
        if time.monotonic() > deadline:
            raise OperationFailed(f"{region}'s rebuilt standby did not catch up in {timeout_s:.0f} s")
        time.sleep(0.5)
    took = round(time.monotonic() - started, 3)
    src_rows, dst_rows = _counts(cfg, source), _counts(cfg, target)
    if src_rows != dst_rows:
        raise OperationFailed(f"{region} rebuilt but its rows {dst_rows} differ from the promoted primary's {src_rows}")
    return {
        "region": region,
        "standby_of": f"{peer} (promoted copy)",
        "method": method,
        "seconds": took,
        "rewind_s": rewound_s,
        "salvaged": salvaged,
        "source_rows": src_rows,
        "rebuilt_rows": dst_rows,
    }


def set_mode(cfg: RecordsConfig, mode: Mode) -> dict[str, str]:
    """Every reachable primary's commit mode: sync waits for the peer's standby (by name)."""
    done: dict[str, str] = {}
    for region, r in cfg.regions.items():
        names = app_name(r.peer) if mode == "sync" else ""
        with db.connect(cfg, db.home(cfg, region), dbname="postgres") as conn:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'".encode())
            conn.execute("SELECT pg_reload_conf()")
        done[region] = mode
    return done


def current_mode(cfg: RecordsConfig, region: str) -> str:
    (row,) = db.query(cfg, db.home(cfg, region), "SHOW synchronous_standby_names")
    return "sync" if str(next(iter(row.values()))).strip() else "async"


class RegionLoss:
    """Lose `region`'s records server abruptly, as a region loss does. Everything is looked up
    first, so `now()` is two calls: its replication egress on the backbone is cut (WAL queued in
    the WAN leaves with the region instead of draining to the standby after the 'crash'), then the
    server is SIGKILLed."""

    def __init__(self, cfg: RecordsConfig, region: str) -> None:
        from lab.records import wan

        self.region = region
        wanted = cfg.region(region).repl_proxy
        self.proxy = wan.proxy(cfg, wanted)
        state = groundtruth.server_state(cfg, region)
        if state.container is None or not state.running:
            raise OperationFailed(f"{cfg.region(region).service} is not running")
        self.container = state.container

    def now(self) -> tuple[float, float]:
        """(when the egress was cut, when the server was killed), UNIX s."""
        self.proxy.disable()
        t_cut = time.time()
        self.container.kill()
        return t_cut, time.time()


def region_loss(cfg: RecordsConfig, region: str) -> float:
    """Lose `region`'s records server abruptly (RegionLoss); returns the kill time."""
    return RegionLoss(cfg, region).now()[1]


def region_back(cfg: RecordsConfig, region: str) -> None:
    """The region returns: its replication egress is re-enabled and its server started (its home
    stays fenced while the peer has promoted the copy; `resync` rebuilds it)."""
    from lab.records import wan

    wan.proxy(cfg, cfg.region(region).repl_proxy).enable()
    state = groundtruth.server_state(cfg, region)
    if state.container is None:
        raise OperationFailed(f"{cfg.region(region).service} has no container to start")
    if not state.running:
        state.container.start()


def _exec(cfg: RecordsConfig, region: str, cmd: list[str]) -> str:
    state = groundtruth.server_state(cfg, region)
    if state.container is None or not state.running:
        raise OperationFailed(f"{cfg.region(region).service} is not running")
    res = state.container.exec_run(cmd, demux=True)
    out, err = (b.decode(errors="replace") if b else "" for b in res.output)
    if res.exit_code != 0:
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise OperationFailed(f"{cfg.region(region).service}: {' '.join(cmd)} failed: {last}")
    return out


def _caught_up(cfg: RecordsConfig, primary: db.Endpoint, standby: db.Endpoint) -> bool:
    (p,) = db.query(cfg, primary, "SELECT pg_current_wal_lsn()::text AS lsn")
    (s,) = db.query(cfg, standby, "SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_is_in_recovery() AS r")
    if not s["r"] or s["lsn"] is None:
        return False
    (d,) = db.query(cfg, primary, "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn) AS d", (p["lsn"], s["lsn"]))
    return float(d["d"]) <= 0


def failback(cfg: RecordsConfig, region: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """After `resync`: hand `region`'s records back to its own server. Once its home (a standby of
    the promoted copy) has caught up, the promoted copy is stopped cleanly (it ships every
    committed record first), the home is promoted, and the copy rejoins as its standby."""
    peer = cfg.region(region).peer
    promoted, home_ep = db.copy(cfg, peer), db.home(cfg, region)
    if _in_recovery(cfg, promoted):
        raise OperationFailed(f"{peer}'s copy of {region} is not promoted: nothing to fail back")
    if not _in_recovery(cfg, home_ep):
        raise OperationFailed(f"{region}'s home is already a primary; resync it first (`wobble records resync`)")
    started = time.monotonic()
    deadline = started + timeout_s
    while not _caught_up(cfg, promoted, home_ep):
        if time.monotonic() > deadline:
            raise OperationFailed(f"{region}'s home did not catch up with the promoted copy in {timeout_s:.0f} s")
        time.sleep(0.5)
    before = _counts(cfg, promoted)
    _exec(cfg, peer, ["wobble-db", "stop-copy"])
    with db.connect(cfg, home_ep, dbname="postgres") as conn:
        # Replay whatever the clean shutdown shipped last, then promote.
        (row,) = conn.execute("SELECT pg_promote(true, 60) AS ok").fetchall()
        if not row["ok"]:
            raise OperationFailed(f"{home_ep}: pg_promote did not finish in 60 s")
        names = app_name(peer) if cfg.mode == "sync" else ""
        conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'".encode())
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("CHECKPOINT")
    out = _exec(cfg, peer, ["wobble-db", "rewind-copy"])
    found = re.search(r"method=(\w+)", out)
    while True:
        try:
            if _caught_up(cfg, home_ep, promoted):
                break
        except RecordsError:
            pass  # the copy is still starting
        if time.monotonic() > deadline:
            raise OperationFailed(f"{peer}'s copy did not rejoin {region} as a standby in {timeout_s:.0f} s")
        time.sleep(0.5)
    after_home, after_copy = _counts(cfg, home_ep), _counts(cfg, promoted)
    if not (before == after_home == after_copy):
        raise OperationFailed(f"failback of {region}: rows {before} before, home {after_home}, copy {after_copy}")
    return {
        "region": region,
        "seconds": round(time.monotonic() - started, 3),
        "copy_rejoined_by": found.group(1) if found else "unknown",
        "rows": after_home,
        "mode": cfg.mode,
    }
