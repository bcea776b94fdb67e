"""The lab resolver answers its zone and refuses the rest (no lookup may leave the machine)."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, DNSRecord
from hypothesis import given
from hypothesis import strategies as st

from core.dnszone import answer, in_zone
from core.topology import Topology

RECORDS = Topology.default().dns_records()


def test_lab_name_resolves() -> None:
    reply = answer(DNSRecord.question("sbc-a.cx.lab"), RECORDS)
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1
    assert str(reply.rr[0].rdata) == Topology.default().region("region-a").sbc_carrier_ip


def test_unknown_lab_name_is_nxdomain() -> None:
    assert answer(DNSRecord.question("nope.cx.lab"), RECORDS).header.rcode == RCODE.NXDOMAIN


def test_aaaa_of_lab_name_is_empty_noerror() -> None:
    reply = answer(DNSRecord.question("sbc-a.cx.lab", "AAAA"), RECORDS)
    assert reply.header.rcode == RCODE.NOERROR and not reply.rr


@given(st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}\.(com|org|net|io|lab|local)", fullmatch=True))
def test_everything_outside_the_zone_is_refused(name: str) -> None:
    if in_zone(name):
        return
    for qtype in ("A", "AAAA", "MX", "TXT"):
        reply = answer(DNSRecord.question(name, qtype), RECORDS)
        assert reply.header.rcode == RCODE.REFUSED
        assert not reply.rr
        assert reply.q.qtype == getattr(QTYPE, qtype)


def test_zone_suffix_is_not_fooled() -> None:
    assert not in_zone("evilcx.lab")
    assert in_zone("CX.LAB.")
