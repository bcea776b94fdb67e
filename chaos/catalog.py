"""The fault catalog: every kind of fault, which family (backend) serves it, what it may target.

Pure: validating a request needs no docker and no network, so a typo is refused before anything
is applied. Network faults' own parameters are checked by `chaos.net.spec`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chaos.net.spec import NetFault, NetKind
from core.errors import first_problem
from core.topology import Topology

Family = Literal["net", "toxiproxy", "docker", "dns", "sip"]

NET_KINDS: tuple[str, ...] = tuple(NetKind)
TOXIC_KINDS = (
    "latency",
    "bandwidth",
    "timeout",
    "reset_peer",
    "slow_close",
    "slicer",
    "limit_data",
    "proxy_down",
    "http_error",
)
DOCKER_KINDS = ("kill", "stop", "pause", "region_down", "partition", "control_plane_down")
DNS_KINDS = ("dns_slow", "dns_servfail", "dns_drop", "dns_stale")
SIP_KINDS = ("sip_503",)

FAMILIES: dict[str, Family] = {
    **{k: "net" for k in NET_KINDS},
    **{k: "toxiproxy" for k in TOXIC_KINDS},
    **{k: "docker" for k in DOCKER_KINDS},
    **{k: "dns" for k in DNS_KINDS},
    **{k: "sip" for k in SIP_KINDS},
}

#: Dependencies reached through the lab's Toxiproxy-API proxy: service -> proxy name.
PROXIED = {"crm": "crm", "idp": "idp", "config-api": "config-api"}
_TOPOLOGY = Topology.default()
#: The infrastructure each region is made of (core.topology.Region.infrastructure).
REGION_SERVICES = {r.name: r.infrastructure for r in _TOPOLOGY.regions}
#: The toxiproxy proxy each region's records replication leaves through (chaos/proxies.json):
#: region_down cuts it first, so WAL queued in the WAN dies with the region instead of draining
#: to the other region's standby after the "crash" (that made the measured RPO too small).
REGION_REPL_PROXY = {"region-a": "repl-a", "region-b": "repl-b"}
CONTROL_PLANE = ("config-api",)
SBCS = tuple(r.sbc_service for r in _TOPOLOGY.regions)
NETWORKS = _TOPOLOGY.network_names
#: The chaos controller and its proxy are the instrument, not the subject.
UNTOUCHABLE = ("chaos", "toxiproxy")
MAX_DURATION_S = 24 * 3600.0


class InvalidFault(ValueError):
    """A fault request that cannot be applied; the message names the field and the fix."""


class FaultRequest(BaseModel):
    """What a user asks for: `wobble fault add KIND --target T --for D [params]`."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    target: str
    duration_s: float
    params: dict[str, Any] = Field(default_factory=dict)
    #: Insist on a backend (e.g. "nft"); refused unless it is the one serving the kind here.
    backend: str | None = None


class Fault(BaseModel):
    """A validated request, with the family that will serve it and what it resolves to."""

    model_config = ConfigDict(frozen=True)

    kind: str
    family: Family
    target: str
    duration_s: float
    params: dict[str, Any]
    #: The compose services it acts on (a region outage: several).
    services: tuple[str, ...]


_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """`60s`, `500ms`, `2m`, `1h` or plain seconds -> seconds; negative or zero is refused."""
    m = _DURATION.match(str(text))
    if not m:
        raise InvalidFault(f"duration {text!r} is not a duration; write e.g. 60s, 500ms, 2m")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    ensure_duration_is_valid(seconds)
    return seconds


def ensure_duration_is_valid(seconds: float) -> None:
    if not seconds > 0:
        raise InvalidFault(f"duration must be positive (got {seconds:g} s); every fault needs --for, e.g. --for 60s")
    if seconds > MAX_DURATION_S:
        raise InvalidFault(f"duration {seconds:g} s is over the 24 h maximum; use a shorter --for")


def _pct(params: dict[str, Any], name: str = "pct", default: float | None = None) -> float:
    raw = params.get(name, default)
    if raw is None:
        raise InvalidFault(f"{name} is required (a share in percent, e.g. --{name} 20)")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidFault(f"{name}={raw!r} is not a number") from None
    if not 0 <= value <= 100:
        raise InvalidFault(f"{name}={value:g} is outside 0..100 (percent)")
    return value


