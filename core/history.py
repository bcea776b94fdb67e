"""Calls left open in the event log, and their recovery as `info`.

Every call the traffic generator attempts is a `load_invoke` followed by exactly one completion
(`load_ok` | `load_fail` | `load_info`, same call_id). A load supervisor that dies (SIGKILL, OOM,
its container removed) leaves the invokes of its calls in flight without one. Recovery closes each
with a `load_info` record whose end_reason is `recovered` (outcome unknown: the supervisor died;
`recovered_by` says who closed it). It never touches a call that has a completion, so running it
twice closes nothing new.

Pure: `open_invokes`, `close`, `recover` (over any iterable of events).
Impure: `RunLock`, `live_runs`, `recover_log`.

Which runs are still going: a load run holds an exclusive flock on `<events dir>/runs/<run_id>.lock`
for its whole life (the kernel drops it when the process dies, however it dies; the bind-mounted
`var/` makes the host and the containers see the same lock). `recover_log`:
1. takes `runs/.recover.lock` (one recoverer at a time, so no call is closed twice),
2. notes the time t0 and which runs are live (their lock is held),
3. reads the log and closes the open invokes written before t0 whose run was not live at t0.
A run not live at t0 had either finished (it writes every completion before it lets go of its lock)
or died, so the log read after t0 holds all it will ever write; a run that starts after t0 has no
invoke before t0. A run whose lock file is missing (finished, or from before locks) counts as dead.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from core import events
from core.schema import LOAD_COMPLETIONS, classify_status, core_record

log = logging.getLogger("wobble.history")

#: The end_reason of a recovered call (core.schema.UNKNOWN_END: its status is `info`).
RECOVERED = "recovered"
_RECOVER_LOCK = ".recover.lock"


# --------------------------------------------------------------------------------------------
# Pure
# --------------------------------------------------------------------------------------------


def open_invokes(history: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every `load_invoke` with no completion of the same call_id anywhere in `history`, in log
    order. Memory grows with the calls open at once, not with the log."""
    pending: dict[str, dict[str, Any]] = {}
    completed_first: set[str] = set()  # a completion seen before its invoke (never written so)
    for ev in history:
        kind = ev.get("kind")
        call_id = ev.get("call_id")
        if not isinstance(call_id, str):
            continue
        if kind == "load_invoke":
            if call_id in completed_first:
                completed_first.discard(call_id)
            else:
                pending.setdefault(call_id, dict(ev))
        elif kind in LOAD_COMPLETIONS and pending.pop(call_id, None) is None:
            completed_first.add(call_id)
    return list(pending.values())


def recovery_record(invoke: Mapping[str, Any], recovered_by: str) -> dict[str, Any]:
    """The `load_info` record closing one open invoke: outcome unknown."""
    target = invoke.get("target")
    rec = core_record(
        run_id=invoke.get("run_id"),
        call_id=invoke.get("call_id"),
        status=classify_status(False, None, RECOVERED),
        target=target,
        targets_tried=[target] if target else [],
        chosen_by=invoke.get("chosen_by"),
        hold_s=invoke.get("hold_s"),
        end_reason=RECOVERED,
        t_invoke=invoke.get("t_invoke"),
    )
    rec["worker"] = invoke.get("worker")
    rec["one_way_s"] = 0.0
    rec["recovered_by"] = recovered_by
    rec["whose"] = "harness"  # the generator itself died: nothing a customer saw
    return rec


def _written_at(invoke: Mapping[str, Any]) -> float:
    for key in ("ts", "t_invoke"):
        value = invoke.get(key)
        if isinstance(value, int | float):
            return float(value)
    return 0.0


def close(
    invokes: Iterable[Mapping[str, Any]],
    *,
    live_runs: Collection[str] = (),
    before: float | None = None,
    recovered_by: str = "cli",
) -> list[dict[str, Any]]:
    """Recovery records for open `invokes`, except those of `live_runs` and (given `before`) those
    written at or after `before`."""
    out: list[dict[str, Any]] = []
    for inv in invokes:
        if inv.get("run_id") in live_runs:
            continue
        if before is not None and _written_at(inv) >= before:
            continue
        out.append(recovery_record(inv, recovered_by))
    return out


def recover(
    history: Iterable[Mapping[str, Any]],
    *,
    live_runs: Collection[str] = (),
    before: float | None = None,
    recovered_by: str = "cli",
) -> list[dict[str, Any]]:
    """The `load_info` records (kind not included) that close every open invoke of `history`
    (see `close` for what is left alone). Appending them and recovering again yields nothing."""
    return close(open_invokes(history), live_runs=live_runs, before=before, recovered_by=recovered_by)


# --------------------------------------------------------------------------------------------
# Run liveness and recovery on the log file
# --------------------------------------------------------------------------------------------


def runs_dir(events_path: Path) -> Path:
    return events_path.parent / "runs"


class RunLock:
    """A live load run's lease: `with RunLock(events_path, run_id): ...` (see the module doc)."""

    def __init__(self, events_path: Path, run_id: str) -> None:
        self.path = runs_dir(events_path) / f"{run_id}.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while a recoverer looks (milliseconds)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        """A run that ends normally removes its lock file after its last event was written."""
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def live_runs(events_path: Path) -> set[str]:
    """Run ids whose lock is held right now."""
    live: set[str] = set()
    try:
        paths = [p for p in runs_dir(events_path).glob("*.lock") if p.name != _RECOVER_LOCK]
    except OSError:
        return live
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            live.add(p.name.removesuffix(".lock"))
        except OSError:
            pass
        finally:
            os.close(fd)  # drops our shared lock, if we got it
    return live


@contextlib.contextmanager
def _one_recoverer(events_path: Path) -> Iterator[None]:
    path = runs_dir(events_path) / _RECOVER_LOCK
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        log.warning("recovering without %s (%s): do not run two recoveries at once", path, exc)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class Recovery:
    closed: list[dict[str, Any]] = field(default_factory=list)  # load_info records appended
    still_running: int = 0  # open invokes of runs that are still going (left alone)


def recover_log(events_path: Path, recovered_by: str) -> Recovery:
    """Close, in the log at `events_path`, every call a dead load run left open."""
    with _one_recoverer(events_path):
        t0 = time.time()
        live = live_runs(events_path)
        pending = open_invokes(ev.to_dict() for ev in events.read(events_path))
        records = close(pending, live_runs=live, before=t0, recovered_by=recovered_by)
        for rec in records:
            events.append(events.LoadInfo.of(rec), events_path)
    if records:
        log.warning("recovered %d calls left open by dead load runs (load_info, end_reason recovered)", len(records))
    return Recovery(records, len(pending) - len(records))
