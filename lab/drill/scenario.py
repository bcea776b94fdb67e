"""Scenario files (`drills/NAME.yaml`): what a drill does and what it must prove.

A scenario is loaded from YAML with every node's line kept, validated by the models below
(`extra="forbid"` everywhere) and then against the chaos catalog (fault kinds, targets and
parameters). Every problem names the file, the line and the field, and says what is allowed:

    drills/x.yaml:12: method[0].kind: unknown fault 'lossy'; allowed: blackhole, burst_loss, ...

Nothing is started before a scenario is valid. Shape (durations are seconds or `30s`, `2m`):

    name: region-crash            # = the file's stem
    description: ...
    seed: 13                      # the call schedule and any fault jitter replay from it
    warmup_s: 10
    load: {cps: 2.5, hold_s: 6, hold_dist: exp, arrivals: poisson,
           steer: {http: 0.8, sticky: 0.2}, agents_per_region: {region-a: 32, region-b: 32}}
    steady_state: {window_s: 15, new_call_success_min: 0.95, pdd_p95_max_ms: 2000}
    steering: {mode: auto}        # confirm: `operator_approves_after_s` plays the operator
    method:                       # the fault timeline; `at` counts from the end of the steady-state check
      - {kind: kill, target: sbc-a, at: 5s, for: 40s}
      - {kind: loss, target: media-b, at: 10s, for: 20s, pct: 10}   # the fault's own parameters
    abort:                        # hard floors watched live: stop, revert everything, verdict `aborted`
      - {metric: new_call_success, region: region-b, below: 0.5, for_s: 10}
    recovery: {window_s: 10, wait_s: 40}
    slos:
      critical: {rto_max_s: 20, failed_new_calls_max: 12, false_failovers_max: 0}
      supporting: {agent_login_success_min: 0.9}
      records: {rpo_max_records: 5}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from chaos.catalog import FAMILIES, FaultRequest, InvalidFault, ensure_fault_is_valid
from core.errors import BadInput
from lab.drill import sources

#: The verdict SLOs, per tier (the names are a contract: reports, `wobble compare`, dashboards).
SLO_TIERS: dict[str, tuple[str, ...]] = {
    "critical": (
        "rto_max_s",
        "new_call_success_min",
        "failed_new_calls_max",
        "inflight_dropped_max",
        "false_failovers_max",
        "pdd_p95_max_ms",
        "mos_p5_min",
    ),
    "supporting": ("agent_login_success_min", "screen_pop_fallback_max"),
    "records": ("rpo_max_records",),
}
SLO_NAMES: tuple[str, ...] = tuple(n for names in SLO_TIERS.values() for n in names)
STEER_MODES = ("http", "ttl", "sticky")
SteerMode = Literal["http", "ttl", "sticky"]
ABORT_METRICS = ("new_call_success", "failed_new_calls", "harness_failed")
#: A drill's fault timeline and its whole run are kept short: the library must fit a nightly run.
MAX_METHOD_S = 600.0

Path_ = tuple[str | int, ...]


class ScenarioError(BadInput):
    """A scenario that cannot run; the message is one line per problem, `FILE:LINE: FIELD: what`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# ------------------------------------------------------------------------------------------------
# Durations and names
# ------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def seconds(value: Any) -> float:
    """A duration: a number of seconds or `500ms`, `30s`, `2m`; never negative."""
    if isinstance(value, bool):
        raise PydanticCustomError("duration", "a duration is seconds or e.g. 30s, 500ms, 2m (got a boolean)")
    if isinstance(value, int | float):
        if value < 0:
            raise PydanticCustomError("duration", "a duration cannot be negative (got {v})", {"v": value})
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise PydanticCustomError(
            "duration", "'{v}' is not a duration; write seconds or e.g. 30s, 500ms, 2m", {"v": str(value)}
        )
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _regions() -> tuple[str, ...]:
    return tuple(sources.REGIONS)


