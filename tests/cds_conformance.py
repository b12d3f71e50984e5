"""A CDS Hooks 2.0 response checker: the C1-C11 rows of ../shared/reference/cds-hooks.md §8.

Written from the spec (and Inferno's checks), independently of the service's own models, so a
test that passes it is evidence of conformance and not of agreement with ourselves.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

ORDER_TYPES = {"DeviceRequest", "MedicationRequest", "NutritionOrder", "ServiceRequest", "VisionPrescription"}
REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


def empty_values(value: Any, path: str = "$") -> list[str]:
    """C11: every null, empty string, empty list and empty object, by JSON path."""
    found = []
    if value is None or value == "" or value == [] or value == {}:
        found.append(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            found += empty_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += empty_values(item, f"{path}[{index}]")
    return found


def _absolute(url: Any) -> bool:
    parts = urlsplit(url) if isinstance(url, str) else None
    return bool(parts and parts.scheme in ("http", "https") and parts.netloc)


def _action_problems(action: Any, where: str, draft_refs: set[str] | None) -> list[str]:
    problems = []
    if not isinstance(action, dict):
        return [f"{where}: not an object"]
    if action.get("type") not in ("create", "update", "delete"):
        problems.append(f"{where}.type invalid")
    if not isinstance(action.get("description"), str):
        problems.append(f"{where}.description missing")
    if action.get("type") in ("create", "update"):
        resource = action.get("resource")
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            problems.append(f"{where}.resource is not a FHIR resource")
    if action.get("type") == "delete":
        ref = action.get("resourceId")
        if not isinstance(ref, str) or not REFERENCE.match(ref):
            problems.append(f"{where}.resourceId is not Type/id")
        elif draft_refs is not None and ref not in draft_refs:
            problems.append(f"{where}.resourceId {ref} is not in draftOrders")
    return problems


def conformance_problems(body: Any, request: dict[str, Any] | None = None) -> list[str]:
    """Every C1-C11 violation in a service response (empty list = conformant)."""
    draft_refs = None
    if request is not None:
        entries = request["context"]["draftOrders"]["entry"]
        draft_refs = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries}
    problems = [f"C11 empty or null at {path}" for path in empty_values(body) if path != "$.cards"]
    if not isinstance(body, dict) or not isinstance(body.get("cards"), list):
        return [*problems, "C1 no cards array"]
    for i, card in enumerate(body["cards"]):
        at = f"cards[{i}]"
        summary = card.get("summary")
        if not isinstance(summary, str) or not 0 < len(summary) <= 139:
            problems.append(f"C2 {at}.summary missing or over 139 characters")
        if card.get("indicator") not in ("info", "warning", "critical"):
            problems.append(f"C2 {at}.indicator invalid")
        source = card.get("source")
        if not isinstance(source, dict) or not isinstance(source.get("label"), str):
            problems.append(f"C2 {at}.source.label missing")
        elif "url" in source and not _absolute(source["url"]):
            problems.append(f"C11 {at}.source.url not absolute")
        for field, kind in (
            ("uuid", str),
            ("detail", str),
            ("suggestions", list),
            ("overrideReasons", list),
            ("links", list),
        ):
            if field in card and not isinstance(card[field], kind):
                problems.append(f"C3 {at}.{field} wrong type")
        if card.get("suggestions") and card.get("selectionBehavior") not in ("at-most-one", "any"):
            problems.append(f"C4 {at}.selectionBehavior missing with suggestions")
        for j, reason in enumerate(card.get("overrideReasons") or []):
            if not all(isinstance(reason.get(k), str) for k in ("code", "system", "display")):
                problems.append(f"C5 {at}.overrideReasons[{j}] lacks code/system/display")
        for j, link in enumerate(card.get("links") or []):
            if not isinstance(link.get("label"), str) or not _absolute(link.get("url")):
                problems.append(f"C6 {at}.links[{j}] label/url")
            if link.get("type") not in ("absolute", "smart"):
                problems.append(f"C6 {at}.links[{j}].type invalid")
            if link.get("type") == "absolute" and "appContext" in link:
                problems.append(f"C6 {at}.links[{j}] appContext on an absolute link")
        for j, suggestion in enumerate(card.get("suggestions") or []):
            if not isinstance(suggestion.get("label"), str):
                problems.append(f"C7 {at}.suggestions[{j}].label missing")
            actions = suggestion.get("actions")
            if "actions" in suggestion and (not isinstance(actions, list) or not actions):
                problems.append(f"C7 {at}.suggestions[{j}].actions empty")
            for k, action in enumerate(actions or []):
                problems += [
                    f"C8 {p}" for p in _action_problems(action, f"{at}.suggestions[{j}].actions[{k}]", draft_refs)
                ]
            deletes = [a for a in actions or [] if a.get("type") == "delete"]
            creates = {a.get("resource", {}).get("resourceType") for a in actions or [] if a.get("type") == "create"}
            for action in deletes:
                if action.get("resourceId", "").split("/")[0] not in creates:
                    problems.append(f"C8 {at}.suggestions[{j}] deletes without creating the same type")
    for k, action in enumerate(body.get("systemActions") or []):
        problems += [f"C9 {p}" for p in _action_problems(action, f"systemActions[{k}]", draft_refs)]
    return problems
