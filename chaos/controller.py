"""The chaos controller: validates fault requests, starts a warden per fault, renews leases.

It holds no rule itself. A fault is live only while its lease file is renewed (every
`renew_s`, valid for `ttl_s`); the warden reverts on its own when renewals stop, so the
controller dying (kill -9) costs at most the TTL. At start it first adopts what an earlier
controller left live (a crashed controller that docker restarts finds its wardens still holding
their faults: it renews their leases and lists them again), then reconciles the rest: leftover
wardens that cannot be adopted are told to stop (they revert) and their leases are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos import lease, wardens
from chaos.catalog import FAMILIES, Fault, FaultRequest, ensure_fault_is_valid
from core import dockerctl, events

log = logging.getLogger("wobble.chaos")

#: Backends of the families that do not depend on the kernel.
FIXED_BACKENDS = {"toxiproxy": "toxiproxy-api", "docker": "docker", "dns": "steering-dns", "sip": "kamailio-htable"}
#: Lease TTL: long enough to outlive a controller crash that docker restarts (restart: ~1-3 s, then
#: the controller's start-up to adoption), short enough that a dead controller's faults end soon.
DEFAULT_TTL_S = 8.0
#: A warden whose lease has less than this left is not adopted: it may read its lease as expired
#: (it polls every 0.2 s) before our renewal lands, and revert under a fault we would list.
ADOPT_MARGIN_S = 1.0


def _event(kind: type[events.FaultEvent], record: dict[str, Any]) -> None:
    """Append a fault event; the fault's own kind is `fault` (the log's envelope owns `kind`)."""
    rec = {("fault" if k == "kind" else k): v for k, v in record.items()}
    events.append(kind.of(rec))


class TargetNotRunning(LookupError):
    """The fault's target service has no running container."""


@dataclass
class Active:
    id: str
    fault: Fault
    backend: str
    started_at: float
    started_mono: float
    ends_at: float
    warden: Any = field(repr=False)
    ending: bool = False

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "id": self.id,
            "kind": self.fault.kind,
            "family": self.fault.family,
            "target": self.fault.target,
            "services": list(self.fault.services),
            "params": self.fault.params,
            "backend": self.backend,
            "started_at": round(self.started_at, 3),
            "ends_at": round(self.ends_at, 3),
            "remaining_s": round(max(0.0, self.ends_at - now), 1),
        }


