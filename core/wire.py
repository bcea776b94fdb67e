"""What the carrier network saw: SIP captured on the carrier bridge, read back per lab call.

An independent observer for the lab's own counts: tshark captures SIP on the host side of the
`carrier` bridge (every customer INVITE and its answers cross it), and `outcomes` says, per lab call
id (the From user of a load call), whether any INVITE of it was answered 2xx on the wire. Nothing
here trusts the generator's records.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: tshark fields, in this order, one line per SIP message.
FIELDS = ("ip.src", "ip.dst", "sip.Method", "sip.Status-Code", "sip.CSeq.method", "sip.from.user", "sip.Call-ID")


class CaptureError(RuntimeError):
    """tshark is missing, or the capture could not start."""


@dataclass
class WireCall:
    """One lab call as the wire saw it: its INVITEs (SIP Call-IDs) and the final codes they got."""

    lab_call_id: str
    invites: set[str] = field(default_factory=set)
    finals: list[int] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return any(200 <= c < 300 for c in self.finals)


def parse_fields(lines: Iterable[str]) -> dict[str, WireCall]:
    """tshark's `-T fields` lines (FIELDS, `|`-separated) -> the lab calls seen, by lab call id."""
    calls: dict[str, WireCall] = {}
    for line in lines:
        parts = line.rstrip("\n").split("|")
        if len(parts) != len(FIELDS):
            continue
        _src, _dst, method, status, cseq_method, from_user, sip_call_id = parts
        if cseq_method != "INVITE" or not from_user:
            continue
        call = calls.setdefault(from_user, WireCall(from_user))
        if method == "INVITE":
            call.invites.add(sip_call_id)
        elif status:
            code = int(status.split(",")[0])
            if code >= 200:
                call.finals.append(code)
    return calls


@dataclass(frozen=True)
class Agreement:
    """The lab's failed new calls beside the wire's, for one run's completed calls."""

    lab_failed: frozenset[str]
    wire_failed: frozenset[str]
    never_on_wire: frozenset[str]

    @property
    def difference(self) -> int:
        return abs(len(self.lab_failed) - len(self.wire_failed))

    def as_dict(self) -> dict[str, object]:
        return {
            "lab_failed": len(self.lab_failed),
            "wire_failed": len(self.wire_failed),
            "never_on_wire": len(self.never_on_wire),
            "only_lab": sorted(self.lab_failed - self.wire_failed),
            "only_wire": sorted(self.wire_failed - self.lab_failed),
        }


def agreement(done: Mapping[str, Mapping[str, Any]], seen: Mapping[str, WireCall]) -> Agreement:
    """`done`: a load run's completion records by lab call id (status ok/fail/info; a `fate` marks a
    call that was answered and then dropped, not a failed new call). A call failed on the wire when
    no INVITE of it got a 2xx."""
    lab = frozenset(c for c, e in done.items() if e.get("status") != "ok" and not e.get("fate"))
    wire = frozenset(c for c in done if not (c in seen and seen[c].answered))
    return Agreement(lab, wire, frozenset(c for c in done if c not in seen))


def outcomes(pcap: Path) -> dict[str, WireCall]:
    """The lab calls in a capture file."""
    cmd = ["tshark", "-r", str(pcap), "-Y", "sip", "-T", "fields", "-E", "separator=|"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    return parse_fields(out.splitlines())


def bridge_of(network: str) -> str:
    """The host interface of a docker bridge network (br-<first 12 of its id>, unless named)."""
    from core import dockerctl

    attrs = dockerctl.client().networks.get(network).attrs
    return str(attrs.get("Options", {}).get("com.docker.network.bridge.name") or f"br-{attrs['Id'][:12]}")


@contextlib.contextmanager
def capture(interface: str | Sequence[str], pcap: Path, bpf: str = "udp port 5060", snaplen: int = 0) -> Iterator[Path]:
    """tshark on `interface` (or several) into `pcap` for the duration of the block (flushed on exit).
    `snaplen` > 0 keeps only that many bytes of each packet (headers of RTP, say)."""
    if shutil.which("tshark") is None:
        raise CaptureError("tshark is not installed: run `make setup` (it installs Debian's tshark)")
    interfaces = [interface] if isinstance(interface, str) else list(interface)
    cmd = ["tshark", "-q", *(a for i in interfaces for a in ("-i", i)), "-f", bpf, "-w", str(pcap)]
    if snaplen > 0:
        cmd += ["-s", str(snaplen)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not pcap.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # tshark creates the file once it captures
    if proc.poll() is not None or not pcap.exists():
        err = proc.stderr.read() if proc.stderr else ""
        proc.kill()
        raise CaptureError(f"tshark on {interface} did not start: {err.strip()[-300:]}")
    try:
        yield pcap
    finally:
        time.sleep(0.5)  # the last answers in flight
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
