"""References as EHRs write them: the subject of a result.

FHIR R4 lets a reference be relative (``Patient/123``), absolute (``https://ehr.example/fhir/Patient/123``),
version-specific (``.../_history/2``) or, inside a Bundle, the ``urn:uuid:`` fullUrl of another entry
(references.html, bundle.html#references).
Requests are the HL7 sandbox's (tests/test_sandbox_shapes.py): CYP2C19 *2/*2 on clopidogrel, whose
card is critical. A result about another patient must never give it.
"""

from __future__ import annotations

import logging

import pytest

from tests.fhirdata import genotype, searchset
from tests.test_sandbox_shapes import PATIENT, SELECT, sandbox_request

SERVER = "https://launch.smarthealthit.org/v/r4/fhir"  # sandbox_request's fhirServer
PATIENT_URN = "urn:uuid:6f1d2c7e-3b1a-4c59-9a57-0d5b8e1f2a34"
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
