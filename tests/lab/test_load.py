"""A short real load run through steering: every attempt answered, recorded Jepsen-style."""

from __future__ import annotations

from collections import Counter

from core import paths
from tests.helpers import logged
from tests.lab.conftest import last_json, run_wobble


def test_short_load_run_is_all_ok_and_every_invoke_completes(lab_up: None) -> None:
    proc = run_wobble(
        "load", "--cps", "2", "--duration", "12", "--hold-mean", "3", "--seed", "7", "--json", timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = last_json(proc.stdout)
    assert summary["attempts"] == 24 and summary["ok"] == 24, summary
    assert summary["mos_p5"] >= 4.0
    assert set(summary["by_region"]) == {"region-a", "region-b"}  # steering spreads 50/50
    run = [e for e in logged(paths.EVENTS) if e.get("run_id") == summary["run_id"]]
    invokes = Counter(e["call_id"] for e in run if e["kind"] == "load_invoke")
    done = Counter(e["call_id"] for e in run if e["kind"] in ("load_ok", "load_fail", "load_info"))
    assert invokes == done and all(n == 1 for n in done.values())
    ok = [e for e in run if e["kind"] == "load_ok"]

    def enough(packets: int, hold_s: float) -> bool:  # 50 packets/s over the hold, less 20 % slack
        return packets >= 0.8 * 50 * hold_s

    assert all(enough(e["rx_packets"], e["hold_s"]) and enough(e["tx_packets"], e["hold_s"]) for e in ok), ok
    assert all(e["fate"] == "survived" for e in ok)
    # the agents that answered saw RTP too (their own records, keyed by the same call id)
    answered = {e["call_id"]: e for e in logged(paths.EVENTS) if e.get("kind") == "agent_call"}
    assert all(enough(answered[e["call_id"]]["rx_packets"], e["hold_s"]) for e in ok)


def test_bad_load_input_is_one_line(lab_up: None) -> None:
    for args, needle in (
        (["--cps", "0"], "--cps"),
        (["--steer", "smoke"], "--steer"),
        (["--steer", "region-q"], "unknown region"),
    ):
        proc = run_wobble("load", *args, "--duration", "5")
        assert proc.returncode == 2 and needle in proc.stderr.strip().splitlines()[-1], proc.stderr
