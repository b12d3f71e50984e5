"""Requests shaped exactly as a real CDS client sends them: the HL7 CDS Hooks sandbox (cds-hooks/sandbox@3b7e255).

Each test names the sandbox source that builds the shape. The patient is CYP2C19 *2/*2 on
clopidogrel throughout: a call the service can read must give the critical card, and one it cannot
must be refused (400/412), never answered ``{"cards": []}``.
"""

from __future__ import annotations

import copy
import uuid

import pytest

from tests.cds_conformance import conformance_problems
from tests.fhirdata import RXNORM, genotype, searchset

SELECT = "/cds-services/pgx-order-select"
SIGN = "/cds-services/pgx-order-sign"
RASBURICASE = "283821"
PATIENT = "smart-1288992"  # the sandbox's default patient (src/reducers/patient-reducers.js)
STROKE = {"coding": [{"system": "http://snomed.info/sct", "code": "230690007", "display": "Stroke"}], "text": "Stroke"}


def sandbox_order(reason: dict | None = None) -> dict:
    """``createFhirResource`` of src/reducers/medication-reducers.js for R4, a clopidogrel product chosen.

    ``category`` is one CodeableConcept (R4 makes it a list; STU3 had 0..1), and so is ``reasonCode``
    when the user picks a condition under "Treating": the sandbox copies ``Condition.code`` into it.
    """
    order = {
        "resourceType": "MedicationRequest",
        "id": "request-123",
        "status": "draft",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "authoredOn": "2026-12-02",
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {"doseQuantity": {"value": 1, "system": "http://unitsofmeasure.org", "code": "{pill}"}}
                ],
            }
        ],
        "dispenseRequest": {
            "expectedSupplyDuration": {"value": 30, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}
        },
        "intent": "order",
        "category": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community"}
            ]
        },
        "medicationCodeableConcept": {
            "text": "clopidogrel 75 MG Oral Tablet",
            "coding": [{"display": "clopidogrel 75 MG Oral Tablet", "system": RXNORM, "code": "309362"}],
        },
    }
    if reason is not None:
        order["reasonCode"] = reason
    return order


def sandbox_request(hook: str = "order-select", order: dict | None = None, prefetch: dict | None = None) -> dict:
    """``callServices`` of src/retrieve-data-helpers/service-exchange.js with the rx-view / rx-sign context."""
    order = order or sandbox_order()
    context = {"patientId": PATIENT, "userId": "Practitioner/COREPRACTITIONER1"}
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{order['id']}"]
    context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": order}]}
    if prefetch is None:
        prefetch = {
            "pgxGenotypes": searchset(genotype("CYP2C19", "*2/*2", patient=PATIENT)),
            "pgxImplications": {"resourceType": "Bundle", "type": "searchset", "total": 0},
        }
    return {
        "hookInstance": str(uuid.uuid4()),
        "hook": hook,
        "fhirServer": "https://launch.smarthealthit.org/v/r4/fhir",  # not on the service's list: never contacted
        "context": context,
        "prefetch": prefetch,
    }


def population(card: dict) -> str:
    return next(line for line in card["detail"].split("\n") if line.startswith("**Population:**"))


@pytest.mark.parametrize("path", [SELECT, SIGN])
def test_the_sandbox_order_with_one_category_concept_gets_its_card(client, path):
    body = sandbox_request("order-select" if path == SELECT else "order-sign")
    response = client.post(path, json=copy.deepcopy(body))
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["indicator"] == "critical"
    assert conformance_problems(response.json(), body) == []
    created = [a["resource"] for s in card["suggestions"] for a in s["actions"] if a["type"] == "create"]
    assert created and all(
        resource["category"] == [body["context"]["draftOrders"]["entry"][0]["resource"]["category"]]
        for resource in created
    )  # an R4 list in what the client is asked to create


def test_the_sandbox_reason_as_one_concept_selects_the_population(client):
    response = client.post(SELECT, json=sandbox_request(order=sandbox_order(reason=STROKE)))
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert "Neurovascular" in population(card) and "from the patient's diagnosis" in population(card)
    created = [a["resource"] for s in card.get("suggestions", []) for a in s["actions"] if a["type"] == "create"]
    assert all(resource["reasonCode"] == [STROKE] for resource in created)


