"""What the API accepts and shows: proxies, toxics and their attributes, and the API's errors.

Pure: no sockets. The JSON shapes and error texts follow upstream Toxiproxy 2.x (its README and
api.go): a proxy is {name, listen, upstream, enabled, toxics}, a toxic is {name, type, stream,
toxicity, attributes}, and an error is {"error": "...", "status": N}. Ours adds `protocol` to a
proxy ("tcp", the default, or "udp") and two toxics: `loss` (UDP) and `http_error` (TCP, HTTP/1.1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import first_problem

Protocol = Literal["tcp", "udp"]
Stream = Literal["upstream", "downstream"]

#: The Toxiproxy HTTP API level this server speaks, and who we are (GET /version).
API_VERSION = "2.0.0+wobble"


class ApiError(Exception):
    """An API failure with its HTTP status; the message is upstream's wording plus the detail."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def as_json(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status}


def bad_request(detail: str) -> ApiError:
    return ApiError(f"bad request body: {detail}", 400)


def missing_field(field: str) -> ApiError:
    return ApiError(f"missing required field: {field}", 400)


def proxy_not_found(name: str) -> ApiError:
    return ApiError(f"proxy not found: {name}", 404)


def proxy_exists(name: str) -> ApiError:
    return ApiError(f"proxy already exists: {name}", 409)


def toxic_not_found(name: str) -> ApiError:
    return ApiError(f"toxic not found: {name}", 404)


def toxic_exists(name: str) -> ApiError:
    return ApiError(f"toxic already exists: {name}", 409)


def first_error(exc: ValidationError, prefix: str = "") -> str:
    """`field.path: what is wrong` for the first problem pydantic found (toxiproxy's wording)."""
    return first_problem(exc, top="", prefix=prefix, say={"extra_forbidden": "unknown attribute"})


# ---------------------------------------------------------------- addresses


def split_hostport(value: str, field: str, *, listen: bool) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or (listen only) `:port`; a listen port may be 0 (pick one)."""
    host, sep, port_s = value.rpartition(":")
    if not sep or not port_s.isdigit() or int(port_s) > 65535:
        raise bad_request(f"{field}: expected host:port, got {value!r}")
    port = int(port_s)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not listen and (not host or port == 0):
        raise bad_request(f"{field}: expected host:port with a port of 1-65535, got {value!r}")
    return host, port


def bind_error(listen: str, exc: OSError) -> ApiError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return ApiError(f"listen: cannot listen on {listen}: {reason}", 400)


def join_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------- proxies


class ProxyInput(BaseModel):
    """A proxy as POSTed (create, populate) or its fields to change (update).

    Unknown fields are ignored, as upstream does (clients echo back read-only ones like `toxics`);
    known ones must have their JSON type (strict: "yes" is not a boolean).
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    name: str | None = None
    listen: str | None = None
    upstream: str | None = None
    enabled: bool | None = None
    protocol: Protocol | None = None


def parse_proxy_input(body: Any, where: str = "") -> ProxyInput:
    if not isinstance(body, dict):
        raise bad_request(f"{where or 'proxy'}: expected a JSON object")
    try:
        return ProxyInput.model_validate(body)
    except ValidationError as exc:
        raise bad_request(first_error(exc, where)) from None


# ---------------------------------------------------------------- toxics and their attributes


class _Attrs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatencyAttrs(_Attrs):
    """Delay = latency +/- jitter (uniform), per chunk (TCP) or per datagram (UDP)."""

    latency: int = Field(0, ge=0, description="milliseconds")
    jitter: int = Field(0, ge=0, description="milliseconds")


class BandwidthAttrs(_Attrs):
    """At most `rate` KB/s (1 KB = 1000 bytes, as upstream); 0 = unlimited."""

    rate: int = Field(0, ge=0, description="KB/s")


class SlowCloseAttrs(_Attrs):
    """Hold the close (EOF) of the stream for `delay` ms."""

    delay: int = Field(0, ge=0, description="milliseconds")


class TimeoutAttrs(_Attrs):
    """Drop all data; close the connection after `timeout` ms (0 = never: hang)."""

    timeout: int = Field(0, ge=0, description="milliseconds")


class ResetPeerAttrs(_Attrs):
    """On data, reset the connection (TCP RST) after `timeout` ms."""

    timeout: int = Field(0, ge=0, description="milliseconds")


