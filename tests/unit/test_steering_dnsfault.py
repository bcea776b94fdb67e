"""Steering's DNS chaos switch: the pure decision, the lease, and the stale snapshot."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.steering.dnsfault import DnsChaos, DnsFault, decide, parse_fault


def test_no_fault_answers() -> None:
    assert decide(None, 0.0, random.Random(1)) == "answer"


def test_a_lapsed_fault_answers() -> None:
    f = parse_fault({"mode": "drop", "ttl_s": 3}, now=100.0)
    assert decide(f, 102.9, random.Random(1)) == "drop"
    assert decide(f, 103.0, random.Random(1)) == "answer"


@given(st.floats(min_value=0, max_value=100), st.integers(min_value=0, max_value=2**32))
def test_share_of_faulty_answers_follows_pct(pct: float, seed: int) -> None:
    f = DnsFault("x", "servfail", pct=pct, expires_at=1e18)
    rng = random.Random(seed)
    n = 2000
    hits = sum(decide(f, 0.0, rng) == "servfail" for _ in range(n))
    assert abs(hits / n * 100 - pct) < 6  # ~4.5 sigma at worst (pct 50)


@pytest.mark.parametrize(
    "body", [{"mode": "nope"}, {"mode": "slow", "pct": 101}, {"mode": "slow", "ms": -1}, {"mode": "drop", "ttl_s": 0}]
)
def test_bad_bodies_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        parse_fault(body, now=0.0)


def test_renewals_keep_the_stale_snapshot() -> None:
    chaos = DnsChaos()
    chaos.set(parse_fault({"id": "f1", "mode": "stale"}, now=0.0), view="before failover")
    chaos.set(parse_fault({"id": "f1", "mode": "stale"}, now=1.0), view="after failover")
    assert chaos.fault is not None and chaos.fault.frozen == "before failover"
    chaos.set(parse_fault({"id": "f2", "mode": "stale"}, now=2.0), view="now")
    assert chaos.fault.frozen == "now"
    chaos.clear()
    assert chaos.action(3.0) == "answer"
