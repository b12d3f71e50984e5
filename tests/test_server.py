"""The real thing: `pgx-loop serve` under uvicorn on a free port, called over TCP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.cds_conformance import conformance_problems
from tests.fhirdata import example
from tests.live_server import LiveServer


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    with LiveServer(tmp_path / "var") as live:
        yield live.base


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
