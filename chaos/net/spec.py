"""What a network fault is: one pydantic model, checked before anything touches the kernel.

Pure (no I/O). `NetFault.model_validate(...)` raises pydantic's ValidationError (a ValueError)
whose first error's message names the field and the fix; `parse_net_fault(...)` raises
`InvalidNetFault` (also a ValueError) with that same message, for callers that want one line.

Percentages are percents (0..100), times are milliseconds, rates kbit/s. The Gilbert-Elliott
parameters follow netem's `loss gemodel p r 1-h 1-k`: p = P(good -> bad), r = P(bad -> good),
h = P(delivered | bad) (default 0: the bad state loses everything), k = P(delivered | good)
(default 100: the good state loses nothing). All four are percents.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from core.errors import first_problem

Direction = Literal["egress", "ingress", "both"]
Match = Literal["all", "sip", "media"]
Method = Literal["INVITE", "OPTIONS", "REGISTER"]


class NetKind(StrEnum):
    """The network fault kinds: the one list (the catalog, this spec and the backends' rules use it)."""

    DELAY = "delay"
    LOSS = "loss"
    BURST_LOSS = "burst_loss"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    RATE = "rate"
    BLACKHOLE = "blackhole"
    SIP_DROP = "sip_drop"
    SIP_DELAY = "sip_delay"


KINDS: tuple[str, ...] = tuple(NetKind)
METHODS: tuple[str, ...] = ("INVITE", "OPTIONS", "REGISTER")
SIP_PORT = 5060
#: rtpengine's RTP range in the lab; pjsua's ranges are passed as `media_ports`.
DEFAULT_MEDIA_PORTS = (30000, 40000)
MAX_MS = 60_000.0
MAX_KBIT = 10_000_000.0
#: reorder: how long the packets that are *not* sent ahead wait, unless `ms` is given.
DEFAULT_REORDER_MS = 20.0

#: The parameters each kind takes besides direction/match/media_ports; the first tuple is required.
_PARAMS: dict[NetKind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    NetKind.DELAY: (("ms",), ("jitter_ms",)),
    NetKind.LOSS: (("pct",), ()),
    NetKind.BURST_LOSS: (("p", "r"), ("h", "k")),
    NetKind.DUPLICATE: (("pct",), ()),
    NetKind.REORDER: (("pct",), ("ms",)),
    NetKind.RATE: (("kbit",), ()),
    NetKind.BLACKHOLE: ((), ()),
    NetKind.SIP_DROP: (("method",), ("pct",)),
    NetKind.SIP_DELAY: (("method", "ms"), ("jitter_ms", "pct")),
}
_COMMON = ("direction", "match", "media_ports")
_EXAMPLE = {
    "ms": "--ms 200",
    "jitter_ms": "--jitter 30",
    "pct": "--pct 10",
    "kbit": "--kbit 64",
    "p": "--param p=5",
    "r": "--param r=50",
    "h": "--param h=0",
    "k": "--param k=100",
    "method": "--method INVITE",
}


class InvalidNetFault(ValueError):
    """A network fault that cannot be applied; the message names the field and the fix."""


class NetFault(BaseModel):
    """One network impairment inside one network namespace."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: NetKind
    direction: Direction = "egress"
    match: Match = "all"
    media_ports: tuple[int, int] = DEFAULT_MEDIA_PORTS
    pct: float | None = None
    ms: float | None = None
    jitter_ms: float = Field(default=0.0, validation_alias=AliasChoices("jitter_ms", "jitter"))
    kbit: float | None = None
    p: float | None = None
    r: float | None = None
    h: float = 0.0
    k: float = 100.0
    method: Method | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _method_upper(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip().upper()
            if v not in METHODS:
                raise PydanticCustomError("sip_method", "unknown SIP method; use --method INVITE, OPTIONS or REGISTER")
        return v

    @field_validator("media_ports", mode="before")
    @classmethod
    def _ports_text(cls, v: Any) -> Any:
        """`30000-40000` or `30000:40000` (a CLI `--param`) as well as a pair."""
        if isinstance(v, str):
            m = re.fullmatch(r"\s*(\d+)\s*[-:,]\s*(\d+)\s*", v)
            if not m:
                raise PydanticCustomError("port_range", "media_ports must be LOW-HIGH, e.g. media_ports=30000-40000")
            return (int(m.group(1)), int(m.group(2)))
        return v

    @model_validator(mode="after")
    def _semantics(self) -> NetFault:
        try:
            ensure_net_fault_is_valid(self)
        except InvalidNetFault as exc:
            # A custom error keeps our message as is (no "Value error, " prefix); no braces in it.
            raise PydanticCustomError("invalid_net_fault", str(exc).replace("{", "(").replace("}", ")")) from None
        return self

    # ---- derived values the backends use ------------------------------------------------------

    @property
    def directions(self) -> tuple[str, ...]:
        return ("egress", "ingress") if self.direction == "both" else (self.direction,)

    @property
    def effective_match(self) -> str:
        """SIP faults only ever look at SIP traffic."""
        return "sip" if self.kind in (NetKind.SIP_DROP, NetKind.SIP_DELAY) else self.match

    @property
    def effective_ms(self) -> float:
        if self.kind == NetKind.REORDER and self.ms is None:
            return DEFAULT_REORDER_MS
        return self.ms or 0.0

    @property
    def effective_pct(self) -> float:
        """The share of matched packets the fault acts on (sip faults: all of that method by default)."""
        if self.pct is None:
            return 100.0
        return self.pct


def _given(fault: NetFault) -> set[str]:
    """Fields set to something other than their default (a dumped-and-reloaded fault carries them all)."""
    fields = NetFault.model_fields
    return {name for name in fault.model_fields_set - {"kind"} if getattr(fault, name) != fields[name].default}


def ensure_net_fault_is_valid(fault: NetFault) -> None:
    """Raise InvalidNetFault (naming the field and the fix) unless the fault can be applied."""
    kind = fault.kind
    required, optional = _PARAMS[kind]
    given = _given(fault)
    unknown = sorted(given - set(required) - set(optional) - set(_COMMON))
    if unknown:
        takes = ", ".join((*required, *optional, *_COMMON))
        raise InvalidNetFault(f"{kind} does not take {', '.join(unknown)}; it takes {takes}")
    for name in required:
        if getattr(fault, name) is None:
            raise InvalidNetFault(f"{name} is required for {kind}; give it, e.g. {_EXAMPLE[name]}")
    for name in ("pct", "p", "r", "h", "k"):
        value = getattr(fault, name)
        if value is not None and not 0 <= value <= 100:
            raise InvalidNetFault(f"{name}={value:g} is outside 0..100; give a percentage, e.g. {_EXAMPLE[name]}")
    for name in ("ms", "jitter_ms"):
        value = getattr(fault, name)
        if value is not None and value < 0:
            raise InvalidNetFault(f"{name}={value:g} is negative; give milliseconds >= 0, e.g. {_EXAMPLE[name]}")
        if value is not None and value > MAX_MS:
            raise InvalidNetFault(f"{name}={value:g} is over {MAX_MS:g} ms; a network fault delays at most a minute")
    if fault.kbit is not None and not 0 < fault.kbit <= MAX_KBIT:
        raise InvalidNetFault(f"kbit={fault.kbit:g} must be above 0 and at most {MAX_KBIT:g}, e.g. --kbit 64")
    if kind == NetKind.BURST_LOSS and fault.r == 0:
        raise InvalidNetFault("r=0 never leaves the bad state (all traffic lost); give r > 0, or use blackhole")
    lo, hi = fault.media_ports
    if not 1 <= lo <= hi <= 65535:
        raise InvalidNetFault(
            f"media_ports=({lo}, {hi}) is not a port range; give LOW-HIGH with 1 <= LOW <= HIGH <= 65535"
        )
    if "media_ports" in given and fault.match != "media":
        raise InvalidNetFault("media_ports only applies with match=media; add --match media or drop media_ports")
    if kind in (NetKind.SIP_DROP, NetKind.SIP_DELAY) and fault.match not in ("all", "sip"):
        raise InvalidNetFault(f"{kind} always matches SIP (UDP port {SIP_PORT}); drop --match {fault.match}")


def parse_net_fault(data: dict[str, Any]) -> NetFault:
    """A NetFault from a dict (e.g. `--spec` JSON), or InvalidNetFault with one readable line."""
    try:
        return NetFault.model_validate(data)
    except ValidationError as exc:
        raise InvalidNetFault(first_problem(exc, top="")) from None
