"""From a NetFault to the exact commands that apply it and revert it. Pure: no I/O here.

A `Plan` holds argv lists (nft, iptables-restore/iptables, tc, ip), run in order by the warden.
Every object a fault owns is named after its id, so several faults coexist in one namespace and a
revert (or `cleanup --id`) removes exactly one fault's objects; shared objects are removed only
once empty (a `Cmd.when` condition the warden evaluates right before the command).

Backends (chosen by `chaos.net.probe`):
- `nft`: table `netdev wobble_chaos`, one base chain per fault, direction and interface on the
  netdev `egress`/`ingress` hooks. netdev hooks, not `inet` postrouting: a drop at inet
  output/postrouting makes the sender's `sendto()` fail with EPERM, which a real network never
  does (a SIP stack would fail the transaction at once instead of retransmitting). A drop at the
  netdev egress hook is silent, like a lossy link.
- `nfqueue`: iptables (mangle) chain `WOBBLE_<id>_E|I` jumped to from POSTROUTING/PREROUTING,
  sending matched packets to NFQUEUE `--queue-bypass` (traffic flows if the delay line is gone);
  the warden's delay line (`chaos.net.delayline`) decides each packet's fate. IPv4 only.
- `htb`: rate limiting: an htb root (handle b0b:, no default class, so unclassified traffic is
  not shaped) with one class per fault and u32 filters steering matched packets into it; ingress
  through an ifb device per interface (the interface's ingress redirects UDP to it).
- `netem`: where the kernel has sch_netem, the same htb tree with a netem leaf per fault.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from chaos.net.delayline import MARK_MASK, DelayParams, GilbertElliott
from chaos.net.spec import SIP_PORT, NetFault, NetKind

TABLE_FAMILY = "netdev"
TABLE = "wobble_chaos"
HTB_MAJOR = "b0b"
IFB_PREFIX = "wbi"
#: The throwaway ifb device of chaos.net.probe.
PROBE_PREFIX = "wbp"
#: Priority of the shared ingress -> ifb redirect filter (never a fault's own priority).
REDIRECT_PREF = 0xB0B
NFT_MISSING = ("No such file or directory",)
IPT_MISSING = ("does not exist", "Bad rule", "No chain/target/match by that name")
TC_MISSING = (
    "not found",
    "No such file or directory",
    "Cannot find device",
    "does not exist",
    "Invalid handle",
    "Cannot find specified filter chain",
    "Cannot delete qdisc with handle of zero",
    "Parent Qdisc doesn't exist",
)

BACKENDS: dict[str, tuple[str, ...]] = {
    NetKind.DELAY: ("netem", "nfqueue"),
    NetKind.LOSS: ("netem", "nft", "nfqueue"),
    NetKind.BURST_LOSS: ("netem", "nfqueue"),
    NetKind.DUPLICATE: ("netem", "nfqueue"),
    NetKind.REORDER: ("netem", "nfqueue"),
    NetKind.RATE: ("htb",),
    NetKind.BLACKHOLE: ("nft", "netem", "nfqueue"),
    NetKind.SIP_DROP: ("nft", "nfqueue"),
    NetKind.SIP_DELAY: ("nfqueue",),
}

_ID = re.compile(r"^[A-Za-z0-9]{1,16}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.@:+-]{1,15}$")


class PlanError(ValueError):
    """The fault cannot be planned with these inputs (backend, interfaces, id)."""


@dataclass(frozen=True)
class Check:
    """Run `argv`; the condition holds when `pattern` is (present=True) or is not found in its stdout.

    A command that fails counts as empty output (a missing table has no chains)."""

    argv: tuple[str, ...]
    pattern: str
    present: bool

    def holds(self, output: str) -> bool:
        return (re.search(self.pattern, output, re.MULTILINE) is not None) == self.present


@dataclass(frozen=True)
class Cmd:
    argv: tuple[str, ...]
    what: str
    stdin: str | None = None
    #: Run only when every check holds (skip otherwise).
    when: tuple[Check, ...] = ()
    #: Error output fragments that mean "already so" (reverts are idempotent).
    ok_errors: tuple[str, ...] = ()

    def shell(self) -> str:
        """A readable one-liner for messages and logs."""
        text = " ".join(a if re.fullmatch(r"[\w@%+=:,./-]+", a) else repr(a) for a in self.argv)
        if self.stdin:
            text += " <<< " + "; ".join(line.strip() for line in self.stdin.strip().splitlines())
        return text


@dataclass(frozen=True)
class QueueSpec:
    """An NFQUEUE the warden binds (before the rules go in) and serves with a delay line."""

    num: int
    params: DelayParams
    #: The delay line needs packet bytes (to send duplicate copies); otherwise metadata only.
    copy_packet: bool
    #: The fault's own mark bit: set on every packet it has handled, which its rules then skip.
    mark_bit: int


@dataclass(frozen=True)
class Plan:
    fault_id: str
    kind: str
    backend: str
    apply: tuple[Cmd, ...]
    revert: tuple[Cmd, ...]
    queue: QueueSpec | None = None
    notes: tuple[str, ...] = field(default=())


# ---- numbering and naming -------------------------------------------------------------------


def _hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def tc_minor(fault_id: str) -> int:
    """The fault's htb class minor and u32 filter priority (0x100..0xfeff, never 0xb0b)."""
    n = 0x100 + _hash(fault_id) % (0xFEFF - 0x100 + 1)
    return n + 1 if n == REDIRECT_PREF else n


