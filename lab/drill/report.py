"""A drill's report set: results/<UTC %Y%m%dT%H%M%SZ>-<scenario>/ with

- events.jsonl   the run's slice of the event log
- timeline.json  faults, steering decisions, phases and aborts, in time order
- summary.json   verdict, seed, commit, scenario, metrics, slos, faults (what `wobble compare` reads)
- junit.xml      one test case per SLO (and per steady-state check), failures naming value and limit
- report.html    one self-contained file (matplotlib PNGs inlined): success timeline with fault
                 bands and steering state, PDD and MOS over time, in-flight fates, the tier
                 scorecard, and the three questions answered in plain words
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.drill.verdict import describe_slo

STATE_COLORS = {"UP": "#4caf50", "SUSPECT": "#ffb300", "DOWN": "#e53935"}
VERDICT_COLORS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "aborted": "#ef6c00",
    "invalid": "#6a1b9a",
    "incomplete": "#546e7a",
}


def stamp(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def results_dir(root: Path, scenario: str, started: float) -> Path:
    """results/<UTC time>-<scenario>; a second run in the same second gets a suffix."""
    base = root / f"{stamp(started)}-{scenario}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}.{n}")
    return out


# ------------------------------------------------------------------------------------------------
# The three questions
# ------------------------------------------------------------------------------------------------


def _fmt(v: Any, unit: str = "", nd: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}{unit}"
    return f"{v}{unit}"


def three_questions(summary: Mapping[str, Any]) -> dict[str, str]:
    """Who decided failover and why; what still worked while unstable; what was lost."""
    m = summary.get("metrics", {})
    t0 = float(summary.get("t0") or 0.0)
    steer = summary.get("steering", {})
    downs = [d for d in steer.get("decided", []) if d.get("after") == "DOWN" and d.get("before") != "DOWN"]
    approvals = [d for d in steer.get("decided", []) if d.get("rule") == "operator-approved"]
    who: list[str] = []
    for d in downs:
        how = "applied at once" if d.get("applied", True) else "proposed, waiting for an operator"
        who.append(
            f"At +{float(d['t']) - t0:.1f} s steering ({d.get('mode')} mode) marked {d.get('region')} DOWN "
            f"by rule `{d.get('rule')}` ({how})."
        )
    for d in approvals:
        who.append(
            f"Operator `{d.get('approved_by')}` approved the failover of {d.get('region')} after "
            f"{_fmt(d.get('wait_s'), ' s')} of waiting."
        )
    if not who:
        who.append("Nobody failed over: steering kept every region in service.")
    if m.get("detection_s") is not None:
        who.append(
            f"Detection took {_fmt(m.get('detection_s'), ' s')}, the decision {_fmt(m.get('decision_s'), ' s')} "
            "after the fault started."
        )
    ff = m.get("false_failovers") or 0
    if ff:
        who.append(f"{ff} failover(s) had no fault to justify them: false failovers (wobble to ride out).")
    inflight = m.get("inflight", {})
    logins = m.get("agent_logins", {})
    pops = m.get("screen_pops", {})
    worked = [
        f"New calls outside fault windows succeeded at {_pct(m.get('new_call_success'))}; "
        f"{m.get('ok', 0)} of {m.get('attempts', 0)} new calls were served in all.",
        f"{inflight.get('survived', 0)} of {inflight.get('total', 0)} calls in flight when a fault began survived it.",
        f"PDD p95 was {_fmt(m.get('pdd_p95_ms_in_fault'), ' ms', 0)} inside fault windows and "
        f"{_fmt(m.get('pdd_p95_ms_out_of_fault'), ' ms', 0)} outside; MOS p5 {_fmt(m.get('mos_p5_in_fault'), '', 2)} "
        f"inside, {_fmt(m.get('mos_p5_out_of_fault'), '', 2)} outside.",
        f"Agent logins: {logins.get('ok', 0)} of {logins.get('attempts', 0)} succeeded; screen pops: "
        f"{pops.get('ok', 0)} on time, {pops.get('late', 0)} late, {pops.get('fallback', 0)} fallback cards.",
    ]
    rto = m.get("rto_s")
    recovered = m.get("rto_recovered", True)
    worked.append(
        f"New calls were back at the SLO ratio {_fmt(rto, ' s')} after the fault began (RTO)."
        if recovered
        else f"New calls had not come back to the SLO ratio {_fmt(rto, ' s')} after the fault began."
    )
    reasons = ", ".join(f"{k}: {v}" for k, v in (m.get("fail_reasons") or {}).items()) or "none"
    lost = [
        f"{m.get('failed_new_calls', 0)} new calls failed as a customer would see it ({reasons}).",
        f"Calls in flight: {inflight.get('dropped', 0)} dropped, {inflight.get('one_way', 0)} one-way, "
        f"{inflight.get('silent', 0)} silent.",
    ]
    if m.get("rpo_records") is not None:
        lost.append(f"{m['rpo_records']} call records (CDR or recording) are missing from the surviving region (RPO).")
    else:
        lost.append("Records were not reconciled in this drill (no RPO measured).")
    lost.append(
        f"The traffic generator itself failed {m.get('harness_failed', 0)} calls "
        f"({_pct(m.get('harness_failed_ratio'))} of attempts); those are not customer failures."
    )
    return {"who_decided": " ".join(who), "what_worked": " ".join(worked), "what_was_lost": " ".join(lost)}


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * float(v):.1f} %"


# ------------------------------------------------------------------------------------------------
# JUnit
# ------------------------------------------------------------------------------------------------


def junit_xml(summary: Mapping[str, Any]) -> str:
    """One test case per SLO and per steady-state check; a failure's message names value and limit."""
    name = str(summary.get("scenario", "drill"))
    cases: list[tuple[str, str, Mapping[str, Any]]] = [
        (f"drill.{name}.{s.get('tier') or 'slo'}", str(s["name"]), s) for s in summary.get("slos", [])
    ]
    for phase in ("before", "after"):
        for s in (summary.get("steady_state") or {}).get(phase) or []:
            cases.append((f"drill.{name}.steady_state_{phase}", str(s["name"]), s))
    failures = sum(1 for _, _, s in cases if not s.get("pass"))
    suite = ET.Element(
        "testsuite",
        name=f"drill.{name}",
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        time=f"{float(summary.get('duration_s') or 0.0):.3f}",
    )
    verdict = str(summary.get("verdict"))
    for classname, case_name, s in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=case_name, time="0")
        if not s.get("pass"):
            fail = ET.SubElement(case, "failure", message=describe_slo(s), type="SLO")
            fail.text = f"{describe_slo(s)}\nverdict: {verdict}: {summary.get('reason', '')}"
    if verdict in ("aborted", "invalid", "incomplete"):
        case = ET.SubElement(suite, "testcase", classname=f"drill.{name}", name="run", time="0")
        err = ET.SubElement(case, "error", message=f"{verdict}: {summary.get('reason', '')}", type=verdict)
        err.text = str(summary.get("reason", ""))
        suite.set("errors", "1")
        suite.set("tests", str(len(cases) + 1))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ------------------------------------------------------------------------------------------------
