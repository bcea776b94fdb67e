"""The lab's HTTP services' common pieces (aiohttp): the operator token, JSON errors and bodies,
health, metrics and OpenAPI handlers, building a service's app and serving it.

One implementation for every service that has an HTTP face: steering and its config API
(`lab.steering`), the chaos controller (`chaos.api`) and the dependencies (`lab.deps`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The operator token an app checks mutations against (`authorized`).
TOKEN: web.AppKey[str] = web.AppKey("token", str)


def bearer_token(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header; empty for any other scheme."""
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def authorized(request: web.Request) -> bool:
    """The request carries the app's operator token (compared in constant time)."""
    given = bearer_token(request.headers.get("Authorization", ""))
    return bool(given) and hmac.compare_digest(given, request.app[TOKEN])


def json_error(status: int, message: str, *, with_status: bool = False) -> web.Response:
    """`{"error": message}` (plus `"status"` when `with_status`) with that HTTP status."""
    body: dict[str, Any] = {"error": message, "status": status} if with_status else {"error": message}
    return web.json_response(body, status=status)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object; a 400 (`{"error": ...}`) for anything else."""
    try:
        data = await request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return data


async def healthz(request: web.Request) -> web.Response:
    """`{"ok": true}`: the process answers."""
    return web.json_response({"ok": True})


async def healthz_text(request: web.Request) -> web.Response:
    """`ok` as plain text: the process answers."""
    return web.Response(text="ok\n")


def metrics_response(registry: CollectorRegistry) -> web.Response:
    """A Prometheus scrape of `registry`."""
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """A handler serving a Prometheus scrape of `registry`."""

    async def metrics(request: web.Request) -> web.Response:
        return metrics_response(registry)

    return metrics


def openapi_handler(document: dict[str, Any]) -> Handler:
    """A handler serving an OpenAPI document."""

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    return openapi


def service_app(
    routes: Iterable[web.RouteDef],
    *,
    token: str | None = None,
    openapi: dict[str, Any] | None = None,
    metrics: CollectorRegistry | None = None,
    health: Handler = healthz,
    middlewares: Iterable[Middleware] = (),
) -> web.Application:
    """A service's app: its own `routes`, then the common ones, `GET /v1/openapi.json` (when
    `openapi`), `GET /metrics` (a scrape of `metrics`, when given) and `GET /healthz` (`health`).
    `token`: the operator token `authorized` checks mutations against."""
    app = web.Application(middlewares=middlewares)
    if token is not None:
        app[TOKEN] = token
    app.add_routes(routes)
    if openapi is not None:
        app.router.add_get("/v1/openapi.json", openapi_handler(openapi))
    if metrics is not None:
        app.router.add_get("/metrics", metrics_handler(metrics))
    app.router.add_get("/healthz", health)
    return app


def run_app(app: web.Application, port: int) -> None:
    """Serve `app` on every address at `port` until stopped; no access log, no banner."""
    web.run_app(app, port=port, access_log=None, print=None)
