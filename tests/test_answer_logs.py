"""Every answer that is not a success leaves a log line an integrator can use, and none holds PHI.

Read from the real output of `pgx-loop serve` (JWT authentication on, the access log on), after
calls that are refused in each way the service refuses them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from hooks.app import create_app
from hooks.settings import Settings
from tests.auth_app import EHR, write_issuers
from tests.conftest import RULES
from tests.fhirdata import genotype, hook_request
from tests.jwt_keys import claims
from tests.live_server import LiveServer

PATIENT = "pt-5KX81-confidential"
SELECT = "/cds-services/pgx-order-select"


def lines_of(server: LiveServer) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in server.output().splitlines() if line.strip()]


def answers(server: LiveServer, request_ids: set[str], timeout: float = 10.0) -> dict[str, dict[str, Any]]:
    """The answer lines, by request id, once all of ``request_ids`` are logged: the line is written after
    the answer is sent (its duration includes the sending), so the client can read it first."""
    deadline = time.monotonic() + timeout
    while True:
        logged = {line["request_id"]: line for line in lines_of(server) if line["logger"] == "hooks.access"}
        if request_ids <= logged.keys() or time.monotonic() > deadline:
            return logged
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path, keys, jwks_server):
    live = LiveServer(tmp_path / "var")
    live.env.update(
        PGX_LOOP_AUTH="jwt",
        PGX_LOOP_TRUSTED_ISSUERS=str(write_issuers(tmp_path, keys, jwks_server)),
        PGX_LOOP_PUBLIC_BASE_URL=live.base,
        PGX_LOOP_MAX_BODY_BYTES="4096",
        PGX_LOOP_ACCESS_LOG="on",
    )
    with live:
        yield live


def test_each_refusal_is_logged_with_status_reason_request_id_and_service(server, keys):
    def token(path: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + keys["ES384"].sign(claims(EHR, server.base + path))}

    card = hook_request(genotypes=[genotype("CYP2C19", "*2/*2", patient=PATIENT)], patient=PATIENT)
    no_results = hook_request(patient=PATIENT, prefetch={})  # nothing prefetched, no fhirServer: 412
    bad_field = hook_request(genotypes=[genotype("CYP2C19", "*2/*2", patient=PATIENT)], patient=PATIENT)
    bad_field["context"]["patientId"] = 42  # not a string: 400 naming the field
    big = {"hook": "order-select", "padding": PATIENT * 400}
    calls = {
        "ok": ("POST", SELECT, card, token(SELECT), 200),
        "no token": ("POST", SELECT, card, {}, 401),
        "wrong audience": ("POST", SELECT, card, token("/cds-services"), 401),
        "unknown service": ("POST", f"/cds-services/{PATIENT}", card, token(f"/cds-services/{PATIENT}"), 404),
        "bad json": ("POST", SELECT, b"{" + PATIENT.encode(), token(SELECT), 400),
        "bad field": ("POST", SELECT, bad_field, token(SELECT), 400),
        "no results": ("POST", SELECT, no_results, token(SELECT), 412),
        "too large": ("POST", SELECT, big, token(SELECT), 413),
        "no route": ("GET", f"/Patient/{PATIENT}", None, {}, 404),
        "wrong method": ("DELETE", "/status/rules", None, {}, 405),
    }
    ids = {}
    for name, (method, path, body, headers, status) in calls.items():
        content = body if isinstance(body, bytes) else orjson.dumps(body) if body is not None else None
        headers = {**headers, "Content-Type": "application/json", "X-Request-ID": f"case-{len(ids)}"}
        response = httpx.request(method, server.base + path, content=content, headers=headers, timeout=10)
        assert response.status_code == status, (name, response.text)
        ids[name] = response.headers["x-request-id"]

    logged = answers(server, set(ids.values()))
    expected = {
        "no token": ("WARNING", "missing_token", "pgx-order-select", "/cds-services/{service_id}"),
        "wrong audience": ("WARNING", "wrong_audience", "pgx-order-select", "/cds-services/{service_id}"),
        "unknown service": ("WARNING", "unknown_service", "unknown", "/cds-services/{service_id}"),
        "bad json": ("WARNING", "bad_request", "pgx-order-select", "/cds-services/{service_id}"),
        "bad field": ("WARNING", "bad_request", "pgx-order-select", "/cds-services/{service_id}"),
        "no results": ("WARNING", "prefetch_unavailable", "pgx-order-select", "/cds-services/{service_id}"),
        "too large": ("WARNING", "too_large", "pgx-order-select", "/cds-services/{service_id}"),
        "no route": ("WARNING", "not_found", None, "unmatched"),
        "wrong method": ("WARNING", "method_not_allowed", None, "/status/rules"),
    }
    for name, (level, reason, service, route) in expected.items():
        line = logged[ids[name]]
        assert (line["level"], line["reason"], line["service"], line["route"]) == (level, reason, service, route), name
        assert line["status"] == calls[name][4] and line["method"] == calls[name][0]
        assert line["duration_ms"] >= 0
    ok = logged[ids["ok"]]  # the access log is on: successes get a line too, at INFO, with no reason
    assert (ok["level"], ok["status"], ok["reason"]) == ("INFO", 200, None)

    output = server.output()
    assert PATIENT not in output  # not in a path, a body, a reason or a message
    assert "Bearer" not in output and "eyJ" not in output


def test_the_access_log_is_off_by_default_and_failures_are_logged_anyway(tmp_path, library, caplog):
    assert Settings().access_log is False
    settings = Settings(rules_dir=RULES, var_dir=tmp_path / "var")
    with TestClient(create_app(settings, library)) as client, caplog.at_level("INFO", logger="hooks.access"):
        assert client.get("/healthz").status_code == 200
        assert client.post(SELECT, content=b"[", headers={"Content-Type": "application/json"}).status_code == 400
    [line] = [record for record in caplog.records if record.name == "hooks.access"]
    assert line.levelname == "WARNING" and line.fields["status"] == 400 and line.fields["reason"] == "bad_request"


def test_the_route_template_never_the_raw_path(tmp_path: Path, library, caplog):
    settings = Settings(rules_dir=RULES, var_dir=tmp_path / "var", access_log=True)
    with TestClient(create_app(settings, library)) as client, caplog.at_level("INFO", logger="hooks.access"):
        client.get(f"/reports/{PATIENT}/")
        client.post(f"/cds-services/{PATIENT}/feedback", json={"feedback": []})
    text = "\n".join(f"{r.getMessage()} {r.fields}" for r in caplog.records if r.name == "hooks.access")
    assert PATIENT not in text
    assert "/reports/{stamp}/" in text and "/cds-services/{service_id}/feedback" in text
