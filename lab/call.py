"""`wobble call`: one real call from the `caller` container, joined with what the lab recorded.

The caller measures its side (codes, timing, RTP); the answering agent writes its own record to the
event log; Asterisk writes the recording and the CDR into the bind-mounted `var/`. This module
waits briefly for each of those and joins them into one record keyed by the call's id
(`call_record`, pure: the core.schema core shared with the traffic generator's records, then the
joined fields; docs/events.md).
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agents.caller import command as caller_command
from core import dockerctl, events, paths, schema
from core.errors import BadInput, CallFailed, PortInUse, WobbleError
from core.topology import Topology
from lab import cdr
from lab.cdr import Cdr
from lab.steering import client as steering_client

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
        if isinstance(ev, events.AgentCall) and ev.call_id == call_id:
            return ev.to_dict()
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
    chosen_by = "target" if region is not None else steer
    caller: dict[str, Any] = {}
    tried: list[tuple[str, str]] = []
    t_invoke = time.time()
    first_invite_at: float | None = None
    for asked, uri in targets:
        tried.append((asked, uri))
        caller = run_caller(call_id, uri, hold_s, local_port, timeout_s, response_timeout_s, chosen_by)
        if first_invite_at is None and isinstance(caller.get("started_at"), int | float):
            first_invite_at = float(caller["started_at"])
        if caller.get("final_code") not in RETRY_NEXT_TARGET:
            break
        log.info("%s answered %s; trying the next target", asked, caller.get("final_code") or "nothing")
    t_end = time.time()
    caller = from_first_invite(caller, first_invite_at)
    asked_region = tried[-1][0]
    evidence = gather(call_id, asked_region, caller)
    record = call_record(
        call_id,
        caller,
        evidence,
        asked_region=asked_region,
        chosen_by=chosen_by,
        steer=None if region is not None else steer,
        hold_s=hold_s,
        targets_tried=[uri for _, uri in tried],
        t_invoke=t_invoke,
        t_end=t_end,
    )
    events.append(events.CallRecord.of(record), paths.EVENTS)
    report_evidence(record)
    return record


def from_first_invite(caller: dict[str, Any], first_invite_at: float | None) -> dict[str, Any]:
    """The last attempt's result with pdd_ms/setup_ms counted from the FIRST INVITE, as the traffic
    generator counts them (what the customer waited, across SRV targets)."""
    started = caller.get("started_at")
    if first_invite_at is None or not isinstance(started, int | float) or started <= first_invite_at:
        return caller
    offset_ms = (float(started) - first_invite_at) * 1000.0
    out = {**caller, "started_at": first_invite_at}
    for key in ("pdd_ms", "setup_ms"):
        if isinstance(out.get(key), int | float):
            out[key] = round(float(out[key]) + offset_ms, 1)
    return out


def run_caller(
    call_id: str,
    target: str,
    hold_s: float,
    local_port: int,
    timeout_s: float,
    response_timeout_s: float = 0.0,
    chosen_by: str = "target",
) -> dict[str, Any]:
    """Run one call in the caller container; its record is the last line it prints."""
    invoke = schema.invoke_record(None, call_id, time.time(), target, chosen_by, None, hold_s)
    events.append(events.CallInvoke.of(invoke), paths.EVENTS)
    options = (
        "--local-port",
        str(local_port),
        "--timeout",
        str(timeout_s),
        "--response-timeout",
        str(response_timeout_s),
    )
    cmd = caller_command("python", target, call_id, hold_s, *options)
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
        failed = {"call_id": call_id, "target": target, "error": tail[0]}
        events.append(events.CallFail.of(failed), paths.EVENTS)
        raise CallFailed(f"the caller returned no record (exit {code}): {tail[0]}") from None
    return caller


def report_evidence(record: dict[str, Any]) -> None:
    """Tell steering how the call went (passive evidence); best effort, never fails the call."""
    region = record.get("region") or record.get("asked_region")
    if not region:
        return
    try:
        steering_client.request(
            "/v1/evidence",
            {
                "region": region,
                "ok": record["final_code"] == 200,
                "t": record.get("answered_at") or time.time(),
                "source": "wobble-call",
            },
            timeout=1.0,
        )
    except WobbleError as exc:
        log.debug("evidence not reported: %s", exc)


def answered_at(caller: dict[str, Any]) -> float | None:
    started, setup = caller.get("started_at"), caller.get("setup_ms")
    if caller.get("final_code") != 200 or not isinstance(started, int | float) or not isinstance(setup, int | float):
        return None
    return round(float(started) + float(setup) / 1000.0, 3)


@dataclass(frozen=True)
class Evidence:
    """What the lab recorded about a call besides the caller's own result."""

    agent: dict[str, Any] = field(default_factory=dict)  # the agent's `agent_call` event, {} if none
    recording: Path | None = None
    recording_bytes: int = 0
    cdr: Cdr | None = None


