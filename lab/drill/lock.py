"""One drill at a time, and what a killed runner leaves behind.

The lock is an exclusive `flock` on var/drill/lock (the kernel drops it when the process dies,
however it dies); the file says who holds it. The state file var/drill/state.json says what the
running drill has done so far (its scenario, start, results directory, the faults it applied, its
load runs): a runner that was killed leaves it behind, and the next `wobble drill run` or
`wobble drill recover` reverts those faults and writes the partial report marked `incomplete`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from core.errors import WobbleError


class LabBusy(WobbleError, RuntimeError):
    """Another drill holds the lab."""


class DrillLock:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / "lock"
        self._fd: int | None = None

    def acquire(self, what: str) -> None:
        """Take the lock or raise LabBusy naming the holder."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.holder() or "another drill"
            os.close(fd)
            raise LabBusy(f"the lab is held by {holder}; wait for it to finish (or stop it), then retry") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"drill {what} (pid {os.getpid()})".encode())
        self._fd = fd

    def holder(self) -> str | None:
        try:
            return self.path.read_text().strip() or None
        except OSError:
            return None

    def held_by_someone(self) -> bool:
        """Is the lock held right now (by another process, or by this one)?"""
        if self._fd is not None:
            return True
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DrillLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunState:
    """var/drill/state.json: written atomically at every step that matters for a recovery."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "state.json"

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, default=str))
        os.replace(tmp, self.path)

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
