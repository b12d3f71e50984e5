"""Every rule's worked examples, replayed as real CDS Hooks calls through the service.

For each example in each rule file: the genotype goes into prefetch as FHIR Observations, the
drug into a draft MedicationRequest, diagnoses into a Conditions prefetch and the age (and sex) into the
Patient; the response must be conformant and carry the expected card (or none).
"""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient

from engine.rulebook.library import load_library
from hooks.app import create_app
from hooks.settings import Settings
from tests.cds_conformance import conformance_problems
from tests.conftest import RULES
from tests.fhirdata import PATIENT, genotype, hook_request, medication_request

SYSTEM_URIS = {"icd10": "http://hl7.org/fhir/sid/icd-10-cm", "snomed": "http://snomed.info/sct"}


def _cases():
    try:
        library = load_library(RULES)
    except Exception:  # a broken rule set fails test_rule_files; do not hide that behind collection errors
        return []
    return [
        pytest.param(rule, index, id=f"{rule.id}-{index + 1}")
        for rule in library.rules
        for index in range(len(rule.examples))
    ]


def _request(rule, example):
    observations = [genotype(gene, text) for gene, text in example.genotype.items()]
    order = medication_request(code=example.order or "")
    if example.order_text:  # an order that carries only its text (drugs listed without codes)
        order["medicationCodeableConcept"] = {"text": example.order_text}
    body = hook_request(genotypes=observations, orders=[order])
    prefetch = body["prefetch"]
    if example.conditions:
        prefetch["conditions"] = {
            "resourceType": "Bundle",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Condition",
                        "id": f"c{i}",
                        "subject": {"reference": f"Patient/{PATIENT}"},
                        "code": {"coding": [{"system": SYSTEM_URIS.get(c.system, c.system), "code": c.code}]},
                    }
                }
                for i, c in enumerate(example.conditions)
            ],
        }
    if example.age is not None or example.sex is not None:
        prefetch["patient"] = {"resourceType": "Patient", "id": PATIENT}
    if example.age is not None:
        born = date(date.today().year - example.age, 1, 1)  # turned `age` this January
        prefetch["patient"]["birthDate"] = born.isoformat()
    if example.sex is not None:
        prefetch["patient"]["gender"] = example.sex
    return body


@pytest.fixture(scope="module")
def client(tmp_path_factory, library):
    # One service for every example: the examples only read, and startup is most of a test's time.
    settings = Settings(rules_dir=RULES, var_dir=tmp_path_factory.mktemp("var"), rules_poll_seconds=0)
    with TestClient(create_app(settings, library)) as test_client:
        yield test_client


@pytest.mark.parametrize(("rule", "index"), _cases())
def test_rule_example_over_http(client, rule, index):
    example = rule.examples[index]
    body = _request(rule, example)
    response = client.post("/cds-services/pgx-order-select", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert conformance_problems(payload, body) == []
    cards = [card for card in payload["cards"] if card["source"]["topic"]["code"] == rule.id]
    if example.expect == "no card":
        assert cards == []
        return
    card = cards[0]  # the result card; a pre-test card, if any, follows it
    assert card["indicator"] == example.expect
    if example.summary:
        assert card["summary"] == example.summary
    alternatives = {alternative.rxnorm for alternative in rule.alternatives}
    for suggestion in card.get("suggestions", []):
        created = [action["resource"] for action in suggestion["actions"] if action["type"] == "create"]
        [resource] = created
        if resource["resourceType"] == "MedicationRequest":
            assert resource["medicationCodeableConcept"]["coding"][0]["code"] in alternatives
            assert suggestion["actions"][0] == {
                "type": "delete",
                "description": suggestion["actions"][0]["description"],
                "resourceId": "MedicationRequest/draft-1",
            }
        else:  # a pre-test card orders the test
            assert resource["resourceType"] == "ServiceRequest" and not example.genotype
