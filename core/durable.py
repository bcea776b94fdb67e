"""Durable writes: data on disk before the call returns, so a crash leaves an honest record.

`append` (the event log) and `replace` (a lease file) are the lab's two ways of writing a file that
other processes read while it is written.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _write_synced(path: Path, data: bytes, flags: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def append(path: Path, data: bytes) -> None:
    """Append `data` as one `write()` on an O_APPEND descriptor (so writes of several processes never
    interleave), flushed to disk before returning. Creates the file and its directory if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_synced(path, data, os.O_APPEND)


def replace(path: Path, data: bytes) -> None:
    """Replace the file's content atomically (temporary file, fsync, rename, fsync of the directory):
    a reader sees the old content or the new, never a mix, and the new survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_synced(tmp, data, os.O_TRUNC)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Flush a directory's entries (a rename or unlink in it) to disk; best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
