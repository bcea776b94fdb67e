"""Screen pop: the customer card an agent sees when a call arrives, from the CRM (lab.deps.crm).

    pop = ScreenPop(session, "http://10.77.1.61:8091", deadline_ms=500)
    res = await pop.fetch("w0123abcd")    # PopResult(status, ms, card, error)

status:
- `ok`       the CRM answered within `deadline_ms` (default 500).
- `late`     it answered after the deadline but before `hard_timeout_s` (default 2 s): the card
             arrived, late. Counts as a success for the breaker (the CRM is slow, not broken).
- `fallback` an error, a non-200 answer, a hard timeout, or the breaker is open: the card is the
             last good card for that caller (cached, `card["cached"]` true) or a generic one.
- `none`     no CRM configured.

The circuit breaker keeps an unhealthy CRM from being hammered: closed -> open after
`failures_to_open` (default 3) consecutive failures; open -> half-open `cooldown_s` (default 5 s)
later, letting ONE trial request through (other fetches meanwhile fall back at once); the trial's
success closes it, its failure opens it again for another cooldown. `clock` is injectable (tests
drive it by hand); it times both the breaker and `ms`.

The pop never delays answering: the agents service answers in the pjsua2 thread and runs `fetch`
as a separate asyncio task. `fetch` never raises (except when cancelled).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

OK = "ok"
LATE = "late"
FALLBACK = "fallback"
NONE = "none"
STATUSES = (OK, LATE, FALLBACK, NONE)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


@dataclass(frozen=True)
class PopResult:
    status: str  # ok | late | fallback | none
    ms: float | None  # time until the card was there (None for `none`)
    card: dict[str, Any] | None = None
    error: str | None = None  # why a fallback: "http 500", "timeout after 2 s", "breaker open", ...


def generic_card(caller: str) -> dict[str, Any]:
    return {
        "caller": caller,
        "name": "Unknown caller",
        "tier": "unknown",
        "open_tickets": None,
        "last_contact": None,
        "fallback": True,
        "cached": False,
    }


@dataclass
class Breaker:
    failures_to_open: int = 3
    cooldown_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0  # consecutive
    opened_at: float | None = None
    trial_in_flight: bool = False
    opens: int = 0  # times it opened (a counter for status/metrics)

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return CLOSED
        if self.trial_in_flight or self.clock() - self.opened_at >= self.cooldown_s:
            return HALF_OPEN
        return OPEN

    def allow(self) -> bool:
        """May a request go out now? In half-open, True once (the trial) until it reports back."""
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial_in_flight = False

    def abandon(self) -> None:
        """A request that went out was cancelled: neither verdict; free the half-open trial slot."""
        self.trial_in_flight = False

    def failure(self) -> None:
        self.failures += 1
        if self.trial_in_flight or (self.opened_at is None and self.failures >= self.failures_to_open):
            self.opened_at = self.clock()
            self.opens += 1
        self.trial_in_flight = False


@dataclass
class ScreenPop:
    session: aiohttp.ClientSession | None
    base_url: str | None
    deadline_ms: float = 500.0
    hard_timeout_s: float = 2.0
    failures_to_open: int = 3
    cooldown_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    cache_size: int = 1000
    breaker: Breaker = field(init=False)
    cache: OrderedDict[str, dict[str, Any]] = field(init=False, default_factory=OrderedDict)
    counts: dict[str, int] = field(init=False, default_factory=lambda: dict.fromkeys(STATUSES, 0))

    def __post_init__(self) -> None:
        self.breaker = Breaker(self.failures_to_open, self.cooldown_s, self.clock)

    @property
    def configured(self) -> bool:
        return bool(self.base_url) and self.session is not None

    def url(self, caller: str) -> str:
        return f"{str(self.base_url).rstrip('/')}/v1/screenpop/{quote(caller, safe='')}"

    async def fetch(self, caller: str) -> PopResult:
        result = await self._fetch(caller)
        self.counts[result.status] += 1
        return result

    async def _fetch(self, caller: str) -> PopResult:
        if not self.configured or self.session is None:
            return PopResult(NONE, None)
        t0 = self.clock()
        card: dict[str, Any] | None = None
        error: str | None = None
        if not self.breaker.allow():
            return self._fallback(caller, t0, "breaker open")
        try:
            async with self.session.get(
                self.url(caller), timeout=aiohttp.ClientTimeout(total=self.hard_timeout_s)
            ) as resp:
                if resp.status != 200:
                    error = f"http {resp.status}"
                else:
                    body = await resp.json(content_type=None)
                    card = body if isinstance(body, dict) else None
                    error = None if card is not None else "not a JSON object"
        except TimeoutError:
            card, error = None, f"timeout after {self.hard_timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            card, error = None, f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        except BaseException:  # cancelled: no verdict on the CRM
            self.breaker.abandon()
            raise
        if card is None:
            self.breaker.failure()
            return self._fallback(caller, t0, error)
        self.breaker.success()
        self._remember(caller, card)
        ms = self._ms(t0)
        return PopResult(OK if ms <= self.deadline_ms else LATE, ms, card)

    def _ms(self, t0: float) -> float:
        return round(max(0.0, self.clock() - t0) * 1000.0, 1)

    def _fallback(self, caller: str, t0: float, error: str | None) -> PopResult:
        cached = self.cache.get(caller)
        card = {**cached, "fallback": True, "cached": True} if cached is not None else generic_card(caller)
        return PopResult(FALLBACK, self._ms(t0), card, error)

    def _remember(self, caller: str, card: dict[str, Any]) -> None:
        self.cache[caller] = card
        self.cache.move_to_end(caller)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def status(self) -> dict[str, Any]:
        """For the worker status file."""
        return {
            "crm": self.base_url,
            "breaker": self.breaker.state,
            "breaker_opens": self.breaker.opens,
            "consecutive_failures": self.breaker.failures,
            "counts": dict(self.counts),
        }
