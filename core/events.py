"""The lab's event log: one JSON object per line, appended durably as each event happens, and one
model per event kind.

Every writer (host CLI, agents, caller, steering, chaos) appends to the same file under the
bind-mounted `var/`. Each event is one `write()` on an O_APPEND descriptor, so lines from several
processes never interleave, and is flushed to disk before `append` returns: a crashed drill leaves an
honest partial record.

Each kind is a model below (its kind a class attribute); `append` takes one, `read` and `follow`
give them back. A line's fields the model does not declare are kept (readers ignore what they do not
know; `to_dict` gives the line back whole), and a line of a kind no model declares comes back as an
`UnknownEvent`. docs/events.md is generated from these models (`python -m core.eventdocs`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core import durable
from core.schema import SCHEMA_VERSION
from core.settings import EventLogSettings

log = logging.getLogger("wobble.events")


def event_path() -> Path:
    """Where events go when no path is given: WOBBLE_EVENTS (containers set it to their mount)."""
    return EventLogSettings.from_env().events


def doc(type_: str, meaning: str, default: Any = None, alias: str | None = None) -> Any:
    """A field with its documentation: its type as docs/events.md shows it, and what it means.
    `alias`: its name on the line, when that is not its name here."""
    return Field(
        default,
        description=meaning,
        json_schema_extra={"doc_type": type_},
        validation_alias=alias,
        serialization_alias=alias,
    )


E = TypeVar("E", bound="Event")


class Event(BaseModel):
    """The envelope every line carries; a kind's model adds its fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    #: The line's `kind`; each model's own.
    kind: ClassVar[str] = ""
    #: Who writes it, and when (docs/events.md's table of kinds).
    writer: ClassVar[str] = ""
    when: ClassVar[str] = ""

    ts: float | None = doc("float, s", "when the line was written (UNIX time, µs resolution)")
    schema_version: int | None = doc(
        "int",
        f"the schema version ({SCHEMA_VERSION}); set on every line by `core.events.append`",
        alias="schema",
    )

    @classmethod
    def of(cls: type[E], record: Mapping[str, Any]) -> E:
        """The event from a record (a dict of its fields). A record that does not fit the model is
        still taken as it is, with a warning: an event is never lost to its model."""
        try:
            return cls.model_validate(record)
        except ValidationError as exc:
            log.warning("%s record does not fit its model (%s); written as it is", cls.kind, exc.errors()[0])
            return cls.model_construct(**dict(record))

    def fields(self) -> dict[str, Any]:
        """The fields set on this event (declared ones, then any others), as on the line."""
        return self.model_dump(by_alias=True, exclude_unset=True, exclude={"ts"}, warnings=False)

    def to_dict(self) -> dict[str, Any]:
        """The whole line: `ts`, `kind`, `schema`, then the fields."""
        fields = self.fields()
        return {"ts": self.ts, "kind": self.kind, "schema": fields.pop("schema", self.schema_version), **fields}


class UnknownEvent(Event):
    """A line of a kind no model declares (a newer writer's, or a foreign one); its fields are kept."""


# --------------------------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------------------------


class Invoke(Event):
    """A call is about to be attempted (Jepsen style: an *invoke*, then one completion).
    Fields: `core.schema.INVOKE_FIELDS`.

    `wobble call` writes one `call_invoke` per target it tries (RFC 3263: the next SRV target after
    a 503, 408 or no response), all with the same `call_id`, then one `call` (or `call_fail`)."""

    run_id: str | None = doc("string \\| null", "the load run (`agents.load --run-id`); null for `wobble call`")
    call_id: str | None = doc(
        "string",
        "the lab's call id: `w` + 12 hex (`wobble call`), `l` + 12 hex (load). Sent as `X-Wobble-Call` and "
        "as the From user; the agent, the recording name and the CDR userfield carry it too",
    )
    t_invoke: float | None = doc("float, s", "when the attempt started")
    target: str | None = doc("string \\| null", "request URI of the (first) INVITE; null when no route was found")
    chosen_by: str | None = doc(
        "string",
        "how the target was chosen: `target` (fixed: `--target`, `wobble call --region`), `http` (steering "
        "`GET /v1/route`), `dns` (`wobble call --steer dns`: SRV asked per call), `ttl` (SRV cached for its "
        "TTL), `sticky` (SRV kept 300 s whatever its TTL)",
    )
    worker: int | None = doc(
        "int \\| null",
        "load: index of the worker process holding the call (null: refused before a worker); `wobble call`: null",
    )
    hold_s: float | None = doc("float \\| null", "hold time asked after the answer")


