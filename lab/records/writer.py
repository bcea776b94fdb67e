"""A synthetic records load: call records (a CDR row and a recording) committed into one region's
primary at a steady rate, each commit timed. The records lab tests and `make bench` use it to
measure RPO and commit latency without the whole lab (the PBX writes the same tables)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from dataclasses import dataclass, field

import psycopg

from lab.records import db
from lab.records.config import RecordsConfig
from lab.records.placed import PlacedCall

BYTES_PER_S = 16_000  # 8 kHz, 16-bit mono: the lab's recordings


@dataclass
class Written:
    call_id: str
    t_start: float
    t_commit: float | None = None  # None: the commit never returned (in flight when it died)


@dataclass
class Writer:
    cfg: RecordsConfig
    region: str
    rate: float = 5.0  # records per second
    audio_s: float = 2.0  # recording length per record
    done: list[Written] = field(default_factory=list)
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Writer:
        self._thread = threading.Thread(target=self._run, name=f"writer-{self.region}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        ep = db.home(self.cfg, self.region)
        try:
            conn = psycopg.connect(
                host=ep.host,
                port=ep.port,
                dbname=db.DBNAME,
                user="postgres",
                password=self.cfg.password,
                connect_timeout=3,
            )
        except psycopg.Error as exc:
            self.error = str(exc).strip()
            return
        period = 1.0 / self.rate
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                cid = "r" + uuid.uuid4().hex[:12]
                audio = os.urandom(int(self.audio_s * BYTES_PER_S))
                w = Written(cid, time.time())
                self.done.append(w)
                with conn.cursor() as cur:
                    cur.execute(
                        "INSERT INTO cdr (src, dst, disposition, billsec, duration, uniqueid, userfield) "
                        "VALUES ('caller', 'support', 'ANSWERED', %s, %s, %s, %s)",
                        (round(self.audio_s), round(self.audio_s) + 1, cid, cid),
                    )
                    cur.execute(
                        "INSERT INTO recordings (call_id, region, bytes, duration_s, sha256) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        (cid, self.region, audio, self.audio_s, hashlib.sha256(audio).hexdigest()),
                    )
                conn.commit()
                w.t_commit = time.time()
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))
        except psycopg.Error as exc:
            self.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        finally:
            conn.close()

    @property
    def committed(self) -> list[Written]:
        return [w for w in self.done if w.t_commit is not None]

    def commit_latencies_ms(self) -> list[float]:
        return [1000 * (w.t_commit - w.t_start) for w in self.committed if w.t_commit is not None]

    def placed(self) -> list[PlacedCall]:
        """The records as reconcile's placed calls (answered; over when their commit returned)."""
        return [
            PlacedCall(w.call_id, self.region, True, self.audio_s, w.t_start, w.t_start, w.t_commit) for w in self.done
        ]
