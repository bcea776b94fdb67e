"""The records configuration (lab/records/records.yaml, or the file WOBBLE_RECORDS_CONFIG names)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import BadInput, first_problem
from core.settings import HostSettings

DEFAULT_PATH = Path(__file__).with_name("records.yaml")
Mode = Literal["async", "sync"]


class WanProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: int = Field(default=40, ge=0, le=10_000)
    jitter_ms: int = Field(default=5, ge=0, le=10_000)
    rate_kbs: int = Field(default=256, ge=0, description="KB/s each way; 0 = no cap")


class RegionDb(BaseModel):
    """One region's records server: its home cluster (:5432) and its copy of the peer's (:5433)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    host: str  # the db's address on its region network (what the PBX and the host CLI use)
    backbone_host: str | None = None  # its backbone address (the records exporter lives there)
    peer: str
    repl_proxy: str  # toxiproxy proxy carrying this region's home to the peer's standby
    copy_proxy: str  # toxiproxy proxy in front of the peer's copy of this region (resync source)
    home_port: int = 5432
    copy_port: int = 5433


class RecordsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = "wobble"
    mode: Mode = "async"
    #: Which address of each server to use: the host CLI reaches the region networks; the records
    #: exporter, on the backbone only, sets backbone.
    via: Literal["region", "backbone"] = "region"
    wan: WanProfile = WanProfile()
    #: `wobble up` applies the WAN profile once the lab is healthy (off: `wobble records wan`).
    wan_on_up: bool = True
    toxiproxy_api: str = "http://10.77.9.60:8474"
    password: str = "wobble"
    connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    statement_timeout_s: float = Field(default=15.0, gt=0, le=600)
    regions: dict[str, RegionDb]

    @model_validator(mode="after")
    def _peers_exist(self) -> RecordsConfig:
        for name, r in self.regions.items():
            if r.peer not in self.regions or r.peer == name:
                raise ValueError(f"regions.{name}.peer: {r.peer!r} is not another configured region")
        return self

    def region(self, name: str) -> RegionDb:
        if name not in self.regions:
            raise BadInput(f"unknown region {name!r}; use one of {', '.join(sorted(self.regions))}")
        return self.regions[name]


def config_path() -> Path:
    return HostSettings.from_env().records_config or DEFAULT_PATH


def parse(text: str, source: str = "records config") -> RecordsConfig:
    """A validated config from YAML text; BadInput naming the field that is wrong."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"{source}: not valid YAML ({exc}); fix the file") from exc
    if not isinstance(raw, dict):
        raise BadInput(f"{source}: must be a mapping of settings; fix the file")
    try:
        return RecordsConfig.model_validate(raw)
    except ValidationError as exc:
        raise BadInput(f"{source}: {first_problem(exc)}; fix the file") from exc


def load(path: Path | None = None) -> RecordsConfig:
    target = path or config_path()
    try:
        text = target.read_text()
    except OSError as exc:
        raise BadInput(f"records config {target} cannot be read ({exc.strerror}); set WOBBLE_RECORDS_CONFIG") from exc
    return parse(text, str(target))
