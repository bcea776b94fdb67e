"""Helpers shared by the unit and lab tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

from core import events

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str], every: float = 0.05) -> T:
    """Poll `predicate` every `every` seconds until it returns something truthy, and return that;
    after `timeout` seconds fail the test with an AssertionError saying what was waited for (`what`,
    or what it returns then: the state worth seeing) and the predicate's last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {said} (last: {value!r})")
        time.sleep(every)


def logged(path: Path | None = None) -> list[dict[str, Any]]:
    """The event log as raw JSON objects (every line whole: envelope, declared and unknown fields),
    as the acceptance checks read it."""
    return [ev.to_dict() for ev in events.read(path)]


def skip_or_fail(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip a test whose environment is missing (root, a kernel tool, an image), or fail it under CI
    (the environment variable `CI` set and not empty): on CI a missing tool is a broken runner, and a
    test that silently skips there proves nothing."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing prerequisite fails instead of skipping)", pytrace=False)
    pytest.skip(reason, allow_module_level=allow_module_level)
