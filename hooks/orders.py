"""The hook's draft orders -> engine orders (reference, RxNorm codes, resource)."""

from __future__ import annotations

from typing import Any

from engine.orders import RXNORM_SYSTEM, Order
from hooks.requests import OrderSelectContext, OrderSignContext


class OrderError(ValueError):
    """A draft order the service must not act on; becomes a 400."""


def orders_to_check(context: OrderSignContext) -> list[Order]:
    """order-select: the selected orders; order-sign: every draft order. Medication orders only."""
    resources = context.draftOrders.resources()
    references = context.selections if isinstance(context, OrderSelectContext) else list(resources)
    orders = []
    for reference in references:
        resource = resources[reference]
        if resource.get("resourceType") != "MedicationRequest":
            continue
        subject = resource.get("subject")
        if isinstance(subject, dict) and subject.get("reference") not in (None, f"Patient/{context.patientId}"):
            raise OrderError(f"draftOrders {reference} is for a different patient than context.patientId")
        codes, display = _medication(resource, resources)
        orders.append(Order(reference, frozenset(codes), display, resource))
    return orders


def _medication(resource: dict[str, Any], bundle: dict[str, dict[str, Any]]) -> tuple[set[str], str | None]:
    concept = resource.get("medicationCodeableConcept")
    if concept is None:
        concept = _referenced_medication_code(resource, bundle)
    if not isinstance(concept, dict):
        return set(), None
    codes = {
        str(coding["code"])
        for coding in concept.get("coding") or []
        if isinstance(coding, dict) and coding.get("system") == RXNORM_SYSTEM and coding.get("code")
    }
    display = concept.get("text") or next(
        (
            coding.get("display")
            for coding in concept.get("coding") or []
            if isinstance(coding, dict) and coding.get("display")
        ),
        None,
    )
    return codes, display


def _referenced_medication_code(resource: dict[str, Any], bundle: dict[str, dict[str, Any]]) -> Any:
    """The code of a Medication the order points at: contained (``#id``) or in the draft bundle."""
    reference = (resource.get("medicationReference") or {}).get("reference")
    if not isinstance(reference, str):
        return None
    if reference.startswith("#"):
        for contained in resource.get("contained") or []:
            if isinstance(contained, dict) and contained.get("id") == reference[1:]:
                return contained.get("code")
        return None
    medication = bundle.get(reference)
    return medication.get("code") if medication else None
