"""Service calls (checklist R1-R4, C1-C11) through the real app: validation, prefetch, cards."""

from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from engine.decision.card_models import CdsResponse
from hooks.app import create_app
from tests.cds_conformance import conformance_problems
from tests.conftest import logged_events
from tests.fhirdata import (
    CLOPIDOGREL_75,
    example,
    genotype,
    hook_request,
    implication,
    medication_request,
)

SELECT = "/cds-services/pgx-order-select"
SIGN = "/cds-services/pgx-order-sign"


def call(client, body, url=SELECT):
    response = client.post(url, json=body)
    return response, response.json()


# --- cards for every CYP2C19 phenotype ---------------------------------------------------------


@pytest.mark.parametrize(
    ("diplotype", "indicator", "phenotype"),
    [
        ("*2/*2", "critical", "Poor Metabolizer"),
        ("*2/*9", "critical", "Likely Poor Metabolizer"),
        ("*1/*2", "warning", "Intermediate Metabolizer"),
        ("*1/*9", "warning", "Likely Intermediate Metabolizer"),
    ],
)
def test_a_risk_phenotype_gets_a_conformant_card_with_swaps(client, diplotype, indicator, phenotype):
    body = hook_request(genotypes=[genotype("CYP2C19", diplotype)])
    response, payload = call(client, body)
    assert response.status_code == 200
    assert conformance_problems(payload, body) == []
    CdsResponse.model_validate(payload)  # the documented response schema holds too
    [card] = payload["cards"]
    assert card["indicator"] == indicator
    assert f"CYP2C19 {phenotype}" in card["summary"] and "clopidogrel" in card["summary"]
    assert card["source"]["url"] == "https://cpicpgx.org/guidelines/guideline-for-clopidogrel-and-cyp2c19/"
    assert card["selectionBehavior"] == "at-most-one"
    swaps = {}
    for suggestion in card["suggestions"]:
        delete, create = suggestion["actions"]
        assert delete == {
            "type": "delete",
            "description": "Remove the draft clopidogrel order",
            "resourceId": "MedicationRequest/draft-1",
        }
        resource = create["resource"]
        assert create["type"] == "create" and resource["resourceType"] == "MedicationRequest"
        assert resource["subject"] == {"reference": "Patient/example-patient-1"}
        assert resource["status"] == "draft" and resource["requester"] == {"reference": "Practitioner/prescriber-1"}
        coding = resource["medicationCodeableConcept"]["coding"][0]
        assert coding["system"] == "http://www.nlm.nih.gov/research/umls/rxnorm"
        assert resource["medicationCodeableConcept"]["text"] == coding["display"]  # named as well as coded
        swaps[coding["display"]] = coding["code"]
    assert swaps == {"prasugrel": "613391", "ticagrelor": "1116632"}
    assert {reason["code"] for reason in card["overrideReasons"]} >= {"stable-on-drug", "alternative-not-suitable"}
    assert all(suggestion["uuid"] for suggestion in card["suggestions"]) and card["uuid"]


def test_the_detail_walks_from_diplotype_to_recommendation(client):
    _, payload = call(client, hook_request(genotypes=[genotype("CYP2C19", "*17/*2")]))
    detail = payload["cards"][0]["detail"]
    order = [
        "`*2/*17`",
        "Intermediate Metabolizer",
        "`*2` no function + `*17` increased function",
        "**Population:** ACS and/or PCI",
        "**CPIC recommendation (Strong):**",
        "Avoid standard dose (75 mg) clopidogrel",
        "PMID 35034351",
    ]
    positions = [detail.index(text) for text in order]
    assert positions == sorted(positions)


@pytest.mark.parametrize("diplotype", ["*1/*1", "*1/*17", "*17/*17", "*38/*1"])
def test_normal_rapid_and_ultrarapid_metabolizers_get_no_card(client, diplotype):
    response, payload = call(client, hook_request(genotypes=[genotype("CYP2C19", diplotype)]))
    assert response.status_code == 200 and payload == {"cards": []}


