"""Leases: how a controller keeps a fault alive and how its warden knows when to revert.

One small JSON file per fault in a directory both sides mount. The controller rewrites it every
second with `expires_at = now + ttl`; `ends_at` is when the fault's `--for` runs out. The warden
polls it and reverts when it is expired, ended or missing: a dead controller leaves nothing behind
for longer than the TTL. Times are wall-clock epoch seconds (every container shares the host's
clock). Writes are atomic (temporary file, fsync, rename, fsync of the directory), so a reader
never sees half a lease; an unreadable lease reads as missing, which also reverts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core import durable

LeaseState = Literal["live", "expired", "ended", "missing"]
SUFFIX = ".lease"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Lease:
    fault_id: str
    expires_at: float
    ends_at: float


def _check_id(fault_id: str) -> None:
    if not _ID.match(fault_id):
        raise ValueError(f"fault id {fault_id!r} must be 1-64 letters, digits, '-' or '_' (it names a file)")


def lease_path(lease_dir: str | os.PathLike[str], fault_id: str) -> Path:
    _check_id(fault_id)
    return Path(lease_dir) / f"{fault_id}{SUFFIX}"


def write_lease(lease_dir: str | os.PathLike[str], fault_id: str, expires_at: float, ends_at: float) -> None:
    """Create or renew a fault's lease atomically."""
    body = json.dumps({"id": fault_id, "expires_at": float(expires_at), "ends_at": float(ends_at)}).encode()
    durable.replace(lease_path(lease_dir, fault_id), body)


def read_lease(lease_dir: str | os.PathLike[str], fault_id: str) -> Lease | None:
    """The lease, or None when it is missing or unreadable (both mean: revert)."""
    try:
        raw = json.loads(lease_path(lease_dir, fault_id).read_bytes())
        return Lease(fault_id=fault_id, expires_at=float(raw["expires_at"]), ends_at=float(raw["ends_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lease_state(lease: Lease | None, now: float) -> LeaseState:
    """`ended` (the fault's time is up) wins over `expired` (renewals stopped)."""
    if lease is None:
        return "missing"
    if now >= lease.ends_at:
        return "ended"
    if now >= lease.expires_at:
        return "expired"
    return "live"


def remove_lease(lease_dir: str | os.PathLike[str], fault_id: str) -> None:
    """Withdraw a lease (its warden reverts at its next poll); missing is fine."""
    path = lease_path(lease_dir, fault_id)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    durable.fsync_dir(path.parent)


def list_leases(lease_dir: str | os.PathLike[str]) -> list[str]:
    """The fault ids that have a lease file, sorted."""
    try:
        names = os.listdir(lease_dir)
    except FileNotFoundError:
        return []
    return sorted(n[: -len(SUFFIX)] for n in names if n.endswith(SUFFIX) and not n.startswith("."))
