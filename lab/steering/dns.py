"""Steering's DNS face: authoritative for the lab zone, answers follow the steering state.

- `_sip._udp.<zone>` SRV: routable regions at priority 10 (weights as routed), the others at
  priority 20, so an RFC 3263 client still has a next target on 503 or timeout.
- `sip.<zone>` A: the SBCs of routable regions; `sbc-a.<zone>` etc.: each SBC.
Outside the zone: REFUSED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, RR, SRV, A, DNSRecord

from core.dnszone import zone_reply


@dataclass(frozen=True)
class Target:
    region: str
    host: str  # SBC address
    port: int
    weight: int  # 0 = not routable now


def answer(query: DNSRecord, zone: str, targets: list[Target], ttl: int) -> DNSRecord:
    reply, qname = zone_reply(query, zone)
    if qname is None:
        return reply
    qtype = query.q.qtype
    by_label: Mapping[str, Target] = {f"sbc-{t.region.rsplit('-', 1)[-1]}.{zone}": t for t in targets}
    if qname == f"_sip._udp.{zone}":
        if qtype in (QTYPE.SRV, QTYPE.ANY):
            for label, t in by_label.items():
                prio = 10 if t.weight > 0 else 20
                weight = t.weight if t.weight > 0 else 1
                reply.add_answer(RR(qname, QTYPE.SRV, ttl=ttl, rdata=SRV(prio, weight, t.port, label)))
                reply.add_ar(RR(label, QTYPE.A, ttl=ttl, rdata=A(t.host)))
    elif qname == f"sip.{zone}":
        if qtype in (QTYPE.A, QTYPE.ANY):
            for t in sorted(targets, key=lambda t: -t.weight):
                if t.weight > 0:
                    reply.add_answer(RR(qname, QTYPE.A, ttl=ttl, rdata=A(t.host)))
    elif qname in by_label:
        if qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(qname, QTYPE.A, ttl=ttl, rdata=A(by_label[qname].host)))
    else:
        reply.header.rcode = RCODE.NXDOMAIN
    return reply
