"""The fault catalog refuses bad input with a message naming the fix, and resolves good input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.catalog import (
    FAMILIES,
    REGION_SERVICES,
    FaultRequest,
    InvalidFault,
    ensure_fault_is_valid,
    parse_duration,
)
from lab.lifecycle import SERVICES


def check(kind: str, target: str, duration: float = 10.0, **params: Any) -> Any:
    return ensure_fault_is_valid(FaultRequest(kind=kind, target=target, duration_s=duration, params=params), SERVICES)


@pytest.mark.parametrize(
    ("text", "seconds"), [("60s", 60.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("90", 90.0), (" 1.5s ", 1.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["-5s", "0", "0s", "abc", "10 parsecs", "", "25h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidFault):
        parse_duration(text)


@given(st.floats(min_value=-1e6, max_value=0))
def test_no_fault_without_positive_duration(seconds: float) -> None:
    with pytest.raises(InvalidFault, match="positive"):
        check("pause", "crm", duration=seconds)


def test_unknown_fault_names_the_known_ones() -> None:
    with pytest.raises(InvalidFault, match=r"unknown fault .lose.*loss"):
        check("lose", "media-a", pct=20)


def test_absent_target_names_the_valid_ones() -> None:
    with pytest.raises(InvalidFault, match="cannot target 'media-z'"):
        check("pause", "media-z")


def test_the_instrument_is_not_a_target() -> None:
    with pytest.raises(InvalidFault):
        check("kill", "chaos")


def test_region_down_takes_every_service_of_the_region() -> None:
    f = check("region_down", "region-a")
    assert f.services == REGION_SERVICES["region-a"] and "db-a" in f.services
    assert f.params == {"how": "kill", "repl_proxy": "repl-a"}  # its records' WAN egress is cut first
    with pytest.raises(InvalidFault, match="region"):
        check("region_down", "sbc-a")


def test_partition_needs_a_lab_network() -> None:
    assert check("partition", "pbx-a", network="backbone").services == ("pbx-a",)
    with pytest.raises(InvalidFault, match="--network"):
        check("partition", "pbx-a", network="internet")


def test_toxics_use_toxiproxy_names_and_units() -> None:
    f = check("latency", "crm", ms=300, jitter=50)
    assert f.family == "toxiproxy"
    assert f.params["attributes"] == {"latency": 300, "jitter": 50}
    assert check("bandwidth", "idp", kbit=64).params["attributes"] == {"rate": 8}
    assert check("http_error", "crm", pct=30, status=429).params["attributes"]["rate"] == pytest.approx(0.3)
    assert check("proxy_down", "config-api").params == {}
    with pytest.raises(InvalidFault, match="cannot target 'sbc-a'"):
        check("latency", "sbc-a", ms=10)
    with pytest.raises(InvalidFault, match="does not take"):
        check("latency", "crm", ms=10, pct=5)
    with pytest.raises(InvalidFault, match="status"):
        check("http_error", "crm", pct=5, status=200)


@pytest.mark.parametrize("pct", [-1, 100.5, 250])
def test_shares_outside_0_100_are_refused(pct: float) -> None:
    with pytest.raises(InvalidFault, match=r"0\.\.100"):
        check("sip_503", "sbc-a", pct=pct)
    with pytest.raises(InvalidFault, match=r"0\.\.100"):
        check("dns_servfail", "steering", pct=pct)


def test_dns_and_sip_faults() -> None:
    assert check("dns_slow", "steering", ms=800).params == {"pct": 100.0, "ms": 800.0}
    assert check("sip_503", "sbc-b", pct=25).params == {"pct": 25.0, "retry_after": 5}
    with pytest.raises(InvalidFault, match="ms is required"):
        check("dns_slow", "steering")
    with pytest.raises(InvalidFault):
        check("dns_drop", "sbc-a")


def test_every_kind_has_a_family() -> None:
    assert set(FAMILIES.values()) == {"net", "toxiproxy", "docker", "dns", "sip"}


def test_an_unknown_backend_is_refused() -> None:
    req = FaultRequest(kind="pause", target="crm", duration_s=5, backend="netem")
    with pytest.raises(InvalidFault, match=r"unknown backend .netem.*docker"):
        ensure_fault_is_valid(req, SERVICES, {"pause": "docker"})
    ok = FaultRequest(kind="pause", target="crm", duration_s=5, backend="docker")
    assert ensure_fault_is_valid(ok, SERVICES, {"pause": "docker"}).kind == "pause"


def test_network_fault_kinds_are_one_list() -> None:
    """NetKind is the one definition: the catalog, the spec's parameters and the backends follow it."""
    from chaos import catalog
    from chaos.net import rules, spec

    assert set(catalog.NET_KINDS) == set(spec.NetKind) == set(spec.KINDS)
    assert set(rules.BACKENDS) == set(spec.NetKind)
    assert set(spec._PARAMS) == set(spec.NetKind)
    assert all(catalog.FAMILIES[k] == "net" for k in spec.NetKind)


def test_regions_and_networks_come_from_the_topology() -> None:
    from chaos import catalog
    from core.topology import Topology

    topo = Topology.default()
    assert catalog.REGION_SERVICES == {
        "region-a": ("sbc-a", "media-a", "pbx-a", "db-a"),
        "region-b": ("sbc-b", "media-b", "pbx-b", "db-b"),
    }
    assert catalog.NETWORKS == ("carrier", "backbone", "region-a", "region-b") == topo.network_names
    assert catalog.SBCS == ("sbc-a", "sbc-b")
