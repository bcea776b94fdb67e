"""The traffic generator's pure logic: schedule, hold times, media tracking, fate, records, summary;
plus its SRV target choice against a fake steering DNS (no pjsua2 needed)."""

from __future__ import annotations

import asyncio
import random
import statistics
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import load, loadmodel
from agents.loadmodel import MediaTrack, call_record, classify_fate, classify_status, summarize
from core.stats import percentile


def test_schedule_is_deterministic_and_seed_dependent() -> None:
    a = loadmodel.schedule(5, 60, "poisson", "exp", 10, 1, seed=7)
    b = loadmodel.schedule(5, 60, "poisson", "exp", 10, 1, seed=7)
    c = loadmodel.schedule(5, 60, "poisson", "exp", 10, 1, seed=8)
    assert a == b and a != c
    assert [x.index for x in a] == list(range(len(a)))


def test_constant_arrivals_are_evenly_spaced() -> None:
    times = loadmodel.arrival_times(2, 6, "constant", random.Random(1))
    assert times == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5]
    assert len(loadmodel.arrival_times(5, 60, "constant", random.Random(1))) == 300
    assert len(loadmodel.arrival_times(3, 1, "constant", random.Random(1))) == 3


@given(seed=st.integers(0, 2**31), cps=st.sampled_from([1.0, 5.0, 20.0]))
@settings(max_examples=30, deadline=None)
def test_poisson_rate_is_about_right(seed: int, cps: float) -> None:
    duration = 400.0
    times = loadmodel.arrival_times(cps, duration, "poisson", random.Random(seed))
    n = cps * duration
    assert abs(len(times) - n) < 5 * n**0.5  # 5 sigma
    assert times == sorted(times) and all(0 <= t < duration for t in times)


@given(seed=st.integers(0, 2**31), mean=st.floats(1.0, 60.0), minimum=st.floats(0.0, 3.0))
@settings(max_examples=30, deadline=None)
def test_exponential_hold_mean_and_floor(seed: int, mean: float, minimum: float) -> None:
    rng = random.Random(seed)
    holds = [loadmodel.hold_time("exp", mean, minimum, rng) for _ in range(4000)]
    assert min(holds) >= minimum
    expected = loadmodel.expected_hold_mean("exp", mean, minimum)
    assert abs(statistics.fmean(holds) - expected) < 0.1 * expected  # ~6 sigma at n=4000


def test_fixed_hold() -> None:
    plan = loadmodel.schedule(2, 6, "constant", "fixed", 2, 1, seed=1)
    assert {a.hold_s for a in plan} == {2.0}


