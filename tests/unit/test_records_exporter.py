"""lab.records.exporter: one poll sets the lag and records-written metrics (no database)."""

from __future__ import annotations

import collections
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lab.records import config, db, exporter, lag
from lab.records.errors import DbUnreachable


def test_poll_sets_lag_and_written(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config.load(config.DEFAULT_PATH)
    monkeypatch.setattr(
        lag,
        "all_lags",
        lambda c: [
            lag.Lag("region-a->region-b", "streaming", "async", 4096, 1.5),
            lag.Lag("region-b->region-a", "promoted", None, None, None),
        ],
    )
    counts = iter([{"cdr": 10, "recordings": 9}, {"cdr": 20, "recordings": 20}])

    def query(c: Any, ep: db.Endpoint, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        if ep.region == "region-b":
            raise DbUnreachable("down")
        return [next(counts)]

    monkeypatch.setattr(db, "query", query)
    history: dict[str, collections.deque[tuple[float, int]]] = collections.defaultdict(collections.deque)
    exporter.poll_once(cfg, history)
    exporter.poll_once(cfg, history)
    get = REGISTRY.get_sample_value
    assert get("wobble_records_replication_lag_bytes", {"standby": "region-a->region-b"}) == 4096
    assert get("wobble_records_replication_lag_seconds", {"standby": "region-a->region-b"}) == 1.5
    assert get("wobble_records_standby_up", {"standby": "region-b->region-a"}) == 0.0
    assert get("wobble_records_written_total", {"region": "region-a", "table": "cdr"}) == 20
    assert (get("wobble_records_written_per_second", {"region": "region-a"}) or 0) > 0