class CallInvoke(Invoke):
    kind = "call_invoke"
    writer = "`wobble call` (host)"
    when = "before each INVITE target it tries"


class LoadInvoke(Invoke):
    kind = "load_invoke"
    writer = "`agents.load` (caller container)"
    when = "a call is attempted"


class CallRecordEvent(Event):
    """The completion of a call. The load kinds are `load_<status>`. Every record starts with the
    core fields (`core.schema.CORE_FIELDS`, in this order).

    **status** — `ok`: answered (200) and survived. `fail`: definitely not served: rejected, no route,
    no response, timed out before an answer, capacity, transport error, or answered but dropped /
    one-way / silent. `info`: outcome unknown: the worker holding the call died (`worker_lost`), the run
    gave up waiting for it (`abandoned`), the run was stopped before it was answered (`stopped`), or the
    whole supervisor died and a recovery closed it (`recovered`).

    **fate** (answered calls, first match wins) — `silent`: no RTP either way; `dropped`: ended before
    we hung up (`remote_bye`, `media_timeout`, `transport_error`, `failed`, `watchdog`); `one_way`: RTP
    in one direction only, or one direction stood still ≥ 2 s while the other counted; `survived`.

    **end_reason** — from the caller: `caller_bye` (held the full time, then BYE), `remote_bye`,
    `rejected` (final ≥ 300), `timeout` (no final response in time), `no_response` (nothing at all came
    back), `transport_error`, `media_timeout` (no RTP for the media timeout; we hung up), `failed`,
    `watchdog` (the SIP engine stalled), `error` (the caller process failed; an `error` field says how).
    From the traffic generator: `capacity` (max concurrent reached, or no worker slot: nothing is
    queued), `no_route` (steering gave no target), `stopped`, `worker_lost`, `abandoned`, `recovered`."""

    run_id: str | None = doc("string \\| null", "the load run; null for `wobble call`")
    call_id: str | None = doc("string", "as in the invoke")
    status: str | None = doc("string", "`ok`, `fail` or `info` (below)")
    final_code: int | None = doc(
        "int",
        "final SIP response to the INVITE; 0 when none came (see `end_reason`); 408 when it rang but no "
        "final answer came in time",
    )
    final_reason: str | None = doc("string", 'its reason phrase (`""` if none)')
    region: str | None = doc(
        "string \\| null",
        "the region whose SBC answered (`X-Wobble-Region`, set by the SBC); null if no SBC answered. "
        "`wobble call` falls back to the region it asked when the call was answered",
    )
    target: str | None = doc("string \\| null", "request URI of the last INVITE sent")
    targets_tried: list[str] | None = doc("list of string", "every request URI tried, in order")
    chosen_by: str | None = doc("string", "as in the invoke")
    pdd_ms: float | None = doc(
        "float \\| null, ms",
        "post-dial delay: first INVITE → first 18x/2xx; with several targets, counted from the INVITE to "
        "the first one (what the customer waited)",
    )
    setup_ms: float | None = doc("float \\| null, ms", "first INVITE → 200 OK (same origin)")
    hold_s: float | None = doc("float \\| null, s", "hold time asked")
    duration_s: float | None = doc("float, s", "200 OK → disconnect (0 if never answered)")
    rx_packets: int | None = doc("int", "RTP packets received by the caller")
    tx_packets: int | None = doc("int", "RTP packets sent by the caller")
    rx_lost: int | None = doc("int", "RTP packets lost in the receive direction")
    loss_pct: float | None = doc("float, %", "receive loss")
    jitter_ms: float | None = doc("float \\| null, ms", "mean receive jitter (RFC 3550)")
    rtt_ms: float | None = doc(
        "float \\| null, ms", "mean RTCP round trip; null until an RTCP report came back (~7-10 s calls)"
    )
    mos: float | None = doc(
        "float \\| null",
        "E-model MOS estimate (1.0-4.4 for G.711) from loss, jitter, RTT; 1.0 when nothing was received; "
        "null if not answered",
    )
    end_reason: str | None = doc("string", "why the call ended (below)")
    fate: str | None = doc(
        "string \\| null",
        "of an answered call: `survived`, `dropped`, `one_way`, `silent`; null if never answered",
    )
    t_invoke: float | None = doc("float \\| null, s", "when the attempt started")
    t_end: float | None = doc("float \\| null, s", "when the outcome was known; null for a recovered call")
    sip_call_id: str | None = doc("string", "the SIP Call-ID of the last INVITE")


