"""chaos.net.echo: the probe's arithmetic, and a real run over loopback (no root needed)."""

from __future__ import annotations

import socket
import threading

import pytest

from chaos.net import echo


def test_packet_round_trip() -> None:
    pkt = echo.make_packet(b"INVITE sip:x SIP/2.0", 160, run=7, seq=42, sent_at=12.5)
    assert len(pkt) == 160 and pkt.startswith(b"INVITE ")
    assert echo.parse_packet(pkt) == (7, 42, 12.5)
    assert echo.parse_packet(b"garbage" * 5) is None
    assert echo.parse_packet(b"") is None


def test_summary_counts_loss_duplicates_reorders() -> None:
    arrivals = [(0, 0.0, 0.010), (2, 0.2, 0.215), (1, 0.1, 0.220), (2, 0.2, 0.230), (4, 0.4, 0.420)]
    r = echo.summarize(5, arrivals, size=100, duration_s=0.5, baseline_ms=5.0)
    assert (r.sent, r.received, r.duplicates, r.reorders) == (5, 4, 1, 1)
    assert r.loss_pct == 20.0
    assert r.rtt_min_ms == pytest.approx(10) and r.rtt_max_ms == pytest.approx(120)
    assert r.added_p50_ms == pytest.approx(r.rtt_p50_ms - 5.0)  # type: ignore[operator]
    assert r.rx_kbit_payload == pytest.approx(3 * 100 * 8 / 0.41 / 1000)
    assert r.rx_kbit_wire == pytest.approx(3 * 142 * 8 / 0.41 / 1000)
    empty = echo.summarize(10, [], size=100, duration_s=1.0)
    assert empty.loss_pct == 100.0 and empty.rtt_p50_ms is None and empty.rx_kbit_wire is None


def test_jitter_of_constant_transit_is_zero() -> None:
    arrivals = [(i, i * 0.02, i * 0.02 + 0.05) for i in range(100)]
    r = echo.summarize(100, arrivals, size=160, duration_s=2.0)
    assert r.jitter_ms == pytest.approx(0, abs=1e-6)
    assert r.rtt_mean_ms == pytest.approx(50)


def test_measure_over_loopback() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            sock.sendto(data, peer)
            if data.startswith(b"DUP"):
                sock.sendto(data, peer)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        r = echo.measure("127.0.0.1", port, count=200, pps=1000, size=120, linger_s=0.3)
        assert (r.sent, r.received, r.duplicates, r.loss_pct) == (200, 200, 0, 0.0)
        assert r.rtt_p50_ms is not None and r.rtt_p50_ms < 50
        assert r.tx_kbit_wire == pytest.approx(200 * 162 * 8 / r.duration_s / 1000)
        d = echo.measure("127.0.0.1", port, count=50, pps=1000, prefix=b"DUP", linger_s=0.3)
        assert d.duplicates == 50
    finally:
        stop.set()
        th.join()
        sock.close()


def test_measure_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        echo.measure("127.0.0.1", 9, count=0)
