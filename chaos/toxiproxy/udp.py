"""The UDP proxy (our extension; upstream Toxiproxy is TCP-only).

One listening socket; each client address gets a session: its own socket connected to the
upstream, so replies find their way back to that client. Toxics act per datagram: latency (+/-
jitter, so datagrams may be reordered, as on a real path), bandwidth (KB/s, with a 1 s queue),
timeout (drops every datagram of its stream while present) and loss (drops each datagram with
`probability`). `toxicity` picks sessions, as it picks connections on TCP. A session idle for
SESSION_IDLE_S is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from chaos.toxiproxy import toxics as tx
from chaos.toxiproxy.model import Protocol, bind_error, split_hostport
from chaos.toxiproxy.proxy import ProxyBase

log = logging.getLogger("chaos.toxiproxy")

SESSION_IDLE_S = 60.0
MAX_SESSIONS = 4096
MAX_PENDING = 1024  # datagrams held for a session while its upstream socket is being set up
Addr = tuple[Any, ...]


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, proxy: UdpProxy) -> None:
        self.proxy = proxy

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.proxy.from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("proxy %s: %s", self.proxy.name, exc)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, session: UdpSession) -> None:
        self.session = session

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.session.forward("downstream", data)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable: UDP shrugs
        log.debug("proxy %s: upstream %s", self.session.proxy.name, exc)


class UdpProxy(ProxyBase):
    protocol: Protocol = "udp"

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        super().__init__(name, listen, upstream)
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[Addr, UdpSession] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.transport is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Listener(self), local_addr=self._bind_address())
        except OSError as exc:
            raise bind_error(self.listen, exc) from None
        self.transport = transport
        self._bound(transport.get_extra_info("sockname"))
        self._reaper = asyncio.create_task(self._reap())
        self.enabled = True
        log.info("proxy %s: listening on udp %s -> %s", self.name, self.listen, self.upstream)

    async def stop(self) -> None:
        self.enabled = False
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()
        log.info("proxy %s: down", self.name)

    def _toxics_changed(self) -> None:
        for session in self.sessions.values():
            session.sync()

    def from_client(self, data: bytes, addr: Addr) -> None:
        session = self.sessions.get(addr)
        if session is None:
            if len(self.sessions) >= MAX_SESSIONS:
                return
            session = self.sessions[addr] = UdpSession(self, addr)
        session.forward("upstream", data)

    def to_client(self, data: bytes, addr: Addr) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(10.0, SESSION_IDLE_S))
            for addr, session in list(self.sessions.items()):
                if loop.time() - session.last_seen > SESSION_IDLE_S:
                    session.close()
                    del self.sessions[addr]


class UdpSession:
    """One client address: its socket to the upstream and its toxic runtimes."""

    def __init__(self, proxy: UdpProxy, client: Addr) -> None:
        self.proxy = proxy
        self.client = client
        loop = asyncio.get_running_loop()
        self.last_seen = loop.time()
        self.runtimes: dict[str, tx.Runtime] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []
        self.closed = False
        self.sync()
        self._connecting = asyncio.create_task(self._connect())

    def sync(self) -> None:
        tx.sync_runtimes(self.runtimes, self.proxy.toxics)

    async def _connect(self) -> None:
        host, port = split_hostport(self.proxy.upstream, "upstream", listen=False)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Upstream(self), remote_addr=(host, port))
        except OSError as exc:
            log.warning("proxy %s: upstream %s unreachable: %s", self.proxy.name, self.proxy.upstream, exc)
            self.pending.clear()
            return
        if self.closed:
            transport.close()
            return
        self.transport = transport
        for data in self.pending:
            transport.sendto(data)
        self.pending.clear()

    def forward(self, stream: str, data: bytes) -> None:
        """Run one datagram through the stream's toxics and send it when (if) it comes out."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if stream == "upstream":
            self.last_seen = now
        t = now
        for spec in self.proxy.toxics:
            rt = self.runtimes.get(spec.name)
            if rt is None or not rt.active or spec.stream != stream:
                continue
            leaves = tx.udp_datagram(rt, len(data), t, now)
            if leaves is None:
                return
            t = leaves
        send = self._send_up if stream == "upstream" else self._send_down
        if t <= now:
            send(data)
        else:
            loop.call_at(t, send, data)

    def _send_up(self, data: bytes) -> None:
        if self.closed:
            return
        if self.transport is None:
            if len(self.pending) < MAX_PENDING:
                self.pending.append(data)
        else:
            self.transport.sendto(data)

    def _send_down(self, data: bytes) -> None:
        if not self.closed:
            self.proxy.to_client(data, self.client)

    def close(self) -> None:
        self.closed = True
        for rt in self.runtimes.values():
            rt.stop()
        self._connecting.cancel()
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()
