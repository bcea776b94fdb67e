"""The project's own Toxiproxy-API-compatible proxy server (TCP, and UDP as our extension).

No Toxiproxy server binary can be installed here, so this speaks upstream Toxiproxy 2.x's HTTP
API (any Toxiproxy client works, `toxiproxy-python` included) with upstream's toxics and their
attributes, plus:

- `"protocol": "udp"` on a proxy: a UDP relay with a session per client address; the toxics
  latency (+/- jitter per datagram), bandwidth, timeout (drops everything) and `loss`
  (attribute `probability`: the share of datagrams dropped) act per datagram.
- `http_error` on a TCP proxy in front of an HTTP/1.1 service: a `rate` share (0..1) of requests
  is answered by the proxy with `status` (e.g. 429 or 503) and `Retry-After: retry_after` instead
  of being forwarded. Add `latency` to the same proxy to slow the rest.

Run it: `python -m chaos.toxiproxy --host 0.0.0.0 --port 8474 [--config proxies.json]`.
Modules: `model` (JSON shapes, validation, errors), `toxics` (what each toxic does), `proxy`
(TCP), `udp` (UDP), `collection` (the proxies by name, populate, config file), `api` (HTTP).
"""
