"""Features of rules beyond a plain lookup: indications, contraindicated alternatives, drug names,
shadow rules, pre-test cards, multi-gene results."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from engine.decision.orders import Order
from engine.decision.rules import RuleExample
from engine.genotype.results import ReportedResult
from hooks.app import create_app
from hooks.settings import Settings
from tests.conftest import RULES, logged_events
from tests.fhirdata import PATIENT, genotype, hook_request, medication_request

SELECT = "/cds-services/pgx-order-select"


def conditions(*codes):
    return {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": f"c{i}",
                    "clinicalStatus": {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
                        ]
                    },
                    "code": {"coding": [{"system": system, "code": code}]},
                }
            }
            for i, (system, code) in enumerate(codes)
        ],
    }


ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


def clopidogrel_card(client, diagnoses=None, order=None):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")], orders=[order] if order else None)
    if diagnoses:
        body["prefetch"]["conditions"] = conditions(*diagnoses)
    cards = client.post(SELECT, json=body).json()["cards"]
    return next((card for card in cards if card["source"]["topic"]["code"] == "cyp2c19-clopidogrel"), None)


def test_without_an_indication_the_strictest_population_is_used_and_said(client):
    card = clopidogrel_card(client)
    assert card["indicator"] == "critical"
    assert "**Population:** ACS and/or PCI" in card["detail"] and "not available to this service" in card["detail"]


def test_the_indication_is_read_from_the_patients_conditions(client):
    card = clopidogrel_card(client, [(ICD10, "I25.10")])  # stable coronary artery disease
    assert card["indicator"] == "warning"
    assert "Other cardiovascular indication" in card["detail"] and "Chronic ischemic heart disease" in card["detail"]


def test_a_contraindicated_alternative_is_not_offered(client):
    card = clopidogrel_card(client, [(ICD10, "I21.4"), (ICD10, "Z86.73")])  # NSTEMI, prior stroke
    assert "ACS and/or PCI" in card["detail"]
    offered = [s["actions"][1]["resource"]["medicationCodeableConcept"]["text"] for s in card["suggestions"]]
    assert offered == ["ticagrelor"]
    assert "Prasugrel is not offered" in card["detail"]


def test_an_order_with_only_a_local_code_is_recognised_by_name(client):
    order = medication_request(code="723")
    order["medicationCodeableConcept"] = {
        "coding": [{"system": "urn:local", "code": "CLOP75"}],
        "text": "Clopidogrel 75 mg tablet",
    }
    card = clopidogrel_card(client, order=order)
    assert card is not None and "recognised by the drug name" in card["detail"]
    other = medication_request(code="723")
    other["medicationCodeableConcept"] = {"text": "Prasugrel 10 mg tablet"}
    assert clopidogrel_card(client, order=other) is None


def test_a_pretest_card_orders_the_test(client):
    body = hook_request(orders=[medication_request(code="190521")])  # abacavir, no HLA-B on file
    [card] = client.post(SELECT, json=body).json()["cards"]
    assert card["indicator"] == "warning" and "HLA-B" in card["summary"]
    [suggestion] = card["suggestions"]
    [action] = suggestion["actions"]
    assert action["type"] == "create" and action["resource"]["resourceType"] == "ServiceRequest"
    assert action["resource"]["subject"] == {"reference": f"Patient/{PATIENT}"}


def test_a_multi_gene_rule_uses_both_results(client):
    body = hook_request(
        genotypes=[genotype("CYP2C9", "*1/*1"), genotype("HLA-B", "*15:02/*07:02")],
        orders=[medication_request(code="8183")],  # phenytoin
    )
    [card] = client.post(SELECT, json=body).json()["cards"]
    assert card["indicator"] == "critical"
    assert "**CYP2C9 genotype:**" in card["detail"] and "**HLA-B genotype:**" in card["detail"]


@pytest.fixture
def shadow_client(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    path = rules / "cyp2c19-clopidogrel.yaml"
    path.write_text(path.read_text().replace("gene: CYP2C19\n", "status: shadow\ngene: CYP2C19\n", 1))
    settings = Settings(rules_dir=rules, var_dir=tmp_path / "var", rules_poll_seconds=0)
    with TestClient(create_app(settings)) as client:
        yield client, settings


def test_a_shadow_rule_logs_its_card_but_never_shows_it(shadow_client):
    client, settings = shadow_client
    assert clopidogrel_card(client) is None
    [event] = [e for e in logged_events(settings) if e["type"] == "card"]
    assert event["shadow"] is True and event["rule"] == "cyp2c19-clopidogrel" and event["tier"] == "critical"


def _g6pd_cards(client, order):
    body = hook_request(genotypes=[genotype("G6PD", "A- 202A_376G")], orders=[order])
    body["prefetch"]["patient"] = {"resourceType": "Patient", "id": "example-patient-1", "gender": "male"}
    response = client.post(SELECT, json=body)
    assert response.status_code == 200, response.text
    return {card["source"]["topic"]["code"]: card for card in response.json()["cards"]}


def test_a_drug_listed_without_codes_is_matched_by_its_name_and_the_card_says_so(client):
    # Toluidine blue has no RxNorm code the rules could cite (rules/g6pd-toluidine-blue.yaml).
    order = medication_request(code="723")
    order["medicationCodeableConcept"] = {
        "coding": [{"system": "urn:local", "code": "TBLUE1"}],
        "text": "Toluidine blue 1% topical solution",
    }
    card = _g6pd_cards(client, order).get("g6pd-toluidine-blue")
    assert card is not None and card["indicator"] == "warning"
    assert card["summary"].startswith("G6PD Deficient: avoid toluidine blue")
    assert "recognised by the drug name" in card["detail"]
    # Methylene blue's own code does not reach the name-only rule, nor does its text.
    methylene = medication_request(code="6878")
    assert set(_g6pd_cards(client, methylene)) == {"g6pd-methylene-blue"}


def test_a_name_only_drug_is_matched_whatever_unknown_code_the_order_carries(library):
    reports = [ReportedResult("MT-RNR1", diplotype="m.1555A>G")]
    results = library.interpret(reports)
    order = Order(reference="MedicationRequest/1", rxnorm=frozenset({"99999999"}), display="Plazomicin 500 MG/10 ML")
    [match] = library.match([order], results)
    assert (match.rule.id, match.tier, match.matched_by_name) == ("mt-rnr1-plazomicin", "critical", True)
    assert library.match([Order(reference="MedicationRequest/2", rxnorm=frozenset())], results) == []


@pytest.mark.parametrize("fields", [{}, {"order": "641", "order_text": "amikacin 500 mg"}])
def test_a_rule_example_names_its_order_by_code_or_by_text_not_both(fields):
    with pytest.raises(ValidationError, match="exactly one of order"):
        RuleExample(expect="no card", **fields)
    assert RuleExample(expect="no card", order_text="amikacin 500 mg").order is None
