"""The lab's event log: one JSON object per line, appended durably as each event happens.

Every writer (host CLI, agents, caller) appends to the same file under the bind-mounted `var/`.
Each event is one `write()` on an O_APPEND descriptor, so lines from several processes never
interleave, and is flushed to disk before `append` returns: a crashed drill leaves an honest
partial record. The schema of every kind: docs/events.md.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from core import durable
from core.schema import SCHEMA_VERSION

#: Where events go when nothing says otherwise; containers set WOBBLE_EVENTS to their mount.
DEFAULT_PATH = Path(os.environ.get("WOBBLE_EVENTS", "var/events.jsonl"))


def event_path() -> Path:
    return Path(os.environ.get("WOBBLE_EVENTS", str(DEFAULT_PATH)))


def append(kind: str, record: Mapping[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Append one event of `kind`; returns the event as written: the envelope `ts`, `kind` and
    `schema` (core.schema.SCHEMA_VERSION unless the record carries its own), then the record."""
    clash = {"ts", "kind"} & set(record)
    if clash:  # the envelope is the log's own: a record silently renaming its kind would be lost
        raise ValueError(f"event record may not carry {sorted(clash)}; rename the field")
    target = path or event_path()
    event = {"ts": round(time.time(), 6), "kind": kind, "schema": SCHEMA_VERSION, **record}
    durable.append(target, (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode())
    return event


def _parse(raw: bytes) -> dict[str, Any] | None:
    """One line as an event, or None for a torn or foreign line."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def read(path: Path | None = None) -> Iterator[dict[str, Any]]:
    """Yield every well-formed event; a torn last line (a writer killed mid-write) is skipped."""
    target = path or event_path()
    try:
        with target.open("rb") as fh:
            yield from filter(None, map(_parse, fh))
    except FileNotFoundError:
        return


def follow(path: Path | None = None, poll_s: float = 0.2, from_end: bool = False) -> Iterator[dict[str, Any]]:
    """Yield events as they are appended (like `tail -F`); starts at the top unless `from_end`."""
    target = path or event_path()
    pos = target.stat().st_size if from_end and target.exists() else 0
    partial = b""
    while True:
        try:
            with target.open("rb") as fh:
                if fh.seek(0, os.SEEK_END) < pos:  # truncated or replaced: start over
                    pos = 0
                fh.seek(pos)
                chunk = fh.read()
                pos = fh.tell()
        except FileNotFoundError:
            chunk = b""
        partial += chunk
        *lines, partial = partial.split(b"\n")
        yield from filter(None, map(_parse, lines))
        if not chunk:
            time.sleep(poll_s)
