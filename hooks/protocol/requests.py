"""What an EHR sends: CDS Hooks 2.0 requests, order-select/order-sign contexts, feedback.

Validation here is what turns malformed input into a 400 that says what is wrong. Error messages
name the field, never echo its value (it may be a token or a patient id).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hooks.protocol.fhir_servers import BaseUrl, UnusableUrl

FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"
UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
URN_UUID = "urn:uuid:"
ORDER_TYPES = ("MedicationRequest", "ServiceRequest", "DeviceRequest", "NutritionOrder", "VisionPrescription")
_FHIR_ID = re.compile(FHIR_ID)
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
NonBlank = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]
# Feedback fields end up in the event log and the analysts' exports: bounded, whatever the EHR sends.
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"\S")]


class _Open(BaseModel):
    """CDS Hooks objects may carry fields defined later (``extension``, new hook fields)."""

    model_config = ConfigDict(extra="allow")


class FhirAuthorization(_Open):
    access_token: NonBlank
    token_type: Literal["Bearer"]
    expires_in: int = Field(ge=0, strict=True)
    scope: NonBlank
    subject: NonBlank
    patient: str | None = Field(default=None, pattern=FHIR_ID)

    @field_validator("token_type", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        # CDS Hooks writes "Bearer"; OAuth 2.0 token types are case-insensitive (RFC 6749 §5.1), and clients
        # built on OAuth libraries send "bearer".
        return "Bearer" if type(value) is str and value.lower() == "bearer" else value


class HookRequest(_Open):
    """The body of ``POST /cds-services/{id}``."""

    hook: NonBlank
    hookInstance: str = Field(pattern=UUID)
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None

    @field_validator("fhirServer")
    @classmethod
    def _usable_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                BaseUrl.parse(value)
            except UnusableUrl as exc:
                raise ValueError(str(exc)) from None  # names the problem, never the URL
        return value

    @model_validator(mode="after")
    def _server_for_token(self) -> HookRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirServer is required when fhirAuthorization is given")
        return self


class BundleEntry(_Open):
    fullUrl: Any = None  # read before ``resource``: it decides whether the resource needs an id
    resource: dict[str, Any]

    @field_validator("resource")
    @classmethod
    def _typed_with_id(cls, resource: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Kept as the raw JSON (orders are read field by field later); only type and id are checked.
        if not isinstance(resource.get("resourceType"), str) or not _RESOURCE_TYPE.match(resource["resourceType"]):
            raise ValueError("resourceType: missing or not a FHIR resource type")
        if (
            "id" not in resource
            and resource["resourceType"] not in ORDER_TYPES
            and is_urn_uuid(info.data.get("fullUrl"))
        ):
            # A resource new in this Bundle, as a transaction carries it (a Medication an order names by
            # the urn:uuid): FHIR gives it no id yet. An order always needs one: selections name it by it.
            return resource
        if not isinstance(resource.get("id"), str) or not _FHIR_ID.match(resource["id"]):
            raise ValueError("id: missing or not a FHIR id")
        return resource


def is_urn_uuid(value: Any) -> bool:
    """Whether ``value`` (a Bundle entry's fullUrl, or a reference to one) is a ``urn:uuid:``: bundle.html's
    name for a resource new in the Bundle, on no server yet."""
    return type(value) is str and value.startswith(URN_UUID)


class DraftOrders(_Open):
    resourceType: Literal["Bundle"]
    entry: list[BundleEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _has_orders(self) -> DraftOrders:
        if not any(entry.resource["resourceType"] in ORDER_TYPES for entry in self.entry):
            raise ValueError(f"draftOrders holds no order ({', '.join(ORDER_TYPES)})")
        return self

    def resources(self) -> dict[str, dict[str, Any]]:
        """Every entry with an id as ``{"Type/id": resource}``."""
        return {
            f"{entry.resource['resourceType']}/{entry.resource['id']}": entry.resource
            for entry in self.entry
            if "id" in entry.resource
        }


class OrderSignContext(_Open):
    userId: str = Field(pattern=r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$")
    patientId: str = Field(pattern=FHIR_ID)
    encounterId: str | None = Field(default=None, pattern=FHIR_ID)
    draftOrders: DraftOrders


class OrderSelectContext(OrderSignContext):
    selections: list[str] = Field(min_length=1, description="Type/id of the selected draft orders")

    @model_validator(mode="after")
    def _selections_exist(self) -> OrderSelectContext:
        known = self.draftOrders.resources()
        for index, selection in enumerate(self.selections):
            kind, _, _ = selection.partition("/")
            if kind not in ORDER_TYPES or selection not in known:
                raise ValueError(f"selections[{index}] must name an order in draftOrders as Type/id")
        return self


class Coding(_Open):
    system: ShortText
    code: ShortText
    display: str | None = Field(default=None, max_length=1000)


class OverrideReason(_Open):
    reason: Coding | None = None
    userComment: str | None = Field(default=None, max_length=4000)


class AcceptedSuggestion(_Open):
    id: ShortText


class FeedbackItem(_Open):
    card: ShortText
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = Field(default=None, max_length=100)
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: AwareDatetime

    @field_validator("outcomeTimestamp")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)  # what is recorded; "9999-12-31T23:59:59-14:00" is past year 9999 in UTC
        except OverflowError:
            raise ValueError("the time in UTC is outside the years 1 to 9999") from None

    @model_validator(mode="after")
    def _accepted_names_suggestion(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when outcome is accepted")
        return self


class FeedbackRequest(_Open):
    """The body of ``POST /cds-services/{id}/feedback``."""

    feedback: list[FeedbackItem] = Field(min_length=1, max_length=1000)
