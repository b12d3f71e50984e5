"""Input the service cannot read never looks like "checked, nothing to say" (issue 10, patient safety).

Every case is a CYP2C19 *2/*2 patient on clopidogrel, who must get a critical card; when one part
of the request is unreadable the answer is a 400 naming the field (or a 412 for what a FHIR
server sent), never ``200 {"cards": []}``, and the reason never carries the value.
"""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from hooks.app import create_app
from hooks.fhir.fhir_pgx import DOUBT, ResultReader
from hooks.fhir.prefetch import UNREADABLE
from tests.fhirdata import genotype, hook_request, implication, medication_request, searchset

SELECT = "/cds-services/pgx-order-select"
SIGN = "/cds-services/pgx-order-sign"
SECRET = "VALUE-THAT-MUST-NOT-COME-BACK"
ORDER = "context.draftOrders.entry.0.resource"
GENOTYPES = "prefetch.pgxGenotypes.entry.0.resource"


def poor_metabolizer(**order_changes) -> dict:
    order = medication_request()
    order.update(order_changes)
    for key in [key for key, value in order_changes.items() if value is None]:
        del order[key]
    return hook_request(orders=[order], genotypes=[genotype("CYP2C19", "*2/*2")])


def assert_refused(response, field: str) -> None:
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(issue["diagnostics"].startswith(field) for issue in outcome["issue"]), outcome
    assert SECRET not in response.text


def test_the_well_formed_order_gets_its_critical_card(client):
    response = client.post(SELECT, json=poor_metabolizer())
    assert response.status_code == 200 and response.json()["cards"][0]["indicator"] == "critical"


CLOPIDOGREL = {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "309362"}
MALFORMED_ORDERS = {
    "medication a string": ({"medicationCodeableConcept": f"clopidogrel {SECRET}"}, "medicationCodeableConcept"),
    "coding an object": ({"medicationCodeableConcept": {"coding": CLOPIDOGREL}}, "medicationCodeableConcept.coding"),
    "coding item a string": ({"medicationCodeableConcept": {"coding": [SECRET]}}, "medicationCodeableConcept.coding.0"),
    "code a number": (
        {"medicationCodeableConcept": {"coding": [{**CLOPIDOGREL, "code": 309362}]}},
        "medicationCodeableConcept.coding.0.code",
    ),
    "text a list": ({"medicationCodeableConcept": {"text": [SECRET]}}, "medicationCodeableConcept.text"),
    "medication under another name": ({"medicationCodeableConcept": None, "medication": {"text": "x"}}, ORDER),
    "medication without code or text": ({"medicationCodeableConcept": {"coding": [{"system": "x"}]}}, ORDER),
    "reference a string": (
        {"medicationCodeableConcept": None, "medicationReference": f"Medication/{SECRET}"},
        "medicationReference",
    ),
    "reference to nothing": (
        {"medicationCodeableConcept": None, "medicationReference": {"reference": "#missing"}},
        "medicationReference",
    ),
    "contained an object": (
        {"medicationCodeableConcept": None, "medicationReference": {"reference": "#m"}, "contained": {"id": "m"}},
        "contained",
    ),
    "subject a string": ({"subject": f"Patient/{SECRET}"}, "subject"),
    "category a string": ({"category": SECRET}, "category"),
    "priority not an R4 code": ({"priority": SECRET}, "priority"),
    "intent a number": ({"intent": 1}, "intent"),
    "reasonCode a string": ({"reasonCode": SECRET}, "reasonCode"),
    "encounter a string": ({"encounter": SECRET}, "encounter"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_ORDERS))
def test_an_unreadable_draft_order_is_refused_naming_entry_and_field(client, case, caplog):
    changes, field = MALFORMED_ORDERS[case]
    response = client.post(SELECT, json=poor_metabolizer(**changes))
    where = field if field.startswith("context.") else f"{ORDER}.{field}"
    assert_refused(response, where)
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(where in line for line in logged) and not any(SECRET in line for line in logged)


def test_order_sign_names_the_unreadable_entry_among_good_ones(client):
    orders = [medication_request("good"), {**medication_request("bad"), "medicationCodeableConcept": SECRET}]
    body = hook_request("order-sign", orders=orders, genotypes=[genotype("CYP2C19", "*2/*2")])
    assert_refused(client.post(SIGN, json=body), "context.draftOrders.entry.1.resource.medicationCodeableConcept")


