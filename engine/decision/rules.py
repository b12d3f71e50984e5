"""Rule files (``rules/<rule-id>.yaml``): the schema pharmacists write to.

A rule ties one CPIC guideline's genes to its drugs and says, per result, what CPIC recommends,
how strongly the card interrupts (its *tier*, which the learning loop may move between
``floor`` and ``ceiling``), and which alternative orders to offer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from engine.decision.learning import Learning
from engine.genotype.scores import format_score

Tier = Literal["none", "info", "warning", "critical"]
TIERS: tuple[Tier, ...] = ("none", "info", "warning", "critical")
TIER_RANK: dict[str, int] = {tier: rank for rank, tier in enumerate(TIERS)}

Classification = Literal["Strong", "Moderate", "Optional", "No recommendation"]
RXNORM_CODE = r"^\d{1,10}$"
SUMMARY_LIMIT = 139  # CDS Hooks: "<140 characters"
GENERAL = "general"


def _as_text(value: object) -> object:
    # Pharmacists write `rxnorm: [32968, 309362]` or `CYP2D6: 1.0`; codes and scores are text.
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return format_score(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return [_as_text(item) for item in value]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Code(_Strict):
    """A coded concept: system is snomed, icd10 (prefix match: I21 covers I21.4) or a URI."""

    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None

    _text = field_validator("code", mode="before")(_as_text)


class Drug(_Strict):
    """A drug the rule applies to, with every code an EHR may send for it."""

    name: str = Field(min_length=1)
    # Empty only for a drug with no RxNorm code anyone could cite: orders for it are then matched by
    # its name alone, and the card says so (engine.decision.matching.rules_for).
    rxnorm: tuple[str, ...] = Field(
        default=(), description="RxNorm ingredient first, then clinical drugs; none: matched by name only"
    )
    atc: tuple[str, ...] = ()

    _text = field_validator("rxnorm", mode="before")(_as_text)

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
    avoid_if: tuple[Code, ...] = Field(
        default=(), description="Diagnoses that contraindicate the alternative; it is then not offered"
    )

    _text = field_validator("rxnorm", mode="before")(_as_text)


class Guideline(_Strict):
    title: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    url: str = Field(pattern=r"^https://\S+$")
    label: str = Field(min_length=1, max_length=80, description="Short name shown as the card's source")


class Population(_Strict):
    """A group of patients CPIC advises differently (by indication or age)."""

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    label: str = Field(min_length=1)
    conditions: tuple[Code, ...] = Field(default=(), description="Diagnoses that place a patient here")
    min_age: int | None = Field(default=None, ge=0)
    max_age: int | None = Field(default=None, ge=0)
    default: bool = Field(default=False, description="Used when the patient's indication or age is not known")
    cpic: str | None = Field(default=None, description="CPIC's own name for this population, e.g. 'CVI ACS PCI'")


class Recommendation(_Strict):
    """What CPIC recommends for one result (or several that share the advice), and how the card shows it."""

    phenotype: str | tuple[str, ...] | None = Field(
        default=None, description="Single-gene rules: the phenotype(s), score(s) or range(s) this applies to"
    )
    when: dict[str, str | tuple[str, ...]] | None = Field(
        default=None, description="Multi-gene rules: gene -> value(s); 'No Result' for an untested gene"
    )
    population: str = GENERAL
    implication: str | None = None
    recommendation: str = Field(min_length=1)
    classification: Classification
    dose: str | None = Field(default=None, description="The adjusted dose, stated on the card (dose rules)")
    tier: Tier
    floor: Tier | None = None
    ceiling: Tier | None = None
    summary: str | None = Field(
        default=None, description="Card summary; {drug} and {phenotype} are filled in when the card is shown"
    )
    note: str | None = Field(default=None, description="Extra text for the card detail")
    suggest: tuple[str, ...] = Field(default=(), description="Names of alternatives to offer")

    _text = field_validator("phenotype", mode="before")(_as_text)

    @field_validator("when", mode="before")
    @classmethod
    def _when_text(cls, value: object) -> object:
        return {gene: _as_text(item) for gene, item in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _consistent(self) -> Recommendation:
        if (self.phenotype is None) == (self.when is None):
            raise ValueError("give either phenotype (single-gene rule) or when (multi-gene rule)")
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
        """The summary with the drug named ({phenotype} is filled in per patient)."""
        return (self.summary or "").replace("{drug}", drug)

    def values_for(self, gene: str, single: bool) -> tuple[str, ...]:
        """The values this recommendation names for ``gene``."""
        raw = self.phenotype if single else (self.when or {}).get(gene)
        if raw is None:
            return ()
        return (raw,) if isinstance(raw, str) else tuple(raw)


class PreTest(_Strict):
    """A card when the drug is ordered and the gene was never tested: suggest the test."""

    genes: tuple[str, ...] = Field(default=(), description="Genes whose absence triggers it (default: all)")
    tier: Tier = "warning"
    summary: str = Field(min_length=1, description="{drug} is filled in")
    detail: str = Field(min_length=1)
    test: str = Field(min_length=1, description="What to order, e.g. 'HLA-B*57:01 genotyping'")
    code: Code | None = Field(default=None, description="Code of the test order, if the site has one")


class OverrideReason(_Strict):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    display: str = Field(min_length=1, max_length=120)


Expectation = Literal["no card", "info", "warning", "critical"]


class RuleExample(_Strict):
    """A worked case: a genotype and an order, and the card the rule must give."""

    genotype: dict[str, str] = Field(default_factory=dict, description="gene -> diplotype (empty: untested)")
    order: str | None = Field(default=None, pattern=RXNORM_CODE, description="RxNorm code of the drug ordered")
    order_text: str | None = Field(
        default=None, min_length=1, description="Or the order's text alone, as an EHR sends an uncoded order"
    )
    conditions: tuple[Code, ...] = Field(default=(), description="The patient's diagnoses, if they matter")
    age: int | None = None
    sex: Literal["female", "male"] | None = Field(default=None, description="The patient's sex where it matters (G6PD)")
    expect: Expectation
    summary: str | None = None

    _text = field_validator("order", mode="before")(_as_text)

    @model_validator(mode="after")
    def _one_order(self) -> RuleExample:
        if (self.order is None) == (self.order_text is None):
            raise ValueError("an example needs exactly one of order (an RxNorm code) or order_text")
        return self


class Rule(_Strict):
    """One rule file."""

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    title: str = Field(min_length=1)
    status: Literal["active", "shadow"] = Field(
        default="active", description="shadow: evaluated and logged, never shown (to trial a rule safely)"
    )
    gene: str | None = Field(default=None, description="The gene, for a single-gene rule")
    genes: tuple[str, ...] | None = Field(default=None, description="The genes, for a multi-gene rule")
    drugs: tuple[Drug, ...] = Field(min_length=1)
    guideline: Guideline
    populations: tuple[Population, ...] = ()
    alternatives: tuple[Alternative, ...] = ()
    recommendations: tuple[Recommendation, ...] = Field(min_length=1)
    pretest: PreTest | None = None
    note: str | None = Field(default=None, description="Shown on every card of this rule, after the recommendation")
    override_reasons: tuple[OverrideReason, ...] | None = None
    learning: Learning | None = Field(default=None, description="How this site's outcomes may move the tiers")
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

    @model_validator(mode="after")
    def _one_gene_field(self) -> Rule:
        if (self.gene is None) == (self.genes is None):
            raise ValueError("give either gene (one gene) or genes (several)")
        if self.genes is not None and len(self.genes) < 2:
            raise ValueError("genes lists two or more genes; use gene for one")
        return self

    @property
    def gene_list(self) -> tuple[str, ...]:
        return (self.gene,) if self.gene else tuple(self.genes or ())

    @property
    def single_gene(self) -> bool:
        return self.gene is not None

    @property
    def default_population(self) -> str:
        """The population shown when the patient's is not known; the one the learning loop studies."""
        return next((population.id for population in self.populations if population.default), GENERAL)

    def located(self, source: str, version: str) -> Rule:
        """This rule, labelled with the file it came from and that file's content hash."""
        return self.model_copy(update={"source": source, "version": version})

    def alternative(self, name: str) -> Alternative | None:
        for alternative in self.alternatives:
            if alternative.name == name:
                return alternative
        return None

    def population(self, population_id: str) -> Population | None:
        return next((population for population in self.populations if population.id == population_id), None)
