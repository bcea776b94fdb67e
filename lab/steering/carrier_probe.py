"""The carrier vantage point: probes each region's SBC from the callers' network and reports to
steering (`python -m lab.steering.carrier_probe`, run in the `caller` container).

A fault on steering's own path must not look like a dead region: steering only declares DOWN
what this vantage point sees failing too.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import aiohttp

from core.settings import CarrierProbeSettings
from core.sipprobe import OptionsProber
from lab.steering import config as configmod

log = logging.getLogger("wobble.carrier-probe")


async def run(report_url: str, interval_s: float, timeout_s: float) -> None:
    cfg = configmod.load()
    prober = OptionsProber()
    await prober.start()
    batch: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(region: configmod.RegionTarget) -> None:
        reply = await prober.probe(region.sbc_host, region.sbc_port, timeout_s)
        batch.append({"t": time.time(), "region": region.name, "ok": reply.ok, "latency_ms": reply.latency_ms})

    async def reporter(session: aiohttp.ClientSession) -> None:
        failing = False
        while True:
            await asyncio.sleep(interval_s / 2)
            if not batch:
                continue
            sending, batch[:] = list(batch), []
            try:
                async with session.post(report_url, json={"vantage": "carrier", "results": sending}) as resp:
                    resp.raise_for_status()
                if failing:
                    log.info("steering reachable again")
                failing = False
            except (aiohttp.ClientError, TimeoutError) as exc:
                if not failing:
                    log.warning("cannot report to steering (%s); results dropped until it answers", exc)
                failing = True

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
        report = asyncio.create_task(reporter(session))
        next_at = time.monotonic()
        try:
            while True:
                for region in cfg.regions:
                    task = asyncio.create_task(one(region))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                next_at += interval_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            report.cancel()


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    settings = CarrierProbeSettings.from_env()
    asyncio.run(run(settings.steering_url + "/v1/probes", settings.interval_s, settings.timeout_s))


if __name__ == "__main__":
    main()
