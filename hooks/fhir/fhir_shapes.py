"""The R4 shapes of the FHIR fields the service reads or copies, checked before anything is read.

A field of the wrong type must never be read as "absent": a draft order whose medication is a
string, or a genotype whose value is a number, would otherwise look like "checked, nothing to
say" and lose a critical alert. Only the fields the service uses are declared; the others pass
unchecked and are never copied (``model_dump`` of a shape holds only declared fields).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from hooks.fhir.shape_check import conforms
from hooks.protocol.outcomes import validation_reasons

ShapeT = TypeVar("ShapeT", bound=BaseModel)
FhirDate = Annotated[str, StringConstraints(pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$")]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Coding(_Shape):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(_Shape):
    coding: list[Coding] | None = None
    text: str | None = None


class Reference(_Shape):
    reference: str | None = None
    display: str | None = None


class Period(_Shape):
    start: str | None = None


# --- draft orders (what rule matching reads, and what a suggestion carries over) ---------------

# R4 required bindings: https://hl7.org/fhir/R4/valueset-medicationrequest-intent.html, request-priority.
Intent = Literal[
    "proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"
]
Priority = Literal["routine", "urgent", "asap", "stat"]


class ContainedResource(_Shape):
    resourceType: str | None = None
    id: str | None = None
    code: CodeableConcept | None = None


CARRIED_OVER = {"intent", "encounter", "reasonCode", "reasonReference", "category", "priority"}


class DraftMedicationRequest(_Shape):
    """A draft MedicationRequest, as far as the service reads it (R4: medication[x] is required)."""

    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    contained: list[ContainedResource] | None = None
    subject: Reference | None = None
    intent: Intent | None = None
    priority: Priority | None = None
    encounter: Reference | None = None
    category: list[CodeableConcept] | None = None
    reasonCode: list[CodeableConcept] | None = None
    reasonReference: list[Reference] | None = None


class Medication(_Shape):
    code: CodeableConcept | None = None


# --- prefetched or fetched results and context ------------------------------------------------


class Component(_Shape):
    code: CodeableConcept | None = None
    valueCodeableConcept: CodeableConcept | None = None


class Observation(_Shape):
    id: str | None = None
    status: str | None = None
    code: CodeableConcept | None = None
    subject: Reference | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: str | None = None
    component: list[Component] | None = None
    derivedFrom: list[Reference] | None = None
    effectiveDateTime: str | None = None
    effectivePeriod: Period | None = None
    issued: str | None = None


class Condition(_Shape):
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    code: CodeableConcept | None = None


class Patient(_Shape):
    id: str | None = None
    birthDate: FhirDate | None = None


class BundleLink(_Shape):
    relation: str
    url: str


class BundleEntry(_Shape):
    resource: dict[str, Any] | None = None


class Bundle(_Shape):
    entry: list[BundleEntry] | None = None
    link: list[BundleLink] | None = None


SHAPES: dict[str, type[_Shape]] = {"Observation": Observation, "Condition": Condition, "Patient": Patient}


def shape_problems(shape: type[BaseModel], value: Any, where: str) -> list[str]:
    """Each field of ``value`` (at ``where`` in the request) that does not have its R4 shape; never the values."""
    return read_shape(shape, value, where)[1]


def read_shape(shape: type[ShapeT], value: Any, where: str) -> tuple[ShapeT | None, list[str]]:
    """``value`` read as ``shape``, or None and each field that does not have its R4 shape (never the values)."""
    try:
        return shape.model_validate(value), []
    except ValidationError as exc:
        return None, validation_reasons(exc, where)


def problems_of(shape: type[BaseModel], value: Any, where: str) -> list[str]:
    """As ``shape_problems``, without building the shape when the fast check already knows there are none."""
    return [] if conforms(shape)(value) else shape_problems(shape, value, where)


def carried_over(draft: dict[str, Any]) -> dict[str, Any]:
    """The fields a suggested replacement keeps from a draft that has its R4 shape (intent, visit,
    indication, category, priority), as ``DraftMedicationRequest``'s ``model_dump(exclude_none=True)``
    would give them: declared fields only, in their declared order, never a None."""
    return _declared(_CARRIED_PARTS, draft)


def _declared(parts: tuple[tuple[str, Any], ...], value: dict[str, Any]) -> dict[str, Any]:
    dumped = {}
    for name, part in parts:
        item = value.get(name)
        if item is None:
            continue
        if part is None:
            dumped[name] = item
        elif type(item) is list:
            dumped[name] = [_declared(_parts(part), element) for element in item]
        else:
            dumped[name] = _declared(_parts(part), item)
    return dumped


@cache
def _parts(shape: type[BaseModel]) -> tuple[tuple[str, type[BaseModel] | None], ...]:
    """Each field of ``shape`` with the shape its value (or each element of its list) has, None for a leaf."""
    parts = []
    for name, field in shape.model_fields.items():
        inner = field.annotation
        options = [option for option in get_args(inner) if option is not type(None)]
        if get_origin(inner) in (Union, types.UnionType) and len(options) == 1:
            inner = options[0]
        if get_origin(inner) is list:
            (inner,) = get_args(inner)
        parts.append((name, inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None))
    return tuple(parts)


_CARRIED_PARTS = tuple(part for part in _parts(DraftMedicationRequest) if part[0] in CARRIED_OVER)


Unread = Callable[[dict[str, Any]], bool]


def read_all(resource: dict[str, Any]) -> bool:
    """Every resource is read (and so checked)."""
    return False


def value_problems(value: Any, where: str, unread: Unread = read_all) -> list[str]:
    """Shape problems of a prefetch value or fetched page: a Bundle's entries, or one resource.

    ``unread(resource)``: True for a resource the caller certainly will not read (a result about a
    gene no rule of the order needs); its shape is then not checked.
    """
    if _conforms(value, unread):
        return []  # the usual case, known without building the shapes (hooks.fhir.shape_check)
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return [f"{where}: not a FHIR resource"]
    if value["resourceType"] != "Bundle":
        shape = SHAPES.get(value["resourceType"])
        return shape_problems(shape, value, where) if shape and not unread(value) else []
    problems = shape_problems(Bundle, value, where)
    if problems:
        return problems
    for index, entry in enumerate(value.get("entry") or []):
        resource = entry.get("resource")
        if resource is None:
            continue
        if not isinstance(resource.get("resourceType"), str):
            problems.append(f"{where}.entry.{index}.resource.resourceType: missing or not a string")
        elif (shape := SHAPES.get(resource["resourceType"])) and not unread(resource):
            problems += shape_problems(shape, resource, f"{where}.entry.{index}.resource")
    return problems


_CHECKS = {kind: conforms(shape) for kind, shape in SHAPES.items()}
_BUNDLE_CHECK = conforms(Bundle)


def _conforms(value: Any, unread: Unread) -> bool:
    """Whether ``value`` certainly has no problems by ``value_problems`` (False: look closer)."""
    if type(value) is not dict:
        return False
    kind = value.get("resourceType")
    if type(kind) is not str:
        return False
    if kind != "Bundle":
        check = _CHECKS.get(kind)
        return check is None or unread(value) or check(value)
    if not _BUNDLE_CHECK(value):
        return False
    for entry in value.get("entry") or ():  # each a dict holding a dict or None: the Bundle check said so
        resource = entry.get("resource")
        if resource is None:
            continue
        kind = resource.get("resourceType")
        if type(kind) is not str:
            return False
        check = _CHECKS.get(kind)
        if check is not None and not unread(resource) and not check(resource):
            return False
    return True
