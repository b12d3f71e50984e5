"""The hook's draft orders -> engine orders (reference, RxNorm codes, the fields a suggestion keeps).

Every medication order the hook asks about must be readable: its fields checked against their R4
shapes, and its medication identifiable. One that is not is refused (400 naming the entry and
field) rather than skipped, because a skipped order would look like "checked, nothing to say".
"""

from __future__ import annotations

import logging

from engine.decision.orders import RXNORM_SYSTEM, Order
from hooks.fhir.fhir_shapes import CodeableConcept, DraftMedicationRequest, Medication, read_shape
from hooks.protocol.requests import OrderSelectContext, OrderSignContext

log = logging.getLogger(__name__)


class OrderError(ValueError):
    """Draft orders the service must not act on; becomes a 400 with one reason per problem."""

    def __init__(self, *reasons: str):
        self.reasons = list(reasons)
        super().__init__("; ".join(reasons))


def orders_to_check(context: OrderSignContext) -> list[Order]:
    """order-select: the selected orders; order-sign: every draft order. Medication orders only."""
    entries = context.draftOrders.entry
    index_of = {f"{entry.resource['resourceType']}/{entry.resource['id']}": i for i, entry in enumerate(entries)}
    references = context.selections if isinstance(context, OrderSelectContext) else list(index_of)
    orders, problems = [], []
    for reference in references:
        index = index_of[reference]
        resource = entries[index].resource
        if resource["resourceType"] != "MedicationRequest":
            continue
        where = f"context.draftOrders.entry.{index}.resource"
        draft, found = read_shape(DraftMedicationRequest, resource, where)
        if draft is None:
            problems += found
            continue
        if draft.subject and draft.subject.reference not in (None, f"Patient/{context.patientId}"):
            problems.append(f"{where}.subject: the order is for a different patient than context.patientId")
            continue
        concept, problem = _medication(draft, where, context, index_of)
        if problem:
            problems.append(problem)
            continue
        codes = {c.code for c in concept.coding or () if c.system == RXNORM_SYSTEM and c.code}
        display = concept.text or next((c.display for c in concept.coding or () if c.display), None)
        orders.append(Order(reference, frozenset(codes), display, draft.carried_over()))
    if problems:
        # The reasons name fields only; the entry index lets an integrator find the order.
        log.warning("refused draft orders that cannot be read: %s", "; ".join(problems))
        raise OrderError(*problems)
    return orders


def _medication(
    draft: DraftMedicationRequest, where: str, context: OrderSignContext, index_of: dict[str, int]
) -> tuple[CodeableConcept, str | None]:
    """The order's medication as a CodeableConcept, or why it cannot be identified."""
    empty = CodeableConcept()
    if draft.medicationCodeableConcept is not None:
        concept = draft.medicationCodeableConcept
    elif draft.medicationReference is None:
        return empty, f"{where}: has neither medicationCodeableConcept nor medicationReference"
    else:
        reference = draft.medicationReference.reference
        if reference is None:
            return empty, f"{where}.medicationReference.reference: missing"
        if reference.startswith("#"):
            contained = next((c for c in draft.contained or () if c.id == reference[1:]), None)
            concept = contained.code if contained else None
        else:
            index = index_of.get(reference)
            concept = None
            if index is not None:
                medication = context.draftOrders.entry[index].resource
                read, problems = read_shape(Medication, medication, f"context.draftOrders.entry.{index}.resource")
                if read is None:
                    return empty, problems[0]
                concept = read.code
        if concept is None:
            return empty, (
                f"{where}.medicationReference: names a Medication that is neither contained nor in "
                "draftOrders, or one without a code"
            )
    if not (concept.text or any(c.code or c.display for c in concept.coding or ())):
        return empty, f"{where}: the medication has no code, display or text"
    return concept, None
