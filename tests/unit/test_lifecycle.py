"""Pre-flight checks of `wobble up`, against a fake docker client (no daemon needed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from core import dockerctl
from core.errors import LabNotUp, PortInUse
from core.topology import Topology
from lab import lifecycle


class FakeDocker:
    def __init__(self, networks: list[dict[str, Any]], images: set[str]) -> None:
        self.networks = SimpleNamespace(list=lambda: [SimpleNamespace(name=n["Name"], attrs=n) for n in networks])
        self.images = SimpleNamespace(list=lambda name: [name] if name in images else [])


def use(monkeypatch: pytest.MonkeyPatch, fake: FakeDocker) -> None:
    monkeypatch.setattr(dockerctl, "client", lambda: fake)


def net(name: str, subnet: str, project: str | None = None) -> dict[str, Any]:
    labels = {"com.docker.compose.project": project} if project else {}
    return {"Name": name, "Labels": labels, "IPAM": {"Config": [{"Subnet": subnet}]}}


def test_overlapping_foreign_network_is_refused_with_a_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeDocker([net("bridge", "172.17.0.0/16"), net("other", "10.77.0.0/16")], set()))
    with pytest.raises(PortInUse, match=r"'other' uses 10.77.0.0/16.*docker network rm other"):
        lifecycle.ensure_subnets_are_free(Topology.default())


def test_the_labs_own_networks_are_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeDocker([net("wobble_carrier", "10.77.0.0/24", project="wobble")], set()))
    lifecycle.ensure_subnets_are_free(Topology.default())


def test_missing_images_say_run_make_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeDocker([], {"wobble/python:dev"}))
    with pytest.raises(LabNotUp, match=r"wobble/sbc:dev.*make setup"):
        lifecycle.ensure_images_exist()
