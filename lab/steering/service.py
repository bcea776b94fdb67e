"""The steering service: probes, policy, and its faces (HTTP, DNS, metrics).

`python -m lab.steering.service`. Everything on the call path (route, DNS) answers from memory;
the control plane (config API) is polled in the background and never waited on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from core import events
from core.settings import SteeringSettings
from core.sipprobe import OptionsProber
from lab.steering import config as configmod
from lab.steering.dns import Target, answer
from lab.steering.dnsfault import DnsChaos, FaultyDnsProtocol
from lab.steering.metrics import SteeringMetrics
from lab.steering.policy import CallEvidence, Decision, Policy, PolicyConfig, ProbeResult

log = logging.getLogger("wobble.steering")


def policy_config(cfg: configmod.SteeringConfig) -> PolicyConfig:
    return PolicyConfig.model_validate(
        {**cfg.policy, "weights": {r.name: r.weight for r in cfg.regions}, "routing": cfg.routing}
    )


class Steering:
    def __init__(self, cfg: configmod.SteeringConfig, config_url: str | None, lkg_path: Path | None) -> None:
        self.cfg = cfg
        self.config_url = config_url
        self.lkg_path = lkg_path
        self.config_status = "last-known-good"
        self.config_error: str | None = "config API not reached yet"
        self.metrics = SteeringMetrics()
        self.policy = Policy(policy_config(cfg), [r.name for r in cfg.regions], mode=cfg.mode, t=time.time())
        self.prober = OptionsProber()
        self.dns_chaos = DnsChaos()
        self.pbx: dict[str, dict[str, Any]] = {}
        self.rng = random.Random()
        self.started = time.time()
        for r in cfg.regions:
            self.metrics.set_state(r.name, "UP")

    # -- evidence in

    def record(self, decisions: list[Decision]) -> None:
        for d in decisions:
            ev = d.to_dict()
            ev["decision"] = ev.pop("kind")  # health / mode / routing / approval
            ev["config"] = self.config_status
            events.append(events.SteeringDecision.of(ev))
            self.metrics.decisions.labels(d.region, d.rule).inc()
            if d.kind == "health" and d.before != d.after:  # mode changes are not region states
                self.metrics.flips.labels(d.region, str(d.before), str(d.after)).inc()
                self.metrics.set_state(d.region, str(d.after))
            log.info("decision: %s %s -> %s (%s, mode %s)", d.region, d.before, d.after, d.rule, d.mode)

    def on_probe(self, region: str, vantage: str, ok: bool, latency_ms: float | None, t: float) -> None:
        self.metrics.probes.labels(region, vantage, "ok" if ok else "fail").inc()
        if ok and latency_ms is not None:
            self.metrics.probe_latency.labels(region, vantage).observe(latency_ms / 1000)
        self.record(self.policy.observe_probe(ProbeResult(t, region, vantage, ok, latency_ms)))

    def on_call(self, region: str, ok: bool, source: str, t: float) -> None:
        self.record(self.policy.observe_call(CallEvidence(t, region, ok, source)))

    # -- background loops

    async def probe_loop(self, region: configmod.RegionTarget) -> None:
        """Probe at a fixed cadence; each probe runs on its own so a slow one never delays the next."""
        pc = self.policy.config
        tasks: set[asyncio.Task[None]] = set()

        async def one() -> None:
            reply = await self.prober.probe(region.sbc_host, region.sbc_port, pc.timeout_s)
            self.on_probe(region.name, "steering", reply.ok, reply.latency_ms, time.time())

        next_at = time.monotonic()
        while True:
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += pc.interval_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def pbx_loop(self, region: configmod.RegionTarget) -> None:
        if not region.pbx_host:
            return
        while True:
            reply = await self.prober.probe(region.pbx_host, 5060, 1.0, 0.25)
            self.pbx[region.name] = {"ok": reply.code is not None, "code": reply.code, "latency_ms": reply.latency_ms}
            await asyncio.sleep(1.0)

    async def tick_loop(self) -> None:
        while True:
            self.record(self.policy.tick(time.time()))
            await asyncio.sleep(0.1)

    async def config_loop(self) -> None:
        """Poll the control plane; on any failure keep serving the last known good configuration."""
        if not self.config_url:
            return
        timeout = aiohttp.ClientTimeout(total=0.5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    async with session.get(self.config_url) as resp:
                        resp.raise_for_status()
                        data = await resp.json()
                    new = configmod.ensure_config_is_valid(data, self.config_url)
                    self.apply_config(new)
                    if self.config_status != "live":
                        log.info("config API answers: configuration is live")
                    self.config_status, self.config_error = "live", None
                except Exception as exc:  # any failure of the control plane: stay on last known good
                    if self.config_status != "last-known-good":
                        log.warning("config API failed (%s): serving last known good", exc)
                    self.config_status = "last-known-good"
                    self.config_error = f"{type(exc).__name__}: {exc}"[:200]
                self.metrics.config_live.set(1 if self.config_status == "live" else 0)
                await asyncio.sleep(1.0)

    def apply_config(self, new: configmod.SteeringConfig) -> None:
        if new == self.cfg:
            return
        if [r.name for r in new.regions] != [r.name for r in self.cfg.regions]:
            log.warning("config API changed the region list; restart steering to apply it")
            return
        self.cfg = new
        self.policy.reconfigure(policy_config(new), time.time())
        if self.lkg_path is not None:
            tmp = self.lkg_path.with_suffix(".tmp")
            tmp.write_text(new.model_dump_json())
            tmp.replace(self.lkg_path)
        log.info("applied configuration from the config API")

    # -- views

    def state(self) -> dict[str, Any]:
        now = time.time()
        snap = self.policy.snapshot(now)
        for name, pbx in self.pbx.items():
            snap["regions"].setdefault(name, {})["pbx"] = pbx
        snap["config"] = self.config_status
        if self.config_error:
            snap["config_error"] = self.config_error
        snap["time"] = now
        return snap

    def route(self) -> dict[str, Any]:
        region = self.policy.route(time.time(), self.rng)
        target = self.cfg.region(region)
        return {
            "region": region,
            "sbc": target.sbc_host,
            "port": target.sbc_port,
            "uri": f"sip:support@{target.sbc_host}:{target.sbc_port}",
            "ttl": self.cfg.dns_ttl,
            "state": self.policy.snapshot(time.time())["regions"][region]["state"],
        }

    def dns_view(self) -> tuple[str, list[Target], int]:
        weights = self.policy.routable_weights(time.time())
        targets = [Target(r.name, r.sbc_host, r.sbc_port, int(weights.get(r.name, 0))) for r in self.cfg.regions]
        return self.cfg.zone, targets, self.cfg.dns_ttl


async def serve(steering: Steering, http_port: int, dns_port: int, token: str) -> None:
    from aiohttp import web

    from lab.steering.http import make_app

    loop = asyncio.get_running_loop()
    await steering.prober.start()
    dns_transport, _ = await loop.create_datagram_endpoint(
        lambda: FaultyDnsProtocol(lambda q, view: answer(q, *view), steering.dns_view, steering.dns_chaos),
        local_addr=("0.0.0.0", dns_port),
        family=socket.AF_INET,
    )
    runner = web.AppRunner(make_app(steering, token), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", http_port).start()
    log.info(
        "steering: HTTP :%d, DNS :%d, %d regions, mode %s",
        http_port,
        dns_port,
        len(steering.cfg.regions),
        steering.policy.mode,
    )
    loops = [steering.tick_loop(), steering.config_loop()]
    for r in steering.cfg.regions:
        loops += [steering.probe_loop(r), steering.pbx_loop(r)]
    try:
        await asyncio.gather(*loops)
    finally:
        dns_transport.close()
        await runner.cleanup()


def load_initial(lkg_path: Path | None) -> configmod.SteeringConfig:
    """The persisted last known good if there is one, else the bundled configuration."""
    if lkg_path is not None and lkg_path.exists():
        try:
            return configmod.ensure_config_is_valid(json.loads(lkg_path.read_text()), str(lkg_path))
        except (ValueError, OSError) as exc:
            log.warning("ignoring unreadable last-known-good %s: %s", lkg_path, exc)
    return configmod.load()


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    settings = SteeringSettings.from_env()
    cfg = load_initial(settings.lkg)
    steering = Steering(cfg, settings.config_url, settings.lkg)
    token = settings.token
    if not token:
        raise SystemExit("steering: set STEERING_TOKEN (the operator token for failover and mode changes)")
    asyncio.run(serve(steering, settings.http_port, settings.dns_port, token))


if __name__ == "__main__":
    main()
