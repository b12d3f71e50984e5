"""The order-select / order-sign context as the service reads it, checked once.

Pydantic (``OrderSelectContext``, ``OrderSignContext``) is what explains a malformed context in a
400, but validating the usual well-formed context with it cost ~95k instructions per hook call
(5%). So a plain check runs first. It accepts only what pydantic certainly accepts (exact JSON
types, string keys, the same patterns matched whole and ASCII-only, which is at least as strict
as pydantic's regex) and hands everything else to pydantic: every refusal, and its reasons,
stays pydantic's. tests/test_order_contexts.py checks "accepted here => accepted there, same values".
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from hooks.protocol.requests import ORDER_TYPES, OrderSelectContext, OrderSignContext, is_urn_uuid

MODELS: dict[str, type[OrderSignContext]] = {"order-select": OrderSelectContext, "order-sign": OrderSignContext}
# requests.py's patterns, anchored by fullmatch: Python's "$" would also pass a trailing newline.
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}", re.ASCII)
_USER = re.compile(r"(?:Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}", re.ASCII)
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]+", re.ASCII)
_STR = {str}


class OrderContext(NamedTuple):
    """What the service reads of a valid context (fields named as CDS Hooks names them).

    A NamedTuple: built once per hook call, and a frozen dataclass's ``__init__`` alone cost
    more than all the fast check's patterns.

    ``resources`` are the draftOrders entries' resources in order, as the JSON they are;
    ``index_of`` maps each "Type/id" to the index of its (last) entry; ``uuid_index_of`` each
    ``urn:uuid:`` fullUrl to the index of its (last) entry (a resource that may have no id, named
    by that in a reference, bundle.html#references); ``selections`` is None for order-sign, where
    every draft order is checked.
    """

    userId: str
    patientId: str
    encounterId: str | None
    resources: list[dict[str, Any]]
    index_of: dict[str, int]
    selections: list[str] | None
    uuid_index_of: dict[str, int]


def order_context(hook: str, context: dict[str, Any]) -> OrderContext:
    """The ``context`` of an order-select or order-sign call; raises pydantic's ValidationError if malformed."""
    checked = certainly_valid(hook, context)
    return checked if checked is not None else from_model(MODELS[hook].model_validate(context))


def from_model(model: OrderSignContext) -> OrderContext:
    """What the service reads of a context pydantic has validated."""
    entries = model.draftOrders.entry
    resources = [entry.resource for entry in entries]
    index_of = {f"{r['resourceType']}/{r['id']}": i for i, r in enumerate(resources) if "id" in r}
    uuid_index_of = {entry.fullUrl: i for i, entry in enumerate(entries) if is_urn_uuid(entry.fullUrl)}
    selections = list(model.selections) if isinstance(model, OrderSelectContext) else None
    return OrderContext(
        model.userId, model.patientId, model.encounterId, resources, index_of, selections, uuid_index_of
    )


def certainly_valid(hook: str, context: Any) -> OrderContext | None:
    """``context`` read without pydantic if it certainly passes pydantic's checks; None at any doubt."""
    if type(context) is not dict or not _string_keys(context):
        return None
    user, patient, encounter = context.get("userId"), context.get("patientId"), context.get("encounterId")
    if type(user) is not str or type(patient) is not str or not _USER.fullmatch(user) or not _ID.fullmatch(patient):
        return None
    if encounter is not None and (type(encounter) is not str or not _ID.fullmatch(encounter)):
        return None
    bundle = context.get("draftOrders")
    if type(bundle) is not dict or not _string_keys(bundle):
        return None
    kind, entries = bundle.get("resourceType"), bundle.get("entry")
    if type(kind) is not str or kind != "Bundle" or type(entries) is not list or not entries:
        return None
    resources, index_of, uuid_index_of, has_order = [], {}, {}, False
    for index, entry in enumerate(entries):
        if type(entry) is not dict or not _string_keys(entry):
            return None
        resource = entry.get("resource")
        if type(resource) is not dict or not _string_keys(resource):
            return None
        kind, name = resource.get("resourceType"), resource.get("id")
        if type(kind) is not str or type(name) is not str:
            return None
        if kind in ORDER_TYPES:
            has_order = True  # and the pattern is met: every order type's name meets it
        elif not _RESOURCE_TYPE.fullmatch(kind):
            return None
        if not _ID.fullmatch(name):
            return None
        resources.append(resource)
        index_of[f"{kind}/{name}"] = index
        full_url = entry.get("fullUrl")
        if full_url is not None and is_urn_uuid(full_url):  # most entries have none: the sandbox sends none
            uuid_index_of[full_url] = index
    if not has_order:
        return None
    selections = None
    if hook == "order-select":
        selections = context.get("selections")
        if type(selections) is not list or not selections:
            return None
        for selection in selections:
            if type(selection) is not str or selection not in index_of:
                return None
            if selection.partition("/")[0] not in ORDER_TYPES:
                return None
        selections = list(selections)
    elif hook != "order-sign":
        return None
    return OrderContext(user, patient, encounter, resources, index_of, selections, uuid_index_of)


def _string_keys(value: dict[Any, Any]) -> bool:
    return _STR.issuperset(map(type, value))
