"""The controller's HTTP API with a fake docker: validation before anything runs, tokens, leases.

The real wardens and the real docker are exercised by tests/lab/test_chaos.py; here the point is
the controller's own logic: bad input starts no warden, a live fault's lease is renewed, a
cleared fault's lease is withdrawn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from chaos import lease
from chaos.api import make_app
from chaos.controller import Controller
from lab.lifecycle import SERVICES

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeContainer:
    def __init__(self, name: str, service: str = "", labels: dict[str, str] | None = None) -> None:
        self.id = f"id-{name}"
        self.name = name
        self.labels = {"com.docker.compose.service": service, **(labels or {})}
        self.attrs: dict[str, Any] = {"State": {"Status": "running", "ExitCode": 0}}
        self.exited = False
        self.removed = False

    def logs(self, **_: Any) -> bytes:
        return f"LIVE {self.labels.get('wobble.chaos.fault', '')}\n".encode()

    def reload(self) -> None:
        pass

    def wait(self, timeout: float) -> dict[str, int]:
        self.exited = True
        return {"StatusCode": 0}

    def stop(self, timeout: int) -> None:
        self.exited = True

    def remove(self, force: bool = False) -> None:
        self.removed = True


class FakeContainers:
    def __init__(self) -> None:
        self.lab = [FakeContainer(f"wobble-{s}-1", s) for s in SERVICES]
        self.started: list[tuple[list[str], dict[str, Any]]] = []
        self.wardens: list[FakeContainer] = []

    def list(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[FakeContainer]:
        labels = (filters or {}).get("label", [])
        labels = [labels] if isinstance(labels, str) else labels
        if any(lb.startswith("wobble.chaos.fault") for lb in labels):
            return [w for w in self.wardens if not w.removed]
        for lb in labels:
            if lb.startswith("com.docker.compose.service="):
                svc = lb.split("=", 1)[1]
                return [c for c in self.lab if c.labels["com.docker.compose.service"] == svc]
        return self.lab

    def run(self, image: str, command: list[str], **opts: Any) -> Any:
        if "--json" in command:  # the backend probe
            return b'{"loss": "nft", "delay": "nfqueue", "rate": "tbf"}\n'
        self.started.append((command, opts))
        w = FakeContainer(opts["name"], labels=opts["labels"])
        self.wardens.append(w)
        return w


class FakeDocker:
    def __init__(self) -> None:
        self.containers = FakeContainers()


Check = Callable[[TestClient[Any, Any], Any], Awaitable[None]]


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Check], None]:
    """Run a check against a controller on a fake docker, with its lease renewal running."""
    monkeypatch.setenv("WOBBLE_EVENTS", str(tmp_path / "events.jsonl"))

    def run(check: Check) -> None:
        async def main() -> None:
            ctl = Controller(FakeDocker(), lease_dir=tmp_path / "leases", host_var=str(tmp_path), renew_s=0.05)
            await ctl.start()  # renews leases from then on
            try:
                async with TestClient(TestServer(make_app(ctl, TOKEN))) as client:
                    await check(client, ctl)
            finally:
                await ctl.stop()

        asyncio.run(main())

    return run


def test_mutations_need_the_token(api: Callable[[Check], None]) -> None:
    async def check(client: TestClient[Any, Any], ctl: Any) -> None:
        resp = await client.post("/v1/faults", json={"kind": "pause", "target": "crm", "duration_s": 5})
        assert resp.status == 401
        assert (await client.get("/v1/faults")).status == 200
        assert ctl.docker.containers.started == []

    api(check)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"kind": "lose", "target": "crm", "duration_s": 5}, "unknown fault"),
        ({"kind": "pause", "target": "nobody", "duration_s": 5}, "nobody"),
        ({"kind": "pause", "target": "crm", "duration_s": -5}, "positive"),
        ({"kind": "sip_503", "target": "sbc-a", "duration_s": 5, "params": {"pct": 150}}, "0..100"),
        ({"kind": "pause", "target": "crm", "duration_s": 5, "backend": "podman"}, "unknown backend"),
        ({"kind": "pause", "target": "crm"}, "duration_s"),
        ({"kind": "pause", "target": "crm", "duration_s": 5, "colour": "red"}, "colour"),
    ],
)
def test_bad_input_starts_nothing(api: Callable[[Check], None], body: dict[str, Any], needle: str) -> None:
    async def check(client: TestClient[Any, Any], ctl: Any) -> None:
        resp = await client.post("/v1/faults", json=body, headers=AUTH)
        assert resp.status == 400
        assert needle in (await resp.json())["error"]
        assert ctl.docker.containers.started == []
        assert lease.list_leases(ctl.lease_dir) == []

    api(check)


def test_a_fault_is_leased_renewed_and_withdrawn(api: Callable[[Check], None]) -> None:
    async def check(client: TestClient[Any, Any], ctl: Any) -> None:
        resp = await client.post("/v1/faults", json={"kind": "pause", "target": "crm", "duration_s": 30}, headers=AUTH)
        assert resp.status == 201, await resp.text()
        fid = (await resp.json())["id"]
        ((cmd, opts),) = ctl.docker.containers.started
        assert cmd[:3] == ["python", "-m", "chaos.warden"] and fid in cmd
        assert opts["network_mode"] == "none" and "/var/run/docker.sock" in opts["volumes"]
        first = lease.read_lease(ctl.lease_dir, fid)
        assert first is not None
        await asyncio.sleep(0.2)
        renewed = lease.read_lease(ctl.lease_dir, fid)
        assert renewed is not None and renewed.expires_at > first.expires_at
        listed = await (await client.get("/v1/faults")).json()
        assert [f["id"] for f in listed] == [fid]
        resp = await client.delete(f"/v1/faults/{fid}", headers=AUTH)
        assert resp.status == 200
        assert lease.read_lease(ctl.lease_dir, fid) is None
        assert await (await client.get("/v1/faults")).json() == []
        assert (await client.delete(f"/v1/faults/{fid}", headers=AUTH)).status == 404

    api(check)


def test_network_faults_get_a_warden_in_the_target_namespace(api: Callable[[Check], None]) -> None:
    async def check(client: TestClient[Any, Any], ctl: Any) -> None:
        body = {"kind": "loss", "target": "media-a", "duration_s": 30, "params": {"pct": 20}}
        resp = await client.post("/v1/faults", json=body, headers=AUTH)
        assert resp.status == 201, await resp.text()
        ((cmd, opts),) = ctl.docker.containers.started
        assert cmd[:3] == ["python", "-m", "chaos.net.warden"]
        assert opts["network_mode"] == "container:id-wobble-media-a-1" and opts["cap_add"] == ["NET_ADMIN"]
        assert (await resp.json())["backend"] == "nft"

    api(check)


def test_a_fault_ends_by_itself(api: Callable[[Check], None]) -> None:
    async def check(client: TestClient[Any, Any], ctl: Any) -> None:
        body = {"kind": "pause", "target": "crm", "duration_s": 0.2}
        assert (await client.post("/v1/faults", json=body, headers=AUTH)).status == 201
        await asyncio.sleep(0.6)
        assert await (await client.get("/v1/faults")).json() == []
        assert all(w.removed for w in ctl.docker.containers.wardens)

    api(check)