def test_an_order_with_no_medication_at_all_is_refused_when_signed(client):
    # order-select may come before a drug is chosen (tests/test_sandbox_shapes.py); a signed order may not.
    order = medication_request()
    del order["medicationCodeableConcept"]
    body = hook_request("order-sign", orders=[order], genotypes=[genotype("CYP2C19", "*2/*2")])
    assert_refused(client.post(SIGN, json=body), f"{ORDER}: has neither medicationCodeableConcept")


def test_a_referenced_medication_in_the_bundle_is_read_and_checked(client):
    medication = {"resourceType": "Medication", "id": "m1", "code": {"coding": [CLOPIDOGREL]}}
    order = {**medication_request(), "medicationReference": {"reference": "Medication/m1"}}
    del order["medicationCodeableConcept"]
    body = hook_request(orders=[order], genotypes=[genotype("CYP2C19", "*2/*2")])
    body["context"]["draftOrders"]["entry"].append({"resource": medication})
    assert client.post(SELECT, json=body).json()["cards"][0]["indicator"] == "critical"
    body["context"]["draftOrders"]["entry"][1]["resource"]["code"] = SECRET
    assert_refused(client.post(SELECT, json=body), "context.draftOrders.entry.1.resource.code")


# --- the patient's results, and the context that selects the CPIC population -----------------


def _genotype_with(**changes) -> dict:
    obs = genotype("CYP2C19", "*2/*2")
    obs.update(changes)
    return obs


MALFORMED_RESULTS = {
    "value a string": ({"valueCodeableConcept": f"CYP2C19 *2/*2 {SECRET}"}, f"{GENOTYPES}.valueCodeableConcept"),
    "code a string": ({"code": "84413-4"}, f"{GENOTYPES}.code"),
    "component an object": ({"component": {"code": SECRET}}, f"{GENOTYPES}.component"),
    "valueString a number": ({"valueString": 22}, f"{GENOTYPES}.valueString"),
    "subject a string": ({"subject": "Patient/example-patient-1"}, f"{GENOTYPES}.subject"),
    "effectivePeriod a string": ({"effectivePeriod": SECRET}, f"{GENOTYPES}.effectivePeriod"),
    "derivedFrom a number": ({"derivedFrom": 3}, f"{GENOTYPES}.derivedFrom"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_RESULTS))
def test_an_unreadable_prefetched_result_is_refused_not_skipped(client, case):
    changes, field = MALFORMED_RESULTS[case]
    body = hook_request(genotypes=[_genotype_with(**changes)])
    assert_refused(client.post(SELECT, json=body), field)


def _other_gene_with(**changes) -> dict:
    obs = genotype("CYP2D6", "*4/*4")
    obs.update(changes)
    return obs


# Not the code or the gene-studied component: they are what tell which gene a result is about.
BESIDE_THE_GENE = sorted(
    case for case, (changes, _) in MALFORMED_RESULTS.items() if not {"code", "component"} & set(changes)
)


@pytest.mark.parametrize("case", BESIDE_THE_GENE)
def test_a_malformed_result_about_a_gene_the_order_does_not_need_costs_no_card(client, case):
    """A CYP2D6 result is not read for clopidogrel (issue 13): its garbage must not cost the CYP2C19 card."""
    changes, _ = MALFORMED_RESULTS[case]
    body = hook_request(genotypes=[_other_gene_with(**changes), genotype("CYP2C19", "*2/*2")])
    response = client.post(SELECT, json=body)
    assert response.status_code == 200, response.text
    assert [card["indicator"] for card in response.json()["cards"]] == ["critical"]
    # The same garbage about the gene clopidogrel needs is refused, as before.
    cyp2c19 = {**genotype("CYP2C19", "*2/*2"), **changes}
    assert_refused(client.post(SELECT, json=hook_request(genotypes=[cyp2c19])), GENOTYPES)


GENE_DOUBTS = {
    "component item a string": {"component": [SECRET]},
    "component code a string": {"component": [{"code": "48018-6", "valueCodeableConcept": {"text": "CYP2C19"}}]},
    "gene value coding an object": {
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "48018-6"}]},
                "valueCodeableConcept": {"coding": {"code": "HGNC:2621"}},
            }
        ]
    },
    "gene value a string": {
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "48018-6"}]}, "valueCodeableConcept": "CYP2C19"}
        ]
    },
    "code coding a number": {"code": {"coding": [7]}},
}


