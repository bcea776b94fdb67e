"""The chaos controller on the real lab: faults act on real paths and always revert.

Every check of "nothing left" reads the target's own state (its network namespace, docker's view of
the container, the proxy's API), never the controller's list.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from typing import Any

from core import dockerctl
from core.settings import ChaosSettings
from tests.helpers import wait_until
from tests.lab.conftest import last_json, run_wobble

LEFTOVER = ("drop", "NFQUEUE", "statistic", "netem", "tbf", "htb", "wobble")
TOXIPROXY_API = "http://10.77.9.60:8474"
TTL_S = ChaosSettings.from_env().lease_ttl_s  # compose.yaml sets the same (tests/unit/test_settings.py)


def container_of(service: str) -> Any:
    """The service's container in any state (a paused one is not `running` to docker's filter)."""
    found = dockerctl.find_service(dockerctl.client(), service, running=False)
    assert found is not None, f"no container for {service}"
    return found


def netns_dump(service: str) -> str:
    """nft, iptables and tc state of a service's own network namespace, read from outside."""
    c = dockerctl.service_container(service)
    pid = str(c.attrs["State"]["Pid"])
    cmds = [["nft", "list", "ruleset"], ["iptables-save"], ["tc", "qdisc", "show"]]
    out = []
    for cmd in cmds:
        if shutil.which(cmd[0]):
            proc = subprocess.run(["nsenter", "-t", pid, "-n", *cmd], capture_output=True, text=True, timeout=20)
        else:  # the host lacks the tool: the lab image has it
            proc = subprocess.run(
                [
                    "docker",
                    "run",
                    "--rm",
                    f"--network=container:{c.id}",
                    "--cap-add",
                    "NET_ADMIN",
                    "--entrypoint",
                    cmd[0],
                    "wobble/python:dev",
                    *cmd[1:],
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
        out.append(proc.stdout)
    return "\n".join(out)


def leftovers(service: str) -> list[str]:
    dump = netns_dump(service)
    return [ln for ln in dump.splitlines() if any(w.lower() in ln.lower() for w in LEFTOVER)]


def toxics(proxy: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{TOXIPROXY_API}/proxies/{proxy}/toxics", timeout=3) as resp:
        data: list[dict[str, Any]] = json.loads(resp.read())
    return data


def wardens() -> list[Any]:
    return list(dockerctl.client().containers.list(all=True, filters={"label": "wobble.chaos.fault"}))


def fault_add(kind: str, target: str, duration: str = "60s", *args: str) -> str:
    proc = run_wobble("fault", "add", kind, "--target", target, "--for", duration, *args)
    assert proc.returncode == 0, proc.stderr[-1500:]
    return proc.stdout.strip().splitlines()[-1]


def test_backends_are_probed(clean_faults: None) -> None:
    proc = run_wobble("fault", "backends", "--json")
    assert proc.returncode == 0, proc.stderr
    found = last_json(proc.stdout)
    assert found["loss"] in ("nft", "netem")
    assert found["delay"] in ("nfqueue", "netem")
    assert found["pause"] == "docker" and found["latency"] == "toxiproxy-api"


def test_loss_shows_on_a_real_call_and_clears_without_trace(clean_faults: None) -> None:
    fid = fault_add("loss", "media-a", "60s", "--pct", "20")
    listed: list[dict[str, Any]] = json.loads(run_wobble("fault", "list", "--json").stdout.strip().splitlines()[-1])
    assert [f["id"] for f in listed] == [fid]
    assert leftovers("media-a"), "a live loss fault left no rule in media-a's namespace"
    call = run_wobble("call", "--region", "region-a", "--hold", "8", "--json")
    assert call.returncode == 0, call.stderr[-1500:]
    assert 12 <= last_json(call.stdout)["loss_pct"] <= 28
    assert run_wobble("fault", "clear").returncode == 0
    assert json.loads(run_wobble("fault", "list", "--json").stdout) == []
    assert leftovers("media-a") == []
    assert wardens() == []


def test_bad_input_is_refused_and_nothing_is_applied(clean_faults: None) -> None:
    cases = [
        (["fault", "add", "lose", "--target", "media-a", "--for", "10s"], "unknown fault"),
        (["fault", "add", "loss", "--target", "media-z", "--for", "10s", "--pct", "5"], "media-z"),
        (["fault", "add", "loss", "--target", "media-a", "--for", "-5s", "--pct", "5"], "positive"),
        (["fault", "add", "loss", "--target", "media-a", "--for", "10s", "--pct", "150"], "pct"),
        (
            ["fault", "add", "loss", "--target", "media-a", "--for", "10s", "--pct", "5", "--backend", "ebpf"],
            "unknown backend",
        ),
    ]
    for args, needle in cases:
        proc = run_wobble(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert json.loads(run_wobble("fault", "list", "--json").stdout) == []
    assert wardens() == []
    assert leftovers("media-a") == []


def test_sip_503_answers_invites_with_retry_after(clean_faults: None) -> None:
    fault_add("sip_503", "sbc-a", "60s", "--pct", "100")
    call = run_wobble("call", "--region", "region-a", "--hold", "1", "--json")
    assert call.returncode == 1
    assert last_json(call.stdout)["final_code"] == 503
    run_wobble("fault", "clear")
    call = run_wobble("call", "--region", "region-a", "--hold", "1", "--json")
    assert call.returncode == 0, call.stderr[-1500:]


def test_pause_and_partition_revert(clean_faults: None) -> None:
    fault_add("pause", "crm", "60s")
    assert container_of("crm").attrs["State"]["Paused"] is True
    fault_add("partition", "pbx-b", "60s", "--network", "backbone")
    nets = container_of("pbx-b").attrs["NetworkSettings"]["Networks"]
    assert "wobble_backbone" not in nets
    run_wobble("fault", "clear")
    assert container_of("crm").attrs["State"]["Paused"] is False
    nets = container_of("pbx-b").attrs["NetworkSettings"]["Networks"]
    assert nets["wobble_backbone"]["IPAddress"] == "10.77.9.32"


def test_toxic_slows_the_dependency_through_the_proxy(clean_faults: None) -> None:
    def fetch_s() -> float:
        t0 = time.monotonic()
        with urllib.request.urlopen("http://10.77.1.60:8091/healthz", timeout=10) as resp:
            resp.read()
        return time.monotonic() - t0

    fault_add("latency", "crm", "60s", "--ms", "400")
    assert [t["name"] for t in toxics("crm")], "no toxic on the crm proxy"
    assert fetch_s() >= 0.4
    run_wobble("fault", "clear")
    assert toxics("crm") == []


def test_kill_9_of_the_controller_reverts_everything_within_the_ttl(clean_faults: None) -> None:
    fault_add("loss", "media-b", "120s", "--pct", "30")  # nft
    fault_add("delay", "sbc-b", "120s", "--ms", "50")  # NFQUEUE + userspace delay line
    fault_add("pause", "crm", "120s")  # docker
    fault_add("latency", "idp", "120s", "--ms", "300")  # toxiproxy
    assert leftovers("media-b") and leftovers("sbc-b") and toxics("idp")
    chaos = dockerctl.service_container("chaos")
    # `docker kill` is a manual stop, which docker never restarts (restart: unless-stopped): this is
    # the controller that does not come back (tests/lab/test_restart.py has the one that does).
    subprocess.run(["docker", "kill", "--signal", "KILL", chaos.id], check=True, capture_output=True)
    try:
        # the leases lapse TTL_S after the controller's last renewal: the wardens revert by themselves
        wait_until(
            lambda: not leftovers("media-b") and not leftovers("sbc-b") and not toxics("idp"),
            TTL_S + 10.0,
            "the wardens to revert their faults once their leases lapsed",
            every=0.5,
        )
        assert leftovers("media-b") == []
        assert leftovers("sbc-b") == []
        assert container_of("crm").attrs["State"]["Paused"] is False
        assert toxics("idp") == []
    finally:
        subprocess.run(["docker", "start", chaos.id], check=True, capture_output=True)
        wait_until(
            lambda: dockerctl.health(chaos) == "healthy", 60, "the restarted chaos controller healthy", every=0.5
        )
    assert json.loads(run_wobble("fault", "list", "--json").stdout) == []
