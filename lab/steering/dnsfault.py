"""Steering DNS under chaos: slow answers, SERVFAIL, dropped queries (timeouts), stale answers.

The chaos controller's warden sets a fault here through the HTTP API and renews it every second;
the fault lapses by itself `ttl_s` after the last renewal, so a dead warden leaves nothing on.
The decision is pure (`decide`); `FaultyDnsProtocol` is the I/O around it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar, cast

from dnslib import RCODE, DNSError, DNSRecord

Mode = Literal["slow", "servfail", "drop", "stale"]
MODES: tuple[Mode, ...] = ("slow", "servfail", "drop", "stale")
Action = Literal["answer", "slow", "servfail", "drop", "stale"]
V = TypeVar("V")


@dataclass
class DnsFault:
    id: str
    mode: Mode
    pct: float = 100.0
    ms: float = 0.0
    expires_at: float = 0.0
    #: The steering view when the fault began: what a stale answer reports.
    frozen: object = None

    def live(self, now: float) -> bool:
        return now < self.expires_at


def parse_fault(body: dict[str, object], now: float) -> DnsFault:
    """A fault from the API body; ValueError naming the field on anything wrong."""
    mode = body.get("mode")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    try:
        pct = float(cast(float, body.get("pct", 100)))
        ms = float(cast(float, body.get("ms", 0)))
        ttl = float(cast(float, body.get("ttl_s", 3)))
    except (TypeError, ValueError):
        raise ValueError("pct, ms and ttl_s must be numbers") from None
    if not 0 <= pct <= 100:
        raise ValueError(f"pct={pct:g} is outside 0..100")
    if ms < 0 or not 0 < ttl <= 60:
        raise ValueError("ms must be >= 0 and ttl_s in (0, 60]")
    return DnsFault(str(body.get("id") or "dns"), mode, pct, ms, now + ttl)


def decide(fault: DnsFault | None, now: float, rng: random.Random) -> Action:
    if fault is None or not fault.live(now):
        return "answer"
    if rng.random() * 100 >= fault.pct:
        return "answer"
    return fault.mode


@dataclass
class DnsChaos:
    """The switch steering holds: at most one DNS fault at a time (a new one replaces the old)."""

    fault: DnsFault | None = None
    rng: random.Random = field(default_factory=random.Random)
    counts: dict[str, int] = field(default_factory=dict)

    def set(self, fault: DnsFault, view: object) -> None:
        same = self.fault is not None and self.fault.id == fault.id and self.fault.mode == fault.mode
        fault.frozen = self.fault.frozen if same and self.fault is not None else view  # renewals keep the snapshot
        self.fault = fault

    def clear(self) -> None:
        self.fault = None

    def action(self, now: float) -> Action:
        act = decide(self.fault, now, self.rng)
        self.counts[act] = self.counts.get(act, 0) + 1
        return act


class FaultyDnsProtocol(asyncio.DatagramProtocol, Generic[V]):
    """Steering's UDP DNS with the chaos switch in front of the answer function."""

    def __init__(
        self, answer_fn: Callable[[DNSRecord, V], DNSRecord], view_fn: Callable[[], V], chaos: DnsChaos
    ) -> None:
        self.answer_fn = answer_fn
        self.view_fn = view_fn
        self.chaos = chaos
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def _send(self, reply: DNSRecord, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply.pack(), addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = DNSRecord.parse(data)
        except DNSError:
            return
        act = self.chaos.action(time.time())
        fault = self.chaos.fault
        if act == "drop":
            return
        if act == "servfail":
            reply = query.reply()
            reply.header.rcode = RCODE.SERVFAIL
            self._send(reply, addr)
            return
        view = cast(V, fault.frozen) if act == "stale" and fault is not None else self.view_fn()
        reply = self.answer_fn(query, view)
        if act == "slow" and fault is not None:
            asyncio.get_running_loop().call_later(fault.ms / 1000.0, self._send, reply, addr)
        else:
            self._send(reply, addr)