def gather(call_id: str, asked_region: str, caller: dict[str, Any]) -> Evidence:
    """Wait briefly for the agent's record, the recording and the CDR of the call."""
    answered = caller.get("final_code") == 200
    agent = wait_for(lambda: agent_record(call_id, paths.EVENTS), JOIN_WAIT_S if answered else 0.5) or {}
    rec_region = agent.get("agent_region") or answered_region(caller, asked_region) or asked_region
    recording = wait_for(
        lambda: finished_recording(paths.recordings_dir(rec_region) / f"{call_id}.wav"), JOIN_WAIT_S if answered else 0
    )
    row = wait_for(lambda: cdr.find(paths.cdr_file(rec_region), call_id), JOIN_WAIT_S if answered else 1.0)
    return Evidence(agent, recording, recording.stat().st_size if recording else 0, row)


def answered_region(caller: dict[str, Any], asked_region: str) -> str | None:
    headers = caller.get("reply_headers") or {}
    region = headers.get("X-Wobble-Region") or caller.get("region")
    return str(region) if region else (asked_region if caller.get("final_code") == 200 else None)


def call_record(
    call_id: str,
    caller: dict[str, Any],
    evidence: Evidence,
    *,
    asked_region: str,
    chosen_by: str,
    steer: str | None,
    hold_s: float,
    targets_tried: list[str],
    t_invoke: float,
    t_end: float,
) -> dict[str, Any]:
    """The `wobble call` record (also the `call` event): the core every call record shares
    (core.schema, same as the traffic generator's load_* records), then what only a single call
    joins: the agent's side, the recording, the CDR. Pure."""
    record = schema.record_from_result(
        caller,
        run_id=None,
        call_id=call_id,
        chosen_by=chosen_by,
        hold_s=hold_s,
        t_invoke=t_invoke,
        t_end=t_end,
        targets_tried=targets_tried,
    )
    agent = evidence.agent
    record["region"] = answered_region(caller, asked_region)
    record.update(
        {
            "asked_region": asked_region,
            "steer": steer,
            "agent": agent.get("agent"),
            "agent_region": agent.get("agent_region"),
            "peer_rx_packets": agent.get("rx_packets", 0),
            "peer_tx_packets": agent.get("tx_packets", 0),
            "peer_loss_pct": agent.get("loss_pct"),
            # the agent's CRM screen pop: ok | late | fallback | none (no answer, or no CRM)
            "screen_pop": agent.get("screen_pop", "none"),
            "jitter_max_ms": caller.get("jitter_max_ms"),
            "recording": str(evidence.recording) if evidence.recording else None,
            "recording_bytes": evidence.recording_bytes,
            "cdr_id": evidence.cdr.uniqueid if evidence.cdr else None,
            "cdr_disposition": evidence.cdr.disposition if evidence.cdr else None,
            # when the 200 OK came (UNIX time): what a call's success says about its region, and when
            "answered_at": answered_at(caller),
        }
    )
    return record
