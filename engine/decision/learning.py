"""The ``learning:`` section of a rule file: how this site's own data may move the rule's tiers.

It names the study (outcome, time at risk, comparator drugs, covariates), the literature prior
for each genotype group, and the policy thresholds. Analytics (``analytics/``) runs it; this
module only says what a valid section is.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RXNORM = r"^\d{1,10}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodedCondition(_Strict):
    """A diagnosis code: system is snomed, icd10 (covering its sub-codes) or omop.

    ``omop`` is an OMOP standard concept id, the form OHDSI publishes outcome lists in (negative
    controls, for one): it matches that concept and its descendants in ``condition_occurrence``.
    """

    system: Literal["snomed", "icd10", "omop"]
    code: str = Field(min_length=1)
    display: str | None = None

    @field_validator("code", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _concept_id(self) -> CodedCondition:
        if self.system == "omop" and not re.fullmatch(r"[1-9]\d{0,9}", self.code):
            raise ValueError(f"an omop code is a concept id (digits only, e.g. 139099), not {self.code!r}")
        return self


class Outcome(_Strict):
    name: str = Field(min_length=1)
    conditions: tuple[CodedCondition, ...] = Field(min_length=1)


class Comparator(_Strict):
    """A drug patients get instead (the genotype should not matter for it)."""

    name: str = Field(min_length=1)
    rxnorm: tuple[str, ...] = Field(min_length=1, description="RxNorm ingredient (and product) codes")

    @field_validator("rxnorm", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        return tuple(str(v) for v in value) if isinstance(value, list | tuple) else value


class ConditionCovariate(_Strict):
    """Adjust for a diagnosis recorded before the first dose."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    conditions: tuple[CodedCondition, ...] = Field(min_length=1)
    lookback_days: int = Field(default=365, ge=1, le=36500)


class Prior(_Strict):
    """The published hazard ratio for this group, with its 95% confidence interval."""

    hr: float = Field(gt=0)
    ci: tuple[float, float]
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _interval(self) -> Prior:
        low, high = self.ci
        if not 0 < low < self.hr < high:
            raise ValueError("ci must be (low, high) with low < hr < high")
        return self

    @property
    def log_hr(self) -> float:
        return math.log(self.hr)

    @property
    def se(self) -> float:
        return (math.log(self.ci[1]) - math.log(self.ci[0])) / (2 * 1.959964)


class Group(_Strict):
    """Phenotypes estimated together against the reference, and the tiers the result may move."""

    label: str = Field(min_length=1)
    phenotypes: tuple[str, ...] = Field(min_length=1)
    prior: Prior


class Policy(_Strict):
    """When the posterior moves a tier (documented in rules/README.md)."""

    harm_hr: float = Field(default=1.2, gt=1, description="A clinically meaningful harm")
    escalate_probability: float = Field(default=0.90, gt=0.5, lt=1)
    local_confirmation: float = Field(
        default=0.95, ge=0.5, lt=1,
        description="A floor under the sequential boundary: escalate only when P(local HR > 1) from the site's own "
        "estimate also exceeds this",
    )  # fmt: skip
    false_escalation_per_year: float = Field(
        default=0.05, gt=0, lt=0.5,
        description="Escalation is a sequential test over each year's cycles: at a true HR of 1, the chance that "
        "any cycle in a year escalates is at most this (Lan-DeMets alpha spending, analytics/study/sequential.py)",
    )  # fmt: skip
    spending: Literal["pocock", "obrien-fleming"] = Field(
        default="pocock", description="How the year's false-escalation budget is spent over its cycles"
    )
    safe_hr: float = Field(default=1.1, ge=1, description="Harm small enough to alert less")
    deescalate_probability: float = Field(default=0.95, gt=0.5, lt=1)
    deescalate_after: int = Field(default=2, ge=1, description="Consecutive cycles the evidence must hold")
    prior_weight: float = Field(
        default=0.8, gt=0, le=1, description="Weight of the literature prior against a vague one (robust mixture)"
    )
    heterogeneity: float = Field(default=0.2, ge=0, description="Between-site SD added to the prior's log-HR SE")
    min_events: int = Field(default=10, ge=1, description="Events needed in the group and in the reference")
    min_negative_controls: int = Field(
        default=5, ge=2,
        description="With at least this many estimable negative controls, decisions use the calibrated estimate",
    )  # fmt: skip
    max_se: float = Field(default=0.35, gt=0, description="Largest SE of the local log HR worth acting on")

    @model_validator(mode="after")
    def _ordered(self) -> Policy:
        if self.safe_hr > self.harm_hr:
            raise ValueError("safe_hr must not exceed harm_hr")
        return self


class Learning(_Strict):
    """How the analytics job estimates this rule's effect on this site's own outcomes."""

    mode: Literal["auto", "propose", "off"] = Field(
        description="auto: apply tier changes within bounds; propose: wait for approval; off: estimate only"
    )
    outcome: Outcome
    time_at_risk_days: int = Field(default=365, ge=1, le=3650)
    washout_days: int = Field(default=365, ge=0, le=3650, description="No use of the drugs before the first dose")
    exclude_prior_outcome: bool = Field(
        default=False, description="Leave out patients with the outcome before the first dose"
    )
    comparators: tuple[Comparator, ...] = ()
    negative_controls: tuple[Outcome, ...] = Field(
        default=(),
        description="Outcomes the genotype cannot affect on the drug, estimated with the same design to measure "
        "its systematic error (empirical calibration, analytics/study/calibration.py)",
    )
    covariates: tuple[Literal["age", "sex"] | ConditionCovariate, ...] = ("age", "sex")
    reference: tuple[str, ...] = Field(default=("Normal Metabolizer",), min_length=1)
    groups: tuple[Group, ...] = Field(min_length=1)
    policy: Policy = Policy()

    @property
    def condition_covariates(self) -> tuple[ConditionCovariate, ...]:
        return tuple(c for c in self.covariates if isinstance(c, ConditionCovariate))
