"""Agent status files (pure: no pjsua2) and the health verdict read from them.

Layout, for status path P (env WOBBLE_AGENT_STATUS, default /tmp/wobble-agents.json):
- P                  written by the supervisor: the plan (region, every configured agent, workers).
- P.d/worker-N.json  written by worker N every couple of seconds and on every registration change:
                     per-agent registration state, the worker's liveness, calls in progress.
Every file is replaced atomically (write to a temp file in the same directory, fsync, rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_STATUS = "/tmp/wobble-agents.json"
#: A worker file older than this means the worker (or its event loop) is stuck or gone.
DEFAULT_MAX_AGE_S = 20.0
#: The pjsua2 thread must have looped within this many seconds when the worker last wrote.
MAX_LOOP_AGE_S = 10.0


def status_path() -> Path:
    return Path(os.environ.get("WOBBLE_AGENT_STATUS", DEFAULT_STATUS))


def worker_path(main: Path, index: int) -> Path:
    return main.parent / f"{main.name}.d" / f"worker-{index}.json"


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any:
    with path.open() as fh:
        return json.load(fh)


def agent_ok(entry: dict[str, Any], direct: bool) -> tuple[bool, str]:
    """Is one agent's status entry healthy? (ok, why-not)."""
    if direct:
        return True, ""
    code = int(entry.get("code", 0) or 0)
    if code != 200 or not entry.get("active"):
        return False, f"code {code} {entry.get('reason', '')}".strip()
    return True, ""


def evaluate(
    main: dict[str, Any] | None, workers: dict[int, dict[str, Any] | None], now: float, max_age: float
) -> tuple[bool, str]:
    """The health verdict: every configured agent registered (200, active), every worker fresh."""
    if main is None:
        return False, "no supervisor status file"
    expected: list[str] = list(main.get("agents", []))
    if not expected:
        return False, "no agents configured"
    direct = bool(main.get("direct"))
    plan: dict[str, Any] = main.get("workers", {})
    bad: list[str] = []
    seen: set[str] = set()
    for key in sorted(plan, key=lambda k: int(k)):
        idx = int(key)
        wanted = list(plan[key].get("agents", []))
        data = workers.get(idx)
        if data is None:
            bad.append(f"worker {idx}: no status ({', '.join(wanted)})")
            continue
        age = now - float(data.get("updated", 0))
        if age > max_age:
            bad.append(f"worker {idx}: status {age:.0f}s old")
            continue
        loop_age = float(data.get("loop_age_s", 0.0))
        if loop_age > MAX_LOOP_AGE_S:
            bad.append(f"worker {idx}: pjsua2 loop stalled {loop_age:.0f}s")
            continue
        agents = data.get("agents", {})
        for name in wanted:
            entry = agents.get(name)
            if entry is None:
                bad.append(f"{name}: unknown to worker {idx}")
                continue
            ok, why = agent_ok(entry, direct)
            seen.add(name)
            if not ok:
                bad.append(f"{name}: {why}")
    missing = [a for a in expected if a not in seen and not any(a in b for b in bad)]
    bad.extend(f"{a}: not assigned to any worker" for a in missing)
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        return False, f"unhealthy: {'; '.join(bad[:3])}{more}"
    what = "up (direct mode)" if direct else "registered"
    return True, f"ok: {len(expected)}/{len(expected)} agents {what}"


def check(path: Path | None = None, max_age: float = DEFAULT_MAX_AGE_S, now: float | None = None) -> tuple[bool, str]:
    main_path = path or status_path()
    try:
        main = read_json(main_path)
    except (OSError, ValueError):
        main = None
    workers: dict[int, dict[str, Any] | None] = {}
    if isinstance(main, dict):
        for key in main.get("workers", {}):
            try:
                workers[int(key)] = read_json(worker_path(main_path, int(key)))
            except (OSError, ValueError):
                workers[int(key)] = None
    return evaluate(main if isinstance(main, dict) else None, workers, time.time() if now is None else now, max_age)
