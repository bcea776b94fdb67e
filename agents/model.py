"""Pure parts of the user agents: data records, RTP stat conversion, SIP text parsing.

Nothing here imports pjsua2, so it is unit-testable anywhere. `agents.ua` re-exports the records.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

#: Headers copied from a final response into `reply_headers` (besides every `X-` header).
REPLY_HEADERS: tuple[str, ...] = ("X-Wobble-Region", "Server", "Reason", "Retry-After")
#: The header carrying the lab's call id on an INVITE.
CALL_HEADER = "X-Wobble-Call"
#: What a call id / user part may contain (kept to SIP-unreserved characters on purpose).
TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")


# --------------------------------------------------------------------------------------------
# RTP statistics
# --------------------------------------------------------------------------------------------


class _MathStat(Protocol):
    n: int
    mean: int
    max: int


class _StreamStat(Protocol):
    pkt: int
    loss: int
    jitterUsec: _MathStat


class _Rtcp(Protocol):
    rxStat: _StreamStat
    txStat: _StreamStat
    rttUsec: _MathStat


def loss_pct(received: int, lost: int) -> float:
    """Receive-direction loss: lost / (received + lost) * 100, 0.0 when nothing was expected."""
    received = max(0, int(received))
    lost = max(0, int(lost))
    expected = received + lost
    if expected == 0:
        return 0.0
    return round(lost * 100.0 / expected, 3)


def usec_to_ms(usec: float | None) -> float | None:
    if usec is None:
        return None
    return round(float(usec) / 1000.0, 3)


@dataclass(frozen=True)
class RtpStats:
    """One sample of a call's RTP/RTCP counters (pjmedia's view of the audio stream)."""

    rx_packets: int = 0
    tx_packets: int = 0
    rx_lost: int = 0
    loss_pct: float = 0.0
    jitter_ms: float | None = None  # mean receive jitter (RFC 3550 estimator)
    jitter_max_ms: float | None = None
    rtt_ms: float | None = None  # mean RTCP round-trip time, None until an RTCP RR came back

    def as_dict(self) -> dict[str, Any]:
        """The counters as a call record's fields, in this order (`rx_packets` ... `rtt_ms`)."""
        return asdict(self)

    def merge(self, newer: RtpStats) -> RtpStats:
        """Keep the newer sample unless it went backwards (a reset stream): counters never shrink."""
        if newer.rx_packets + newer.tx_packets >= self.rx_packets + self.tx_packets:
            return newer
        return self


def stats_from_rtcp(rtcp: _Rtcp) -> RtpStats:
    """Convert pjsua2's `StreamStat.rtcp` (RtcpStat) into an RtpStats sample."""
    rx = rtcp.rxStat
    tx = rtcp.txStat
    rx_pkt = int(rx.pkt)
    lost = max(0, int(rx.loss))
    jitter = rx.jitterUsec
    rtt = rtcp.rttUsec
    return RtpStats(
        rx_packets=rx_pkt,
        tx_packets=int(tx.pkt),
        rx_lost=lost,
        loss_pct=loss_pct(rx_pkt, lost),
        jitter_ms=usec_to_ms(jitter.mean) if int(jitter.n) > 0 else None,
        jitter_max_ms=usec_to_ms(jitter.max) if int(jitter.n) > 0 else None,
        rtt_ms=usec_to_ms(rtt.mean) if int(rtt.n) > 0 else None,
    )


# --------------------------------------------------------------------------------------------
# SIP message text
# --------------------------------------------------------------------------------------------

_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
}


def parse_headers(msg: str) -> list[tuple[str, str]]:
    """Header (name, value) pairs of a whole SIP message, in order; folded lines are joined,
    compact names expanded. The start line and the body are skipped."""
    head = re.split(r"\r?\n\r?\n", msg, maxsplit=1)[0]
    lines = re.split(r"\r?\n", head)
    out: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and out:
            name, value = out[-1]
            out[-1] = (name, f"{value} {line.strip()}")
            continue
        if ":" not in line:
            continue
        name, value = line.split(":", 1)
        name = name.strip()
        name = _COMPACT.get(name.lower(), name) if len(name) == 1 else name
        out.append((name, value.strip()))
    return out