# Plots and HTML
# ------------------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight", metadata={"Software": "Created with matplotlib"})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fault_bands(ax: Any, faults: Sequence[Mapping[str, Any]], t0: float) -> None:
    for i, f in enumerate(faults):
        meas = f.get("measured") or {}
        start, end = meas.get("applied_at"), meas.get("reverted_at")
        if start is None:
            continue
        a = float(start) - t0
        b = float(end) - t0 if end is not None else ax.get_xlim()[1]
        ax.axvspan(a, b, color="#e57373", alpha=0.18, label=f"{f['kind']} {f['target']}" if i < 6 else None)


def plots(summary: Mapping[str, Any]) -> dict[str, str]:
    """The report's figures as data: URIs (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = summary.get("metrics", {})
    series = summary.get("series", {})
    t0 = float(summary.get("t0") or 0.0)
    faults = summary.get("faults", [])
    out: dict[str, str] = {}

    # 1. success ratio per second, fault bands, steering state per region underneath
    succ = series.get("success", [])
    regions = list((series.get("steering") or {}).keys())
    fig, axes = plt.subplots(
        2, 1, figsize=(10, 4.2), sharex=True, gridspec_kw={"height_ratios": [3, max(1, len(regions)) * 0.4]}
    )
    ax = axes[0]
    xs = [b["t"] + 0.5 for b in succ if b["ok"] + b["fail"]]
    ys = [b["ok"] / (b["ok"] + b["fail"]) for b in succ if b["ok"] + b["fail"]]
    ax.plot(xs, ys, ".", color="#1565c0", ms=4, label="per second")
    roll = _rolling(succ, 5)
    ax.plot([t for t, _ in roll], [v for _, v in roll], "-", color="#0d47a1", lw=1.5, label="5 s window")
    harness = [b["t"] for b in succ if b["harness"]]
    if harness:
        ax.plot(harness, [0.02] * len(harness), "x", color="#6a1b9a", label="harness failure")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("new-call success")
    if succ:
        ax.set_xlim(0, len(succ))
    _fault_bands(ax, faults, t0)
    for p in summary.get("phases", []):
        ax.axvline(float(p["t"]) - t0, color="#9e9e9e", lw=0.7, ls=":")
    ax.legend(loc="lower left", fontsize=7, ncol=4)
    ax.set_title("New-call success, fault windows (red) and steering state")
    sax = axes[1]
    for i, region in enumerate(regions):
        for span in series["steering"][region]:
            sax.broken_barh(
                [(span["from"], span["to"] - span["from"])],
                (i - 0.4, 0.8),
                color=STATE_COLORS.get(span["state"], "#9e9e9e"),
            )
    sax.set_yticks(range(len(regions)), regions, fontsize=8)
    sax.set_xlabel("seconds since traffic start")
    out["success"] = _png(fig)

    # 2. PDD and MOS over time
    calls = series.get("calls", [])
    fig, (pax, max_) = plt.subplots(2, 1, figsize=(10, 4.2), sharex=True)
    for outcome, color in (("ok", "#2e7d32"), ("customer", "#c62828"), ("harness", "#6a1b9a")):
        pts = [(c["t"], c["pdd_ms"]) for c in calls if c.get("pdd_ms") is not None and c["outcome"] == outcome]
        if pts:
            pax.plot([p[0] for p in pts], [p[1] for p in pts], ".", ms=4, color=color, label=outcome)
        pts = [(c["t"], c["mos"]) for c in calls if c.get("mos") is not None and c["outcome"] == outcome]
        if pts:
            max_.plot([p[0] for p in pts], [p[1] for p in pts], ".", ms=4, color=color)
    pax.set_ylabel("PDD (ms)")
    if pax.get_legend_handles_labels()[0]:
        pax.legend(fontsize=7, loc="upper left")
    max_.set_ylabel("MOS")
    max_.set_ylim(1, 4.6)
    max_.set_xlabel("seconds since traffic start (call placed)")
    for a in (pax, max_):
        if succ:
            a.set_xlim(0, len(succ))
        _fault_bands(a, faults, t0)
    pax.set_title("Post-dial delay and MOS per call")
    out["quality"] = _png(fig)

    # 3. in-flight fates per region
    by_region = (m.get("inflight") or {}).get("by_region") or {}
    fig, ax = plt.subplots(figsize=(6, 2.6))
    fates = ("survived", "dropped", "one_way", "silent")
    colors = ("#2e7d32", "#c62828", "#ef6c00", "#455a64")
    names = list(by_region) or ["(none in flight)"]
    left = [0] * len(names)
    for fate, color in zip(fates, colors, strict=True):
        vals = [by_region.get(r, {}).get(fate, 0) for r in names]
        ax.barh(names, vals, left=left, color=color, label=fate)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlabel("calls in flight when a fault began")
    ax.legend(fontsize=7, ncol=4, loc="lower right")
    ax.set_title("In-flight calls: what became of them")
    out["inflight"] = _png(fig)
    return out


def _rolling(succ: Sequence[Mapping[str, Any]], width: int) -> list[tuple[float, float]]:
    out = []
    for i in range(len(succ)):
        part = succ[max(0, i - width + 1) : i + 1]
        ok = sum(b["ok"] for b in part)
        att = ok + sum(b["fail"] for b in part)
        if att:
            out.append((float(succ[i]["t"]) + 0.5, ok / att))
    return out


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#212121}
h1{margin-bottom:0}.verdict{display:inline-block;padding:.2em .7em;border-radius:.3em;color:#fff;font-weight:bold}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
.pass{color:#2e7d32;font-weight:bold}.fail{color:#c62828;font-weight:bold}img{max-width:100%}
.q{background:#f5f5f5;padding:.6em 1em;border-left:4px solid #1565c0;margin:.5em 0}
"""


