"""Agent status files (pure: no pjsua2) and the health verdict read from them.

Layout, for status path P (env WOBBLE_AGENT_STATUS, default /tmp/wobble-agents.json):
- P                  written by the supervisor: the plan (region, every configured agent, workers).
- P.d/worker-N.json  written by worker N every couple of seconds and on every registration change:
                     per-agent registration state (and the proxy it registers through: `proxy`,
                     `proxy_region`), the worker's liveness, calls in progress.
- P.d/control.json   written by the supervisor at start and on every re-homing decision: where the
                     accounts should register (`proxy`, `region`, `placement`, `seq`); every worker
                     reads it at start and re-reads it when it changes (checked every second).
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

from core.settings import AgentsSettings

DEFAULT_STATUS = "/tmp/wobble-agents.json"
#: A worker file older than this means the worker (or its event loop) is stuck or gone.
DEFAULT_MAX_AGE_S = 20.0
#: The pjsua2 thread must have looped within this many seconds when the worker last wrote.
MAX_LOOP_AGE_S = 10.0


def status_path() -> Path:
    return AgentsSettings.from_env().status


def worker_path(main: Path, index: int) -> Path:
    return main.parent / f"{main.name}.d" / f"worker-{index}.json"


def health_path(main: Path) -> Path:
    return main.parent / f"{main.name}.d" / "health"


def control_path(main: Path) -> Path:
    return main.parent / f"{main.name}.d" / "control.json"


def control_target(data: Any, home: dict[str, str]) -> dict[str, str]:
    """Where the control file says accounts should register: {proxy, region}; `home` when the file
    is missing, malformed or names no usable proxy (a worker never acts on garbage)."""
    if not isinstance(data, dict):
        return dict(home)
    proxy, region = data.get("proxy"), data.get("region")
    if not isinstance(proxy, str) or not isinstance(region, str) or not proxy or not region:
        return dict(home)
    if "/" in proxy or proxy.startswith("sip:") or any(c.isspace() for c in proxy):
        return dict(home)
    return {"proxy": proxy, "region": region}


def write_control(main: Path, target: dict[str, str], placement: str, seq: int, reason: str) -> None:
    """The supervisor's word to its workers: register through target['proxy'] (in target['region'])."""
    write_json_atomic(
        control_path(main), {**target, "placement": placement, "seq": seq, "reason": reason, "t": time.time()}
    )


class ControlReader:
    """A worker's view of the control file: re-read only when it changed (inode, mtime, size: the
    file is replaced atomically), so polling it every second costs one stat()."""

    def __init__(self, path: Path, home: dict[str, str]) -> None:
        self.path = path
        self.home = dict(home)
        self.target = dict(home)
        self.regions = {home["proxy"]: home["region"]}  # every proxy seen -> its region
        self._seen: tuple[int, int, int] | None = None

    def poll(self) -> bool:
        """True when the target moved since the last poll."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen == self._seen:
            return False
        try:
            new = control_target(read_json(self.path), self.home)
        except (OSError, ValueError):
            return False  # unreadable right now: try again next time
        self._seen = seen
        self.regions[new["proxy"]] = new["region"]
        if new == self.target:
            return False
        self.target = new
        return True


def registrations_via(
    workers: dict[int, dict[str, Any] | None], proxy: str, now: float, max_age: float = DEFAULT_MAX_AGE_S
) -> tuple[int, int]:
    """(registered, failed) among the agents registering through `proxy`, from fresh, running worker
    status files. Failed: a final REGISTER answer >= 300 (timeouts are 408); agents not tried yet or
    being moved (code 0) count as neither."""
    registered = failed = 0
    for data in workers.values():
        if not data or data.get("state") != "running" or now - float(data.get("updated") or 0) > max_age:
            continue
        for entry in (data.get("agents") or {}).values():
            if not isinstance(entry, dict) or entry.get("proxy") != proxy:
                continue
            code = int(entry.get("code") or 0)
            if code == 200 and entry.get("active"):
                registered += 1
            elif code >= 300:
                failed += 1
    return registered, failed


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            # No fsync: these files describe live processes, so surviving a process crash (which
            # the rename gives) is enough; twenty writers fsyncing every 2 s cost the lab CPU.
            json.dump(data, fh, indent=1, sort_keys=True, default=str)
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
    home = main.get("region")
    plan: dict[str, Any] = main.get("workers", {})
    bad: list[str] = []
    seen: set[str] = set()
    away: dict[str, int] = {}  # registered through another region's proxy: region -> agents
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
            elif (where := entry.get("proxy_region")) and home and where != home:
                away[str(where)] = away.get(str(where), 0) + 1
    missing = [a for a in expected if a not in seen and not any(a in b for b in bad)]
    bad.extend(f"{a}: not assigned to any worker" for a in missing)
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        return False, f"unhealthy: {'; '.join(bad[:3])}{more}"
    what = "up (direct mode)" if direct else "registered"
    # Re-homed agents are in service: healthy, and said so.
    moved = "".join(f" ({n} re-homed to {r})" for r, n in sorted(away.items()))
    return True, f"ok: {len(expected)}/{len(expected)} agents {what}{moved}"


def write_health(main_path: Path, verdict: tuple[bool, str]) -> None:
    """The verdict as one line for the container's HEALTHCHECK, a bash `read` and a file age: the
    check then costs no Python interpreter (a fresh one every few seconds cost the lab CPU)."""
    ok, reason = verdict
    path = health_path(main_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".health.tmp")
    tmp.write_text((reason if ok else f"unhealthy: {reason.removeprefix('unhealthy: ')}") + "\n")
    os.replace(tmp, path)


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
