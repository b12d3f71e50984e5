"""Error answers: FHIR OperationOutcomes, as CDS Hooks 3.0 asks (harmless in 2.0), and their OpenAPI description."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi.responses import Response
from pydantic import BaseModel

JSON = "application/json"


class Issue(BaseModel):
    severity: Literal["fatal", "error", "warning", "information"]
    code: str
    diagnostics: str


class OperationOutcome(BaseModel):
    """What went wrong, one issue per reason; reasons name fields, never echo their values."""

    resourceType: Literal["OperationOutcome"]
    issue: list[Issue]


def operation_outcome(status: int, code: str, *diagnostics: str) -> Response:
    issues = [{"severity": "error", "code": code, "diagnostics": text} for text in diagnostics or ("error",)]
    return Response(orjson.dumps({"resourceType": "OperationOutcome", "issue": issues}), status, media_type=JSON)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error answers a CDS route can give (401 included: auth may be on)."""
    answers: dict[int | str, dict[str, Any]] = {401: {"description": UNAUTHORIZED}}
    answers.update({status: {"model": OperationOutcome, "description": ERRORS[status]} for status in statuses})
    return answers


UNAUTHORIZED = "No valid EHR-signed JWT (PGX_LOOP_AUTH=jwt); the body is empty"


ERRORS = {
    400: "The request is malformed; each issue names the field and what is wrong with it",
    404: "No such CDS service",
    412: "The patient's results are neither in prefetch nor obtainable from fhirServer",
    413: "The body is larger than the service accepts",
    503: "The event log cannot be written right now; nothing was recorded, try again",
}
