"""References as EHRs write them: the subject of a result, and the Medication of a draft order.

FHIR R4 lets a reference be relative (``Patient/123``), absolute (``https://ehr.example/fhir/Patient/123``),
version-specific (``.../_history/2``) or, inside a Bundle, the ``urn:uuid:`` fullUrl of another entry
(references.html, bundle.html#references); transaction Bundles carry new resources with no id at all.
Requests are the HL7 sandbox's (tests/test_sandbox_shapes.py): CYP2C19 *2/*2 on clopidogrel, whose
card is critical. A result about another patient must never give it; a draft order whose Medication
can be found must; one whose Medication cannot be found is refused, naming where.
"""

from __future__ import annotations

import copy
import logging

import pytest

from tests.fhirdata import RXNORM, genotype, searchset
from tests.test_sandbox_shapes import PATIENT, SELECT, SIGN, sandbox_order, sandbox_request

SERVER = "https://launch.smarthealthit.org/v/r4/fhir"  # sandbox_request's fhirServer
PATIENT_URN = "urn:uuid:6f1d2c7e-3b1a-4c59-9a57-0d5b8e1f2a34"
MEDICATION_URN = "urn:uuid:0b9e5f3c-8a47-4d21-b6de-7c1f9a2e4b10"
CLOPIDOGREL = {"coding": [{"system": RXNORM, "code": "309362", "display": "clopidogrel 75 MG Oral Tablet"}]}
PGX_LOGGER = "hooks.fhir.fhir_pgx"


def with_subject(reference: str | None, fhir_server: str | None = SERVER) -> dict:
    """The sandbox's order-select, its *2/*2 genotype about ``reference``."""
    result = genotype("CYP2C19", "*2/*2", patient=PATIENT)
    result["subject"] = {"reference": reference}
    body = sandbox_request(prefetch={"pgxGenotypes": searchset(result), "pgxImplications": None})
    if fhir_server is None:
        del body["fhirServer"]
    else:
        body["fhirServer"] = fhir_server
    return body


def critical(response) -> bool:
    assert response.status_code == 200, response.text
    return any(card["indicator"] == "critical" for card in response.json()["cards"])


# --- Observation.subject ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        f"https://ehr.other-hospital.example/fhir/Patient/{PATIENT}",  # another server: another patient
        f"https://launch.smarthealthit.org/v/r4/fhir2/Patient/{PATIENT}",  # another base on the same host
        f"https://launch.smarthealthit.org/v/r4/Patient/{PATIENT}",  # a shorter base on the same host
        f"http://launch.smarthealthit.org/v/r4/fhir/Patient/{PATIENT}",  # another scheme
        f"https://launch.smarthealthit.org:8443/v/r4/fhir/Patient/{PATIENT}",  # another port
        f"https://launch.smarthealthit.org/V/R4/FHIR/Patient/{PATIENT}",  # paths are case-sensitive
        f"fhir/Patient/{PATIENT}",  # neither relative nor absolute
        f"Patient/{PATIENT}/_history/",  # no version
        f"Patient/{PATIENT}/_history/a/b",  # not a version id
    ],
)
def test_a_result_about_the_same_id_elsewhere_is_not_this_patients(client, reference, caplog):
    # The same id on another FHIR server names another person: their *2/*2 must not become this one's card.
    with caplog.at_level(logging.WARNING, logger=PGX_LOGGER):
        assert not critical(client.post(SELECT, json=with_subject(reference)))
    [skipped] = [r.getMessage() for r in caplog.records if r.name == PGX_LOGGER]
    assert skipped == "skipped an Observation whose subject is not the request's patient"


@pytest.mark.parametrize(
    ("reference", "fhir_server"),
    [
        (f"{SERVER}/Patient/{PATIENT}", SERVER),
        (f"{SERVER}/Patient/{PATIENT}", SERVER + "/"),  # a trailing slash on the base is the same base
        (f"{SERVER}/Patient/{PATIENT}", "HTTPS://Launch.SmartHealthIT.org/v/r4/fhir"),  # scheme and host: any case
        (f"https://LAUNCH.smarthealthit.org:443/v/r4/fhir/Patient/{PATIENT}", SERVER),  # the default port
        (f"{SERVER}/Patient/{PATIENT}/_history/3", SERVER),  # a version of the same Patient
        (f"Patient/{PATIENT}/_history/3", SERVER),
        (f"Patient/{PATIENT}/_history/3", None),
        (f"Patient/{PATIENT}", None),
    ],
)
def test_the_patient_on_the_requests_own_server_is_this_patient(client, reference, fhir_server):
    assert critical(client.post(SELECT, json=with_subject(reference, fhir_server)))


def test_an_absolute_subject_without_a_fhir_server_cannot_be_checked_and_is_skipped(client, caplog):
    with caplog.at_level(logging.WARNING, logger=PGX_LOGGER):
        assert not critical(client.post(SELECT, json=with_subject(f"{SERVER}/Patient/{PATIENT}", None)))
    [skipped] = [r.getMessage() for r in caplog.records if r.name == PGX_LOGGER]
    assert "no fhirServer to check it against" in skipped and PATIENT not in skipped


