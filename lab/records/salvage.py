"""Salvage: before a returning old primary is rewound, copy the records only it has (committed
but never replicated before the region was lost) into the promoted primary, so resync loses
nothing. Records are append-only facts about calls, so merging them is safe: a row is added only
when no row with the same identity is there already."""

from __future__ import annotations

from typing import Any

from lab.records import db, groundtruth
from lab.records.config import RecordsConfig

CDR_COLS = (
    "calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, duration, billsec, "
    "disposition, amaflags, accountcode, uniqueid, userfield, peeraccount, linkedid, sequence"
)
CEL_COLS = (
    "eventtype, eventtime, cid_name, cid_num, cid_ani, cid_rdnis, cid_dnid, exten, context, channame, "
    "appname, appdata, amaflags, accountcode, peeraccount, uniqueid, linkedid, userfield, peer, "
    "userdeftype, extra"
)
REC_COLS = "call_id, region, bytes_hex, duration_s, sha256, created_at"

DUMPS = (
    f"COPY (SELECT {CDR_COLS} FROM cdr) TO STDOUT WITH (FORMAT csv, HEADER)",
    f"COPY (SELECT {CEL_COLS} FROM cel) TO STDOUT WITH (FORMAT csv, HEADER)",
    "COPY (SELECT call_id, region, encode(bytes, 'hex') AS bytes_hex, duration_s, sha256, created_at "
    "FROM recordings) TO STDOUT WITH (FORMAT csv, HEADER)",
)
MERGES = {
    "cdr": (
        f"CREATE TEMP TABLE s_cdr AS SELECT {CDR_COLS} FROM cdr WITH NO DATA",
        f"COPY s_cdr ({CDR_COLS}) FROM STDIN WITH (FORMAT csv, HEADER)",
        f"INSERT INTO cdr ({CDR_COLS}) SELECT {CDR_COLS} FROM s_cdr s WHERE NOT EXISTS (SELECT 1 FROM cdr c "
        "WHERE c.uniqueid = s.uniqueid AND c.sequence = s.sequence AND c.userfield = s.userfield "
        "AND c.calldate = s.calldate)",
    ),
    "cel": (
        f"CREATE TEMP TABLE s_cel AS SELECT {CEL_COLS} FROM cel WITH NO DATA",
        f"COPY s_cel ({CEL_COLS}) FROM STDIN WITH (FORMAT csv, HEADER)",
        f"INSERT INTO cel ({CEL_COLS}) SELECT {CEL_COLS} FROM s_cel s WHERE NOT EXISTS (SELECT 1 FROM cel c "
        "WHERE c.eventtype = s.eventtype AND c.eventtime = s.eventtime AND c.uniqueid = s.uniqueid "
        "AND c.channame = s.channame)",
    ),
    "recordings": (
        "CREATE TEMP TABLE s_rec (call_id text, region text, bytes_hex text, duration_s float8, sha256 text, "
        "created_at timestamptz)",
        f"COPY s_rec ({REC_COLS}) FROM STDIN WITH (FORMAT csv, HEADER)",
        "INSERT INTO recordings (call_id, region, bytes, duration_s, sha256, created_at) SELECT call_id, region, "
        "decode(bytes_hex, 'hex'), duration_s, sha256, created_at FROM s_rec ON CONFLICT (call_id) DO NOTHING",
    ),
}


def salvage(cfg: RecordsConfig, region: str, state: groundtruth.ServerState, target: db.Endpoint) -> dict[str, Any]:
    """Copy what `region`'s stopped old home has and `target` (the promoted copy) lacks; returns
    the rows added per table."""
    texts = groundtruth.run_sql(cfg, region, state, list(DUMPS))
    added: dict[str, Any] = {}
    with db.connect(cfg, target) as conn, conn.transaction():
        for (table, (create, copy_sql, merge)), text in zip(MERGES.items(), texts, strict=True):
            conn.execute(create.encode())
            with conn.cursor().copy(copy_sql.encode()) as cp:
                cp.write(text.encode())
            added[table] = conn.execute(merge.encode()).rowcount
    return added