def mark_bit(fault_id: str, in_use: set[int] | frozenset[int] = frozenset()) -> int:
    """The fault's NFQUEUE mark bit (one of the 16 in MARK_MASK): its own by hash, else the next free."""
    bits = [1 << n for n in range(32) if MARK_MASK & (1 << n)]
    first = _hash(fault_id) % len(bits)
    for i in range(len(bits)):
        bit = bits[(first + i) % len(bits)]
        if bit not in in_use:
            return bit
    raise PlanError(f"all {len(bits)} NFQUEUE mark bits are taken: at most {len(bits)} queue faults at once here")


def mark_bits_in_use(ipt_save: str) -> set[int]:
    """The mark bits that live NFQUEUE faults' rules (in `iptables-save -t mangle`) skip on."""
    used = set()
    for line in ipt_save.splitlines():
        if line.startswith("-A WOBBLE_"):
            for value, mask in re.findall(r"--mark (0x[0-9a-fA-F]+)/(0x[0-9a-fA-F]+)", line):
                if int(value, 16) == int(mask, 16):
                    used.add(int(mask, 16))
    return used


def default_queue_num(fault_id: str) -> int:
    """The first NFQUEUE number the warden tries for a fault (it moves on if taken)."""
    return 1000 + _hash(fault_id) % 60000


def ifb_name(interface: str) -> str:
    """The ifb device that carries an interface's ingress traffic (<= 15 chars)."""
    return IFB_PREFIX + hashlib.sha256(interface.encode()).hexdigest()[:8]


def ipt_chain(fault_id: str, direction: str) -> str:
    return f"WOBBLE_{fault_id}_{'E' if direction == 'egress' else 'I'}"


def nft_chain(fault_id: str, suffix: str) -> str:
    return f"f_{fault_id}_{suffix}"


def comment(fault_id: str) -> str:
    return f"wobble:{fault_id}"


def check_id(fault_id: str) -> None:
    if not _ID.match(fault_id):
        raise PlanError(f"fault id {fault_id!r} must be 1-16 letters or digits (it names chains and tables)")


def _check_interfaces(interfaces: list[str] | tuple[str, ...]) -> None:
    if not interfaces:
        raise PlanError("no network interface to impair (only lo in this namespace?)")
    for name in interfaces:
        if not _IFNAME.match(name) or name == "lo":
            raise PlanError(f"interface name {name!r} cannot be used (lo, or not a plain device name)")


# ---- port ranges ------------------------------------------------------------------------------


