"""The `wobble` command line. Logs go to stderr; machine-readable results to stdout.

Exit codes (every command; core.exitcodes): 0 pass or done, 1 failed (a verdict or an operation),
2 bad input, 3 the lab is not up, 4 aborted, 5 invalid or incomplete.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated

import typer

from core.errors import BadInput, HealthTimeout, WobbleError
from core.exitcodes import Exit, for_error
from lab import lifecycle
from lab.call import place_call
from lab.cli.drill import drill_app
from lab.cli.fault import fault_app
from lab.cli.records import records_app
from lab.steering import client as steering_client

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Wobble Lab: a two-region SIP/RTP contact center to break on purpose.",
)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs on stderr.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("docker").setLevel(logging.WARNING)


def fail(exc: WobbleError, otherwise: Exit = Exit.FAILED) -> typer.Exit:
    """Print one line saying what went wrong and what to do; exit as core.exitcodes.for_error says
    (BadInput 2, the lab not up 3, else `otherwise`)."""
    if isinstance(exc, HealthTimeout) and exc.last_logs:
        for line in exc.last_logs.strip().splitlines()[-10:]:
            print(f"  {exc.service}| {line}", file=sys.stderr)
    print(f"error: {exc}", file=sys.stderr, flush=True)
    return typer.Exit(for_error(exc, otherwise))


@app.command()
def up(timeout: Annotated[float, typer.Option(help="Seconds to wait for every service to be healthy.")] = 240) -> None:
    """Start the lab; return when every service is healthy."""
    try:
        took = lifecycle.up(timeout)
    except WobbleError as exc:
        raise fail(exc) from exc
    logging.getLogger("wobble.lab").info("lab up and healthy in %.1f s", took)


@app.command()
def down() -> None:
    """Remove every container, network and volume of the lab (var/ stays)."""
    try:
        lifecycle.down()
    except WobbleError as exc:
        raise fail(exc) from exc


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Each lab service and its health."""
    from core import dockerctl

    try:
        running = lifecycle.running_services()
        states = {s: dockerctl.health(running[s]) if s in running else "absent" for s in lifecycle.SERVICES}
    except WobbleError as exc:
        raise fail(exc) from exc
    if as_json:
        print(json.dumps({"up": all(v in ("healthy", "running") for v in states.values()), "services": states}))
    else:
        for name, state in states.items():
            print(f"{name:10} {state}")


@app.command()
def call(
    region: Annotated[
        str | None, typer.Option(help="Region whose SBC the call goes to; default: where steering sends it.")
    ] = None,
    hold: Annotated[str, typer.Option(help="Seconds between the 200 OK and the caller's BYE.")] = "5",
    local_port: Annotated[int, typer.Option(help="Caller's SIP UDP port (0: any free port).")] = 0,
    steer: Annotated[str, typer.Option(help="Without --region: ask steering by `http` or `dns` (SRV).")] = "http",
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON record on stdout.")] = False,
) -> None:
    """Place one real call from the caller container and print its record."""
    try:
        record = place_call(region, hold, local_port=local_port, steer=steer)
    except WobbleError as exc:
        raise fail(exc) from exc
    if not as_json:
        summary = ", ".join(f"{k}={record[k]}" for k in ("final_code", "region", "agent", "mos", "cdr_id"))
        print(summary, file=sys.stderr)
    print(json.dumps(record), flush=True)
    if record["final_code"] != 200:
        raise typer.Exit(Exit.FAILED)


@app.command()
def load(
    cps: Annotated[float, typer.Option(help="New calls per second.")] = 2.0,
    duration: Annotated[float, typer.Option(help="Seconds of arrivals.")] = 60.0,
    steer: Annotated[str, typer.Option(help="http, ttl (SRV, honours TTL), sticky (stale SRV), or a region.")] = "http",
    hold_mean: Annotated[float, typer.Option(help="Mean call length after answer, s (exponential).")] = 10.0,
    max_concurrent: Annotated[
        int | None, typer.Option(help="Calls in flight at most (default: sized from cps x hold); beyond: a failure.")
    ] = None,
    arrivals: Annotated[str, typer.Option(help="constant or poisson.")] = "constant",
    seed: Annotated[int | None, typer.Option(help="Replay a run: the schedule seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON summary on stdout.")] = False,
) -> None:
    """Run the traffic generator from the caller container; every attempt is an event; summary last."""
    from lab.load import run_load

    try:
        summary = run_load(cps, duration, steer, hold_mean, max_concurrent, seed, arrivals)
    except BadInput as exc:
        raise fail(exc) from exc
    except WobbleError as exc:  # the run failed: still one JSON summary line, with `error`
        print(json.dumps({"error": str(exc)}), flush=True)
        raise fail(exc) from exc
    if not as_json:
        keys = (
            "attempts",
            "ok",
            "customer_failed",
            "harness_failed",
            "info",
            "ok_ratio",
            "pdd_ms_p50",
            "pdd_ms_p95",
            "mos_p5",
            "mos_p50",
        )
        print(", ".join(f"{k}={summary.get(k)}" for k in keys), file=sys.stderr)
    print(json.dumps(summary), flush=True)
    if "error" in summary:  # the run itself failed: never mistaken for a clean run
        print(f"wobble load: the run failed: {summary['error']}", file=sys.stderr)
        raise typer.Exit(Exit.FAILED)