class CallRecord(CallRecordEvent):
    """After the core, `wobble call` adds (the `call` event and `wobble call --json`) these."""

    kind = "call"
    writer = "`wobble call`"
    when = "the call's joined record (the same object `wobble call --json` prints)"

    asked_region: str | None = doc("string", "the region the last INVITE was sent to")
    steer: str | None = doc("string \\| null", "`http` or `dns` when steering chose; null with `--region`")
    agent: str | None = doc("string \\| null", "the agent that answered (from its `agent_call`)")
    agent_region: str | None = doc("string \\| null", "that agent's home region")
    peer_rx_packets: int | None = doc("int", "RTP the agent received")
    peer_tx_packets: int | None = doc("int", "RTP the agent sent")
    peer_loss_pct: float | None = doc("float \\| null, %", "the agent's receive loss")
    screen_pop: str | None = doc(
        "string",
        "the agent's CRM screen pop for this call: `ok`, `late`, `fallback` (CRM failed, slow past 2 s, or "
        "its breaker open: a cached or generic card) or `none` (not answered, or no CRM configured)",
    )
    jitter_max_ms: float | None = doc("float \\| null, ms", "the caller's worst receive jitter")
    recording: str | None = doc("string \\| null", "Asterisk's WAV on the host")
    recording_bytes: int | None = doc("int", "its size (44 bytes: never bridged)")
    cdr_id: str | None = doc("string \\| null", "the CDR's uniqueid in that region's `Master.csv`")
    cdr_disposition: str | None = doc("string \\| null", "the CDR's disposition")
    answered_at: float | None = doc("float \\| null, s", "when the 200 OK came")


class LoadRecord(CallRecordEvent):
    """After the core, the load records (`load_ok`, `load_fail`, `load_info`) add these."""

    writer = "`agents.load`, recovery"
    when = "exactly one per `load_invoke`, same `call_id`"

    worker: int | None = doc("int \\| null", "the worker process that held the call")
    one_way_s: float | None = doc("float, s", "longest stretch with one direction still while the other counted")
    steered_region: str | None = doc("string \\| null", "(`chosen_by` `http`) the region steering named")
    srv_regions: list[str] | None = doc(
        "list of string", "(`ttl`, `sticky`) the SRV targets' regions in the order tried"
    )
    recovered_by: str | None = doc("string", "(recovered `load_info` only) who closed it: `load:<run_id>` or `cli`")
    whose: str | None = doc(
        "string \\| null", "whose failure it was: `customer` or `harness` (the lab's own, not the system's)"
    )


class LoadOk(LoadRecord):
    kind = "load_ok"


class LoadFail(LoadRecord):
    kind = "load_fail"


class LoadInfo(LoadRecord):
    kind = "load_info"


def load_completion(record: Mapping[str, Any]) -> LoadRecord:
    """The completion event of a load call record: `load_<status>`."""
    cls: type[LoadRecord] = {"ok": LoadOk, "fail": LoadFail, "info": LoadInfo}[str(record["status"])]
    return cls.of(record)


class CallFail(Event):
    """`wobble call` could not get a record from the caller process (it crashed before printing one).
    No `call` follows."""

    kind = "call_fail"
    writer = "`wobble call`"
    when = "the caller process returned no record"

    call_id: str | None = doc("string", "the lab's call id")
    target: str | None = doc("string \\| null", "request URI it tried")
    error: str | None = doc("string", "the caller's last stderr line")


# --------------------------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------------------------