def port_range_masks(lo: int, hi: int) -> list[tuple[int, int]]:
    """Cover [lo, hi] exactly with (value, mask) pairs for 16-bit masked matches (u32)."""
    if not 0 <= lo <= hi <= 0xFFFF:
        raise PlanError(f"port range {lo}-{hi} is not within 0..65535")
    out: list[tuple[int, int]] = []
    start = lo
    while start <= hi:
        size = 1
        # The largest aligned power-of-two block starting at `start` that fits in the range.
        while size < 0x10000 and start % (size * 2) == 0 and start + size * 2 - 1 <= hi:
            size *= 2
        out.append((start, 0xFFFF & ~(size - 1)))
        start += size
    return out


def _ports_text(lo: int, hi: int, sep: str) -> str:
    return str(lo) if lo == hi else f"{lo}{sep}{hi}"


def _num(x: float) -> str:
    return f"{x:g}"


# ---- payload (SIP method) matches ----------------------------------------------------------


def method_bytes(method: str) -> bytes:
    """What a SIP request of that method starts with: the method and a space."""
    return method.encode("ascii") + b" "


def nft_method_match(method: str) -> str:
    """Raw payload match on the first bytes after the UDP header (transport header + 64 bits)."""
    data = method_bytes(method)
    return f"@th,64,{len(data) * 8} 0x{data.hex()}"


def u32_method_match(method: str) -> str:
    """iptables u32 expression: the UDP payload (after any IP options) starts with the method."""
    data = method_bytes(method)
    tests = []
    for off in range(0, len(data), 4):
        chunk = data[off : off + 4]
        shift = 8 * (4 - len(chunk))
        expr = f"0>>22&0x3C@{8 + off}"
        if shift:
            expr += f">>{shift}"
        tests.append(f"{expr}=0x{chunk.hex()}")
    return "&&".join(tests)


# ---- the plan -------------------------------------------------------------------------------


def delay_params(fault: NetFault) -> DelayParams:
    """What the userspace delay line does with each queued packet of this fault."""
    kind = fault.kind
    if kind == NetKind.DELAY:
        return DelayParams(delay_ms=fault.effective_ms, jitter_ms=fault.jitter_ms)
    if kind == NetKind.LOSS:
        return DelayParams(loss_pct=fault.effective_pct)
    if kind == NetKind.BLACKHOLE:
        return DelayParams(loss_pct=100.0)
    if kind == NetKind.SIP_DROP:
        return DelayParams(loss_pct=fault.effective_pct)
    if kind == NetKind.BURST_LOSS:
        assert fault.p is not None and fault.r is not None  # the spec requires them
        return DelayParams(ge=GilbertElliott(p=fault.p, r=fault.r, h=fault.h, k=fault.k))
    if kind == NetKind.DUPLICATE:
        return DelayParams(dup_pct=fault.effective_pct)
    if kind == NetKind.REORDER:
        return DelayParams(delay_ms=fault.effective_ms, immediate_pct=fault.effective_pct)
    if kind == NetKind.SIP_DELAY:
        return DelayParams(
            delay_ms=fault.effective_ms, jitter_ms=fault.jitter_ms, immediate_pct=100.0 - fault.effective_pct
        )
    raise PlanError(f"{kind} has no delay-line form")


def plan(
    fault: NetFault,
    interfaces: list[str] | tuple[str, ...],
    fault_id: str,
    backend: str,
    queue_num: int | None = None,
    mark: int | None = None,
) -> Plan:
    """The commands that apply `fault` on `interfaces` with `backend`, and those that revert it.

    nfqueue only: `queue_num` (default: from the id) and `mark`, the fault's mark bit (default: from
    the id; the warden passes one no live fault uses)."""
    check_id(fault_id)
    _check_interfaces(interfaces)
    allowed = BACKENDS[fault.kind]
    if backend not in allowed:
        raise PlanError(f"{fault.kind} cannot run on backend {backend!r}; it runs on {', '.join(allowed)}")
    ifaces = tuple(interfaces)
    if backend == "nft":
        apply, revert = _nft(fault, ifaces, fault_id)
        return Plan(fault_id, fault.kind, backend, apply, revert)
    if backend == "nfqueue":
        num = default_queue_num(fault_id) if queue_num is None else queue_num
        if not 0 <= num <= 0xFFFF:
            raise PlanError(f"queue number {num} is outside 0..65535")
        bit = mark_bit(fault_id) if mark is None else mark
        if bit & ~MARK_MASK or bit.bit_count() != 1:
            raise PlanError(f"mark {bit:#x} is not one bit of {MARK_MASK:#x}")
        params = delay_params(fault)
        apply, revert = _nfqueue(fault, ifaces, fault_id, num, bit)
        return Plan(fault_id, fault.kind, backend, apply, revert, QueueSpec(num, params, params.dup_pct > 0, bit))
    apply, revert = _tc(fault, ifaces, fault_id, backend)
    notes: tuple[str, ...] = ()
    if fault.kind == NetKind.RATE and "ingress" in fault.directions:
        notes = ("ingress rate is shaped on an ifb device the interface's ingress redirects UDP to",)
    return Plan(fault_id, fault.kind, backend, apply, revert, notes=notes)


