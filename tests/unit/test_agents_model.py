"""Pure parts of the user agents: loss, stat conversion, SIP header parsing."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from agents.model import (
    RtpStats,
    cseq_method,
    header_value,
    lab_call_id,
    loss_pct,
    parse_headers,
    parse_status_line,
    select_headers,
    stats_from_rtcp,
    strip_port,
    uri_host,
    uri_user,
)

OK_200 = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 10.77.0.20:5060;rport=5060;branch=z9hG4bK1\r\n"
    "From: <sip:c1@10.77.0.11>;tag=abc\r\n"
    "To: <sip:support@10.77.0.11>;tag=def\r\n"
    "i: 1234@host\r\n"
    "CSeq: 1 INVITE\r\n"
    "x-wobble-region: region-b\r\n"
    "X-Trace: one,\r\n"
    "\t two\r\n"
    "Server: kamailio\r\n"
    "Content-Type: application/sdp\r\n"
    "\r\n"
    "v=0\r\n"
    "X-Not-A-Header: body\r\n"
)


def _math(n: int, mean: int, mx: int) -> SimpleNamespace:
    return SimpleNamespace(n=n, mean=mean, max=mx, min=0, last=mean)


def _rtcp(rx: int, lost: int, tx: int, jit_n: int = 10, rtt_n: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        rxStat=SimpleNamespace(pkt=rx, loss=lost, jitterUsec=_math(jit_n, 1500, 4000)),
        txStat=SimpleNamespace(pkt=tx, loss=0, jitterUsec=_math(0, 0, 0)),
        rttUsec=_math(rtt_n, 20500, 30000),
    )


def test_loss_pct_basic() -> None:
    assert loss_pct(0, 0) == 0.0
    assert loss_pct(95, 5) == 5.0
    assert loss_pct(0, 10) == 100.0
    assert loss_pct(150, 0) == 0.0
    assert loss_pct(-3, -1) == 0.0  # pjmedia can report a negative loss after reordering


@given(st.integers(0, 10**7), st.integers(0, 10**7))
def test_loss_pct_is_a_percentage(received: int, lost: int) -> None:
    pct = loss_pct(received, lost)
    assert 0.0 <= pct <= 100.0
    if lost == 0:
        assert pct == 0.0
    assert loss_pct(received, lost + 1) >= pct


def test_stats_from_rtcp_converts_units() -> None:
    s = stats_from_rtcp(_rtcp(rx=190, lost=10, tx=200, rtt_n=2))
    assert s == RtpStats(
        rx_packets=190, tx_packets=200, rx_lost=10, loss_pct=5.0, jitter_ms=1.5, jitter_max_ms=4.0, rtt_ms=20.5
    )


def test_stats_from_rtcp_without_samples_reports_none() -> None:
    s = stats_from_rtcp(_rtcp(rx=0, lost=0, tx=3, jit_n=0, rtt_n=0))
    assert s.jitter_ms is None and s.jitter_max_ms is None and s.rtt_ms is None
    assert s.loss_pct == 0.0 and s.tx_packets == 3


def test_merge_never_goes_backwards() -> None:
    old = RtpStats(rx_packets=100, tx_packets=100)
    assert old.merge(RtpStats(rx_packets=0, tx_packets=0)) is old
    newer = RtpStats(rx_packets=101, tx_packets=100)
    assert old.merge(newer) is newer


def test_parse_headers_folding_compact_and_body() -> None:
    hdrs = dict(parse_headers(OK_200))
    assert hdrs["Call-ID"] == "1234@host"  # compact 'i' expanded
    assert hdrs["X-Trace"] == "one, two"  # folded line joined
    assert "X-Not-A-Header" not in hdrs  # the body is not headers
    assert header_value(OK_200, "X-WOBBLE-REGION") == "region-b"
    assert header_value(OK_200, "Missing") is None
    assert cseq_method(OK_200) == "INVITE"


def test_select_headers_canonical_names_and_x_prefix() -> None:
    sel = select_headers(OK_200)
    assert sel["X-Wobble-Region"] == "region-b"  # canonical spelling, whatever the case on the wire
    assert sel["X-Trace"] == "one, two"
    assert sel["Server"] == "kamailio"
    assert "Via" not in sel and "Content-Type" not in sel


def test_select_headers_first_value_wins_and_lf_only() -> None:
    msg = "SIP/2.0 200 OK\nX-Wobble-Region: region-a\nX-Wobble-Region: region-b\n\n"
    assert select_headers(msg) == {"X-Wobble-Region": "region-a"}


def test_parse_status_line() -> None:
    assert parse_status_line(OK_200) == (200, "OK")
    assert parse_status_line("SIP/2.0 486 Busy Here\r\n\r\n") == (486, "Busy Here")
    assert parse_status_line("INVITE sip:x@y SIP/2.0\r\n") is None
    assert parse_status_line("") is None


def test_uri_parts() -> None:
    assert uri_user('"Bob" <sip:bob@10.0.0.1:5060;transport=udp>;tag=1') == "bob"
    assert uri_user("sip:c-42@h") == "c-42"
    assert uri_user("<sip:10.0.0.1>") is None
    assert uri_host("sip:support@10.77.0.11") == "10.77.0.11"
    assert uri_host("sip:support@127.0.0.1:5070;transport=udp") == "127.0.0.1:5070"
    assert uri_host("sip:10.77.1.11") == "10.77.1.11"
    assert uri_host("mailto:x") is None
    assert strip_port("10.0.0.1:5060") == "10.0.0.1"
    assert strip_port("sbc-a") == "sbc-a"
    assert strip_port("[::1]:5060") == "[::1]"


def test_lab_call_id_header_then_from_user() -> None:
    invite = "INVITE sip:a-001@x SIP/2.0\r\nFrom: <sip:fallback@x>;tag=1\r\nX-Wobble-Call: w123\r\n\r\n"
    assert lab_call_id(invite, None) == "w123"
    no_hdr = "INVITE sip:a-001@x SIP/2.0\r\nf: <sip:fallback@x>;tag=1\r\n\r\n"
    assert lab_call_id(no_hdr, None) == "fallback"
    assert lab_call_id(None, "<sip:remote@x>") == "remote"
    assert lab_call_id("", None) is None
