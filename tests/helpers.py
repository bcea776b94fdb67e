"""Helpers shared by the unit and lab tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from core import events

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy, and return that; after `timeout` seconds
    fail the test with AssertionError naming `what` was waited for (and the last value seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        time.sleep(every)


def logged(path: Path | None = None) -> list[dict[str, Any]]:
    """The event log as raw JSON objects (every line whole: envelope, declared and unknown fields),
    as the acceptance checks read it."""
    return [ev.to_dict() for ev in events.read(path)]