# ---- nft (netdev family) --------------------------------------------------------------------


def _nft_matches(fault: NetFault) -> list[str]:
    """Each alternative is its own rule that `goto`s the action chain (so none acts twice)."""
    match = fault.effective_match
    if match == "all":
        return ["meta l4proto udp"]
    if match == "sip":
        return [f"udp sport {SIP_PORT}", f"udp dport {SIP_PORT}"]
    lo, hi = fault.media_ports
    ports = _ports_text(lo, hi, "-")
    return [f"udp sport {ports}", f"udp dport {ports}"]


def _nft_action(fault: NetFault) -> str:
    kind = fault.kind
    if kind == NetKind.BLACKHOLE:
        return "drop"
    pct = fault.effective_pct
    chance = "" if pct >= 100 else f"numgen random mod 1000 < {round(pct * 10)} "
    if kind == NetKind.LOSS:
        return f"{chance}drop"
    if kind == NetKind.SIP_DROP:
        assert fault.method is not None
        return f"{nft_method_match(fault.method)} {chance}drop"
    raise PlanError(f"{kind} has no nft form")


def _nft(fault: NetFault, ifaces: tuple[str, ...], fid: str) -> tuple[tuple[Cmd, ...], tuple[Cmd, ...]]:
    t = f"{TABLE_FAMILY} {TABLE}"
    tag = f'comment "{comment(fid)}"'
    act = nft_chain(fid, "act")
    lines = [f"add table {t}", f"add chain {t} {act}", f"add rule {t} {act} {_nft_action(fault)} {tag}"]
    base: list[str] = []
    for direction in fault.directions:
        hook = "egress" if direction == "egress" else "ingress"
        for i, dev in enumerate(ifaces):
            chain = nft_chain(fid, f"{hook[0]}{i}")
            base.append(chain)
            lines.append(
                f'add chain {t} {chain} {{ type filter hook {hook} device "{dev}" priority 0; policy accept; }}'
            )
            lines += [f"add rule {t} {chain} {m} goto {act} {tag}" for m in _nft_matches(fault)]
    apply = (Cmd(("nft", "-f", "-"), f"nft: {fault.kind} chains of {fid}", stdin="\n".join(lines) + "\n"),)
    revert = _nft_revert(fid, [*base, act])
    return apply, revert


def _nft_revert(fid: str, chains: list[str]) -> tuple[Cmd, ...]:
    t = f"{TABLE_FAMILY} {TABLE}"
    cmds = [
        Cmd(
            ("nft", "-f", "-"),
            f"nft: delete chain {c}",
            stdin=f"flush chain {t} {c}\ndelete chain {t} {c}\n",
            ok_errors=NFT_MISSING,
        )
        for c in chains
    ]
    cmds.append(nft_table_gc(TABLE_FAMILY))
    return tuple(cmds)


def nft_table_gc(family: str) -> Cmd:
    """Delete the table once no chain is left in it."""
    return Cmd(
        ("nft", "delete", "table", family, TABLE),
        f"nft: delete table {family} {TABLE} (empty)",
        when=(Check(("nft", "list", "table", family, TABLE), r"^\s*chain ", False),),
        ok_errors=NFT_MISSING,
    )


# ---- iptables NFQUEUE ------------------------------------------------------------------------


