"""The real lab behind the runner's seams: the traffic generator in the caller container
(lab.load.start_load), the chaos controller (chaos.client.ChaosClient), steering's HTTP API
(lab.steering.client), records (lab.records), the event log, lab.lifecycle and the wall clock.

Needs the running lab; the unit tests use fakes of the same seams (tests/unit/test_drill_runner.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from chaos.client import ChaosClient, ChaosError
from core import paths
from lab.drill import sources
from lab.drill.runner import LoadSpec, Seams, View


class WallClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class GeneratorTraffic:
    """One `agents.load` run per steering mode, started without waiting; logs to var/drill/."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.runs: list[Any] = []
        self._logs: list[IO[str]] = []

    async def start(self, specs: Sequence[LoadSpec]) -> list[str]:
        from lab.load import start_load

        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            log = (self.log_dir / f"load-{spec.steer}.log").open("w")
            self._logs.append(log)
            extra = ["--hold-dist", spec.hold_dist]
            run = await asyncio.to_thread(
                start_load,
                spec.cps,
                spec.duration_s,
                spec.steer,
                spec.hold_s,
                None,
                spec.seed,
                spec.arrivals,
                extra,
                log,
            )
            self.runs.append(run)
        return [r.run_id for r in self.runs]

    async def stop(self) -> list[dict[str, Any]]:
        for r in self.runs:
            await asyncio.to_thread(r.stop)
        out = []
        for r in self.runs:
            try:
                out.append(await asyncio.to_thread(r.wait, 120.0))
            except Exception as exc:
                out.append({"run_id": r.run_id, "error": str(exc)})
        for log in self._logs:
            log.close()
        return out


class ControllerChaos:
    """chaos.client.ChaosClient, one session per call (the runner may outlive a controller restart)."""

    async def add(self, kind: str, target: str, duration_s: float, params: Mapping[str, Any]) -> str:
        async with ChaosClient() as c:
            active = await c.add(kind, target, duration_s, **dict(params))
        return str(active["id"])

    async def remove(self, fault_id: str) -> None:
        async with ChaosClient() as c:
            try:
                await c.remove(fault_id)
            except ChaosError as exc:
                if exc.status != 404:  # 404: it already ended on its own
                    raise

    async def listed(self) -> list[str]:
        async with ChaosClient() as c:
            return [str(f["id"]) for f in await c.faults()]


class HttpSteering:
    async def state(self) -> dict[str, Any]:
        from lab.steering import client

        result: dict[str, Any] = await asyncio.to_thread(client.request, "/v1/state", None, False, 2.0)
        return result

    async def set_mode(self, mode: str) -> str:
        from lab.steering import client

        before = await self.state()
        await asyncio.to_thread(client.request, "/v1/mode", {"mode": mode, "who": "drill"}, True)
        return str(before.get("mode"))

    async def approve(self, who: str) -> None:
        from lab.steering import client

        await asyncio.to_thread(client.request, "/v1/failover", {"who": who, "approve": True}, True)


class LabRecords:
    async def set_mode(self, mode: str) -> str | None:
        from lab.records import config, failover

        def go() -> str | None:
            cfg = config.load()
            before = failover.current_mode(cfg, next(iter(cfg.regions))) if cfg.regions else None
            failover.set_mode(cfg, "sync" if mode == "sync" else "async")
            return before

        return await asyncio.to_thread(go)

    async def reconcile(self, region: str, since: float) -> dict[str, Any]:
        from lab.records import config, gather

        def go() -> dict[str, Any]:
            rep = gather.run(config.load(), region, since, sources.EVENTS).as_dict()
            counts = rep["counts"]
            rep["rpo_records"] = int(counts.get("committed_not_replicated", 0)) + int(counts.get("missing", 0))
            return rep

        return await asyncio.to_thread(go)


class FileEvents:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or sources.EVENTS
        self.tail = sources.EventTail(self.path, from_end=True)

    def read_new(self) -> list[dict[str, Any]]:
        return self.tail.read_new()

    def read_range(self, t0: float, t1: float) -> list[dict[str, Any]]:
        # completions of calls placed in the run arrive after t1 by up to a hold: take a little more
        return sources.events_between(sources.read_events(self.path), t0, t1 + 2.0)


class RealLab:
    def is_up(self) -> bool:
        from lab import lifecycle

        return lifecycle.is_up()

    def up(self) -> None:
        from lab import lifecycle

        lifecycle.up()

    def commit(self) -> str:
        return paths.git_commit()

    def region_of_uri(self, uri: str | None) -> str | None:
        return sources.region_of_uri(uri)


def real_seams(view: View) -> Seams:
    from lab.drill.runner import Seams

    return Seams(
        clock=WallClock(),
        traffic=GeneratorTraffic(sources.VAR / "drill"),
        chaos=ControllerChaos(),
        steering=HttpSteering(),
        records=LabRecords(),
        events=FileEvents(),
        lab=RealLab(),
        view=view,
    )
