"""The hook's draft orders -> engine orders (reference, RxNorm codes, the fields a suggestion keeps).

Every medication order the hook asks about must be readable: its fields checked against their R4
shapes, and its medication identifiable. One that is not is refused (400 naming the entry and
field) rather than skipped, because a skipped order would look like "checked, nothing to say".
"""

from __future__ import annotations

import logging
from typing import Any

from engine.decision.orders import RXNORM_SYSTEM, Order
from hooks.fhir.fhir_shapes import DraftMedicationRequest, Medication, carried_over, problems_of
from hooks.protocol.order_contexts import OrderContext
from hooks.protocol.requests import is_urn_uuid

log = logging.getLogger(__name__)
# R4 lists that a real client sends as one CodeableConcept: the HL7 CDS Hooks sandbox builds every draft
# MedicationRequest with ``category`` (0..1 in STU3) and ``reasonCode`` (the chosen Condition.code) as one
# object (cds-hooks/sandbox src/reducers/medication-reducers.js, createFhirResource). Read as a list of it.
ONE_OR_LIST = ("category", "reasonCode")


class OrderError(ValueError):
    """Draft orders the service must not act on; becomes a 400 with one reason per problem."""

    def __init__(self, *reasons: str):
        self.reasons = list(reasons)
        super().__init__("; ".join(reasons))


def orders_to_check(context: OrderContext) -> list[Order]:
    """order-select: the selected orders; order-sign: every draft order. Medication orders only.

    Each order is checked against its R4 shape and then read as the JSON it is (no model built).
    """
    resources, index_of = context.resources, context.index_of
    references = context.selections if context.selections is not None else list(index_of)
    orders, problems = [], []
    for reference in references:
        index = index_of[reference]
        resource = resources[index]
        if resource["resourceType"] != "MedicationRequest":
            continue
        resource = _listed(resource)
        where = f"context.draftOrders.entry.{index}.resource"
        found = problems_of(DraftMedicationRequest, resource, where)
        if found:
            problems += found
            continue
        subject = resource.get("subject")
        if subject is not None and subject.get("reference") not in (None, f"Patient/{context.patientId}"):
            problems.append(f"{where}.subject: the order is for a different patient than context.patientId")
            continue
        if "medicationCodeableConcept" not in resource and context.selections is not None and _no_drug_chosen(resource):
            log.info("a selected draft order names no medication yet: nothing to check for it")
            continue
        concept, problem = _medication(resource, where, context)
        if problem:
            problems.append(problem)
            continue
        codings = concept.get("coding") or ()
        codes = {c["code"] for c in codings if c.get("system") == RXNORM_SYSTEM and c.get("code")}
        display = concept.get("text") or next((c["display"] for c in codings if c.get("display")), None)
        orders.append(Order(reference, frozenset(codes), display, carried_over(resource)))
    if problems:
        # The reasons name fields only; the entry index lets an integrator find the order.
        log.warning("refused draft orders that cannot be read: %s", "; ".join(problems))
        raise OrderError(*problems)
    return orders


def _no_drug_chosen(draft: dict[str, Any]) -> bool:
    """A draft with no medication field at all, nor anything contained: no drug has been chosen yet.

    Only for order-select: the CDS Hooks sandbox calls it as the clinician fills the form, before a drug
    is picked; there is nothing to check, and a 400 would read as a broken service. An order signed with
    no medication is refused (order-sign), as is a draft with any key that starts with "medication" (a
    null, a misspelling, another version's name) or a contained resource it cannot read: that could be a
    drug the service fails to see.
    """
    return "contained" not in draft and not any(key.startswith("medication") for key in draft)


def _listed(draft: dict[str, Any]) -> dict[str, Any]:
    """``draft`` with a lone object in a field of ``ONE_OR_LIST`` made a list of it (then checked as R4)."""
    if type(draft.get("category")) is not dict and type(draft.get("reasonCode")) is not dict:
        return draft  # the usual case: lists, or absent
    return {**draft, **{name: [draft[name]] for name in ONE_OR_LIST if type(draft.get(name)) is dict}}


def _medication(draft: dict[str, Any], where: str, context: OrderContext) -> tuple[dict[str, Any], str | None]:
    """The medication CodeableConcept of a draft that has its R4 shape, or why it cannot be identified."""
    concept = draft.get("medicationCodeableConcept")
    if concept is None:
        medication_reference = draft.get("medicationReference")
        if medication_reference is None:
            return {}, f"{where}: has neither medicationCodeableConcept nor medicationReference"
        reference = medication_reference.get("reference")
        if reference is None:
            return {}, f"{where}.medicationReference.reference: missing"
        if reference.startswith("#"):
            contained = next((c for c in draft.get("contained") or () if c.get("id") == reference[1:]), None)
            concept = contained.get("code") if contained is not None else None
        else:
            # "Medication/<id>", or the urn:uuid fullUrl of its entry (a transaction's new Medication, which
            # may have no id): the entry in draftOrders, checked as R4 says a Medication is.
            index = context.uuid_index_of.get(reference) if is_urn_uuid(reference) else context.index_of.get(reference)
            if index is not None:
                medication = context.resources[index]
                if medication["resourceType"] != "Medication":
                    return {}, f"{where}.medicationReference: names a draftOrders entry that is not a Medication"
                found = problems_of(Medication, medication, f"context.draftOrders.entry.{index}.resource")
                if found:
                    return {}, found[0]
                concept = medication.get("code")
        if concept is None:
            display = medication_reference.get("display")
            if type(display) is str and display.strip():
                # The Medication is on the EHR's server only (an Epic-style reference with its name): the
                # drug is recognised by that name, and the card says so; refusing would lose its alert.
                return {"text": display}, None
            return {}, (
                f"{where}.medicationReference: names a Medication that is neither contained nor in "
                "draftOrders, or one without a code, and gives no display"
            )
    if not (concept.get("text") or any(c.get("code") or c.get("display") for c in concept.get("coding") or ())):
        return {}, f"{where}: the medication has no code, display or text"
    return concept, None