def _ipt_match(fault: NetFault, bit: int) -> list[str]:
    args = ["-p", "udp"]
    match = fault.effective_match
    if match == "sip":
        args += ["-m", "multiport", "--ports", str(SIP_PORT)]
    elif match == "media":
        lo, hi = fault.media_ports
        args += ["-m", "multiport", "--ports", _ports_text(lo, hi, ":")]
    args += ["-m", "mark", "!", "--mark", f"{bit:#x}/{bit:#x}"]  # not yet handled by this fault
    if fault.kind in (NetKind.SIP_DROP, NetKind.SIP_DELAY):
        assert fault.method is not None
        args += ["-m", "u32", "--u32", f'"{u32_method_match(fault.method)}"']
    return args


def _nfqueue(
    fault: NetFault, ifaces: tuple[str, ...], fid: str, num: int, bit: int
) -> tuple[tuple[Cmd, ...], tuple[Cmd, ...]]:
    lines = ["*mangle"]
    jumps: list[tuple[str, str]] = []
    for direction in fault.directions:
        chain = ipt_chain(fid, direction)
        builtin = "POSTROUTING" if direction == "egress" else "PREROUTING"
        io = "-o" if direction == "egress" else "-i"
        lines.append(f":{chain} - [0:0]")
        for dev in ifaces:
            rule = [io, dev, *_ipt_match(fault, bit), "-m", "comment", "--comment", comment(fid)]
            rule += ["-j", "NFQUEUE", "--queue-num", str(num), "--queue-bypass"]
            lines.append(f"-A {chain} " + " ".join(rule))
        lines.append(f"-A {builtin} -m comment --comment {comment(fid)} -j {chain}")
        jumps.append((builtin, chain))
    lines.append("COMMIT")
    apply = (
        Cmd(
            ("iptables-restore", "-w", "-n"), f"iptables: NFQUEUE {num} chains of {fid}", stdin="\n".join(lines) + "\n"
        ),
    )
    revert: list[Cmd] = []
    for builtin, chain in jumps:
        revert.append(
            Cmd(
                (
                    "iptables",
                    "-w",
                    "-t",
                    "mangle",
                    "-D",
                    builtin,
                    "-m",
                    "comment",
                    "--comment",
                    comment(fid),
                    "-j",
                    chain,
                ),
                f"iptables: jump {builtin} -> {chain}",
                ok_errors=IPT_MISSING,
            )
        )
        revert += ipt_chain_delete(chain)
    return apply, tuple(revert)


def ipt_chain_delete(chain: str) -> list[Cmd]:
    return [
        Cmd(("iptables", "-w", "-t", "mangle", "-F", chain), f"iptables: flush {chain}", ok_errors=IPT_MISSING),
        Cmd(("iptables", "-w", "-t", "mangle", "-X", chain), f"iptables: delete {chain}", ok_errors=IPT_MISSING),
    ]


# ---- tc (htb tree; netem or bfifo leaves) --------------------------------------------------


def _u32_selectors(fault: NetFault) -> list[list[str]]:
    udp = ["match", "ip", "protocol", "17", "0xff"]
    match = fault.effective_match
    if match == "all":
        return [udp]
    ihl5 = ["match", "u8", "0x05", "0x0f", "at", "0"]  # port offsets assume no IP options
    pairs = [(SIP_PORT, 65535)] if match == "sip" else port_range_masks(*fault.media_ports)
    out = []
    for end in ("sport", "dport"):
        out += [[*udp, *ihl5, "match", "ip", end, str(v), f"{m:#06x}"] for v, m in pairs]
    return out


def netem_args(fault: NetFault) -> list[str]:
    kind = fault.kind
    if kind == NetKind.DELAY:
        args = ["delay", f"{_num(fault.effective_ms)}ms"]
        if fault.jitter_ms:
            # With a rate set, netem schedules each packet no earlier than the one before it:
            # jitter without reordering (the same FIFO rule as the delay line).
            args += [f"{_num(fault.jitter_ms)}ms", "rate", "100gbit"]
        return args
    if kind == NetKind.LOSS:
        return ["loss", "random", f"{_num(fault.effective_pct)}%"]
    if kind == NetKind.BLACKHOLE:
        return ["loss", "random", "100%"]
    if kind == NetKind.BURST_LOSS:
        assert fault.p is not None and fault.r is not None
        return ["loss", "gemodel", *(f"{_num(x)}%" for x in (fault.p, fault.r, 100 - fault.h, 100 - fault.k))]
    if kind == NetKind.DUPLICATE:
        return ["duplicate", f"{_num(fault.effective_pct)}%"]
    if kind == NetKind.REORDER:
        return ["delay", f"{_num(fault.effective_ms)}ms", "reorder", f"{_num(fault.effective_pct)}%"]
    raise PlanError(f"{kind} has no netem form")