class AgentCall(Event):
    """An agent's incoming call ended (`agents.agent.agent_event`)."""

    kind = "agent_call"
    writer = "agents (`agents.agent` workers)"
    when = "an incoming call ended"

    call_id: str | None = doc("string \\| null", "`X-Wobble-Call` of the INVITE, else its From user")
    agent: str | None = doc("string", "e.g. `a-003`")
    agent_region: str | None = doc("string", "the agent's home region")
    registered_region: str | None = doc(
        "string \\| null",
        "the region whose SBC the agent was registered through when the call ended: `agent_region`, or the "
        "fallback region while re-homed (see [`agent_rehome`](#agent_rehome)); null if not known",
    )
    rx_packets: int | None = doc("int", "the agent's RTP packets received")
    tx_packets: int | None = doc("int", "the agent's RTP packets sent")
    rx_lost: int | None = doc("int", "the agent's RTP packets lost")
    loss_pct: float | None = doc("float, %", "the agent's receive loss")
    jitter_ms: float | None = doc("float \\| null, ms", "the agent's mean receive jitter")
    jitter_max_ms: float | None = doc("float \\| null, ms", "the agent's worst receive jitter")
    rtt_ms: float | None = doc("float \\| null, ms", "mean RTCP round trip")
    duration_s: float | None = doc("float, s", "answer → disconnect")
    end_reason: str | None = doc(
        "string",
        "`remote_bye`, `media_timeout` (no RTP: the agent hung up), `cancelled` (caller gave up while "
        "ringing), `busy` (486 to a second call), `shutdown`",
    )
    final_code: int | None = doc("int", "what the agent answered (200, 486, ...)")
    sip_call_id: str | None = doc("string", "SIP Call-ID of the incoming INVITE")
    remote_uri: str | None = doc("string", "the caller's URI")
    worker: int | None = doc("int", "the agents worker process")
    screen_pop: str | None = doc(
        "string",
        "`ok` (the CRM card came within the deadline), `late` (came after it), `fallback` (CRM failed or "
        "breaker open: cached or generic card), `none` (no CRM configured, or never answered)",
    )
    screen_pop_ms: float | None = doc("float \\| null, ms", "time until the card was there")
    screen_pop_error: str | None = doc(
        "string \\| null", "why a fallback (`http 500`, `timeout after 2 s`, `breaker open`, `unfinished`)"
    )


class AgentLogin(Event):
    """One login attempt of an agent at the identity provider (`agents.login.login_event`; the token
    is never logged)."""

    kind = "agent_login"
    writer = "agents"
    when = "every identity-provider login attempt"

    agent: str | None = doc("string", "e.g. `b-012`")
    region: str | None = doc("string", "the agent's home region")
    ok: bool | None = doc("bool", "the IdP gave a token")
    latency_ms: float | None = doc("float, ms", "request → answer (or failure)")
    error: str | None = doc("string \\| null", "why it failed (`http 503`, `timeout after 3 s`, ...)")
    relogin: bool | None = doc("bool", "a token renewal rather than the first login")


class AgentRehome(Event):
    """The agents supervisor of a region decided to move its whole fleet's registrations to the other
    region's SBC (its home region is down), or back home (`agents.agent.rehome_event`, decided by the
    state machine `agents.rehome`). Written once per decision, when the workers are told; each worker
    then moves its accounts within about a second, except an agent in a call, which keeps its call and
    moves when it ends. Where each agent is registered right now is in the worker status files
    (`proxy`, `proxy_region`) and the metric `wobble_agents_rehomed`.

    Home is BAD while an OPTIONS probe of the home SBC (or PBX) fails, or while every account
    registered through home has a failed REGISTER; GOOD when every home probe answers (registration
    results are not a home signal while the fleet is away). Probes go every second with a 0.5 s timeout.
    Two decisions are always at least the later one's threshold apart; a fallback whose own probe fails
    is not moved to."""

    kind = "agent_rehome"
    writer = "agents (`agents.agent` supervisor)"
    when = "the fleet is moved to the fallback region, or back home"

    region: str | None = doc("string", "the fleet's home region, e.g. `region-a`")
    to_region: str | None = doc(
        "string", "where the agents register from now on: the fallback region, or `region` for a return"
    )
    from_region: str | None = doc("string", "where they registered until now")
    proxy: str | None = doc("string", "the SBC (host[:port]) they register through from now on")
    placement: str | None = doc("string", "`fallback` or `home`")
    rule: str | None = doc(
        "string",
        "`home-down` (home BAD continuously for `rehome_after_s`) or `home-recovered` (home GOOD "
        "continuously for `return_after_s`)",
    )
    reason: str | None = doc("string", "one line, e.g. `home down for 10.2 s (sbc: timeout)`")
    streak_s: float | None = doc("float, s", "how long home had been BAD (or GOOD) when decided")
    evidence: dict[str, Any] | None = doc(
        "object",
        "the latest reading of each source: `sbc`, `pbx` (with `--home-pbx`), `registrations` (REGISTER "
        "results at home), `fallback` (the fallback SBC's probe) → `ok` or `fail: <why>` (`timeout`, "
        "`unreachable: ...`, a SIP code ≥ 500, `all N failed`)",
    )
    agents: list[str] | None = doc("list of string", "the agents moved (the whole fleet of this supervisor)")
    rehome_after_s: float | None = doc("float, s", "the threshold in force to move away")
    return_after_s: float | None = doc("float, s", "the threshold in force to come back")
    seq: int | None = doc("int", "the decision's number in this supervisor's life (the control file carries the same)")


