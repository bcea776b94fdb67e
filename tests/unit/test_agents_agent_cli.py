"""CLI contracts of agents.caller and agents.agent (argument validation, result records, plans)."""

from __future__ import annotations

import itertools

import pytest

from agents import agent, caller
from agents.model import CallOutcome, RtpStats

CALLER_OK = ["--target", "sip:support@10.77.0.11", "--call-id", "w0123abcd", "--hold", "5", "--json"]
AGENT_OK = ["--region", "region-a", "--prefix", "a", "--count", "6", "--proxy", "10.77.1.11"]


def test_caller_defaults() -> None:
    args = caller.parse_args(CALLER_OK)
    assert args.timeout == 30.0 and args.local_port == 0 and args.from_user is None and args.hold == 5.0


@pytest.mark.parametrize(
    "extra",
    [
        ["--target", "tel:+123"],
        ["--target", "sip:"],
        ["--call-id", "has space"],
        ["--call-id", "a" * 65],
        ["--from-user", "x@y"],
        ["--hold", "-1"],
        ["--timeout", "0"],
        ["--local-port", "70000"],
        ["--media-timeout", "-2"],
    ],
)
def test_caller_rejects_bad_input(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        caller.parse_args(CALLER_OK + extra)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def _outcome(**kw: object) -> CallOutcome:
    base = CallOutcome(handle=1, direction="out", account="caller")
    for k, v in kw.items():
        setattr(base, k, v)
    return base


def test_result_answered_call() -> None:
    out = _outcome(
        final_code=200,
        final_reason="OK",
        response_seen=True,
        pdd_ms=12.0,
        setup_ms=220.0,
        duration_s=5.0,
        end_reason="caller_bye",
        reply_headers={"X-Wobble-Region": "region-b"},
        sip_call_id="abc",
        stats=RtpStats(rx_packets=250, tx_packets=251, rx_lost=0, loss_pct=0.0, jitter_ms=0.4),
    )
    rec = caller.result_dict("w1", "sip:support@x", out)
    assert rec["final_code"] == 200 and rec["region"] == "region-b" and rec["end_reason"] == "caller_bye"
    assert rec["rx_packets"] == 250 and rec["tx_packets"] == 251 and rec["jitter_ms"] == 0.4
    for key in ("call_id", "target", "pdd_ms", "setup_ms", "loss_pct", "rtt_ms", "reply_headers", "sip_call_id"):
        assert key in rec


def test_result_timeout_after_ringing_is_408() -> None:
    rec = caller.result_dict("w1", "sip:x@y", _outcome(final_code=0, response_seen=True, end_reason="timeout"))
    assert rec["final_code"] == 408 and rec["end_reason"] == "timeout"


def test_result_timeout_without_any_response_is_0_no_response() -> None:
    rec = caller.result_dict("w1", "sip:x@y", _outcome(final_code=0, response_seen=False, end_reason="timeout"))
    assert rec["final_code"] == 0 and rec["end_reason"] == "no_response"


def test_result_rejected_keeps_network_code() -> None:
    rec = caller.result_dict("w1", "sip:x@y", _outcome(final_code=503, response_seen=True, end_reason="rejected"))
    assert rec["final_code"] == 503 and rec["end_reason"] == "rejected" and rec["region"] is None


def test_result_without_outcome() -> None:
    rec = caller.result_dict("w1", "sip:x@y", None, end_reason="watchdog")
    assert rec["final_code"] == 0 and rec["end_reason"] == "watchdog" and rec["rx_packets"] == 0


def test_agent_plan_spreads_agents_ports_and_rtp_ranges() -> None:
    args = agent.parse_args([*AGENT_OK, "--sip-port", "5070", "--rtp-base", "30000", "--per-process", "4"])
    plan = agent.plan(args)
    assert list(plan) == [0, 1]
    assert plan[0]["agents"] == ["a-001", "a-002", "a-003", "a-004"] and plan[1]["agents"] == ["a-005", "a-006"]
    assert plan[0]["sip_port"] == 5070 and plan[1]["sip_port"] == 5071
    ranges = sorted(r for w in plan.values() for r in w["rtp"].values())
    assert ranges[0] == [30000, 30019] and ranges[-1] == [30100, 30119]
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))  # disjoint


@pytest.mark.parametrize(
    "extra",
    [
        ["--per-process", "5"],
        ["--per-process", "0"],
        ["--count", "0"],
        ["--expires", "5"],
        ["--rtp-span", "3"],
        ["--rtp-base", "65500"],
        ["--sip-port", "30010", "--rtp-base", "30000"],  # SIP inside the RTP range
        ["--proxy", "sip:10.0.0.1"],
        ["--prefix", "a b"],
    ],
)
def test_agent_rejects_bad_input(extra: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        agent.parse_args([*AGENT_OK, *extra])
    assert exc.value.code == 2


def test_agent_names_and_headers() -> None:
    assert agent.agent_name("a", 1) == "a-001" and agent.agent_name("b", 42) == "b-042"
    assert agent.worker_count(4, 4) == 1 and agent.worker_count(5, 4) == 2
    assert agent.answer_headers("a-001", "region-a", direct=False) == (("X-Wobble-Agent", "a-001"),)
    assert ("X-Wobble-Region", "region-a") in agent.answer_headers("a-001", "region-a", direct=True)


def test_agent_event_record() -> None:
    stats = RtpStats(rx_packets=225, tx_packets=226, rx_lost=2, loss_pct=0.881, jitter_ms=1.0)
    out = CallOutcome(
        handle=3,
        direction="in",
        account="a-002",
        lab_call_id="w9",
        sip_call_id="sid",
        final_code=200,
        duration_s=4.5,
        end_reason="remote_bye",
        stats=stats,
    )
    ev = agent.agent_event(out, "region-a", 0)
    assert ev["call_id"] == "w9" and ev["agent"] == "a-002" and ev["agent_region"] == "region-a"
    assert ev["rx_packets"] == 225 and ev["loss_pct"] == 0.881 and ev["duration_s"] == 4.5
    assert ev["end_reason"] == "remote_bye" and ev["sip_call_id"] == "sid"
