"""Bring the lab up (and wait until every service is healthy) and take it down, via Compose v2."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import subprocess
import time
from typing import Any

from core import dockerctl, paths
from core.errors import HealthTimeout, LabNotUp, PortInUse, WobbleError
from core.topology import PROJECT, Topology

log = logging.getLogger("wobble.lab")
IMAGES = ("wobble/python:dev", "wobble/sbc:dev", "wobble/media:dev", "wobble/pbx:dev", "wobble/db:dev")
#: Health states that count as ready (`running`: a service without a health check).
READY = ("healthy", "running")
SERVICES = (
    "dns",
    "media-a",
    "media-b",
    "pbx-a",
    "pbx-b",
    "sbc-a",
    "sbc-b",
    "agents-a",
    "agents-b",
    "caller",
    "steering",
    "config-api",
    "idp",
    "crm",
    "toxiproxy",
    "chaos",
    "db-a",
    "db-b",
    "records-exporter",
)


def compose(*args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [str(dockerctl.compose_bin()), "--project-directory", str(paths.ROOT), "-f", str(paths.COMPOSE_FILE), *args]
    log.debug("running %s", " ".join(cmd))
    return subprocess.run(cmd, check=check, text=True, capture_output=capture)


def ensure_images_exist() -> None:
    cli = dockerctl.client()
    missing = [tag for tag in IMAGES if not cli.images.list(name=tag)]
    if missing:
        raise LabNotUp(f"lab images missing ({', '.join(missing)}); run `make setup`")


def ensure_subnets_are_free(topo: Topology) -> None:
    """A lab subnet already used by another docker network is the network form of a port in use."""
    wanted = {name: ipaddress.ip_network(s) for name, s in topo.subnets().items()}
    for net in dockerctl.client().networks.list():
        labels = net.attrs.get("Labels") or {}
        if labels.get("com.docker.compose.project") == PROJECT:
            continue
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            subnet = cfg.get("Subnet")
            if not subnet:
                continue
            theirs = ipaddress.ip_network(subnet, strict=False)
            for name, ours in wanted.items():
                if theirs.version == ours.version and theirs.overlaps(ours):
                    raise PortInUse(
                        f"docker network {net.name!r} uses {theirs}, which overlaps the lab's {name} "
                        f"subnet {ours}; remove it (`docker network rm {net.name}`) and retry"
                    )


def running_services() -> dict[str, Any]:
    return {c.labels.get("com.docker.compose.service"): c for c in dockerctl.lab_containers()}


def is_up() -> bool:
    running = running_services()
    return all(s in running and dockerctl.health(running[s]) in READY for s in SERVICES)


def wait_healthy(timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending: list[str] = list(SERVICES)
    while pending:
        running = running_services()
        pending = [s for s in SERVICES if s not in running or dockerctl.health(running[s]) not in READY]
        if not pending:
            return
        dead = [s for s in pending if s in running and dockerctl.health(running[s]) in ("exited", "dead", "unhealthy")]
        if dead or time.monotonic() >= deadline:
            name = (dead or pending)[0]
            container = running.get(name)
            logs = dockerctl.last_logs(container) if container is not None else ""
            last = logs.strip().splitlines()[-1:] or ["(no logs)"]
            raise HealthTimeout(
                name,
                timeout_s - max(0.0, deadline - time.monotonic()),
                logs,
                hint=f"last log line: {last[0][:200]}; see `docker logs wobble-{name}-1`",
            )
        time.sleep(0.5)


def wait_steering_all_up(timeout_s: float) -> None:
    """`make up` is done when steering, from both vantage points, has every region UP."""
    from lab.steering import client

    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            snap = client.request("/v1/state", timeout=1.0)
            states = {name: r["state"] for name, r in snap["regions"].items()}
            if states and all(s == "UP" for s in states.values()):
                return
        except WobbleError:
            pass
        time.sleep(0.3)
    container = running_services().get("steering")
    logs = dockerctl.last_logs(container) if container is not None else ""
    raise HealthTimeout("steering", timeout_s, logs, hint=f"regions not all UP: {states or 'no answer'}")


def up(timeout_s: float = 240.0) -> float:
    """Start the lab and return only when every service is healthy; returns seconds taken.

    On failure nothing is left half-started: the lab is taken down again.
    """
    topo = Topology.default()
    dockerctl.client()
    ensure_images_exist()
    ensure_subnets_are_free(topo)
    for region in topo.region_names:
        paths.recordings_dir(region).mkdir(parents=True, exist_ok=True)
        paths.cdr_file(region).parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        proc = compose("up", "-d", "--no-build", "--remove-orphans", check=False, capture=True)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            raise WobbleError(f"compose up failed: {lines[-1] if lines else 'no output'}")
        wait_healthy(timeout_s)
        wait_steering_all_up(max(10.0, timeout_s - (time.monotonic() - started)))
        wait_records_writers()
        apply_records_wan()
    except BaseException:
        log.warning("the lab did not come up; taking it down again")
        down()
        raise
    return time.monotonic() - started


def wait_records_writers(timeout_s: float = 30.0) -> None:
    """Until each PBX has loaded its database backends against a database that answers (its
    pbx-db-watch says so): a call placed the moment `up` returns must leave its CDR. Not fatal."""
    pending = {r.pbx_service for r in Topology.default().regions}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for service in sorted(pending):
            with contextlib.suppress(WobbleError, OSError):
                if b"loaded afresh" in dockerctl.service_container(service).logs(tail=500):
                    pending.discard(service)
        if pending:
            time.sleep(0.5)
    if pending:
        log.warning("%s: records backends not loaded yet; early calls may leave no CDR", ", ".join(sorted(pending)))


def apply_records_wan() -> None:
    """The backbone's WAN profile on the records replication proxies (lab/records/records.yaml).
    Not fatal: without it the lab works, replication is only faster than a WAN's."""
    from lab.records import config, wan

    try:
        cfg = config.load()
        if cfg.wan_on_up:
            wan.apply(cfg, cfg.wan)
            log.info("records WAN profile on the replication proxies: %s", cfg.wan.model_dump())
    except WobbleError as exc:
        log.warning("records WAN profile not applied: %s", exc)


def stop_wardens() -> int:
    """Stop every chaos warden (each reverts its fault on SIGTERM) before the lab goes away."""
    found = dockerctl.client().containers.list(all=True, filters={"label": ["wobble.chaos.fault"]})
    for c in found:
        try:
            c.stop(timeout=5)
            c.remove(force=True)
        except Exception as exc:  # already gone: nothing to revert
            log.debug("warden %s: %s", c.name, exc)
    return len(found)


def down() -> None:
    dockerctl.client()
    stop_wardens()
    compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False, capture=True)