# --------------------------------------------------------------------------------------------
# Steering
# --------------------------------------------------------------------------------------------


class SteeringDecision(Event):
    """A decision of the GSLB steering policy or an operator action (`lab.steering.policy.Decision`)."""

    kind = "steering_decision"
    writer = "`steering`"
    when = "every state change, operator action, mode change"

    t: float | None = doc("float, s", "when it was decided")
    region: str | None = doc("string", "the region concerned; `*` for a mode change")
    before: str | None = doc("string", "region state (`UP`, `SUSPECT`, `DOWN`) before; for a mode change the mode")
    after: str | None = doc("string", "the same after")
    rule: str | None = doc(
        "string",
        "why: `consecutive-failures-both-vantages`, `failure-ratio`, `one-vantage-only`, "
        "`probes-fail-calls-succeed`, `one-vantage-and-calls-failing`, `calls-failing-probes-ok`, "
        "`failures-stopped`, `recovered-after-hold`, `operator-approved`, `operator-failover`, "
        "`operator-release`, `mode-change`, `mode-auto-applies-down`, `mode-confirm-proposes-down`",
    )
    evidence: dict[str, Any] | None = doc(
        "object", "what the rule saw (probe streaks and ratios per vantage, call outcomes)"
    )
    mode: str | None = doc("string", "`auto`, `confirm` or `manual` at the time")
    approved_by: str | None = doc("string \\| null", "the operator (`cli`, ...) for operator actions")
    applied: bool | None = doc("bool", "false for a proposal waiting for approval (confirm mode)")
    wait_s: float | None = doc("float \\| null, s", "proposal → approval")
    decision: str | None = doc("string", "`health`, `mode`, `routing` or `approval`")
    config: str | None = doc("string", "steering's configuration at the time: `live` or `last-known-good`")


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


class FaultEvent(Event):
    """Jepsen-style like the calls: `fault_invoke` (asked for), then `fault_apply` (live) or
    `fault_fail` (could not be applied; nothing is left applied), then, from the warden that held it,
    `fault_revert` (reverted; `reason`) or `fault_revert_failed`, and from the controller `fault_end`
    (the warden has exited). At start a controller takes over the live faults an earlier one left
    (`fault_adopted`: a crashed controller restarted by docker) and closes the rest with
    `fault_reconciled`. Each kind carries the fields below that apply to it."""

    writer = "chaos controller, wardens"

    id: str | None = doc("string", "the fault's id (`wobble fault add` prints it)")
    fault: str | None = doc(
        "string", "the kind: `loss`, `delay`, `pause`, `latency`, `dns_slow`, ... (`kind` is the envelope's)"
    )
    family: str | None = doc("string", "the backend family: `net`, `toxiproxy`, `docker`, `dns`, `sip`")
    target: str | None = doc("string", "the compose service (or region for `region_down`)")
    services: list[str] | None = doc("list", "the services it acts on")
    params: dict[str, Any] | None = doc(
        "object",
        "the validated parameters (network faults: direction, match, pct, ms, jitter_ms, kbit, ...)",
    )
    backend: str | None = doc(
        "string",
        "`nft`, `nfqueue`, `htb`, `netem`, `toxiproxy-api`, `docker`, `steering-dns`, `kamailio-htable`",
    )
    duration_s: float | None = doc("float, s", "`--for` (`fault_invoke`)")
    started_at: float | None = doc("float, UNIX s", "when it went live (`fault_apply`, `fault_end`)")
    ends_at: float | None = doc("float, UNIX s", "when `--for` ends (`fault_apply`, `fault_end`)")
    remaining_s: float | None = doc("float, s", "what was left of `--for` when written")
    mono: float | None = doc(
        "float, s", "CLOCK_MONOTONIC when written (the same clock in every container of the machine)"
    )
    by: str | None = doc("string", "`warden` on `fault_revert`")
    reason: str | None = doc(
        "string",
        "`fault_revert`: `lease ended`, `lease expired` (renewals stopped: the controller died), `lease "
        "missing` (cleared), `SIGTERM`, `error: ...`; `fault_end`: `ended` or `cleared`",
    )
    error: str | None = doc("string", "`fault_fail`, `fault_revert_failed`: why, naming the failing rule or command")
    warden_exit: int | None = doc("int \\| null", "`fault_end`: the warden's exit code (0: reverted cleanly)")
    lease_left_s: float | None = doc(
        "float, s", "`fault_adopted`: what was left of the lease when the new controller renewed it"
    )


