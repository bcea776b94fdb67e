from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from core import events


def _writer(path: str, n: int, who: int) -> None:
    for i in range(n):
        events.append("t", {"who": who, "i": i, "pad": "x" * 500}, Path(path))


def test_appends_from_many_processes_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    procs = [multiprocessing.Process(target=_writer, args=(str(path), 50, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 200
    assert all(json.loads(line)["kind"] == "t" for line in lines)


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events.append("a", {"x": 1}, path)
    with path.open("ab") as fh:
        fh.write(b'{"kind": "b", "x"')
    assert [e["kind"] for e in events.read(path)] == ["a"]


def test_a_record_cannot_override_the_envelope(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(ValueError, match="kind"):
        events.append("call", {"kind": "other"}, tmp_path / "e.jsonl")
    assert not (tmp_path / "e.jsonl").exists()


def test_follow_sees_appends_and_waits_out_a_torn_line(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "events.jsonl"
    events.append("a", {"n": 1}, path)
    seen: list[str] = []

    def reader() -> None:
        for ev in events.follow(path, poll_s=0.01):
            seen.append(ev["kind"])
            if len(seen) == 3:
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    with path.open("ab") as fh:  # a writer mid-line: nothing is yielded until the line is whole
        fh.write(b'{"kind": "b"')
        fh.flush()
        fh.write(b', "n": 2}\n')
    events.append("c", {"n": 3}, path)
    t.join(5)
    assert seen == ["a", "b", "c"]
