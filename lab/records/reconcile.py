"""Reconcile the calls placed against the records a region can see, and say what is missing.

Pure: calls, and per origin region what the reconciling region sees of its records, what its own
primary had committed (the ground truth, when known) and when it crashed (if it did). No I/O.

Classes of an answered call (docs/records.md):
- ok                        CDR and recording visible, recording complete and its checksum right
- in_progress               not over yet (or just over, within the grace): nothing expected yet
- never_committed           not in the origin's primary: the call was in progress at its crash
- not_written               not in the origin's primary although the call ended well before any
                            crash: the PBX never wrote it (e.g. its database was down)
- committed_not_replicated  in the origin primary's data but not visible here: the RPO proper
- missing                   not visible here, and no ground truth to say whether it was committed
- incomplete_recording      recording shorter than the talk time by more than the tolerance
- checksum_mismatch         the stored recording's sha256 is not that of its bytes
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.records.placed import PlacedCall

CLASSES = (
    "ok",
    "in_progress",
    "never_committed",
    "not_written",
    "committed_not_replicated",
    "missing",
    "incomplete_recording",
    "checksum_mismatch",
)
#: Classes meaning a record that was (or may have been) committed is missing or damaged: exit 1.
PROBLEMS = frozenset(
    {"not_written", "committed_not_replicated", "missing", "incomplete_recording", "checksum_mismatch"}
)
#: A recording may be this much shorter than the caller's talk time (setup and teardown skew).
TOLERANCE_S = 1.0
#: A call that ended this recently may not have its records written yet (CDR at hangup,
#: recording after MixMonitor closes the file).
GRACE_S = 2.0


@dataclass(frozen=True)
class Cdr:
    call_id: str
    disposition: str = "ANSWERED"
    billsec: int = 0


@dataclass(frozen=True)
class Recording:
    call_id: str
    duration_s: float
    sha256: str  # as stored
    actual_sha256: str  # of the stored bytes, computed when read


@dataclass(frozen=True)
class Records:
    """The call records of one region as one cluster holds them."""

    cdrs: frozenset[str] = frozenset()  # call ids with a CDR
    recordings: Mapping[str, Recording] = field(default_factory=dict)

    @classmethod
    def of(cls, cdrs: Iterable[Cdr], recordings: Iterable[Recording]) -> Records:
        return cls(frozenset(c.call_id for c in cdrs), {r.call_id: r for r in recordings})


@dataclass(frozen=True)
class OriginView:
    """What the reconciling region knows about one origin region's records."""

    visible: Records  # what the reconciling region can read
    truth: Records | None  # what the origin's primary committed (None: unknown)
    crashed_at: float | None = None  # when the origin's primary died (None: it did not)
    #: When the origin's PBX or database went down by a fault the event log recorded (region_down,
    #: or a kill/stop/pause of either): a call in flight then left nothing to commit, even after
    #: the region came back and no crash is visible any more.
    outages: tuple[float, ...] = ()


@dataclass(frozen=True)
class Finding:
    call_id: str
    origin: str | None
    cls: str
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "origin": self.origin, "class": self.cls, "why": self.why}


def classify_call(call: PlacedCall, view: OriginView | None, now: float, grace_s: float = GRACE_S) -> Finding:
    """The class of one answered call (see the module docstring)."""
    cid, origin = call.call_id, call.region

    def found(cls: str, why: str) -> Finding:
        return Finding(cid, origin, cls, why)

    crashed = view.crashed_at if view is not None else None
    if view is not None and crashed is None:
        # The first outage that found this call in flight stands in for a crash.
        hit = [t for t in view.outages if call.t_invoke <= t and (call.t_end is None or call.t_end > t - grace_s)]
        crashed = min(hit) if hit else None
    if call.t_end is None and crashed is None:
        return found("in_progress", "no completion in the event log yet")
    if call.t_end is not None and crashed is None and now - call.t_end < grace_s:
        return found("in_progress", f"ended {now - call.t_end:.1f} s ago (grace {grace_s:.0f} s)")
    if view is None:
        return found("missing", f"no records source for region {origin!r}")
    have_cdr = cid in view.visible.cdrs
    rec = view.visible.recordings.get(cid)
    if have_cdr and rec is not None:
        if rec.sha256 != rec.actual_sha256:
            return found("checksum_mismatch", f"stored sha256 {rec.sha256[:12]} != bytes' {rec.actual_sha256[:12]}")
        if rec.duration_s < call.talk_s - TOLERANCE_S:
            return found("incomplete_recording", f"recording {rec.duration_s:.1f} s < talk {call.talk_s:.1f} s")
        return found("ok", "")
    absent = [name for name, ok in (("cdr", have_cdr), ("recording", rec is not None)) if not ok]
    what = " and ".join(absent)
    if view.truth is None:
        return found("missing", f"{what} not visible; origin's committed data unknown")
    committed = [
        name
        for name in absent
        if (name == "cdr" and cid in view.truth.cdrs) or (name == "recording" and cid in view.truth.recordings)
    ]
    if committed:
        return found("committed_not_replicated", f"{' and '.join(committed)} committed at the origin, not visible here")
    if crashed is not None and (call.t_end is None or call.t_end > crashed - grace_s):
        return found("never_committed", f"{what} never committed: call in progress at the crash")
    return found("not_written", f"{what} not in the origin's primary: never written")


@dataclass(frozen=True)
class Report:
    region: str
    since: float | None
    findings: tuple[Finding, ...]
    unexpected: int  # records visible here that no placed call explains (informational)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(f.cls for f in self.findings)
        return {k: c.get(k, 0) for k in CLASSES}

    @property
    def problems(self) -> int:
        return sum(n for k, n in self.counts.items() if k in PROBLEMS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "since": self.since,
            "answered_calls": len(self.findings),
            "counts": self.counts,
            "problems": self.problems,
            "unexpected_records": self.unexpected,
            "records": [f.as_dict() for f in self.findings if f.cls != "ok"],
        }


def reconcile(
    region: str,
    calls: Iterable[PlacedCall],
    views: Mapping[str, OriginView],
    now: float,
    since: float | None = None,
    grace_s: float = GRACE_S,
) -> Report:
    """Classify every answered call (and every call with no completion yet) placed since `since`."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for call in calls:
        if since is not None and call.t_invoke < since:
            continue
        seen.add(call.call_id)
        if call.t_end is not None and not call.answered:
            continue  # never answered: no recording, and its CDR proves nothing
        view = views.get(call.region) if call.region is not None else None
        if call.region is None:  # no completion yet: which region took it is not known
            crashed = [v for v in views.values() if v.crashed_at is not None]
            why = "no completion in the event log" + (" (a region crashed)" if crashed else "")
            findings.append(Finding(call.call_id, None, "never_committed" if crashed else "in_progress", why))
            continue
        findings.append(classify_call(call, view, now, grace_s))
    visible_ids = {cid for v in views.values() for cid in (*v.visible.cdrs, *v.visible.recordings)}
    return Report(region, since, tuple(findings), len(visible_ids - seen))
