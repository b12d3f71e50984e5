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
from hooks.protocol.order_contexts import _RESOURCE_TYPE, MODELS, certainly_valid, from_model, order_context
from hooks.protocol.outcomes import validation_reasons
from hooks.protocol.requests import ORDER_TYPES
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
IDS = st.sampled_from(["draft-1", "a", "A.b-9", "x" * 64, PATIENT])
# Each almost a FHIR id: empty, too long, a trailing newline (Python's "$" passes it), non-ASCII, a reference.
ODD_IDS = st.sampled_from(["", "x" * 65, "a\n", "a b", "é", "٣", "Patient/1", "a/b"]) | ODD
KINDS = st.sampled_from(["MedicationRequest", "MedicationRequest", "ServiceRequest", "Medication", "Observation"])
ODD_KINDS = (
    st.sampled_from(["", "M", "medicationRequest", "MedicationRequest\n", "Medication Request", "Médication"]) | ODD
)
USERS = st.sampled_from(["Practitioner/prescriber-1", "PractitionerRole/r.1", "Practitioner/" + "x" * 64])
ODD_USERS = (
    st.sampled_from(["Patient/1", "Practitioner/", "Practitioner/a\n", "practitioner/a", "Practitioner/é"]) | ODD
)
EXTRA = st.dictionaries(st.text(max_size=6), st.none() | st.integers() | st.text(max_size=3), max_size=2)


class Damage:
    """Draws well-formed parts, each damaged with probability 1/odds (never when odds is 0)."""

    def __init__(self, draw: Any, odds: int, json_only: bool):
        self.draw, self.odds, self.json_only = draw, odds, json_only

    def hit(self) -> bool:
        return self.odds > 0 and self.draw(st.integers(0, self.odds - 1)) == 0

    def pick(self, valid: st.SearchStrategy, odd: st.SearchStrategy = ODD) -> Any:
        return self.draw(odd if self.hit() else valid)

    def value(self, value: Any) -> Any:
        return self.draw(ODD) if self.hit() else value

    def fields(self, fields: dict[Any, Any]) -> dict[Any, Any]:
        """Extra fields added; sometimes a field dropped, or a key that is not a string."""
        value = {**self.draw(EXTRA), **{key: item for key, item in fields.items() if not self.hit()}}
        if not self.json_only and self.hit() and self.hit():
            value[1] = "x"
        return value


@st.composite
def contexts(draw: Any, json_only: bool = False) -> tuple[str, dict[Any, Any]]:
    """(hook, context): pristine, slightly damaged or much damaged, in about equal shares."""
    hook = draw(st.sampled_from(sorted(MODELS)))
    damage = Damage(draw, draw(st.sampled_from([0, 25, 6])), json_only)
    entries, references = [], []
    for _ in range(draw(st.integers(1, 4)) if not damage.hit() else 0):
        kind, name = damage.pick(KINDS, ODD_KINDS), damage.pick(IDS, ODD_IDS)
        base = medication_request(name) if kind == "MedicationRequest" and isinstance(name, str) else {}
        resource = damage.fields({**base, "resourceType": kind, "id": name})
        entries.append(damage.value(damage.fields({"resource": damage.value(resource)})))
        if isinstance(kind, str) and isinstance(name, str):
            references.append(f"{kind}/{name}")
    orders = [reference for reference in references if reference.startswith("MedicationRequest/")]
    selection = st.sampled_from(orders or references or ["MedicationRequest/nope"])
    odd_selection = st.sampled_from(["MedicationRequest/nope", "Medication/a", "MedicationRequest", *references]) | ODD
    bundle = {
        "resourceType": damage.pick(st.just("Bundle"), st.sampled_from(["List", "bundle", "Bundle\n"]) | ODD),
        "type": "collection",
        "entry": damage.value(entries),
    }
    selections = [
        damage.pick(selection, odd_selection) for _ in range(draw(st.integers(1, 3)) if not damage.hit() else 0)
    ]
    context = {
        "userId": damage.pick(USERS, ODD_USERS),
        "patientId": damage.pick(IDS, ODD_IDS),
        "encounterId": damage.pick(st.none() | IDS, ODD_IDS),
        "draftOrders": damage.value(damage.fields(bundle)),
        "selections": damage.value(selections),
    }
    return hook, damage.fields(context)


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


