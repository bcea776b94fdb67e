"""chaos.lease: atomic lease files shared by the controller and the wardens."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos import lease


def test_write_read_round_trip(tmp_path: Path) -> None:
    lease.write_lease(tmp_path, "ab12", expires_at=100.5, ends_at=200.25)
    got = lease.read_lease(tmp_path, "ab12")
    assert got == lease.Lease("ab12", 100.5, 200.25)
    assert os.listdir(tmp_path) == ["ab12.lease"]  # no temporary file left behind
    lease.write_lease(str(tmp_path), "ab12", expires_at=101.5, ends_at=200.25)  # renew, str path
    assert lease.read_lease(str(tmp_path), "ab12") == lease.Lease("ab12", 101.5, 200.25)


def test_missing_and_unreadable_read_as_none(tmp_path: Path) -> None:
    assert lease.read_lease(tmp_path, "nope") is None
    assert lease.read_lease(tmp_path / "no-dir", "nope") is None
    (tmp_path / "bad.lease").write_text("{not json")
    assert lease.read_lease(tmp_path, "bad") is None
    (tmp_path / "half.lease").write_text('{"expires_at": 1}')
    assert lease.read_lease(tmp_path, "half") is None
    assert lease.lease_state(lease.read_lease(tmp_path, "bad"), 0) == "missing"


def test_states() -> None:
    lz = lease.Lease("x", expires_at=10, ends_at=20)
    assert lease.lease_state(lz, 5) == "live"
    assert lease.lease_state(lz, 10) == "expired"
    assert lease.lease_state(lz, 25) == "ended"
    assert lease.lease_state(lease.Lease("x", 30, 20), 25) == "ended"
    assert lease.lease_state(None, 5) == "missing"


@given(st.floats(0, 1e10), st.floats(0, 1e10), st.floats(0, 1e10))
def test_state_is_live_only_before_both_times(expires: float, ends: float, now: float) -> None:
    state = lease.lease_state(lease.Lease("x", expires, ends), now)
    assert (state == "live") == (now < expires and now < ends)
    if now >= ends:
        assert state == "ended"


def test_list_and_remove(tmp_path: Path) -> None:
    assert lease.list_leases(tmp_path / "absent") == []
    for fid in ("b", "a", "c"):
        lease.write_lease(tmp_path, fid, 1, 2)
    (tmp_path / ".a.lease.123.tmp").write_text("x")
    assert lease.list_leases(tmp_path) == ["a", "b", "c"]
    lease.remove_lease(tmp_path, "b")
    lease.remove_lease(tmp_path, "b")  # idempotent
    assert lease.list_leases(tmp_path) == ["a", "c"]


def test_ids_cannot_escape_the_directory(tmp_path: Path) -> None:
    for bad in ("../x", "a/b", "", "x" * 65):
        with pytest.raises(ValueError, match="fault id"):
            lease.write_lease(tmp_path, bad, 1, 2)


def test_readers_never_see_a_torn_lease(tmp_path: Path) -> None:
    stop = threading.Event()
    seen: list[lease.Lease | None] = []

    def reader() -> None:
        while not stop.is_set():
            seen.append(lease.read_lease(tmp_path, "t"))

    lease.write_lease(tmp_path, "t", 0, 1)
    th = threading.Thread(target=reader)
    th.start()
    for i in range(300):
        lease.write_lease(tmp_path, "t", float(i), float(i) + 1)
    stop.set()
    th.join()
    assert seen and all(s is not None and s.ends_at == s.expires_at + 1 for s in seen)
