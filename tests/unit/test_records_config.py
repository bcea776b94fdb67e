"""lab.records.config: the shipped files validate; bad ones are one clear BadInput line."""

from __future__ import annotations

import pytest

from core import paths
from core.errors import BadInput
from lab.records import config, wan
from lab.records.config import WanProfile


def test_shipped_configs_validate() -> None:
    main = config.load(config.DEFAULT_PATH)
    assert main.mode == "async" and main.project == "wobble"
    rt = config.load(paths.ROOT / "tests" / "records" / "records.yaml")
    assert rt.project == "wobble-rt"
    assert all(r.host.startswith("10.78.") for r in rt.regions.values())


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("mode: fast\nregions: {}", "mode"),
        ("wan: {rate_kbs: -1}\nregions: {}", "wan.rate_kbs"),
        ("bogus: 1\nregions: {}", "bogus"),
        ("regions:\n  region-a: {service: db-a, host: h, peer: region-z, repl_proxy: r, copy_proxy: c}", "peer"),
        ("[1, 2", "not valid YAML"),
        ("- a", "mapping"),
    ],
)
def test_bad_config_is_a_clear_error(text: str, needle: str) -> None:
    with pytest.raises(BadInput, match=needle):
        config.parse(text, "test.yaml")


def test_unknown_region_names_the_known_ones() -> None:
    with pytest.raises(BadInput, match="region-a, region-b"):
        config.load(config.DEFAULT_PATH).region("region-c")


def test_missing_file() -> None:
    with pytest.raises(BadInput, match="cannot be read"):
        config.load(paths.ROOT / "nope.yaml")


def test_wan_toxics() -> None:
    toxics = wan.toxics_for(WanProfile(latency_ms=40, jitter_ms=5, rate_kbs=128))
    kinds = sorted((t["type"], t["stream"]) for t in toxics)
    assert kinds == [("bandwidth", "downstream"), ("latency", "downstream"), ("latency", "upstream")]
    assert wan.toxics_for(WanProfile(latency_ms=0, jitter_ms=0, rate_kbs=0)) == []
