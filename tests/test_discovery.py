"""Discovery (checklist D2-D4): GET /cds-services."""

from __future__ import annotations

import re

HOOKS = {"pgx-order-select": "order-select", "pgx-order-sign": "order-sign"}
TOKEN = re.compile(r"\{\{([^}]*)\}\}")
ROOT_CONTEXT_FIELDS = {"patientId", "userId", "encounterId"}
USER_TOKENS = {"userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}


def test_discovery_lists_both_order_hooks(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    services = response.json()["services"]
    assert {service["id"]: service["hook"] for service in services} == HOOKS


def test_each_service_has_the_required_fields(client):
    for service in client.get("/cds-services").json()["services"]:
        for field in ("hook", "description", "id", "title", "usageRequirements"):
            assert isinstance(service[field], str) and service[field].strip(), field
        assert re.fullmatch(r"[A-Za-z0-9\-._~]+", service["id"])  # URL-safe
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in service["prefetch"].items())


def test_prefetch_tokens_are_spec_tokens(client):
    for service in client.get("/cds-services").json()["services"]:
        for template in service["prefetch"].values():
            for token in TOKEN.findall(template):
                token = token.strip()
                assert token in USER_TOKENS or (
                    token.startswith("context.") and token.removeprefix("context.") in ROOT_CONTEXT_FIELDS
                ), token


def test_prefetch_asks_for_genotypes_and_implications(client):
    prefetch = client.get("/cds-services").json()["services"][0]["prefetch"]
    assert "code=http://loinc.org|84413-4" in prefetch["pgxGenotypes"]
    assert "therapeutic-implication" in prefetch["pgxImplications"]
    assert "53040-2" in prefetch["pgxImplications"]  # STU1 metabolism results still in the wild
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