def assert_read_as_pydantic_reads(hook: str, context: Any) -> None:
    """Fast check accepted => pydantic accepts, same values, same orders; either way pydantic's answer."""
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


@settings(max_examples=1500, deadline=None)
@given(case=contexts())
def test_a_context_the_fast_check_accepts_pydantic_accepts_with_the_same_values(case):
    assert_read_as_pydantic_reads(*case)


class Key(str):
    """A key pydantic takes as a string, the fast check declines (not exactly str)."""


# Every near miss at every place a pattern or type is checked, in an otherwise valid context.
PLACES = {
    "userId": ("userId",),
    "patientId": ("patientId",),
    "encounterId": ("encounterId",),
    "bundle type": ("draftOrders", "resourceType"),
    "entry type": ("draftOrders", "entry", 1, "resource", "resourceType"),
    "entry id": ("draftOrders", "entry", 1, "resource", "id"),
    "selection": ("selections", 0),
}
NEAR_MISSES = [
    *("", "a\n", "a b", "é", "٣", "x" * 65, "Practitioner/" + "x" * 65, "Practitioner/a\n", "PractitionerRole/"),
    *("Patient/1", "Bundle\n", "MedicationRequest\n", "Medication", "M", "MedicationRequest/draft-2\n"),
    *("Medication/draft-2", "MedicationRequest/nope", None, 1, True, ["a"], {}),
]


@pytest.mark.parametrize("hook", sorted(MODELS))
@pytest.mark.parametrize("place", sorted(PLACES))
def test_every_near_miss_in_a_valid_context_is_read_as_pydantic_reads_it(hook, place):
    *parents, last = PLACES[place]
    for value in NEAR_MISSES:
        context = hook_request(orders=[medication_request(), medication_request("draft-2")])["context"]
        target = context
        for key in parents:
            target = target[key]
        target[last] = value
        assert_read_as_pydantic_reads(hook, context)


DICTS = [(), ("draftOrders",), ("draftOrders", "entry", 0), ("draftOrders", "entry", 0, "resource")]


@pytest.mark.parametrize("key", [1, None, Key("extra")])
@pytest.mark.parametrize("place", DICTS)
def test_a_key_that_is_not_a_plain_string_anywhere_is_read_as_pydantic_reads_it(key, place):
    context = hook_request()["context"]
    target = context
    for part in place:
        target = target[part]
    target[key] = "x"
    assert certainly_valid("order-select", context) is None
    assert_read_as_pydantic_reads("order-select", context)


def _examples() -> list[tuple[str, dict[str, Any]]]:
    requests = [orjson.loads(path.read_bytes()) for path in sorted((ROOT / "examples").glob("order-*.json"))]
    requests += [hook_request(), hook_request("order-sign")]
    return [(request["hook"], request["context"]) for request in requests]


@pytest.mark.parametrize(("hook", "context"), _examples())
def test_well_formed_contexts_take_the_fast_path(hook, context):
    fast = certainly_valid(hook, context)
    assert fast is not None  # else the fast path is never taken
    assert fast == reference(hook, context)[0]


def test_every_order_type_meets_the_resource_type_pattern():
    # The fast check does not match an order type's name against the pattern again.
    assert all(_RESOURCE_TYPE.fullmatch(kind) for kind in ORDER_TYPES)


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


def test_urn_uuid_full_urls_are_read_alike_and_only_pydantic_takes_an_entry_without_an_id():
    # A transaction-style draftOrders: a Medication named by its entry's urn:uuid fullUrl (test_ehr_references.py).
    context = hook_request("order-sign", orders=[medication_request()])["context"]
    urn = "urn:uuid:0b9e5f3c-8a47-4d21-b6de-7c1f9a2e4b10"
    context["draftOrders"]["entry"].append({"fullUrl": urn, "resource": {"resourceType": "Medication", "id": "m"}})
    fast = certainly_valid("order-sign", context)
    assert fast is not None and fast == reference("order-sign", context)[0]
    assert fast.uuid_index_of == {urn: 1} and fast.index_of["Medication/m"] == 1
    del context["draftOrders"]["entry"][1]["resource"]["id"]
    assert certainly_valid("order-sign", context) is None
    read = order_context("order-sign", context)
    assert read.uuid_index_of == {urn: 1} and "Medication/m" not in read.index_of