def test_an_unknown_allele_gets_an_info_card_not_a_guess(client):
    body = hook_request(genotypes=[genotype("CYP2C19", "*1/*99")])
    _, payload = call(client, body)
    [card] = payload["cards"]
    assert card["indicator"] == "info"
    assert "Indeterminate" in card["summary"]
    assert "*99" in card["detail"] and "suggestions" not in card and "overrideReasons" not in card
    assert conformance_problems(payload, body) == []


def test_no_pgx_result_on_file_gives_no_card(client):
    response, payload = call(client, hook_request())
    assert response.status_code == 200 and payload == {"cards": []}


def test_a_drug_without_a_rule_needs_no_results(client):
    # Amoxicillin: no rule concerns it, so even with no prefetch and no fhirServer there is no 412.
    body = hook_request(orders=[medication_request(code="723")], prefetch={})
    response, payload = call(client, body)
    assert response.status_code == 200 and payload == {"cards": []}


def test_order_select_looks_only_at_the_selected_orders(client):
    orders = [medication_request("other", code="723"), medication_request("draft-1")]
    body = hook_request(orders=orders, genotypes=[genotype("CYP2C19", "*2/*2")])
    body["context"]["selections"] = ["MedicationRequest/other"]
    _, payload = call(client, body)
    assert payload == {"cards": []}


def test_order_sign_looks_at_every_draft_order(client):
    orders = [medication_request("other", code="723"), medication_request("draft-1")]
    body = hook_request("order-sign", orders=orders, genotypes=[genotype("CYP2C19", "*2/*2")])
    _, payload = call(client, body, SIGN)
    [card] = payload["cards"]
    assert card["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/draft-1"


def test_the_same_order_at_select_and_sign_gives_the_same_card(client):
    results = [genotype("CYP2C19", "*2/*2")]
    _, selected = call(client, hook_request(genotypes=results))
    _, signed = call(client, hook_request("order-sign", genotypes=results), SIGN)
    assert selected["cards"] == signed["cards"]  # uuid, summary, suggestions: identical
    other_patient = hook_request(genotypes=[genotype("CYP2C19", "*2/*2", patient="p2")], patient="p2")
    _, other = call(client, other_patient)
    assert other["cards"][0]["uuid"] != selected["cards"][0]["uuid"]


def test_the_medication_may_be_a_contained_medication(client):
    order = medication_request()
    del order["medicationCodeableConcept"]
    order["contained"] = [
        {
            "resourceType": "Medication",
            "id": "m",
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": CLOPIDOGREL_75}]},
        }
    ]
    order["medicationReference"] = {"reference": "#m"}
    _, payload = call(client, hook_request(orders=[order], genotypes=[genotype("CYP2C19", "*2/*2")]))
    assert payload["cards"][0]["indicator"] == "critical"


# --- reading results ---------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["pharmvar", "text", "clinvar"])
def test_genotype_value_styles_seen_in_the_wild(client, style):
    _, payload = call(client, hook_request(genotypes=[genotype("CYP2C19", "*2/*2", style=style)]))
    assert payload["cards"][0]["indicator"] == "critical"


def test_a_therapeutic_implication_alone_is_enough(client):
    poor = {"coding": [{"system": "http://loinc.org", "code": "LA9657-3", "display": "Poor metabolizer"}]}
    body = hook_request(implications=[implication(poor)])
    _, payload = call(client, body)
    [card] = payload["cards"]
    assert card["indicator"] == "critical" and "result as reported" in card["detail"]


def test_a_text_only_predicted_implication_from_an_older_server(client):
    obs = implication({"text": "Intermediate Metabolizer"})
    obs["component"][1]["code"]["coding"][0]["code"] = "predicted-therapeutic-implication"
    _, payload = call(client, hook_request(implications=[obs]))
    assert payload["cards"][0]["indicator"] == "warning"


def test_a_stu1_metabolism_observation(client):
    obs = {
        "resourceType": "Observation",
        "id": "med-impact",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "53040-2"}]},
        "subject": {"reference": "Patient/example-patient-1"},
        "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA9657-3"}]},
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "51963-7"}]},
                "valueCodeableConcept": {
                    "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "32968"}]
                },
            }
        ],
    }
    _, payload = call(client, hook_request(implications=[obs]))
    assert payload["cards"][0]["indicator"] == "critical"


