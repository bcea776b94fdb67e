"""Steering's probe and DNS faces, on loopback with a real UDP responder (no lab needed)."""

from __future__ import annotations

import asyncio
import random
import socket

from dnslib import QTYPE, RCODE, DNSRecord

from core.dnssrv import SrvTarget, order_srv
from core.sipprobe import OptionsProber, parse_reply
from lab.steering.dns import Target, answer


class FakeSbc(asyncio.DatagramProtocol):
    """Answers OPTIONS with 200 (or a chosen code), echoing the Via like a SIP server."""

    def __init__(self, code: int = 200, drop_first: int = 0) -> None:
        self.code = code
        self.drop_first = drop_first
        self.seen = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen += 1
        if self.seen <= self.drop_first:
            return
        via = next(line for line in data.split(b"\r\n") if line.startswith(b"Via:"))
        reply = b"SIP/2.0 %d OK\r\n%s\r\nX-Wobble-Region: region-x\r\nContent-Length: 0\r\n\r\n" % (self.code, via)
        self.transport.sendto(reply, addr)  # type: ignore[attr-defined]


async def _probe_against(sbc: FakeSbc, timeout: float = 0.3) -> tuple[bool, int | None, str | None, str | None]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: sbc, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    prober = OptionsProber("127.0.0.1")
    try:
        reply = await prober.probe("127.0.0.1", port, timeout)
    finally:
        prober.close()
        transport.close()
    return reply.ok, reply.code, reply.region_header, reply.error


def test_probe_ok_with_region_header() -> None:
    assert asyncio.run(_probe_against(FakeSbc())) == (True, 200, "region-x", None)


def test_probe_survives_a_lost_packet_by_retransmitting() -> None:
    assert asyncio.run(_probe_against(FakeSbc(drop_first=1)))[0] is True


def test_probe_503_is_a_failure() -> None:
    ok, code, _, _ = asyncio.run(_probe_against(FakeSbc(code=503)))
    assert not ok and code == 503


def test_probe_timeout() -> None:
    ok, code, _, error = asyncio.run(_probe_against(FakeSbc(drop_first=100), timeout=0.25))
    assert not ok and code is None and error == "timeout"


def test_probe_to_closed_port_fails() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prober = OptionsProber("127.0.0.1")
    reply = asyncio.run(prober.probe("127.0.0.1", port, 0.3))
    assert not reply.ok


def test_parse_reply_ignores_requests() -> None:
    assert parse_reply(b"OPTIONS sip:x SIP/2.0\r\n\r\n") == (None, None, None)


TARGETS = [Target("region-a", "10.77.0.11", 5060, 0), Target("region-b", "10.77.0.12", 5060, 100)]


def test_srv_puts_routable_first_and_keeps_the_rest_as_fallback() -> None:
    reply = answer(DNSRecord.question("_sip._udp.cx.lab", "SRV"), "cx.lab", TARGETS, ttl=5)
    srv = {str(rr.rdata.target).rstrip("."): (rr.rdata.priority, rr.ttl) for rr in reply.rr}
    assert srv == {"sbc-b.cx.lab": (10, 5), "sbc-a.cx.lab": (20, 5)}
    glue = {str(rr.rname).rstrip("."): str(rr.rdata) for rr in reply.ar if rr.rtype == QTYPE.A}
    assert glue == {"sbc-a.cx.lab": "10.77.0.11", "sbc-b.cx.lab": "10.77.0.12"}


def test_a_record_follows_routing_and_outside_is_refused() -> None:
    reply = answer(DNSRecord.question("sip.cx.lab"), "cx.lab", TARGETS, ttl=5)
    assert [str(rr.rdata) for rr in reply.rr] == ["10.77.0.12"]
    assert answer(DNSRecord.question("example.org"), "cx.lab", TARGETS, 5).header.rcode == RCODE.REFUSED


def test_srv_order_priority_then_weight() -> None:
    recs = [
        SrvTarget(20, 1, 5060, "a", "region-a"),
        SrvTarget(10, 50, 5060, "b", "region-b"),
        SrvTarget(10, 50, 5060, "c", "region-c"),
    ]
    firsts = {order_srv(recs, random.Random(seed))[0].host for seed in range(50)}
    assert firsts == {"b", "c"}
    assert all(order_srv(recs, random.Random(s))[-1].host == "a" for s in range(20))
