"""A proxy (what every protocol shares: fields, toxics, enable/disable) and the TCP proxy itself.

A TCP connection is two streams: upstream (client -> server) and downstream (server -> client).
Each has a reader task that timestamps chunks into a bounded queue (backpressure: a full queue
stops reading the socket) and a pump task that runs each chunk through the stream's toxics and
writes it out, so a latency toxic delays every chunk by its latency without adding them up.
Closes are passed on per stream (half-close), after slow_close's delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Any

from chaos.toxiproxy import toxics as tx
from chaos.toxiproxy.model import (
    Protocol,
    ToxicSpec,
    bind_error,
    join_hostport,
    parse_toxic_update,
    split_hostport,
    toxic_exists,
    toxic_not_found,
)

log = logging.getLogger("chaos.toxiproxy")

READ_SIZE = 32 * 1024
QUEUE_CHUNKS = 64
CONNECT_TIMEOUT_S = 5.0


class ProxyBase:
    """A named proxy: its JSON fields, its toxics, and listening on or off."""

    protocol: Protocol = "tcp"

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.requested_listen = listen  # as given; `listen` becomes the bound address
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: list[ToxicSpec] = []

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "protocol": self.protocol,
            "toxics": [t.as_json() for t in self.toxics],
        }

    def same_as(self, listen: str, upstream: str, protocol: str) -> bool:
        """Populate keeps a proxy whose addresses (as given, or as bound) and protocol match."""
        return (
            listen in (self.requested_listen, self.listen) and upstream == self.upstream and protocol == self.protocol
        )

    def _bind_address(self) -> tuple[str, int]:
        host, port = split_hostport(self.listen, "listen", listen=True)
        return host or "0.0.0.0", port

    def _bound(self, sockname: Any) -> None:
        self.listen = join_hostport(str(sockname[0]), int(sockname[1]))

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def _toxics_changed(self) -> None:
        """Push the toxic list to every live connection or session."""
        raise NotImplementedError

    # -- toxics

    def toxic(self, name: str) -> ToxicSpec:
        for t in self.toxics:
            if t.name == name:
                return t
        raise toxic_not_found(name)

    def add_toxic(self, spec: ToxicSpec) -> ToxicSpec:
        if any(t.name == spec.name for t in self.toxics):
            raise toxic_exists(spec.name)
        self.toxics.append(spec)
        self._toxics_changed()
        log.info("proxy %s: toxic %s added (%s)", self.name, spec.name, spec.as_json())
        return spec

    def update_toxic(self, name: str, body: Any) -> ToxicSpec:
        current = self.toxic(name)
        new = parse_toxic_update(current, body)
        self.toxics[self.toxics.index(current)] = new
        self._toxics_changed()
        log.info("proxy %s: toxic %s updated (%s)", self.name, name, new.as_json())
        return new

    def remove_toxic(self, name: str) -> None:
        self.toxics.remove(self.toxic(name))
        self._toxics_changed()
        log.info("proxy %s: toxic %s removed", self.name, name)

    def reset_toxics(self) -> None:
        if self.toxics:
            self.toxics.clear()
            self._toxics_changed()


class TcpProxy(ProxyBase):
    protocol: Protocol = "tcp"

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        super().__init__(name, listen, upstream)
        self._server: asyncio.Server | None = None
        self.links: set[TcpLink] = set()

    async def start(self) -> None:
        if self._server is not None:
            return
        host, port = self._bind_address()
        try:
            self._server = await asyncio.start_server(self._accept, host, port, reuse_address=True)
        except OSError as exc:
            raise bind_error(self.listen, exc) from None
        self._bound(self._server.sockets[0].getsockname())
        self.enabled = True
        log.info("proxy %s: listening on tcp %s -> %s", self.name, self.listen, self.upstream)

    async def stop(self) -> None:
        """Proxy down: stop listening and drop every connection."""
        self.enabled = False
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in list(self.links):
            link.abort()
        if server is not None:  # after the aborts: from 3.12 this waits for connections to end
            await server.wait_closed()
        log.info("proxy %s: down", self.name)

    def _toxics_changed(self) -> None:
        for link in list(self.links):
            link.sync()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server = self._server
        host, port = split_hostport(self.upstream, "upstream", listen=False)
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            log.warning("proxy %s: upstream %s unreachable: %s", self.name, self.upstream, exc)
            writer.close()
            return
        if server is None or self._server is not server:  # went down while we connected
            up_writer.close()
            writer.close()
            return
        link = TcpLink(self, reader, writer, up_reader, up_writer)
        self.links.add(link)
        try:
            await link.run()
        finally:
            self.links.discard(link)


class TcpLink:
    """One client connection and its upstream connection, with the proxy's toxics on both streams."""

    def __init__(
        self,
        proxy: TcpProxy,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        up_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.client_w = client_w
        self.up_w = up_w
        self.streams: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {
            "upstream": (client_r, up_w),
            "downstream": (up_r, client_w),
        }
        self.runtimes: dict[str, tx.Runtime] = {}
        self.done = asyncio.Event()
        self.closing = False

    # -- lifecycle

    async def run(self) -> None:
        self.sync()
        tasks: list[asyncio.Task[None]] = []
        for stream in self.streams:
            queue: asyncio.Queue[tx.Chunk | None] = asyncio.Queue(QUEUE_CHUNKS)
            tasks.append(asyncio.create_task(self._read(stream, queue)))
            tasks.append(asyncio.create_task(self._pump(stream, queue)))
        pumps = [tasks[1], tasks[3]]

        async def both_streams_ended() -> None:
            await asyncio.gather(*pumps, return_exceptions=True)
            self.done.set()

        watcher = asyncio.create_task(both_streams_ended())
        try:
            await self.done.wait()
        finally:
            for t in [*tasks, watcher]:
                t.cancel()
            await asyncio.gather(*tasks, watcher, return_exceptions=True)
            for rt in self.runtimes.values():
                rt.stop()
            self.close()

    def sync(self) -> None:
        started, removed = tx.sync_runtimes(self.runtimes, self.proxy.toxics)
        for rt in started:
            tx.tcp_started(self, rt)
        for rt in removed:
            tx.tcp_removed(self, rt)

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.client_w.close()
            self.up_w.close()
        self.done.set()

    def abort(self) -> None:
        self.closing = True
        self.client_w.transport.abort()
        self.up_w.transport.abort()
        self.done.set()

    def reset(self) -> None:
        for w in (self.client_w, self.up_w):
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.abort()

    async def respond(self, data: bytes) -> None:
        await self._write(self.client_w, data)

    # -- streams

    async def _read(self, stream: str, queue: asyncio.Queue[tx.Chunk | None]) -> None:
        reader = self.streams[stream][0]
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(READ_SIZE):
                await queue.put(tx.Chunk(data, loop.time()))
        except OSError:  # the peer reset: reset the other side too
            self.reset()
            return
        await queue.put(None)

    async def _pump(self, stream: str, queue: asyncio.Queue[tx.Chunk | None]) -> None:
        writer = self.streams[stream][1]
        try:
            while (chunk := await queue.get()) is not None:
                await self._through(stream, self._chain(stream), 0, chunk)
            for rt in self._chain(stream):
                if rt.active:
                    await tx.tcp_eof(rt)
            if not self.closing and writer.can_write_eof():
                writer.write_eof()
        except OSError:
            self.abort()

    def _chain(self, stream: str) -> list[tx.Runtime]:
        return [
            self.runtimes[t.name]
            for t in self.proxy.toxics
            if tx.effective_stream(t) == stream and t.name in self.runtimes
        ]

    async def _through(self, stream: str, chain: list[tx.Runtime], i: int, chunk: tx.Chunk) -> None:
        while i < len(chain) and not chain[i].active:
            i += 1
        if i == len(chain):
            await self._write(self.streams[stream][1], chunk.data)
            return
        loop = asyncio.get_running_loop()

        async def emit(data: bytes) -> None:
            if data:
                await self._through(stream, chain, i + 1, tx.Chunk(data, loop.time()))

        await tx.tcp_chunk(self, chain[i], chunk, emit)

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.closing or writer.is_closing():
            return
        writer.write(data)
        await writer.drain()
