"""Steering's HTTP face (aiohttp): route, state, operator actions, evidence, OpenAPI, metrics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from core.http import authorized, json_object, service_app
from core.http import json_error as _json_error
from lab.steering.dnsfault import parse_fault

if TYPE_CHECKING:
    from lab.steering.service import Steering

STEERING: web.AppKey[Steering] = web.AppKey("steering")


async def route(request: web.Request) -> web.Response:
    return web.json_response(request.app[STEERING].route())


async def state(request: web.Request) -> web.Response:
    return web.json_response(request.app[STEERING].state())


async def failover(request: web.Request) -> web.Response:
    if not authorized(request):
        return _json_error(401, "missing or wrong operator token (Authorization: Bearer <token>)")
    steering = request.app[STEERING]
    body = await json_object(request)
    who = str(body.get("who") or "operator")
    now = time.time()
    if body.get("approve"):
        decisions = steering.policy.approve(now, who)
        if not decisions:
            return _json_error(409, "no failover is waiting for approval")
    elif "to" in body:
        to = str(body["to"])
        if to not in [r.name for r in steering.cfg.regions]:
            names = ", ".join(r.name for r in steering.cfg.regions)
            return _json_error(400, f"unknown region {to!r}; choose one of: {names}")
        decisions = steering.policy.failover(now, to, who)
    elif body.get("release"):
        decisions = steering.policy.release(now, who)
    else:
        return _json_error(400, 'give {"to": "<region>"}, {"approve": true} or {"release": true}')
    steering.record(decisions)
    return web.json_response({"decisions": [d.to_dict() for d in decisions], "state": steering.state()})


async def mode(request: web.Request) -> web.Response:
    if not authorized(request):
        return _json_error(401, "missing or wrong operator token (Authorization: Bearer <token>)")
    steering = request.app[STEERING]
    body = await json_object(request)
    new = str(body.get("mode", ""))
    if new not in ("auto", "confirm", "manual"):
        return _json_error(400, f"mode must be auto, confirm or manual, got {new!r}")
    decisions = steering.policy.set_mode(time.time(), new, str(body.get("who") or "operator"))
    steering.record(decisions)
    return web.json_response({"mode": new, "state": steering.state()})


async def probes(request: web.Request) -> web.Response:
    """Reports from the carrier vantage point (a probe process on the callers' network)."""
    steering = request.app[STEERING]
    body = await json_object(request)
    vantage = str(body.get("vantage") or "carrier")
    names = {r.name for r in steering.cfg.regions}
    count = 0
    for item in body.get("results") or []:
        if not isinstance(item, dict) or item.get("region") not in names:
            continue
        latency = item.get("latency_ms")
        t = float(item.get("t") or time.time())
        steering.on_probe(str(item["region"]), vantage, bool(item.get("ok")), latency, t)
        count += 1
    return web.json_response({"accepted": count})


async def evidence(request: web.Request) -> web.Response:
    """Passive evidence: outcomes of real calls through a region, reported by callers."""
    steering = request.app[STEERING]
    body = await json_object(request)
    region = body.get("region")
    if region not in {r.name for r in steering.cfg.regions}:
        return _json_error(400, f"unknown region {region!r}")
    # `t`: when the outcome happened (a call's answer time), which may be well before the report
    now = time.time()
    try:
        t = min(now, float(body.get("t") or now))
    except (TypeError, ValueError):
        return _json_error(400, "t must be a UNIX time in seconds")
    steering.on_call(str(region), bool(body.get("ok")), str(body.get("source") or "caller"), t)
    return web.json_response({"accepted": 1})


async def dns_chaos(request: web.Request) -> web.Response:
    """The chaos warden's DNS fault switch (leased: lapses `ttl_s` after the last POST)."""
    if not authorized(request):
        return _json_error(401, "missing or wrong operator token (Authorization: Bearer <token>)")
    steering = request.app[STEERING]
    if request.method == "DELETE":
        steering.dns_chaos.clear()
        return web.json_response({"fault": None})
    try:
        fault = parse_fault(await json_object(request), time.time())
    except ValueError as exc:
        return _json_error(400, str(exc))
    steering.dns_chaos.set(fault, steering.dns_view())
    return web.json_response(
        {
            "fault": {
                "id": fault.id,
                "mode": fault.mode,
                "pct": fault.pct,
                "ms": fault.ms,
                "expires_at": fault.expires_at,
            }
        }
    )


def make_app(steering: Steering, token: str) -> web.Application:
    routes = [
        web.get("/v1/route", route),
        web.get("/v1/state", state),
        web.post("/v1/failover", failover),
        web.post("/v1/mode", mode),
        web.post("/v1/probes", probes),
        web.post("/v1/evidence", evidence),
        web.post("/v1/chaos/dns", dns_chaos),
        web.delete("/v1/chaos/dns", dns_chaos),
    ]
    app = service_app(routes, token=token, openapi=OPENAPI, metrics=steering.metrics.registry)
    app[STEERING] = steering
    return app


_TOKEN_SEC: list[dict[str, list[str]]] = [{"token": []}]
_OBJ = {"type": "object"}
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Wobble Lab steering", "version": "1"},
    "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/v1/route": {
            "get": {
                "summary": "Region, SBC address and TTL for the next call",
                "responses": {
                    "200": {
                        "description": "route",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["region", "sbc", "port", "ttl"],
                                    "properties": {
                                        "region": {"type": "string"},
                                        "sbc": {"type": "string"},
                                        "port": {"type": "integer"},
                                        "ttl": {"type": "integer"},
                                        "uri": {"type": "string"},
                                        "state": {"type": "string"},
                                    },
                                }
                            }
                        },
                    }
                },
            }
        },
        "/v1/state": {
            "get": {
                "summary": "Mode, configuration status and every region's state",
                "responses": {
                    "200": {
                        "description": "state",
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "required": ["mode", "config", "regions"]}
                            }
                        },
                    }
                },
            }
        },
        "/v1/failover": {
            "post": {
                "summary": "Operator: move traffic ({to}), approve a proposal ({approve}) or "
                "hand routing back to the policy ({release})",
                "security": _TOKEN_SEC,
                "requestBody": {"content": {"application/json": {"schema": _OBJ}}},
                "responses": {
                    "200": {"description": "done"},
                    "400": {"description": "bad body"},
                    "401": {"description": "missing or wrong token"},
                    "409": {"description": "nothing to approve"},
                },
            }
        },
        "/v1/mode": {
            "post": {
                "summary": "Operator: set mode auto | confirm | manual",
                "security": _TOKEN_SEC,
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["mode"],
                                "properties": {"mode": {"enum": ["auto", "confirm", "manual"]}},
                            }
                        }
                    }
                },
                "responses": {
                    "200": {"description": "done"},
                    "400": {"description": "bad mode"},
                    "401": {"description": "missing or wrong token"},
                },
            }
        },
        "/v1/probes": {
            "post": {
                "summary": "Probe results from another vantage point",
                "responses": {"200": {"description": "accepted"}},
            }
        },
        "/v1/evidence": {
            "post": {
                "summary": "Outcome of a real call through a region",
                "responses": {"200": {"description": "accepted"}},
            }
        },
        "/v1/chaos/dns": {
            "post": {
                "summary": "Chaos: set the DNS fault (slow, servfail, drop, stale); lapses after ttl_s unless renewed",
                "security": _TOKEN_SEC,
                "responses": {
                    "200": {"description": "set"},
                    "400": {"description": "bad body"},
                    "401": {"description": "missing or wrong token"},
                },
            },
            "delete": {
                "summary": "Chaos: clear the DNS fault",
                "security": _TOKEN_SEC,
                "responses": {"200": {"description": "cleared"}},
            },
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
    },
}
