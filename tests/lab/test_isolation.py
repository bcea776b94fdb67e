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


def host_nameservers() -> list[str]:
    text = Path("/etc/resolv.conf").read_text()
    return [ip for ip in re.findall(r"^nameserver\s+(\S+)", text, re.M) if not ip.startswith("127.") and ":" not in ip]


def host_mirror_name() -> str | None:
    """A name the host resolves for real: its Debian mirror, read from apt's sources at run time."""
    for f in [*Path("/etc/apt/sources.list.d").glob("*.sources"), Path("/etc/apt/sources.list")]:
        if f.exists():
            m = re.search(r"https?://([^/\s:]+)", f.read_text())
            if m:
                return m.group(1)
    return None


def run_in(service: str, code: str) -> subprocess.CompletedProcess[str]:
    # python is in the lab's Python image; the SBC image is probed with getent/bash instead
    return subprocess.run(["docker", "exec", f"wobble-{service}-1", "python", "-c", code],
                          capture_output=True, text=True, timeout=30)  # fmt: skip


PYTHON_SERVICES = ["caller", "agents-a", "agents-b", "dns"]


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_cannot_resolve_outside_names(lab_up: None, service: str) -> None:
    name = host_mirror_name()
    if name is None:
        pytest.fail("no apt source on the host to take an outside name from")
    socket.gethostbyname(name)  # precondition: the host resolves it
    proc = run_in(service, f"import socket; print(socket.gethostbyname({name!r}))")
    assert proc.returncode != 0, f"{service} resolved {name}: {proc.stdout}"
    assert "gaierror" in proc.stderr or "Name or service not known" in proc.stderr or "failure" in proc.stderr


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
    proc = subprocess.run(["docker", "exec", f"wobble-{service}-1", "bash", "-c",
                           f"timeout 3 bash -c 'echo > /dev/tcp/{ip}/53' && echo REACHED || echo blocked"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "blocked" in proc.stdout and "REACHED" not in proc.stdout
