"""Network faults on a real kernel: two network namespaces joined by a veth pair, the echo server in
one (A), the warden applying faults in the other (B, through `ip netns exec`), fidelity measured
with the echo probe from B. Root only (`pytest -m netns tests/netns`); the namespaces (prefixed
`wbt`) are deleted in the fixture's teardown whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chaos import lease
from chaos.net import rules
from tests.helpers import skip_or_fail


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, nft, iptables, tc)"
    for tool in ("ip", "nft", "iptables", "iptables-restore", "tc"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    try:
        import netfilterqueue  # noqa: F401
    except ImportError:
        return "needs the NetfilterQueue package (scripts/build-nfqueue-wheel.sh)"
    return None


pytestmark = [pytest.mark.netns]


@pytest.fixture(scope="module", autouse=True)
def _prerequisites() -> None:
    """Root and the kernel's tools, or skip (fail under CI: tests.helpers.skip_or_fail)."""
    why = _why_not()
    if why is not None:
        skip_or_fail(why)


FORBIDDEN = re.compile(r"drop|NFQUEUE|statistic|netem|tbf|htb", re.IGNORECASE)
TAG = f"{os.getpid() % 100000}"
A_IP, B_IP = "10.213.7.1", "10.213.7.2"
ECHO_PORT = 7777


def sh(*argv: str, check: bool = True) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {p.stderr or p.stdout}")
    return p.stdout


