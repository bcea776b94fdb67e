"""Steering's configuration: what it steers between, and how. Declarative, validated by pydantic.

Served by the config API (the control plane) and bundled with steering as its first
last-known-good, so steering runs even when the control plane never answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import BadInput, first_problem

BUNDLED = Path(__file__).with_name("steering.yaml")


class RegionTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sbc_host: str
    sbc_port: int = Field(5060, ge=1, le=65535)
    pbx_host: str | None = None
    weight: int = Field(50, ge=0)


class SteeringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zone: str = "cx.lab"
    dns_ttl: int = Field(5, ge=0, le=3600)
    regions: list[RegionTarget]
    routing: str = Field("active-active", pattern="^(active-active|active-standby)$")
    mode: str = Field("auto", pattern="^(auto|confirm|manual)$")
    #: Policy thresholds (see lab.steering.policy.PolicyConfig); validated there.
    policy: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_regions(self) -> SteeringConfig:
        names = [r.name for r in self.regions]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"regions must be a non-empty list of distinct names, got {names}")
        return self

    def region(self, name: str) -> RegionTarget:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)


def ensure_config_is_valid(data: Any, source: str) -> SteeringConfig:
    try:
        return SteeringConfig.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"{source}: {first_problem(exc)} ({exc.error_count()} problem(s) in all)") from None


def load(path: Path = BUNDLED) -> SteeringConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not valid YAML: {exc}") from None
    return ensure_config_is_valid(data, str(path))
