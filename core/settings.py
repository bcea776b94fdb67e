"""Every environment variable the lab reads, in one place: one frozen settings object per process.

Each process reads its object once at start (`XSettings.from_env()`, in its `main`) and passes the
values down; nothing else in the code base reads the environment (a unit test checks it). A variable
set to the empty string counts as not set. compose.yaml sets these per service, and a unit test
checks that every variable it sets is one the service's settings read (`compose_services` below).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

#: The lab's default operator token (steering, its config API, the chaos controller and the CLI);
#: WOBBLE_TOKEN on the host overrides it, and compose.yaml passes it on as `${WOBBLE_TOKEN:-...}`.
OPERATOR_TOKEN = "wobble-operator"

S = TypeVar("S", bound="Settings")


def env(name: str, parse: Callable[[str], Any] = str) -> dict[str, Any]:
    """A setting's metadata: read from the environment variable `name`, parsed by `parse`."""
    return {"env": name, "parse": parse}


def _path(raw: str) -> Path:
    return Path(raw)


@dataclass(frozen=True)
class Settings:
    """Base: `from_env` reads the variables its fields name."""

    #: The compose services whose process reads this object (for the compose.yaml drift test).
    compose_services: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str] | None = None) -> S:
        source = os.environ if env is None else env
        given = {}
        for f in fields(cls):
            raw = source.get(f.metadata["env"], "")
            if raw != "":
                given[f.name] = f.metadata["parse"](raw)
        return cls(**given)

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        return tuple(f.metadata["env"] for f in fields(cls))


@dataclass(frozen=True)
class EventLogSettings(Settings):
    """Every process that writes the event log (host, agents, caller, steering, chaos, wardens)."""

    events: Path = field(default=Path("var/events.jsonl"), metadata=env("WOBBLE_EVENTS", _path))


@dataclass(frozen=True)
class HostSettings(Settings):
    """The host's tools: the `wobble` CLI, benchmarks, tests."""

    #: The checkout; None: the folder this code is in.
    root: Path | None = field(default=None, metadata=env("WOBBLE_ROOT", _path))
    token: str = field(default=OPERATOR_TOKEN, metadata=env("WOBBLE_TOKEN"))
    chaos_url: str | None = field(default=None, metadata=env("WOBBLE_CHAOS_URL"))
    records_config: Path | None = field(default=None, metadata=env("WOBBLE_RECORDS_CONFIG", _path))


@dataclass(frozen=True)
class SteeringSettings(Settings):
    """`python -m lab.steering.service`."""

    compose_services = ("steering",)
    lkg: Path | None = field(default=None, metadata=env("STEERING_LKG", _path))
    config_url: str | None = field(default=None, metadata=env("STEERING_CONFIG_URL"))
    token: str = field(default="", metadata=env("STEERING_TOKEN"))
    http_port: int = field(default=8080, metadata=env("STEERING_HTTP_PORT", int))
    dns_port: int = field(default=53, metadata=env("STEERING_DNS_PORT", int))


@dataclass(frozen=True)
class ConfigApiSettings(Settings):
    """`python -m lab.steering.config_api`."""

    compose_services = ("config-api",)
    #: None: the bundled steering.yaml.
    config_file: Path | None = field(default=None, metadata=env("CONFIG_FILE", _path))
    token: str = field(default="", metadata=env("STEERING_TOKEN"))
    port: int = field(default=8081, metadata=env("PORT", int))


@dataclass(frozen=True)
class CarrierProbeSettings(Settings):
    """`python -m lab.steering.carrier_probe`."""

    compose_services = ("caller",)
    steering_url: str = field(default="http://10.77.0.5:8080", metadata=env("STEERING_URL"))
    interval_s: float = field(default=0.2, metadata=env("PROBE_INTERVAL", float))
    timeout_s: float = field(default=0.3, metadata=env("PROBE_TIMEOUT", float))


@dataclass(frozen=True)
class ResolverSettings(Settings):
    """`python -m lab.resolver.server`."""

    compose_services = ("dns",)
    host: str = field(default="0.0.0.0", metadata=env("RESOLVER_HOST"))
    port: int = field(default=53, metadata=env("RESOLVER_PORT", int))


@dataclass(frozen=True)
class IdpSettings(Settings):
    """`python -m lab.deps.idp`."""

    compose_services = ("idp",)
    secret: str = field(default="wobble", metadata=env("IDP_SECRET"))
    token_ttl_s: int = field(default=3600, metadata=env("IDP_TOKEN_TTL", int))
    port: int = field(default=8090, metadata=env("PORT", int))


@dataclass(frozen=True)
class CrmSettings(Settings):
    """`python -m lab.deps.crm`."""

    compose_services = ("crm",)
    port: int = field(default=8091, metadata=env("PORT", int))


@dataclass(frozen=True)
class AgentsSettings(Settings):
    """`python -m agents.agent` (the agents supervisor and its workers)."""

    compose_services = ("agents-a", "agents-b")
    idp_secret: str = field(default="wobble", metadata=env("IDP_SECRET"))  # the default of --idp-secret
    status: Path = field(default=Path("/tmp/wobble-agents.json"), metadata=env("WOBBLE_AGENT_STATUS", _path))
    events: Path = field(default=Path("var/events.jsonl"), metadata=env("WOBBLE_EVENTS", _path))


@dataclass(frozen=True)
class ChaosSettings(Settings):
    """`python -m chaos.service` (the chaos controller)."""

    compose_services = ("chaos",)
    project: str = field(default="wobble", metadata=env("WOBBLE_PROJECT"))
    #: 8 s, not 3: a crashed controller's restart (~1-3 s) plus start-up must land within the lease.
    lease_ttl_s: float = field(default=8.0, metadata=env("CHAOS_LEASE_TTL", float))
    token: str = field(default=OPERATOR_TOKEN, metadata=env("CHAOS_TOKEN"))
    port: int = field(default=8070, metadata=env("CHAOS_PORT", int))
    #: The host's var/ (wardens bind-mount it); None: found from the controller's own mounts.
    host_var: str | None = field(default=None, metadata=env("WOBBLE_HOST_VAR"))
    events: Path = field(default=Path("var/events.jsonl"), metadata=env("WOBBLE_EVENTS", _path))


@dataclass(frozen=True)
class WardenSettings(Settings):
    """`python -m chaos.warden` and `python -m chaos.net.warden` (run by the controller, which sets
    WOBBLE_PROJECT and WOBBLE_FAULT_TARGET: chaos.wardens.run_options)."""

    project: str = field(default="wobble", metadata=env("WOBBLE_PROJECT"))
    fault_target: str | None = field(default=None, metadata=env("WOBBLE_FAULT_TARGET"))
    steering_token: str = field(default=OPERATOR_TOKEN, metadata=env("STEERING_TOKEN"))
    #: None: no lab log here (a bare network namespace).
    events: Path | None = field(default=None, metadata=env("WOBBLE_EVENTS", _path))


@dataclass(frozen=True)
class ToxiproxySettings(Settings):
    """`python -m chaos.toxiproxy`."""

    compose_services = ("toxiproxy",)
    log_level: str = field(default="INFO", metadata=env("LOG_LEVEL"))


#: Every settings object, for the drift tests.
ALL: tuple[type[Settings], ...] = (
    EventLogSettings,
    HostSettings,
    SteeringSettings,
    ConfigApiSettings,
    CarrierProbeSettings,
    ResolverSettings,
    IdpSettings,
    CrmSettings,
    AgentsSettings,
    ChaosSettings,
    WardenSettings,
    ToxiproxySettings,
)
