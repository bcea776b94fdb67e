"""`python -m chaos.warden apply ...`: the warden of one non-network fault.

Network faults have their own warden (`chaos.net.warden`) inside the target's namespace; this
one serves the other families through their own control planes:
- docker: pause / stop / kill a container, a region at once, a network disconnect (partition);
- toxiproxy: a toxic (or proxy down) on a dependency's proxy, through `toxiproxy-python`;
- dns: steering's DNS fault switch, itself leased in steering (renewed every second here);
- sip: the SBC's `chaos` htable (Kamailio expires its items unless renewed).
It applies, prints `LIVE <id>`, renews while the lease is live, and reverts when the lease lapses
or ends, on SIGTERM/SIGINT, or on any error — the same lease contract as the network warden.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
import urllib.request
from typing import Any, Protocol

from chaos import lease
from chaos.catalog import Fault
from core import dockerctl, events
from core.settings import WardenSettings

log = logging.getLogger("wobble.warden")
POLL_S = 0.2
RENEW_S = 1.0


class Driver(Protocol):
    def apply(self) -> None: ...
    def renew(self) -> None: ...
    def revert(self) -> None: ...


class DockerDriver:
    """Crashes and partitions through the docker API; reverts undo exactly what was done."""

    def __init__(self, fault: Fault, project: str) -> None:
        import docker

        self.fault = fault
        self.project = project
        self.cli = docker.from_env(timeout=60)
        self.done: list[tuple[str, Any, dict[str, Any]]] = []  # (action, container, info) to undo
        self.effect_at: float | None = None  # just before the first signal or disconnect (UNIX time)

    def _container(self, service: str) -> Any:
        found = dockerctl.find_service(self.cli, service, self.project, running=False)
        if found is None:
            raise LookupError(f"service {service} has no container")
        return found

    def apply(self) -> None:
        kind, params = self.fault.kind, self.fault.params
        how = str(params.get("how", kind))
        if params.get("repl_proxy"):
            self._set_proxy(str(params["repl_proxy"]), enabled=False)
        for service in self.fault.services:
            c = self._container(service)
            if self.effect_at is None:
                self.effect_at = time.time()
            if kind == "partition":
                self._disconnect(c, service, str(params["network"]))
            elif how == "pause":
                c.pause()
                self.done.append(("pause", c, {}))
            elif how == "stop":
                c.stop(timeout=2)
                self.done.append(("stop", c, {}))
            elif how == "kill":
                c.kill()
                self.done.append(("kill", c, {}))
            else:
                raise ValueError(f"docker driver cannot do {kind}/{how}")

    def _disconnect(self, c: Any, service: str, network: str) -> None:
        name = f"{self.project}_{network}"
        attached = c.attrs.get("NetworkSettings", {}).get("Networks", {})
        if name not in attached:
            raise ValueError(f"{service} is not on network {network}; it is on {', '.join(attached)}")
        ip = (attached[name].get("IPAMConfig") or {}).get("IPv4Address") or attached[name].get("IPAddress")
        net = self.cli.networks.get(name)
        net.disconnect(c, force=True)
        self.done.append(("disconnect", c, {"network": net, "ip": ip, "alias": service}))

    def _set_proxy(self, name: str, enabled: bool) -> None:
        """Toggle a toxiproxy proxy through its API, from inside the proxy's container (this warden
        has no network)."""
        proxy = self._container("toxiproxy")
        body = json.dumps({"enabled": enabled})
        code = (
            "import urllib.request\n"
            f"r = urllib.request.Request('http://127.0.0.1:8474/proxies/{name}', data=b'{body}', method='POST')\n"
            "urllib.request.urlopen(r, timeout=5).read()\n"
        )
        rc, out = proxy.exec_run(["python", "-c", code])
        if rc != 0:
            raise RuntimeError(f"toxiproxy proxy {name}: enabled={enabled} failed: {out.decode()[-200:]}")
        if not enabled:
            self.done.append(("proxy", proxy, {"name": name}))

    def renew(self) -> None:
        pass

    def revert(self) -> None:
        for action, c, info in reversed(self.done):
            try:
                if action == "proxy":
                    self._set_proxy(str(info["name"]), enabled=True)
                elif action == "pause":
                    c.reload()
                    if c.status == "paused":
                        c.unpause()
                elif action in ("stop", "kill"):
                    c.start()
                elif action == "disconnect":
                    info["network"].connect(c, ipv4_address=info["ip"], aliases=[info["alias"]])
            except Exception as exc:  # revert the rest regardless; the error is in the event
                log.error("revert %s of %s failed: %s", action, c.name, exc)
                raise
        self.done.clear()


class ToxiproxyDriver:
    """A toxic on a dependency's proxy (or the proxy down), through the toxiproxy-python client."""

    def __init__(self, fault: Fault, fault_id: str, host: str = "127.0.0.1", port: int = 8474) -> None:
        from toxiproxy import Toxiproxy

        self.fault = fault
        self.toxic = f"wobble-{fault_id}"
        self.server = Toxiproxy()
        self.server.update_api_consumer(host, port)
        self.proxy: Any = None

    def apply(self) -> None:
        from chaos.catalog import PROXIED

        self.proxy = self.server.get_proxy(PROXIED[self.fault.target])
        if self.proxy is None:
            raise LookupError(f"the toxiproxy server has no proxy {PROXIED[self.fault.target]!r}")
        if self.fault.kind == "proxy_down":
            self.proxy.disable()
        else:
            self.proxy.add_toxic(type=self.fault.kind, name=self.toxic, **self.fault.params)

    def renew(self) -> None:
        pass

    def revert(self) -> None:
        if self.proxy is None:
            return
        if self.fault.kind == "proxy_down":
            self.proxy.enable()
        elif self.toxic in self.proxy.toxics():
            self.proxy.destroy_toxic(self.toxic)
        self.proxy = None


