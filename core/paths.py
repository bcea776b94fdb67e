"""Where the lab keeps things on the host: the checkout, and its bind-mounted `var/`."""

from __future__ import annotations

from pathlib import Path

from core.settings import HostSettings

#: The checkout (the folder holding compose.yaml); WOBBLE_ROOT overrides for installed copies.
ROOT = HostSettings.from_env().root or Path(__file__).resolve().parents[1]
#: Bind-mounted into the containers: event log, recordings, CDRs. Survives `make down`.
VAR = ROOT / "var"
EVENTS = VAR / "events.jsonl"
COMPOSE_FILE = ROOT / "compose.yaml"


def recordings_dir(region: str) -> Path:
    return VAR / "recordings" / region


def cdr_file(region: str) -> Path:
    return VAR / "cdr" / region / "Master.csv"
