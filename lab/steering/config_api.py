"""The control plane: serves steering's configuration (`python -m lab.steering.config_api`).

GET /v1/config returns it; PUT /v1/config (token) validates and replaces it. Steering polls this
and keeps its last known good configuration whenever it is down or slow.
"""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from core.errors import BadInput
from core.http import authorized, json_error, run_app, service_app
from core.settings import ConfigApiSettings
from lab.steering import config as configmod

CONFIG: web.AppKey[configmod.SteeringConfig] = web.AppKey("config")


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONFIG].model_dump())


async def put_config(request: web.Request) -> web.Response:
    if not authorized(request):
        return json_error(401, "missing or wrong token")
    try:
        new = configmod.ensure_config_is_valid(await request.json(), "request body")
    except (ValueError, BadInput) as exc:
        return json_error(400, str(exc))
    request.app[CONFIG] = new
    return web.json_response(new.model_dump())


def make_app(cfg: configmod.SteeringConfig, token: str) -> web.Application:
    app = service_app([web.get("/v1/config", get_config), web.put("/v1/config", put_config)], token=token)
    app[CONFIG] = cfg
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = ConfigApiSettings.from_env()
    path = settings.config_file or configmod.BUNDLED
    try:
        cfg = configmod.load(path)
    except (BadInput, OSError) as exc:
        raise SystemExit(f"config-api: {exc}") from None
    run_app(make_app(cfg, settings.token), settings.port)


if __name__ == "__main__":
    main()
