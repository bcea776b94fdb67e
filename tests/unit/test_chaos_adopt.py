"""A restarted controller adopts the wardens still holding live faults (fakes, no docker).

The real restart (kill -9 of the controller, docker's restart policy) is tests/lab/test_restart.py;
here the point is the controller's choice: what it adopts (a running warden past LIVE, its lease
live with a margin, its labels saying what it holds), what that gives (the lease renewed at once,
the fault listed with its own start time and end, a `fault_adopted` event, revert and end working
as for a fault applied here), and that everything else is still stopped and cleaned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from chaos import lease, wardens
from chaos.api import make_app
from chaos.catalog import Fault
from chaos.controller import ADOPT_MARGIN_S, DEFAULT_TTL_S, Controller
from core.settings import ChaosSettings
from tests.helpers import logged
from tests.unit.test_chaos_api import AUTH, TOKEN, FakeContainer, FakeDocker

PAUSE = Fault(kind="pause", family="docker", target="crm", duration_s=600.0, params={}, services=("crm",))
LOSS = Fault(
    kind="loss",
    family="net",
    target="media-a",
    duration_s=600.0,
    params={"pct": 20.0, "direction": "egress", "match": "all"},
    services=("media-a",),
)


class Warden(FakeContainer):
    """A warden an earlier controller started: labels as chaos.wardens.run_options sets them."""

    def __init__(self, fid: str, fault: Fault, backend: str, live_at: float | None, status: str = "running") -> None:
        anchor = FakeContainer(f"wobble-{fault.target}-1", fault.target)
        opts = wardens.run_options(fault, fid, "/host/var", anchor, "wobble", backend)
        super().__init__(opts["name"], labels=opts["labels"])
        self.labels.pop("com.docker.compose.service")
        self.attrs["State"]["Status"] = status
        self.live_at = live_at
        self.stopped = False

    def logs(self, **_: Any) -> bytes:
        if self.live_at is None:
            return b"applying\n"
        return f"applied\nLIVE {self.labels[wardens.LABEL]} {self.live_at:.6f}\n".encode()

    def stop(self, timeout: int) -> None:
        self.stopped = True
        super().stop(timeout)


Check = Callable[[TestClient[Any, Any], Controller], Awaitable[None]]


@pytest.fixture
def restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[list[Warden], Check], None]:
    """Start a fresh controller (as docker's restart does) beside the given leftover wardens."""
    monkeypatch.setenv("WOBBLE_EVENTS", str(tmp_path / "events.jsonl"))

    def run(left: list[Warden], check: Check) -> None:
        async def main() -> None:
            docker = FakeDocker()
            docker.containers.wardens.extend(left)
            ctl = Controller(docker, lease_dir=tmp_path / "leases", host_var=str(tmp_path), renew_s=0.05, ttl_s=8.0)
            await ctl.start()
            try:
                async with TestClient(TestServer(make_app(ctl, TOKEN))) as client:
                    await check(client, ctl)
            finally:
                await ctl.stop()

        asyncio.run(main())

    return run


def leased(lease_dir: Path, fid: str, left_s: float, ends_in_s: float = 500.0) -> float:
    now = time.time()
    lease.write_lease(lease_dir, fid, expires_at=now + left_s, ends_at=now + ends_in_s)
    return now + ends_in_s


def test_a_live_warden_is_adopted_listed_renewed_and_reverted(
    tmp_path: Path, restart: Callable[[list[Warden], Check], None]
) -> None:
    live_at = time.time() - 42.0
    ends_at = leased(tmp_path / "leases", "f00d0001", left_s=3.0)
    leased(tmp_path / "leases", "f00d0002", left_s=2.5)
    pause = Warden("f00d0001", PAUSE, "docker", live_at)
    loss = Warden("f00d0002", LOSS, "nft", live_at)

    async def check(client: TestClient[Any, Any], ctl: Controller) -> None:
        listed = {f["id"]: f for f in await (await client.get("/v1/faults")).json()}
        assert set(listed) == {"f00d0001", "f00d0002"}
        f = listed["f00d0001"]
        assert (f["kind"], f["target"], f["backend"], f["services"]) == ("pause", "crm", "docker", ["crm"])
        assert f["started_at"] == round(live_at, 3), "the start is the warden's LIVE time, not the adoption"
        assert f["ends_at"] == round(ends_at, 3), "--for still ends when it was asked to"
        assert listed["f00d0002"]["backend"] == "nft" and listed["f00d0002"]["params"]["pct"] == 20.0
        renewed = lease.read_lease(ctl.lease_dir, "f00d0001")
        assert renewed is not None and renewed.expires_at > time.time() + 7.0, "renewed with the full TTL"
        assert not pause.stopped and not loss.stopped and not pause.removed
        await asyncio.sleep(0.2)  # and renewed from then on
        again = lease.read_lease(ctl.lease_dir, "f00d0001")
        assert again is not None and again.expires_at > renewed.expires_at
        resp = await client.delete("/v1/faults/f00d0001", headers=AUTH)
        assert resp.status == 200, await resp.text()
        assert lease.read_lease(ctl.lease_dir, "f00d0001") is None and pause.removed
        assert [f["id"] for f in await (await client.get("/v1/faults")).json()] == ["f00d0002"]

    restart([pause, loss], check)
    evs = logged(tmp_path / "events.jsonl")
    adopted = [e for e in evs if e["kind"] == "fault_adopted"]
    assert sorted(e["id"] for e in adopted) == ["f00d0001", "f00d0002"]
    first = next(e for e in adopted if e["id"] == "f00d0001")
    assert first["fault"] == "pause" and first["target"] == "crm" and 2.0 < first["lease_left_s"] <= 3.0
    assert [e["id"] for e in evs if e["kind"] == "fault_end"] == ["f00d0001"]
    assert not [e for e in evs if e["kind"] == "fault_reconciled"]


@pytest.mark.parametrize(
    ("why", "left_s", "live", "status", "labelled"),
    [
        ("lease expired", -1.0, True, "running", True),
        ("lease about to lapse", ADOPT_MARGIN_S / 2, True, "running", True),
        ("lease missing", None, True, "running", True),
        ("never went live", 5.0, False, "running", True),
        ("warden exited", 5.0, True, "exited", True),
        ("warden from before the labels", 5.0, True, "running", False),
    ],
)
def test_what_cannot_be_adopted_is_stopped_and_cleaned(
    tmp_path: Path,
    restart: Callable[[list[Warden], Check], None],
    why: str,
    left_s: float | None,
    live: bool,
    status: str,
    labelled: bool,
) -> None:
    if left_s is not None:
        leased(tmp_path / "leases", "beef0001", left_s=left_s)
    w = Warden("beef0001", PAUSE, "docker", time.time() if live else None, status)
    if not labelled:
        del w.labels[wardens.SPEC_LABEL], w.labels[wardens.BACKEND_LABEL]

    async def check(client: TestClient[Any, Any], ctl: Controller) -> None:
        assert await (await client.get("/v1/faults")).json() == [], why
        assert w.removed, why
        assert lease.read_lease(ctl.lease_dir, "beef0001") is None, why

    restart([w], check)
    kinds = [e["kind"] for e in logged(tmp_path / "events.jsonl")]
    assert "fault_reconciled" in kinds and "fault_adopted" not in kinds, why


def test_an_adopted_fault_ends_when_its_time_is_up(
    tmp_path: Path, restart: Callable[[list[Warden], Check], None]
) -> None:
    leased(tmp_path / "leases", "cafe0001", left_s=3.0, ends_in_s=0.3)
    w = Warden("cafe0001", PAUSE, "docker", time.time())

    async def check(client: TestClient[Any, Any], ctl: Controller) -> None:
        assert [f["id"] for f in await (await client.get("/v1/faults")).json()] == ["cafe0001"]
        await asyncio.sleep(0.6)
        assert await (await client.get("/v1/faults")).json() == []
        assert w.removed

    restart([w], check)
    ends = [e for e in logged(tmp_path / "events.jsonl") if e["kind"] == "fault_end"]
    assert [(e["id"], e["reason"]) for e in ends] == [("cafe0001", "ended")]


def test_a_controller_that_does_not_come_back_leaves_the_lease_to_lapse_within_the_ttl(
    tmp_path: Path, restart: Callable[[list[Warden], Check], None]
) -> None:
    leased(tmp_path / "leases", "dead0001", left_s=3.0)
    w = Warden("dead0001", PAUSE, "docker", time.time())

    async def check(client: TestClient[Any, Any], ctl: Controller) -> None:
        await ctl.stop()  # renewals stop, as when the controller dies and stays dead
        stopped_at = time.time()
        last = lease.read_lease(ctl.lease_dir, "dead0001")
        assert last is not None and last.expires_at <= stopped_at + ctl.ttl_s
        # what the warden sees once the TTL has passed: it reverts
        assert lease.lease_state(last, stopped_at + ctl.ttl_s) == "expired"

    restart([w], check)


def test_the_ttl_outlives_a_restart_and_is_one_number() -> None:
    assert ChaosSettings().lease_ttl_s == DEFAULT_TTL_S
    # docker's restart (~1-3 s) plus the controller's start-up to adoption, with room to spare
    assert DEFAULT_TTL_S >= 6.0