def with_patient_entry(subject: str, *, patient_id: str = PATIENT, full_url: str = PATIENT_URN) -> dict:
    """The sandbox's order-select whose genotype Bundle also carries a Patient entry at ``full_url``."""
    body = with_subject(subject)
    patient = {"resourceType": "Patient", "id": patient_id, "gender": "male"}
    body["prefetch"]["pgxGenotypes"]["entry"].append({"fullUrl": full_url, "resource": patient})
    return body


def test_a_urn_uuid_subject_is_the_patient_only_as_the_patients_entry_in_its_bundle(client):
    assert critical(client.post(SELECT, json=with_patient_entry(PATIENT_URN)))
    # The urn:uuid of another patient's entry, of an entry not there, of a Patient with no id to compare.
    assert not critical(client.post(SELECT, json=with_patient_entry(PATIENT_URN, patient_id="someone-else")))
    assert not critical(client.post(SELECT, json=with_patient_entry("urn:uuid:11111111-2222-3333-4444-555555555555")))
    no_id = with_patient_entry(PATIENT_URN)
    del no_id["prefetch"]["pgxGenotypes"]["entry"][-1]["resource"]["id"]
    assert not critical(client.post(SELECT, json=no_id))
    # A urn:uuid means nothing outside its Bundle: the patient's entry in another prefetch value is not it.
    elsewhere = with_subject(PATIENT_URN)
    patient = {"resourceType": "Patient", "id": PATIENT}
    elsewhere["prefetch"]["pgxImplications"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"fullUrl": PATIENT_URN, "resource": patient}],
    }
    assert not critical(client.post(SELECT, json=elsewhere))


# --- MedicationRequest.medicationReference ---------------------------------------------------


def referring_order(reference: str, medication: dict | None, full_url: str | None = MEDICATION_URN) -> dict:
    """The sandbox's order-sign whose order names its drug by ``reference``; ``medication`` an entry beside it."""
    order = sandbox_order()
    del order["medicationCodeableConcept"]
    order["medicationReference"] = {"reference": reference}
    body = sandbox_request("order-sign", order)
    if medication is not None:
        entry = {"resource": copy.deepcopy(medication)}
        if full_url is not None:
            entry["fullUrl"] = full_url
        body["context"]["draftOrders"]["entry"].append(entry)
    return body


ID_LESS = {"resourceType": "Medication", "code": CLOPIDOGREL}


@pytest.mark.parametrize("path", [SELECT, SIGN])
def test_a_medication_entry_named_by_its_urn_uuid_is_read(client, path):
    # A transaction-style draftOrders: the new Medication has no id, only its entry's urn:uuid fullUrl.
    body = referring_order(MEDICATION_URN, ID_LESS)
    if path == SELECT:
        body["hook"], body["context"]["selections"] = "order-select", ["MedicationRequest/request-123"]
    assert critical(client.post(path, json=copy.deepcopy(body)))
    # With an id too, found by either name.
    body["context"]["draftOrders"]["entry"][1]["resource"]["id"] = "med-1"
    assert critical(client.post(path, json=copy.deepcopy(body)))
    body["context"]["draftOrders"]["entry"][0]["resource"]["medicationReference"] = {"reference": "Medication/med-1"}
    assert critical(client.post(path, json=body))


def refusal(response) -> str:
    assert response.status_code == 400, response.text
    return response.json()["issue"][0]["diagnostics"]


ORDER = "context.draftOrders.entry.0.resource.medicationReference"


def test_a_medication_reference_that_resolves_to_nothing_readable_is_still_refused(client):
    # No entry has that urn:uuid; the urn:uuid is a Patient's; the Medication found has no code.
    assert ORDER in refusal(client.post(SIGN, json=referring_order(MEDICATION_URN, None)))
    assert ORDER in refusal(client.post(SIGN, json=referring_order(MEDICATION_URN, ID_LESS, PATIENT_URN)))
    patient = {"resourceType": "Patient", "id": PATIENT}
    assert "Medication" in refusal(client.post(SIGN, json=referring_order(MEDICATION_URN, patient)))
    codeless = {"resourceType": "Medication", "status": "active"}
    assert ORDER in refusal(client.post(SIGN, json=referring_order(MEDICATION_URN, codeless)))
    # The Medication found is checked as R4 says, as one named Medication/<id> is.
    malformed = {"resourceType": "Medication", "code": "clopidogrel"}
    assert "context.draftOrders.entry.1.resource.code" in refusal(
        client.post(SIGN, json=referring_order(MEDICATION_URN, malformed))
    )


def test_only_a_medication_with_a_urn_uuid_full_url_may_come_without_an_id(client):
    # An entry without an id that nothing could name, and an order without one, are refused as before.
    no_url = referring_order(MEDICATION_URN, ID_LESS, full_url=None)
    assert "context.draftOrders.entry.1.resource: id: missing" in refusal(client.post(SIGN, json=no_url))
    absolute = referring_order(f"{SERVER}/Medication/m", ID_LESS, full_url=f"{SERVER}/Medication/m")
    assert "context.draftOrders.entry.1.resource: id: missing" in refusal(client.post(SIGN, json=absolute))
    order = referring_order(MEDICATION_URN, ID_LESS)
    order["context"]["draftOrders"]["entry"][0]["fullUrl"] = "urn:uuid:9d3c5a1e-2f4b-4e6a-8c7d-1b2a3c4d5e6f"
    del order["context"]["draftOrders"]["entry"][0]["resource"]["id"]
    assert "context.draftOrders.entry.0.resource: id: missing" in refusal(client.post(SIGN, json=order))
