"""`wobble call`: one real call from the `caller` container, joined with what the lab recorded.

The caller measures its side (codes, timing, RTP); the answering agent writes its own record to the
event log; Asterisk writes the recording and the CDR into the bind-mounted `var/`. This module
waits briefly for each of those and joins them into one record keyed by the call's id.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lab import cdr, dockerctl, events, paths
from lab.errors import BadInput, CallFailed, PortInUse, WobbleError
from lab.metrics.mos import mos
from lab.steering import client as steering_client
from lab.topology import Topology

log = logging.getLogger("wobble.call")
T = TypeVar("T")

#: Exit code of agents.caller when its local SIP port is taken.
CALLER_EXIT_PORT_IN_USE = 3
#: How a caller may pick its target when no region is given.
STEER_MODES = ("http", "dns")
#: Final codes after which an RFC 3263 client tries the next target (0: no response at all).
RETRY_NEXT_TARGET = (0, 408, 503)
#: How long to wait for the agent's record, the recording and the CDR after the BYE.
JOIN_WAIT_S = 8.0


def ensure_region_is_valid(region: str, topo: Topology) -> str:
    if region not in topo.region_names:
        raise BadInput(f"unknown region {region!r}; choose one of: {', '.join(topo.region_names)}")
    return region


def ensure_hold_is_valid(hold: str | float) -> float:
    try:
        value = float(hold)
    except (TypeError, ValueError):
        raise BadInput(f"--hold must be a positive number of seconds, got {hold!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"--hold must be a positive number of seconds, got {hold!r}")
    return value


def wait_for(probe: Callable[[], T | None], timeout_s: float, every_s: float = 0.2) -> T | None:
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(every_s)


def agent_record(call_id: str, events_path: Path) -> dict[str, Any] | None:
    for ev in events.read(events_path):
        if ev.get("kind") == "agent_call" and ev.get("call_id") == call_id:
            return ev
    return None


def finished_recording(path: Path, min_age_s: float = 0.5) -> Path | None:
    """The recording once Asterisk has stopped writing it (size steady, not touched lately)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return path if time.time() - st.st_mtime >= min_age_s else None


def ensure_steer_is_valid(steer: str) -> str:
    if steer not in STEER_MODES:
        raise BadInput(f"--steer must be one of {', '.join(STEER_MODES)}, got {steer!r}")
    return steer


def place_call(
    region: str | None,
    hold: str | float,
    topo: Topology | None = None,
    local_port: int = 0,
    timeout_s: float = 30.0,
    steer: str = "http",
    response_timeout_s: float = 2.0,
) -> dict[str, Any]:
    """One call: to `region`'s SBC, or (region None) wherever steering sends it, as a UA would."""
    topo = topo or Topology.default()
    if region is not None:
        region = ensure_region_is_valid(region, topo)
    hold_s = ensure_hold_is_valid(hold)
    steer = ensure_steer_is_valid(steer)
    if not 0 <= local_port <= 65535:
        raise BadInput(f"--local-port must be 0 (any) or a UDP port number, got {local_port}")
    dockerctl.service_container("caller")  # LabNotUp with a hint, before anything starts
    call_id = "w" + uuid.uuid4().hex[:12]
    if region is not None:
        targets = [(region, topo.region(region).sip_uri)]
    elif steer == "http":
        route = steering_client.request("/v1/route")
        targets = [(str(route["region"]), str(route["uri"]))]
    else:  # RFC 3263: SRV targets in order; on 503 or timeout, the next one
        targets = [(t.region, f"sip:support@{t.host}:{t.port}") for t in steering_client.srv_targets()]
        if not targets:
            raise CallFailed("steering DNS returned no SRV targets for the lab zone")
    caller: dict[str, Any] = {}
    tried: list[str] = []
    for asked, uri in targets:
        tried.append(asked)
        caller = run_caller(call_id, uri, hold_s, local_port, timeout_s, response_timeout_s)
        if caller.get("final_code") not in RETRY_NEXT_TARGET:
            break
        log.info("%s answered %s; trying the next target", asked, caller.get("final_code") or "nothing")
    record = join(call_id, tried[-1], caller)
    record["steer"] = None if region is not None else steer
    record["targets_tried"] = tried
    report_evidence(record)
    return record


