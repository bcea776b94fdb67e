"""chaos.net.warden's command runner: atomic apply, tolerant revert (with harmless shell commands)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.net import warden
from chaos.net.rules import Check, Cmd, Plan


def sh(script: str, what: str, **kw: object) -> Cmd:
    return Cmd(("sh", "-c", script), what, **kw)  # type: ignore[arg-type]


def test_run_cmd_statuses(tmp_path: Path) -> None:
    assert warden.run_cmd(sh("true", "ok")) == ("ran", "")
    assert (
        warden.run_cmd(sh("echo 'No such file or directory' >&2; exit 1", "gone", ok_errors=("No such file",)))[0]
        == "absent"
    )
    status, err = warden.run_cmd(sh("echo boom >&2; exit 3", "bad"))
    assert status == "failed" and "boom" in err
    assert warden.run_cmd(Cmd(("no-such-binary-xyz",), "missing"))[0] == "failed"
    skip = sh("touch " + str(tmp_path / "ran"), "guarded", when=(Check(("echo", "htb b0b:"), "htb", False),))
    assert warden.run_cmd(skip)[0] == "skipped" and not (tmp_path / "ran").exists()
    go = sh("touch " + str(tmp_path / "ran"), "guarded", when=(Check(("false",), "x", False),))
    assert warden.run_cmd(go)[0] == "ran" and (tmp_path / "ran").exists()
    fed = Cmd(("sh", "-c", f"cat > {tmp_path / 'in'}"), "stdin", stdin="hello\n")
    warden.run_cmd(fed)
    assert (tmp_path / "in").read_text() == "hello\n"


def test_apply_is_all_or_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    apply = (
        sh(f"touch {state}/a", "object a"),
        sh(f"touch {state}/b", "object b"),
        sh("echo 'Exclusivity flag on' >&2; exit 2", "object c"),
        sh(f"touch {state}/d", "object d"),
    )
    revert = tuple(
        sh(
            f"rm {state}/{n} 2>&1 || echo 'No such file or directory'; test ! -e {state}/{n}",
            f"rm {n}",
            ok_errors=("No such file",),
        )
        for n in "abcd"
    )
    p = Plan("x", "loss", "nft", apply, revert)
    with pytest.raises(warden.ApplyError) as err:
        warden.apply_plan(p)
    msg = str(err.value)
    assert "object c failed" in msg and "Exclusivity flag on" in msg and "reverted what was applied" in msg
    assert list(state.iterdir()) == []


def test_revert_goes_on_past_failures(tmp_path: Path) -> None:
    p = Plan("x", "loss", "nft", (), (sh("exit 1", "first"), sh(f"touch {tmp_path}/second", "second")))
    failures = warden.revert_plan(p)
    assert len(failures) == 1 and failures[0].startswith("first")
    assert (tmp_path / "second").exists()


def test_leftover_pattern() -> None:
    assert warden.LEFTOVER.search('meta l4proto udp goto f_aa_act comment "wobble:aa"')
    assert warden.LEFTOVER.search("qdisc htb b0b: dev eth0 root refcnt 2")
    assert warden.LEFTOVER.search("5: wbi1a2b3c4d: <BROADCAST,NOARP>")
    assert not warden.LEFTOVER.search("qdisc noqueue 0: dev eth0 root refcnt 2")


def test_invalid_requests_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["apply", "--id", "abc", "--lease-dir", str(tmp_path)]
    assert warden.main([*base[:1], "--spec", '{"kind":"loss","pct":300}', *base[1:]]) == 2
    assert "pct=300 is outside 0..100" in capsys.readouterr().err
    assert warden.main(["apply", "--spec", '{"kind":"loss","pct":3}', "--id", "a b", "--lease-dir", str(tmp_path)]) == 2
    assert warden.main([*base[:1], "--spec", "not json", *base[1:]]) == 2


def test_no_live_lease_means_nothing_applied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = warden.main(["apply", "--spec", '{"kind":"loss","pct":3}', "--id", "abc", "--lease-dir", str(tmp_path)])
    assert rc == 3
    assert "lease of abc is missing" in capsys.readouterr().err
