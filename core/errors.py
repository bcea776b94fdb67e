"""The lab's errors. Each also inherits the matching stdlib error (as aiohttp does), and each
message says what was wrong and what to do, so the CLI can print it as one line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class WobbleError(Exception):
    """Base of every error the lab reports to its user."""


class BadInput(WobbleError, ValueError):
    """A value the user gave is not acceptable (unknown region, bad number, ...)."""


def first_problem(exc: Exception, *, top: str = "(top)", prefix: str = "", say: Mapping[str, str] | None = None) -> str:
    """A pydantic ValidationError's first problem as `where: what`, the one wording of it.

    `where` is the field's dotted path (after `prefix`, if any); a problem with the whole value is
    at `top`, and with `top=""` it is `what` alone. `say` rewords problems by pydantic's error type.
    Any other error (no `errors()`) is its own text.
    """
    errors: Any = getattr(exc, "errors", None)
    try:
        first = errors()[0]
    except (TypeError, IndexError):
        return str(exc)
    where = ".".join(str(p) for p in (prefix, *first.get("loc", ())) if p != "") or top
    what = (say or {}).get(first.get("type", ""), str(first.get("msg", exc)))
    return f"{where}: {what}" if where else what


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
