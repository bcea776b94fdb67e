"""The event-log schema's one source of truth: its version, the core fields every call record
carries, and what a call's status and fate mean. docs/events.md documents it field by field.

Two producers write call records: `wobble call` (lab.call.call_record; also its `--json` output)
and the traffic generator (agents.loadmodel.call_record, event kinds load_ok/load_fail/load_info).
Both build their record's core through `core_record`, so the two cannot drift apart: a field
added here appears in both, with the same default, and `SCHEMA_VERSION` is stamped on both.

Pure: no I/O, no pjsua2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.mos import mos as emodel_mos

#: Bumped when a field changes meaning or is removed (adding a field keeps the version).
SCHEMA_VERSION = 1

STATUSES = ("ok", "fail", "info")
FATES = ("survived", "dropped", "one_way", "silent")
#: A direction standing still this long while the other counts is a one-way stretch.
ONE_WAY_S = 2.0
#: end_reasons meaning an answered call ended before we hung up.
EARLY_END = frozenset({"remote_bye", "media_timeout", "transport_error", "failed", "watchdog"})
#: end_reasons of calls whose outcome nobody knows: the worker holding the call died
#: (worker_lost), the run gave up waiting (abandoned), or the whole supervisor died and a later
#: recovery closed the call (recovered, see core.history).
UNKNOWN_END = frozenset({"worker_lost", "abandoned", "recovered"})
#: end_reasons that are the lab's own limits, never something a customer saw on the wire: no free
#: generator slot (capacity), the generator's own worker died or errored, the run stopped
#: following the call (abandoned, stopped), or a recovery closed it (recovered).
HARNESS_END = frozenset({"capacity", "worker_lost", "abandoned", "recovered", "stopped", "error"})
#: Whose failure a failed or unknown call record is.
WHOSE = ("customer", "harness")

#: The fields every call record carries, in this order, with these defaults (None: null).
CORE_DEFAULTS: dict[str, Any] = {
    "schema": SCHEMA_VERSION,
    "run_id": None,  # the load run; null for `wobble call`
    "call_id": None,
    "status": None,  # ok | fail | info
    "final_code": 0,
    "final_reason": "",
    "region": None,  # the region whose SBC answered (X-Wobble-Region)
    "target": None,  # the request URI of the last INVITE
    "targets_tried": [],
    "chosen_by": None,  # target | http | dns | ttl | sticky
    "pdd_ms": None,
    "setup_ms": None,
    "hold_s": None,
    "duration_s": 0.0,
    "rx_packets": 0,
    "tx_packets": 0,
    "rx_lost": 0,
    "loss_pct": 0.0,
    "jitter_ms": None,
    "rtt_ms": None,
    "mos": None,
    "end_reason": None,
    "fate": None,  # survived | dropped | one_way | silent; null when never answered
    "t_invoke": None,
    "t_end": None,
    "sip_call_id": "",
}
CORE_FIELDS: tuple[str, ...] = tuple(CORE_DEFAULTS)
#: What a `load_invoke` event carries (the completion follows with the same call_id).
INVOKE_FIELDS: tuple[str, ...] = ("schema", "run_id", "call_id", "t_invoke", "target", "chosen_by", "worker", "hold_s")
#: Event kinds that complete a `load_invoke`.
LOAD_COMPLETIONS = ("load_ok", "load_fail", "load_info")


def core_record(**values: Any) -> dict[str, Any]:
    """A call record's core: every CORE_FIELDS key in order, defaults for those not given.
    An unknown key is a programming error (a producer-only field belongs after the core)."""
    unknown = set(values) - set(CORE_DEFAULTS)
    if unknown:
        raise ValueError(f"not core call-record fields: {sorted(unknown)}")
    if values.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise ValueError(f"schema must be {SCHEMA_VERSION}")
    rec = {k: (list(v) if isinstance(v, list) else v) for k, v in CORE_DEFAULTS.items()}
    rec.update(values)
    return rec


#: Fields a caller result (agents.caller.result_dict) hands to the call record as they are.
_RESULT_FIELDS = (
    "pdd_ms",
    "setup_ms",
    "duration_s",
    "rx_lost",
    "loss_pct",
    "jitter_ms",
    "rtt_ms",
    "sip_call_id",
)


def record_from_result(
    result: Mapping[str, Any] | None,
    *,
    run_id: str | None,
    call_id: str,
    chosen_by: str,
    hold_s: float | None,
    t_invoke: float | None,
    t_end: float | None,
    targets_tried: Sequence[str] = (),
    end_reason: str | None = None,
    one_way_s: float = 0.0,
) -> dict[str, Any]:
    """A call record's core from the caller's result dict of the last attempt
    (agents.caller.result_dict; None when no INVITE was ever sent). `end_reason` overrides the
    result's. Both `wobble call` and the traffic generator derive status, fate, MOS and region here."""
    res = dict(result or {})
    reason = end_reason or str(res.get("end_reason") or "failed")
    code = int(res.get("final_code") or 0)
    answered = code == 200 or (res.get("setup_ms") is not None and 200 <= code < 300)
    rx = int(res.get("rx_packets") or 0)
    tx = int(res.get("tx_packets") or 0)
    fate = classify_fate(answered, reason, rx, tx, one_way_s)
    rec = core_record(
        run_id=run_id,
        call_id=call_id,
        status=classify_status(answered, fate, reason),
        final_code=code,
        final_reason=str(res.get("final_reason") or ""),
        region=(res.get("reply_headers") or {}).get("X-Wobble-Region") or res.get("region"),
        target=targets_tried[-1] if targets_tried else None,
        targets_tried=list(targets_tried),
        chosen_by=chosen_by,
        hold_s=hold_s,
        rx_packets=rx,
        tx_packets=tx,
        end_reason=reason,
        fate=fate,
        t_invoke=None if t_invoke is None else round(t_invoke, 6),
        t_end=None if t_end is None else round(t_end, 6),
        **{k: res[k] for k in _RESULT_FIELDS if k in res},
    )
    rec["mos"] = call_mos(answered, rx, float(rec["loss_pct"] or 0.0), rec["jitter_ms"], rec["rtt_ms"])
    whose = classify_whose(rec["status"], reason)
    if whose is not None:
        rec["whose"] = whose
    return rec