def _leaf(fault: NetFault, backend: str) -> tuple[str, list[str]]:
    """(htb class rate, leaf qdisc args)."""
    if backend == "htb":
        assert fault.kbit is not None
        # A queue of ~200 ms at the rate (at least two full frames): a shaped link drops past it.
        limit = max(2 * 1514, int(fault.kbit * 125 * 0.2))
        return f"{_num(fault.kbit)}kbit", ["bfifo", "limit", str(limit)]
    return "100gbit", ["netem", "limit", "100000", *netem_args(fault)]


def _tc_dev_apply(dev: str, fault: NetFault, fid: str, backend: str) -> list[Cmd]:
    minor = tc_minor(fid)
    cls = f"{HTB_MAJOR}:{minor:x}"
    rate, leaf = _leaf(fault, backend)
    cmds = [
        Cmd(
            ("tc", "qdisc", "add", "dev", dev, "root", "handle", f"{HTB_MAJOR}:", "htb"),
            f"tc: htb root on {dev}",
            when=(Check(("tc", "qdisc", "show", "dev", dev, "root"), rf"\bhtb {HTB_MAJOR}:", False),),
        ),
        Cmd(
            (
                "tc",
                "class",
                "add",
                "dev",
                dev,
                "parent",
                f"{HTB_MAJOR}:",
                "classid",
                cls,
                "htb",
                "rate",
                rate,
                "ceil",
                rate,
                "quantum",
                "1514",
            ),
            f"tc: class {cls} on {dev}",
        ),
        Cmd(
            ("tc", "qdisc", "add", "dev", dev, "parent", cls, "handle", f"{minor:x}:", *leaf),
            f"tc: {leaf[0]} under {cls} on {dev}",
        ),
    ]
    for sel in _u32_selectors(fault):
        cmds.append(
            Cmd(
                tc_u32_filter(dev, f"{HTB_MAJOR}:", minor, *sel, "flowid", cls),
                f"tc: filter prio {minor} -> {cls} on {dev}",
            )
        )
    return cmds


def tc_dev_revert(dev: str, fid: str) -> list[Cmd]:
    """Remove the fault's filters and class on `dev`, then the htb root once it has no class."""
    minor = tc_minor(fid)
    cls = f"{HTB_MAJOR}:{minor:x}"
    return [
        Cmd(
            ("tc", "filter", "del", "dev", dev, "parent", f"{HTB_MAJOR}:", "protocol", "ip", "prio", str(minor)),
            f"tc: filters prio {minor} on {dev}",
            ok_errors=TC_MISSING,
        ),
        Cmd(("tc", "class", "del", "dev", dev, "classid", cls), f"tc: class {cls} on {dev}", ok_errors=TC_MISSING),
        htb_root_gc(dev),
    ]


def htb_root_gc(dev: str) -> Cmd:
    return Cmd(
        ("tc", "qdisc", "del", "dev", dev, "root"),
        f"tc: htb root on {dev} (no class left)",
        when=(
            Check(("tc", "qdisc", "show", "dev", dev, "root"), rf"\bhtb {HTB_MAJOR}:", True),
            Check(("tc", "class", "show", "dev", dev), rf"class htb {HTB_MAJOR}:", False),
        ),
        ok_errors=TC_MISSING,
    )


def tc_u32_filter(dev: str, parent: str, prio: int, *selector: str) -> tuple[str, ...]:
    """`tc filter add`: an IPv4 u32 filter on `dev` under `parent` at `prio`, then `selector`
    (its matches and action or flowid)."""
    return ("tc", "filter", "add", "dev", dev, "parent", parent, "protocol", "ip", "prio", str(prio), "u32", *selector)