class SteeringDnsDriver:
    """Steering's DNS fault switch; steering drops it by itself unless renewed (its own lease)."""

    def __init__(self, fault: Fault, fault_id: str, url: str = "http://127.0.0.1:8080") -> None:
        self.fault = fault
        self.id = fault_id
        self.url = url
        self.token = WardenSettings.from_env().steering_token

    def _post(self, body: dict[str, Any] | None) -> None:
        req = urllib.request.Request(
            f"{self.url}/v1/chaos/dns",
            method="POST" if body else "DELETE",
            data=json.dumps(body).encode() if body else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=3) as resp:
            resp.read()

    def apply(self) -> None:
        mode = self.fault.kind.removeprefix("dns_")
        self._post({"id": self.id, "mode": mode, **self.fault.params, "ttl_s": 3.0})

    def renew(self) -> None:
        self.apply()

    def revert(self) -> None:
        self._post(None)


class SbcHtableDriver:
    """503 + Retry-After for a share of INVITEs: the SBC reads `$sht(chaos=>invite503)`.

    The htable's autoexpire drops the item unless it is set again, so a dead warden's fault
    lapses by itself in Kamailio too.
    """

    def __init__(self, fault: Fault, project: str) -> None:
        import docker

        self.fault = fault
        found = dockerctl.find_service(docker.from_env(timeout=30), fault.target, project)
        if found is None:
            raise LookupError(f"service {fault.target} is not running")
        self.sbc = found

    def _kamcmd(self, *args: str) -> None:
        code, out = self.sbc.exec_run(["kamcmd", "-s", "unix:/run/kamailio/kamailio_ctl", *args])
        if code != 0:
            raise RuntimeError(f"kamcmd {' '.join(args)} failed: {out.decode(errors='replace').strip()}")

    def apply(self) -> None:
        self._kamcmd("htable.seti", "chaos", "invite503", str(round(self.fault.params["pct"])))
        self._kamcmd("htable.seti", "chaos", "retry_after", str(self.fault.params["retry_after"]))

    def renew(self) -> None:
        self.apply()

    def revert(self) -> None:
        self._kamcmd("htable.delete", "chaos", "invite503")


def make_driver(fault: Fault, fault_id: str, project: str) -> Driver:
    if fault.family == "docker":
        return DockerDriver(fault, project)
    if fault.family == "toxiproxy":
        return ToxiproxyDriver(fault, fault_id)
    if fault.family == "dns":
        return SteeringDnsDriver(fault, fault_id)
    if fault.family == "sip":
        return SbcHtableDriver(fault, project)
    raise ValueError(f"chaos.warden does not serve the {fault.family} family (network faults: chaos.net.warden)")


class _Stop(Exception):
    pass


def serve(driver: Driver, fault: Fault, fault_id: str, lease_dir: str) -> str:
    """Apply, hold while the lease is live, revert; returns why it ended."""

    def on_signal(signum: int, frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    base = {"id": fault_id, "fault": fault.kind, "target": fault.target, "by": "warden"}
    reason = "error"
    applied = False
    try:
        driver.apply()
        applied = True
        effect_at = getattr(driver, "effect_at", None)
        print(f"LIVE {fault_id}" + (f" {effect_at:.6f}" if effect_at else ""), flush=True)
        last_renew = time.monotonic()
        while True:
            state = lease.lease_state(lease.read_lease(lease_dir, fault_id), time.time())
            if state != "live":
                reason = f"lease {state}"
                break
            if time.monotonic() - last_renew >= RENEW_S:
                driver.renew()
                last_renew = time.monotonic()
            time.sleep(POLL_S)
    except _Stop as stop:
        reason = str(stop)
    except Exception as exc:
        reason = f"error: {exc}"
        print(f"error: {exc}", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not interrupt the revert
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            driver.revert()
            if applied:
                events.append(events.FaultRevert.of({**base, "reason": reason, "mono": time.monotonic()}))
        except Exception as exc:
            failed = {**base, "reason": reason, "error": str(exc), "mono": time.monotonic()}
            events.append(events.FaultRevertFailed.of(failed))
            print(f"error: revert failed: {exc}", file=sys.stderr, flush=True)
            raise
    return reason


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s warden %(message)s")
    ap = argparse.ArgumentParser(prog="python -m chaos.warden")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("apply", help="apply one fault and hold it while its lease is live")
    a.add_argument("--spec", required=True, help="the validated fault (chaos.catalog.Fault) as JSON")
    a.add_argument("--id", required=True)
    a.add_argument("--lease-dir", required=True)
    args = ap.parse_args(argv)
    fault = Fault.model_validate_json(args.spec)
    project = WardenSettings.from_env().project
    try:
        driver = make_driver(fault, args.id, project)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    reason = serve(driver, fault, args.id, args.lease_dir)
    return 1 if reason.startswith("error") else 0


if __name__ == "__main__":
    sys.exit(main())