class SlicerAttrs(_Attrs):
    """Slice data into ~average_size +/- size_variation byte writes, `delay` microseconds apart."""

    average_size: int = Field(..., ge=1, description="bytes")
    size_variation: int = Field(0, ge=0, description="bytes; smaller than average_size")
    delay: int = Field(0, ge=0, description="microseconds")

    @model_validator(mode="after")
    def _variation_below_average(self) -> SlicerAttrs:
        if self.size_variation >= self.average_size:
            raise ValueError("size_variation must be smaller than average_size")
        return self


class LimitDataAttrs(_Attrs):
    """Close the connection once `bytes` bytes went through the stream."""

    bytes: int = Field(0, ge=0, description="bytes")


class LossAttrs(_Attrs):
    """(Ours, UDP) Drop each datagram with `probability` (0..1). Not `toxicity`, which picks sessions."""

    probability: float = Field(..., ge=0.0, le=1.0, description="share of datagrams dropped")


class HttpErrorAttrs(_Attrs):
    """(Ours, TCP HTTP/1.1) Answer a `rate` share of requests with `status` + Retry-After instead of forwarding."""

    rate: float = Field(1.0, ge=0.0, le=1.0, description="share of requests answered by the proxy")
    status: int = Field(503, ge=400, le=599, description="HTTP status of the answer, e.g. 429 or 503")
    retry_after: int = Field(1, ge=0, description="seconds, sent as the Retry-After header")


ATTRIBUTES: dict[str, type[_Attrs]] = {
    "latency": LatencyAttrs,
    "bandwidth": BandwidthAttrs,
    "slow_close": SlowCloseAttrs,
    "timeout": TimeoutAttrs,
    "reset_peer": ResetPeerAttrs,
    "slicer": SlicerAttrs,
    "limit_data": LimitDataAttrs,
    "loss": LossAttrs,
    "http_error": HttpErrorAttrs,
}
#: Which toxics each protocol supports.
SUPPORTED: dict[str, tuple[str, ...]] = {
    "tcp": ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data", "http_error"),
    "udp": ("latency", "bandwidth", "timeout", "loss"),
}


@dataclass(frozen=True)
class ToxicSpec:
    """One toxic on one proxy, as the API shows it."""

    name: str
    type: str
    stream: Stream
    toxicity: float
    attributes: _Attrs

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": self.attributes.model_dump(),
        }


def _toxicity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise bad_request(f"toxicity: expected a number from 0 to 1, got {value!r}")
    return float(value)


def _attributes(kind: str, given: Any, base: dict[str, Any] | None = None) -> _Attrs:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise bad_request("attributes: expected a JSON object")
    try:
        return ATTRIBUTES[kind].model_validate({**(base or {}), **given})
    except ValidationError as exc:
        raise bad_request(first_error(exc, "attributes")) from None


def parse_new_toxic(body: Any, protocol: Protocol) -> ToxicSpec:
    """A toxic from a create request: defaults as upstream (downstream, toxicity 1, name type_stream)."""
    if not isinstance(body, dict):
        raise bad_request("expected a JSON object")
    stream = body.get("stream", "downstream")
    if not isinstance(stream, str) or stream.lower() not in ("upstream", "downstream"):
        raise ApiError("stream was invalid, can be either upstream or downstream", 400)
    stream = stream.lower()
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise missing_field("type")
    if kind not in ATTRIBUTES:
        raise ApiError(f"invalid toxic type: {kind!r} (known: {', '.join(ATTRIBUTES)})", 400)
    if kind not in SUPPORTED[protocol]:
        raise ApiError(
            f"invalid toxic type: {kind!r} does not apply to {protocol} proxies "
            f"({protocol} takes {', '.join(SUPPORTED[protocol])})",
            400,
        )
    name = body.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise bad_request(f"name: expected a string, got {name!r}")
    return ToxicSpec(
        name=name,
        type=kind,
        stream=cast(Stream, stream),
        toxicity=_toxicity(body.get("toxicity", 1.0)),
        attributes=_attributes(kind, body.get("attributes")),
    )


def parse_toxic_update(current: ToxicSpec, body: Any) -> ToxicSpec:
    """An update changes attributes (merged over the current ones) and toxicity; as upstream, nothing else."""
    if not isinstance(body, dict):
        raise bad_request("expected a JSON object")
    attrs = _attributes(current.type, body.get("attributes"), current.attributes.model_dump())
    toxicity = _toxicity(body["toxicity"]) if "toxicity" in body else current.toxicity
    return replace(current, attributes=attrs, toxicity=toxicity)