_UDP_REDIRECT = ("match", "ip", "protocol", "17", "0xff", "action", "mirred", "egress", "redirect", "dev")


def tc_ingress_redirect(dev: str, to: str, prio: int = REDIRECT_PREF) -> tuple[str, ...]:
    """`tc filter add`: redirect all UDP arriving on `dev` (its ingress qdisc) to device `to`."""
    return tc_u32_filter(dev, "ffff:", prio, *_UDP_REDIRECT, to)


def _ifb_apply(dev: str) -> list[Cmd]:
    ifb = ifb_name(dev)
    return [
        Cmd(
            ("ip", "link", "add", ifb, "type", "ifb"),
            f"ip: ifb {ifb} for {dev} ingress",
            when=(Check(("ip", "link", "show", "dev", ifb), rf"\b{ifb}\b", False),),
        ),
        Cmd(("ip", "link", "set", "dev", ifb, "up"), f"ip: {ifb} up"),
        Cmd(
            ("tc", "qdisc", "add", "dev", dev, "handle", "ffff:", "ingress"),
            f"tc: ingress qdisc on {dev}",
            when=(Check(("tc", "qdisc", "show", "dev", dev, "ingress"), r"\bingress ffff:", False),),
        ),
        Cmd(
            tc_ingress_redirect(dev, ifb),
            f"tc: redirect {dev} ingress UDP -> {ifb}",
            when=(Check(("tc", "filter", "show", "dev", dev, "ingress"), rf"\b{ifb}\b", False),),
        ),
    ]


def ifb_gc(dev: str) -> list[Cmd]:
    """Once the interface's ifb carries no fault: drop the redirect, the ifb, then the ingress qdisc."""
    ifb = ifb_name(dev)
    unused = Check(("tc", "class", "show", "dev", ifb), rf"class htb {HTB_MAJOR}:", False)
    return [
        Cmd(
            ("tc", "filter", "del", "dev", dev, "parent", "ffff:", "protocol", "ip", "prio", str(REDIRECT_PREF)),
            f"tc: redirect {dev} -> {ifb}",
            when=(unused,),
            ok_errors=TC_MISSING,
        ),
        Cmd(("ip", "link", "del", "dev", ifb), f"ip: ifb {ifb}", when=(unused,), ok_errors=TC_MISSING),
        Cmd(
            ("tc", "qdisc", "del", "dev", dev, "ingress"),
            f"tc: ingress qdisc on {dev} (no filter left)",
            when=(
                Check(("tc", "qdisc", "show", "dev", dev, "ingress"), r"\bingress ffff:", True),
                Check(("tc", "filter", "show", "dev", dev, "ingress"), r"\bfilter\b", False),
            ),
            ok_errors=TC_MISSING,
        ),
    ]


def _tc(fault: NetFault, ifaces: tuple[str, ...], fid: str, backend: str) -> tuple[tuple[Cmd, ...], tuple[Cmd, ...]]:
    apply: list[Cmd] = []
    revert: list[Cmd] = []
    for direction in fault.directions:
        for dev in ifaces:
            if direction == "egress":
                apply += _tc_dev_apply(dev, fault, fid, backend)
                revert += tc_dev_revert(dev, fid)
            else:
                ifb = ifb_name(dev)
                apply += _ifb_apply(dev) + _tc_dev_apply(ifb, fault, fid, backend)
                revert += tc_dev_revert(ifb, fid) + ifb_gc(dev)
    return tuple(apply), tuple(revert)


# ---- cleanup (discovering what is there, for a crashed warden) ----------------------------


def nft_fault_chains(listing: str, fault_id: str | None) -> list[str]:
    """The wobble chains in a `nft list table` listing: base chains first (they jump to the rest)."""
    names = re.findall(r"^\s*chain (\S+) \{", listing, re.MULTILINE)
    prefix = f"f_{fault_id}_" if fault_id else "f_"
    mine = [n for n in names if n.startswith(prefix)]
    base = [n for n in mine if not n.endswith("_act")]
    return base + [n for n in mine if n.endswith("_act")]


