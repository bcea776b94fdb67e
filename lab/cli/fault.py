"""`wobble fault ...`: talk to the chaos controller (it applies and reverts; the CLI never does)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from chaos.catalog import FAMILIES, InvalidFault, parse_duration
from chaos.client import ChaosClient, ChaosError
from core.exitcodes import Exit

fault_app = typer.Typer(no_args_is_help=True, help="Inject and revert faults through the lab's chaos controller.")
T = TypeVar("T")


def _exit_for(exc: ChaosError) -> Exit:
    """400: bad input; no controller (0) or no running target (409): the lab is not up; else failed."""
    if exc.status == 400:
        return Exit.BAD_INPUT
    if exc.status in (0, 409):
        return Exit.LAB_NOT_UP
    return Exit.FAILED


def _run(fn: Callable[[ChaosClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with ChaosClient() as chaos:
            return await fn(chaos)

    try:
        return asyncio.run(go())
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise typer.Exit(_exit_for(exc)) from exc


def _params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidFault(f"--param {pair!r} is not key=value (e.g. --param burst=5)")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except ValueError:
            out[key.replace("-", "_")] = value
    return out


@fault_app.command("add")
def add(
    kind: Annotated[str, typer.Argument(help=f"Fault kind: {', '.join(FAMILIES)}.")],
    target: Annotated[str, typer.Option(help="Compose service (a region for region_down).")],
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 60s, 500ms, 5m.")],
    pct: Annotated[float | None, typer.Option(help="Share of packets/requests, percent.")] = None,
    ms: Annotated[float | None, typer.Option(help="Delay / latency / timeout, milliseconds.")] = None,
    jitter: Annotated[float | None, typer.Option(help="Jitter around --ms, milliseconds.")] = None,
    kbit: Annotated[float | None, typer.Option(help="Rate limit, kbit/s.")] = None,
    direction: Annotated[str | None, typer.Option(help="egress (default), ingress or both.")] = None,
    match: Annotated[str | None, typer.Option(help="all (default: all UDP), sip or media.")] = None,
    method: Annotated[str | None, typer.Option(help="SIP method for sip_drop / sip_delay.")] = None,
    status: Annotated[int | None, typer.Option(help="HTTP status for http_error (429 or 503).")] = None,
    network: Annotated[str | None, typer.Option(help="Network to cut for partition.")] = None,
    backend: Annotated[str | None, typer.Option(help="Insist on a backend (refused unless it serves KIND).")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Any other parameter, key=value.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The live fault as JSON on stdout.")] = False,
) -> None:
    """Apply a fault; exit 0 only once it is live, printing its id."""
    given = {
        "pct": pct,
        "ms": ms,
        "jitter": jitter if kind != "delay" else None,
        "jitter_ms": None,
        "kbit": kbit,
        "direction": direction,
        "match": match,
        "method": method,
        "status": status,
        "network": network,
    }
    if kind == "delay" and jitter is not None:
        given["jitter_ms"] = jitter  # the network delay line names it jitter_ms
    try:
        params = {k: v for k, v in given.items() if v is not None} | _params(param or [])
        seconds = parse_duration(duration)
    except InvalidFault as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise typer.Exit(Exit.BAD_INPUT) from exc
    active = _run(lambda c: c.add(kind, target, seconds, backend=backend, **params))
    if as_json:
        print(json.dumps(active), flush=True)
    else:
        print(f"{kind} on {target} live for {seconds:g} s via {active['backend']}", file=sys.stderr)
        print(active["id"], flush=True)


@fault_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="A JSON list on stdout.")] = False) -> None:
    """Active faults."""
    faults = _run(lambda c: c.faults())
    if as_json:
        print(json.dumps(faults), flush=True)
        return
    if not faults:
        print("no active faults", file=sys.stderr)
    for f in faults:
        print(f"{f['id']}  {f['kind']:12} {f['target']:10} {f['backend']:14} {f['remaining_s']:>7.1f} s  {f['params']}")


@fault_app.command("remove")
def remove(fault_id: Annotated[str, typer.Argument(help="The id `fault add` printed.")]) -> None:
    """Revert one fault."""
    _run(lambda c: c.remove(fault_id))


@fault_app.command("clear")
def clear() -> None:
    """Revert every fault (and anything an earlier controller left)."""
    done = _run(lambda c: c.clear())
    print(f"reverted {len(done)} fault(s)", file=sys.stderr)


@fault_app.command("backends")
def backends(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Which backend serves each fault kind on this machine (the kernel is probed)."""
    found = _run(lambda c: c.backends())
    if as_json:
        print(json.dumps(found), flush=True)
        return
    for kind in FAMILIES:
        print(f"{kind:14} {found.get(kind, '-')}")
