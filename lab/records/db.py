"""psycopg access to the records databases: connect with timeouts, and turn every failure into
a records error naming the server and what to do. No SQL beyond connecting lives here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pgerr
from psycopg.rows import dict_row

from lab.records.config import RecordsConfig
from lab.records.errors import DbMissing, DbQueryFailed, DbUnreachable

DBNAME = "records"


@dataclass(frozen=True)
class Endpoint:
    """One cluster: a region's home (its own records) or its copy of the peer's records."""

    region: str  # the region whose server this is
    cluster: str  # home | copy
    holds: str  # the region whose records it holds
    service: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.service} {self.cluster} ({self.holds}'s records, {self.host}:{self.port})"


def _host(cfg: RecordsConfig, region: str) -> str:
    r = cfg.region(region)
    return r.backbone_host if cfg.via == "backbone" and r.backbone_host else r.host


def home(cfg: RecordsConfig, region: str) -> Endpoint:
    r = cfg.region(region)
    return Endpoint(region, "home", region, r.service, _host(cfg, region), r.home_port)


def copy(cfg: RecordsConfig, region: str) -> Endpoint:
    r = cfg.region(region)
    return Endpoint(region, "copy", r.peer, r.service, _host(cfg, region), r.copy_port)


@contextmanager
def connect(cfg: RecordsConfig, ep: Endpoint, dbname: str = DBNAME) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection as the admin user, with a statement timeout; errors translated."""
    try:
        conn = psycopg.connect(
            host=ep.host,
            port=ep.port,
            dbname=dbname,
            user="postgres",
            password=cfg.password,
            connect_timeout=max(1, round(cfg.connect_timeout_s)),
            options=f"-c statement_timeout={int(cfg.statement_timeout_s * 1000)}",
            autocommit=True,
            row_factory=dict_row,
        )
    except psycopg.OperationalError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if f'database "{dbname}" does not exist' in text:
            raise DbMissing(
                f"{ep}: database {dbname!r} is missing; recreate its volume "
                f"(`docker compose -p {cfg.project} rm -sfv {ep.service}` then `make up`)"
            ) from exc
        raise DbUnreachable(f"{ep} does not answer ({text}); is {ep.service} up? (`wobble status`)") from exc
    try:
        yield conn
    except pgerr.UndefinedTable as exc:
        raise DbMissing(f"{ep}: records schema missing ({exc}); recreate {ep.service}'s volume") from exc
    except psycopg.errors.QueryCanceled as exc:
        raise DbQueryFailed(f"{ep}: query timed out after {cfg.statement_timeout_s:.0f} s") from exc
    except psycopg.OperationalError as exc:
        raise DbUnreachable(f"{ep}: connection lost ({str(exc).strip()[:160]}); is {ep.service} up?") from exc
    except psycopg.Error as exc:
        raise DbQueryFailed(f"{ep}: {type(exc).__name__}: {str(exc).strip()[:200]}") from exc
    finally:
        conn.close()


def query(cfg: RecordsConfig, ep: Endpoint, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with connect(cfg, ep) as conn:
        return conn.execute(sql.encode(), params).fetchall()