@pytest.mark.parametrize("field", ["category", "reasonCode"])
def test_a_lone_concept_that_is_itself_malformed_is_still_refused(client, field):
    order = sandbox_order()
    order[field] = {"coding": "not a list"}
    response = client.post(SELECT, json=sandbox_request(order=order))
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"].startswith(f"context.draftOrders.entry.0.resource.{field}")


def test_a_paged_prefetch_that_cannot_be_followed_gives_412_not_the_first_page_alone(client):
    # CDS Hooks 2.0 lets a client page prefetch; the sandbox's FHIR server pages searchsets. The page
    # after this one may hold the *2/*2 result: answering from the first page alone would be a guess.
    first = searchset(genotype("CYP2C19", "*1/*1", patient=PATIENT))
    first["link"] = [
        {"relation": "next", "url": "https://launch.smarthealthit.org/v/r4/fhir?_getpages=a&_getpagesoffset=1"}
    ]
    body = sandbox_request(prefetch={"pgxGenotypes": first, "pgxImplications": None})
    response = client.post(SELECT, json=body)
    assert response.status_code == 412, response.text
    assert "pgxGenotypes" in response.json()["issue"][0]["diagnostics"]


FETCH_FAILED = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}


@pytest.mark.parametrize("key", ["patient", "conditions"])
def test_an_operation_outcome_for_an_optional_key_is_no_data_not_a_400(client, key):
    # CDS Hooks 2.0: a client that failed to prefetch a key SHOULD send an OperationOutcome there.
    # patient and conditions are optional: without them the card shows the default population, saying so.
    body = sandbox_request()
    body["prefetch"][key] = FETCH_FAILED
    response = client.post(SELECT, json=body)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["indicator"] == "critical" and "ACS and/or PCI" in population(card)
    assert "was not available" in population(card)


def test_an_operation_outcome_posing_as_a_patient_is_not_read_as_one(client):
    # Only a Patient gives the sex G6PD is read by: an OperationOutcome carrying a gender is no patient.
    order = sandbox_order()
    order["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": RASBURICASE}], "text": "rasburicase"}
    body = sandbox_request(order=order)
    body["prefetch"]["pgxGenotypes"] = searchset(genotype("G6PD", "A- 202A_376G/B (reference)", patient=PATIENT))
    body["prefetch"]["patient"] = {**FETCH_FAILED, "id": PATIENT, "gender": "female"}
    response = client.post(SELECT, json=body)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["summary"].startswith("G6PD Indeterminate") and "sex is needed" in card["detail"]


def test_fhir_authorization_with_a_lower_case_bearer_is_read(client):
    # OAuth 2.0 token types are case-insensitive (RFC 6749 §5.1); clients built on OAuth libraries send "bearer".
    body = sandbox_request()
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "sandbox"}  # fmt: skip
    response = client.post(SELECT, json=body)
    assert response.status_code == 200 and response.json()["cards"][0]["indicator"] == "critical", response.text
    body["fhirAuthorization"]["token_type"] = "MAC"
    refused = client.post(SELECT, json=body)
    assert refused.status_code == 400 and "fhirAuthorization.token_type" in refused.text


def test_the_sandbox_form_before_a_drug_is_chosen_gets_no_card_not_an_error(client):
    # rx-view.jsx calls order-select on every change of the form (needExplicitTrigger: false), first with no
    # medication at all: createFhirResource sets medicationCodeableConcept only once a drug is chosen.
    order = {key: value for key, value in sandbox_order(reason=STROKE).items()
             if key in ("resourceType", "id", "status", "subject", "authoredOn", "reasonCode")}  # fmt: skip
    response = client.post(SELECT, json=sandbox_request(order=order))
    assert response.status_code == 200 and response.json() == {"cards": []}, response.text
    # A medication field the service cannot read is still refused: that could be a drug it fails to see.
    for field in ({"medication": {"text": "clopidogrel"}}, {"medicationCodeableConcept": None},
                  {"contained": [{"resourceType": "Medication", "id": "m"}]}):  # fmt: skip
        refused = client.post(SELECT, json=sandbox_request(order={**order, **field}))
        assert refused.status_code == 400, (field, refused.text)
    # Signed with no medication: refused (tests/test_lost_alerts.py).
    assert client.post(SIGN, json=sandbox_request("order-sign", order)).status_code == 400