def test_results_of_another_patient_are_never_used(client):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2", patient="someone-else")])
    _, payload = call(client, body)
    assert payload == {"cards": []}


@pytest.mark.parametrize("status", ["preliminary", "entered-in-error", "cancelled"])
def test_results_that_are_not_final_are_not_used(client, status):
    _, payload = call(client, hook_request(genotypes=[genotype("CYP2C19", "*2/*2", status=status)]))
    assert payload == {"cards": []}


def test_results_that_disagree_are_reported_not_resolved(client):
    results = [genotype("CYP2C19", "*2/*2", date="2020-01-01"), genotype("CYP2C19", "*1/*1", date="2024-01-01")]
    _, payload = call(client, hook_request(genotypes=results))
    [card] = payload["cards"]
    assert card["indicator"] == "info"
    assert "disagree" in card["detail"] and "*2/*2" in card["detail"] and "*1/*1" in card["detail"]


def test_a_paged_prefetch_bundle_is_followed_to_the_end(settings, library, fhir_server):
    fhir_server.observations = [genotype("CYP2C19", "*2/*2", obs_id="g1")]
    first_page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": f"{fhir_server.base}/Observation?patient=example-patient-1&code=84413-4"}],
    }
    body = hook_request(prefetch={"pgxGenotypes": first_page, "pgxImplications": None})
    body["fhirServer"] = fhir_server.base
    listed = settings.model_copy(update={"fhir_servers": fhir_server.base})
    with TestClient(create_app(listed, library)) as client:
        _, payload = call(client, body)
    assert payload["cards"][0]["indicator"] == "critical"


# --- malformed requests: 400 with a reason, 404 for unknown services --------------------------


def _without(path):
    def mutate(body):
        target = body
        *parents, last = path
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


def _set(path, value):
    def mutate(body):
        target = body
        *parents, last = path
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


