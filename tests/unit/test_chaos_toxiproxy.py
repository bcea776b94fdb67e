"""Contract of our Toxiproxy-API server (chaos.toxiproxy), driven only through `toxiproxy-python`.

The server runs in-process on its own event-loop thread, on loopback with random ports, so the
synchronous client (requests) is called from the test thread as any user would call it. Toxics
are checked against real loopback upstreams: a TCP echo server, an HTTP/1.1 server and a UDP echo
server. Timing assertions are lower bounds or wide windows (shared, noisy machine).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from chaos.toxiproxy.api import Server
from tests.unit.loopback import ROOT, free_port

# ---------------------------------------------------------------- upstreams and the server


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass


class _Tcp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # head and body in one write (unbuffered, Nagle holds the body ~40 ms)
    hits = 0
    lock = threading.Lock()

    def _answer(self, body: bytes) -> None:
        with _Http.lock:
            _Http.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(b"ok")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def log_message(self, *args: Any) -> None:
        pass


class _ServerThread:
    """Our server on its own event loop in a thread: the client under test is synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = Server()

    def start(self) -> int:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start("127.0.0.1", 0), self.loop).result(10)
        return self.server.port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def api() -> Iterator[Toxiproxy]:
    st = _ServerThread()
    port = st.start()
    server = Toxiproxy()
    server.update_api_consumer("127.0.0.1", port)
    yield server
    st.stop()


@pytest.fixture(autouse=True)
def clean(api: Toxiproxy) -> Iterator[None]:
    yield
    api.destroy_all()