def run_caller(
    call_id: str, target: str, hold_s: float, local_port: int, timeout_s: float, response_timeout_s: float = 0.0
) -> dict[str, Any]:
    """Run one call in the caller container; its record is the last line it prints."""
    events.append("call_invoke", {"call_id": call_id, "target": target, "hold_s": hold_s}, paths.EVENTS)
    cmd = ["python", "-m", "agents.caller", "--target", target, "--hold", str(hold_s), "--call-id", call_id,
           "--local-port", str(local_port), "--timeout", str(timeout_s),
           "--response-timeout", str(response_timeout_s), "--json"]  # fmt: skip
    log.info("calling %s as %s, hold %.1f s", target, call_id, hold_s)
    code, out, err = dockerctl.exec_run("caller", cmd)
    for line in err.decode(errors="replace").splitlines():
        log.debug("caller: %s", line)
    if code == CALLER_EXIT_PORT_IN_USE:
        raise PortInUse(f"local SIP port {local_port} is in use in the caller container; pick another --local-port")
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        caller: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        events.append("call_fail", {"call_id": call_id, "error": tail[0]}, paths.EVENTS)
        raise CallFailed(f"the caller returned no record (exit {code}): {tail[0]}") from None
    return caller


def report_evidence(record: dict[str, Any]) -> None:
    """Tell steering how the call went (passive evidence); best effort, never fails the call."""
    region = record.get("region") or record.get("asked_region")
    if not region:
        return
    try:
        steering_client.request("/v1/evidence", {"region": region, "ok": record["final_code"] == 200,
                                                 "t": record.get("answered_at") or time.time(),
                                                 "source": "wobble-call"}, timeout=1.0)  # fmt: skip
    except WobbleError as exc:
        log.debug("evidence not reported: %s", exc)


def answered_at(caller: dict[str, Any]) -> float | None:
    started, setup = caller.get("started_at"), caller.get("setup_ms")
    if caller.get("final_code") != 200 or not isinstance(started, int | float) or not isinstance(setup, int | float):
        return None
    return round(float(started) + float(setup) / 1000.0, 3)


def join(call_id: str, asked_region: str, caller: dict[str, Any]) -> dict[str, Any]:
    """Join the caller's record with the agent's record, the recording and the CDR."""
    headers = caller.get("reply_headers") or {}
    answered_region = headers.get("X-Wobble-Region") or (asked_region if caller.get("final_code") == 200 else None)
    answered = caller.get("final_code") == 200
    agent = wait_for(lambda: agent_record(call_id, paths.EVENTS), JOIN_WAIT_S if answered else 0.5) or {}
    rec_region = agent.get("agent_region") or answered_region or asked_region
    recording = wait_for(
        lambda: finished_recording(paths.recordings_dir(rec_region) / f"{call_id}.wav"), JOIN_WAIT_S if answered else 0
    )
    row = wait_for(lambda: cdr.find(paths.cdr_file(rec_region), call_id), JOIN_WAIT_S if answered else 1.0)
    loss = float(caller.get("loss_pct") or 0.0)
    jitter = float(caller.get("jitter_ms") or 0.0)
    rtt = float(caller.get("rtt_ms") or 0.0)
    record = {
        "call_id": call_id,
        "final_code": int(caller.get("final_code") or 0),
        "region": answered_region,
        "asked_region": asked_region,
        "agent": agent.get("agent"),
        "agent_region": agent.get("agent_region"),
        "pdd_ms": caller.get("pdd_ms"),
        "setup_ms": caller.get("setup_ms"),
        "rx_packets": caller.get("rx_packets", 0),
        "tx_packets": caller.get("tx_packets", 0),
        "peer_rx_packets": agent.get("rx_packets", 0),
        "peer_tx_packets": agent.get("tx_packets", 0),
        "loss_pct": loss,
        "peer_loss_pct": agent.get("loss_pct"),
        "jitter_ms": jitter,
        "rtt_ms": caller.get("rtt_ms"),
        "mos": mos(loss, jitter, rtt) if answered else None,
        "end_reason": caller.get("end_reason"),
        "recording": str(recording) if recording else None,
        "recording_bytes": recording.stat().st_size if recording else 0,
        "cdr_id": row.uniqueid if row else None,
        "cdr_disposition": row.disposition if row else None,
        "target": caller.get("target"),
        # when the 200 OK came (UNIX time): what a call's success says about its region, and when
        "answered_at": answered_at(caller),
    }
    events.append("call", record, paths.EVENTS)
    return record