def ipt_wobble(save: str, fault_id: str | None) -> tuple[list[tuple[str, ...]], list[str]]:
    """From `iptables-save -t mangle`: the jump rules to delete (as `-D` argv) and the chains."""
    import shlex

    tag = comment(fault_id) if fault_id else "wobble:"
    chain_prefix = f"WOBBLE_{fault_id}_" if fault_id else "WOBBLE_"
    jumps: list[tuple[str, ...]] = []
    chains: list[str] = []
    for line in save.splitlines():
        if line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(chain_prefix):
                chains.append(name)
        elif line.startswith("-A "):
            parts = shlex.split(line)
            chain = parts[1]
            if chain.startswith("WOBBLE_"):
                continue  # goes with its chain
            text = " ".join(parts)
            target = parts[parts.index("-j") + 1] if "-j" in parts else ""
            if (fault_id is None and ("wobble:" in text or target.startswith("WOBBLE_"))) or (
                fault_id is not None and (tag in parts or target.startswith(chain_prefix))
            ):
                jumps.append(("iptables", "-w", "-t", "mangle", "-D", *parts[1:]))
    return jumps, chains


def cleanup_commands(
    fault_id: str | None,
    devices: list[str],
    nft_tables: str,
    nft_table_listing: str,
    ipt_save: str,
) -> list[Cmd]:
    """Everything wobble-owned in this namespace (or one fault's), from what `nft`/`iptables-save`
    listed and the namespace's devices (lo excluded; ifb devices included)."""
    if fault_id is not None:
        check_id(fault_id)
    cmds: list[Cmd] = []
    # nft
    families = re.findall(rf"^table (\w+) {TABLE}$", nft_tables, re.MULTILINE)
    if fault_id is None:
        cmds += [
            Cmd(("nft", "delete", "table", fam, TABLE), f"nft: table {fam} {TABLE}", ok_errors=NFT_MISSING)
            for fam in families
        ]
        # What an interrupted probe may have left (chaos.net.probe).
        for fam, name in re.findall(r"^table (\w+) (wobble_probe_\w+)$", nft_tables, re.MULTILINE):
            cmds.append(Cmd(("nft", "delete", "table", fam, name), f"nft: table {fam} {name}", ok_errors=NFT_MISSING))
    elif TABLE_FAMILY in families:
        cmds += list(_nft_revert(fault_id, nft_fault_chains(nft_table_listing, fault_id)))
    # iptables
    jumps, chains = ipt_wobble(ipt_save, fault_id)
    cmds += [Cmd(argv, "iptables: " + " ".join(argv[4:]), ok_errors=IPT_MISSING) for argv in jumps]
    for chain in chains:
        cmds += ipt_chain_delete(chain)
    # tc
    real = [d for d in devices if d != "lo" and not d.startswith((IFB_PREFIX, PROBE_PREFIX))]
    ifbs = [d for d in devices if d.startswith(IFB_PREFIX)]
    for dev in [*real, *ifbs]:
        if fault_id is None:
            cmds.append(
                Cmd(
                    ("tc", "qdisc", "del", "dev", dev, "root"),
                    f"tc: htb root on {dev}",
                    when=(Check(("tc", "qdisc", "show", "dev", dev, "root"), rf"\bhtb {HTB_MAJOR}:", True),),
                    ok_errors=TC_MISSING,
                )
            )
        else:
            cmds += tc_dev_revert(dev, fault_id)
    for dev in real:
        ifb = ifb_name(dev)
        if fault_id is None:
            cmds.append(
                Cmd(
                    ("tc", "qdisc", "del", "dev", dev, "ingress"),
                    f"tc: ingress qdisc on {dev}",
                    when=(Check(("tc", "filter", "show", "dev", dev, "ingress"), rf"\b{IFB_PREFIX}[0-9a-f]+\b", True),),
                    ok_errors=TC_MISSING,
                )
            )
        if ifb in ifbs:
            cmds += ifb_gc(dev) if fault_id is not None else []
    if fault_id is None:
        probes = [d for d in devices if d.startswith(PROBE_PREFIX)]
        cmds += [Cmd(("ip", "link", "del", "dev", d), f"ip: ifb {d}", ok_errors=TC_MISSING) for d in [*ifbs, *probes]]
    return cmds