@pytest.mark.parametrize("case", sorted(GENE_DOUBTS))
def test_a_result_whose_gene_cannot_be_read_is_refused_even_beside_a_good_one(client, case):
    """Which gene a result is about must itself be readable before the result may be left unread."""
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2"), _other_gene_with(**GENE_DOUBTS[case])])
    assert_refused(client.post(SELECT, json=body), "prefetch.pgxGenotypes.entry.1.resource")


def test_a_malformed_implication_naming_a_gene_we_do_not_define_is_refused(client):
    """Its gene is none of ours, yet an implication may take its gene from what it is derived from: read on."""
    other = implication({"text": "Poor Metabolizer"}, derived_from="Observation/x")
    other["component"].append(
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "48018-6"}]},
            "valueCodeableConcept": {"coding": [{"code": "HGNC:99999", "display": "NOTAGENE"}]},
        }
    )
    other["derivedFrom"] = 5
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")], implications=[other])
    assert_refused(client.post(SELECT, json=body), "prefetch.pgxImplications.entry.0.resource.derivedFrom")


def test_an_implication_derived_from_an_unread_malformed_genotype_is_refused(client):
    """An implication naming no gene leans on its genotype: that genotype is then checked after all."""
    other = _other_gene_with(subject="Patient/example-patient-1")
    derived = implication({"text": "Poor Metabolizer"}, drug_code="9999999", derived_from=f"Observation/{other['id']}")
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2"), other], implications=[derived])
    assert_refused(client.post(SELECT, json=body), "prefetch: the genotype an implication is derived from")


@pytest.mark.parametrize(
    ("bundle", "field"),
    [
        (
            {"resourceType": "Bundle", "entry": {"resource": genotype("CYP2C19", "*2/*2")}},
            "prefetch.pgxGenotypes.entry",
        ),
        ({"resourceType": "Bundle", "entry": [SECRET]}, "prefetch.pgxGenotypes.entry.0"),
        ({"resourceType": "Bundle", "entry": [{"resource": SECRET}]}, "prefetch.pgxGenotypes.entry.0.resource"),
        ({"resourceType": "Bundle", "entry": [], "link": 5}, "prefetch.pgxGenotypes.link"),
        ({"resourceType": 7}, "prefetch.pgxGenotypes"),
    ],
)
def test_an_unreadable_prefetch_bundle_is_refused(client, bundle, field):
    body = hook_request(prefetch={"pgxGenotypes": bundle, "pgxImplications": None})
    assert_refused(client.post(SELECT, json=body), field)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("conditions", searchset({"resourceType": "Condition", "verificationStatus": SECRET}), "prefetch.conditions"),
        ("conditions", searchset({"resourceType": "Condition", "code": [SECRET]}), "prefetch.conditions"),
        ("conditions", SECRET, "prefetch.conditions"),
        ("patient", {"resourceType": "Patient", "id": "example-patient-1", "birthDate": 1970}, "prefetch.patient"),
        ("patient", {"resourceType": "Patient", "id": "example-patient-1", "birthDate": SECRET}, "prefetch.patient"),
        ("patient", {"resourceType": "Observation", "id": "x"}, "prefetch.patient"),
        ("patient", [SECRET], "prefetch.patient"),
    ],
)
def test_unreadable_population_context_is_refused(client, key, value, field):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    body["prefetch"][key] = value
    assert_refused(client.post(SELECT, json=body), field)


def test_unreadable_results_from_the_fhir_server_give_412_not_an_empty_answer(settings, library, fhir_server, caplog):
    fhir_server.observations = [_genotype_with(valueCodeableConcept="CYP2C19 *2/*2")]
    body = hook_request()
    del body["prefetch"]
    body["fhirServer"] = fhir_server.base
    listed = settings.model_copy(update={"fhir_servers": fhir_server.base})
    with TestClient(create_app(listed, library)) as client:
        response = client.post(SELECT, json=body)
    assert response.status_code == 412
    assert response.json()["issue"][0]["diagnostics"] == UNREADABLE
    assert any("valueCodeableConcept" in record.getMessage() for record in caplog.records)


def test_the_triage_takes_a_result_for_the_gene_the_reader_would_read_it_as(client):
    """A gene-studied value naming a gene in its first coding's display (or a code spelled loosely) and
    another in a later code is read as the first: the triage must not leave it unread as the second."""
    cyp2c19 = genotype("CYP2C19", "*2/*2")
    cyp2c19["component"][0]["valueCodeableConcept"] = {
        "coding": [{"code": "cyp2c19-gene", "display": " CYP2C19 "}, {"code": "HGNC:2623", "display": "CYP2C9"}]
    }
    response = client.post(SELECT, json=hook_request(genotypes=[cyp2c19]))
    assert response.status_code == 200, response.text
    assert [card["indicator"] for card in response.json()["cards"]] == ["critical"]


