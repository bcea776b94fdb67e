"""SIP service records (RFC 2782 / RFC 3263) as the steering DNS answers them: parsing a reply and
the order in which a caller tries its targets. Used by `wobble call` (lab.steering.client) and the
traffic generator (agents.load)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from dnslib import QTYPE, DNSRecord


@dataclass(frozen=True)
class SrvTarget:
    priority: int
    weight: int
    port: int
    host: str  # an address (from the additional section) or a name
    region: str


def parse_srv_reply(packet: bytes) -> tuple[list[SrvTarget], int]:
    """The SRV records of a DNS reply (address from the A glue, region from the SBC's name) and their
    smallest TTL (0 when there are none)."""
    reply = DNSRecord.parse(packet)
    addresses = {str(rr.rname).rstrip("."): str(rr.rdata) for rr in reply.ar if rr.rtype == QTYPE.A}
    records: list[SrvTarget] = []
    ttl: int | None = None
    for rr in reply.rr:
        if rr.rtype != QTYPE.SRV:
            continue
        name = str(rr.rdata.target).rstrip(".")
        letter = name.split(".", 1)[0].removeprefix("sbc-")
        data = rr.rdata
        records.append(
            SrvTarget(
                int(data.priority), int(data.weight), int(data.port), addresses.get(name, name), f"region-{letter}"
            )
        )
        ttl = int(rr.ttl) if ttl is None else min(ttl, int(rr.ttl))
    return records, ttl or 0


def order_srv(records: list[SrvTarget], rng: random.Random) -> list[SrvTarget]:
    """RFC 2782 selection order: ascending priority; within one, weighted random without replacement."""
    out: list[SrvTarget] = []
    for prio in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == prio]
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                pick = group[0]
            else:
                x = rng.uniform(0, total)
                acc = 0.0
                pick = group[-1]
                for r in group:
                    acc += r.weight
                    if x <= acc:
                        pick = r
                        break
            out.append(pick)
            group.remove(pick)
    return out
