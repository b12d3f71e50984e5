"""Builders for the FHIR and CDS Hooks JSON an EHR sends, shaped like real-world payloads."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TBD = "http://hl7.org/fhir/uv/genomics-reporting/CodeSystem/tbd-codes-cs"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PATIENT = "example-patient-1"
HGNC = {"CYP2C19": "HGNC:2621", "CYP2C9": "HGNC:2623", "CYP2D6": "HGNC:2625", "G6PD": "HGNC:4057"}
CLOPIDOGREL_75 = "309362"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def genotype(
    gene: str,
    diplotype: str,
    *,
    patient: str = PATIENT,
    obs_id: str | None = None,
    status: str = "final",
    date: str = "2023-05-14",
    style: str = "pharmvar",
) -> dict[str, Any]:
    """A Genotype Observation (LOINC 84413-4) in one of the value styles seen in the wild."""
    if style == "pharmvar":
        value = {
            "coding": [
                {"system": "https://www.pharmvar.org", "code": f"{gene} {diplotype}", "display": f"{gene} {diplotype}"}
            ]
        }
    elif style == "text":
        value = {"text": f"{gene}{diplotype}"}
    elif style == "clinvar":
        value = {
            "coding": [
                {"system": "http://www.ncbi.nlm.nih.gov/clinvar", "code": "638797", "display": f"{gene}{diplotype}"}
            ]
        }
    else:
        raise ValueError(style)
    return {
        "resourceType": "Observation",
        "id": obs_id or f"geno-{uuid.uuid4().hex[:8]}",
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": "84413-4", "display": "Genotype display name"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": date,
        "valueCodeableConcept": value,
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "48018-6", "display": "Gene studied [ID]"}]},
                "valueCodeableConcept": {
                    "coding": [{"system": "http://www.genenames.org", "code": HGNC.get(gene, gene), "display": gene}]
                },
            }
        ],
    }


def implication(
    phenotype_coding: dict[str, Any],
    *,
    drug_code: str = "32968",
    derived_from: str | None = None,
    patient: str = PATIENT,
) -> dict[str, Any]:
    """A TherapeuticImplication carrying a phenotype for one drug, as the IG's TxImp examples."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"imp-{uuid.uuid4().hex[:8]}",
        "status": "final",
        "code": {"coding": [{"system": TBD, "code": "therapeutic-implication"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2023-05-14",
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "51963-7", "display": "Medication assessed"}]},
                "valueCodeableConcept": {"coding": [{"system": RXNORM, "code": drug_code}]},
            },
            {
                "code": {"coding": [{"system": TBD, "code": "therapeutic-implication"}]},
                "valueCodeableConcept": phenotype_coding,
            },
        ],
    }
    if derived_from:
        resource["derivedFrom"] = [{"reference": derived_from}]
    return resource


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def medication_request(order_id: str = "draft-1", code: str = CLOPIDOGREL_75, patient: str = PATIENT) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient}"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}], "text": f"RxNorm {code}"},
    }


def hook_request(
    hook: str = "order-select",
    *,
    genotypes: list[dict[str, Any]] | None = None,
    implications: list[dict[str, Any]] | None = None,
    orders: list[dict[str, Any]] | None = None,
    prefetch: dict[str, Any] | None = None,
    patient: str = PATIENT,
) -> dict[str, Any]:
    """A complete order-select or order-sign request; prefetch carries the given results."""
    orders = orders or [medication_request(patient=patient)]
    context: dict[str, Any] = {
        "userId": "Practitioner/prescriber-1",
        "patientId": patient,
        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": copy.deepcopy(o)} for o in orders]},
    }
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{orders[0]['id']}"]
    if prefetch is None:
        prefetch = {
            "pgxGenotypes": searchset(*genotypes) if genotypes else None,
            "pgxImplications": searchset(*implications) if implications else None,
        }
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch}
