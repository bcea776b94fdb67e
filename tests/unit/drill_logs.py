"""Hand-built event logs for the drill tests: calls, faults, steering decisions, agents."""

from __future__ import annotations

from typing import Any

from core import schema

T0 = 1_700_000_000.0
_n = [0]


def call(
    t: float,
    status: str = "ok",
    *,
    region: str | None = "region-a",
    end_reason: str | None = None,
    fate: str | None = None,
    hold: float = 5.0,
    pdd_ms: float | None = 120.0,
    mos: float | None = 4.3,
    run_id: str = "r1",
    steered: str | None = None,
    whose: str | None = None,
    call_id: str | None = None,
    setup_ms: float | None = None,
    t_end: float | None = None,
) -> dict[str, Any]:
    """A load completion for a call placed at T0 + t."""
    _n[0] += 1
    cid = call_id or f"l{_n[0]:012x}"
    answered = status == "ok" or fate is not None
    if fate is None and status == "ok":
        fate = "survived"
    reason = end_reason or ("caller_bye" if answered else "no_response")
    setup = setup_ms if setup_ms is not None else (300.0 if answered else None)
    end = t_end if t_end is not None else T0 + t + (hold + (setup or 0) / 1000 if answered else 2.0)
    rec = schema.core_record(
        run_id=run_id,
        call_id=cid,
        status=status,
        final_code=200 if answered else 0,
        region=region if answered else None,
        chosen_by="http",
        pdd_ms=pdd_ms if answered else None,
        setup_ms=setup,
        hold_s=hold,
        end_reason=reason,
        fate=fate if answered else None,
        mos=mos if answered else None,
        t_invoke=T0 + t,
        t_end=end,
    )
    rec["steered_region"] = steered or region
    if whose is not None:
        rec["whose"] = whose
    return {"ts": end, "kind": f"load_{status}", **rec}


def invoke(rec: dict[str, Any]) -> dict[str, Any]:
    inv = schema.invoke_record(rec["run_id"], rec["call_id"], rec["t_invoke"], None, "http", 1, rec["hold_s"])
    return {"ts": rec["t_invoke"], "kind": "load_invoke", **inv}


def fault(
    fid: str,
    kind: str,
    target: str,
    start: float,
    end: float | None,
    params: dict[str, Any] | None = None,
    warden_exit: int | None = 0,
    reason: str = "lease missing",
) -> list[dict[str, Any]]:
    """fault_invoke/apply (at T0 + start), fault_revert/end (at T0 + end, if given)."""
    p = params or {}
    base = {"id": fid, "fault": kind, "target": target, "params": p}
    out = [
        {"ts": T0 + start - 0.5, "kind": "fault_invoke", **base, "duration_s": 30.0},
        {"ts": T0 + start, "kind": "fault_apply", **base, "started_at": T0 + start, "ends_at": T0 + start + 30},
    ]
    if end is not None:
        out.append({"ts": T0 + end, "kind": "fault_revert", **base, "reason": reason})
        out.append({"ts": T0 + end + 0.2, "kind": "fault_end", **base, "reason": "cleared", "warden_exit": warden_exit})
    return out


def decision(
    t: float, region: str, before: str, after: str, rule: str = "consecutive-failures-both-vantages", **extra: Any
) -> dict[str, Any]:
    return {
        "ts": T0 + t,
        "kind": "steering_decision",
        "t": T0 + t,
        "region": region,
        "before": before,
        "after": after,
        "rule": rule,
        "mode": "auto",
        "applied": True,
        "approved_by": None,
        "wait_s": None,
        "decision": "health",
        **extra,
    }


def login(t: float, ok: bool, region: str = "region-a") -> dict[str, Any]:
    return {
        "ts": T0 + t,
        "kind": "agent_login",
        "agent": "a-001",
        "region": region,
        "ok": ok,
        "latency_ms": 20.0,
        "error": None if ok else "http 503",
        "relogin": False,
    }


def agent_call(t: float, pop: str = "ok") -> dict[str, Any]:
    return {
        "ts": T0 + t,
        "kind": "agent_call",
        "agent": "a-001",
        "agent_region": "region-a",
        "final_code": 200,
        "screen_pop": pop,
    }