@pytest.mark.parametrize(
    "codings",
    [
        [{"system": "http://www.genenames.org", "code": "HGNC:2621"}],  # CYP2C19 alone
        [{"system": "http://www.genenames.org", "code": "HGNC:2621"}, {"code": "HGNC:2625", "display": "CYP2D6"}],
    ],
)
def test_a_genotype_whose_value_names_another_gene_than_its_gene_studied_is_refused(client, codings):
    """CYP2D6 *1/*4 under a gene-studied component naming CYP2C19 (first): read as CYP2C19 it gave an
    Intermediate Metabolizer card for clopidogrel, from another gene's alleles."""
    result = genotype("CYP2D6", "*1/*4")
    result["component"][0]["valueCodeableConcept"] = {"coding": codings}
    response = client.post(SELECT, json=hook_request(genotypes=[result]))
    assert_refused(response, "prefetch: a genotype's gene studied (LOINC 48018-6) is not the gene its value names")


def test_a_gene_less_value_under_a_component_naming_two_genes_is_refused(client):
    """"*1/*4" under a gene-studied component coded CYP2C19 then CYP2D6: read as the first it would be a
    CYP2C19 Intermediate Metabolizer, though *4 may be CYP2D6's; which gene it is, nothing says."""
    result = genotype("CYP2C19", "*1/*4")
    result["valueCodeableConcept"] = {"coding": [{"system": "https://www.pharmvar.org", "code": "*1/*4"}]}
    result["component"][0]["valueCodeableConcept"] = {
        "coding": [{"system": "http://www.genenames.org", "code": "HGNC:2621"}, {"code": "HGNC:2625"}]
    }
    response = client.post(SELECT, json=hook_request(genotypes=[result]))
    assert_refused(response, "prefetch: a genotype's gene studied (LOINC 48018-6) is not the gene its value names")
    result["component"][0]["valueCodeableConcept"]["coding"].pop()  # CYP2C19 alone: read as CYP2C19
    assert client.post(SELECT, json=hook_request(genotypes=[result])).json()["cards"][0]["indicator"] == "warning"


GENE_VALUES = [
    {"coding": [{"code": "HGNC:2621"}, {"code": "HGNC:2623"}]},
    {"coding": [{"code": "x", "display": "CYP2C19"}, {"code": "HGNC:2623"}]},
    {"coding": [{"code": " HGNC:2621 "}, {"code": "CYP2C9"}]},
    {"coding": [{"code": "cyp2c19"}, {"code": "HGNC:2621", "display": 5}]},
    {"coding": [{"code": "x", "display": "CYP2C9"}, {"code": "HGNC:2623"}], "text": "CYP2D6"},
    {"coding": [{"code": "x"}], "text": " cyp2d6"},
    {"coding": [{"code": "HGNC:99999", "display": "NOTAGENE"}]},
]


@pytest.mark.parametrize("value", GENE_VALUES)
def test_the_strict_triage_names_the_gene_the_reader_reads_or_doubts(library, value):
    reader = ResultReader(library.genes, library.rules_by_code)
    strict = reader._strict_gene(value)
    assert strict is DOUBT or strict == reader._studied_gene(value)


def test_a_medication_known_only_by_its_reference_display_is_recognised_by_name(client):
    """An EHR that references a Medication on its own server, with the drug's name as the display: the
    order is matched on that name (and the card says so) rather than refused, which would lose the alert."""
    order = {**medication_request(), "medicationReference": {"reference": "Medication/erx-8812",
                                                               "display": "Clopidogrel 75 MG Oral Tablet"}}  # fmt: skip
    del order["medicationCodeableConcept"]
    body = hook_request(orders=[order], genotypes=[genotype("CYP2C19", "*2/*2")])
    [card] = client.post(SELECT, json=body).json()["cards"]
    assert card["indicator"] == "critical" and "recognised by the drug name" in card["detail"]
    order["medicationReference"] = {"reference": "Medication/erx-8812"}  # nothing to go on: refused, not skipped
    body = hook_request(orders=[order], genotypes=[genotype("CYP2C19", "*2/*2")])
    assert_refused(client.post(SELECT, json=body), "context.draftOrders.entry.0.resource.medicationReference")
