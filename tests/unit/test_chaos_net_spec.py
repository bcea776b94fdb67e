"""chaos.net.spec: what a network fault may ask for, and the messages that say how to fix it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.net.spec import (
    DEFAULT_MEDIA_PORTS,
    DEFAULT_REORDER_MS,
    InvalidNetFault,
    NetFault,
    ensure_net_fault_is_valid,
    parse_net_fault,
)

VALID = [
    {"kind": "delay", "ms": 200},
    {"kind": "delay", "ms": 200, "jitter": 30},
    {"kind": "delay", "ms": 200, "jitter_ms": 30, "direction": "both", "match": "sip"},
    {"kind": "loss", "pct": 10},
    {"kind": "loss", "pct": 0},
    {"kind": "loss", "pct": 100, "match": "media", "media_ports": [40000, 40100]},
    {"kind": "burst_loss", "p": 5, "r": 50},
    {"kind": "burst_loss", "p": 5, "r": 50, "h": 10, "k": 99},
    {"kind": "duplicate", "pct": 5},
    {"kind": "reorder", "pct": 25},
    {"kind": "reorder", "pct": 25, "ms": 10},
    {"kind": "rate", "kbit": 64},
    {"kind": "rate", "kbit": 64, "direction": "ingress"},
    {"kind": "blackhole"},
    {"kind": "blackhole", "direction": "both"},
    {"kind": "sip_drop", "method": "INVITE"},
    {"kind": "sip_drop", "method": "options", "pct": 50},
    {"kind": "sip_delay", "method": "REGISTER", "ms": 500},
    {"kind": "sip_delay", "method": "INVITE", "ms": 500, "jitter": 50, "pct": 50, "match": "sip"},
]

INVALID = [
    ({"kind": "loss", "pct": 101}, "pct=101 is outside 0..100"),
    ({"kind": "loss", "pct": -1}, "pct=-1 is outside 0..100"),
    ({"kind": "loss"}, "pct is required for loss"),
    ({"kind": "delay"}, "ms is required for delay"),
    ({"kind": "delay", "ms": -5}, "ms=-5 is negative"),
    ({"kind": "delay", "ms": 100, "jitter": -1}, "jitter_ms=-1 is negative"),
    ({"kind": "delay", "ms": 100_000}, "ms=100000 is over"),
    ({"kind": "rate"}, "kbit is required for rate"),
    ({"kind": "rate", "kbit": 0}, "kbit=0 must be above 0"),
    ({"kind": "burst_loss", "p": 5}, "r is required for burst_loss"),
    ({"kind": "burst_loss", "p": 5, "r": 0}, "r=0 never leaves the bad state"),
    ({"kind": "burst_loss", "p": 5, "r": 50, "h": 120}, "h=120 is outside 0..100"),
    ({"kind": "sip_drop"}, "method is required for sip_drop"),
    ({"kind": "sip_drop", "method": "BYE"}, "unknown SIP method"),
    ({"kind": "sip_delay", "method": "INVITE"}, "ms is required for sip_delay"),
    ({"kind": "sip_drop", "method": "INVITE", "match": "media"}, "always matches SIP"),
    ({"kind": "loss", "pct": 10, "ms": 5}, "loss does not take ms"),
    ({"kind": "loss", "pct": 10, "jitter": 5}, "loss does not take jitter_ms"),
    ({"kind": "blackhole", "pct": 5}, "blackhole does not take pct"),
    ({"kind": "loss", "pct": 10, "media_ports": [1, 2]}, "media_ports only applies with match=media"),
    ({"kind": "loss", "pct": 10, "match": "media", "media_ports": [40000, 30000]}, "is not a port range"),
    ({"kind": "loss", "pct": 10, "match": "media", "media_ports": "nope"}, "media_ports must be LOW-HIGH"),
    ({"kind": "loss", "pct": 10, "direction": "sideways"}, "direction"),
    ({"kind": "loss", "pct": 10, "match": "rtp"}, "match"),
    ({"kind": "wobble"}, "kind"),
    ({"kind": "loss", "pct": 10, "unknown": 1}, "unknown"),
    ({"kind": "loss", "pct": "ten"}, "pct"),
]


@pytest.mark.parametrize("data", VALID)
def test_valid_faults_parse(data: dict[str, object]) -> None:
    fault = parse_net_fault(data)
    ensure_net_fault_is_valid(fault)
    again = NetFault.model_validate(fault.model_dump(mode="json"))  # what the controller passes on
    assert again == fault


@pytest.mark.parametrize(("data", "needle"), INVALID)
def test_invalid_faults_name_the_field(data: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidNetFault) as err:
        parse_net_fault(data)
    assert needle in str(err.value)
    assert isinstance(err.value, ValueError)
    # The model itself refuses too, with pydantic's ValueError carrying the same message.
    with pytest.raises(ValueError, match=None) as err2:
        NetFault.model_validate(data)
    assert needle.split("=")[0].split()[0] in str(err2.value)


def test_messages_say_how_to_fix() -> None:
    with pytest.raises(InvalidNetFault, match=r"e\.g\. --ms 200"):
        parse_net_fault({"kind": "delay"})
    with pytest.raises(InvalidNetFault, match="--method INVITE"):
        parse_net_fault({"kind": "sip_drop"})
    with pytest.raises(InvalidNetFault, match="give a percentage"):
        parse_net_fault({"kind": "loss", "pct": 150})


def test_defaults_and_derived_values() -> None:
    f = parse_net_fault({"kind": "delay", "ms": 200, "jitter": 30})
    assert (f.direction, f.match, f.media_ports, f.jitter_ms) == ("egress", "all", DEFAULT_MEDIA_PORTS, 30.0)
    assert f.directions == ("egress",)
    assert parse_net_fault({"kind": "blackhole", "direction": "both"}).directions == ("egress", "ingress")
    assert parse_net_fault({"kind": "reorder", "pct": 5}).effective_ms == DEFAULT_REORDER_MS
    s = parse_net_fault({"kind": "sip_drop", "method": "invite"})
    assert (s.method, s.effective_match, s.effective_pct) == ("INVITE", "sip", 100.0)
    g = parse_net_fault({"kind": "burst_loss", "p": 1, "r": 30})
    assert (g.h, g.k) == (0.0, 100.0)


def test_media_ports_text_forms() -> None:
    for text in ("30000-30100", "30000:30100", " 30000 - 30100 "):
        f = parse_net_fault({"kind": "loss", "pct": 1, "match": "media", "media_ports": text})
        assert f.media_ports == (30000, 30100)


def test_catalog_uses_the_spec() -> None:
    """The controller's catalog validates network faults through this model."""
    from chaos.catalog import FaultRequest, InvalidFault, ensure_fault_is_valid

    ok = ensure_fault_is_valid(
        FaultRequest(kind="delay", target="sbc-a", duration_s=5, params={"ms": 200, "jitter_ms": 30}), ["sbc-a"]
    )
    assert ok.params["ms"] == 200 and ok.params["jitter_ms"] == 30
    with pytest.raises(InvalidFault, match=r"pct=150 is outside 0\.\.100"):
        ensure_fault_is_valid(FaultRequest(kind="loss", target="sbc-a", duration_s=5, params={"pct": 150}), ["sbc-a"])


@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_any_percentage_is_a_valid_loss(pct: float) -> None:
    assert parse_net_fault({"kind": "loss", "pct": pct}).pct == pct


@given(
    st.one_of(
        st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
        st.floats(min_value=100.000001, allow_nan=False, allow_infinity=False),
    )
)
def test_any_other_number_is_refused(pct: float) -> None:
    with pytest.raises(InvalidNetFault, match="pct="):
        parse_net_fault({"kind": "loss", "pct": pct})


@given(st.integers(1, 65535), st.integers(1, 65535))
def test_media_port_ranges(a: int, b: int) -> None:
    data = {"kind": "loss", "pct": 1, "match": "media", "media_ports": [a, b]}
    if a <= b:
        assert parse_net_fault(data).media_ports == (a, b)
    else:
        with pytest.raises(InvalidNetFault, match="not a port range"):
            parse_net_fault(data)
