"""core.wire: reading the carrier network's SIP back per lab call."""

from __future__ import annotations

from core.wire import parse_fields

LINES = [
    "10.77.0.5|10.77.0.11|OPTIONS||OPTIONS|probe|x1",
    "10.77.0.50|10.77.0.11|INVITE||INVITE|l000000000001|c1",
    "10.77.0.11|10.77.0.50||100|INVITE|l000000000001|c1",
    "10.77.0.11|10.77.0.50||200|INVITE|l000000000001|c1",
    "10.77.0.50|10.77.0.11|ACK||ACK|l000000000001|c1",
    "10.77.0.50|10.77.0.11|INVITE||INVITE|l000000000002|c2",  # a dead SBC: nothing back
    "10.77.0.50|10.77.0.11|INVITE||INVITE|l000000000002|c2",
    "10.77.0.50|10.77.0.12|INVITE||INVITE|l000000000003|c3",
    "10.77.0.12|10.77.0.50||503|INVITE|l000000000003|c3",
    "10.77.0.50|10.77.0.11|INVITE||INVITE|l000000000003|c4",  # the next target answers
    "10.77.0.11|10.77.0.50||200,200|INVITE|l000000000003|c4",
    "garbage",
]


def test_calls_answered_on_the_wire() -> None:
    calls = parse_fields(LINES)
    assert set(calls) == {"l000000000001", "l000000000002", "l000000000003"}
    assert calls["l000000000001"].answered and calls["l000000000001"].invites == {"c1"}
    assert not calls["l000000000002"].answered and calls["l000000000002"].finals == []
    assert calls["l000000000003"].answered and calls["l000000000003"].invites == {"c3", "c4"}
    assert calls["l000000000003"].finals == [503, 200]