def render_html(summary: Mapping[str, Any]) -> str:
    """The report: one self-contained HTML file (no script, no link, images inlined)."""
    e = html.escape
    verdict = str(summary.get("verdict"))
    figs = plots(summary)
    q = summary.get("questions") or three_questions(summary)
    rows = "".join(
        f"<tr><td>{e(str(s.get('tier', '')))}</td><td>{e(str(s['name']))}</td><td>{e(_fmt(s.get('value'), '', 3))}</td>"
        f"<td>{e(str(s['limit']))}</td><td class='{'pass' if s['pass'] else 'fail'}'>{'pass' if s['pass'] else 'FAIL'}"
        f"</td></tr>"
        for s in summary.get("slos", [])
    )
    steady = ""
    for phase in ("before", "after"):
        for s in (summary.get("steady_state") or {}).get(phase) or []:
            steady += (
                f"<tr><td>steady state {phase}</td><td>{e(str(s['name']))}</td><td>{e(_fmt(s.get('value'), '', 3))}"
                f"</td><td>{e(str(s['limit']))}</td><td class='{'pass' if s['pass'] else 'fail'}'>"
                f"{'pass' if s['pass'] else 'FAIL'}</td></tr>"
            )
    frows = "".join(
        f"<tr><td>{e(f['kind'])}</td><td>{e(f['target'])}</td><td>{e(json.dumps(f.get('asked')))}</td>"
        f"<td>{e(_brief(f.get('measured') or {}))}</td><td>{'yes' if f['took_effect'] else 'NO'}</td>"
        f"<td>{'yes' if f['clean_after'] else 'NO'}</td><td>{e(str(f.get('why') or ''))}</td></tr>"
        for f in summary.get("faults", [])
    )
    m = summary.get("metrics", {})
    keys = (
        "rto_s",
        "failed_new_calls",
        "harness_failed",
        "false_failovers",
        "flips",
        "detection_s",
        "decision_s",
        "operator_wait_s",
        "new_call_success",
        "attempts",
        "ok",
        "rpo_records",
    )
    mrows = "".join(f"<tr><td>{k}</td><td>{e(_fmt(m.get(k), '', 3))}</td></tr>" for k in keys if k in m)
    color = VERDICT_COLORS.get(verdict, "#000")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>drill {e(str(summary.get("scenario")))}: {e(verdict)}</title>
