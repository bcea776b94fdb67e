"""compose.yaml and core/topology.py describe the same lab; every network stays on the machine."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from core import paths
from core.topology import PROJECT, RESTART_ON_CRASH, RESTART_POLICY, Topology
from lab.lifecycle import SERVICES


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(paths.COMPOSE_FILE.read_text())
    return data


def test_project_name(compose: dict[str, Any]) -> None:
    assert compose["name"] == PROJECT


def test_every_network_is_internal_with_the_topology_subnet(compose: dict[str, Any]) -> None:
    topo = Topology.default()
    assert set(compose["networks"]) == set(topo.subnets())
    for name, net in compose["networks"].items():
        assert net["internal"] is True, name
        assert net["ipam"]["config"][0]["subnet"] == topo.subnets()[name]


def test_services_are_the_contract(compose: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(compose["services"])


def test_every_container_uses_the_lab_resolver(compose: dict[str, Any]) -> None:
    topo = Topology.default()
    resolver_ips = set(topo.resolver_ips.values())
    for name, svc in compose["services"].items():
        assert svc.get("dns"), f"{name} has no dns: and would leak lookups to the host"
        (ip,) = svc["dns"]
        assert ip in resolver_ips
        # the resolver must be reachable on a network the service is on
        nets = set(svc["networks"])
        assert any(topo.resolver_ips[n] == ip for n in nets), name


def test_region_addresses_match(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    for r in Topology.default().regions:
        sbc = svcs[r.sbc_service]
        assert sbc["networks"]["carrier"]["ipv4_address"] == r.sbc_carrier_ip
        assert sbc["networks"][r.network]["ipv4_address"] == r.sbc_region_ip
        assert sbc["environment"]["PBX_IP"] == r.pbx_ip
        assert svcs[r.pbx_service]["networks"][r.network]["ipv4_address"] == r.pbx_ip
        assert svcs[r.media_service]["networks"][r.network]["ipv4_address"] == r.media_region_ip
        assert svcs[r.agents_service]["networks"][r.network]["ipv4_address"] == r.agents_ip
        assert r.sbc_region_ip in svcs[r.agents_service]["command"]
    assert svcs["caller"]["networks"]["carrier"]["ipv4_address"] == Topology.default().caller_ip


def test_records_databases_match_topology_config_and_proxies(compose: dict[str, Any]) -> None:
    import json

    from lab.records import config

    svcs = compose["services"]
    topo = Topology.default()
    cfg = config.load(config.DEFAULT_PATH)
    proxies = {p["name"]: p for p in json.loads((paths.ROOT / "chaos" / "proxies.json").read_text())}
    for r in topo.regions:
        dbsvc = svcs[r.db_service]
        assert dbsvc["networks"][r.network]["ipv4_address"] == r.db_ip
        assert dbsvc["networks"]["backbone"]["ipv4_address"] == r.db_backbone_ip
        assert svcs[r.pbx_service]["environment"]["DB_HOST"] == r.db_ip
        assert "db" not in str(svcs[r.pbx_service].get("depends_on")), "calls must not wait for the database"
        rc = cfg.region(r.name)
        assert (rc.service, rc.host, rc.backbone_host) == (r.db_service, r.db_ip, r.db_backbone_ip)
        assert proxies[rc.repl_proxy]["upstream"] == f"{r.db_backbone_ip}:5432"
        peer = topo.region(rc.peer)
        assert proxies[rc.copy_proxy]["upstream"] == f"{peer.db_backbone_ip}:5433"
        # the peer's standby streams this region through repl_proxy; the fencing check uses copy_proxy
        env = svcs[peer.db_service]["environment"]
        assert env["PEER_PORT"] == proxies[rc.repl_proxy]["listen"].rsplit(":", 1)[1]
        assert svcs[r.db_service]["environment"]["PEER_COPY_PORT"] == proxies[rc.copy_proxy]["listen"].rsplit(":", 1)[1]
    assert svcs["records-exporter"]["networks"]["backbone"]["ipv4_address"] == topo.records_exporter_ip


def test_restart_policies_are_the_control_services(compose: dict[str, Any]) -> None:
    """Docker restarts exactly the lab's own control services after a crash; every other service's
    crash is a fault the lab injects and measures, which a restart would undo behind its back."""
    assert set(RESTART_ON_CRASH) <= set(compose["services"]), "RESTART_ON_CRASH names a service compose lacks"
    restarting = {name for name, svc in compose["services"].items() if "restart" in svc}
    assert restarting == set(RESTART_ON_CRASH), f"restart: set on {sorted(restarting)}"
    for name in RESTART_ON_CRASH:
        assert compose["services"][name]["restart"] == RESTART_POLICY, name
