"""A full flow against the real server: every log line is JSON, none holds a token or a patient identifier.

The server runs as deployed (`pgx-loop serve` under uvicorn) with multiprocess metrics on, as
with several workers; its whole output is captured. The analytics scheduler is off: at exit,
Python's multiprocessing resource tracker (a separate process) may print a plain-text warning
about the process pool's semaphores after the server has gone, which no log setup reaches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.fhir_server import FhirServer
from tests.fhirdata import genotype, hook_request
from tests.live_server import LiveServer, free_port

PATIENT_ID = "pt-7Q2X9-confidential"
OTHER_PATIENT = "pt-other-88AB1"
FAMILY, GIVEN, MRN = "Quixotefield", "Zebulon", "MRN-99887766"
FHIR_TOKEN = "fhir-access-token-ZZ81x"
JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJlaHItY2xpZW50IiwianRpIjoianRpLTc3In0.U0lHTkFUVVJFLTk5"
SECRETS = (PATIENT_ID, OTHER_PATIENT, FAMILY, GIVEN, MRN, FHIR_TOKEN, JWT, *JWT.split("."))
SELECT = "/cds-services/pgx-order-select"


def patient_request(**kwargs: Any) -> dict[str, Any]:
    body = hook_request(patient=PATIENT_ID, **kwargs)
    body["prefetch"]["patient"] = {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "name": [{"family": FAMILY, "given": [GIVEN]}],
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": MRN}],
        "birthDate": "1961-04-02",
    }
    return body


def fallback_request(server: str) -> dict[str, Any]:
    body = patient_request()
    del body["prefetch"]["pgxGenotypes"], body["prefetch"]["pgxImplications"]
    body["fhirServer"] = server
    scope = f"patient/Observation.read launch/patient/{PATIENT_ID}"
    body["fhirAuthorization"] = {
        "access_token": FHIR_TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": scope, "subject": "pgx"
    }  # fmt: skip
    return body


def run_flow(base: str, fhir: FhirServer) -> list[str]:
    """Hook calls, FHIR fallbacks (working, failing, unreachable), feedback, bad input.

    Returns the request ids of the two calls whose prefetch holds another patient's result (a warning each).
    """
    headers = {"Authorization": f"Bearer {JWT}"}
    request_ids = []
    mine = genotype("CYP2C19", "*2/*2", patient=PATIENT_ID)
    stranger = genotype("CYP2C19", "*1/*1", patient=OTHER_PATIENT)  # skipped, with a warning line
    for extra in ({"X-Request-ID": "ehr-trace-0001"}, {}):
        body = patient_request(genotypes=[mine, stranger])
        response = httpx.post(f"{base}{SELECT}", json=body, headers={**headers, **extra})
        echoed = response.headers["x-request-id"]
        assert response.status_code == 200
        assert echoed == extra["X-Request-ID"] if extra else len(echoed) == 32
        request_ids.append(echoed)
    card = response.json()["cards"][0]

    fhir.observations = [genotype("CYP2C19", "*2/*2", patient=PATIENT_ID), stranger]
    response = httpx.post(f"{base}{SELECT}", json=fallback_request(fhir.base), headers=headers, timeout=10)
    assert response.status_code == 200 and response.json()["cards"]
    assert {auth for _, auth in fhir.requests} == {f"Bearer {FHIR_TOKEN}"}
    fhir.status = 500
    assert httpx.post(f"{base}{SELECT}", json=fallback_request(fhir.base), headers=headers).status_code == 412
    closed = f"http://127.0.0.1:{free_port()}/fhir"
    assert httpx.post(f"{base}{SELECT}", json=fallback_request(closed), headers=headers).status_code == 412

    feedback = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-22T10:06:00Z",
                "overrideReason": {"reason": {"system": "urn:pgx-loop:override-reason", "code": "stable-on-drug"},
                                   "userComment": f"{GIVEN} {FAMILY} ({MRN}) has been fine on it"}}  # fmt: skip
    response = httpx.post(f"{base}{SELECT}/feedback", json={"feedback": [feedback]}, headers=headers)
    assert response.json() == {"recorded": 1, "duplicates": 0}

    wrong = patient_request(genotypes=[mine])
    wrong["context"]["patientId"] = OTHER_PATIENT  # prefetch.patient is someone else: 400
    assert httpx.post(f"{base}{SELECT}", json=wrong, headers=headers).status_code == 400
    return request_ids


def test_logs_are_json_and_hold_no_secret(tmp_path: Path):
    metrics_dir = tmp_path / "prometheus"
    with (
        FhirServer() as fhir,  # on the service's list of FHIR servers (auth off: PGX_LOOP_FHIR_SERVERS)
        LiveServer(
            tmp_path / "var",
            workers=2,
            env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PGX_LOOP_FHIR_SERVERS": fhir.base},
        ) as server,
    ):
        request_ids = run_flow(server.base, fhir)
        metrics = httpx.get(f"{server.base}/metrics").text
    output = server.log_path
    text = output.read_text()
    lines = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(line, dict) and {"time", "level", "logger", "message"} <= line.keys() for line in lines)
    leaked = [secret for secret in SECRETS if secret in text]
    assert leaked == [], f"found {leaked} in the server's output"

    assert any(line["message"].startswith("Uvicorn running on") for line in lines)  # uvicorn's own lines too
    assert not [line for line in lines if line["logger"] in ("httpx", "httpcore")]  # URLs with patient ids
    warned = [line for line in lines if "subject is not the request's patient" in line["message"]]
    assert [line["request_id"] for line in warned] == request_ids

    assert list(metrics_dir.glob("*.db")), "multiprocess mode keeps the values in files"
    counts = {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "pgx_loop_hook_request_duration_seconds_count" and sample.labels["endpoint"] == "hook"
    }
    assert counts == {"200": 3, "412": 2, "400": 1}
