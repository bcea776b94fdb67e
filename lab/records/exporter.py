"""`python -m lab.records.exporter [--port 9108]`: Prometheus metrics of the call records.

- wobble_records_replication_lag_bytes{standby}    WAL the standby has not flushed yet
- wobble_records_replication_lag_seconds{standby}  age of the standby's last replayed commit
- wobble_records_standby_up{standby}               1 while the standby streams (0: down/promoted)
- wobble_records_written_total{region,table}       rows in each region's primary (a counter:
                                                   rate() of it is records written per second)
- wobble_records_written_per_second{region}        CDRs written per second over the last 10 s

A poller refreshes the values every --interval seconds, so a scrape never waits on a database.
"""

from __future__ import annotations

import argparse
import collections
import logging
import signal
import threading
import time

from prometheus_client import Gauge, start_http_server

from lab.records import config, db, lag
from lab.records.config import RecordsConfig
from lab.records.errors import RecordsError

log = logging.getLogger("wobble.records.exporter")
LAG_BYTES = Gauge("wobble_records_replication_lag_bytes", "WAL bytes the standby has not flushed", ["standby"])
LAG_SECONDS = Gauge("wobble_records_replication_lag_seconds", "Age of the standby's last replayed commit", ["standby"])
STANDBY_UP = Gauge("wobble_records_standby_up", "1 while the standby streams from its primary", ["standby"])
# A gauge that only grows is what a row count is; exposed with _total so rate() reads naturally.
WRITTEN = Gauge("wobble_records_written_total", "Rows in the region's primary", ["region", "table"])
RATE = Gauge("wobble_records_written_per_second", "CDRs written per second (last 10 s)", ["region"])
COUNT_SQL = "SELECT (SELECT count(*) FROM cdr) AS cdr, (SELECT count(*) FROM recordings) AS recordings"
WINDOW_S = 10.0


def poll_once(cfg: RecordsConfig, history: dict[str, collections.deque[tuple[float, int]]]) -> None:
    for x in lag.all_lags(cfg):
        LAG_BYTES.labels(x.standby).set(float(x.bytes) if x.bytes is not None else float("nan"))
        LAG_SECONDS.labels(x.standby).set(x.seconds if x.seconds is not None else float("nan"))
        STANDBY_UP.labels(x.standby).set(1.0 if x.state == "streaming" else 0.0)
    now = time.monotonic()
    for region in sorted(cfg.regions):
        try:
            (row,) = db.query(cfg, db.home(cfg, region), COUNT_SQL)
        except RecordsError as exc:
            log.debug("%s: %s", region, exc)
            continue
        WRITTEN.labels(region, "cdr").set(row["cdr"])
        WRITTEN.labels(region, "recordings").set(row["recordings"])
        h = history[region]
        h.append((now, int(row["cdr"])))
        while h and now - h[0][0] > WINDOW_S:
            h.popleft()
        if len(h) >= 2 and h[-1][0] > h[0][0]:
            RATE.labels(region).set(max(0, h[-1][1] - h[0][1]) / (h[-1][0] - h[0][0]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.records.exporter")
    ap.add_argument("--port", type=int, default=9108)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--via", choices=("region", "backbone"), default="backbone")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = config.load().model_copy(update={"via": args.via, "connect_timeout_s": 2.0, "statement_timeout_s": 5.0})
    start_http_server(args.port)
    log.info("records exporter on :%d (every %.1f s)", args.port, args.interval)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    history: dict[str, collections.deque[tuple[float, int]]] = collections.defaultdict(collections.deque)
    while not stop.is_set():
        try:
            poll_once(cfg, history)
        except Exception as exc:  # a poll must never kill the exporter; the next one retries
            log.warning("poll failed: %s", exc)
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