def _nonneg(params: dict[str, Any], name: str, default: float | None = None) -> float:
    raw = params.get(name, default)
    if raw is None:
        raise InvalidFault(f"{name} is required for this fault (e.g. --{name.replace('_', '-')} 100)")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidFault(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise InvalidFault(f"{name}={value:g} is negative; give a value >= 0")
    return value


def _only(params: dict[str, Any], allowed: set[str], kind: str) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidFault(
            f"{kind} does not take {', '.join(unknown)}; it takes {', '.join(sorted(allowed)) or 'no parameters'}"
        )


def _toxic_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Toxiproxy's own attribute names and units, from the catalog's."""
    stream = params.get("stream", "downstream")
    if stream not in ("upstream", "downstream"):
        raise InvalidFault(f"stream={stream!r} must be upstream or downstream")
    common = {"stream", "toxicity"}
    toxicity = _pct({"p": params.get("toxicity", 100)}, "p") / 100.0
    spec: dict[str, Any] = {"stream": stream, "toxicity": toxicity}
    if kind == "latency":
        _only(params, common | {"ms", "jitter"}, kind)
        spec["attributes"] = {"latency": int(_nonneg(params, "ms")), "jitter": int(_nonneg(params, "jitter", 0))}
    elif kind == "bandwidth":
        _only(params, common | {"kbit"}, kind)
        spec["attributes"] = {"rate": max(1, int(_nonneg(params, "kbit") / 8))}  # Toxiproxy's rate is KB/s
    elif kind in ("timeout", "reset_peer"):
        _only(params, common | {"ms"}, kind)
        spec["attributes"] = {"timeout": int(_nonneg(params, "ms", 0))}
    elif kind == "slow_close":
        _only(params, common | {"ms"}, kind)
        spec["attributes"] = {"delay": int(_nonneg(params, "ms"))}
    elif kind == "slicer":
        _only(params, common | {"size", "variation", "ms"}, kind)
        spec["attributes"] = {
            "average_size": int(_nonneg(params, "size", 64)),
            "size_variation": int(_nonneg(params, "variation", 16)),
            "delay": int(_nonneg(params, "ms", 10)) * 1000,  # Toxiproxy's slicer delay is in microseconds
        }
    elif kind == "limit_data":
        _only(params, common | {"bytes"}, kind)
        spec["attributes"] = {"bytes": int(_nonneg(params, "bytes"))}
    elif kind == "http_error":
        _only(params, common | {"pct", "status", "retry_after"}, kind)
        status = int(params.get("status", 503))
        if status not in (429, 500, 502, 503, 504):
            raise InvalidFault(f"status={status} is not an error a throttled dependency answers; use 429 or 503")
        spec["attributes"] = {
            "rate": _pct(params) / 100.0,
            "status": status,
            "retry_after": int(_nonneg(params, "retry_after", 1)),
        }
    else:  # proxy_down
        _only(params, set(), kind)
        return {}
    return spec


def _net_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return NetFault.model_validate({"kind": kind, **params}).model_dump(mode="json")
    except ValueError as exc:
        raise InvalidFault(f"{kind}: {first_problem(exc, top='')}") from None


def ensure_fault_is_valid(
    req: FaultRequest, services: tuple[str, ...] | list[str], backends: dict[str, str] | None = None
) -> Fault:
    """Check a request against the catalog, the lab's services and the backends probed here.

    Raises InvalidFault naming the field and the fix; nothing has been applied at that point.
    """
    kind = req.kind
    family = FAMILIES.get(kind)
    if family is None:
        raise InvalidFault(f"unknown fault {kind!r}; known faults: {', '.join(sorted(FAMILIES))}")
    if req.backend is not None and backends is not None and backends.get(kind) != req.backend:
        raise InvalidFault(
            f"unknown backend {req.backend!r} for {kind}; on this machine {kind} is served by "
            f"{backends.get(kind, 'nothing')} (`wobble fault backends` lists them)"
        )
    ensure_duration_is_valid(req.duration_s)
    params = dict(req.params)
    target = req.target
    known = [s for s in services if s not in UNTOUCHABLE]

    def need_service(allowed: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        if target not in allowed:
            raise InvalidFault(f"{kind} cannot target {target!r}; targets for {kind}: {', '.join(allowed)}")
        return (target,)

    if family == "net":
        on = need_service(known)
        params = _net_params(kind, params)
    elif family == "toxiproxy":
        on = need_service(sorted(PROXIED))
        params = _toxic_params(kind, params)
    elif family == "dns":
        on = need_service(["steering"])
        allowed = {"dns_slow": {"ms", "pct"}, "dns_servfail": {"pct"}, "dns_drop": {"pct"}, "dns_stale": {"pct"}}[kind]
        _only(params, allowed, kind)
        params = {"pct": _pct(params, default=100)}
        if kind == "dns_slow":
            params["ms"] = _nonneg(req.params, "ms")
    elif family == "sip":
        on = need_service(SBCS)
        _only(params, {"pct", "retry_after"}, kind)
        params = {"pct": _pct(params), "retry_after": int(_nonneg(req.params, "retry_after", 5))}
    elif kind == "region_down":
        if target not in REGION_SERVICES:
            raise InvalidFault(f"region_down targets a region: {', '.join(REGION_SERVICES)} (got {target!r})")
        _only(params, {"how"}, kind)
        params = {"how": _how(params, ("kill", "stop", "pause"), "kill"), "repl_proxy": REGION_REPL_PROXY[target]}
        on = REGION_SERVICES[target]
    elif kind == "partition":
        _only(params, {"network"}, kind)
        network = params.get("network")
        if network not in NETWORKS:
            raise InvalidFault(f"partition needs --network, one of {', '.join(NETWORKS)} (got {network!r})")
        on = REGION_SERVICES[target] if target in REGION_SERVICES else need_service(known)
    elif kind == "control_plane_down":
        _only(params, {"how"}, kind)
        params = {"how": _how(params, ("stop", "pause", "kill"), "stop")}
        on = need_service(list(CONTROL_PLANE))
    else:  # kill, stop, pause
        _only(params, set(), kind)
        on = need_service(known)
    return Fault(kind=kind, family=family, target=target, duration_s=req.duration_s, params=params, services=on)


def _how(params: dict[str, Any], allowed: tuple[str, ...], default: str) -> str:
    how = str(params.get("how", default))
    if how not in allowed:
        raise InvalidFault(f"how={how!r} must be one of {', '.join(allowed)}")
    return how
