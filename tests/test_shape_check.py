"""The fast shape check (hooks.fhir.shape_check) never passes what the pydantic shapes refuse.

The service skips pydantic for a prefetched value the fast check accepts, so a check that is
looser than the shape would let an unreadable result through as "absent" (issue 10). Random
JSON built from the shapes' own field names, and random damage to real results, must never be
accepted by the fast check and refused by pydantic; the well-formed results must be accepted
(else the fast path is never taken).
"""

from __future__ import annotations

import copy
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError

from hooks.fhir import fhir_shapes
from hooks.fhir.fhir_shapes import (
    CARRIED_OVER,
    SHAPES,
    Bundle,
    DraftMedicationRequest,
    Medication,
    carried_over,
    value_problems,
)
from hooks.fhir.shape_check import conforms
from tests.fhirdata import genotype, hook_request, searchset

ROOT = Path(__file__).resolve().parent.parent
CHECKED = [*SHAPES.values(), Bundle, fhir_shapes.BundleLink, DraftMedicationRequest, Medication]
NAMES = sorted(
    {
        name
        for shape in vars(fhir_shapes).values()
        if isinstance(shape, type) and issubclass(shape, BaseModel)
        for name in getattr(shape, "model_fields", {})
    }
    | {"resourceType", "resource", "other"}
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from(
        ["", "x", "1970", "1970-01-01", "1970-01-01\n", "1970-1-1", "٢٠٢٠", "final", "order", "stat", "Observation"]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(NAMES), inner, max_size=5),
    max_leaves=30,
)


def near(annotation: Any) -> st.SearchStrategy:
    """Values shaped by ``annotation`` most of the time, with arbitrary JSON anywhere inside."""
    return st.one_of(_shaped(annotation), JSON) if annotation is not Any else JSON


def _shaped(annotation: Any) -> st.SearchStrategy:
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = {name: near(field.annotation) for name, field in annotation.model_fields.items()}
        return st.fixed_dictionaries({}, optional=fields)
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (Union, types.UnionType):
        return st.one_of(*(near(option) for option in args))
    if origin is list:
        return st.lists(near(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(st.sampled_from(NAMES), JSON, max_size=3)
    return SCALARS  # str, constrained or not


EXAMPLE = orjson.loads((ROOT / "examples" / "order-select-poor-metabolizer.json").read_bytes())
REAL = [
    (Bundle, EXAMPLE["prefetch"]["pgxGenotypes"]),
    *((fhir_shapes.Observation, entry["resource"]) for entry in EXAMPLE["prefetch"]["pgxGenotypes"]["entry"]),
    (fhir_shapes.Patient, {"resourceType": "Patient", "id": "p", "birthDate": "1970-01-01"}),
    (DraftMedicationRequest, EXAMPLE["context"]["draftOrders"]["entry"][0]["resource"]),
]


def pydantic_accepts(shape: type[BaseModel], value: Any) -> bool:
    try:
        shape.model_validate(value)
    except ValidationError:
        return False
    return True


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place inside ``value`` a part could be replaced."""
    found = [prefix]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found += paths(item, (*prefix, key))
    return found


def damaged(value: Any, path: tuple, replacement: Any) -> Any:
    if not path:
        return replacement
    copied = copy.deepcopy(value)
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = replacement
    return copied


@pytest.mark.parametrize(("shape", "value"), REAL, ids=lambda item: getattr(item, "__name__", ""))
def test_well_formed_values_take_the_fast_path(shape, value):
    assert conforms(shape)(value)
    assert pydantic_accepts(shape, value)


@settings(max_examples=600, deadline=None)
@given(data=st.data(), shape=st.sampled_from(CHECKED))
def test_random_json_passing_the_fast_check_passes_the_shape(data, shape):
    value = data.draw(_shaped(shape))
    if conforms(shape)(value):
        assert pydantic_accepts(shape, value)


@settings(max_examples=300, deadline=None)
@given(real=st.sampled_from(REAL), data=st.data(), replacement=JSON)
def test_damaged_results_passing_the_fast_check_pass_the_shape(real, data, replacement):
    shape, value = real
    path = data.draw(st.sampled_from(paths(value)))
    broken = damaged(value, path, replacement)
    if conforms(shape)(broken):
        assert pydantic_accepts(shape, broken)


def _carried_as_the_model_dumps_them(value: Any) -> None:
    model = DraftMedicationRequest.model_validate(value)
    # Byte for byte: the suggestion a card offers copies these fields in this order.
    assert orjson.dumps(carried_over(value)) == orjson.dumps(model.model_dump(include=CARRIED_OVER, exclude_none=True))


def test_the_carried_over_fields_of_a_real_draft_are_what_the_model_dumps():
    draft = EXAMPLE["context"]["draftOrders"]["entry"][0]["resource"]
    reason = {"coding": [{"system": "http://snomed.info/sct", "code": "22298006", "extra": 1}], "text": None}
    _carried_as_the_model_dumps_them(
        draft | {"reasonCode": [reason], "priority": "stat", "category": [], "reasonReference": [{"display": "x"}]}
    )
    assert carried_over(draft) == {"intent": "order", "encounter": {"reference": "Encounter/example-encounter-1"}}


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_carried_over_fields_of_any_draft_the_shape_accepts_are_what_the_model_dumps(data):
    value = data.draw(_shaped(DraftMedicationRequest))
    if pydantic_accepts(DraftMedicationRequest, value):
        _carried_as_the_model_dumps_them(value)


@pytest.mark.parametrize(
    "value",
    [
        searchset(genotype("CYP2C19", "*2/*2") | {"valueString": 22}),
        searchset(genotype("CYP2C19", "*2/*2") | {"code": {"coding": {"system": "x"}}}),
        {"resourceType": "Patient", "birthDate": "1970-01-01\n"},
        {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": 7}}]},
    ],
)
def test_a_value_failing_the_fast_check_still_gets_its_reasons(value):
    assert value_problems(value, "prefetch.x")


def test_the_whole_request_example_has_no_problems():
    assert not value_problems(hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])["prefetch"]["pgxGenotypes"], "p")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    count: int | None = None


class _Forbidding(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str | None = None


class _Tags(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    tags: list[str] | None = None


@pytest.mark.parametrize("shape", [_Loose, _Forbidding, _Tags])
def test_a_shape_the_check_cannot_mirror_is_refused_when_the_check_is_built(shape):
    with pytest.raises(TypeError):
        conforms(shape)
