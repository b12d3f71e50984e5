"""Error answers: FHIR OperationOutcomes, as CDS Hooks 3.0 asks (harmless in 2.0), and their OpenAPI description."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

JSON = "application/json"


class BadRequest(ValueError):
    """A request the service cannot act on; its message goes back in the 400."""

    def __init__(self, *reasons: str):
        self.reasons = list(reasons)
        super().__init__("; ".join(reasons))


def validation_reasons(error: ValidationError, prefix: str = "") -> list[str]:
    """Field path and message of each problem; never the offending value."""
    reasons = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        message = item["msg"].removeprefix("Value error, ")
        reasons.append(f"{where}: {message}" if where else message)
    return reasons


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
    415: "The body is not declared as Content-Type: application/json, or is compressed (Content-Encoding)",
    503: "The event log cannot be written right now; nothing was recorded, try again",
}
