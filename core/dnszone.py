"""The lab zone and the answer policy, apart from any socket (pure, unit-tested)."""

from __future__ import annotations

from collections.abc import Mapping

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

ZONE = "cx.lab"


def in_zone(name: str, zone: str = ZONE) -> bool:
    name = name.rstrip(".").lower()
    return name == zone or name.endswith("." + zone)


def zone_reply(query: DNSRecord, zone: str) -> tuple[DNSRecord, str | None]:
    """The reply to fill in, and the lowercased name asked for if it is in `zone`.

    Outside the zone the reply is already final: REFUSED (not SERVFAIL or a timeout), so a lab
    container fails fast and says why instead of waiting on a lookup that must never leave.
    """
    reply = query.reply()
    reply.header.ra = 0
    qname = str(query.q.qname).rstrip(".").lower()
    if not in_zone(qname, zone):
        reply.header.rcode = RCODE.REFUSED
        return reply, None
    reply.header.aa = 1
    return reply, qname


def answer(query: DNSRecord, records: Mapping[str, str], ttl: int = 5, zone: str = ZONE) -> DNSRecord:
    """Reply to one query: A records of the lab zone; NXDOMAIN inside it; REFUSED outside it."""
    reply, qname = zone_reply(query, zone)
    if qname is None:
        return reply
    address = records.get(qname)
    if address is None:
        reply.header.rcode = RCODE.NXDOMAIN
    elif query.q.qtype in (QTYPE.A, QTYPE.ANY):
        reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(address), ttl=ttl))
    return reply
