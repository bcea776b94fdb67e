"""Which backend can serve each network fault kind here: probe the kernel from inside the namespace.

Needs only CAP_NET_ADMIN (a sidecar sharing a container's network namespace). Every test object is
harmless and removed at once: a throwaway ifb device (no traffic flows through it) carries the test
qdiscs; nft and iptables test chains are regular chains no packet is sent to, except one empty
netdev egress base chain with policy accept.

`choose(caps)` is pure: netem where the kernel has it; nft (netdev hooks) for loss, blackhole and
sip_drop; NFQUEUE plus the userspace delay line for the rest; htb for rate.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import time
from collections.abc import Mapping

from chaos.net.rules import (
    BACKENDS,
    IFB_PREFIX,
    PROBE_PREFIX,
    nft_method_match,
    tc_ingress_redirect,
    u32_method_match,
)
from chaos.net.spec import NetKind

CAPS = ("ifb", "netem", "htb", "ingress", "nft", "nft_egress", "iptables_nfqueue", "nfqueue_bind", "raw_socket")


def _run(argv: list[str], stdin: str | None = None) -> tuple[bool, str]:
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return p.returncode == 0, (p.stdout if p.returncode == 0 else p.stderr or p.stdout).strip()


def interfaces() -> list[str]:
    """The namespace's interfaces to impair: those with an IPv4 address, but lo and wobble's own ifb
    devices (a container's idle tunl0/sit0 have none). Every device but those if `ip` shows none."""
    ok, out = _run(["ip", "-o", "-4", "addr", "show"])
    names: list[str] = []
    if ok:
        for line in out.splitlines():
            parts = line.split()
            if len(parts) > 1 and parts[1].split("@")[0] not in names:
                names.append(parts[1].split("@")[0])
    if not names:
        names = [name for _, name in socket.if_nameindex()]
    return [n for n in names if n != "lo" and not n.startswith((IFB_PREFIX, PROBE_PREFIX))]


def capabilities(notes: list[str] | None = None) -> dict[str, bool]:
    """Try each mechanism once; `notes` collects why one is missing."""
    notes = notes if notes is not None else []
    caps = dict.fromkeys(CAPS, False)
    tag = f"{os.getpid() % 0xFFFF:04x}{int(time.time() * 1000) % 0xFF:02x}"
    dev = f"{PROBE_PREFIX}{tag}"

    def attempt(cap: str, argv: list[str], stdin: str | None = None) -> bool:
        ok, err = _run(argv, stdin)
        if not ok:
            notes.append(f"{cap}: {' '.join(argv[:4])}: {err.splitlines()[0] if err else 'failed'}")
        return ok

    caps["ifb"] = attempt("ifb", ["ip", "link", "add", dev, "type", "ifb"])
    try:
        if caps["ifb"]:
            if attempt("netem", ["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem", "delay", "1ms"]):
                caps["netem"] = True
                _run(["tc", "qdisc", "del", "dev", dev, "root"])
            if attempt("htb", ["tc", "qdisc", "add", "dev", dev, "root", "handle", "b0b:", "htb"]):
                caps["htb"] = attempt(
                    "htb",
                    ["tc", "class", "add", "dev", dev, "parent", "b0b:", "classid", "b0b:1", "htb", "rate", "64kbit"],
                ) and attempt("htb", ["tc", "qdisc", "add", "dev", dev, "parent", "b0b:1", "handle", "2:", "bfifo"])
                _run(["tc", "qdisc", "del", "dev", dev, "root"])
            if attempt("ingress", ["tc", "qdisc", "add", "dev", dev, "handle", "ffff:", "ingress"]):
                caps["ingress"] = attempt("ingress", list(tc_ingress_redirect(dev, dev, prio=1)))
                _run(["tc", "qdisc", "del", "dev", dev, "ingress"])
        # nft: the rule forms the nft backend writes, in a regular chain nothing jumps to.
        table = f"wobble_probe_{tag}"
        rules = (
            f"add table netdev {table}\nadd chain netdev {table} c\n"
            f"add rule netdev {table} c udp dport 30000-40000 numgen random mod 1000 < 100 drop "
            f'comment "wobble:probe"\n'
            f"add rule netdev {table} c {nft_method_match('REGISTER')} drop\n"
        )
        if attempt("nft", ["nft", "-f", "-"], rules):
            caps["nft"] = True
            hook_dev = dev if caps["ifb"] else next(iter(interfaces()), "")
            if hook_dev:
                caps["nft_egress"] = attempt(
                    "nft_egress",
                    ["nft", "-f", "-"],
                    f'add chain netdev {table} e {{ type filter hook egress device "{hook_dev}" priority 0; '
                    "policy accept; }\n",
                )
            _run(["nft", "delete", "table", "netdev", table])
        chain = f"WOBBLE_PROBE_{tag}"
        ipt = (
            f"*mangle\n:{chain} - [0:0]\n-A {chain} -p udp -m multiport --ports 5060 -m mark ! --mark "
            f'0x80000000/0x80000000 -m u32 --u32 "{u32_method_match("INVITE")}" -m comment --comment wobble:probe '
            "-j NFQUEUE --queue-num 65535 --queue-bypass\nCOMMIT\n"
        )
        if attempt("iptables_nfqueue", ["iptables-restore", "-w", "-n"], ipt):
            caps["iptables_nfqueue"] = True
            _run(["iptables", "-w", "-t", "mangle", "-F", chain])
            _run(["iptables", "-w", "-t", "mangle", "-X", chain])
        caps["nfqueue_bind"] = _bind_ok(notes)
        caps["raw_socket"] = _raw_ok(notes)
    finally:
        if caps["ifb"]:
            _run(["ip", "link", "del", "dev", dev])
    return caps


def _bind_ok(notes: list[str]) -> bool:
    try:
        from netfilterqueue import NetfilterQueue
    except ImportError as exc:
        notes.append(f"nfqueue_bind: the NetfilterQueue package is not installed ({exc})")
        return False
    nfq = NetfilterQueue()
    for num in (65534, 65533, 65532):
        try:
            nfq.bind(num, lambda pkt: pkt.accept())
        except OSError as exc:
            notes.append(f"nfqueue_bind: queue {num}: {exc}")
            continue
        with contextlib.suppress(Exception):
            nfq.unbind()
        return True
    return False


def _raw_ok(notes: list[str]) -> bool:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack("I", 0x80000000))
        s.close()
        return True
    except OSError as exc:
        notes.append(f"raw_socket: {exc}")
        return False


def choose(caps: Mapping[str, bool]) -> dict[str, str]:
    """The backend for each kind the kernel can serve (kinds it cannot serve are left out)."""
    have = {
        "netem": caps.get("netem", False) and caps.get("htb", False),
        "nft": caps.get("nft", False) and caps.get("nft_egress", False),
        "nfqueue": caps.get("iptables_nfqueue", False) and caps.get("nfqueue_bind", False),
        "htb": caps.get("htb", False),
    }
    out: dict[str, str] = {}
    for kind, options in BACKENDS.items():
        for backend in options:
            if not have[backend]:
                continue
            if kind == NetKind.DUPLICATE and backend == "nfqueue" and not caps.get("raw_socket", False):
                continue
            out[kind] = backend
            break
    return out


def needs_ingress_tc(caps: Mapping[str, bool]) -> bool:
    """An ingress tc fault (rate, netem) also needs an ifb device and the ingress qdisc."""
    return bool(caps.get("ifb") and caps.get("ingress"))


def probe(notes: list[str] | None = None) -> dict[str, str]:
    return choose(capabilities(notes))
