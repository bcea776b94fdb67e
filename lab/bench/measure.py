"""What the workload and soak benchmarks read from the machine: the checkout's commit, every lab
container's cumulative CPU counter, and the event log's newest lines.

CPU: each container's cumulative CPU time (ns), summed per compose service. Read from the
container's cgroup counter on the host (cgroup v1 `cpuacct.usage`, v2 `cpu.stat` usage_usec) when
every container's is found there, else from the docker stats API's `cpu_stats.cpu_usage.total_usage`
(the same counter, one request per container, in parallel). Deltas of these counters, never the
instantaneous percentages docker stats shows.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core import dockerctl, paths
from lab.bench.workload_model import CpuSample

CGROUP_ROOT = Path("/sys/fs/cgroup")
SERVICE_LABEL = "com.docker.compose.service"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_cpu_stat(text: str) -> int | None:
    """cgroup v2 `cpu.stat`'s usage_usec, in ns."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value) * 1000
    return None


def cgroup_usage_ns(container_id: str, root: Path = CGROUP_ROOT) -> int | None:
    """A container's cumulative CPU ns from its cgroup (cgroupfs or systemd driver, v1 or v2)."""
    v1 = [
        root / "cpuacct" / "docker" / container_id / "cpuacct.usage",
        root / "cpu,cpuacct" / "docker" / container_id / "cpuacct.usage",
        root / "cpuacct" / "system.slice" / f"docker-{container_id}.scope" / "cpuacct.usage",
        root / "cpu,cpuacct" / "system.slice" / f"docker-{container_id}.scope" / "cpuacct.usage",
    ]
    for p in v1:
        try:
            return int(p.read_text().strip())
        except (OSError, ValueError):
            continue
    for p in (
        root / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat",
        root / "docker" / container_id / "cpu.stat",
    ):
        try:
            found = parse_cpu_stat(p.read_text())
        except OSError:
            continue
        if found is not None:
            return found
    return None


def _stats_usage_ns(container: Any) -> int | None:
    try:
        stats = container.stats(stream=False, one_shot=True)
        return int(stats["cpu_stats"]["cpu_usage"]["total_usage"])
    except Exception:  # a container that went away between list and stats
        return None


class CpuMeter:
    """Samples every running lab container's cumulative CPU, summed per compose service."""

    def __init__(self) -> None:
        self.source = "unknown"

    def sample(self) -> CpuSample:
        containers = dockerctl.lab_containers()
        ids = {c.id: str(c.labels.get(SERVICE_LABEL) or c.name) for c in containers}
        t0 = time.time()
        usage = {cid: cgroup_usage_ns(cid) for cid in ids}
        if all(v is not None for v in usage.values()):
            self.source = "cgroup counters (cpuacct.usage / cpu.stat usage_usec) per container"
            t = (t0 + time.time()) / 2
        else:
            self.source = "docker stats API cpu_stats.cpu_usage.total_usage per container (one_shot)"
            with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
                got = list(pool.map(_stats_usage_ns, containers))
            usage = {c.id: v for c, v in zip(containers, got, strict=True)}
            t = (t0 + time.time()) / 2  # the requests ran in parallel between these two times
        per_service: dict[str, int] = {}
        for cid, ns in usage.items():
            if ns is not None:
                per_service[ids[cid]] = per_service.get(ids[cid], 0) + ns
        return CpuSample(t=t, usage_ns=per_service)


class EventTail:
    """The event log's lines appended after this object was made (the host's var/events.jsonl, the
    file every container appends to)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.EVENTS
        try:
            self.offset = self.path.stat().st_size
        except OSError:
            self.offset = 0

    def lines(self) -> Iterator[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        for raw in data.splitlines():
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            if isinstance(ev, dict):
                yield ev

    def first_invoke(self, run_id: str, timeout_s: float, poll_s: float = 0.5) -> float | None:
        """The wall-clock time of the run's first `load_invoke`, waiting for it up to timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            times = [
                float(ev["t_invoke"])
                for ev in self.lines()
                if ev.get("run_id") == run_id and ev.get("kind") == "load_invoke" and ev.get("t_invoke")
            ]
            if times:
                return min(times)
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll_s)


def sleep_until(wall_t: float) -> None:
    delay = wall_t - time.time()
    if delay > 0:
        time.sleep(delay)


def write_result(name: str, out: dict[str, Any]) -> Path:
    dest = paths.ROOT / "bench" / "results" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    return dest
