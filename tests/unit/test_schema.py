"""One schema for every call record: `wobble call --json` (lab.call.call_record) and the traffic
generator's load_* records (agents.loadmodel.call_record) share core.schema's core and version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents import loadmodel
from core import events, schema
from lab.call import Evidence, call_record
from lab.cdr import Cdr


def _caller(**kw: Any) -> dict[str, Any]:
    """An agents.caller.result_dict of an answered call."""
    base: dict[str, Any] = {
        "call_id": "w0123456789ab",
        "target": "sip:support@10.77.0.11:5060",
        "final_code": 200,
        "final_reason": "OK",
        "response_seen": True,
        "pdd_ms": 35.2,
        "setup_ms": 240.0,
        "duration_s": 5.01,
        "rx_packets": 250,
        "tx_packets": 251,
        "rx_lost": 0,
        "loss_pct": 0.0,
        "jitter_ms": 0.4,
        "jitter_max_ms": 1.1,
        "rtt_ms": None,
        "end_reason": "caller_bye",
        "reply_headers": {"X-Wobble-Region": "region-a", "X-Wobble-Agent": "a-003"},
        "region": "region-a",
        "sip_call_id": "abc@10.77.0.50",
        "started_at": 1000.0,
    }
    return {**base, **kw}


def _wobble_call(caller: dict[str, Any], evidence: Evidence | None = None) -> dict[str, Any]:
    return call_record(
        "w0123456789ab",
        caller,
        evidence or Evidence(),
        asked_region="region-a",
        chosen_by="target",
        steer=None,
        hold_s=5.0,
        targets_tried=["sip:support@10.77.0.11:5060"],
        t_invoke=1000.0,
        t_end=1006.0,
    )


def _load_ok(caller: dict[str, Any]) -> dict[str, Any]:
    return loadmodel.call_record(
        run_id="r1",
        call_id="l0123456789ab",
        hold_s=5.0,
        chosen_by="target",
        worker=0,
        t_invoke=1000.0,
        t_end=1006.0,
        result=caller,
        targets_tried=["sip:support@10.77.0.11:5060"],
    )


def test_wobble_call_record_and_load_ok_share_the_core_and_the_version() -> None:
    agent = {"agent": "a-003", "agent_region": "region-a", "rx_packets": 249, "tx_packets": 250, "loss_pct": 0.0}
    cdr = Cdr(uniqueid="1700000000.1", userfield="w0123456789ab", disposition="ANSWERED", billsec=5, dstchannel="x")
    call = _wobble_call(_caller(), Evidence(agent, Path("/tmp/x.wav"), 80044, cdr))
    load = _load_ok(_caller())
    assert load["status"] == "ok"  # a load_ok record
    # the core: every field, in order, at the front of both records
    assert tuple(call)[: len(schema.CORE_FIELDS)] == schema.CORE_FIELDS
    assert tuple(load)[: len(schema.CORE_FIELDS)] == schema.CORE_FIELDS
    assert call["schema"] == load["schema"] == schema.SCHEMA_VERSION == loadmodel.SCHEMA
    # the same caller result means the same thing in both
    for key in schema.CORE_FIELDS:
        if key not in ("run_id", "call_id"):
            assert call[key] == load[key], key
    assert call["run_id"] is None and load["run_id"] == "r1"
    assert call["status"] == "ok" and call["fate"] == "survived" and call["region"] == "region-a"
    assert call["mos"] is not None and call["mos"] > 4.0
    # and what only `wobble call` joins comes after the core
    assert call["agent"] == "a-003" and call["peer_rx_packets"] == 249 and call["cdr_id"] == "1700000000.1"
    assert call["recording_bytes"] == 80044 and call["answered_at"] == 1000.24 and call["steer"] is None
    assert load["worker"] == 0 and load["one_way_s"] == 0.0


@pytest.mark.parametrize(
    ("caller", "status", "fate"),
    [
        (
            {
                "final_code": 503,
                "final_reason": "Service Unavailable",
                "setup_ms": None,
                "end_reason": "rejected",
                "rx_packets": 0,
                "tx_packets": 0,
                "reply_headers": {},
                "region": None,
            },
            "fail",
            None,
        ),
        (
            {
                "final_code": 0,
                "final_reason": "",
                "pdd_ms": None,
                "setup_ms": None,
                "end_reason": "no_response",
                "rx_packets": 0,
                "tx_packets": 0,
                "reply_headers": {},
                "region": None,
            },
            "fail",
            None,
        ),
        ({"end_reason": "remote_bye"}, "fail", "dropped"),
        ({"rx_packets": 0}, "fail", "one_way"),
        ({"rx_packets": 0, "tx_packets": 0}, "fail", "silent"),
    ],
)
def test_outcomes_agree(caller: dict[str, Any], status: str, fate: str | None) -> None:
    call, load = _wobble_call(_caller(**caller)), _load_ok(_caller(**caller))
    for key in ("status", "fate", "mos", "final_code", "end_reason", "pdd_ms", "setup_ms"):
        assert call[key] == load[key], key
    assert (call["status"], call["fate"]) == (status, fate)


def test_unanswered_wobble_call_has_no_region_unless_the_sbc_said_so() -> None:
    rejected = _wobble_call(
        _caller(final_code=486, setup_ms=None, end_reason="rejected", reply_headers={}, region=None)
    )
    assert rejected["region"] is None and rejected["asked_region"] == "region-a" and rejected["mos"] is None


def test_core_record_refuses_unknown_fields_and_other_versions() -> None:
    with pytest.raises(ValueError, match="not core"):
        schema.core_record(agent="a-001")
    with pytest.raises(ValueError, match="schema"):
        schema.core_record(schema=schema.SCHEMA_VERSION + 1)
    a, b = schema.core_record(), schema.core_record()
    a["targets_tried"].append("x")
    assert b["targets_tried"] == []  # defaults are not shared between records


def test_invoke_record_fields() -> None:
    inv = schema.invoke_record("r1", "l1", 12.3456789, "sip:x@h", "http", 2, 4.0)
    assert tuple(inv) == schema.INVOKE_FIELDS and inv["t_invoke"] == 12.345679
    assert loadmodel.invoke_record is schema.invoke_record


def test_every_event_carries_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    ev = events.append(events.AgentLogin(agent="a-001", ok=True), path)
    assert ev["schema"] == schema.SCHEMA_VERSION and list(ev)[:3] == ["ts", "kind", "schema"]
    assert next(iter(events.read(path))).schema_version == schema.SCHEMA_VERSION


def test_outcome_reason() -> None:
    assert schema.outcome_reason({"status": "ok", "end_reason": "caller_bye", "final_code": 200}) == "caller_bye"
    assert schema.outcome_reason({"status": "fail", "final_code": 503, "end_reason": "rejected"}) == "503"
    assert schema.outcome_reason({"status": "fail", "fate": "dropped", "final_code": 200}) == "dropped"
    assert schema.outcome_reason({"status": "fail", "final_code": 0, "end_reason": "capacity"}) == "capacity"
    assert schema.outcome_reason({"status": "info", "final_code": 0, "end_reason": "recovered"}) == "recovered"


def test_wobble_call_counts_pdd_from_the_first_invite_like_the_load() -> None:
    from lab.call import from_first_invite

    last = _caller(started_at=1002.5, pdd_ms=30.0, setup_ms=200.0)  # the second SRV target, 2.5 s later
    moved = from_first_invite(last, 1000.0)
    assert (moved["pdd_ms"], moved["setup_ms"], moved["started_at"]) == (2530.0, 2700.0, 1000.0)
    assert _wobble_call(moved)["answered_at"] == 1002.7  # still when the 200 OK came
    assert from_first_invite(last, 1002.5) is last and from_first_invite(last, None) is last
