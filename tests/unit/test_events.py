from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from core import events


def _writer(path: str, n: int, who: int) -> None:
    for i in range(n):
        events.append(events.AgentLogin(agent=f"a-{who:03d}", ok=True, i=i, pad="x" * 500), Path(path))


def test_appends_from_many_processes_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    procs = [multiprocessing.Process(target=_writer, args=(str(path), 50, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 200
    assert all(json.loads(line)["kind"] == "agent_login" for line in lines)


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events.append(events.CallFail(call_id="w1"), path)
    with path.open("ab") as fh:
        fh.write(b'{"kind": "b", "x"')
    assert [e.kind for e in events.read(path)] == ["call_fail"]


def test_a_record_cannot_override_the_envelope(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        events.append(events.CallRecord.of({"kind": "other"}), tmp_path / "e.jsonl")
    with pytest.raises(ValueError, match="ts"):
        events.append(events.CallRecord(ts=1.0), tmp_path / "e.jsonl")
    with pytest.raises(ValueError, match="not an event kind"):
        events.append(events.Event(), tmp_path / "e.jsonl")
    assert not (tmp_path / "e.jsonl").exists()


def test_follow_sees_appends_and_waits_out_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events.append(events.FaultInvoke(id="f1"), path)
    seen: list[str] = []

    def reader() -> None:
        for ev in events.follow(path, poll_s=0.01):
            seen.append(ev.kind)
            if len(seen) == 3:
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    with path.open("ab") as fh:  # a writer mid-line: nothing is yielded until the line is whole
        fh.write(b'{"kind": "b"')
        fh.flush()
        fh.write(b', "n": 2}\n')
    events.append(events.FaultEnd(id="f1"), path)
    t.join(5)
    assert seen == ["fault_invoke", "b", "fault_end"]


def test_readers_get_models_and_keep_what_they_do_not_know(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    written = events.append(events.LoadFail.of({"call_id": "l1", "status": "fail", "whose": "harness", "new": 1}), path)
    with path.open("ab") as fh:
        fh.write(b'{"ts": 1.0, "kind": "from_the_future", "schema": 1, "x": [1, 2]}\n')
        fh.write(b'{"ts": 2.0, "kind": "agent_login", "ok": "not a bool"}\n')  # does not fit: kept as is
    first, second, third = events.read(path)
    assert isinstance(first, events.LoadFail) and first.whose == "harness" and first.call_id == "l1"
    assert first.to_dict() == written and (first.model_extra or {})["new"] == 1
    assert isinstance(second, events.UnknownEvent) and second.kind == "from_the_future"
    assert second.to_dict() == {"ts": 1.0, "kind": "from_the_future", "schema": 1, "x": [1, 2]}
    assert isinstance(third, events.AgentLogin) and third.to_dict()["ok"] == "not a bool"


def test_the_line_on_disk_has_the_keys_of_the_record(tmp_path: Path) -> None:
    """Acceptance checks read the log as raw JSON: a model writes exactly the fields it was given."""
    path = tmp_path / "events.jsonl"
    record = {"run_id": "r", "call_id": "l2", "status": "ok", "whose": "customer"}
    events.append(events.load_completion(record), path)
    line = json.loads(path.read_text())
    assert list(line) == ["ts", "kind", "schema", *record] and line["kind"] == "load_ok"


def test_every_kind_has_its_model() -> None:
    for kind, cls in events.KINDS.items():
        assert cls.kind == kind and events.model_of(kind) is cls
    assert events.model_of("x").kind == "x" and events.model_of("x") is events.model_of("x")
