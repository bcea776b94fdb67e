"""lab.records.reconcile and lab.records.placed: every class, and properties over random inputs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lab.records.placed import PlacedCall, from_events, outages
from lab.records.reconcile import CLASSES, PROBLEMS, OriginView, Recording, Records, classify_call, reconcile

NOW = 10_000.0


def call(
    cid: str = "c1", t_end: float | None = 9_000.0, talk: float = 10.0, region: str | None = "region-a"
) -> PlacedCall:
    return PlacedCall(cid, region, True, talk, t_end - talk - 1 if t_end else 8_000.0, None, t_end)


def rec(cid: str = "c1", dur: float = 10.0, sha: str = "ab", actual: str = "ab") -> Recording:
    return Recording(cid, dur, sha, actual)


def have(*cids: str, dur: float = 10.0) -> Records:
    return Records(frozenset(cids), {c: rec(c, dur) for c in cids})


def test_ok_when_cdr_and_full_recording_are_visible() -> None:
    assert classify_call(call(), OriginView(have("c1"), have("c1")), NOW).cls == "ok"


def test_recording_shorter_than_talk_by_more_than_a_second_is_incomplete() -> None:
    assert classify_call(call(talk=10), OriginView(have("c1", dur=8.9), None), NOW).cls == "incomplete_recording"
    assert classify_call(call(talk=10), OriginView(have("c1", dur=9.1), None), NOW).cls == "ok"


def test_checksum_mismatch() -> None:
    visible = Records(frozenset({"c1"}), {"c1": rec(sha="ab", actual="cd")})
    assert classify_call(call(), OriginView(visible, None), NOW).cls == "checksum_mismatch"


def test_committed_at_origin_but_not_visible_is_the_rpo() -> None:
    f = classify_call(call(), OriginView(have(), have("c1"), crashed_at=9_500.0), NOW)
    assert f.cls == "committed_not_replicated"
    assert "cdr and recording" in f.why


def test_recording_alone_missing_but_committed() -> None:
    visible = Records(frozenset({"c1"}), {})
    assert classify_call(call(), OriginView(visible, have("c1")), NOW).cls == "committed_not_replicated"


def test_in_progress_at_the_crash_never_committed() -> None:
    view = OriginView(have(), have(), crashed_at=9_000.5)
    assert classify_call(call(t_end=None), view, NOW).cls == "never_committed"
    assert classify_call(call(t_end=9_001.0), view, NOW).cls == "never_committed"  # ended after the crash
    assert classify_call(call(t_end=8_999.5), view, NOW).cls == "never_committed"  # within the grace


def test_finished_long_before_the_crash_and_not_in_the_primary_was_never_written() -> None:
    view = OriginView(have(), have(), crashed_at=9_500.0)
    assert classify_call(call(t_end=9_000.0), view, NOW).cls == "not_written"
    assert classify_call(call(), OriginView(have(), have()), NOW).cls == "not_written"


def test_no_ground_truth_is_missing() -> None:
    assert classify_call(call(), OriginView(have(), None, crashed_at=9_500.0), NOW).cls == "missing"
    assert classify_call(call(), None, NOW).cls == "missing"


def test_live_calls_and_just_ended_calls_are_in_progress() -> None:
    view = OriginView(have(), have())
    assert classify_call(call(t_end=None), view, NOW).cls == "in_progress"
    assert classify_call(call(t_end=NOW - 1.0), view, NOW).cls == "in_progress"


def test_report_counts_problems_since_and_unexpected() -> None:
    calls = [
        call("ok1"),
        call("lost", t_end=9_100),
        call("old", t_end=100.0),
        PlacedCall("unanswered", "region-a", False, 0.0, 9_000.0, None, 9_001.0),
    ]
    views = {"region-a": OriginView(have("ok1", "stray"), have("ok1", "lost", "stray"), crashed_at=9_500.0)}
    report = reconcile("region-b", calls, views, NOW, since=1_000.0)
    d = report.as_dict()
    assert d["counts"]["ok"] == 1 and d["counts"]["committed_not_replicated"] == 1
    assert d["answered_calls"] == 2  # the old call is before --since; the unanswered one expects nothing
    assert report.problems == 1
    assert d["unexpected_records"] == 1
    assert [r["call_id"] for r in d["records"]] == ["lost"]


def test_call_without_completion_when_a_region_crashed() -> None:
    calls = [PlacedCall("x", None, False, 0.0, 9_000.0, None, None)]
    crashed = {"region-a": OriginView(have(), have(), crashed_at=9_500.0)}
    assert reconcile("region-b", calls, crashed, NOW).counts["never_committed"] == 1
    assert reconcile("region-b", calls, {"region-a": OriginView(have(), have())}, NOW).counts["in_progress"] == 1


ids = st.sampled_from([f"c{i}" for i in range(8)])


@given(
    visible_cdr=st.frozensets(ids),
    visible_rec=st.frozensets(ids),
    truth=st.one_of(st.none(), st.frozensets(ids)),
    crashed=st.one_of(st.none(), st.floats(8_000, 9_999)),
    ends=st.dictionaries(ids, st.one_of(st.none(), st.floats(7_000, 9_990))),
)
def test_every_answered_call_gets_exactly_one_class(
    visible_cdr: frozenset[str],
    visible_rec: frozenset[str],
    truth: frozenset[str] | None,
    crashed: float | None,
    ends: dict[str, float | None],
) -> None:
    visible = Records(visible_cdr, {c: rec(c) for c in visible_rec})
    view = OriginView(visible, None if truth is None else have(*truth), crashed)
    calls = [call(c, t_end=e) for c, e in ends.items()]
    report = reconcile("region-b", calls, {"region-a": view}, NOW)
    assert sum(report.counts.values()) == len(calls)
    assert set(report.counts) == set(CLASSES)
    for f in report.findings:
        both = f.call_id in visible_cdr and f.call_id in visible_rec
        assert (f.cls == "ok") <= both  # ok only when both records are visible
        if f.cls == "committed_not_replicated":
            assert truth is not None and f.call_id in truth and not both
        if truth is None and not both and f.cls in PROBLEMS:
            assert f.cls == "missing"


def test_placed_calls_from_the_event_log() -> None:
    log = [
        {"kind": "call_invoke", "call_id": "w1", "t_invoke": 100.0},
        {
            "kind": "call",
            "call_id": "w1",
            "t_invoke": 100.0,
            "region": "region-a",
            "fate": "survived",
            "duration_s": 3.0,
            "answered_at": 101.0,
            "t_end": 104.0,
        },
        {"kind": "load_invoke", "call_id": "l1", "t_invoke": 105.0},
        {"kind": "load_fail", "call_id": "l2", "t_invoke": 106.0, "region": None, "fate": None, "t_end": 107.0},
        {"kind": "load_ok", "call_id": "l3", "t_invoke": 50.0, "region": "region-b", "fate": "survived", "t_end": 60.0},
        {"kind": "agent_call", "call_id": "w1"},
        {"kind": "call", "call_id": ""},
    ]
    calls = {c.call_id: c for c in from_events(log, since=90.0)}
    assert set(calls) == {"w1", "l1", "l2"}
    assert calls["w1"].answered and calls["w1"].talk_s == 3.0 and calls["w1"].t_answer == 101.0
    assert calls["l1"].t_end is None and calls["l1"].region is None
    assert not calls["l2"].answered


def test_a_recorded_outage_stands_in_for_a_crash_after_the_region_is_back() -> None:
    # The region came back (its primary answers again, no crash visible): the event log's outage
    # still explains the calls it found in flight; calls placed after it, or ended before, do not.
    view = OriginView(have(), have(), outages=(9_000.5,))
    assert classify_call(call(t_end=9_003.0), view, NOW).cls == "never_committed"
    assert classify_call(call(t_end=8_900.0), view, NOW).cls == "not_written"
    later = PlacedCall("c2", "region-a", True, 5.0, 9_100.0, 9_101.0, 9_106.0)
    assert classify_call(later, view, NOW).cls == "not_written"


def test_outages_come_from_fault_events_on_the_region_its_pbx_or_its_database() -> None:
    evs = [
        {
            "kind": "fault_apply",
            "fault": "region_down",
            "target": "region-a",
            "services": ["pbx-a", "db-a"],
            "started_at": 30.0,
        },
        {"kind": "fault_apply", "fault": "kill", "target": "db-a", "services": ["db-a"], "started_at": 10.0},
        {"kind": "fault_apply", "fault": "loss", "target": "pbx-a", "services": ["pbx-a"], "started_at": 20.0},
        {"kind": "fault_apply", "fault": "stop", "target": "pbx-b", "services": ["pbx-b"], "started_at": 40.0},
        {"kind": "fault_revert", "fault": "kill", "target": "db-a", "ts": 50.0},
    ]
    assert outages(evs, "region-a", "a") == (10.0, 30.0)
    assert outages(evs, "region-b", "b") == (40.0,)
