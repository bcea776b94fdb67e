"""The userspace delay line behind NFQUEUE: delay, jitter, reorder, loss, Gilbert-Elliott loss,
duplication — for kernels without sch_netem.

Two halves:
- `Scheduler` (pure): given a packet's arrival time, decide drop / release time / duplicate, with
  an injected `random.Random`. Unit-tested without root.
- `DelayLine` (I/O): binds an NFQUEUE with the `NetfilterQueue` package, asks the scheduler about
  each packet and gives verdicts at the release times from one asyncio event loop (one thread: no
  verdict races).

Releasing a packet sets the fault's own mark bit and gives the verdict `repeat`, not `accept`: an
NFQUEUE `accept` resumes at the *next table*, skipping the rest of the mangle chain, so a second
NFQUEUE fault in the same direction would never see the packet. With `repeat` the packet runs the
mangle chain again, skips this fault's rule (its bit is set) and meets the next fault's. Duplicates
are re-sent through a raw IPv4 socket with the packet's marks plus this fault's bit, so they skip
this fault and meet the faults after it, like the original.

Jitter keeps order (FIFO): release = max(previous release, arrival + delay + U(-jitter, +jitter)),
clipped at the arrival time. A packet that would overtake the one before it waits for it instead,
so jitter never reorders and the mean added delay grows a little when packets come faster than the
jitter range (netem reorders with plain jitter; the lab wants jitter and reordering separately).
Reordering is its own fault: `immediate_pct` of the packets are released at once (ahead of the
delayed ones, as netem's `reorder`), the rest wait `delay` in FIFO order.

Gilbert-Elliott: the state at a packet's arrival decides its loss (good: 1-k, bad: 1-h), then the
state moves (good -> bad with p, bad -> good with r), as netem's gemodel does; the stationary
loss is (r(1-k) + p(1-h)) / (p + r), i.e. p / (p + r) with the defaults h=0, k=100.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("wobble.delayline")

#: The mark bits the NFQUEUE faults use, one bit per live fault (see chaos.net.rules.mark_bit).
MARK_MASK = 0xFFFF0000
#: How late a due packet may be released at most before the timer is considered early.
_SLACK_S = 0.0002


@dataclass(frozen=True)
class GilbertElliott:
    """Percentages, as netem's `loss gemodel p r 1-h 1-k`."""

    p: float
    r: float
    h: float = 0.0
    k: float = 100.0

    def stationary_loss(self) -> float:
        """Long-run loss fraction (0..1)."""
        p, r = self.p / 100, self.r / 100
        if p + r == 0:
            return 1 - self.k / 100
        bad = p / (p + r)
        return (1 - bad) * (1 - self.k / 100) + bad * (1 - self.h / 100)


@dataclass(frozen=True)
class DelayParams:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    #: Share of packets released at once, ahead of the delayed ones (reorder; sip_delay's pct).
    immediate_pct: float = 0.0
    loss_pct: float = 0.0
    ge: GilbertElliott | None = None
    dup_pct: float = 0.0


@dataclass(frozen=True)
class Decision:
    drop: bool
    release_at: float
    duplicate: bool = False


class Scheduler:
    """Per-packet decisions for one fault. Not thread-safe (the delay line is one thread)."""

    def __init__(self, params: DelayParams, rng: random.Random | None = None) -> None:
        self.params = params
        self.rng = rng or random.Random()
        self.bad = False  # Gilbert-Elliott state
        self.last_release = float("-inf")

    def _lost(self) -> bool:
        ge = self.params.ge
        if ge is not None:
            rnd = self.rng.random
            if self.bad:
                lost = rnd() * 100 >= ge.h
                if rnd() * 100 < ge.r:
                    self.bad = False
            else:
                lost = rnd() * 100 >= ge.k
                if rnd() * 100 < ge.p:
                    self.bad = True
            return lost
        return self.params.loss_pct > 0 and self.rng.random() * 100 < self.params.loss_pct

    def decide(self, now: float) -> Decision:
        p = self.params
        if self._lost():
            return Decision(drop=True, release_at=now)
        dup = p.dup_pct > 0 and self.rng.random() * 100 < p.dup_pct
        if p.immediate_pct > 0 and self.rng.random() * 100 < p.immediate_pct:
            return Decision(drop=False, release_at=now, duplicate=dup)  # overtakes the queue
        delay = p.delay_ms
        if p.jitter_ms > 0:
            delay += self.rng.uniform(-p.jitter_ms, p.jitter_ms)
        at = max(now + max(delay, 0.0) / 1000.0, self.last_release)
        self.last_release = at
        return Decision(drop=False, release_at=at, duplicate=dup)


