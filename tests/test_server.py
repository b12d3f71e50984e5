"""The real thing: `pgx-loop serve` under uvicorn on a free port, called over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.cds_conformance import conformance_problems
from tests.conftest import REPOSITORY
from tests.fhirdata import example


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PGX_LOOP_VAR_DIR": str(tmp_path / "var")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pgx_loop.cli", "serve", "--port", str(port)],
        cwd=REPOSITORY,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/cds-services", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"server did not start:\n{process.communicate()[0]}")
    yield base
    process.terminate()
    process.wait(timeout=10)


def test_a_real_server_answers_discovery_and_a_hook_call(server):
    assert len(httpx.get(f"{server}/cds-services").json()["services"]) == 2
    body = example("order-select-poor-metabolizer.json")
    response = httpx.post(f"{server}/cds-services/pgx-order-select", json=body, timeout=10)
    assert response.status_code == 200
    payload = response.json()
    assert conformance_problems(payload, body) == []
    assert payload["cards"][0]["indicator"] == "critical"
    response = httpx.post(
        f"{server}/cds-services/pgx-order-select", content=b"[", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
