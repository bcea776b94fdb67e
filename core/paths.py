"""Where the lab keeps things on the host: the checkout, and its bind-mounted `var/`."""

from __future__ import annotations

import subprocess
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


def git_commit(root: Path | None = None) -> str:
    """The checkout's commit (short form with `-dirty` when the tree has changes), or `unknown`."""
    where = str(root or ROOT)
    try:
        head = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head or "unknown"
