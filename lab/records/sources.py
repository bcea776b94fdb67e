"""Read a cluster's call records into reconcile's values: the SQL (shared by the live reads and
the ground-truth read of a crashed primary's data directory) and the row parsing (pure)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from lab.records import db
from lab.records.config import RecordsConfig
from lab.records.reconcile import Cdr, Recording, Records

# Only rows a lab call wrote carry its id in userfield (X-Wobble-Call).
CDR_SQL = "SELECT userfield AS call_id, disposition, billsec FROM cdr WHERE userfield <> ''"
# The checksum of the bytes is computed where they are, so only 64 hex digits travel.
REC_SQL = "SELECT call_id, duration_s, sha256, encode(sha256(bytes), 'hex') AS actual_sha256 FROM recordings"
META_SQL = "SELECT region, created_at FROM lab_meta"


def records_from_rows(cdr_rows: Iterable[Mapping[str, Any]], rec_rows: Iterable[Mapping[str, Any]]) -> Records:
    cdrs = [Cdr(str(r["call_id"]), str(r.get("disposition") or ""), int(r.get("billsec") or 0)) for r in cdr_rows]
    recs = [
        Recording(str(r["call_id"]), float(r["duration_s"]), str(r["sha256"]), str(r["actual_sha256"]))
        for r in rec_rows
    ]
    return Records.of(cdrs, recs)


def read_live(cfg: RecordsConfig, ep: db.Endpoint) -> Records:
    with db.connect(cfg, ep) as conn:
        cdr_rows = conn.execute(CDR_SQL).fetchall()
        rec_rows = conn.execute(REC_SQL).fetchall()
    return records_from_rows(cdr_rows, rec_rows)


def created_at(cfg: RecordsConfig, ep: db.Endpoint) -> float | None:
    """When the records database of the region `ep` holds was created (lab_meta)."""
    rows = db.query(cfg, ep, META_SQL)
    stamps = [r["created_at"] for r in rows if isinstance(r.get("created_at"), datetime)]
    return min(s.timestamp() for s in stamps) if stamps else None


def copy_csv(sql: str) -> str:
    """The same query as CSV with a header, for psql in a throwaway container."""
    return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)"


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))
