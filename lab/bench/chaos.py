"""`make bench` (chaos): each fault kind asked vs measured on the wire, and apply/revert latency.

The lab's UDP echo probe runs between two lab containers on region-a (server in `crm`, client in
`agents-a`); the fault goes on the server's egress through the real controller, so every number is
what the packets met. Toxics are measured as added HTTP time through the proxy; DNS faults as
added lookup time at steering. Written to bench/results/chaos.json.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from chaos.client import ChaosClient
from core import paths
from lab import lifecycle

log = logging.getLogger("wobble.bench")
SERVER, CLIENT = "crm", "agents-a"
SERVER_IP = "10.77.1.61"
ECHO_PORT, SIP_PORT = 7777, 5060
HTTP_VIA_PROXY = "http://10.77.1.60:8091/healthz"
APPLY: list[float] = []
REVERT: list[float] = []


def sh(*cmd: str, timeout: float = 300) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout).stdout


def echo(count: int, pps: float, size: int = 160, port: int = ECHO_PORT, prefix: str = "") -> dict[str, Any]:
    """One echo run from the client container to the server container; its JSON report."""
    args = ["--to", f"{SERVER_IP}:{port}", "--count", str(count), "--pps", str(pps), "--size", str(size), "--json"]
    if prefix:
        args += ["--prefix", prefix]
    out = sh("docker", "exec", f"wobble-{CLIENT}-1", "python", "-m", "chaos.net.echo", "client", *args)
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


async def with_fault(
    chaos: ChaosClient, kind: str, target: str, measure: Callable[[], Awaitable[Any]], **params: Any
) -> Any:
    t0 = time.monotonic()
    fault = await chaos.add(kind, target, 300, **params)
    APPLY.append(time.monotonic() - t0)
    try:
        return await measure()
    finally:
        t0 = time.monotonic()
        await chaos.remove(fault["id"])
        REVERT.append(time.monotonic() - t0)


def http_ms(n: int = 10) -> float:
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        with urllib.request.urlopen(HTTP_VIA_PROXY, timeout=10) as resp:
            resp.read()
        times.append((time.monotonic() - t0) * 1000)
    return statistics.median(times)


def dns_ms(n: int = 10) -> float:
    from dnslib import DNSRecord

    times = []
    for _ in range(n):
        t0 = time.monotonic()
        DNSRecord.question("_sip._udp.cx.lab", "SRV").send("10.77.0.5", 53, timeout=5)
        times.append((time.monotonic() - t0) * 1000)
    return statistics.median(times)


async def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    server = f"wobble-{SERVER}-1"
    for port in (ECHO_PORT, SIP_PORT):
        sh("docker", "exec", "-d", server, "python", "-m", "chaos.net.echo", "server", "--port", str(port))
    time.sleep(1.5)

    def a(fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
        return lambda: asyncio.to_thread(fn)

    base = echo(500, 100)
    base_ms = base["rtt_p50_ms"]
    results["baseline"] = {"rtt_ms_p50": base_ms, "loss_pct": base["loss_pct"]}
    async with ChaosClient() as chaos:
        r = await with_fault(chaos, "delay", SERVER, a(lambda: echo(500, 50)), ms=200)
        results["delay"] = {"asked_ms": 200, "measured_added_ms": round(r["rtt_p50_ms"] - base_ms, 2)}
        r = await with_fault(chaos, "delay", SERVER, a(lambda: echo(1000, 50)), ms=100, jitter_ms=30)
        results["jitter"] = {
            "asked_ms": 100,
            "asked_jitter_ms": 30,
            "measured_added_ms": round(r["rtt_p50_ms"] - base_ms, 2),
            "measured_jitter_ms": r.get("jitter_ms"),
            "reorders": r.get("reorders"),
        }
        r = await with_fault(chaos, "loss", SERVER, a(lambda: echo(6000, 500)), pct=10)
        results["loss"] = {"asked_pct": 10, "measured_pct": r["loss_pct"], "packets": r["sent"]}
        r = await with_fault(chaos, "burst_loss", SERVER, a(lambda: echo(6000, 500)), p=5, r=45)
        results["burst_loss"] = {"asked": "p=5 r=45 (stationary 10 %)", "measured_pct": r["loss_pct"]}
        r = await with_fault(chaos, "duplicate", SERVER, a(lambda: echo(3000, 300)), pct=10)
        results["duplicate"] = {"asked_pct": 10, "measured_pct": round(100 * r["duplicates"] / max(1, r["sent"]), 2)}
        r = await with_fault(chaos, "reorder", SERVER, a(lambda: echo(3000, 300)), pct=20)
        results["reorder"] = {
            "asked_pct": 20,
            "measured_reorders_pct": round(100 * r["reorders"] / max(1, r["sent"]), 2),
        }
        r = await with_fault(chaos, "rate", SERVER, a(lambda: echo(1500, 100, size=200)), kbit=64)
        results["rate"] = {
            "asked_kbit": 64,
            "measured_kbit_wire": r["rx_kbit_wire"],
            "offered_kbit_wire": r["tx_kbit_wire"],
        }
        r = await with_fault(chaos, "blackhole", SERVER, a(lambda: echo(200, 100)))
        results["blackhole"] = {"asked_pct": 100, "measured_pct": r["loss_pct"]}
        invite = "INVITE sip:x SIP/2.0\r\n"
        sip_echo = a(lambda: echo(1000, 200, port=SIP_PORT, prefix=invite))
        r = await with_fault(chaos, "sip_drop", SERVER, sip_echo, method="INVITE", pct=50)
        results["sip_drop"] = {"asked_pct": 50, "measured_pct": r["loss_pct"]}
        base_http = http_ms()
        m = await with_fault(chaos, "latency", "crm", a(http_ms), ms=200)
        results["toxic_latency"] = {"asked_ms": 200, "measured_added_ms": round(m - base_http, 1)}
        base_dns = dns_ms()
        m = await with_fault(chaos, "dns_slow", "steering", a(dns_ms), ms=300)
        results["dns_slow"] = {"asked_ms": 300, "measured_added_ms": round(m - base_dns, 1)}
    results["apply_s"] = {"median": round(statistics.median(APPLY), 3), "max": round(max(APPLY), 3)}
    results["revert_s"] = {"median": round(statistics.median(REVERT), 3), "max": round(max(REVERT), 3)}
    return results


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if not lifecycle.is_up():
        lifecycle.up()
    results = asyncio.run(run())
    out = paths.ROOT / "bench" / "results" / "chaos.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **results}, indent=2) + "\n"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