class Controller:
    def __init__(
        self,
        docker_client: Any,
        project: str = "wobble",
        ttl_s: float = DEFAULT_TTL_S,
        renew_s: float = 1.0,
        lease_dir: Path = Path(wardens.LEASE_DIR),
        host_var: str | None = None,
    ) -> None:
        self.docker = docker_client
        self.project = project
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.lease_dir = lease_dir
        self.host_var = host_var or self._own_var_mount()
        self.faults: dict[str, Active] = {}
        self.backends: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[dict[str, Any]]] = set()
        self._renewal: asyncio.Task[None] | None = None

    # ---- discovery ---------------------------------------------------------------------------

    def _own_var_mount(self) -> str:
        """The host path of our var/ mount: wardens are siblings and need the host's path."""
        me = self.docker.containers.get(socket.gethostname())
        for m in me.attrs.get("Mounts", []):
            if m.get("Destination") == wardens.VAR_IN_CONTAINER:
                return str(m["Source"])
        raise RuntimeError(f"the controller has no {wardens.VAR_IN_CONTAINER} mount; start it from compose.yaml")

    def services(self) -> list[str]:
        found = self.docker.containers.list(all=True, filters={"label": f"com.docker.compose.project={self.project}"})
        return sorted({c.labels.get("com.docker.compose.service", "") for c in found} - {""})

    def container(self, service: str, running: bool = True) -> Any:
        found = dockerctl.find_service(self.docker, service, self.project, running)
        if found is None:
            raise TargetNotRunning(f"service {service} has no running container; start it (`make up`) and retry")
        return found

    def probe_backends(self) -> dict[str, str]:
        """Which backend serves each kind here: the kernel is probed from inside a lab namespace."""
        backends = {kind: FIXED_BACKENDS[fam] for kind, fam in FAMILIES.items() if fam != "net"}
        anchor = self.container("dns")
        out = self.docker.containers.run(
            wardens.IMAGE,
            ["python", "-m", "chaos.net.warden", "probe", "--json"],
            remove=True,
            network_mode=f"container:{anchor.id}",
            cap_add=["NET_ADMIN"],
            labels={"wobble.chaos.probe": "1"},
        )
        net = json.loads(out.decode().strip().splitlines()[-1])
        backends.update({k: str(v) for k, v in net.items() if k in FAMILIES})
        return backends

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt live faults first (their leases are running out), renew from then on, then stop
        what could not be adopted and probe the backends."""
        self.lease_dir.mkdir(parents=True, exist_ok=True)
        adopted = await self.adopt()
        if adopted:
            log.info("adopted %d live fault(s) an earlier controller left: %s", len(adopted), ", ".join(adopted))
        if self._renewal is None:
            self._renewal = asyncio.create_task(self.renew_forever())
        await self.reconcile()
        self.backends = await asyncio.to_thread(self.probe_backends)
        log.info("backends: %s", self.backends)

    async def stop(self) -> None:
        """Stop renewing (the faults then lapse within the TTL unless cleared first)."""
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
            self._renewal = None

    async def adopt(self) -> list[str]:
        """Take over every warden an earlier controller left that still holds its fault: running,
        past `LIVE`, its lease live for at least ADOPT_MARGIN_S more, and saying what it holds (its
        labels). Its lease is renewed at once and it is listed again, so it can be listed,
        reverted and ended as if applied here. The others are left to `reconcile`."""
        found = await asyncio.to_thread(wardens.leftovers, self.docker, self.project)
        adopted: list[str] = []
        for c in found:
            a = await asyncio.to_thread(self._adopt_one, c)
            if a is not None:
                adopted.append(a.id)
        return adopted

    def _adopt_one(self, c: Any) -> Active | None:
        fid = c.labels.get(wardens.LABEL, "")
        if not fid or fid in self.faults or not wardens.is_running(c):
            return None
        held = wardens.fault_of(c)
        if held is None:
            return None
        fault, backend = held
        try:
            current = lease.read_lease(self.lease_dir, fid)
        except ValueError:  # an id that cannot name a lease file is not ours
            return None
        now = time.time()
        if lease.lease_state(current, now) != "live" or current is None or current.expires_at - now < ADOPT_MARGIN_S:
            return None
        live, effect_at = wardens.live_since(c, fid)
        if not live:  # still applying when its controller died: reconcile stops it (it reverts)
            return None
        left_s = current.expires_at - now
        lease.write_lease(self.lease_dir, fid, expires_at=now + self.ttl_s, ends_at=current.ends_at)
        now, mono = time.time(), time.monotonic()
        started = effect_at if effect_at is not None and effect_at <= now else now
        backend = backend or self.backends.get(fault.kind, FIXED_BACKENDS.get(fault.family, fault.family))
        a = Active(fid, fault, backend, started, mono - (now - started), current.ends_at, c)
        self.faults[fid] = a
        _event(events.FaultAdopted, {**a.to_dict(now), "lease_left_s": round(left_s, 3), "mono": mono})
        return a

    async def reconcile(self) -> list[str]:
        """Stop every warden an earlier controller left that is not ours (each reverts its fault) and
        drop stale leases; adopted and live faults are left alone."""
        found = await asyncio.to_thread(wardens.leftovers, self.docker, self.project)
        cleaned: list[str] = []
        for c in found:
            fid = c.labels.get(wardens.LABEL, "?")
            if fid in self.faults:
                continue
            await asyncio.to_thread(self._stop_warden, c, fid)
            cleaned.append(fid)
            _event(
                events.FaultReconciled,
                {
                    "id": fid,
                    "kind": c.labels.get("wobble.chaos.kind"),
                    "target": c.labels.get("wobble.chaos.target"),
                    "mono": time.monotonic(),
                },
            )
        for fid in lease.list_leases(self.lease_dir):
            if fid not in self.faults:
                lease.remove_lease(self.lease_dir, fid)
        return cleaned

    def _stop_warden(self, container: Any, fault_id: str) -> int | None:
        """Withdraw the lease, let the warden revert and exit; force it if it does not."""
        lease.remove_lease(self.lease_dir, fault_id)
        if not wardens.wait_exit(container, timeout_s=5.0):
            with contextlib.suppress(Exception):  # already gone
                container.stop(timeout=5)  # SIGTERM: the warden reverts on it too
        code: int | None = None
        try:
            container.reload()
            code = container.attrs.get("State", {}).get("ExitCode")
        except Exception:
            pass
        wardens.remove(container)
        return code

    async def renew_forever(self) -> None:
        while True:
            now = time.time()
            for a in list(self.faults.values()):
                if a.ending:
                    continue
                if now >= a.ends_at:
                    a.ending = True
                    task = asyncio.create_task(self._finish(a, "ended"))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                else:
                    lease.write_lease(self.lease_dir, a.id, expires_at=now + self.ttl_s, ends_at=a.ends_at)
            await asyncio.sleep(self.renew_s)

    async def _finish(self, a: Active, reason: str) -> dict[str, Any]:
        code = await asyncio.to_thread(self._stop_warden, a.warden, a.id)
        self.faults.pop(a.id, None)
        record = {**a.to_dict(), "reason": reason, "warden_exit": code, "mono": time.monotonic()}
        _event(events.FaultEnd, record)
        return record

    # ---- operations --------------------------------------------------------------------------

    def validate(self, req: FaultRequest) -> Fault:
        return ensure_fault_is_valid(req, self.services(), self.backends)

    async def add(self, req: FaultRequest) -> Active:
        fault = await asyncio.to_thread(self.validate, req)
        async with self._lock:
            return await asyncio.to_thread(self._apply, fault)

    def _anchor(self, fault: Fault) -> Any:
        for s in fault.services:  # every service a fault acts on must be there to act on
            self.container(s, running=fault.kind not in ("stop", "kill"))
        if fault.family == "net":
            return self.container(fault.target)
        if fault.family == "toxiproxy":
            return self.container("toxiproxy")
        if fault.family == "dns":
            return self.container("steering")
        return None

    def _apply(self, fault: Fault) -> Active:
        anchor = self._anchor(fault)
        fid = secrets.token_hex(4)
        now = time.time()
        ends_at = now + fault.duration_s
        lease.write_lease(self.lease_dir, fid, expires_at=now + self.ttl_s, ends_at=ends_at)
        backend = self.backends.get(fault.kind, FIXED_BACKENDS.get(fault.family, fault.family))
        base = {
            "id": fid,
            "kind": fault.kind,
            "target": fault.target,
            "params": fault.params,
            "backend": backend,
            "services": list(fault.services),
            "duration_s": fault.duration_s,
        }
        _event(events.FaultInvoke, {**base, "mono": time.monotonic()})
        opts = wardens.run_options(fault, fid, self.host_var, anchor, self.project, backend)
        container = self.docker.containers.run(wardens.IMAGE, wardens.command(fault, fid), **opts)

        def renew() -> None:  # a slow start must not see its own lease expire
            lease.write_lease(self.lease_dir, fid, expires_at=time.time() + self.ttl_s, ends_at=ends_at)

        try:
            effect_at = wardens.wait_live(container, fid, timeout_s=30.0, on_poll=renew)
        except wardens.ApplyFailed as exc:
            self._stop_warden(container, fid)
            _event(events.FaultFail, {**base, "error": str(exc), "mono": time.monotonic()})
            raise
        # started_at: when the warden began to act (just before its first signal), when it says; an
        # outage timed from when we saw it live would flatter the lab by the warden's own apply time.
        now, mono = time.time(), time.monotonic()
        started = effect_at if effect_at is not None and effect_at <= now else now
        a = Active(fid, fault, backend, started, mono - (now - started), ends_at, container)
        self.faults[fid] = a
        _event(events.FaultApply, {**a.to_dict(), "mono": a.started_mono})
        return a

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.time()
        return [a.to_dict(now) for a in self.faults.values() if not a.ending]

    async def remove(self, fault_id: str) -> dict[str, Any] | None:
        a = self.faults.get(fault_id)
        if a is None or a.ending:
            return None
        a.ending = True
        return await self._finish(a, "cleared")

    async def clear(self) -> list[dict[str, Any]]:
        todo = [a for a in self.faults.values() if not a.ending]
        for a in todo:
            a.ending = True
        done = await asyncio.gather(*(self._finish(a, "cleared") for a in todo))
        await self.reconcile()  # and anything not in our list (an earlier controller's)
        return list(done)