app.add_typer(fault_app, name="fault")
app.add_typer(records_app, name="records")
app.add_typer(drill_app, name="drill")

events_app = typer.Typer(no_args_is_help=True, help="The lab's event log (var/events.jsonl).")
app.add_typer(events_app, name="events")


@events_app.command("tail")
def events_tail(
    kind: Annotated[list[str] | None, typer.Option(help="Only events of this kind (repeatable).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    lines: Annotated[int, typer.Option("-n", help="Start with the last N events.")] = 20,
) -> None:
    """Print the last events (one JSON object per line) and, with -f, follow new ones."""
    from core import events, paths

    wanted = set(kind or [])
    backlog = [e for e in events.read(paths.EVENTS) if not wanted or e.kind in wanted]
    for ev in backlog[-lines:] if lines > 0 else []:
        print(json.dumps(ev.to_dict()), flush=True)
    if follow:
        try:
            for ev in events.follow(paths.EVENTS, from_end=True):
                if not wanted or ev.kind in wanted:
                    print(json.dumps(ev.to_dict()), flush=True)
        except KeyboardInterrupt:
            return


@events_app.command("recover")
def events_recover(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Close every call a dead load run left open (load_invoke, no completion) with a load_info
    whose end_reason is `recovered`. Calls of runs still going are left alone; a second run closes
    nothing new (docs/events.md)."""
    from core import history, paths

    try:
        done = history.recover_log(paths.EVENTS, recovered_by="cli")
    except OSError as exc:
        raise fail(WobbleError(f"cannot recover {paths.EVENTS}: {exc}")) from exc
    if as_json:
        ids = [r["call_id"] for r in done.closed]
        print(json.dumps({"closed": len(ids), "call_ids": ids, "still_running": done.still_running}), flush=True)
        return
    note = f" ({done.still_running} left open: their run is still going)" if done.still_running else ""
    print(f"closed {len(done.closed)} open calls as info/recovered{note}", flush=True)


steering_app = typer.Typer(no_args_is_help=True, help="The GSLB steering service.")
app.add_typer(steering_app, name="steering")


@steering_app.command("state")
def steering_state(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Mode, configuration status and each region's state (GET /v1/state)."""
    try:
        state = steering_client.request("/v1/state")
    except WobbleError as exc:
        raise fail(exc) from exc
    if as_json:
        print(json.dumps(state), flush=True)
        return
    print(f"mode {state['mode']}, config {state['config']}")
    for name, r in state["regions"].items():
        print(f"{name:10} {r['state']:8} since {r.get('since')} ({r.get('reason')})")


@steering_app.command("mode")
def steering_mode(mode: Annotated[str, typer.Argument(help="auto, confirm or manual")]) -> None:
    """Set who decides failover: the policy (auto), the policy with approval (confirm), or you."""
    try:
        steering_client.request("/v1/mode", {"mode": mode, "who": "cli"}, auth=True)
    except WobbleError as exc:
        raise fail(exc) from exc


@app.command()
def failover(
    to: Annotated[str | None, typer.Option(help="Send all new calls to this region.")] = None,
    approve: Annotated[bool, typer.Option(help="Approve the failover steering proposed (confirm mode).")] = False,
    release: Annotated[bool, typer.Option(help="Hand routing back to the policy.")] = False,
) -> None:
    """Operator failover: move traffic, approve a proposal, or release manual control."""
    chosen = [name for name, on in (("--to", to is not None), ("--approve", approve), ("--release", release)) if on]
    if len(chosen) != 1:
        raise fail(BadInput("give exactly one of --to REGION, --approve, --release"))
    body: dict[str, object] = {"who": "cli"}
    if to is not None:
        body["to"] = to
    body["approve"] = approve
    body["release"] = release
    try:
        result = steering_client.request("/v1/failover", body, auth=True)
    except WobbleError as exc:
        raise fail(exc) from exc
    print(json.dumps(result["decisions"]), flush=True)


#: What the CLI library returns for a Ctrl-C it caught (128 + SIGINT).
_SIGINT_CODE = 130


def run(argv: list[str] | None = None) -> int:
    """The `wobble` entry point: the app's exit code, with Ctrl-C as 4 (aborted) and click's usage
    errors as 2 (bad input)."""
    try:
        code = app(args=argv, standalone_mode=False, prog_name="wobble")  # an Exit's code comes back
    except (typer.Abort, KeyboardInterrupt):  # Abort: the CLI's form of Ctrl-C
        print("aborted", file=sys.stderr, flush=True)
        return Exit.ABORTED
    except typer.TyperException as exc:  # usage errors (exit_code 2: bad input) and the like
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        return int(getattr(exc, "exit_code", Exit.FAILED))
    if code == _SIGINT_CODE:  # the CLI library caught Ctrl-C itself
        return Exit.ABORTED
    return int(code) if isinstance(code, int) else Exit.PASS


def main_entry() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main_entry()
