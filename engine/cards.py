"""Matches -> CDS Hooks cards.

A card walks the clinician from the lab result to CPIC's recommendation in a few lines, offers
the alternatives as one-click order swaps, and lists the reasons to override it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from engine.matching import Match
from engine.orders import RXNORM_SYSTEM
from engine.results import GeneResult
from engine.rules import Drug, OverrideReason, Recommendation, Rule

RULE_SYSTEM = "urn:pgx-loop:rule"
OVERRIDE_REASON_SYSTEM = "urn:pgx-loop:override-reason"

# Used when a rule file lists none; stable codes, because feedback analysis counts them.
DEFAULT_OVERRIDE_REASONS = (
    OverrideReason(
        code="alternative-not-suitable", display="Alternative contraindicated, not tolerated or unavailable"
    ),
    OverrideReason(code="stable-on-drug", display="Patient is stable on this drug"),
    OverrideReason(code="benefit-outweighs-risk", display="Benefit outweighs the genotype risk for this patient"),
    OverrideReason(code="result-in-doubt", display="Genotype result in doubt or not applicable"),
    OverrideReason(code="will-monitor", display="Will monitor response and adjust"),
)

# A stable identifier from its parts: the same card for the same order and result gets the same
# uuid at order-select and at order-sign, so the EHR shows it once (see README, "Card identity").
IdMaker = Callable[..., str]


@dataclass(frozen=True, slots=True)
class CardContext:
    """What the hook request tells us that cards need beyond the match."""

    patient_id: str
    user_id: str | None
    make_id: IdMaker


@dataclass(frozen=True, slots=True)
class SwapTemplate:
    """The fixed parts of one "replace the drug with an alternative" suggestion."""

    alternative: str
    label: str
    delete_description: str
    create_description: str
    medication: dict[str, Any]
    dosage: list[dict[str, Any]]
    note: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class CardTemplate:
    """Everything a card takes from its rule file, prepared once when the library loads.

    Cards are built on every order; only the patient's result, the order and the ids differ
    between two cards from the same template. Its dicts are shared: never mutate them.
    """

    summary: str
    advice: str
    source: dict[str, Any]
    links: list[dict[str, Any]]
    override_reasons: list[dict[str, Any]]
    swaps: tuple[SwapTemplate, ...]


TemplateKey = tuple[str, str, str]  # (rule id, phenotype, drug name)


def card_templates(rules: Iterable[Rule]) -> dict[TemplateKey, CardTemplate]:
    """A template for every (rule, phenotype, drug) that may show a card."""
    return {
        (rule.id, recommendation.phenotype, drug.name): _template(rule, recommendation, drug)
        for rule in rules
        for recommendation in rule.recommendations
        if recommendation.bounds[1] != "none"
        for drug in rule.drugs
    }


def template_key(match: Match) -> TemplateKey:
    return (match.rule.id, match.recommendation.phenotype, match.drug.name)


def _template(rule: Rule, recommendation: Recommendation, drug: Drug) -> CardTemplate:
    guideline = rule.guideline
    advice = []
    if recommendation.implication:
        advice.append(f"**Implication:** {recommendation.implication}")
    advice.append(f"**CPIC recommendation ({recommendation.classification}):** {recommendation.recommendation}")
    if recommendation.note:
        advice.append(recommendation.note.strip())
    swaps = []
    for name in recommendation.suggest:
        alternative = rule.alternative(name)
        if alternative is None:
            continue
        swaps.append(
            SwapTemplate(
                alternative=alternative.name,
                label=f"Replace {drug.name} with {alternative.name}",
                delete_description=f"Remove the draft {drug.name} order",
                create_description=f"Order {alternative.order_text}",
                medication={
                    "coding": [{"system": RXNORM_SYSTEM, "code": alternative.rxnorm, "display": alternative.name}],
                    "text": alternative.name,
                },
                dosage=[{"text": alternative.order_text}],
                note=[
                    {
                        "text": f"Replaces {drug.name}: {rule.gene} {recommendation.phenotype}. "
                        f"{recommendation.recommendation}"
                    }
                ],
            )
        )
    return CardTemplate(
        summary=recommendation.summary_for(drug.name),
        advice="\n\n".join(advice),
        source={
            "label": guideline.label,
            "url": guideline.url,
            "topic": {"system": RULE_SYSTEM, "code": rule.id, "display": rule.title},
        },
        links=[{"label": guideline.title, "url": guideline.url, "type": "absolute"}],
        override_reasons=[
            {"system": OVERRIDE_REASON_SYSTEM, "code": reason.code, "display": reason.display}
            for reason in rule.override_reasons or DEFAULT_OVERRIDE_REASONS
        ],
        swaps=tuple(swaps),
    )


def build_card(match: Match, context: CardContext, template: CardTemplate) -> dict[str, Any]:
    """The card for one match, as CDS Hooks JSON (the caller only asks for matches that show a card).

    Plain dicts rather than the models in ``engine.card_models``: this runs on every order, and
    the tests check its output against those models and the spec.
    """
    rule, tier = match.rule, match.tier
    card_id = context.make_id(
        "card", context.patient_id, match.order.reference, rule.id, rule.version, match.recommendation.phenotype, tier
    )
    card: dict[str, Any] = {
        "uuid": card_id,
        "summary": template.summary,
        "detail": card_detail(match, template),
        "indicator": tier,
        "source": template.source,
    }
    if template.swaps:
        card["suggestions"] = [_suggestion(match, swap, context, card_id) for swap in template.swaps]
        card["selectionBehavior"] = "at-most-one"
    if tier in ("warning", "critical"):
        card["overrideReasons"] = template.override_reasons
    card["links"] = template.links
    return card


def _suggestion(match: Match, swap: SwapTemplate, context: CardContext, card_id: str) -> dict[str, Any]:
    """Delete the draft order, create a draft MedicationRequest for the alternative in its place."""
    draft = match.order.resource
    order: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": draft.get("intent") or "order",
        "subject": {"reference": f"Patient/{context.patient_id}"},
        "medicationCodeableConcept": swap.medication,
        "dosageInstruction": swap.dosage,
        "note": swap.note,
    }
    for key in ("encounter", "reasonCode", "reasonReference", "category", "priority"):
        if draft.get(key):  # keep the original order's context: visit, indication, priority
            order[key] = draft[key]
    if context.user_id:
        order["requester"] = {"reference": context.user_id}
    return {
        "label": swap.label,
        "uuid": context.make_id("suggestion", card_id, swap.alternative),
        "actions": [
            {"type": "delete", "description": swap.delete_description, "resourceId": match.order.reference},
            {"type": "create", "description": swap.create_description, "resource": order},
        ],
    }


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def _escape(text: str) -> str:
    """Text from a lab or EHR, made inert in markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _code(text: str) -> str:
    return f"`{text.replace('`', '')}`"