@dataclass
class Lab:
    a: str
    b: str
    dev_b: str
    lease_dir: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    baseline_ms: float = 0.0

    def in_b(self, *argv: str, check: bool = True) -> str:
        return sh("ip", "netns", "exec", self.b, *argv, check=check)

    def dump_b(self) -> str:
        """What the acceptance criterion reads: nft ruleset, iptables-save, tc qdisc show."""
        out = [
            self.in_b("nft", "list", "ruleset", check=False),
            self.in_b("iptables-save", check=False),
            self.in_b("tc", "qdisc", "show", check=False),
        ]
        return "\n".join(out)

    def assert_clean(self) -> None:
        dump = self.dump_b()
        bad = [line for line in dump.splitlines() if FORBIDDEN.search(line) or "wobble" in line.lower()]
        assert not bad, "left behind in B:\n" + "\n".join(bad)
        links = self.in_b("ip", "-o", "link")
        assert "wbi" not in links and "wbp" not in links, links

    def warden(self, spec: dict[str, Any], fid: str, *extra: str, ttl_s: float = 60.0) -> subprocess.Popen[str]:
        now = time.time()
        lease.write_lease(self.lease_dir, fid, expires_at=now + ttl_s, ends_at=now + 3600)
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.b,
                sys.executable,
                "-m",
                "chaos.net.warden",
                "apply",
                "--spec",
                json.dumps(spec),
                "--id",
                fid,
                "--lease-dir",
                str(self.lease_dir),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def live(self, spec: dict[str, Any], fid: str, *extra: str, ttl_s: float = 60.0) -> subprocess.Popen[str]:
        proc = self.warden(spec, fid, *extra, ttl_s=ttl_s)
        wait_line(proc, f"LIVE {fid}", timeout_s=15)
        return proc

    def stop(self, proc: subprocess.Popen[str], fid: str) -> str:
        """Withdraw the lease; the warden reverts and exits 0. Returns its stderr."""
        lease.remove_lease(self.lease_dir, fid)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        return err

    def echo(
        self, count: int, pps: float, size: int = 160, port: int = ECHO_PORT, prefix: str = "", linger: float = 1.0
    ) -> dict[str, Any]:
        out = self.in_b(
            sys.executable,
            "-m",
            "chaos.net.echo",
            "client",
            "--to",
            f"{A_IP}:{port}",
            "--count",
            str(count),
            "--pps",
            str(pps),
            "--size",
            str(size),
            "--prefix",
            prefix,
            "--linger",
            str(linger),
            "--baseline-ms",
            str(self.baseline_ms),
            "--json",
        )
        report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        print(
            f"echo {count}@{pps}pps: "
            + json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in report.items()})
        )
        return report

    def cleanup(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.b, sys.executable, "-m", "chaos.net.warden", "cleanup", *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def wait_line(proc: subprocess.Popen[str], needle: str, timeout_s: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    seen = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            seen += line
            if needle in line:
                return
            if not line and proc.poll() is not None:
                break
    err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"no {needle!r} within {timeout_s} s; stdout={seen!r} stderr={err!r}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    a, b = f"wbt{TAG}a", f"wbt{TAG}b"
    dev_a, dev_b = f"wbt{TAG}a0", f"wbt{TAG}b0"
    servers: list[subprocess.Popen[str]] = []
    lab = Lab(a, b, dev_b, tmp_path_factory.mktemp("leases"))
    try:
        sh("ip", "netns", "add", a)
        sh("ip", "netns", "add", b)
        sh("ip", "link", "add", dev_a, "type", "veth", "peer", "name", dev_b)
        sh("ip", "link", "set", dev_a, "netns", a)
        sh("ip", "link", "set", dev_b, "netns", b)
        for ns, dev, ip in ((a, dev_a, A_IP), (b, dev_b, B_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for port in (ECHO_PORT, 5060):
            srv = subprocess.Popen(
                ["ip", "netns", "exec", a, sys.executable, "-m", "chaos.net.echo", "server", "--port", str(port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            servers.append(srv)
            wait_line(srv, "READY", timeout_s=10)
        lab.baseline_ms = lab.echo(300, 200)["rtt_p50_ms"]
        yield lab
    finally:
        for proc in [*lab.procs, *servers]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        sh("ip", "netns", "del", a, check=False)
        sh("ip", "netns", "del", b, check=False)


@pytest.fixture
def clean(lab: Lab) -> Iterator[Lab]:
    """Each test starts and must end with nothing of wobble in B."""
    lab.assert_clean()
    yield lab
    for proc in lab.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    lab.procs.clear()
    leftover = lab.dump_b()
    lab.cleanup()
    lab.assert_clean()
    assert "wobble" not in leftover.lower(), "the test left rules behind (cleanup removed them):\n" + leftover


# ---- fidelity ----------------------------------------------------------------------------------


def test_probe_sees_this_kernel(clean: Lab) -> None:
    out = clean.in_b(sys.executable, "-m", "chaos.net.warden", "probe", "--json")
    backends = json.loads(out.strip().splitlines()[-1])
    assert set(backends) >= {"delay", "loss", "rate", "blackhole", "sip_drop", "sip_delay"}
    clean.assert_clean()


def test_delay_200ms(clean: Lab) -> None:
    proc = clean.live({"kind": "delay", "ms": 200}, "dly1")
    r = clean.echo(500, 100)
    clean.stop(proc, "dly1")
    assert r["loss_pct"] == 0 and r["reorders"] == 0
    # the median, not the mean or the max: one packet delayed by a busy shared machine is not the fault's
    assert abs(r["added_p50_ms"] - 200) <= 10


def test_delay_with_jitter_keeps_order(clean: Lab) -> None:
    proc = clean.live({"kind": "delay", "ms": 100, "jitter": 30}, "jit1")
    r = clean.echo(500, 50)
    clean.stop(proc, "jit1")
    assert r["reorders"] == 0 and r["loss_pct"] == 0
    assert r["rtt_min_ms"] >= 70 - 5  # no upper bound: a loaded machine only ever adds delay
    assert r["jitter_ms"] > 3
    assert abs(r["added_p50_ms"] - 100) <= 15  # keeping order holds some packets a few ms longer


def test_loss_10pct(clean: Lab) -> None:
    proc = clean.live({"kind": "loss", "pct": 10}, "los1")
    r = clean.echo(6000, 1000)
    clean.stop(proc, "los1")
    assert abs(r["loss_pct"] - 10) <= 2


def test_loss_10pct_userspace_backend(clean: Lab) -> None:
    proc = clean.live({"kind": "loss", "pct": 10}, "los2", "--backend", "nfqueue")
    r = clean.echo(6000, 1000)
    clean.stop(proc, "los2")
    assert abs(r["loss_pct"] - 10) <= 2


def test_rate_64kbit(clean: Lab) -> None:
    proc = clean.live({"kind": "rate", "kbit": 64}, "rat1")
    r = clean.echo(800, 80)  # ~130 kbit/s offered on the wire
    clean.stop(proc, "rat1")
    assert abs(r["rx_kbit_wire"] - 64) <= 6.4


def test_rate_64kbit_ingress(clean: Lab) -> None:
    proc = clean.live({"kind": "rate", "kbit": 64, "direction": "ingress"}, "rat2")
    r = clean.echo(800, 80)
    clean.stop(proc, "rat2")
    assert abs(r["rx_kbit_wire"] - 64) <= 6.4


def test_burst_loss_duplicate_reorder(clean: Lab) -> None:
    proc = clean.live({"kind": "burst_loss", "p": 5, "r": 45}, "ge1")
    r = clean.echo(5000, 1000)
    clean.stop(proc, "ge1")
    assert abs(r["loss_pct"] - 10) <= 3  # stationary p/(p+r) = 10 %
    proc = clean.live({"kind": "duplicate", "pct": 20, "direction": "ingress"}, "dup1")
    r = clean.echo(2000, 500)
    clean.stop(proc, "dup1")
    assert abs(100 * r["duplicates"] / r["sent"] - 20) <= 3 and r["loss_pct"] == 0
    proc = clean.live({"kind": "reorder", "pct": 25, "ms": 20}, "ord1")
    r = clean.echo(1000, 200)
    clean.stop(proc, "ord1")
    assert r["reorders"] > 100 and r["loss_pct"] == 0


def test_sip_drop_and_delay_only_touch_that_method(clean: Lab) -> None:
    proc = clean.live({"kind": "sip_drop", "method": "INVITE"}, "sip1")
    invite = clean.echo(200, 200, port=5060, prefix="INVITE sip:agent@lab SIP/2.0")
    options = clean.echo(200, 200, port=5060, prefix="OPTIONS sip:agent@lab SIP/2.0")
    clean.stop(proc, "sip1")
    assert invite["loss_pct"] == 100 and options["loss_pct"] == 0
    proc = clean.live({"kind": "sip_delay", "method": "OPTIONS", "ms": 150}, "sip2")
    options = clean.echo(200, 100, port=5060, prefix="OPTIONS sip:agent@lab SIP/2.0")
    invite = clean.echo(200, 100, port=5060, prefix="INVITE sip:agent@lab SIP/2.0")
    clean.stop(proc, "sip2")
    assert abs(options["added_p50_ms"] - 150) <= 10 and invite["added_p50_ms"] < 5


# ---- always reverts ------------------------------------------------------------------------


def test_kill9_leaves_rules_that_cleanup_removes(clean: Lab) -> None:
    procs = [
        clean.live({"kind": "loss", "pct": 50}, "k9a"),
        clean.live({"kind": "delay", "ms": 100, "direction": "both"}, "k9b"),
        clean.live({"kind": "rate", "kbit": 1000, "direction": "both"}, "k9c"),
    ]
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=5)
    dump = clean.dump_b()
    assert "wobble:k9a" in dump and "WOBBLE_k9b_E" in dump and "htb b0b:" in dump
    # One fault's leftovers alone...
    one = clean.cleanup("--id", "k9a")
    assert one.returncode == 0, one.stderr
    dump = clean.dump_b()
    assert "wobble:k9a" not in dump and "WOBBLE_k9b_E" in dump
    # ...then everything, twice (idempotent).
    every = clean.cleanup()
    assert every.returncode == 0, every.stderr
    assert "removed" in every.stdout
    clean.assert_clean()
    again = clean.cleanup()
    assert again.returncode == 0 and "nothing to remove" in again.stdout
    r = clean.echo(300, 300)
    assert r["loss_pct"] == 0 and r["added_p50_ms"] < 5


@pytest.mark.parametrize("how", ["expired", "ended"])
def test_lease_lapse_reverts_within_ttl_check_plus_1s(clean: Lab, how: str) -> None:
    fid = f"lz{how[:2]}"
    proc = clean.live({"kind": "loss", "pct": 100}, fid, "--ttl-check", "0.2")
    lapse = time.time() + 1.0
    if how == "expired":
        lease.write_lease(clean.lease_dir, fid, expires_at=lapse, ends_at=time.time() + 3600)
    else:
        lease.write_lease(clean.lease_dir, fid, expires_at=time.time() + 3600, ends_at=lapse)
    _, err = proc.communicate(timeout=10)
    done = time.time()
    assert proc.returncode == 0, err
    assert f"lease {how}" in err
    print(f"lease {how}: reverted and exited {done - lapse:.3f} s after the lapse")
    assert done - lapse <= 0.2 + 1.0, f"reverted {done - lapse:.2f} s after the lease lapsed"
    clean.assert_clean()
    lease.remove_lease(clean.lease_dir, fid)


def test_sigterm_reverts(clean: Lab) -> None:
    proc = clean.live({"kind": "sip_delay", "method": "INVITE", "ms": 100, "direction": "both"}, "trm1")
    assert "WOBBLE_trm1_E" in clean.dump_b()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "signal SIGTERM" in err
    clean.assert_clean()
    lease.remove_lease(clean.lease_dir, "trm1")


def test_atomic_apply_failure_reverts_partial_rules(clean: Lab) -> None:
    """rate both ways: the egress tree and the ingress redirect go in, then the ifb's root fails
    (a foreign qdisc holds it): the warden exits 1 naming that command and nothing stays."""
    ifb = rules.ifb_name(clean.dev_b)
    clean.in_b("ip", "link", "add", ifb, "type", "ifb")
    clean.in_b(
        "tc",
        "qdisc",
        "add",
        "dev",
        ifb,
        "root",
        "handle",
        "1:",
        "tbf",
        "rate",
        "1mbit",
        "burst",
        "10k",
        "latency",
        "50ms",
    )
    proc = clean.warden({"kind": "rate", "kbit": 64, "direction": "both"}, "atm1")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, (out, err)
    assert "LIVE" not in out
    assert f"tc: htb root on {ifb} failed" in err and f"tc qdisc add dev {ifb} root handle b0b: htb" in err
    assert "reverted what was applied" in err
    clean.assert_clean()
    lease.remove_lease(clean.lease_dir, "atm1")


def test_faults_coexist_and_revert_independently(clean: Lab) -> None:
    loss = clean.live({"kind": "loss", "pct": 100, "match": "media", "media_ports": [40000, 40100]}, "coA")
    drop = clean.live({"kind": "sip_drop", "method": "REGISTER"}, "coB")
    rate_a = clean.live({"kind": "rate", "kbit": 500, "match": "sip"}, "coC")
    rate_b = clean.live({"kind": "rate", "kbit": 800, "match": "media"}, "coD")
    clean.stop(loss, "coA")
    dump = clean.dump_b()
    assert "wobble:coA" not in dump and "wobble:coB" in dump
    clean.stop(rate_a, "coC")
    classes = clean.in_b("tc", "class", "show", "dev", clean.dev_b)
    assert f"b0b:{rules.tc_minor('coD'):x}" in classes and f"b0b:{rules.tc_minor('coC'):x}" not in classes
    clean.stop(drop, "coB")
    clean.stop(rate_b, "coD")
    clean.assert_clean()


def test_queue_faults_stack(clean: Lab) -> None:
    """Two NFQUEUE faults one way and one the other way all act on the same packets."""
    dup = clean.live({"kind": "duplicate", "pct": 50}, "stk1")
    delay = clean.live({"kind": "delay", "ms": 50}, "stk2")
    back = clean.live({"kind": "delay", "ms": 30, "direction": "ingress"}, "stk3")
    r = clean.echo(400, 100)
    for proc, fid in ((dup, "stk1"), (delay, "stk2"), (back, "stk3")):
        clean.stop(proc, fid)
    assert abs(100 * r["duplicates"] / r["sent"] - 50) <= 10
    assert abs(r["added_p50_ms"] - 80) <= 10 and r["loss_pct"] == 0
