"""A real call through each region: answered there, RTP both ways, recorded, with a CDR."""

from __future__ import annotations

import subprocess
import wave

import pytest

from core import paths
from tests.helpers import logged
from tests.lab.conftest import last_json, run_wobble

HOLD_S = 5
MIN_PACKETS = int(0.9 * HOLD_S * 50)  # 90 % of 50 packets per second over the hold


@pytest.mark.parametrize("region", ["region-a", "region-b"])
def test_call_through_region(lab_up: None, region: str) -> None:
    proc = run_wobble("call", "--region", region, "--hold", str(HOLD_S), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = last_json(proc.stdout)
    assert rec["final_code"] == 200
    assert rec["region"] == region and rec["agent_region"] == region
    assert rec["agent"] and rec["agent"].startswith(region[-1] + "-")
    assert rec["rx_packets"] >= MIN_PACKETS and rec["peer_rx_packets"] >= MIN_PACKETS
    assert rec["tx_packets"] >= MIN_PACKETS
    assert 0 < rec["pdd_ms"] <= rec["setup_ms"]
    assert rec["loss_pct"] < 5 and rec["mos"] > 4.0
    assert rec["end_reason"] == "caller_bye"
    # the recording holds the call's audio, not the 44-byte header of an unbridged call
    assert rec["recording"] and rec["recording_bytes"] >= 20000
    with wave.open(rec["recording"]) as w:
        frames = w.readframes(w.getnframes())
        assert w.getnframes() / w.getframerate() >= HOLD_S * 0.8
    assert any(b != 0 for b in frames[1000:3000]), "recording is silent"
    # the CDR the record names is in that region's PBX, tagged with the call's id
    assert rec["cdr_id"]
    cdr_text = paths.cdr_file(region).read_text()
    assert rec["cdr_id"] in cdr_text and rec["call_id"] in cdr_text
    # and the same record is in the event log
    in_log = [e for e in logged(paths.EVENTS) if e.get("kind") == "call" and e.get("call_id") == rec["call_id"]]
    assert in_log and in_log[-1]["final_code"] == 200


def test_port_in_use_is_one_line_error(lab_up: None) -> None:
    # Hold a UDP port inside the caller container, then ask the caller to use it.
    holder = subprocess.Popen(
        # -i: the holder exits when its stdin closes, i.e. when this test kills the exec client
        [
            "docker",
            "exec",
            "-i",
            "wobble-caller-1",
            "python",
            "-c",
            "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5999)); "
            "print('bound', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "bound"
        proc = run_wobble("call", "--region", "region-a", "--hold", "1", "--local-port", "5999", "--json")
    finally:
        holder.kill()
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: local SIP port 5999 is in use")
