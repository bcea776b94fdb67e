"""The chaos controller's HTTP API (aiohttp): faults, backends, OpenAPI; a token for mutations."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from chaos.catalog import FaultRequest, InvalidFault
from chaos.controller import Controller, TargetNotRunning
from chaos.wardens import ApplyFailed
from core.errors import first_problem
from core.http import authorized, json_error, service_app

CONTROLLER: web.AppKey[Controller] = web.AppKey("controller")


def _error(status: int, message: str) -> web.Response:
    return json_error(status, message, with_status=True)


@web.middleware
async def token_for_mutations(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD") and not authorized(request):
        return _error(401, "missing or wrong operator token (Authorization: Bearer <token>; WOBBLE_TOKEN)")
    result: web.StreamResponse = await handler(request)
    return result


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONTROLLER].snapshot())


async def add_fault(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "body must be a JSON object: {kind, target, duration_s, params}")
    try:
        req = FaultRequest.model_validate(body)
    except ValidationError as exc:
        return _error(400, first_problem(exc, top=""))
    try:
        active = await request.app[CONTROLLER].add(req)
    except InvalidFault as exc:
        return _error(400, str(exc))
    except TargetNotRunning as exc:
        return _error(409, str(exc))
    except ApplyFailed as exc:
        return _error(502, f"{req.kind} on {req.target} could not be applied (nothing left applied): {exc}")
    return web.json_response(active.to_dict(), status=201)


async def remove_fault(request: web.Request) -> web.Response:
    done = await request.app[CONTROLLER].remove(request.match_info["id"])
    if done is None:
        return _error(404, f"no active fault {request.match_info['id']!r}; `wobble fault list` shows them")
    return web.json_response(done)


async def clear(request: web.Request) -> web.Response:
    return web.json_response({"cleared": await request.app[CONTROLLER].clear()})


async def backends(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONTROLLER].backends)


async def healthz(request: web.Request) -> web.Response:
    ready = bool(request.app[CONTROLLER].backends)
    return web.json_response({"ok": ready}, status=200 if ready else 503)


def make_app(controller: Controller, token: str) -> web.Application:
    routes = [
        web.get("/v1/faults", list_faults),
        web.post("/v1/faults", add_fault),
        web.delete("/v1/faults", clear),
        web.delete("/v1/faults/{id}", remove_fault),
        web.get("/v1/backends", backends),
    ]
    app = service_app(routes, token=token, openapi=OPENAPI, health=healthz, middlewares=[token_for_mutations])
    app[CONTROLLER] = controller
    return app


_SEC: list[dict[str, list[str]]] = [{"token": []}]
_FAULT = {
    "type": "object",
    "required": ["id", "kind", "target", "params", "backend", "started_at", "ends_at"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string"},
        "family": {"type": "string"},
        "target": {"type": "string"},
        "services": {"type": "array", "items": {"type": "string"}},
        "params": {"type": "object"},
        "backend": {"type": "string"},
        "started_at": {"type": "number"},
        "ends_at": {"type": "number"},
        "remaining_s": {"type": "number"},
    },
}
_ERR = {
    "description": "error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error", "status"],
                "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
            }
        }
    },
}
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Wobble Lab chaos controller", "version": "1"},
    "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/v1/faults": {
            "get": {
                "summary": "Active faults",
                "responses": {
                    "200": {
                        "description": "list",
                        "content": {"application/json": {"schema": {"type": "array", "items": _FAULT}}},
                    }
                },
            },
            "post": {
                "summary": "Apply a fault; answers once it is live",
                "security": _SEC,
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["kind", "target", "duration_s"],
                                "properties": {
                                    "kind": {"type": "string"},
                                    "target": {"type": "string"},
                                    "duration_s": {"type": "number", "exclusiveMinimum": 0},
                                    "params": {"type": "object"},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "201": {"description": "live", "content": {"application/json": {"schema": _FAULT}}},
                    "400": _ERR,
                    "401": _ERR,
                    "409": _ERR,
                    "502": _ERR,
                },
            },
            "delete": {
                "summary": "Revert every fault",
                "security": _SEC,
                "responses": {"200": {"description": "reverted"}, "401": _ERR},
            },
        },
        "/v1/faults/{id}": {
            "delete": {
                "summary": "Revert one fault",
                "security": _SEC,
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "reverted"}, "401": _ERR, "404": _ERR},
            }
        },
        "/v1/backends": {
            "get": {
                "summary": "Which backend serves each fault kind on this machine",
                "responses": {"200": {"description": "kind -> backend"}},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Ready once the backends are probed",
                "responses": {"200": {"description": "ready"}, "503": _ERR},
            }
        },
    },
}
