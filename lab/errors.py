"""The lab's errors. Each also inherits the matching stdlib error (as aiohttp does), and each
message says what was wrong and what to do, so the CLI can print it as one line."""

from __future__ import annotations

from typing import Any


class WobbleError(Exception):
    """Base of every error the lab reports to its user."""


class BadInput(WobbleError, ValueError):
    """A value the user gave is not acceptable (unknown region, bad number, ...)."""


def first_problem(exc: Any) -> str:
    """A pydantic ValidationError's first problem as `where: what` (where: the field's dotted path)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top)"
    return f"{where}: {first['msg']}"


class DockerUnavailable(WobbleError, ConnectionError):
    """No docker daemon answers."""


class LabNotUp(WobbleError, RuntimeError):
    """The lab (or one of its services) is not running."""


class PortInUse(WobbleError, OSError):
    """An address or port the lab needs is taken by something else."""


class HealthTimeout(WobbleError, TimeoutError):
    """A service did not become healthy in time; carries its last log lines and a hint."""

    def __init__(self, service: str, waited_s: float, last_logs: str = "", hint: str = "") -> None:
        self.service = service
        self.waited_s = waited_s
        self.last_logs = last_logs
        self.hint = hint
        msg = f"{service} not healthy after {waited_s:.0f} s"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


class CallFailed(WobbleError, RuntimeError):
    """The caller could not place a call at all (no record came back)."""
