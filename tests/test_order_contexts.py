"""The context's fast check (hooks.protocol.order_contexts) never accepts what pydantic refuses.

The service reads a context the fast check accepts without pydantic; anything else goes to the
pydantic models, whose errors become the 400's reasons. So: whatever the fast check accepts,
pydantic accepts with the same values read (and the same orders to check); whatever it declines
gets exactly pydantic's answer, and over HTTP exactly the 400 reasons the models give. The
contexts are well-formed ones with random damage: wrong JSON types, ids and references that
almost match the patterns, missing fields, selections naming no order, bundles without orders,
extra fields, keys that are not strings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hooks.answering.orders import OrderError, orders_to_check
from hooks.protocol.order_contexts import MODELS, certainly_valid, from_model, order_context
from hooks.protocol.outcomes import validation_reasons
from tests.fhirdata import PATIENT, genotype, hook_request, medication_request

ROOT = Path(__file__).resolve().parent.parent
URLS = {"order-select": "/cds-services/pgx-order-select", "order-sign": "/cds-services/pgx-order-sign"}

ODD = (
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(st.just("a"), max_size=2)
    | st.just({})
)
VALID_IDS = st.sampled_from(["draft-1", "a", "A.b-9", "x" * 64, PATIENT])
# Each almost a FHIR id: empty, too long, a trailing newline (Python's "$" passes it), non-ASCII, a reference.
ODD_IDS = st.sampled_from(["", "x" * 65, "a\n", "a b", "é", "٣", "Patient/1", "a/b"])
IDS = st.one_of(VALID_IDS, VALID_IDS, VALID_IDS, ODD_IDS, ODD)
KINDS = st.one_of(
    st.sampled_from(["MedicationRequest", "ServiceRequest", "Medication", "Observation", "NutritionOrder"]),
    st.sampled_from(["MedicationRequest", "Medication"]),
    st.sampled_from(["", "M", "medicationRequest", "MedicationRequest\n", "Medication Request", "Médication"]),
    ODD,
)
USERS = st.one_of(
    st.sampled_from(["Practitioner/prescriber-1", "PractitionerRole/r.1", "Practitioner/" + "x" * 64]),
    st.sampled_from(["Patient/1", "Practitioner/", "Practitioner/a\n", "practitioner/a", "Practitioner/é", "a"]),
    ODD,
)
EXTRA = st.dictionaries(st.text(max_size=6), st.none() | st.integers() | st.text(max_size=3), max_size=2)


def _damaged(draw: Any, value: Any, odds: int = 10) -> Any:
    """``value`` most of the time; sometimes a value of another JSON type."""
    return draw(ODD) if draw(st.integers(0, odds - 1)) == 0 else value


def _fields(draw: Any, fields: dict[Any, Any], json_only: bool) -> dict[Any, Any]:
    """Some fields dropped, extra fields added, sometimes a key that is not a string."""
    value = {**draw(EXTRA), **{key: item for key, item in fields.items() if draw(st.integers(0, 11)) != 0}}
    if not json_only and draw(st.integers(0, 19)) == 0:
        value[1] = "x"
    return value


@st.composite
def contexts(draw: Any, json_only: bool = False) -> tuple[str, dict[Any, Any]]:
    hook = draw(st.sampled_from(sorted(MODELS)))
    entries, references = [], []
    for _ in range(draw(st.integers(0, 4))):
        kind, name = draw(KINDS), draw(IDS)
        base = medication_request(name) if kind == "MedicationRequest" and isinstance(name, str) else {}
        resource = _fields(draw, {**base, "resourceType": kind, "id": name}, json_only)
        entries.append(_damaged(draw, _fields(draw, {"resource": _damaged(draw, resource)}, json_only)))
        if isinstance(kind, str) and isinstance(name, str):
            references.append(f"{kind}/{name}")
    known = [st.sampled_from(references)] * 4 if references else []
    selection = st.one_of(*known, st.sampled_from(["MedicationRequest/nope", "Medication/a", "MedicationRequest"]), ODD)
    bundle = {
        "resourceType": draw(st.sampled_from(["Bundle"] * 6 + ["List", "bundle", "Bundle\n"])),
        "type": "collection",
        "entry": _damaged(draw, entries),
    }
    context = {
        "userId": draw(USERS),
        "patientId": draw(IDS),
        "encounterId": draw(st.none() | IDS),
        "draftOrders": _damaged(draw, _fields(draw, bundle, json_only)),
        "selections": _damaged(draw, draw(st.lists(selection, max_size=3))),
    }
    return hook, _fields(draw, context, json_only)


def reference(hook: str, context: Any) -> tuple[Any, list[str]]:
    """What the service did before the fast check: pydantic's context, or its 400 reasons."""
    try:
        model = MODELS[hook].model_validate(context)
    except ValidationError as exc:
        return None, validation_reasons(exc, "context")
    return from_model(model), []


def orders_or_reasons(context: Any) -> Any:
    try:
        return orders_to_check(context)
    except OrderError as exc:
        return exc.reasons


@settings(max_examples=1500, deadline=None)
@given(case=contexts())
def test_a_context_the_fast_check_accepts_pydantic_accepts_with_the_same_values(case):
    hook, context = case
    fast = certainly_valid(hook, context)
    expected, reasons = reference(hook, context)
    if fast is not None:
        assert not reasons
        assert fast == expected
        assert orders_or_reasons(fast) == orders_or_reasons(expected)
    try:
        read = order_context(hook, context)
    except ValidationError as exc:
        assert validation_reasons(exc, "context") == reasons
    else:
        assert read == expected


def _examples() -> list[tuple[str, dict[str, Any]]]:
    requests = [orjson.loads(path.read_bytes()) for path in sorted((ROOT / "examples").glob("order-*.json"))]
    requests += [hook_request(), hook_request("order-sign")]
    return [(request["hook"], request["context"]) for request in requests]


@pytest.mark.parametrize(("hook", "context"), _examples())
def test_well_formed_contexts_take_the_fast_path(hook, context):
    fast = certainly_valid(hook, context)
    assert fast is not None  # else the fast path is never taken
    assert fast == reference(hook, context)[0]


@pytest.mark.parametrize("field", ["id", "resourceType"])
def test_what_only_pydantic_accepts_is_still_accepted(field):
    # The entries' checks use Python's "$", which lets a trailing newline through: the fast check
    # declines such an entry, pydantic accepts it, and the service reads the same context either way.
    context = hook_request("order-sign", orders=[medication_request(), medication_request("draft-2")])["context"]
    context["draftOrders"]["entry"][1]["resource"][field] += "\n"
    assert certainly_valid("order-sign", context) is None
    read = order_context("order-sign", context)
    assert read == reference("order-sign", context)[0]
    assert len(read.index_of) == 2


def test_the_400_reasons_over_http_are_pydantics(client):
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=contexts(json_only=True))
    def check(case):
        hook, context = case
        body = hook_request(hook, genotypes=[genotype("CYP2C19", "*2/*2")])
        body["context"] = context
        response = client.post(URLS[hook], json=body)
        expected, reasons = reference(hook, json.loads(json.dumps(context)))  # as the app receives it
        if expected is not None:
            found = orders_or_reasons(expected)
            reasons = found if found and isinstance(found[0], str) else []
        if reasons:
            assert response.status_code == 400, response.text
            assert [issue["diagnostics"] for issue in response.json()["issue"]] == reasons
        else:
            assert response.status_code == 200, response.text

    check()
