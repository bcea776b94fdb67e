"""No lab container can reach or resolve anything outside the lab.

Each outside target is first shown to work from the host, so a pass means the lab blocked it,
not that the target was dead anyway.
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest
from dnslib import RCODE, DNSRecord


def host_nameservers() -> list[str]:
    text = Path("/etc/resolv.conf").read_text()
    return [ip for ip in re.findall(r"^nameserver\s+(\S+)", text, re.M) if not ip.startswith("127.") and ":" not in ip]


def run_in(service: str, code: str) -> subprocess.CompletedProcess[str]:
    # python is in the lab's Python image; the SBC image is probed with getent/bash instead
    return subprocess.run(
        ["docker", "exec", f"wobble-{service}-1", "python", "-c", code], capture_output=True, text=True, timeout=30
    )


PYTHON_SERVICES = ["caller", "agents-a", "agents-b", "dns"]


OUTSIDE_NAME = "example.com"


def host_resolver_answers(ip: str) -> bool:
    """Precondition: the host's resolver is alive and answers outside names itself (not REFUSED)."""
    try:
        reply = DNSRecord.parse(DNSRecord.question(OUTSIDE_NAME).send(ip, 53, timeout=3))
    except OSError:
        return False
    return bool(reply.header.rcode != RCODE.REFUSED)


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_cannot_resolve_outside_names(lab_up: None, service: str) -> None:
    live = [ip for ip in host_nameservers() if host_resolver_answers(ip)]
    if not live:
        pytest.fail("no live resolver on the host to compare against")
    # Through the container's own resolver configuration (Docker's embedded DNS, which forwards to
    # the lab resolver): REFUSED is the lab resolver's answer; the host's resolver never says it.
    code = (
        "import sys, socket\n"
        "from dnslib import DNSRecord\n"
        "ns = [l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')][0]\n"
        f"r = DNSRecord.parse(DNSRecord.question({OUTSIDE_NAME!r}).send(ns, 53, timeout=5))\n"
        "print('rcode', r.header.rcode, 'answers', len(r.rr))\n"
        "try:\n"
        f"    print('RESOLVED', socket.gethostbyname({OUTSIDE_NAME!r})); sys.exit(1)\n"
        "except OSError as e:\n"
        "    print('unresolved', e)\n"
    )
    proc = run_in(service, code)
    assert proc.returncode == 0, f"{service}: {proc.stdout}{proc.stderr}"
    assert f"rcode {int(RCODE.REFUSED)} answers 0" in proc.stdout, proc.stdout
    # and the host's resolver itself is out of reach (no route off the lab networks)
    for ip in live:
        direct = run_in(
            service,
            "from dnslib import DNSRecord\n"
            f"try:\n    DNSRecord.question({OUTSIDE_NAME!r}).send({ip!r}, 53, timeout=3); print('ANSWERED')\n"
            "except OSError as e:\n    print('blocked', e)\n",
        )
        assert "blocked" in direct.stdout and "ANSWERED" not in direct.stdout, f"{service} reached {ip}"


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_lab_names_still_resolve(lab_up: None, service: str) -> None:
    proc = run_in(service, "import socket; print(socket.gethostbyname('sbc-b.cx.lab'))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "10.77.0.12"


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_cannot_reach_host_resolver_or_gateway(lab_up: None, service: str) -> None:
    targets = host_nameservers()
    reachable = []
    for ip in targets:  # precondition: the host itself reaches them over TCP 53
        try:
            socket.create_connection((ip, 53), timeout=3).close()
            reachable.append(ip)
        except OSError:
            pass
    if not reachable:
        pytest.fail(f"the host reaches none of its nameservers {targets}; nothing to prove isolation against")
    for ip in reachable:
        code = (
            "import socket,sys\n"
            f"try:\n  socket.create_connection(({ip!r}, 53), timeout=3).close()\n"
            "except OSError as e:\n  print('blocked', e); sys.exit(0)\n"
            "print('REACHED'); sys.exit(1)\n"
        )
        proc = run_in(service, code)
        assert proc.returncode == 0 and "blocked" in proc.stdout, f"{service} reached {ip}: {proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("service", ["sbc-a", "sbc-b", "pbx-a", "media-b"])
def test_non_python_services_have_no_route_out(lab_up: None, service: str) -> None:
    ip = (host_nameservers() or ["192.0.2.1"])[0]
    proc = subprocess.run(
        [
            "docker",
            "exec",
            f"wobble-{service}-1",
            "bash",
            "-c",
            f"timeout 3 bash -c 'echo > /dev/tcp/{ip}/53' && echo REACHED || echo blocked",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "blocked" in proc.stdout and "REACHED" not in proc.stdout