@pytest.fixture(scope="module")
def echo() -> Iterator[int]:
    srv = _Tcp(("127.0.0.1", 0), _Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def http_upstream() -> Iterator[int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Http)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def udp_echo() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            sock.sendto(data, addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()[1]
    stop.set()
    t.join(2)
    sock.close()


def port_of(proxy: Any) -> int:
    return int(str(proxy.listen).rsplit(":", 1)[1])


def tcp_proxy(api: Toxiproxy, name: str, upstream_port: int) -> tuple[Any, int]:
    proxy = api.create(upstream=f"127.0.0.1:{upstream_port}", name=name)
    return proxy, port_of(proxy)


def connect(port: int, timeout: float = 3.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            break
        buf += data
    return buf


def recv_all(sock: socket.socket) -> bytes:
    buf = b""
    while data := sock.recv(65536):
        buf += data
    return buf


def assert_closed(sock: socket.socket) -> None:
    """The proxy closed this connection: EOF, or a reset, within a few seconds."""
    sock.settimeout(3)
    try:
        sock.sendall(b"?")
        assert sock.recv(10) == b""
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        sock.close()


def echo_rtt(port: int, payload: bytes = b"ping") -> float:
    with connect(port) as s:
        t0 = time.monotonic()
        s.sendall(payload)
        assert recv_exact(s, len(payload)) == payload
        return time.monotonic() - t0


def error_of(exc: BaseException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.args[0])
    return body


# ---------------------------------------------------------------- the API


def test_version_and_running(api: Toxiproxy) -> None:
    assert api.running()
    assert "version" in json.loads(api.version())


def test_proxy_lifecycle_create_list_disable_enable_destroy(api: Toxiproxy, echo: int) -> None:
    proxy, port = tcp_proxy(api, "echo", echo)
    assert proxy.enabled and proxy.upstream == f"127.0.0.1:{echo}" and port > 0
    with pytest.raises(ProxyExists):
        api.create(upstream=f"127.0.0.1:{echo}", name="echo")
    listed = api.proxies()
    assert set(listed) == {"echo"} and listed["echo"].listen == proxy.listen
    shown = APIConsumer.get("/proxies/echo").json()
    assert shown == {
        "name": "echo",
        "listen": proxy.listen,
        "upstream": f"127.0.0.1:{echo}",
        "enabled": True,
        "protocol": "tcp",
        "toxics": [],
    }
    assert echo_rtt(port) >= 0

    held = connect(port)
    held.sendall(b"a")
    assert recv_exact(held, 1) == b"a"
    proxy.disable()  # proxy down: the listener and live connections go
    assert api.get_proxy("echo").enabled is False
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    assert_closed(held)

    proxy.enable()  # back on the same port
    assert api.get_proxy("echo").enabled is True
    assert echo_rtt(port) >= 0
    assert proxy.destroy()
    assert api.get_proxy("echo") is None
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    with pytest.raises(NotFound):
        proxy.destroy()


def test_create_disabled_then_update_fields(api: Toxiproxy, echo: int) -> None:
    proxy = api.create(upstream="127.0.0.1:9", name="later", enabled=False)
    assert proxy.enabled is False
    with pytest.raises(ConnectionRefusedError):
        connect(port_of(proxy))
    listen = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    body = APIConsumer.post("/proxies/later", json={"upstream": f"127.0.0.1:{echo}", "listen": listen}).json()
    assert body["upstream"] == f"127.0.0.1:{echo}" and body["listen"] == listen and body["enabled"] is False
    body = APIConsumer.post("/proxies/later", json={"enabled": True}).json()
    assert body["enabled"] is True and body["listen"] == listen
    assert echo_rtt(port_of(api.get_proxy("later"))) >= 0


def test_populate_creates_keeps_and_replaces(api: Toxiproxy, echo: int) -> None:
    one = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    two = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    wanted = [
        {"name": "one", "listen": one, "upstream": f"127.0.0.1:{echo}", "enabled": True},
        {"name": "two", "listen": two, "upstream": f"127.0.0.1:{echo}"},
    ]
    resp = APIConsumer.post("/populate", json=wanted)
    assert resp.status_code == 201
    proxies = resp.json()["proxies"]
    assert [p["name"] for p in proxies] == ["one", "two"] and all(p["enabled"] for p in proxies)
    assert echo_rtt(int(two.rsplit(":", 1)[1])) >= 0

    # The same again keeps them (a toxic survives); a changed upstream replaces the proxy.
    api.get_proxy("one").add_toxic(type="latency", attributes={"latency": 1})
    again = APIConsumer.post("/populate", json=wanted).json()["proxies"]
    assert [len(p["toxics"]) for p in again] == [1, 0]
    wanted[0]["upstream"] = "127.0.0.1:9"
    replaced = APIConsumer.post("/populate", json=wanted).json()["proxies"]
    assert replaced[0]["upstream"] == "127.0.0.1:9" and replaced[0]["toxics"] == []

    with pytest.raises(InvalidToxic) as bad:
        APIConsumer.post("/populate", json=[{"name": "three", "listen": "127.0.0.1:0"}])
    assert error_of(bad.value) == {"error": "missing required field: upstream at proxy 1", "status": 400}
    assert set(api.proxies()) == {"one", "two"}

    # The client's own populate helper (create per proxy) works against us too.
    made = api.populate([{"name": "four", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo}"}])
    assert [p.name for p in made] == ["four"]


def test_errors_are_json_with_the_field_named(api: Toxiproxy, echo: int) -> None:
    proxy, _ = tcp_proxy(api, "err", echo)
    with pytest.raises(NotFound) as nf:
        APIConsumer.get("/proxies/nope")
    assert error_of(nf.value) == {"error": "proxy not found: nope", "status": 404}
    with pytest.raises(NotFound) as nf:
        APIConsumer.get("/no/such/path")
    assert error_of(nf.value)["status"] == 404
    with pytest.raises(NotFound):
        APIConsumer.get("/proxies/err/toxics/nope")
    with pytest.raises(InvalidToxic) as bad:
        APIConsumer.post("/proxies", json={"name": "x"})
    assert error_of(bad.value)["error"] == "missing required field: upstream"
    with pytest.raises(InvalidToxic) as bad:
        APIConsumer.post("/proxies", json={"name": "x", "upstream": "nowhere"})
    assert "upstream" in error_of(bad.value)["error"]
    with pytest.raises(InvalidToxic) as bad:
        APIConsumer.post("/proxies", data=b"{not json", headers={"Content-Type": "application/json"})
    assert error_of(bad.value)["error"].startswith("bad request body")

    cases = {
        "invalid toxic type": {"type": "nonsense"},
        "stream was invalid": {"type": "latency", "stream": "sideways"},
        "attributes.latency": {"type": "latency", "attributes": {"latency": -5}},
        "attributes.ms: unknown attribute": {"type": "latency", "attributes": {"ms": 100}},
        "toxicity": {"type": "latency", "toxicity": 1.5},
        "size_variation must be smaller": {"type": "slicer", "attributes": {"average_size": 4, "size_variation": 4}},
        "does not apply to tcp": {"type": "loss", "attributes": {"probability": 0.5}},
        "attributes.status": {"type": "http_error", "attributes": {"status": 200}},
    }
    for needle, toxic in cases.items():
        with pytest.raises(InvalidToxic) as bad:
            proxy.add_toxic(**toxic)
        err = error_of(bad.value)
        assert needle in err["error"] and err["status"] == 400, (toxic, err)

    proxy.add_toxic(type="latency", attributes={"latency": 10})
    with pytest.raises(ProxyExists) as dup:  # the client maps every 409, toxics' too
        proxy.add_toxic(type="latency", attributes={"latency": 20})
    assert error_of(dup.value) == {"error": "toxic already exists: latency_downstream", "status": 409}


def test_toxic_add_show_update_remove_and_reset(api: Toxiproxy, echo: int) -> None:
    proxy, _ = tcp_proxy(api, "tox", echo)
    proxy.add_toxic(type="latency", attributes={"latency": 100, "jitter": 10})
    proxy.add_toxic(type="bandwidth", name="slow_up", stream="upstream", toxicity=0.5, attributes={"rate": 64})
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "slow_up"}
    assert toxics["slow_up"].stream == "upstream" and toxics["slow_up"].toxicity == 0.5
    assert toxics["latency_downstream"].attributes == {"latency": 100, "jitter": 10}
    shown = APIConsumer.get("/proxies/tox/toxics/slow_up").json()
    assert shown == {
        "name": "slow_up",
        "type": "bandwidth",
        "stream": "upstream",
        "toxicity": 0.5,
        "attributes": {"rate": 64},
    }

    # Update merges attributes and may change toxicity; nothing else.
    updated = APIConsumer.post("/proxies/tox/toxics/latency_downstream", json={"attributes": {"latency": 250}}).json()
    assert updated["attributes"] == {"latency": 250, "jitter": 10} and updated["toxicity"] == 1.0
    updated = APIConsumer.post("/proxies/tox/toxics/slow_up", json={"toxicity": 1}).json()
    assert updated["toxicity"] == 1.0 and updated["attributes"] == {"rate": 64}
    with pytest.raises(NotFound):
        APIConsumer.post("/proxies/tox/toxics/nope", json={"toxicity": 1})

    assert proxy.destroy_toxic("slow_up")
    assert set(proxy.toxics()) == {"latency_downstream"}
    with pytest.raises(NotFound):
        proxy.destroy_toxic("slow_up")

    proxy.disable()
    assert api.reset()
    after = api.get_proxy("tox")
    assert after.enabled is True and after.toxics() == {}


# ---------------------------------------------------------------- TCP toxics


def test_latency_delays_then_removal_restores(api: Toxiproxy, echo: int) -> None:
    proxy, port = tcp_proxy(api, "lat", echo)
    proxy.add_toxic(type="latency", attributes={"latency": 500})
    assert echo_rtt(port) >= 0.48
    with connect(port) as s:  # every chunk is delayed by the latency, not by latencies added up
        t0 = time.monotonic()
        for _ in range(4):
            s.sendall(b"x")
            time.sleep(0.05)
        assert recv_exact(s, 4) == b"xxxx"
        assert 0.48 <= time.monotonic() - t0 < 1.9
    proxy.destroy_toxic("latency_downstream")
    assert echo_rtt(port) < 0.45


def test_toxicity_zero_spares_connections(api: Toxiproxy, echo: int) -> None:
    proxy, port = tcp_proxy(api, "spared", echo)
    proxy.add_toxic(type="latency", toxicity=0.0, attributes={"latency": 1000})
    assert echo_rtt(port) < 0.9


def test_bandwidth_caps_throughput(api: Toxiproxy, echo: int) -> None:
    proxy, port = tcp_proxy(api, "bw", echo)
    proxy.add_toxic(type="bandwidth", attributes={"rate": 50})  # 50 KB/s downstream
    payload = os.urandom(50_000)
    with connect(port, timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(payload)
        assert recv_exact(s, len(payload)) == payload
        assert time.monotonic() - t0 >= 0.8  # 1 s at the rate


def test_timeout_stops_data_and_closes_after_timeout(api: Toxiproxy, echo: int) -> None:
    proxy, port = tcp_proxy(api, "to", echo)
    proxy.add_toxic(type="timeout", attributes={"timeout": 500})
    with connect(port) as s:
        t0 = time.monotonic()
        s.sendall(b"hello")
        assert recv_all(s) == b""  # nothing got through, then the close
        assert 0.45 <= time.monotonic() - t0 < 3.0


def test_timeout_zero_hangs_until_removed(api: Toxiproxy, echo: int) -> None:
    proxy, port = tcp_proxy(api, "hang", echo)
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    with connect(port) as s:
        s.sendall(b"hello")
        s.settimeout(0.7)
        with pytest.raises(TimeoutError):
            s.recv(10)
        s.settimeout(3)
        proxy.destroy_toxic("timeout_downstream")  # upstream closes what the timeout starved
        assert_closed(s)


def test_reset_peer_resets(api: Toxiproxy, echo: int) -> None:
    proxy, port = tcp_proxy(api, "rst", echo)
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 300})
    with connect(port) as s:
        t0 = time.monotonic()
        s.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            s.recv(10)
        assert time.monotonic() - t0 >= 0.28


def test_slow_close_delays_the_close(api: Toxiproxy, echo: int) -> None:
    proxy, port = tcp_proxy(api, "sc", echo)
    proxy.add_toxic(type="slow_close", attributes={"delay": 600})
    with connect(port) as s:
        s.sendall(b"bye")
        assert recv_exact(s, 3) == b"bye"
        t0 = time.monotonic()
        s.shutdown(socket.SHUT_WR)  # the echo server then closes; we see it 600 ms late
        assert recv_all(s) == b""
        assert time.monotonic() - t0 >= 0.55


def test_slicer_splits_writes(api: Toxiproxy, echo: int) -> None:
    proxy, port = tcp_proxy(api, "slice", echo)
    proxy.add_toxic(type="slicer", attributes={"average_size": 10, "size_variation": 4, "delay": 20_000})
    payload = os.urandom(200)
    with connect(port) as s:
        t0 = time.monotonic()
        s.sendall(payload)
        reads = []
        while sum(map(len, reads)) < len(payload):
            reads.append(s.recv(4096))
            assert reads[-1]
        assert b"".join(reads) == payload
        assert len(reads) >= 4 and time.monotonic() - t0 >= 0.15  # ~16 slices 20 ms apart


def test_limit_data_closes_after_n_bytes(api: Toxiproxy, echo: int) -> None:
    proxy, port = tcp_proxy(api, "limit", echo)
    proxy.add_toxic(type="limit_data", attributes={"bytes": 100})
    payload = os.urandom(300)
    with connect(port) as s:
        s.sendall(payload)
        assert recv_all(s) == payload[:100]


def test_http_error_answers_instead_of_forwarding(api: Toxiproxy, http_upstream: int) -> None:
    proxy, port = tcp_proxy(api, "crm", http_upstream)
    proxy.add_toxic(type="http_error", attributes={"rate": 1.0, "status": 429, "retry_after": 7})
    hits = _Http.hits
    conn = HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(2):  # keep-alive: the connection carries on after an injected answer
        conn.request("GET", "/v1/customers/1")
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 429 and resp.getheader("Retry-After") == "7" and body["status"] == 429
    assert _Http.hits == hits  # never reached the upstream

    APIConsumer.post("/proxies/crm/toxics/http_error_downstream", json={"attributes": {"rate": 0.0, "status": 503}})
    conn.request("GET", "/v1/customers/1")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"ok" and _Http.hits == hits + 1

    # Half the requests answered by the proxy; bodies of both kinds keep the framing intact.
    APIConsumer.post("/proxies/crm/toxics/http_error_downstream", json={"attributes": {"rate": 0.5}})
    statuses = []
    for i in range(200):
        payload = f"request {i}".encode()
        conn.request("POST", "/v1/notes", body=payload)
        resp = conn.getresponse()
        body_bytes = resp.read()
        statuses.append(resp.status)
        if resp.status == 200:
            assert body_bytes == payload
    errors = statuses.count(503)
    assert set(statuses) == {200, 503} and 60 <= errors <= 140
    assert _Http.hits == hits + 1 + (200 - errors)
    conn.close()

    # A request that asks for the connection to close gets its answer, then the close.
    APIConsumer.post("/proxies/crm/toxics/http_error_downstream", json={"attributes": {"rate": 1.0}})
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: crm\r\nConnection: close\r\n\r\n")
        answer = recv_all(s)
    assert (
        answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and b"\r\nRetry-After: 7\r\n" in answer
    )  # merged updates kept it


# ---------------------------------------------------------------- UDP (our extension)


def udp_proxy(name: str, upstream_port: int) -> tuple[Any, int]:
    body = APIConsumer.post(
        "/proxies",
        json={"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream_port}", "protocol": "udp"},
    ).json()
    assert body["protocol"] == "udp" and body["enabled"] is True
    proxy = Toxiproxy().get_proxy(name)
    return proxy, port_of(proxy)


def udp_client(timeout: float = 2.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(timeout)
    return s


def test_udp_relay_and_latency(api: Toxiproxy, udp_echo: int) -> None:
    proxy, port = udp_proxy("rtp", udp_echo)
    with udp_client() as s:
        s.sendto(b"hello", ("127.0.0.1", port))
        assert s.recvfrom(100)[0] == b"hello"
        proxy.add_toxic(type="latency", attributes={"latency": 200, "jitter": 0})
        t0 = time.monotonic()
        s.sendto(b"slow", ("127.0.0.1", port))
        assert s.recvfrom(100)[0] == b"slow"
        assert time.monotonic() - t0 >= 0.19
    with pytest.raises(InvalidToxic) as bad:
        proxy.add_toxic(type="slicer", attributes={"average_size": 10})
    assert "does not apply to udp" in error_of(bad.value)["error"]


def test_udp_loss_probability(api: Toxiproxy, udp_echo: int) -> None:
    proxy, port = udp_proxy("lossy", udp_echo)
    proxy.add_toxic(type="loss", stream="upstream", attributes={"probability": 0.3})
    got: set[int] = set()
    with udp_client(timeout=0.5) as s:

        def receive() -> None:
            while True:
                try:
                    got.add(int(s.recvfrom(64)[0]))
                except (TimeoutError, OSError):
                    return

        reader = threading.Thread(target=receive)
        reader.start()
        for i in range(2000):  # paced (~2000/s), so the only loss is the toxic's
            s.sendto(str(i).encode(), ("127.0.0.1", port))
            if i % 10 == 9:
                time.sleep(0.005)
        reader.join(10)
    assert 1200 <= len(got) <= 1520, len(got)  # expected 1400, sd ~20; the low side allows real drops


def test_udp_timeout_drops_everything(api: Toxiproxy, udp_echo: int) -> None:
    proxy, port = udp_proxy("dropped", udp_echo)
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    with udp_client(timeout=0.5) as s:
        for _ in range(20):
            s.sendto(b"x", ("127.0.0.1", port))
        with pytest.raises(TimeoutError):
            s.recvfrom(10)
        proxy.destroy_toxic("timeout_downstream")
        s.settimeout(2)
        s.sendto(b"back", ("127.0.0.1", port))
        assert s.recvfrom(10)[0] == b"back"


def test_udp_bandwidth_paces_datagrams(api: Toxiproxy, udp_echo: int) -> None:
    proxy, port = udp_proxy("narrow", udp_echo)
    proxy.add_toxic(type="bandwidth", stream="upstream", attributes={"rate": 20})  # 20 KB/s
    with udp_client() as s:
        t0 = time.monotonic()
        for _ in range(10):
            s.sendto(b"x" * 1000, ("127.0.0.1", port))
        for _ in range(10):
            s.recvfrom(2000)
        assert time.monotonic() - t0 >= 0.4  # 10 KB at 20 KB/s


def test_udp_proxy_down(api: Toxiproxy, udp_echo: int) -> None:
    proxy, port = udp_proxy("down", udp_echo)
    proxy.disable()
    with udp_client(timeout=0.5) as s:
        s.sendto(b"x", ("127.0.0.1", port))
        with pytest.raises((TimeoutError, ConnectionRefusedError)):
            s.recvfrom(10)
    proxy.enable()
    with udp_client() as s:
        s.sendto(b"up", ("127.0.0.1", port))
        assert s.recvfrom(10)[0] == b"up"


# ---------------------------------------------------------------- the CLI


def test_cli_config_file_and_sigterm(tmp_path: Path, echo: int, udp_echo: int) -> None:
    api_port = free_port(socket.SOCK_STREAM)
    tcp_listen = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    udp_listen = f"127.0.0.1:{free_port()}"
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps(
            [
                {"name": "tcp", "listen": tcp_listen, "upstream": f"127.0.0.1:{echo}", "enabled": True},
                {
                    "name": "udp",
                    "listen": udp_listen,
                    "upstream": f"127.0.0.1:{udp_echo}",
                    "enabled": True,
                    "protocol": "udp",
                },
            ]
        )
    )
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaos.toxiproxy", "--port", str(api_port), "--config", str(config)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    saved = (APIConsumer.host, APIConsumer.port)
    try:
        client = Toxiproxy()
        client.update_api_consumer("127.0.0.1", api_port)
        deadline = time.monotonic() + 10
        while not client.running():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.05)
        proxies = client.proxies()
        assert {n: p.listen for n, p in proxies.items()} == {"tcp": tcp_listen, "udp": udp_listen}
        assert echo_rtt(int(tcp_listen.rsplit(":", 1)[1])) >= 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        with pytest.raises(ConnectionRefusedError):
            connect(int(tcp_listen.rsplit(":", 1)[1]))
    finally:
        APIConsumer.host, APIConsumer.port = saved
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "x", "listen": "127.0.0.1:0"}]))
    run = subprocess.run(
        [sys.executable, "-m", "chaos.toxiproxy", "-port", "0", "-config", str(config)],  # upstream's flags
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode == 1 and "missing required field: upstream at proxy 1" in run.stderr