<style>{_CSS}</style></head><body>
<h1>Drill {e(str(summary.get("scenario")))} <span class="verdict" style="background:{color}">{e(verdict)}</span></h1>
<p>{e(str(summary.get("description", "")))}</p>
<p><b>Why:</b> {e(str(summary.get("reason", "")))}<br>
seed {e(str(summary.get("seed")))} · commit {e(str(summary.get("commit")))} · started {e(str(summary.get("started")))}
 · {e(_fmt(summary.get("duration_s"), " s"))}</p>
<h2>The three questions</h2>
<div class="q"><b>Who decided failover, and why?</b><br>{e(q["who_decided"])}</div>
<div class="q"><b>What still worked while the system was unstable?</b><br>{e(q["what_worked"])}</div>
<div class="q"><b>What was lost, and is that acceptable?</b><br>{e(q["what_was_lost"])}</div>
<h2>Scorecard</h2>
<table><tr><th>tier</th><th>SLO</th><th>value</th><th>limit</th><th>result</th></tr>{rows}{steady}</table>
<h2>Timeline</h2>
<img alt="new-call success, fault windows and steering state" src="{figs["success"]}">
<img alt="PDD and MOS per call" src="{figs["quality"]}">
<h2>In-flight calls</h2>
<img alt="in-flight fates per region" src="{figs["inflight"]}">
<h2>Faults: asked, measured, proven, reverted</h2>
<table><tr><th>kind</th><th>target</th><th>asked</th><th>measured</th><th>took effect</th><th>clean after</th>
<th>notes</th></tr>{frows}</table>
<h2>Metrics</h2><table>{mrows}</table>
</body></html>
"""


def _brief(measured: Mapping[str, Any]) -> str:
    keys = ("held_s", "calls_in_window", "calls_failed_in_window", "loss_pct_mean", "pdd_p95_ms", "steering_states")
    return ", ".join(f"{k}={measured[k]}" for k in keys if measured.get(k) not in (None, [], ""))


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def build_summary(
    *,
    scenario: str,
    description: str,
    seed: int,
    commit: str,
    verdict: str,
    reason: str,
    t0: float,
    t_end: float,
    metrics: Mapping[str, Any],
    slos: Sequence[Mapping[str, Any]],
    faults: Sequence[Mapping[str, Any]],
    steady_before: Sequence[Mapping[str, Any]] | None = None,
    steady_after: Sequence[Mapping[str, Any]] | None = None,
    phases: Sequence[Mapping[str, Any]] = (),
    aborts: Sequence[Mapping[str, Any]] = (),
    load: Sequence[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """summary.json: the contract keys first (verdict, seed, commit, scenario, metrics, slos, faults);
    the per-second series and steering's decisions are kept beside `metrics`, which stays numbers
    (and small objects) for `wobble compare`."""
    m = dict(metrics)
    series = m.pop("series", {})
    steering = m.pop("steering", {})
    return {
        "verdict": verdict,
        "reason": reason,
        "scenario": scenario,
        "description": description,
        "seed": seed,
        "commit": commit,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        "t0": t0,
        "duration_s": round(max(0.0, t_end - t0), 3),
        "metrics": m,
        "slos": [dict(s) for s in slos],
        "faults": [dict(f) for f in faults],
        "steady_state": {"before": list(steady_before or []), "after": list(steady_after or [])},
        "aborts": list(aborts),
        "phases": list(phases),
        "load": list(load),
        "steering": steering,
        "series": series,
        **(extra or {}),
    }


def write_events(path: Path, events: Iterable[Mapping[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(json.dumps(ev, separators=(",", ":"), default=str) + "\n")


def write_all(
    out: Path, events: Sequence[Mapping[str, Any]], timeline: Sequence[Mapping[str, Any]], summary: dict[str, Any]
) -> Path:
    """Write the whole report set into `out` (created); returns it. summary.json comes last but one:
    a reader finding it finds the events and timeline beside it."""
    out.mkdir(parents=True, exist_ok=True)
    write_events(out / "events.jsonl", events)
    (out / "timeline.json").write_text(json.dumps(list(timeline), indent=1, default=str) + "\n")
    summary.setdefault("questions", three_questions(summary))
    (out / "junit.xml").write_text(junit_xml(summary))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (out / "report.html").write_text(render_html(summary), encoding="utf-8")
    return out
