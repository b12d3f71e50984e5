"""The services this CDS service offers, as ``GET /cds-services`` lists them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# Searches for the patient's PGx results (see ../shared/reference/fhir-pgx.md): genotypes, and
# phenotypes carried by therapeutic implications (current IG and the STU1 metabolism code).
PGX_PREFETCH = {
    "pgxGenotypes": "Observation?patient={{context.patientId}}&code=http://loinc.org|84413-4",
    "pgxImplications": (
        "Observation?patient={{context.patientId}}"
        "&code=http://hl7.org/fhir/uv/genomics-reporting/CodeSystem/tbd-codes-cs|therapeutic-implication,"
        "http://loinc.org|53040-2"
    ),
}
# Optional context, never fetched when absent (see hooks.fhir.patient_facts): the Patient (age, sex for G6PD, and a
# check that prefetch is about the patient in context) and active Conditions (the indication,
# which selects the CPIC population, e.g. clopidogrel for ACS/PCI or a neurovascular indication).
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}&clinical-status=active",
    **PGX_PREFETCH,
}

USAGE = (
    "Reads pharmacogenomic results from prefetch (pgxGenotypes, pgxImplications). When a key is "
    "absent the service fetches it from fhirServer and needs patient/Observation.read; without "
    "either it answers 412."
)


class Service(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str]
    usageRequirements: str


class Discovery(BaseModel):
    """The body of ``GET /cds-services``."""

    services: list[Service]


SERVICES: dict[str, Service] = {
    service.id: service
    for service in (
        Service(
            id="pgx-order-select",
            hook="order-select",
            title="Pharmacogenomic prescribing advice",
            description=(
                "When a medication order is selected, checks the patient's pharmacogenomic results "
                "against CPIC guidelines and suggests a genotype-appropriate alternative."
            ),
            prefetch=PREFETCH,
            usageRequirements=USAGE,
        ),
        Service(
            id="pgx-order-sign",
            hook="order-sign",
            title="Pharmacogenomic check before signing",
            description=(
                "Before medication orders are signed, checks every draft order against the "
                "patient's pharmacogenomic results and CPIC guidelines."
            ),
            prefetch=PREFETCH,
            usageRequirements=USAGE,
        ),
    )
}
