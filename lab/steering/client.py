"""The host's view of steering: its HTTP API and its DNS, as a caller or an operator uses them."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from typing import Any

from dnslib import DNSRecord

from core.dnssrv import SrvTarget, order_srv, parse_srv_reply
from core.errors import BadInput, LabNotUp, WobbleError
from core.settings import HostSettings
from core.topology import Topology


def token() -> str:
    """The operator token: WOBBLE_TOKEN, else the lab's default (core.settings.OPERATOR_TOKEN)."""
    return HostSettings.from_env().token


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


def srv_targets(zone: str = "cx.lab", rng: random.Random | None = None, timeout: float = 1.0) -> list[SrvTarget]:
    """`_sip._udp.<zone>` from the steering DNS, ordered as RFC 2782 says (priority, then weighted)."""
    topo = Topology.default()
    q = DNSRecord.question(f"_sip._udp.{zone}", "SRV")
    try:
        packet = q.send(topo.steering_ip, 53, timeout=timeout)
    except OSError as exc:
        raise LabNotUp(f"steering DNS does not answer at {topo.steering_ip}:53 ({exc}); start the lab") from None
    records, _ttl = parse_srv_reply(packet)
    return order_srv(records, rng or random.Random())