def invoke_record(
    run_id: str | None,
    call_id: str,
    t_invoke: float,
    target: str | None,
    chosen_by: str,
    worker: int | None,
    hold_s: float | None = None,
) -> dict[str, Any]:
    """The `load_invoke` record: a call is about to be attempted."""
    return {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "call_id": call_id,
        "t_invoke": round(t_invoke, 6),
        "target": target,
        "chosen_by": chosen_by,
        "worker": worker,
        "hold_s": hold_s,
    }


def classify_fate(
    answered: bool, end_reason: str, rx_packets: int, tx_packets: int, one_way_s: float = 0.0
) -> str | None:
    """The fate of an answered call; None when it was never answered (see docs/events.md)."""
    if not answered:
        return None
    if rx_packets <= 0 and tx_packets <= 0:
        return "silent"
    if end_reason in EARLY_END:
        return "dropped"
    if rx_packets <= 0 or tx_packets <= 0 or one_way_s >= ONE_WAY_S:
        return "one_way"
    return "survived"


def classify_status(answered: bool, fate: str | None, end_reason: str) -> str:
    """ok: answered and survived; info: outcome unknown; fail: everything else."""
    if end_reason in UNKNOWN_END:
        return "info"
    if answered:
        return "ok" if fate == "survived" else "fail"
    if end_reason == "stopped":
        return "info"
    return "fail"


def classify_whose(status: str, end_reason: str) -> str | None:
    """`harness` when the generator could not place or follow the call (HARNESS_END), `customer`
    when it failed as a customer would have seen it; None for an ok call."""
    if status == "ok":
        return None
    return "harness" if end_reason in HARNESS_END else "customer"


def call_mos(
    answered: bool, rx_packets: int, loss: float, jitter_ms: float | None, rtt_ms: float | None
) -> float | None:
    """E-model MOS of an answered call; 1.0 when nothing was received (nobody heard anything)."""
    if not answered:
        return None
    if rx_packets <= 0:
        return 1.0
    return emodel_mos(loss, jitter_ms or 0.0, rtt_ms or 0.0)


def outcome_reason(rec: Mapping[str, Any]) -> str:
    """One word for why a call ended as it did (a metrics label): the fate of an answered call
    that failed (dropped/one_way/silent), else the SIP code of a rejection (>= 300), else its
    end_reason."""
    if rec.get("status") == "fail" and rec.get("fate"):
        return str(rec["fate"])
    code = int(rec.get("final_code") or 0)
    if code >= 300:
        return str(code)
    return str(rec.get("end_reason") or "unknown")
