"""Serve the lab zone over UDP with asyncio: `python -m lab.resolver.server`.

Every lab container points `dns:` here, because Docker's embedded resolver would otherwise forward
lookups from internal networks to the host's resolver (CVE-2024-29018).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable
from typing import cast

from dnslib import DNSError, DNSRecord

from core.dnszone import answer
from core.settings import ResolverSettings
from core.topology import Topology

log = logging.getLogger("wobble.resolver")


class DnsProtocol(asyncio.DatagramProtocol):
    """A UDP DNS server around one `answer(query) -> reply` function (dnslib does the wire format)."""

    def __init__(self, answer_fn: Callable[[DNSRecord], DNSRecord]) -> None:
        self.answer_fn = answer_fn
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = DNSRecord.parse(data)
        except DNSError:
            log.debug("unparseable query from %s", addr)
            return
        if self.transport is not None:
            self.transport.sendto(self.answer_fn(query).pack(), addr)


async def serve(host: str, port: int) -> None:
    records = Topology.default().dns_records()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: DnsProtocol(lambda q: answer(q, records)), local_addr=(host, port), family=socket.AF_INET
    )
    log.info("lab resolver on %s:%d with %d names", host, port, len(records))
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()


def check(host: str = "127.0.0.1", port: int = 53) -> int:
    """Container health check: the resolver answers a lab name."""
    query = DNSRecord.question("sbc-a.cx.lab")
    try:
        raw = query.send(host, port, timeout=1.0)
    except OSError as exc:
        print(f"resolver not answering on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0 if DNSRecord.parse(raw).rr else 1


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if "--check" in sys.argv:
        raise SystemExit(check())
    settings = ResolverSettings.from_env()
    asyncio.run(serve(settings.host, settings.port))


if __name__ == "__main__":
    main()