BAD_REQUESTS = {
    "no hook": (_without(["hook"]), "hook: Field required"),
    "wrong hook": (_set(["hook"], "patient-view"), "this service answers 'order-select'"),
    "no hookInstance": (_without(["hookInstance"]), "hookInstance: Field required"),
    "hookInstance not a uuid": (_set(["hookInstance"], "abc"), "hookInstance"),
    "no context": (_without(["context"]), "context: Field required"),
    "context not an object": (_set(["context"], []), "context"),
    "no patientId": (_without(["context", "patientId"]), "context.patientId: Field required"),
    "patientId is a reference": (_set(["context", "patientId"], "Patient/123"), "context.patientId"),
    "userId not a practitioner": (_set(["context", "userId"], "Patient/1"), "context.userId"),
    "no draftOrders": (_without(["context", "draftOrders"]), "context.draftOrders: Field required"),
    "draftOrders not a bundle": (
        _set(["context", "draftOrders", "resourceType"], "List"),
        "context.draftOrders.resourceType",
    ),
    "draft order without id": (
        _without(["context", "draftOrders", "entry", 0, "resource", "id"]),
        "context.draftOrders.entry.0.resource: id: missing",
    ),
    "no selections": (_without(["context", "selections"]), "context.selections: Field required"),
    "empty selections": (_set(["context", "selections"], []), "context.selections"),
    "selection not in draftOrders": (
        _set(["context", "selections"], ["MedicationRequest/nope"]),
        "selections[0] must name an order",
    ),
    "token without server": (
        _set(
            ["fhirAuthorization"],
            {"access_token": "t", "token_type": "Bearer", "expires_in": 30, "scope": "patient/*.read", "subject": "x"},
        ),
        "fhirServer is required",
    ),
    "token type not Bearer": (
        _set(
            ["fhirAuthorization"],
            {"access_token": "t", "token_type": "MAC", "expires_in": 30, "scope": "s", "subject": "x"},
        ),
        "fhirAuthorization.token_type",
    ),
    "prefetch value not FHIR": (
        _set(["prefetch", "pgxGenotypes"], "<html>error</html>"),
        "prefetch.pgxGenotypes: not a FHIR resource",
    ),
    "prefetch of another patient": (
        _set(["prefetch", "patient"], {"resourceType": "Patient", "id": "other"}),
        "prefetch.patient is not the patient",
    ),
    "order for another patient": (
        _set(["context", "draftOrders", "entry", 0, "resource", "subject"], {"reference": "Patient/other"}),
        "for a different patient",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_a_malformed_request_gets_400_with_a_reason(client, case):
    mutate, reason = BAD_REQUESTS[case]
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    if case == "token without server":
        body.pop("fhirServer", None)
    mutate(body)
    response = client.post(SELECT, json=body)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(reason in issue["diagnostics"] for issue in outcome["issue"]), outcome


def test_a_body_that_is_not_json_gets_400(client):
    response = client.post(SELECT, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"


def test_errors_never_echo_the_access_token_or_patient(client):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    body["fhirAuthorization"] = {
        "access_token": "SECRET-TOKEN-123",
        "token_type": "Bearer",
        "expires_in": "soon",
        "scope": "patient/Observation.read",
        "subject": "pgx",
    }
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["context"]["patientId"] = "Patient/MRN-998877"
    response = client.post(SELECT, json=body)
    assert response.status_code == 400
    assert "SECRET-TOKEN-123" not in response.text and "MRN-998877" not in response.text


def test_an_unknown_service_is_404(client):
    response = client.post("/cds-services/no-such-service", json=hook_request())
    assert response.status_code == 404
    assert client.post("/cds-services/no-such-service", content=b"junk").status_code == 404


def test_the_routers_own_404_and_405_are_operation_outcomes(client):
    """Not FastAPI's {"detail": ...}: every error answer has the one shape CDS Hooks 3.0 asks for."""
    for response, code, allowed in [
        (client.post(SELECT + "/feedback2", json={}), "not-found", None),
        (client.post("/nothing-here", json={}), "not-found", None),
        (client.get(SELECT), "not-supported", "POST"),
        (client.delete("/cds-services"), "not-supported", "GET"),
    ]:
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == code, outcome
        assert response.status_code == (405 if allowed else 404)
        assert response.headers.get("allow") == allowed


# --- prefetch semantics: absent -> fetch or 412; null -> no data; OperationOutcome -> handled ---


def test_an_absent_key_without_a_fhir_server_is_412(client):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    del body["prefetch"]["pgxImplications"]
    response = client.post(SELECT, json=body)
    assert response.status_code == 412
    assert "pgxImplications" in response.json()["issue"][0]["diagnostics"]


def test_no_prefetch_at_all_without_a_fhir_server_is_412(client):
    body = hook_request()
    del body["prefetch"]
    assert client.post(SELECT, json=body).status_code == 412


def test_null_keys_mean_no_data_not_412(client):
    body = hook_request(prefetch={"pgxGenotypes": None, "pgxImplications": None})
    response, payload = call(client, body)
    assert response.status_code == 200 and payload == {"cards": []}


def test_an_operation_outcome_without_a_fhir_server_is_412_not_500(client):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = hook_request(prefetch={"pgxGenotypes": outcome, "pgxImplications": None})
    assert client.post(SELECT, json=body).status_code == 412


def test_the_example_requests_in_the_repository_work(client):
    for name, expected in [
        ("order-select-poor-metabolizer.json", "critical"),
        ("order-sign-intermediate-metabolizer.json", "warning"),
    ]:
        body = example(name)
        url = SELECT if body["hook"] == "order-select" else SIGN
        response, payload = call(client, copy.deepcopy(body), url)
        assert response.status_code == 200 and conformance_problems(payload, body) == []
        assert [card["indicator"] for card in payload["cards"]] == [expected]
    assert call(client, example("order-select-normal-metabolizer.json"))[1] == {"cards": []}


def test_every_card_is_in_the_event_log_before_the_response(client, settings):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    _, payload = call(client, body)
    [event] = [e for e in logged_events(settings) if e["type"] == "card"]
    assert event["card"] == payload["cards"][0]["uuid"]
    assert event["hook_instance"] == body["hookInstance"]
    assert (event["rule"], event["phenotype"], event["tier"]) == ("cyp2c19-clopidogrel", "Poor Metabolizer", "critical")
    assert len(event["rule_version"]) == 12 and event["time"].endswith("+00:00")
    assert "example-patient-1" not in str(event) and len(event["patient"]) == 32
