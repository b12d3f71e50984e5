"""What the request says about the patient that selects a CPIC population or reads a result.

Diagnoses come from the ``conditions`` prefetch (active Conditions) and from the draft orders'
own ``reasonCode``; age and sex (FHIR ``Patient.gender``, needed for G6PD) from the ``patient``
prefetch. Both are optional: without them a rule
uses its default population and the card says so. They are never fetched, because no request
should wait or fail for them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from engine.decision.orders import Order
from engine.decision.populations import PatientFacts
from hooks.fhir.fhir_pgx import resources_of

INACTIVE = {"inactive", "resolved", "remission"}


def _codes(concept: Any) -> set[tuple[str, str]]:
    if not isinstance(concept, dict):
        return set()
    return {
        (str(coding.get("system")), str(coding.get("code")))
        for coding in concept.get("coding") or []
        if isinstance(coding, dict) and coding.get("system") and coding.get("code")
    }


def _active(condition: dict[str, Any]) -> bool:
    status = {code for _, code in _codes(condition.get("clinicalStatus"))}
    return not status & INACTIVE and condition.get("verificationStatus", {}).get("text") != "entered-in-error"


def _age(patient: Any, today: date | None) -> int | None:
    if not isinstance(patient, dict) or not isinstance(patient.get("birthDate"), str):
        return None
    try:
        born = date.fromisoformat(patient["birthDate"][:10])
    except ValueError:
        return None
    today = today or date.today()  # only when there is a birth date to compare with
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _sex(patient: Any) -> str | None:
    # FHIR administrative gender; "other" and "unknown" leave a sex-dependent result Indeterminate.
    gender = patient.get("gender") if isinstance(patient, dict) else None
    return gender if gender in ("female", "male") else None


def patient_facts(prefetch: dict[str, Any] | None, orders: list[Order], today: date | None = None) -> PatientFacts:
    prefetch = prefetch or {}
    codes: set[tuple[str, str]] = set()
    for condition in resources_of(prefetch.get("conditions"), "Condition"):
        if _active(condition):
            codes |= _codes(condition.get("code"))
    for order in orders:
        for reason in order.carried.get("reasonCode") or []:
            codes |= _codes(reason)
    patient = prefetch.get("patient")
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        patient = None  # an OperationOutcome (the EHR could not read it) says nothing about the patient
    return PatientFacts(frozenset(codes), _age(patient, today), _sex(patient))
