"""Prometheus metrics of the callers and agents (agents.metrics), fed with the records and status
files the supervisors already get; each test has its own registry."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents import loadmodel, metrics
from agents.metrics import AgentMetrics, LoadMetrics, WorkerCounters, attempt_region
from core import history, schema
from tests.unit.loopback import free_port

SBCS = {"10.77.0.11": "region-a", "10.77.0.12": "region-b"}


def _value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    v = reg.get_sample_value(name, labels)
    return 0.0 if v is None else v


def _result(**kw: Any) -> dict[str, Any]:
    base = {
        "final_code": 200,
        "final_reason": "OK",
        "pdd_ms": 120.0,
        "setup_ms": 300.0,
        "duration_s": 2.0,
        "rx_packets": 100,
        "tx_packets": 100,
        "loss_pct": 0.0,
        "jitter_ms": 0.5,
        "end_reason": "caller_bye",
        "reply_headers": {"X-Wobble-Region": "region-b"},
    }
    return {**base, **kw}


def _rec(result: dict[str, Any] | None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        run_id="r", call_id="l1", hold_s=2.0, chosen_by="http", worker=0, t_invoke=1.0, t_end=4.0, result=result
    )
    return loadmodel.call_record(**{**args, **kw})


def test_attempt_region() -> None:
    assert attempt_region("sip:support@10.77.0.12:5060", {"steered_region": "region-a"}, SBCS) == "region-a"
    assert attempt_region("sip:support@10.77.0.12:5060", {"srv_regions": ["region-b", "region-a"]}, SBCS) == "region-b"
    assert attempt_region("sip:support@10.77.0.11:5060", None, SBCS) == "region-a"
    assert attempt_region("sip:support@10.77.0.11", {}, SBCS) == "region-a"
    assert attempt_region("sip:a-001@127.0.0.1:25070", None, SBCS) == "unknown"
    assert attempt_region(None, None, SBCS) == "none"
    assert metrics.sbc_regions() == SBCS  # the lab topology's SBCs


def test_load_metrics_from_records() -> None:
    reg = CollectorRegistry()
    m = LoadMetrics(reg)
    m.attempt("region-b", "http")
    m.attempt("region-b", "http")
    m.attempt("none", "http")
    m.complete(_rec(_result()))  # ok
    m.complete(_rec(_result(pdd_ms=1800.0)))  # ok, slow to ring
    m.complete(_rec(_result(final_code=503, setup_ms=None, rx_packets=0, tx_packets=0, end_reason="rejected")))
    m.complete(_rec(_result(end_reason="remote_bye")))  # answered, dropped
    m.complete(_rec(None, end_reason="no_route"))
    m.complete(_rec(None, end_reason="worker_lost"))
    m.complete(history.recovery_record(schema.invoke_record("old", "l9", 1.0, None, "http", None), "load:r"))
    assert _value(reg, "wobble_call_attempts_total", region="region-b", chosen_by="http") == 2
    assert _value(reg, "wobble_call_attempts_total", region="none", chosen_by="http") == 1
    outcomes = {
        ("ok", "caller_bye"): 2,
        ("fail", "503"): 1,
        ("fail", "dropped"): 1,
        ("fail", "no_route"): 1,
        ("info", "worker_lost"): 1,
        ("info", "recovered"): 1,
    }
    for (outcome, reason), n in outcomes.items():
        assert _value(reg, "wobble_call_outcomes_total", outcome=outcome, reason=reason) == n, (outcome, reason)
    # PDD: the calls that rang (4: two ok, the 503 and the dropped one had a pdd; no_route had none)
    assert _value(reg, "wobble_call_pdd_seconds_count") == 4
    assert _value(reg, "wobble_call_pdd_seconds_bucket", le="0.2") == 3
    assert _value(reg, "wobble_call_pdd_seconds_bucket", le="1.5") == 3
    assert _value(reg, "wobble_call_pdd_seconds_bucket", le="2.0") == 4
    assert _value(reg, "wobble_call_pdd_seconds_sum") == pytest.approx(0.12 * 3 + 1.8)
    # MOS: answered calls only (3), all clean here
    assert _value(reg, "wobble_call_mos_count") == 3
    assert _value(reg, "wobble_call_mos_bucket", le="4.0") == 0
    assert _value(reg, "wobble_call_mos_bucket", le="4.5") == 3


def test_mos_buckets_cover_the_e_model_range() -> None:
    reg = CollectorRegistry()
    m = LoadMetrics(reg)
    m.complete(_rec(_result(rx_packets=0, tx_packets=0)))  # silent: MOS 1.0
    m.complete(_rec(_result(loss_pct=20.0)))  # heavy loss
    assert _value(reg, "wobble_call_mos_bucket", le="1.0") == 1
    assert 1 <= _value(reg, "wobble_call_mos_bucket", le="3.5") <= 2
    assert metrics.MOS_BUCKETS[0] == 1.0 and metrics.MOS_BUCKETS[-1] >= 4.5


def _status(
    pid: int,
    counters: WorkerCounters,
    *,
    registered: int = 2,
    updated: float = 100.0,
    state: str = "running",
    direct: bool = False,
) -> dict[str, Any]:
    agents = {f"a-00{i}": {"code": 200 if i <= registered else 0, "active": i <= registered} for i in range(1, 3)}
    return {
        "worker": 0,
        "pid": pid,
        "state": state,
        "region": "region-a",
        "updated": updated,
        "direct": direct,
        "agents": agents,
        "counters": counters.as_dict(),
    }


def test_worker_counters() -> None:
    c = WorkerCounters()
    c.login(True)
    c.login(False)
    c.login(False)
    c.answered()
    c.call_ended({"screen_pop": "late"})
    c.call_ended({"screen_pop": "none"})
    c.call_ended({})
    assert c.as_dict() == {
        "logins": {"ok": 1, "fail": 2},
        "calls_answered": 1,
        "screen_pops": {"ok": 0, "late": 1, "fallback": 0, "none": 2},
    }


def test_agent_metrics_from_worker_status_files() -> None:
    reg = CollectorRegistry()
    m = AgentMetrics("region-a", reg)
    assert _value(reg, "wobble_agents_logged_in", region="region-a") == 0
    assert reg.get_sample_value("wobble_agent_screen_pops_total", {"region": "region-a", "result": "fallback"}) == 0
    w0, w1 = WorkerCounters(), WorkerCounters()
    w0.login(True)
    w0.login(True)
    w1.login(False)
    w1.login(True)
    m.observe_worker(0, _status(10, w0), now=101.0)
    m.observe_worker(1, _status(11, w1, registered=1), now=101.0)
    assert _value(reg, "wobble_agents_logged_in", region="region-a") == 3
    assert _value(reg, "wobble_agent_logins_total", region="region-a", result="ok") == 3
    assert _value(reg, "wobble_agent_logins_total", region="region-a", result="fail") == 1
    # the same file read again counts nothing twice
    m.observe_worker(0, _status(10, w0), now=102.0)
    assert _value(reg, "wobble_agent_logins_total", region="region-a", result="ok") == 3
    # calls
    for pop in ("ok", "ok", "fallback"):
        w0.answered()
        w0.call_ended({"screen_pop": pop})
    m.observe_worker(0, _status(10, w0), now=103.0)
    assert _value(reg, "wobble_agent_calls_answered_total", region="region-a") == 3
    assert _value(reg, "wobble_agent_screen_pops_total", region="region-a", result="ok") == 2
    assert _value(reg, "wobble_agent_screen_pops_total", region="region-a", result="fallback") == 1
    # worker 0 dies: its agents are out of service at once; its restart (new pid) counts from zero
    m.observe_worker(0, _status(10, w0), now=104.0, alive=False)
    assert _value(reg, "wobble_agents_logged_in", region="region-a") == 1
    fresh = WorkerCounters()
    fresh.login(True)
    m.observe_worker(0, _status(20, fresh), now=110.0)
    assert _value(reg, "wobble_agent_logins_total", region="region-a", result="ok") == 4
    assert _value(reg, "wobble_agent_calls_answered_total", region="region-a") == 3
    assert _value(reg, "wobble_agents_logged_in", region="region-a") == 3
    # a stale file, a stopping worker, or no file: nobody in service there
    m.observe_worker(1, _status(11, w1, registered=1, updated=100.0), now=200.0)
    assert _value(reg, "wobble_agents_logged_in", region="region-a") == 2  # worker 0's two
    m.observe_worker(0, _status(20, fresh, state="stopping", updated=200.0), now=200.0)
    m.observe_worker(1, None, now=200.0)
    assert _value(reg, "wobble_agents_logged_in", region="region-a") == 0
    # direct mode (no registration): every agent of a live worker is in service
    m.observe_worker(1, _status(12, WorkerCounters(), registered=0, updated=200.0, direct=True), now=200.0)
    assert _value(reg, "wobble_agents_logged_in", region="region-a") == 2


def test_serve_exposes_the_registry_and_a_taken_port_is_not_fatal() -> None:
    reg = CollectorRegistry()
    LoadMetrics(reg).attempt("region-a", "ttl")
    assert metrics.serve(reg, 0) is None
    port = free_port(socket.SOCK_STREAM)
    server = metrics.serve(reg, port, "127.0.0.1")
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert 'wobble_call_attempts_total{chosen_by="ttl",region="region-a"} 1.0' in body
        assert metrics.serve(CollectorRegistry(), port, "127.0.0.1") is None  # taken: logged, not raised
    finally:
        server.shutdown()
        server.server_close()