# ---- packet I/O ------------------------------------------------------------------------------


def zero_udp_checksum(packet: bytes) -> bytes:
    """An IPv4/UDP packet with its UDP checksum set to 0 ("none", valid for IPv4) for re-sending."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 17:
        return packet
    ihl = (packet[0] & 0x0F) * 4
    return packet[: ihl + 6] + b"\x00\x00" + packet[ihl + 8 :]


@dataclass
class Stats:
    queued: int = 0
    dropped: int = 0
    duplicated: int = 0
    released: int = 0
    max_held: int = 0


class DelayLine:
    """Serve one NFQUEUE from the running asyncio loop until `close()`."""

    def __init__(
        self, queue_num: int, scheduler: Scheduler, copy_packet: bool, mark_bit: int, max_len: int = 20000
    ) -> None:
        self.queue_num = queue_num
        self.mark_bit = mark_bit
        self.scheduler = scheduler
        self.copy_packet = copy_packet
        self.max_len = max_len
        self.stats = Stats()
        self._heap: list[tuple[float, int, Any, bool]] = []
        self._seq = 0
        self._nfq: Any = None
        self._raw: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        """Bind the queue (raises OSError if the number is taken); call before the rules go in."""
        from netfilterqueue import COPY_META, COPY_PACKET, NetfilterQueue

        nfq = NetfilterQueue()
        mode = COPY_PACKET if self.copy_packet else COPY_META
        try:
            nfq.bind(self.queue_num, self._on_packet, max_len=self.max_len, mode=mode, range=0xFFFF)
        except OSError:
            with contextlib.suppress(Exception):
                nfq.unbind()
            raise
        self._nfq = nfq
        if self.copy_packet:
            self._raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._nfq.get_fd(), self._readable)

    def _readable(self) -> None:
        try:
            self._nfq.run(block=False)
        except Exception:
            log.exception("nfqueue read failed")

    def _on_packet(self, pkt: Any) -> None:
        now = time.monotonic()
        self.stats.queued += 1
        d = self.scheduler.decide(now)
        if d.drop:
            self.stats.dropped += 1
            pkt.drop()
            return
        if d.duplicate:
            pkt.retain()
        if d.release_at <= now + _SLACK_S:
            self._release(pkt, d.duplicate)
            return
        self._seq += 1
        heapq.heappush(self._heap, (d.release_at, self._seq, pkt, d.duplicate))
        self.stats.max_held = max(self.stats.max_held, len(self._heap))
        self._arm()

    def _arm(self) -> None:
        if not self._heap or self._loop is None:
            return
        at = self._heap[0][0]
        if at >= self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._due)

    def _due(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now + _SLACK_S:
            _, _, pkt, dup = heapq.heappop(self._heap)
            self._release(pkt, dup)
        self._arm()

    def _release(self, pkt: Any, dup: bool) -> None:
        data = pkt.get_payload() if dup else b""
        mark = (pkt.get_mark() | self.mark_bit) & 0xFFFFFFFF
        pkt.set_mark(mark)
        pkt.repeat()
        self.stats.released += 1
        if dup and self._raw is not None:
            try:
                dst = socket.inet_ntoa(data[16:20])
                self._raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack("I", mark))
                self._raw.sendto(zero_udp_checksum(data), (dst, 0))
                self.stats.duplicated += 1
            except OSError as exc:
                log.warning("duplicate not sent: %s", exc)

    def flush(self) -> None:
        """Release everything still held at once (the fault is being reverted)."""
        while self._heap:
            _, _, pkt, _dup = heapq.heappop(self._heap)
            with contextlib.suppress(Exception):
                pkt.set_mark((pkt.get_mark() | self.mark_bit) & 0xFFFFFFFF)
                pkt.repeat()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
        if self._loop is not None and self._nfq is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._nfq.get_fd())
        if self._nfq is not None:
            with contextlib.suppress(Exception):
                self._nfq.unbind()
            self._nfq = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None