class FaultInvoke(FaultEvent):
    kind = "fault_invoke"
    when = "a fault is asked for"


class FaultApply(FaultEvent):
    kind = "fault_apply"
    when = "it is live"


class FaultFail(FaultEvent):
    kind = "fault_fail"
    when = "it could not be applied (nothing is left applied)"


class FaultRevert(FaultEvent):
    kind = "fault_revert"
    writer = "the fault's warden"
    when = "it is reverted"


class FaultRevertFailed(FaultEvent):
    kind = "fault_revert_failed"
    writer = "the fault's warden"
    when = "its revert failed"


class FaultEnd(FaultEvent):
    kind = "fault_end"
    writer = "chaos controller"
    when = "its warden has exited"


class FaultReconciled(FaultEvent):
    kind = "fault_reconciled"
    writer = "chaos controller"
    when = "at start, a fault an earlier controller left is closed"


class FaultAdopted(FaultEvent):
    kind = "fault_adopted"
    writer = "chaos controller"
    when = "at start, a fault an earlier controller left live is taken over (lease renewed, listed again)"


#: Every kind with a model, in the order docs/events.md lists them.
KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        CallInvoke,
        CallRecord,
        CallFail,
        LoadInvoke,
        LoadOk,
        LoadFail,
        LoadInfo,
        AgentCall,
        AgentLogin,
        AgentRehome,
        SteeringDecision,
        FaultInvoke,
        FaultApply,
        FaultFail,
        FaultRevert,
        FaultRevertFailed,
        FaultEnd,
        FaultReconciled,
        FaultAdopted,
    )
}
_UNKNOWN: dict[str, type[UnknownEvent]] = {}


def model_of(kind: str) -> type[Event]:
    """The model of a kind; for a kind without one, an UnknownEvent of that kind."""
    if kind in KINDS:
        return KINDS[kind]
    if kind not in _UNKNOWN:
        _UNKNOWN[kind] = type(f"Unknown[{kind}]", (UnknownEvent,), {"kind": kind, "__module__": __name__})
    return _UNKNOWN[kind]


# --------------------------------------------------------------------------------------------
# The log
# --------------------------------------------------------------------------------------------


def append(event: Event, path: Path | None = None) -> dict[str, Any]:
    """Append one event; returns it as written: the envelope `ts`, `kind` and `schema`
    (core.schema.SCHEMA_VERSION unless the event carries its own), then its fields."""
    if type(event).kind == "":
        raise ValueError(f"{type(event).__name__} is not an event kind; append one of core.events.KINDS")
    fields = event.fields()
    clash = {"ts", "kind"} & (set(fields) | ({"ts"} if event.ts is not None else set()))
    if clash:  # the envelope is the log's own: a record silently renaming its kind would be lost
        raise ValueError(f"event record may not carry {sorted(clash)}; rename the field")
    line = {"ts": round(time.time(), 6), "kind": event.kind, "schema": SCHEMA_VERSION, **fields}
    durable.append(path or event_path(), (json.dumps(line, separators=(",", ":"), default=str) + "\n").encode())
    return line


def parse(line: Mapping[str, Any]) -> Event:
    """A line (a dict) as its kind's model; a line that does not fit its model is kept as it is."""
    data = {k: v for k, v in line.items() if k != "kind"}
    cls = model_of(str(line.get("kind", "")))
    try:
        return cls.model_validate(data)
    except ValidationError:
        return cls.model_construct(**data)


def _parse(raw: bytes) -> Event | None:
    """One line as an event, or None for a torn or foreign line."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return parse(obj) if isinstance(obj, dict) else None


def read(path: Path | None = None) -> Iterator[Event]:
    """Yield every well-formed event; a torn last line (a writer killed mid-write) is skipped."""
    target = path or event_path()
    try:
        with target.open("rb") as fh:
            yield from filter(None, map(_parse, fh))
    except FileNotFoundError:
        return


def follow(path: Path | None = None, poll_s: float = 0.2, from_end: bool = False) -> Iterator[Event]:
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
