"""Slow clients are cut off: a request's headers and body must arrive within PGX_LOOP_CLIENT_TIMEOUT_SECONDS.

Real sockets against `pgx-loop serve`, with a 1-second limit.
"""

from __future__ import annotations

import socket
import time

import httpx
import orjson
import pytest

from tests.fhirdata import genotype, hook_request
from tests.live_server import LiveServer

LIMIT = 1.0
SELECT = "/cds-services/pgx-order-select"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("deadline") / "var", env={"PGX_LOOP_CLIENT_TIMEOUT_SECONDS": str(LIMIT)})
    with live:
        yield live


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def trickle(sock: socket.socket, data: bytes, interval: float = 0.1, budget: float = 8.0) -> float:
    """Send ``data`` a byte at a time; the seconds until the server closed the connection (inf if it never did)."""
    started = time.monotonic()
    sock.setblocking(False)
    for byte in data:
        if closed(sock):
            return time.monotonic() - started
        try:
            sock.send(bytes([byte]))
        except OSError:  # reset or broken pipe: closed by the server
            return time.monotonic() - started
        if time.monotonic() - started > budget:
            break
        time.sleep(interval)
    return float("inf")


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_headers_sent_a_byte_at_a_time_are_cut_off(server):
    head = f"POST {SELECT} HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-Slow-{n}: {'a' * 20}\r\n" for n in range(20))
    with connect(server) as sock:
        elapsed = trickle(sock, head.encode())
    assert LIMIT * 0.8 <= elapsed <= LIMIT + 1.5, elapsed


def test_a_body_trickled_a_byte_at_a_time_is_cut_off(server):
    body = orjson.dumps(hook_request(genotypes=[genotype("CYP2C19", "*2/*2")]))
    head = f"POST {SELECT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(head.encode())
        elapsed = trickle(sock, body)
    assert LIMIT * 0.8 <= elapsed <= LIMIT + 1.5, elapsed


def test_a_connection_that_sends_nothing_is_closed(server):
    with connect(server) as sock:
        sock.settimeout(LIMIT + 3)
        started = time.monotonic()
        assert sock.recv(1024) == b""
        assert time.monotonic() - started <= LIMIT + 1.5


def test_prompt_clients_are_served_and_kept_alive_connections_too(server):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    with httpx.Client(base_url=server.base, timeout=5) as client:
        for _ in range(2):
            assert client.post(SELECT, json=body).json()["cards"][0]["indicator"] == "critical"
            time.sleep(LIMIT * 1.3)  # idle between requests is the keep-alive timeout's business, not this one's
            assert client.get("/healthz").status_code == 200


def test_the_cut_off_is_logged_without_the_request(server):
    output = server.output()
    assert f"its request did not arrive within {LIMIT:.1f} s" in output
    assert "client_disconnected" in output  # the trickled body's request, logged as the client's doing