def _describe(result: GeneResult) -> str:
    call = result.call
    when = f" ({_escape(result.effective)})" if result.effective else ""
    if call.diplotype:
        return f"genotype {_code(call.diplotype)} → {call.phenotype}{when}"
    stated = _escape(result.reported_phenotype) if result.reported_phenotype else call.phenotype
    return f"reported phenotype: {stated}{when}"


def card_detail(match: Match, template: CardTemplate) -> str:
    """Markdown that walks from the result to the phenotype to CPIC's recommendation."""
    result, call = match.result, match.result.call
    reported = f" (reported {_escape(result.effective)})" if result.effective else ""
    parts: list[str] = []
    if result.conflicting:
        listed = "\n".join(f"- {_describe(other)}" for other in result.conflicting)
        parts.append(f"**{call.gene} results on file disagree:**\n{listed}")
        parts.append(f"**Phenotype:** {call.phenotype}. Confirm the result with the laboratory before relying on it.")
    elif call.diplotype:
        parts.append(f"**{call.gene} genotype:** {_code(call.diplotype)}{reported}")
        how = ""
        if call.functions:
            how = " — " + " + ".join(f"{_code(allele)} {function.lower()}" for allele, function in call.functions)
        parts.append(f"**Phenotype (CPIC):** {call.phenotype}{how}")
    else:
        source = _escape(result.reported_phenotype) if result.reported_phenotype else call.phenotype
        parts.append(f"**{call.gene} phenotype as reported:** {source}{reported}")
    if not call.definite and call.reason and not result.conflicting:
        parts.append(f"**Why indeterminate:** {_escape(call.reason)}.")
    parts.append(template.advice)
    if match.tier_source == "local evidence":
        parts.append("*Alert level set from this hospital's own outcome data, within the bounds set by pharmacy.*")
    guideline = match.rule.guideline
    parts.append(f"**Source:** {guideline.citation} [{guideline.label}]({guideline.url})")
    return "\n\n".join(parts)
