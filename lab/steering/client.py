"""The host's view of steering: its HTTP API and its DNS, as a caller or an operator uses them."""

from __future__ import annotations

import json
import os
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from dnslib import QTYPE, DNSRecord

from lab.errors import BadInput, LabNotUp, WobbleError
from lab.topology import Topology

DEFAULT_TOKEN = "wobble-operator"  # the lab's default; set WOBBLE_TOKEN to use another


def token() -> str:
    return os.environ.get("WOBBLE_TOKEN", DEFAULT_TOKEN)


def request(path: str, body: dict[str, Any] | None = None, auth: bool = False, timeout: float = 3.0) -> Any:
    url = Topology.default().steering_url + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", f"Bearer {token()}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            msg = exc.reason
        if exc.code == 401:
            raise WobbleError(f"steering refused the operator token: {msg}; set WOBBLE_TOKEN") from None
        raise BadInput(f"steering said {exc.code}: {msg}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise LabNotUp(f"steering does not answer at {url} ({exc}); start the lab with `make up`") from None


@dataclass(frozen=True)
class SrvTarget:
    priority: int
    weight: int
    port: int
    host: str  # an address (from the additional section) or a name
    region: str


def srv_targets(zone: str = "cx.lab", rng: random.Random | None = None, timeout: float = 1.0) -> list[SrvTarget]:
    """`_sip._udp.<zone>` from the steering DNS, ordered as RFC 2782 says (priority, then weighted)."""
    topo = Topology.default()
    q = DNSRecord.question(f"_sip._udp.{zone}", "SRV")
    try:
        reply = DNSRecord.parse(q.send(topo.steering_ip, 53, timeout=timeout))
    except OSError as exc:
        raise LabNotUp(f"steering DNS does not answer at {topo.steering_ip}:53 ({exc}); start the lab") from None
    addresses = {str(rr.rname).rstrip("."): str(rr.rdata) for rr in reply.ar if rr.rtype == QTYPE.A}
    records = []
    for rr in reply.rr:
        if rr.rtype != QTYPE.SRV:
            continue
        name = str(rr.rdata.target).rstrip(".")
        letter = name.split(".", 1)[0].removeprefix("sbc-")
        records.append(SrvTarget(rr.rdata.priority, rr.rdata.weight, rr.rdata.port, addresses.get(name, name),
                                 f"region-{letter}"))  # fmt: skip
    return order_srv(records, rng or random.Random())


def order_srv(records: list[SrvTarget], rng: random.Random) -> list[SrvTarget]:
    """RFC 2782 selection order: ascending priority; within one, weighted random without replacement."""
    out: list[SrvTarget] = []
    for prio in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == prio]
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                pick = group[0]
            else:
                x = rng.uniform(0, total)
                acc = 0.0
                pick = group[-1]
                for r in group:
                    acc += r.weight
                    if x <= acc:
                        pick = r
                        break
            out.append(pick)
            group.remove(pick)
    return out
