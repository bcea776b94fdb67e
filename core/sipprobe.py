"""Real SIP OPTIONS probes over UDP, with asyncio.

Hand-written: the one job is "send OPTIONS, match the reply, time it", a few lines of RFC 3261,
while the Python SIP stacks are either unmaintained (aiosip) or not asyncio (pjsua2).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import socket
import time
from dataclasses import dataclass

_BRANCH = re.compile(rb"branch=(z9hG4bK[\w.\-]+)", re.I)
_STATUS = re.compile(rb"^SIP/2\.0 (\d{3}) ?([^\r\n]*)")


@dataclass(frozen=True)
class ProbeReply:
    ok: bool
    latency_ms: float | None
    code: int | None
    error: str | None = None
    region_header: str | None = None


def build_options(target: tuple[str, int], local: tuple[str, int], branch: str, call_id: str, seq: int) -> bytes:
    host, port = target
    lhost, lport = local
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {lhost}:{lport};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:probe@{lhost}>;tag={call_id[:10]}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {seq} OPTIONS\r\n"
        f"User-Agent: wobble-probe\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def parse_reply(data: bytes) -> tuple[str | None, int | None, str | None]:
    """(branch, status code, X-Wobble-Region) of a SIP response; Nones for anything else."""
    m = _STATUS.match(data)
    if not m:
        return None, None, None
    b = _BRANCH.search(data)
    region = re.search(rb"^X-Wobble-Region:\s*(\S+)", data, re.M | re.I)
    return (
        b.group(1).decode() if b else None,
        int(m.group(1)),
        region.group(1).decode() if region else None,
    )


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, prober: OptionsProber) -> None:
        self.prober = prober

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        branch, code, region = parse_reply(data)
        fut = self.prober.pending.get(branch or "")
        if fut is not None and not fut.done() and code is not None and code >= 200:
            fut.set_result((code, region))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: fail every pending probe now rather than at its timeout
        for fut in self.prober.pending.values():
            if not fut.done():
                fut.set_exception(exc)


class OptionsProber:
    """One UDP socket, many concurrent probes matched by Via branch."""

    def __init__(self, bind: str = "0.0.0.0") -> None:
        self.bind = bind
        self.pending: dict[str, asyncio.Future[tuple[int, str | None]]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self._seq = itertools.count(1)
        self._tag = os.urandom(4).hex()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.bind, 0), family=socket.AF_INET
        )
        self.transport = transport

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def probe(self, host: str, port: int = 5060, timeout_s: float = 0.3, resend_s: float = 0.1) -> ProbeReply:
        """Send OPTIONS (retransmitted every `resend_s`, as SIP over UDP does) and wait for a final reply."""
        if self.transport is None:
            await self.start()
        assert self.transport is not None
        seq = next(self._seq)
        branch = f"z9hG4bK{self._tag}{seq}"
        sockname = self.transport.get_extra_info("sockname")
        local_host = self.bind if self.bind != "0.0.0.0" else _source_ip_for(host)
        msg = build_options((host, port), (local_host, sockname[1]), branch, f"{self._tag}-{seq}", seq)
        fut: asyncio.Future[tuple[int, str | None]] = asyncio.get_running_loop().create_future()
        self.pending[branch] = fut
        start = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    self.transport.sendto(msg, (host, port))
                    with contextlib.suppress(TimeoutError):
                        code, region = await asyncio.wait_for(asyncio.shield(fut), resend_s)
                        latency = (time.monotonic() - start) * 1000
                        return ProbeReply(code < 500, round(latency, 2), code, None, region)
        except TimeoutError:
            return ProbeReply(False, None, None, "timeout")
        except OSError as exc:
            return ProbeReply(False, None, None, f"unreachable: {exc.strerror or exc}")
        finally:
            self.pending.pop(branch, None)


def _source_ip_for(host: str) -> str:
    """The local address the kernel would use towards `host` (for Via and From)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, 5060))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"