def _check_region(value: str | None) -> str | None:
    if value is not None and value not in _regions():
        raise PydanticCustomError(
            "unknown_region", "unknown region '{v}'; allowed: {allowed}", {"v": value, "allowed": ", ".join(_regions())}
        )
    return value


class Strict(BaseModel):
    """Unknown keys are refused by name, with the allowed ones listed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    _what: ClassVar[str] = "field"

    @classmethod
    def allowed_keys(cls) -> list[str]:
        return [f.alias or n for n, f in cls.model_fields.items()]

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = cls.allowed_keys()
            unknown = [k for k in data if k not in allowed and k not in cls.model_fields]
            if unknown:
                raise PydanticCustomError(
                    "unknown_field",
                    "unknown {what} '{name}'; allowed: {allowed}",
                    {"what": cls._what, "name": str(unknown[0]), "allowed": ", ".join(allowed)},
                )
        return data


# ------------------------------------------------------------------------------------------------
# The models
# ------------------------------------------------------------------------------------------------


def _http_only() -> dict[SteerMode, float]:
    return {"http": 1.0}


class LoadProfile(Strict):
    #: New calls per second, all steering modes together.
    cps: float = Field(gt=0, le=50)
    #: Mean hold time after the answer, s.
    hold_s: float = Field(default=6.0, gt=0, le=600)
    hold_dist: Literal["exp", "fixed"] = "exp"
    arrivals: Literal["constant", "poisson"] = "poisson"
    #: How callers find the region, as shares of the calls: http (steering per call), ttl (SRV
    #: cached for its TTL), sticky (stale resolvers: SRV kept 300 s whatever its TTL).
    steer: dict[SteerMode, float] = Field(default_factory=_http_only)
    #: Agents expected per region (documentation for now: the fleets are sized in compose.yaml and
    #: the runner does not check or change them yet).
    agents_per_region: dict[str, int] = Field(default_factory=dict)

    @field_validator("steer")
    @classmethod
    def _shares(cls, v: dict[SteerMode, float]) -> dict[SteerMode, float]:
        if not v or any(x < 0 for x in v.values()) or sum(v.values()) <= 0:
            raise PydanticCustomError("steer_mix", "give each steering mode a share >= 0, not all 0, e.g. {http: 1}")
        return v

    @field_validator("agents_per_region")
    @classmethod
    def _agent_regions(cls, v: dict[str, int]) -> dict[str, int]:
        for region, n in v.items():
            _check_region(region)
            if n < 0:
                raise PydanticCustomError(
                    "agents", "agents per region cannot be negative ({r}: {n})", {"r": region, "n": n}
                )
        return v

    def shares(self) -> dict[str, float]:
        """Each mode's share of the calls, summing to 1 (modes with share 0 left out)."""
        total = sum(self.steer.values())
        return {k: v / total for k, v in self.steer.items() if v > 0}


