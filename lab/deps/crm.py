"""CRM (`python -m lab.deps.crm`; env PORT default 8091): the customer card of a screen pop.

    GET /v1/screenpop/{caller} -> 200 {"caller", "name", "tier", "open_tickets", "last_contact"}
    GET /healthz               -> 200 "ok"
    GET /metrics               -> wobble_crm_requests_total{endpoint, code},
                                  wobble_crm_request_latency_seconds{endpoint}

The card is a pure function of the caller id (`card_for`): the same caller always gets the same
card, in any CRM replica, so a card shown from an agent's cache can be checked against the source.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sys
import time
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from core.http import Handler, healthz_text, json_error, run_app, service_app
from core.settings import CrmSettings

DEFAULT_PORT = 8091
FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "Leslie",
)
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Ritchie")
TIERS = ("standard", "standard", "standard", "gold", "gold", "platinum")
EPOCH = dt.date(2024, 1, 1)
MAX_CALLER = 128


def card_for(caller: str) -> dict[str, Any]:
    """The deterministic customer card of one caller id."""
    h = hashlib.sha256(caller.encode()).digest()
    return {
        "caller": caller,
        "name": f"{FIRST[h[0] % len(FIRST)]} {LAST[h[1] % len(LAST)]}",
        "tier": TIERS[h[2] % len(TIERS)],
        "open_tickets": h[3] % 5,
        "last_contact": (EPOCH + dt.timedelta(days=int.from_bytes(h[4:6], "big") % 730)).isoformat(),
    }


class CrmMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "wobble_crm_requests_total", "Requests by endpoint and status", ["endpoint", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "wobble_crm_request_latency_seconds",
            "Time to answer",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )


METRICS: web.AppKey[CrmMetrics] = web.AppKey("crm_metrics", CrmMetrics)


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    info = request.match_info.route.resource
    endpoint = info.canonical if info is not None else "unmatched"
    m = request.app[METRICS]
    t0 = time.perf_counter()
    code = 500
    try:
        resp = await handler(request)
        code = resp.status
        return resp
    except web.HTTPException as exc:
        code = exc.status
        raise
    finally:
        m.requests.labels(endpoint, str(code)).inc()
        m.latency.labels(endpoint).observe(time.perf_counter() - t0)


async def screenpop(request: web.Request) -> web.Response:
    caller = request.match_info["caller"]
    if not caller or len(caller) > MAX_CALLER:
        return json_error(400, f"caller id must be 1-{MAX_CALLER} characters")
    return web.json_response(card_for(caller))


def make_app() -> web.Application:
    metrics = CrmMetrics()
    routes = [web.get("/v1/screenpop/{caller}", screenpop)]
    app = service_app(routes, metrics=metrics.registry, health=healthz_text, middlewares=[measure])
    app[METRICS] = metrics
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    run_app(make_app(), CrmSettings.from_env().port)


if __name__ == "__main__":
    main()