def header_value(msg: str, name: str) -> str | None:
    """The first value of header `name` (case-insensitive), or None."""
    want = name.lower()
    for hname, value in parse_headers(msg):
        if hname.lower() == want:
            return value
    return None


def select_headers(msg: str, names: tuple[str, ...] = REPLY_HEADERS, prefix: str = "x-") -> dict[str, str]:
    """The headers worth reporting from a response: `names` plus every header starting with
    `prefix`, keyed by the canonical spelling in `names` (else as received). First value wins."""
    canon = {n.lower(): n for n in names}
    out: dict[str, str] = {}
    for hname, value in parse_headers(msg):
        low = hname.lower()
        if low in canon or (prefix and low.startswith(prefix)):
            key = canon.get(low, hname)
            out.setdefault(key, value)
    return out


def parse_status_line(msg: str) -> tuple[int, str] | None:
    """(code, reason) of a response's status line, None for a request or garbage."""
    first = msg.lstrip().split("\n", 1)[0].strip()
    m = re.match(r"^SIP/2\.0\s+(\d{3})\s*(.*)$", first)
    if not m:
        return None
    return int(m.group(1)), m.group(2).strip()


def cseq_method(msg: str) -> str | None:
    value = header_value(msg, "CSeq")
    if not value:
        return None
    parts = value.split()
    return parts[1].upper() if len(parts) >= 2 else None


def uri_user(uri: str) -> str | None:
    """The user part of a SIP URI or name-addr: '"Bob" <sip:bob@h;x=1>;tag=2' -> 'bob'."""
    m = re.search(r"<([^>]*)>", uri)
    inner = m.group(1) if m else uri.split(";", 1)[0]
    m2 = re.match(r"^\s*sips?:([^@;>]+)@", inner)
    if not m2:
        return None
    return m2.group(1).split(":", 1)[0] or None


def uri_host(uri: str) -> str | None:
    """The host[:port] part of a SIP URI: 'sip:support@10.0.0.1:5080;transport=udp' -> '10.0.0.1:5080'."""
    m = re.search(r"<([^>]*)>", uri)
    inner = m.group(1) if m else uri
    m2 = re.match(r"^\s*sips?:(?:[^@]*@)?([^;>?\s]+)", inner)
    return m2.group(1) if m2 else None


def strip_port(hostport: str) -> str:
    if hostport.startswith("["):
        return hostport.split("]", 1)[0] + "]"
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def lab_call_id(invite_msg: str | None, from_uri: str | None) -> str | None:
    """The lab's call id of an incoming INVITE: `X-Wobble-Call`, falling back to the From user."""
    if invite_msg:
        value = header_value(invite_msg, CALL_HEADER)
        if value:
            return value.strip()
        from_hdr = header_value(invite_msg, "From")
        if from_hdr:
            user = uri_user(from_hdr)
            if user:
                return user
    if from_uri:
        return uri_user(from_uri)
    return None


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------


@dataclass
class CallOutcome:
    """What one call did, as the engine saw it (both directions share this record)."""

    handle: int
    direction: str  # "out" | "in"
    account: str
    remote_uri: str = ""
    sip_call_id: str = ""
    lab_call_id: str | None = None
    #: Final response code received from the network (0 when none came; see caller docs).
    final_code: int = 0
    final_reason: str = ""
    response_seen: bool = False  # any SIP response (1xx included) came back to our INVITE
    pdd_ms: float | None = None
    setup_ms: float | None = None
    duration_s: float = 0.0  # answered (200 OK) -> disconnected
    end_reason: str = ""
    reply_headers: dict[str, str] = field(default_factory=dict)
    invite_headers: dict[str, str] = field(default_factory=dict)
    stats: RtpStats = field(default_factory=RtpStats)
    media_active: bool = False
    started_at: float = 0.0  # wall clock, INVITE sent / received

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_valid_args(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    validate: Callable[[argparse.Namespace], list[str]],
) -> argparse.Namespace:
    """Parse, then check what argparse cannot; every problem in one usage error (exit 2)."""
    args = parser.parse_args(argv)
    problems = validate(args)
    if problems:
        parser.error("; ".join(problems))
    return args
