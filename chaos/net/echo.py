"""The lab's UDP echo probe: what a network fault really did, measured on the wire.

`python -m chaos.net.echo server --port 7777` echoes every datagram back unchanged (it prints
`READY <host>:<port>` once bound). `python -m chaos.net.echo client --to HOST:PORT --count N
--pps R --size B [--prefix TEXT] [--baseline-ms X] --json` sends N datagrams at R per second, each
ending with a trailer (magic, run, sequence, send time), and reports: sent, received, loss %,
round-trip time (min / p50 / mean / p95 / max), the added delay over a baseline, jitter (RFC 3550
interarrival estimate over the transit times), duplicates, reorders (arrivals behind a higher
sequence already seen) and throughput (payload and on-wire kbit/s over the arrival window).
`--prefix` puts text at the start of each payload (e.g. `INVITE sip:x SIP/2.0` for sip faults).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import selectors
import socket
import statistics
import struct
import sys
import time
from dataclasses import asdict, dataclass, field

MAGIC = b"WBLE"
TRAILER = struct.Struct("!4sIId")
#: Ethernet + IPv4 + UDP headers: what a shaper counts beyond the payload.
WIRE_OVERHEAD = 14 + 20 + 8


@dataclass
class EchoReport:
    sent: int
    received: int
    loss_pct: float
    duplicates: int
    reorders: int
    rtt_min_ms: float | None
    rtt_p50_ms: float | None
    rtt_mean_ms: float | None
    rtt_p95_ms: float | None
    rtt_max_ms: float | None
    jitter_ms: float | None
    added_p50_ms: float | None
    added_mean_ms: float | None
    tx_kbit_wire: float
    rx_kbit_payload: float | None
    rx_kbit_wire: float | None
    duration_s: float
    size: int
    rtts_ms: list[float] = field(default_factory=list, repr=False)


def make_packet(prefix: bytes, size: int, run: int, seq: int, sent_at: float) -> bytes:
    body_len = max(0, size - TRAILER.size - len(prefix))
    return prefix + b"." * body_len + TRAILER.pack(MAGIC, run, seq, sent_at)


def parse_packet(data: bytes) -> tuple[int, int, float] | None:
    """(run, seq, send time) from a probe datagram, or None for anything else."""
    if len(data) < TRAILER.size:
        return None
    magic, run, seq, sent_at = TRAILER.unpack(data[-TRAILER.size :])
    if magic != MAGIC:
        return None
    return run, seq, sent_at


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def summarize(
    sent: int,
    arrivals: list[tuple[int, float, float]],
    size: int,
    duration_s: float,
    baseline_ms: float | None = None,
) -> EchoReport:
    """The report from (seq, send time, receive time) in arrival order. Pure."""
    seen: set[int] = set()
    dups = reorders = 0
    highest = -1
    rtts: list[float] = []
    transit: list[float] = []
    times: list[float] = []
    for seq, sent_at, recv_at in arrivals:
        if seq in seen:
            dups += 1
            continue
        seen.add(seq)
        if seq < highest:
            reorders += 1
        highest = max(highest, seq)
        rtts.append((recv_at - sent_at) * 1000)
        transit.append(recv_at - sent_at)
        times.append(recv_at)
    jitter = 0.0
    for a, b in itertools.pairwise(transit):
        jitter += (abs(b - a) - jitter) / 16
    received = len(seen)
    rx_payload = rx_wire = None
    if received >= 2 and times[-1] > times[0]:
        window = times[-1] - times[0]
        rx_payload = (received - 1) * size * 8 / window / 1000
        rx_wire = (received - 1) * (size + WIRE_OVERHEAD) * 8 / window / 1000
    mean = statistics.fmean(rtts) if rtts else None
    p50 = _pct(rtts, 0.5) if rtts else None
    return EchoReport(
        sent=sent,
        received=received,
        loss_pct=round(100 * (sent - received) / sent, 3) if sent else 0.0,
        duplicates=dups,
        reorders=reorders,
        rtt_min_ms=min(rtts) if rtts else None,
        rtt_p50_ms=p50,
        rtt_mean_ms=mean,
        rtt_p95_ms=_pct(rtts, 0.95) if rtts else None,
        rtt_max_ms=max(rtts) if rtts else None,
        jitter_ms=jitter * 1000 if len(transit) > 1 else None,
        added_p50_ms=None if p50 is None or baseline_ms is None else p50 - baseline_ms,
        added_mean_ms=None if mean is None or baseline_ms is None else mean - baseline_ms,
        tx_kbit_wire=sent * (size + WIRE_OVERHEAD) * 8 / duration_s / 1000 if duration_s > 0 else 0.0,
        rx_kbit_payload=rx_payload,
        rx_kbit_wire=rx_wire,
        duration_s=duration_s,
        size=size,
        rtts_ms=rtts,
    )


def measure(
    host: str,
    port: int,
    count: int = 1000,
    pps: float = 100.0,
    size: int = 160,
    prefix: bytes = b"",
    linger_s: float = 1.0,
    baseline_ms: float | None = None,
    src_port: int = 0,
) -> EchoReport:
    """Send `count` probes at `pps` to an echo server and collect what comes back."""
    if count < 1 or pps <= 0:
        raise ValueError("count must be >= 1 and pps > 0")
    size = max(size, len(prefix) + TRAILER.size)
    run = random.getrandbits(32)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("0.0.0.0", src_port))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    arrivals: list[tuple[int, float, float]] = []
    sent = 0
    start = time.monotonic()
    interval = 1.0 / pps
    send_errors = 0

    def drain() -> None:
        while True:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                return
            now = time.monotonic()
            parsed = parse_packet(data)
            if parsed and parsed[0] == run:
                arrivals.append((parsed[1], parsed[2], now))

    try:
        while sent < count:
            due = start + sent * interval
            now = time.monotonic()
            if now >= due:
                try:
                    sock.sendto(make_packet(prefix, size, run, sent, now), (host, port))
                except OSError:
                    send_errors += 1  # counted as sent: the fault, not the probe, lost it
                sent += 1
                continue
            if sel.select(timeout=due - now):
                drain()
        last_send = time.monotonic()
        duration = last_send - start if count > 1 else interval
        deadline = last_send + linger_s
        while time.monotonic() < deadline:
            if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                drain()
    finally:
        sel.close()
        sock.close()
    return summarize(sent, arrivals, size, max(duration, interval), baseline_ms)


def serve(host: str = "0.0.0.0", port: int = 7777, ready: bool = True) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((host, port))
    if ready:
        print(f"READY {host}:{sock.getsockname()[1]}", flush=True)
    while True:
        data, peer = sock.recvfrom(65535)
        with contextlib.suppress(OSError):
            sock.sendto(data, peer)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chaos.net.echo")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server", help="echo every UDP datagram back")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--port", type=int, default=7777)
    c = sub.add_parser("client", help="send probes, report loss/delay/jitter/throughput")
    c.add_argument("--to", required=True, help="HOST:PORT of the echo server")
    c.add_argument("--count", type=int, default=1000)
    c.add_argument("--pps", type=float, default=100.0)
    c.add_argument("--size", type=int, default=160, help="UDP payload bytes")
    c.add_argument("--prefix", default="", help="text each payload starts with")
    c.add_argument("--linger", type=float, default=1.0, help="seconds to wait for late echoes")
    c.add_argument("--baseline-ms", type=float, default=None)
    c.add_argument("--src-port", type=int, default=0)
    c.add_argument("--rtts", action="store_true", help="include every round-trip time in the JSON")
    c.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "server":
        try:
            serve(args.host, args.port)
        except KeyboardInterrupt:
            return 0
        return 0
    host, _, port = args.to.rpartition(":")
    report = measure(
        host,
        int(port),
        args.count,
        args.pps,
        args.size,
        args.prefix.encode(),
        args.linger,
        args.baseline_ms,
        args.src_port,
    )
    out = asdict(report)
    if not args.rtts:
        out.pop("rtts_ms")
    if args.json:
        print(json.dumps(out), flush=True)
    else:
        for k, v in out.items():
            print(f"{k:16} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
