"""The server's proxies by name: create, populate (and the -config file), update, delete, reset."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from chaos.toxiproxy.model import (
    ApiError,
    ProxyInput,
    bad_request,
    missing_field,
    parse_proxy_input,
    proxy_exists,
    proxy_not_found,
    split_hostport,
)
from chaos.toxiproxy.proxy import ProxyBase, TcpProxy
from chaos.toxiproxy.udp import UdpProxy

log = logging.getLogger("chaos.toxiproxy")

DEFAULT_LISTEN = "127.0.0.1:0"


def _checked(inp: ProxyInput, where: str = "") -> tuple[str, str, str, str, bool]:
    """(name, listen, upstream, protocol, enabled) of a new proxy, or the error naming the field."""
    at = f" at proxy {where}" if where else ""
    if not inp.name:
        raise missing_field(f"name{at}")
    if not inp.upstream:
        raise missing_field(f"upstream{at}")
    listen = inp.listen or DEFAULT_LISTEN
    split_hostport(listen, f"listen{at}", listen=True)
    split_hostport(inp.upstream, f"upstream{at}", listen=False)
    enabled = True if inp.enabled is None else inp.enabled
    return inp.name, listen, inp.upstream, inp.protocol or "tcp", enabled


def _new(name: str, listen: str, upstream: str, protocol: str) -> ProxyBase:
    return UdpProxy(name, listen, upstream) if protocol == "udp" else TcpProxy(name, listen, upstream)


class ProxyCollection:
    def __init__(self) -> None:
        self.proxies: dict[str, ProxyBase] = {}
        self.lock = asyncio.Lock()

    def get(self, name: str) -> ProxyBase:
        try:
            return self.proxies[name]
        except KeyError:
            raise proxy_not_found(name) from None

    async def create(self, body: Any) -> ProxyBase:
        name, listen, upstream, protocol, enabled = _checked(parse_proxy_input(body))
        async with self.lock:
            if name in self.proxies:
                raise proxy_exists(name)
            proxy = _new(name, listen, upstream, protocol)
            if enabled:
                await proxy.start()
            self.proxies[name] = proxy
        log.info("proxy %s created (%s)", name, proxy.as_json())
        return proxy

    async def populate(self, body: Any) -> tuple[list[ProxyBase], ApiError | None]:
        """Create or replace a list of proxies; a proxy whose fields match is left as it is.

        Everything is checked before anything changes. If a proxy then fails to start, the ones
        done so far stay and are returned with the error (as upstream).
        """
        if not isinstance(body, list):
            raise bad_request("expected a JSON array of proxies")
        wanted = []
        for i, item in enumerate(body, 1):
            wanted.append(_checked(parse_proxy_input(item, f"[{i}]"), str(i)))
        names = [w[0] for w in wanted]
        for name in names:
            if names.count(name) > 1:
                raise bad_request(f"name: {name!r} appears more than once")
        done: list[ProxyBase] = []
        async with self.lock:
            for name, listen, upstream, protocol, enabled in wanted:
                existing = self.proxies.get(name)
                if existing is not None and existing.same_as(listen, upstream, protocol):
                    done.append(existing)
                    continue
                if existing is not None:
                    await existing.stop()
                    del self.proxies[name]
                proxy = _new(name, listen, upstream, protocol)
                try:
                    if enabled:
                        await proxy.start()
                except ApiError as exc:
                    return done, exc
                self.proxies[name] = proxy
                done.append(proxy)
        log.info("populated %s", ", ".join(names) or "nothing")
        return done, None

    async def load_config(self, path: Path) -> list[ProxyBase]:
        """The -config file: a JSON array of proxies, exactly as POST /populate takes."""
        try:
            body = json.loads(path.read_text())
        except ValueError as exc:
            raise bad_request(f"{path}: {exc}") from None
        proxies, err = await self.populate(body)
        if err is not None:
            raise err
        return proxies

    async def update(self, name: str, body: Any) -> ProxyBase:
        """As upstream: a new listen or upstream restarts the proxy; `enabled` takes it up or down."""
        inp = parse_proxy_input(body)
        async with self.lock:
            proxy = self.get(name)
            if inp.protocol is not None and inp.protocol != proxy.protocol:
                raise bad_request("protocol: a proxy's protocol cannot change; delete it and create it again")
            listen = inp.listen or proxy.listen
            upstream = inp.upstream or proxy.upstream
            split_hostport(listen, "listen", listen=True)
            split_hostport(upstream, "upstream", listen=False)
            enabled = proxy.enabled if inp.enabled is None else inp.enabled
            if listen != proxy.listen or upstream != proxy.upstream:
                await proxy.stop()
                proxy.requested_listen = proxy.listen = listen
                proxy.upstream = upstream
            if enabled and not proxy.enabled:
                await proxy.start()
            elif not enabled and proxy.enabled:
                await proxy.stop()
        log.info("proxy %s updated (%s)", name, proxy.as_json())
        return proxy

    async def delete(self, name: str) -> None:
        async with self.lock:
            proxy = self.get(name)
            await proxy.stop()
            del self.proxies[name]
        log.info("proxy %s deleted", name)

    async def reset(self) -> None:
        """Every proxy enabled, every toxic removed."""
        async with self.lock:
            for proxy in self.proxies.values():
                if not proxy.enabled:
                    await proxy.start()
                proxy.reset_toxics()
        log.info("reset: all proxies enabled, all toxics removed")

    async def close(self) -> None:
        async with self.lock:
            for proxy in self.proxies.values():
                await proxy.stop()
