"""Wardens: one sidecar container per fault that applies it, holds its lease and reverts it.

The controller never applies a rule itself. Each fault gets a warden container placed where the
fault acts (in the target's network namespace for network faults, beside the docker socket for
crashes, in the proxy's namespace for toxics). The warden reverts when its lease is not renewed,
when the fault's time is up, or when it is told to stop — so a dead controller leaves nothing
behind for longer than the lease's TTL.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from docker.errors import APIError, NotFound

from chaos.catalog import Fault

IMAGE = "wobble/python:dev"
LABEL = "wobble.chaos.fault"
#: The validated fault (chaos.catalog.Fault as JSON) and its backend, carried by the warden so that
#: a restarted controller can adopt it (Controller.adopt) rather than knowing it only from memory.
SPEC_LABEL = "wobble.chaos.spec"
BACKEND_LABEL = "wobble.chaos.backend"
#: Where the lab's var/ (events, leases) is mounted in every lab container and warden.
VAR_IN_CONTAINER = "/var/lib/wobble"
LEASE_DIR = f"{VAR_IN_CONTAINER}/chaos/leases"
DOCKER_SOCK = "/var/run/docker.sock"


class ApplyFailed(RuntimeError):
    """A warden could not make its fault live; everything it had applied is already reverted."""


def warden_name(fault_id: str) -> str:
    return f"wobble-chaos-{fault_id}"


def command(fault: Fault, fault_id: str) -> list[str]:
    """The warden's command line for a fault's family."""
    if fault.family == "net":
        spec = json.dumps(fault.params, separators=(",", ":"))
        module = "chaos.net.warden"
    else:
        spec = json.dumps(fault.model_dump(mode="json"), separators=(",", ":"))
        module = "chaos.warden"
    return ["python", "-m", module, "apply", "--spec", spec, "--id", fault_id, "--lease-dir", LEASE_DIR]


def run_options(
    fault: Fault, fault_id: str, host_var: str, anchor: Any, project: str, backend: str = ""
) -> dict[str, Any]:
    """docker-py `containers.run` options: where the warden lives and what it may touch.

    `anchor` is the container whose network namespace the warden shares (the target for network
    faults, the proxy for toxics, steering for DNS), or None for crash faults.
    """
    volumes: dict[str, dict[str, str]] = {host_var: {"bind": VAR_IN_CONTAINER, "mode": "rw"}}
    opts: dict[str, Any] = {
        "name": warden_name(fault_id),
        "detach": True,
        "labels": {
            LABEL: fault_id,
            "wobble.chaos.kind": fault.kind,
            "wobble.chaos.target": fault.target,
            "wobble.chaos.project": project,
            SPEC_LABEL: fault.model_dump_json(),
            BACKEND_LABEL: backend,
        },
        "environment": {"WOBBLE_PROJECT": project, "WOBBLE_FAULT_TARGET": fault.target},
        "stop_signal": "SIGTERM",
    }
    if fault.family in ("docker", "sip"):  # crashes and the SBC's htable: through the docker API
        volumes[DOCKER_SOCK] = {"bind": DOCKER_SOCK, "mode": "rw"}
        opts["network_mode"] = "none"
    else:
        opts["network_mode"] = f"container:{anchor.id}"
    if fault.family == "net":
        opts["cap_add"] = ["NET_ADMIN"]
    opts["volumes"] = volumes
    return opts


def effect_time(logs: bytes, marker: bytes) -> float | None:
    """The time on the warden's LIVE line (`LIVE <id> <t>`), if any."""
    rest = logs.split(marker, 1)[1].split(b"\n", 1)[0].strip()
    try:
        return float(rest) if rest else None
    except ValueError:
        return None


def wait_live(
    container: Any, fault_id: str, timeout_s: float = 30.0, on_poll: Callable[[], None] | None = None
) -> float | None:
    """Block until the warden prints `LIVE <id> [<t>]`; raise ApplyFailed with its last words if it
    exits. Returns `t`, when the warden began to act (UNIX time, just before its first signal or
    rule), if it said so.

    `on_poll` runs before every look (the controller renews the fault's lease there)."""
    deadline = time.monotonic() + timeout_s
    marker = f"LIVE {fault_id}".encode()
    while True:
        if on_poll is not None:
            on_poll()
        try:
            logs = container.logs(stdout=True, stderr=True)
            if marker in logs:
                return effect_time(logs, marker)
            container.reload()
        except NotFound:
            raise ApplyFailed("the warden container vanished before the fault was live") from None
        status = container.attrs.get("State", {}).get("Status")
        if status in ("exited", "dead"):
            tail = logs.decode(errors="replace").strip().splitlines()[-3:]
            raise ApplyFailed("; ".join(tail) or f"warden exited with {container.attrs['State'].get('ExitCode')}")
        if time.monotonic() >= deadline:
            tail = logs.decode(errors="replace").strip().splitlines()[-3:]
            raise ApplyFailed(f"not live after {timeout_s:g} s; warden said: {'; '.join(tail) or 'nothing'}")
        time.sleep(0.1)


def wait_exit(container: Any, timeout_s: float) -> bool:
    """True once the warden has exited (it reverts before it exits)."""
    try:
        container.wait(timeout=timeout_s)
        return True
    except NotFound:
        return True
    except Exception:  # requests' ReadTimeout: still running
        return False


def remove(container: Any) -> None:
    with contextlib.suppress(NotFound, APIError):
        container.remove(force=True)


def is_running(container: Any) -> bool:
    state = container.attrs.get("State")
    return isinstance(state, dict) and state.get("Status") == "running"


def fault_of(container: Any) -> tuple[Fault, str] | None:
    """The fault a warden holds and its backend, from its labels; None for a warden that does not
    say (one started before the labels existed, or a label that does not parse)."""
    spec = container.labels.get(SPEC_LABEL)
    if not spec:
        return None
    try:
        fault = Fault.model_validate_json(spec)
    except ValueError:
        return None
    return fault, str(container.labels.get(BACKEND_LABEL) or "")


def live_since(container: Any, fault_id: str) -> tuple[bool, float | None]:
    """Whether the warden has said `LIVE <id>`, and the time on that line (see effect_time)."""
    try:
        logs = container.logs(stdout=True, stderr=True)
    except (NotFound, APIError):
        return False, None
    marker = f"LIVE {fault_id}".encode()
    if marker not in logs:
        return False, None
    return True, effect_time(logs, marker)


def leftovers(client: Any, project: str) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": [LABEL, f"wobble.chaos.project={project}"]}))