def test_percentile() -> None:
    assert percentile([], 50) is None and percentile([None], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(range(1, 101), 95) == 95.05
    assert percentile([5, None, 1], 0) == 1 and percentile([5, 1], 100) == 5


@pytest.mark.parametrize(
    ("answered", "end_reason", "rx", "tx", "one_way_s", "fate"),
    [
        (False, "rejected", 0, 0, 0.0, None),
        (False, "no_response", 0, 0, 0.0, None),
        (True, "caller_bye", 100, 100, 0.0, "survived"),
        (True, "stopped", 40, 40, 0.0, "survived"),
        (True, "caller_bye", 0, 0, 0.0, "silent"),
        (True, "media_timeout", 0, 0, 0.0, "silent"),
        (True, "remote_bye", 50, 50, 0.0, "dropped"),
        (True, "media_timeout", 30, 300, 5.0, "dropped"),
        (True, "transport_error", 30, 30, 0.0, "dropped"),
        (True, "caller_bye", 0, 100, 0.0, "one_way"),
        (True, "caller_bye", 100, 0, 0.0, "one_way"),
        (True, "caller_bye", 80, 100, 2.5, "one_way"),
        (True, "caller_bye", 98, 100, 1.0, "survived"),
    ],
)
def test_fate_truth_table(
    answered: bool, end_reason: str, rx: int, tx: int, one_way_s: float, fate: str | None
) -> None:
    assert classify_fate(answered, end_reason, rx, tx, one_way_s) == fate


@pytest.mark.parametrize(
    ("answered", "fate", "end_reason", "status"),
    [
        (True, "survived", "caller_bye", "ok"),
        (True, "dropped", "remote_bye", "fail"),
        (True, "one_way", "caller_bye", "fail"),
        (True, "silent", "caller_bye", "fail"),
        (False, None, "rejected", "fail"),
        (False, None, "capacity", "fail"),
        (False, None, "no_route", "fail"),
        (False, None, "timeout", "fail"),
        (False, None, "stopped", "info"),
        (False, None, "worker_lost", "info"),
        (True, "survived", "worker_lost", "info"),
        (False, None, "abandoned", "info"),
    ],
)
def test_status(answered: bool, fate: str | None, end_reason: str, status: str) -> None:
    assert classify_status(answered, fate, end_reason) == status


def test_media_track_finds_one_way_stretches() -> None:
    t = MediaTrack()
    for i in range(10):  # both ways for 5 s
        t.feed(i * 0.5, 25 * i, 25 * i)
    assert t.one_way_s == 0.0
    for i in range(10, 16):  # rx stuck at 225 for 3 s while tx counts
        t.feed(i * 0.5, 225, 25 * i)
    assert t.one_way_s == pytest.approx(3.0)
    u = MediaTrack()
    for i in range(10):  # nothing moves at all: not one-way
        u.feed(i * 0.5, 0, 0)
    assert u.one_way_s == 0.0
    v = MediaTrack()
    for i in range(10):  # tx stuck, rx flows
        v.feed(i * 0.5, 25 * i, 7)
    assert v.one_way_s == pytest.approx(4.5)


def _result(**kw: Any) -> dict[str, Any]:
    base = {
        "final_code": 200,
        "final_reason": "OK",
        "pdd_ms": 12.0,
        "setup_ms": 210.0,
        "duration_s": 2.0,
        "rx_packets": 100,
        "tx_packets": 100,
        "rx_lost": 0,
        "loss_pct": 0.0,
        "jitter_ms": 0.5,
        "rtt_ms": None,
        "end_reason": "caller_bye",
        "reply_headers": {"X-Wobble-Region": "region-b"},
        "sip_call_id": "x",
    }
    return {**base, **kw}


def _rec(result: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "run_id": "r",
        "call_id": "l000000000001",
        "hold_s": 2.0,
        "chosen_by": "target",
        "worker": 0,
        "t_invoke": 1.0,
        "t_end": 4.0,
        "result": result,
    }
    return call_record(**{**args, **kw})


def test_call_record() -> None:
    ok = _rec(_result(), targets_tried=["sip:a@h"])
    assert ok["status"] == "ok" and ok["fate"] == "survived" and ok["region"] == "region-b"
    assert ok["mos"] is not None and ok["mos"] >= 4.3 and ok["target"] == "sip:a@h"
    assert ok["pdd_ms"] == 12.0 and ok["rx_packets"] == 100 and ok["schema"] == 1
    rej = _rec(
        _result(
            final_code=503,
            final_reason="Service Unavailable",
            setup_ms=None,
            duration_s=0.0,
            rx_packets=0,
            tx_packets=0,
            end_reason="rejected",
            reply_headers={},
        )
    )
    assert rej["status"] == "fail" and rej["fate"] is None and rej["mos"] is None and rej["region"] is None
    cap = _rec(None, end_reason="capacity", worker=None)
    assert cap["status"] == "fail" and cap["end_reason"] == "capacity" and cap["final_code"] == 0
    lost = _rec(None, end_reason="worker_lost")
    assert lost["status"] == "info"
    silent = _rec(_result(rx_packets=0, tx_packets=0))
    assert silent["fate"] == "silent" and silent["mos"] == 1.0 and silent["status"] == "fail"
    new_id = loadmodel.new_call_id(random.Random(3))
    assert len(new_id) == 13 and new_id[0] == "l" and int(new_id[1:], 16) >= 0


def test_summary_math() -> None:
    recs = [_rec(_result(pdd_ms=float(10 * i), mos=None)) for i in range(1, 9)]
    recs.append(_rec(_result(end_reason="remote_bye")))
    recs.append(_rec(None, end_reason="capacity"))
    recs.append(_rec(None, end_reason="no_route"))
    recs.append(_rec(None, end_reason="worker_lost"))
    stats = loadmodel.RunStats(cps_asked=2.0, launch_s=5.0, duration_s=9.0, max_concurrent_seen=3, workers=2)
    s = summarize("r", recs, stats)
    assert (s["attempts"], s["ok"], s["fail"], s["info"]) == (12, 8, 3, 1)
    assert s["ok_ratio"] == round(8 / 12, 4)
    assert s["fail_reasons"] == {"capacity": 1, "dropped": 1, "no_route": 1}
    assert s["by_region"] == {"region-b": 8} and s["fates"] == {"dropped": 1, "survived": 8}
    assert s["cps_achieved"] == 2.0  # 10 reached a worker in 5 s
    assert s["pdd_ms_p50"] == 40.0  # 10..80 and 12 and s["setup_ms_p50"] == 210.0
    assert s["mos_p5"] is not None and s["mos_p50"] is not None
    assert s["max_concurrent_seen"] == 3 and s["workers"] == 2 and s["duration_s"] == 9.0
    empty = summarize("r", [], loadmodel.RunStats(cps_asked=1.0))
    assert empty["attempts"] == 0 and empty["ok_ratio"] == 0.0 and empty["pdd_ms_p50"] is None


def test_cli_validation() -> None:
    args = load.parse_args(["--cps", "5", "--duration", "60", "--target", "sip:support@10.77.0.11:5060"])
    assert args.seed is not None and args.run_id.startswith("load-") and args.target == ["sip:support@10.77.0.11:5060"]
    assert load.worker_count(40) == 10 and load.worker_count(9) == 3
    with pytest.raises(SystemExit):
        load.parse_args(["--cps", "5", "--duration", "60"])  # neither --target nor --steer
    with pytest.raises(SystemExit):
        load.parse_args(["--cps", "5", "--duration", "60", "--steer", "http", "--target", "sip:a@b"])
    with pytest.raises(SystemExit):  # SIP ports inside the RTP range
        load.parse_args(["--cps", "5", "--duration", "6", "--target", "sip:a@b", "--sip-port-base", "40010"])


# --------------------------------------------------------------------------------------------
# SRV steering against a fake DNS server
# --------------------------------------------------------------------------------------------


class _FakeDns(asyncio.DatagramProtocol):
    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self.queries = 0
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        from dnslib import DNSRecord

        from lab.steering.dns import Target, answer

        self.queries += 1
        targets = [Target("region-a", "10.77.0.11", 5060, 0), Target("region-b", "10.77.0.12", 5060, 100)]
        assert self.transport is not None
        self.transport.sendto(answer(DNSRecord.parse(data), "cx.lab", targets, self.ttl).pack(), addr)


@pytest.mark.parametrize(("mode", "ttl", "queries"), [("ttl", 0, 3), ("ttl", 30, 1), ("sticky", 0, 1)])
def test_srv_router_orders_and_caches(mode: str, ttl: int, queries: int, monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> tuple[list[load.Route], int]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(lambda: _FakeDns(ttl), local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        router = load.SrvRouter("127.0.0.1", "cx.lab", mode, random.Random(1))
        from dnslib import DNSRecord

        def query() -> bytes:
            packet: bytes = DNSRecord.question(router.qname, "SRV").send("127.0.0.1", port, timeout=1)
            return packet

        monkeypatch.setattr(router, "_query", query)
        routes = [await router.route() for _ in range(3)]
        transport.close()
        return routes, proto.queries

    routes, n = asyncio.run(go())
    assert n == queries
    for r in routes:  # region-b is routable (priority 10), region-a the fallback (20)
        assert r.chosen_by == mode
        assert r.uris == ["sip:support@10.77.0.12:5060", "sip:support@10.77.0.11:5060"]
        assert r.extra["srv_regions"] == ["region-b", "region-a"]


def test_no_route_when_dns_is_silent() -> None:
    router = load.SrvRouter("127.0.0.1", "cx.lab", "ttl", random.Random(1), timeout=0.2)

    def boom() -> bytes:
        raise TimeoutError("no answer")

    router._query = boom  # type: ignore[method-assign]
    with pytest.raises(load.NoRouteError):
        asyncio.run(router.route())
    http = load.HttpRouter("http://127.0.0.1:9", timeout=0.2)
    with pytest.raises(load.NoRouteError):
        asyncio.run(http.route())


@pytest.mark.parametrize(
    ("end_reason", "status", "whose"),
    [
        ("capacity", "fail", "harness"),
        ("worker_lost", "info", "harness"),
        ("abandoned", "info", "harness"),
        ("stopped", "info", "harness"),
        ("error", "fail", "harness"),
        ("no_response", "fail", "customer"),
        ("no_route", "fail", "customer"),
        ("rejected", "fail", "customer"),
    ],
)
def test_whose_failure_it_is(end_reason: str, status: str, whose: str) -> None:
    rec = _rec(None, end_reason=end_reason)
    assert rec["status"] == status and rec["whose"] == whose


def test_answered_but_broken_calls_are_the_customers_and_ok_has_no_whose() -> None:
    assert "whose" not in _rec(_result())
    assert _rec(_result(end_reason="remote_bye"))["whose"] == "customer"
    assert _rec(_result(rx_packets=0))["whose"] == "customer"  # one-way: heard nothing


def test_summary_splits_customer_and_harness_failures() -> None:
    recs = [_rec(_result()), _rec(None, end_reason="capacity"), _rec(None, end_reason="worker_lost")]
    recs += [_rec(None, end_reason="no_response"), _rec(_result(end_reason="media_timeout"))]
    s = summarize("r", recs, loadmodel.RunStats(cps_asked=1.0))
    assert (s["customer_failed"], s["harness_failed"]) == (2, 2)
    assert s["harness_reasons"] == {"capacity": 1, "worker_lost": 1}
    assert s["fail"] + s["info"] == s["customer_failed"] + s["harness_failed"]


def test_fleet_ceiling_leaves_room_for_spares_and_fits_the_ports() -> None:
    assert load.max_worker_count(40) == 10 + 5 and load.max_worker_count(4) == 1 + 4
    # the widest fleet still fits the default port ranges
    args = load.parse_args(["--cps", "5", "--duration", "6", "--steer", "http", "--max-concurrent", "400"])
    assert args.max_concurrent == 400


def test_spare_workers_replace_stuck_slots_only() -> None:
    import asyncio

    async def scenario() -> list[int]:
        args = load.parse_args(["--cps", "1", "--duration", "1", "--steer", "http", "--max-concurrent", "8"])
        run = load.LoadRun(args)
        spawned: list[int] = []

        async def fake_spawn(w: load.WorkerHandle) -> None:
            spawned.append(w.index)
            w.ready = True
            w.proc = object()  # type: ignore[assignment]

        run.spawn = fake_spawn  # type: ignore[method-assign]
        for w in run.workers:
            await fake_spawn(w)
        spawned.clear()
        run.workers[0].lingering = 3  # finishing calls: not a reason for a spare
        run.keep_headroom()
        await asyncio.sleep(0)
        assert spawned == []
        run.workers[0].stuck = 3  # three INVITEs into a dead SBC: replace them
        run.keep_headroom()
        await asyncio.sleep(0)
        run.keep_headroom()  # 3 stuck of 12 slots: base 8 usable, nothing more
        await asyncio.sleep(0)
        run.workers[1].stuck = 4
        run.keep_headroom()
        await asyncio.sleep(0)
        run.keep_headroom()
        await asyncio.sleep(0)
        return spawned

    assert asyncio.run(scenario()) == [2, 3]
