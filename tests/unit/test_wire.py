"""core.wire: reading the carrier network's SIP back per lab call."""

from __future__ import annotations

from core.wire import agreement, parse_fields

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


def test_agreement_sets_the_lab_failed_beside_the_wire_failed() -> None:
    seen = parse_fields(LINES)
    done = {
        "l000000000001": {"status": "ok"},
        "l000000000002": {"status": "fail", "whose": "customer"},
        "l000000000003": {"status": "fail", "fate": "dropped"},  # answered, then dropped: not a failed new call
        "l000000000009": {"status": "info", "whose": "harness"},  # never reached the wire
    }
    agree = agreement(done, seen)
    assert agree.lab_failed == {"l000000000002", "l000000000009"}
    assert agree.wire_failed == {"l000000000002", "l000000000009"}
    assert agree.never_on_wire == {"l000000000009"} and agree.difference == 0
    assert agree.as_dict()["only_lab"] == [] and agree.as_dict()["lab_failed"] == 2
