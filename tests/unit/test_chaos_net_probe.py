"""chaos.net.probe's choice of backend per kind, from what the kernel showed it can do."""

from __future__ import annotations

from chaos.net import probe
from chaos.net.rules import BACKENDS

ALL = dict.fromkeys(probe.CAPS, True)


def test_netem_kernel_uses_netem() -> None:
    got = probe.choose(ALL)
    assert {k: got[k] for k in ("delay", "loss", "burst_loss", "duplicate", "reorder")} == dict.fromkeys(
        ("delay", "loss", "burst_loss", "duplicate", "reorder"), "netem"
    )
    assert got["rate"] == "htb" and got["blackhole"] == "nft" and got["sip_drop"] == "nft"
    assert got["sip_delay"] == "nfqueue"


def test_this_machines_kernel() -> None:
    """No sch_netem: nft for drops, NFQUEUE for the rest, htb for rate."""
    got = probe.choose({**ALL, "netem": False})
    assert got == {
        "delay": "nfqueue",
        "loss": "nft",
        "burst_loss": "nfqueue",
        "duplicate": "nfqueue",
        "reorder": "nfqueue",
        "rate": "htb",
        "blackhole": "nft",
        "sip_drop": "nft",
        "sip_delay": "nfqueue",
    }


def test_fallbacks_and_gaps() -> None:
    no_egress = probe.choose({**ALL, "netem": False, "nft_egress": False})
    assert no_egress["loss"] == "nfqueue" and no_egress["sip_drop"] == "nfqueue"
    no_queue = probe.choose({**ALL, "netem": False, "nfqueue_bind": False})
    assert "delay" not in no_queue and no_queue["loss"] == "nft"
    no_raw = probe.choose({**ALL, "netem": False, "raw_socket": False})
    assert "duplicate" not in no_raw
    assert probe.choose({}) == {}


def test_every_choice_is_a_backend_the_rules_know() -> None:
    for caps in (ALL, {**ALL, "netem": False}, {**ALL, "netem": False, "nft_egress": False}):
        for kind, backend in probe.choose(caps).items():
            assert backend in BACKENDS[kind]
