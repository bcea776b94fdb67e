"""The backbone's WAN profile: latency and a bandwidth cap as toxics on the replication proxies
(the lab's Toxiproxy-API server), so replication lag is real on one machine."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from lab.records.config import RecordsConfig, WanProfile
from lab.records.errors import OperationFailed

PREFIX = "wan-"


def _server(cfg: RecordsConfig) -> Any:
    from toxiproxy import Toxiproxy  # synchronous client; one server per process (class state)

    url = urlsplit(cfg.toxiproxy_api)
    server = Toxiproxy()
    server.update_api_consumer(url.hostname or "127.0.0.1", url.port or 8474)
    return server


def proxy_names(cfg: RecordsConfig) -> list[str]:
    return sorted({n for r in cfg.regions.values() for n in (r.repl_proxy, r.copy_proxy)})


def toxics_for(profile: WanProfile) -> list[dict[str, Any]]:
    """Pure: the toxics of a profile. Latency both ways (a sync commit waits a round trip), the
    bandwidth cap on the WAL's direction (server -> client: the standby is the client)."""
    out: list[dict[str, Any]] = []
    if profile.latency_ms or profile.jitter_ms:
        for stream in ("downstream", "upstream"):
            attrs = {"latency": profile.latency_ms, "jitter": profile.jitter_ms}
            out.append({"name": f"{PREFIX}latency-{stream}", "type": "latency", "stream": stream, "attributes": attrs})
    if profile.rate_kbs:
        out.append(
            {
                "name": f"{PREFIX}bandwidth",
                "type": "bandwidth",
                "stream": "downstream",
                "attributes": {"rate": profile.rate_kbs},
            }
        )
    return out


def _proxies(cfg: RecordsConfig) -> list[Any]:
    try:
        server = _server(cfg)
        found = [server.get_proxy(name) for name in proxy_names(cfg)]
    except Exception as exc:  # requests' errors: the server is not there
        raise OperationFailed(f"toxiproxy at {cfg.toxiproxy_api} does not answer ({exc}); is the lab up?") from exc
    missing = [n for n, p in zip(proxy_names(cfg), found, strict=True) if p is None]
    if missing:
        raise OperationFailed(f"toxiproxy has no proxy {', '.join(missing)}; check chaos/proxies.json")
    return found


def proxy(cfg: RecordsConfig, name: str) -> Any:
    """One of the replication proxies, by name (toxiproxy-python's Proxy)."""
    return {p.name: p for p in _proxies(cfg)}[name]


def clear(cfg: RecordsConfig) -> None:
    for proxy in _proxies(cfg):
        for name in proxy.toxics():
            if name.startswith(PREFIX):
                proxy.destroy_toxic(name)


def apply(cfg: RecordsConfig, profile: WanProfile) -> list[str]:
    """Replace the WAN toxics on every replication proxy; returns the proxies changed."""
    clear(cfg)
    proxies = _proxies(cfg)
    for proxy in proxies:
        for toxic in toxics_for(profile):
            proxy.add_toxic(**toxic)
    return [p.name for p in proxies]


def current(cfg: RecordsConfig) -> dict[str, dict[str, Any]]:
    return {
        p.name: {n: dict(t.attributes) for n, t in p.toxics().items() if n.startswith(PREFIX)} for p in _proxies(cfg)
    }
