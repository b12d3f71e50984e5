"""When prefetch lacks the results, the service fetches them from the EHR's FHIR server (a listed one)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from hooks.app import create_app
from hooks.fhir.prefetch import UNREADABLE
from tests.fhirdata import genotype, hook_request

SELECT = "/cds-services/pgx-order-select"


@pytest.fixture
def client(settings, library, fhir_server):
    """The service with the test FHIR server on its list (PGX_LOOP_FHIR_SERVERS)."""
    listed = settings.model_copy(update={"fhir_servers": f"{fhir_server.base},http://127.0.0.1:9/fhir"})
    with TestClient(create_app(listed, library)) as test_client:
        yield test_client


def assert_unreadable(response, caplog, cause: str) -> None:
    """A 412 whose reason is the same whatever failed; the cause is in the log only."""
    assert response.status_code == 412
    assert [issue["diagnostics"] for issue in response.json()["issue"]] == [UNREADABLE]
    assert any(cause in record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING)


def fallback_request(fhir_server, **auth):
    body = hook_request()
    del body["prefetch"]
    body["fhirServer"] = fhir_server.base
    if auth:
        body["fhirAuthorization"] = {
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/Observation.read",
            "subject": "pgx-loop",
            **auth,
        }
    return body


def test_absent_keys_are_fetched_with_the_bearer_token(client, fhir_server):
    fhir_server.observations = [genotype("CYP2C19", "*2/*2")]
    response = client.post(SELECT, json=fallback_request(fhir_server, access_token="tok-abc"))
    assert response.status_code == 200
    assert response.json()["cards"][0]["indicator"] == "critical"
    paths = sorted(path for path, _ in fhir_server.requests)
    assert len(paths) == 2  # genotypes and implications, one search each
    assert all(path.startswith("/fhir/Observation?patient=example-patient-1&code=") for path in paths)
    assert {auth for _, auth in fhir_server.requests} == {"Bearer tok-abc"}


def test_an_open_fhir_server_is_queried_without_a_token(client, fhir_server):
    fhir_server.observations = [genotype("CYP2C19", "*1/*2")]
    response = client.post(SELECT, json=fallback_request(fhir_server))
    assert response.json()["cards"][0]["indicator"] == "warning"
    assert {auth for _, auth in fhir_server.requests} == {None}


def test_only_the_missing_key_is_fetched(client, fhir_server):
    fhir_server.observations = [genotype("CYP2C19", "*2/*2")]
    body = fallback_request(fhir_server)
    body["prefetch"] = {"pgxImplications": None}
    response = client.post(SELECT, json=body)
    assert response.json()["cards"][0]["indicator"] == "critical"
    assert len(fhir_server.requests) == 1 and "84413-4" in fhir_server.requests[0][0]


def test_an_operation_outcome_in_prefetch_is_fetched_again(client, fhir_server):
    fhir_server.observations = [genotype("CYP2C19", "*2/*2")]
    body = fallback_request(fhir_server)
    body["prefetch"] = {
        "pgxGenotypes": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]},
        "pgxImplications": None,
    }
    assert client.post(SELECT, json=body).json()["cards"][0]["indicator"] == "critical"


def test_all_pages_of_a_searchset_are_read(client, fhir_server):
    fhir_server.page_size = 1
    fhir_server.observations = [
        genotype("CYP2C19", "*1/*1", date="2019-01-01"),
        genotype("CYP2C19", "*2/*2", date="2024-01-01"),
    ]
    response = client.post(SELECT, json=fallback_request(fhir_server))
    card = response.json()["cards"][0]
    assert "disagree" in card["detail"]  # both pages' results were seen
    assert sum("84413-4" in path for path, _ in fhir_server.requests) == 2


@pytest.mark.parametrize("status", [401, 404, 500, 503])
def test_a_failing_fhir_server_gives_412(client, fhir_server, status, caplog):
    fhir_server.status = status
    response = client.post(SELECT, json=fallback_request(fhir_server, access_token="tok"))
    assert_unreadable(response, caplog, f"HTTP {status}")


def test_a_slow_fhir_server_gives_412_within_the_time_budget(client, fhir_server, settings, caplog):
    fhir_server.delay = 3 * settings.fhir_timeout
    response = client.post(SELECT, json=fallback_request(fhir_server))
    assert_unreadable(response, caplog, "no answer within")


def test_an_answer_that_is_not_json_gives_412(client, fhir_server, caplog):
    fhir_server.body = b"<html>login</html>"
    assert_unreadable(client.post(SELECT, json=fallback_request(fhir_server)), caplog, "not JSON")


def test_an_oversized_fhir_answer_gives_412_without_reading_it_all(settings, library, fhir_server, caplog):
    fhir_server.observations = [genotype("CYP2C19", "*2/*2", obs_id=f"g{n}") for n in range(50)]
    small = settings.model_copy(update={"fhir_max_bytes": 10_000, "fhir_servers": fhir_server.base})
    with TestClient(create_app(small, library)) as client:
        response = client.post(SELECT, json=fallback_request(fhir_server))
    assert_unreadable(response, caplog, "more than 10000 bytes")


def test_an_unreachable_fhir_server_gives_412(client, caplog):
    body = hook_request()
    del body["prefetch"]
    body["fhirServer"] = "http://127.0.0.1:9/fhir"  # listed, on the discard port: nothing listens
    assert_unreadable(client.post(SELECT, json=body), caplog, "unreachable")


def test_the_token_is_never_sent_to_another_host(client, fhir_server, caplog):
    page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": "http://attacker.invalid/fhir/Observation?page=2"}],
    }
    body = fallback_request(fhir_server, access_token="tok")
    body["prefetch"] = {"pgxGenotypes": page, "pgxImplications": None}
    assert_unreadable(client.post(SELECT, json=body), caplog, "outside fhirServer")
