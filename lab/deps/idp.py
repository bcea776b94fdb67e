"""Identity provider (`python -m lab.deps.idp`; env PORT default 8090).

    POST /v1/login   {"agent": "a-001", "secret": "..."} -> 200 {"token", "expires_in"}
                     any agent whose secret equals env IDP_SECRET (default "wobble"); else 401
    GET  /v1/verify  Authorization: Bearer <token> -> 200 {"agent", "expires_in"} | 401
    GET  /healthz    200 "ok"
    GET  /metrics    wobble_idp_logins_total{result}, wobble_idp_login_latency_seconds,
                     wobble_idp_verifies_total{result}

Tokens live in memory for env IDP_TOKEN_TTL seconds (default 3600): a restarted IdP forgets them,
as a crashed real one would forget its sessions.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from core.http import bearer_token, healthz_text, json_error, run_app, service_app
from core.settings import IdpSettings

DEFAULT_PORT = 8090
DEFAULT_SECRET = "wobble"
DEFAULT_TTL_S = 3600


@dataclass
class IdpState:
    secret: str
    ttl_s: int
    clock: Callable[[], float] = time.monotonic
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (agent, expires at)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.logins = Counter("wobble_idp_logins_total", "Login attempts by result", ["result"], registry=self.registry)
        self.login_latency = Histogram(
            "wobble_idp_login_latency_seconds",
            "Time to answer a login",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.verifies = Counter(
            "wobble_idp_verifies_total", "Verifications by result", ["result"], registry=self.registry
        )

    def issue(self, agent: str) -> str:
        now = self.clock()
        for tok in [t for t, (_, exp) in self.tokens.items() if exp <= now]:
            del self.tokens[tok]
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (agent, now + self.ttl_s)
        return token

    def lookup(self, token: str) -> tuple[str, float] | None:
        """(agent, seconds left) of a live token; None if unknown or expired."""
        entry = self.tokens.get(token)
        if entry is None:
            return None
        left = entry[1] - self.clock()
        return (entry[0], left) if left > 0 else None


STATE: web.AppKey[IdpState] = web.AppKey("idp", IdpState)


async def login(request: web.Request) -> web.Response:
    st = request.app[STATE]
    t0 = time.perf_counter()
    try:
        try:
            body = await request.json()
        except ValueError:
            body = None
        agent = body.get("agent") if isinstance(body, dict) else None
        secret = body.get("secret") if isinstance(body, dict) else None
        if not isinstance(agent, str) or not agent or not isinstance(secret, str):
            st.logins.labels("bad_request").inc()
            return json_error(400, 'body must be {"agent": "<name>", "secret": "<secret>"}')
        if not hmac.compare_digest(secret.encode(), st.secret.encode()):
            st.logins.labels("denied").inc()
            return json_error(401, f"wrong secret for agent {agent!r}")
        st.logins.labels("ok").inc()
        return web.json_response({"token": st.issue(agent), "expires_in": st.ttl_s, "agent": agent})
    finally:
        st.login_latency.observe(time.perf_counter() - t0)


async def verify(request: web.Request) -> web.Response:
    st = request.app[STATE]
    token = bearer_token(request.headers.get("Authorization", ""))
    found = st.lookup(token) if token else None
    if found is None:
        st.verifies.labels("denied").inc()
        return json_error(401, "missing, unknown or expired token (Authorization: Bearer <token>)")
    st.verifies.labels("ok").inc()
    return web.json_response({"agent": found[0], "expires_in": int(found[1])})


def make_app(
    secret: str = DEFAULT_SECRET, ttl_s: int = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic
) -> web.Application:
    state = IdpState(secret=secret, ttl_s=ttl_s, clock=clock)
    routes = [web.post("/v1/login", login), web.get("/v1/verify", verify)]
    app = service_app(routes, metrics=state.registry, health=healthz_text)
    app[STATE] = state
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = IdpSettings.from_env()
    run_app(make_app(settings.secret, settings.token_ttl_s), settings.port)


if __name__ == "__main__":
    main()
