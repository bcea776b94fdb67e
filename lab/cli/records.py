"""`wobble records ...`: the call records' replication, failover and RPO (lab/records/)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer

from core import paths
from core.errors import BadInput, WobbleError
from core.exitcodes import Exit, for_error

records_app = typer.Typer(no_args_is_help=True, help="Call records: replication lag, failover, resync, RPO.")
T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object, the last stdout line.")]
RegionOpt = Annotated[str, typer.Option("--region", help="Region, e.g. region-a.")]


def _guard(fn: Callable[[], T], otherwise: Exit = Exit.FAILED) -> T:
    """Run fn; any lab error is one `error:` line and its exit code (core.exitcodes.for_error:
    bad input 2, the lab not up 3, else `otherwise`)."""
    try:
        return fn()
    except WobbleError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise typer.Exit(for_error(exc, otherwise)) from exc


def _emit(obj: Any, as_json: bool, text: str) -> None:
    print(json.dumps(obj, default=str) if as_json else text, flush=True)


def parse_since(value: str | None) -> float | None:
    """UNIX seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(f"--since {value!r} is neither UNIX seconds nor ISO 8601 (e.g. 2026-01-31T12:00:00Z)") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.now().astimezone().tzinfo).astimezone()
    return stamp.timestamp()


def _cfg() -> Any:
    from lab.records import config

    return config.load()


@records_app.command("reconcile")
def reconcile_cmd(
    region: RegionOpt,
    since: Annotated[
        str | None,
        typer.Option(help="Only calls placed since (UNIX s or ISO 8601); default: when the databases were created."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Calls placed vs the CDRs and recordings visible in REGION; classify each missing or incomplete
    record. Exit 0: nothing committed is missing; 1: something is; 2: bad input; 3: the lab is not up;
    5: no verdict (the records could not all be read)."""
    from lab.records import gather

    report = _guard(lambda: gather.run(_cfg(), region, parse_since(since), paths.EVENTS), Exit.INCOMPLETE)
    out = report.as_dict()
    if not as_json:
        counts = ", ".join(f"{k}={v}" for k, v in out["counts"].items() if v)
        print(f"{region}: {out['answered_calls']} answered calls; {counts or 'none'}", file=sys.stderr)
        for rec in out["records"][:50]:
            print(f"  {rec['call_id']} {rec['origin']} {rec['class']}: {rec['why']}", file=sys.stderr)
    print(json.dumps(out), flush=True)
    if report.problems:
        raise typer.Exit(Exit.FAILED)


@records_app.command("lag")
def lag_cmd(as_json: JsonOpt = False) -> None:
    """Replication lag of each region's records on its standby in the other region."""
    from lab.records import lag

    lags = _guard(lambda: lag.all_lags(_cfg()))
    text = "\n".join(
        f"{x.standby:22} {x.state:12} {x.sync_state or '-':6} bytes={x.bytes} seconds={x.seconds}" for x in lags
    )
    _emit({"standbys": [x.as_dict() for x in lags]}, as_json, text)


@records_app.command("promote")
def promote_cmd(
    region: Annotated[
        str, typer.Option("--region", help="The LOST region: its standby in the other region is promoted.")
    ],
    force: Annotated[bool, typer.Option(help="Promote even though the lost region's primary still answers.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """After a region loss: make the surviving region's standby of its records a primary."""
    from lab.records import failover

    res = _guard(lambda: failover.promote(_cfg(), region, force))
    _emit(res, as_json, f"{region}'s records promoted in {res['promoted_in']} in {res['seconds']} s")


@records_app.command("resync")
def resync_cmd(
    region: RegionOpt,
    salvage: Annotated[
        bool, typer.Option(help="First copy records only the old primary has into the promoted one.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """The lost region came back: rebuild its old primary as a standby of the promoted copy
    (pg_rewind, or a fresh base backup), then check it has every row the promoted one has."""
    from lab.records import failover

    res = _guard(lambda: failover.resync(_cfg(), region, salvage=salvage))
    _emit(res, as_json, f"{region} resynced by {res['method']} in {res['seconds']} s; rows {res['rebuilt_rows']}")


@records_app.command("failback")
def failback_cmd(region: RegionOpt, as_json: JsonOpt = False) -> None:
    """After resync: make REGION's own server the primary of its records again (the promoted copy
    is stopped cleanly first, so nothing is lost) and rejoin the copy as its standby."""
    from lab.records import failover

    res = _guard(lambda: failover.failback(_cfg(), region))
    _emit(res, as_json, f"{region}'s records back on its own primary in {res['seconds']} s; rows {res['rows']}")


@records_app.command("mode")
def mode_cmd(
    mode: Annotated[str | None, typer.Argument(help="async or sync; none: show the current mode.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Commit mode of every primary: async (RPO > 0 on a crash) or sync (the standby confirms)."""
    from lab.records import failover

    def go() -> dict[str, str]:
        cfg = _cfg()
        if mode is None:
            return {r: failover.current_mode(cfg, r) for r in sorted(cfg.regions)}
        if mode not in ("async", "sync"):
            raise BadInput(f"mode must be async or sync (got {mode!r})")
        return failover.set_mode(cfg, mode)  # type: ignore[arg-type]

    res = _guard(go)
    _emit(res, as_json, "\n".join(f"{k} {v}" for k, v in res.items()))


@records_app.command("wan")
def wan_cmd(
    latency_ms: Annotated[int | None, typer.Option(help="One-way latency, ms (default: the config's).")] = None,
    jitter_ms: Annotated[int | None, typer.Option(help="Jitter, ms.")] = None,
    rate_kbs: Annotated[int | None, typer.Option(help="Bandwidth cap, KB/s (0: none).")] = None,
    off: Annotated[bool, typer.Option("--off", help="Remove the WAN profile.")] = False,
    show: Annotated[bool, typer.Option("--show", help="Only show the toxics in place.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The backbone's WAN profile on the replication proxies (latency + bandwidth toxics)."""
    from lab.records import wan
    from lab.records.config import WanProfile

    def go() -> dict[str, Any]:
        cfg = _cfg()
        if off:
            wan.clear(cfg)
        elif not show:
            given = {"latency_ms": latency_ms, "jitter_ms": jitter_ms, "rate_kbs": rate_kbs}
            try:
                profile = WanProfile.model_validate(
                    {**cfg.wan.model_dump(), **{k: v for k, v in given.items() if v is not None}}
                )
            except ValueError as exc:
                raise BadInput(f"bad WAN profile: {str(exc).splitlines()[-1].strip()}") from exc
            wan.apply(cfg, profile)
        return wan.current(cfg)

    res = _guard(go)
    _emit(res, as_json, json.dumps(res, indent=1))
