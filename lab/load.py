"""`wobble load`: the traffic generator (agents.load) run in the `caller` container, driven from the host.

The host only starts it, relays its logs, forwards Ctrl-C, and prints its summary: the calls are
placed from the carrier network like every other customer call.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
import uuid
from typing import Any

from core import dockerctl
from core.errors import BadInput, CallFailed

log = logging.getLogger("wobble.load")
STEER = ("http", "ttl", "sticky")
ARRIVALS = ("constant", "poisson")


def default_max_concurrent(cps: float, hold_mean: float) -> int:
    """Size the fleet from the load: mean concurrency (Little's law) with room for its spread."""
    mean = cps * hold_mean
    return max(8, min(400, math.ceil(mean + 4 * math.sqrt(mean) + 8)))


def ensure_load_args_are_valid(
    cps: float,
    duration: float,
    steer: str,
    max_concurrent: int | None,
    hold_mean: float = 10.0,
    arrivals: str = "constant",
    seed: int | None = None,
) -> None:
    """Every flag of `wobble load` checked before anything is computed from it (a negative --cps
    once reached math.sqrt)."""
    if not (math.isfinite(cps) and 0 < cps <= 200):
        raise BadInput(f"--cps must be in (0, 200] calls per second, got {cps}")
    if not (math.isfinite(duration) and 0 < duration <= 86400):
        raise BadInput(f"--duration must be in (0, 86400] seconds, got {duration}")
    if not (math.isfinite(hold_mean) and 0 < hold_mean <= 86400):
        raise BadInput(f"--hold-mean must be in (0, 86400] seconds, got {hold_mean}")
    if steer not in STEER and not steer.startswith("region-"):
        raise BadInput(f"--steer must be one of {', '.join(STEER)} or a region name, got {steer!r}")
    if max_concurrent is not None and not 1 <= max_concurrent <= 400:
        raise BadInput(f"--max-concurrent must be 1-400, got {max_concurrent}")
    if arrivals not in ARRIVALS:
        raise BadInput(f"--arrivals must be one of {', '.join(ARRIVALS)}, got {arrivals!r}")
    if seed is not None and not 0 <= seed < 2**63:
        raise BadInput(f"--seed must be a non-negative integer, got {seed}")


def _interrupt(container_id: str, run_id: str) -> None:
    """SIGINT the generator inside the container (docker exec does not forward the host's signal)."""
    code = (
        "import os, signal\n"
        "for p in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try: cmd = open(f'/proc/{p}/cmdline', 'rb').read().split(b'\\0')\n"
        "    except OSError: continue\n"
        f"    if b'agents.load' in cmd and b'{run_id}' in cmd: os.kill(int(p), signal.SIGINT)\n"
    )
    subprocess.run(["docker", "exec", container_id, "python", "-c", code], check=False, capture_output=True)


class LoadProcess:
    """A load run started in the caller container without waiting for it (drills run traffic beside
    their faults): `stop()` asks it to end as Ctrl-C would, `wait()` returns its summary."""

    def __init__(self, container_id: str, run_id: str, proc: subprocess.Popen[str]) -> None:
        self.container_id = container_id
        self.run_id = run_id
        self.proc = proc

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.running():
            _interrupt(self.container_id, self.run_id)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=timeout)
        lines = [ln for ln in (out or "").strip().splitlines() if ln.strip()]
        try:
            summary: dict[str, Any] = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise CallFailed(f"the load generator returned no summary (exit {self.proc.returncode})") from None
        if self.proc.returncode and "error" not in summary:
            summary["error"] = f"the load generator exited {self.proc.returncode}"
        return summary


def start_load(
    cps: float, duration: float, steer: str = "http", hold_mean: float = 10.0, max_concurrent: int | None = None,
    seed: int | None = None, arrivals: str = "constant", extra: list[str] | None = None, stderr: Any = None,
) -> LoadProcess:  # fmt: skip
    """Start `agents.load` in the caller container and return at once (`run_load` waits for it).
    `stderr`: where the generator's logs go (a file object; default: this process's stderr)."""
    ensure_load_args_are_valid(cps, duration, steer, max_concurrent, hold_mean, arrivals, seed)
    if max_concurrent is None:
        max_concurrent = default_max_concurrent(cps, hold_mean)
    from core.topology import Topology

    container = dockerctl.service_container("caller")
    run_id = "r" + uuid.uuid4().hex[:10]
    cmd = ["python", "-m", "agents.load", "--cps", str(cps), "--duration", str(duration), "--run-id", run_id,
           "--hold-mean", str(hold_mean), "--max-concurrent", str(max_concurrent), "--arrivals", arrivals,
           "--json"]  # fmt: skip
    if steer.startswith("region-"):
        try:
            cmd += ["--target", Topology.default().region(steer).sip_uri]
        except KeyError:
            names = ", ".join(Topology.default().region_names)
            raise BadInput(f"unknown region {steer!r}; choose one of: {names}") from None
    else:
        cmd += ["--steer", steer]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    cmd += extra or []
    log.info("load run %s: %.1f CPS for %.0f s, steering %s", run_id, cps, duration, steer)
    proc = subprocess.Popen(["docker", "exec", container.id, *cmd], stdout=subprocess.PIPE,
                            stderr=stderr if stderr is not None else sys.stderr, text=True)  # fmt: skip
    return LoadProcess(container.id, run_id, proc)


def run_load(
    cps: float, duration: float, steer: str = "http", hold_mean: float = 10.0, max_concurrent: int | None = None,
    seed: int | None = None, arrivals: str = "constant", extra: list[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    run = start_load(cps, duration, steer, hold_mean, max_concurrent, seed, arrivals, extra)
    # SIGTERM (a CI timeout, `kill`) stops the run as Ctrl-C does, with its summary.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return run.wait()
    except KeyboardInterrupt:
        log.warning("interrupted: stopping the run and collecting its summary")
        run.stop()
        return run.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