class SteadyState(Strict):
    """Checked over `window_s` of traffic before the first fault and again after recovery."""

    window_s: float = Field(default=15.0, gt=0, le=300)
    new_call_success_min: float = Field(default=0.95, ge=0, le=1)
    pdd_p95_max_ms: float | None = Field(default=None, gt=0)
    mos_p5_min: float | None = Field(default=None, ge=1, le=5)

    @field_validator("window_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return seconds(v)


class SteeringSetup(Strict):
    #: Steering's mode for the drill (restored afterwards); None leaves it as it is.
    mode: Literal["auto", "confirm", "manual"] | None = None
    #: Confirm mode: approve each proposed failover this long after it was proposed (the operator).
    operator_approves_after_s: float | None = Field(default=None, ge=0, le=300)


class RecordsSetup(Strict):
    #: Records replication mode for the drill (lab/records); None leaves it as it is.
    mode: Literal["async", "sync"] | None = None
    #: After the drill, reconcile the calls against this (surviving) region's records: RPO.
    reconcile_region: str | None = None

    @field_validator("reconcile_region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        return _check_region(v)


class FaultStep(Strict):
    """One fault of the timeline: a chaos catalog kind on a target, from `at` for `for`."""

    _what: ClassVar[str] = "field"
    kind: str
    target: str
    at: float = Field(ge=0, le=MAX_METHOD_S)
    for_s: float = Field(alias="for", gt=0, le=MAX_METHOD_S)
    #: A seeded random delay in [0, jitter_s] added to `at` (the same seed: the same timing).
    jitter_s: float = Field(default=0.0, ge=0, le=60)
    #: The fault's own parameters (pct, ms, method, network, how, ...), written beside kind and target.
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _gather_params(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        own = {"kind", "target", "at", "for", "for_s", "jitter_s", "params"}
        out = {k: v for k, v in data.items() if k in own}
        params = dict(out.get("params") or {})
        params.update({k: v for k, v in data.items() if k not in own})
        out["params"] = params
        return out

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in FAMILIES:
            allowed = ", ".join(sorted(FAMILIES))
            msg = "unknown fault '{v}'; allowed: {allowed}"
            raise PydanticCustomError("unknown_fault", msg, {"v": v, "allowed": allowed})
        return v

    @field_validator("at", "for_s", "jitter_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return seconds(v)

    @property
    def end(self) -> float:
        return self.at + self.for_s


class AbortCondition(Strict):
    """A hard floor watched live over the last `for_s` seconds of settled calls."""

    metric: Literal["new_call_success", "failed_new_calls", "harness_failed"]
    #: Only calls sent to this region (steering's answer or the first SRV target); None: all calls.
    region: str | None = None
    below: float | None = None
    above: float | None = None
    for_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        return _check_region(v)

    @field_validator("for_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return seconds(v)

    @model_validator(mode="after")
    def _one_bound(self) -> AbortCondition:
        if (self.below is None) == (self.above is None):
            raise PydanticCustomError("abort_bound", "give exactly one of below or above")
        if self.metric == "new_call_success" and self.below is None:
            raise PydanticCustomError("abort_bound", "new_call_success aborts when it falls below a ratio: use below")
        return self

    def describe(self) -> str:
        where = f" in {self.region}" if self.region else ""
        bound = f"below {self.below:g}" if self.below is not None else f"above {self.above:g}"
        return f"{self.metric}{where} {bound} for {self.for_s:g} s"


class Recovery(Strict):
    #: W: RTO ends at the start of the first window of W s whose new-call success is >= the ratio.
    window_s: float = Field(default=10.0, gt=0, le=120)
    #: The ratio (default: the critical tier's new_call_success_min, else the steady state's).
    success_min: float | None = Field(default=None, ge=0, le=1)
    #: After the last fault is reverted, wait at most this long for the steady state to return.
    wait_s: float = Field(default=40.0, ge=0, le=300)
    #: Calls placed this long after a fault's end still count as "in the fault window".
    grace_s: float = Field(default=10.0, ge=0, le=120)

    @field_validator("window_s", "wait_s", "grace_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return seconds(v)


class CriticalSlos(Strict):
    _what: ClassVar[str] = "SLO"
    rto_max_s: float | None = Field(default=None, ge=0)
    new_call_success_min: float | None = Field(default=None, ge=0, le=1)
    failed_new_calls_max: int | None = Field(default=None, ge=0)
    inflight_dropped_max: int | None = Field(default=None, ge=0)
    false_failovers_max: int | None = Field(default=None, ge=0)
    pdd_p95_max_ms: float | None = Field(default=None, gt=0)
    mos_p5_min: float | None = Field(default=None, ge=1, le=5)


class SupportingSlos(Strict):
    _what: ClassVar[str] = "SLO"
    agent_login_success_min: float | None = Field(default=None, ge=0, le=1)
    screen_pop_fallback_max: float | None = Field(default=None, ge=0, le=1)


class RecordsSlos(Strict):
    _what: ClassVar[str] = "SLO"
    rpo_max_records: int | None = Field(default=None, ge=0)


class Slos(Strict):
    _what: ClassVar[str] = "tier"
    critical: CriticalSlos = Field(default_factory=CriticalSlos)
    supporting: SupportingSlos = Field(default_factory=SupportingSlos)
    records: RecordsSlos = Field(default_factory=RecordsSlos)

    def items(self) -> list[tuple[str, str, float]]:
        """(tier, name, limit) of every SLO the scenario sets, in the contract's order."""
        out: list[tuple[str, str, float]] = []
        for tier, names in SLO_TIERS.items():
            model = getattr(self, tier)
            for name in names:
                limit = getattr(model, name)
                if limit is not None:
                    out.append((tier, name, float(limit)))
        return out


class Scenario(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    seed: int
    warmup_s: float = Field(default=10.0, ge=0, le=300)
    load: LoadProfile
    steady_state: SteadyState = Field(default_factory=SteadyState)
    steering: SteeringSetup = Field(default_factory=SteeringSetup)
    records: RecordsSetup = Field(default_factory=RecordsSetup)
    method: list[FaultStep] = Field(min_length=1)
    abort: list[AbortCondition] = Field(default_factory=list)
    recovery: Recovery = Field(default_factory=Recovery)
    slos: Slos = Field(default_factory=Slos)

    @field_validator("warmup_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return seconds(v)

    @property
    def method_span_s(self) -> float:
        """From the first fault's `at` (0) to the last fault's planned end, jitter included."""
        return max(s.end + s.jitter_s for s in self.method)

    @property
    def recovery_ratio(self) -> float:
        if self.recovery.success_min is not None:
            return self.recovery.success_min
        if self.slos.critical.new_call_success_min is not None:
            return self.slos.critical.new_call_success_min
        return self.steady_state.new_call_success_min

    def planned_s(self, settle_s: float = 0.0) -> float:
        """The longest the traffic may have to run: warm-up, the checks, the method, the recovery."""
        ss = self.steady_state.window_s + settle_s
        return self.warmup_s + ss + self.method_span_s + self.recovery.wait_s + ss


# ------------------------------------------------------------------------------------------------
# Loading, with lines
# ------------------------------------------------------------------------------------------------


def _line_map(node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[tuple[int, str]]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                problems.append((key.start_mark.line + 1, f"{fmt_path((*path, name))}: given twice; keep one"))
            seen.add(name)
            lines[(*path, name)] = key.start_mark.line + 1
            _line_map(value, (*path, name), lines, problems)
            lines[(*path, name)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), lines, problems)


def fmt_path(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top)"


def _line_of(lines: Mapping[Path_, int], path: Path_) -> int:
    """The line of the deepest node of `path` that the file has (a missing key: its parent's)."""
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        if "params" in p:  # fault parameters are written beside kind and target
            q = tuple(x for x in p if x != "params")
            if q in lines:
                return lines[q]
        p = p[:-1]
    return lines.get((), 1)


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    """pydantic's loc without its validator tags (`function-after[...]`, `[key]`)."""
    return tuple(x for x in loc if isinstance(x, int) or not (str(x).startswith("function-") or x == "[key]"))


def _pydantic_problems(exc: ValidationError) -> list[tuple[Path_, str]]:
    out: list[tuple[Path_, str]] = []
    for err in exc.errors():
        loc = _clean_loc(tuple(err.get("loc", ())))
        msg = str(err.get("msg", ""))
        ctx = err.get("ctx") or {}
        if err.get("type") == "unknown_field":
            loc = (*loc, str(ctx.get("name")))
        elif err.get("type") == "missing":
            msg = f"required; give {fmt_path(loc[-1:])}"
        elif err.get("type") == "literal_error":
            msg = f"{err.get('input')!r} is not allowed; allowed: {ctx.get('expected', '')}"
        elif err.get("type") == "extra_forbidden":
            msg = "unknown field"
        msg = msg.removeprefix("Value error, ")
        out.append((loc, msg))
    return out


def _fault_problem(step: FaultStep, exc: InvalidFault) -> tuple[str, str]:
    """Which field of the step a catalog error is about: the target, a named parameter, or the step."""
    msg = str(exc)
    if "target" in msg:
        return "target", msg
    for name in step.params:
        if re.search(rf"\b{re.escape(name)}\b", msg):
            return name, msg
    return "params" if step.params else "kind", msg


def ensure_scenario_is_valid(scn: Scenario, lines: Mapping[Path_, int] | None = None) -> list[tuple[Path_, str]]:
    """What the models cannot check alone: each fault against the chaos catalog and the lab's
    services, SLOs that need a measurement the scenario provides. Returns (path, problem) pairs."""
    problems: list[tuple[Path_, str]] = []
    services = sources.lab_services()
    for i, step in enumerate(scn.method):
        req = FaultRequest(kind=step.kind, target=step.target, duration_s=step.for_s, params=dict(step.params))
        try:
            ensure_fault_is_valid(req, services)
        except InvalidFault as exc:
            field, msg = _fault_problem(step, exc)
            problems.append((("method", i, field), msg))
    if scn.slos.records.rpo_max_records is not None and scn.records.reconcile_region is None:
        need = "needs records.reconcile_region (the surviving region to reconcile)"
        problems.append((("slos", "records", "rpo_max_records"), need))
    if scn.steering.operator_approves_after_s is not None and scn.steering.mode != "confirm":
        problems.append((("steering", "operator_approves_after_s"), "only applies with steering.mode: confirm"))
    return problems


def parse(text: str, source: str = "scenario") -> Scenario:
    """A Scenario from YAML text; ScenarioError (every problem as `SOURCE:LINE: FIELD: what`) otherwise."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        what = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{source}:{line}: not valid YAML: {what}"]) from None
    if node is None:
        raise ScenarioError([f"{source}:1: empty file; a scenario needs name, description, seed, load, method"])
    lines: dict[Path_, int] = {}
    dupes: list[tuple[int, str]] = []
    _line_map(node, (), lines, dupes)
    if dupes:
        raise ScenarioError([f"{source}:{line}: {msg}" for line, msg in dupes])
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        what = type(data).__name__
        raise ScenarioError([f"{source}:1: a scenario is a mapping (name: ..., method: ...), not {what}"])
    try:
        scn = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            [f"{source}:{_line_of(lines, loc)}: {fmt_path(loc)}: {msg}" for loc, msg in _pydantic_problems(exc)]
        ) from None
    problems = ensure_scenario_is_valid(scn, lines)
    if problems:
        raise ScenarioError([f"{source}:{_line_of(lines, loc)}: {fmt_path(loc)}: {msg}" for loc, msg in problems])
    return scn


def load(path: Path) -> Scenario:
    """Load and validate one scenario file; its `name` must be its file's stem."""
    shown = _shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{shown}: cannot read: {exc.strerror or exc}"]) from None
    scn = parse(text, shown)
    if scn.name != path.stem:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        lines: dict[Path_, int] = {}
        if node is not None:
            _line_map(node, (), lines, [])
        raise ScenarioError(
            [
                f"{shown}:{_line_of(lines, ('name',))}: name: {scn.name!r} must be the file's name "
                f"{path.stem!r} (drills are run by name)"
            ]
        )
    return scn


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def resolve(name_or_file: str, drills_dir: Path | None = None) -> Path:
    """FILE as given, or NAME -> drills/NAME.yaml; BadInput naming the known scenarios otherwise."""
    where = drills_dir or sources.DRILLS
    given = Path(name_or_file)
    if given.suffix in (".yaml", ".yml") or "/" in name_or_file:
        if not given.exists():
            raise BadInput(f"no scenario file {name_or_file}")
        return given
    candidate = where / f"{name_or_file}.yaml"
    if candidate.exists():
        return candidate
    known = ", ".join(p.stem for p in library(where)) or "none"
    raise BadInput(f"unknown scenario {name_or_file!r}; known: {known} (or give a file path)")


def library(drills_dir: Path | None = None) -> list[Path]:
    """Every scenario file of the library, by name."""
    return sorted((drills_dir or sources.DRILLS).glob("*.yaml"))
