"""The Toxiproxy HTTP API (aiohttp): upstream's endpoints, JSON shapes and status codes.

  GET  /proxies                 all proxies with their toxics, by name
  POST /proxies                 create a proxy: 201, 409 if the name exists, 400 on bad input
  POST /populate                create or replace a list of proxies: 201 {"proxies": [...]}
  GET  /proxies/{p}             one proxy with its toxics (404 if unknown)
  POST /proxies/{p}             update listen, upstream, enabled (PATCH too)
  DELETE /proxies/{p}           204
  GET  /proxies/{p}/toxics      the proxy's toxics
  POST /proxies/{p}/toxics      add a toxic: 200 with the toxic, 409 if its name exists
  GET  /proxies/{p}/toxics/{t}  one toxic
  POST /proxies/{p}/toxics/{t}  update its attributes and toxicity (PATCH too)
  DELETE /proxies/{p}/toxics/{t}  204
  POST /reset                   enable every proxy, remove every toxic: 204
  GET  /version                 {"version": "..."}

Every error, ours or aiohttp's (unknown path, wrong method), is JSON {"error": "...", "status": N}.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from chaos.toxiproxy.collection import ProxyCollection
from chaos.toxiproxy.model import API_VERSION, ApiError, bad_request, parse_new_toxic

log = logging.getLogger("chaos.toxiproxy")

PROXIES: web.AppKey[ProxyCollection] = web.AppKey("proxies", ProxyCollection)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason.lower())
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, f"internal error: {exc}")
    return response


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise bad_request("empty body")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def _proxies(request: web.Request) -> ProxyCollection:
    return request.app[PROXIES]


async def proxy_index(request: web.Request) -> web.Response:
    return web.json_response({name: p.as_json() for name, p in _proxies(request).proxies.items()})


async def proxy_create(request: web.Request) -> web.Response:
    proxy = await _proxies(request).create(await _body(request))
    return web.json_response(proxy.as_json(), status=201)


async def populate(request: web.Request) -> web.Response:
    proxies, err = await _proxies(request).populate(await _body(request))
    body: dict[str, Any] = {"proxies": [p.as_json() for p in proxies]}
    if err is not None:
        return web.json_response({**err.as_json(), **body}, status=err.status)
    return web.json_response(body, status=201)


async def proxy_show(request: web.Request) -> web.Response:
    return web.json_response(_proxies(request).get(request.match_info["proxy"]).as_json())


async def proxy_update(request: web.Request) -> web.Response:
    proxy = await _proxies(request).update(request.match_info["proxy"], await _body(request))
    return web.json_response(proxy.as_json())


async def proxy_delete(request: web.Request) -> web.Response:
    await _proxies(request).delete(request.match_info["proxy"])
    return web.Response(status=204)


async def toxic_index(request: web.Request) -> web.Response:
    proxy = _proxies(request).get(request.match_info["proxy"])
    return web.json_response([t.as_json() for t in proxy.toxics])


async def toxic_create(request: web.Request) -> web.Response:
    proxy = _proxies(request).get(request.match_info["proxy"])
    toxic = proxy.add_toxic(parse_new_toxic(await _body(request), proxy.protocol))
    return web.json_response(toxic.as_json())


async def toxic_show(request: web.Request) -> web.Response:
    proxy = _proxies(request).get(request.match_info["proxy"])
    return web.json_response(proxy.toxic(request.match_info["toxic"]).as_json())


async def toxic_update(request: web.Request) -> web.Response:
    proxy = _proxies(request).get(request.match_info["proxy"])
    toxic = proxy.update_toxic(request.match_info["toxic"], await _body(request))
    return web.json_response(toxic.as_json())


async def toxic_delete(request: web.Request) -> web.Response:
    _proxies(request).get(request.match_info["proxy"]).remove_toxic(request.match_info["toxic"])
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    await _proxies(request).reset()
    return web.Response(status=204)


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": API_VERSION})


def make_app(proxies: ProxyCollection) -> web.Application:
    app = web.Application(middlewares=[json_errors])
    app[PROXIES] = proxies
    r = app.router
    r.add_post("/reset", reset)
    r.add_get("/proxies", proxy_index)
    r.add_post("/proxies", proxy_create)
    r.add_post("/populate", populate)
    r.add_get("/proxies/{proxy}", proxy_show)
    r.add_post("/proxies/{proxy}", proxy_update)
    r.add_patch("/proxies/{proxy}", proxy_update)
    r.add_delete("/proxies/{proxy}", proxy_delete)
    r.add_get("/proxies/{proxy}/toxics", toxic_index)
    r.add_post("/proxies/{proxy}/toxics", toxic_create)
    r.add_get("/proxies/{proxy}/toxics/{toxic}", toxic_show)
    r.add_post("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    r.add_patch("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    r.add_delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete)
    r.add_get("/version", version)
    return app


class Server:
    """The API on host:port plus the proxies it manages; `port` is the bound one (0 picks)."""

    def __init__(self, proxies: ProxyCollection | None = None) -> None:
        self.proxies = proxies or ProxyCollection()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self.runner = web.AppRunner(make_app(self.proxies), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        self.port = int(self.runner.addresses[0][1])
        log.info("Toxiproxy API listening on %s:%s", host, self.port)

    async def close(self) -> None:
        """Listeners first (no new API calls), then every proxy and its connections."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await self.proxies.close()
