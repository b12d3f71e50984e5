"""Rule files (``rules/<rule-id>.yaml``): the schema pharmacists write to.

A rule ties one gene to the drugs of one CPIC guideline and says, per phenotype, what CPIC
recommends, how strongly the card interrupts (its *tier*, which the learning loop may move
between ``floor`` and ``ceiling``), and which alternative orders to offer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

Tier = Literal["none", "info", "warning", "critical"]
TIERS: tuple[Tier, ...] = ("none", "info", "warning", "critical")
TIER_RANK: dict[str, int] = {tier: rank for rank, tier in enumerate(TIERS)}

Classification = Literal["Strong", "Moderate", "Optional", "No recommendation"]
RXNORM_CODE = r"^\d{1,10}$"
SUMMARY_LIMIT = 139  # CDS Hooks: "<140 characters"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Drug(_Strict):
    """A drug the rule applies to, with every code an EHR may send for it."""

    name: str = Field(min_length=1)
    rxnorm: tuple[str, ...] = Field(min_length=1, description="RxNorm ingredient first, then clinical drugs")
    atc: tuple[str, ...] = ()

    @field_validator("rxnorm", mode="before")
    @classmethod
    def _codes_as_text(cls, value: object) -> object:
        # Pharmacists write `rxnorm: [32968, 309362]`; codes are identifiers, not numbers.
        if isinstance(value, list | tuple):
            return tuple(str(item) if isinstance(item, int) else item for item in value)
        return value

    @field_validator("rxnorm")
    @classmethod
    def _rxnorm_digits(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not code.isdigit():
                raise ValueError(f"RxNorm code {code!r} must be digits only")
        return value


class Alternative(_Strict):
    """A drug to order instead, offered as a one-click suggestion."""

    name: str = Field(min_length=1)
    rxnorm: str = Field(pattern=RXNORM_CODE, description="RxNorm ingredient code of the alternative")
    order_text: str = Field(min_length=1, description="Text of the order the suggestion creates")

    @field_validator("rxnorm", mode="before")
    @classmethod
    def _code_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class Guideline(_Strict):
    title: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    url: str = Field(pattern=r"^https://\S+$")
    label: str = Field(min_length=1, max_length=80, description="Short name shown as the card's source")


class Recommendation(_Strict):
    """What CPIC recommends for one phenotype, and how the card presents it."""

    phenotype: str = Field(min_length=1)
    implication: str | None = None
    recommendation: str = Field(min_length=1)
    classification: Classification
    tier: Tier
    floor: Tier | None = None
    ceiling: Tier | None = None
    summary: str | None = Field(default=None, description="Card summary; {drug} is replaced by the drug name")
    note: str | None = Field(default=None, description="Extra text for the card detail, e.g. which population")
    suggest: tuple[str, ...] = Field(default=(), description="Names of alternatives to offer")

    @model_validator(mode="after")
    def _consistent(self) -> Recommendation:
        floor, ceiling = self.floor or self.tier, self.ceiling or self.tier
        if not TIER_RANK[floor] <= TIER_RANK[self.tier] <= TIER_RANK[ceiling]:
            raise ValueError(f"tier {self.tier!r} must lie between floor {floor!r} and ceiling {ceiling!r}")
        if TIER_RANK[ceiling] > TIER_RANK["none"] and not self.summary:
            raise ValueError("a recommendation that can show a card needs a summary")
        return self

    @property
    def bounds(self) -> tuple[Tier, Tier]:
        """The lowest and highest tier the learning loop may set."""
        return self.floor or self.tier, self.ceiling or self.tier

    def summary_for(self, drug: str) -> str:
        return (self.summary or "").replace("{drug}", drug)


class OverrideReason(_Strict):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    display: str = Field(min_length=1, max_length=120)


Expectation = Literal["no card", "info", "warning", "critical"]


class RuleExample(_Strict):
    """A worked case: a genotype and an order, and the card the rule must give."""

    genotype: dict[str, str] = Field(min_length=1, description="gene -> diplotype")
    order: str = Field(pattern=RXNORM_CODE, description="RxNorm code of the drug ordered")
    expect: Expectation
    summary: str | None = None

    @field_validator("order", mode="before")
    @classmethod
    def _code_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class Rule(_Strict):
    """One rule file."""

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    title: str = Field(min_length=1)
    gene: str = Field(min_length=1)
    drugs: tuple[Drug, ...] = Field(min_length=1)
    guideline: Guideline
    alternatives: tuple[Alternative, ...] = ()
    recommendations: tuple[Recommendation, ...] = Field(min_length=1)
    override_reasons: tuple[OverrideReason, ...] | None = None
    examples: tuple[RuleExample, ...] = ()

    # Set by the loader, never by the file: where the rule came from and a hash of its text,
    # which names the exact rule version that produced a card.
    source: SkipJsonSchema[str] = Field(default="", exclude=True)
    version: SkipJsonSchema[str] = Field(default="", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _loader_fields_not_in_files(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("source", "version"):
                if key in data:
                    raise ValueError(f"{key!r} is set by pgx-loop from the file itself; remove it")
        return data

    def located(self, source: str, version: str) -> Rule:
        """This rule, labelled with the file it came from and that file's content hash."""
        return self.model_copy(update={"source": source, "version": version})

    def recommendation_for(self, lookup_key: str) -> Recommendation | None:
        for recommendation in self.recommendations:
            if recommendation.phenotype == lookup_key:
                return recommendation
        return None

    def alternative(self, name: str) -> Alternative | None:
        for alternative in self.alternatives:
            if alternative.name == name:
                return alternative
        return None
