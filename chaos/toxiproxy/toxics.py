"""What each toxic does to the data: per chunk on a TCP stream, per datagram on a UDP session.

A toxic on a proxy becomes a `Runtime` on each of its connections (or UDP sessions): the
connection's roll of `toxicity` (does this connection get the toxic at all), per-connection state
(limit_data's byte count, bandwidth's pacing clock, http_error's request parser), and an
`interrupted` event that cuts its sleeps short when the toxic is updated or removed. As upstream,
toxics of one stream run in the order they were added, each passing its output to the next.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol

from chaos.toxiproxy.model import (
    BandwidthAttrs,
    HttpErrorAttrs,
    LatencyAttrs,
    LimitDataAttrs,
    LossAttrs,
    ResetPeerAttrs,
    SlicerAttrs,
    SlowCloseAttrs,
    TimeoutAttrs,
    ToxicSpec,
)

#: One source of randomness for toxicity, jitter, slicing, loss and http_error (`--seed` fixes it).
RNG = random.Random()
#: A UDP bandwidth toxic queues at most this much sending time; datagrams beyond it are dropped
#: (a bottleneck's buffer: without one a slow link would only add ever-growing delay).
UDP_QUEUE_S = 1.0
#: The longest HTTP request head http_error waits for before it gives up parsing that connection.
MAX_HTTP_HEAD = 64 * 1024


def seed(value: int) -> None:
    RNG.seed(value)


def effective_stream(spec: ToxicSpec) -> str:
    """http_error watches requests (client -> upstream) whatever its `stream` says."""
    return "upstream" if spec.type == "http_error" else spec.stream


@dataclass
class Chunk:
    data: bytes
    #: loop.time() when the chunk entered the current toxic (latency counts from here).
    ts: float


@dataclass
class HttpRequests:
    """http_error's cut of one connection's client bytes into HTTP/1.1 requests."""

    buf: bytearray = field(default_factory=bytearray)
    body_left: int = 0
    forwarding: bool = True
    passthrough: bool = False


class Runtime:
    """One toxic on one connection or UDP session."""

    def __init__(self, spec: ToxicSpec, previous: Runtime | None = None) -> None:
        self.spec = spec
        # random() < 1.0 always and < 0.0 never: toxicity 1 and 0 are exact.
        self.active = RNG.random() < spec.toxicity
        self.interrupted = asyncio.Event()
        self.timer: asyncio.TimerHandle | None = None
        # State that survives an update of the toxic (as upstream's stateful toxics).
        self.transmitted: int = previous.transmitted if previous else 0
        self.next_free: float = previous.next_free if previous else 0.0
        self.http: HttpRequests = previous.http if previous else HttpRequests()

    def stop(self) -> None:
        self.interrupted.set()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def sync_runtimes(runtimes: dict[str, Runtime], specs: list[ToxicSpec]) -> tuple[list[Runtime], list[Runtime]]:
    """Bring one connection's runtimes in line with its proxy's toxics: (started, removed).

    An updated toxic (a new ToxicSpec object under the same name) is restarted: the old runtime is
    interrupted and a new one, keeping its state, rolls toxicity again (as upstream re-runs it).
    """
    names = {s.name for s in specs}
    removed = [runtimes.pop(n) for n in list(runtimes) if n not in names]
    for rt in removed:
        rt.stop()
    started = []
    for spec in specs:
        old = runtimes.get(spec.name)
        if old is not None and old.spec is spec:
            continue
        if old is not None:
            old.stop()
        runtimes[spec.name] = rt = Runtime(spec, old)
        started.append(rt)
    return started, removed


async def sleep_until(rt: Runtime, when: float) -> bool:
    """Sleep until loop time `when`; False if the toxic was interrupted first."""
    delay = when - asyncio.get_running_loop().time()
    if rt.interrupted.is_set():
        return False
    if delay <= 0:
        return True
    try:
        await asyncio.wait_for(rt.interrupted.wait(), delay)
    except TimeoutError:
        return True
    return False


# ---------------------------------------------------------------- TCP


class LinkOps(Protocol):
    """What a toxic may do to its TCP connection besides passing data on."""

    def close(self) -> None:
        """Close both sides (FIN) after what was written is flushed."""

    def reset(self) -> None:
        """Reset both sides (RST)."""

    async def respond(self, data: bytes) -> None:
        """Write to the client directly (http_error's answer)."""


Emit = Callable[[bytes], Awaitable[None]]


async def tcp_chunk(link: LinkOps, rt: Runtime, chunk: Chunk, emit: Emit) -> None:
    """Run one chunk through one toxic; `emit` hands data to the next toxic (or the socket)."""
    a = rt.spec.attributes
    loop = asyncio.get_running_loop()
    if isinstance(a, LatencyAttrs):
        delay = a.latency + (RNG.uniform(-a.jitter, a.jitter) if a.jitter else 0.0)
        await sleep_until(rt, chunk.ts + max(0.0, delay) / 1000.0)
        await emit(chunk.data)
    elif isinstance(a, BandwidthAttrs):
        if a.rate <= 0:
            await emit(chunk.data)
            return
        step = a.rate * 100  # bytes in 100 ms: slow links send big chunks in 100 ms pieces, as upstream
        data = chunk.data
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            rt.next_free = max(rt.next_free, loop.time()) + len(piece) / (a.rate * 1000.0)
            if not await sleep_until(rt, rt.next_free):
                await emit(data[i:])  # interrupted: don't drop data on the floor
                return
            await emit(piece)
    elif isinstance(a, SlicerAttrs):
        cuts = slices(0, len(chunk.data), a.average_size, a.size_variation)
        for n, (start, end) in enumerate(cuts):
            await emit(chunk.data[start:end])
            if n + 1 < len(cuts) and not await sleep_until(rt, loop.time() + a.delay / 1e6):
                await emit(chunk.data[end:])
                return
    elif isinstance(a, LimitDataAttrs):
        data = chunk.data[: max(0, a.bytes - rt.transmitted)]
        if data:
            await emit(data)
            rt.transmitted += len(data)
        if rt.transmitted >= a.bytes:
            link.close()
    elif isinstance(a, TimeoutAttrs):
        return  # drop the data on the ground; the close is the timer's (see tcp_started)
    elif isinstance(a, ResetPeerAttrs):
        if await sleep_until(rt, loop.time() + a.timeout / 1000.0):
            link.reset()
    elif isinstance(a, HttpErrorAttrs):
        await http_error_chunk(link, rt, a, chunk.data, emit)
    else:  # slow_close acts on EOF only
        await emit(chunk.data)


async def tcp_eof(rt: Runtime) -> None:
    """The stream's source closed: slow_close holds the close back."""
    a = rt.spec.attributes
    if isinstance(a, SlowCloseAttrs):
        await sleep_until(rt, asyncio.get_running_loop().time() + a.delay / 1000.0)


def tcp_started(link: LinkOps, rt: Runtime) -> None:
    """A toxic began on a connection: timeout's clock starts now (upstream: when its pipe starts)."""
    a = rt.spec.attributes
    if rt.active and isinstance(a, TimeoutAttrs) and a.timeout > 0:
        rt.timer = asyncio.get_running_loop().call_later(a.timeout / 1000.0, link.close)


def tcp_removed(link: LinkOps, rt: Runtime) -> None:
    """A toxic left a connection: a timeout that dropped data closes it (upstream's Cleanup)."""
    if rt.active and rt.spec.type == "timeout":
        link.close()


def slices(start: int, end: int, average: int, variation: int) -> list[tuple[int, int]]:
    """Upstream slicer's cut: halve around the middle (+/- variation) until pieces are ~average."""
    if (end - start) - average <= variation:
        return [(start, end)] if end > start else []
    mid = start + (end - start) // 2 + (RNG.randint(-variation, variation - 1) if variation else 0)
    return slices(start, mid, average, variation) + slices(mid, end, average, variation)


# ---------------------------------------------------------------- http_error (ours)


@dataclass
class RequestHead:
    method: str
    content_length: int
    close: bool
    #: A body we cannot frame without parsing it (chunked) or a protocol switch: stop parsing.
    opaque: bool


def parse_head(head: bytes) -> RequestHead | None:
    """Request line and headers of one HTTP/1.x request; None if it is not one.

    A minimal parser on purpose: aiohttp's HttpRequestParser wants a protocol object and owns the
    payload, while we only need the request's framing; h11 is not a dependency.
    """
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    method, version = parts[0], parts[2]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return None
    connection = headers.get("connection", "").lower()
    close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    opaque = "chunked" in headers.get("transfer-encoding", "").lower() or "upgrade" in headers or method == "CONNECT"
    return RequestHead(method, max(0, length), close, opaque)


def error_response(a: HttpErrorAttrs, toxic: str, head: RequestHead) -> bytes:
    try:
        reason = HTTPStatus(a.status).phrase
    except ValueError:
        reason = "Error"
    body = json.dumps({"error": f"{reason} (injected by toxic {toxic})", "status": a.status}).encode()
    lines = [
        f"HTTP/1.1 {a.status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"Retry-After: {a.retry_after}",
        f"Connection: {'close' if head.close else 'keep-alive'}",
        f"X-Wobble-Toxic: {toxic}",
    ]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + (b"" if head.method == "HEAD" else body)


async def http_error_chunk(link: LinkOps, rt: Runtime, a: HttpErrorAttrs, data: bytes, emit: Emit) -> None:
    """Answer a `rate` share of whole requests in the proxy; forward the rest byte for byte.

    Requests are framed by Content-Length. A chunked body, an upgrade, or bytes that are not
    HTTP/1.x make the connection pass through untouched from there on.
    """
    st = rt.http
    st.buf += data
    while st.buf:
        if st.passthrough:
            out = bytes(st.buf)
            st.buf.clear()
            await emit(out)
            return
        if st.body_left:
            n = min(st.body_left, len(st.buf))
            part = bytes(st.buf[:n])
            del st.buf[:n]
            st.body_left -= n
            if st.forwarding:
                await emit(part)
            continue
        while st.buf[:2] == b"\r\n":  # stray CRLFs between requests are allowed
            del st.buf[:2]
        end = st.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(st.buf) > MAX_HTTP_HEAD:
                st.passthrough = True
                continue
            return  # wait for the rest of the head
        raw = bytes(st.buf[: end + 4])
        del st.buf[: end + 4]
        head = parse_head(raw)
        if head is None or head.opaque:
            st.passthrough = True
            await emit(raw)
            continue
        st.body_left = head.content_length
        st.forwarding = RNG.random() >= a.rate
        if st.forwarding:
            await emit(raw)
        else:
            await link.respond(error_response(a, rt.spec.name, head))
            if head.close:
                link.close()
                return


# ---------------------------------------------------------------- UDP


def udp_datagram(rt: Runtime, size: int, t: float, now: float) -> float | None:
    """A datagram leaving the previous toxic at loop time `t`: when it leaves this one, or None (dropped)."""
    a = rt.spec.attributes
    if isinstance(a, LatencyAttrs):
        return t + max(0.0, a.latency + (RNG.uniform(-a.jitter, a.jitter) if a.jitter else 0.0)) / 1000.0
    if isinstance(a, BandwidthAttrs):
        if a.rate <= 0:
            return t
        start = max(t, rt.next_free)
        if start - now > UDP_QUEUE_S:
            return None
        rt.next_free = start + size / (a.rate * 1000.0)
        return rt.next_free
    if isinstance(a, TimeoutAttrs):
        return None
    if isinstance(a, LossAttrs):
        return None if RNG.random() < a.probability else t
    return t
