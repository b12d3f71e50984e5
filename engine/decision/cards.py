"""Matches -> CDS Hooks cards.

A card walks the clinician from the lab result to CPIC's recommendation in a few lines, offers
the alternatives as one-click order swaps (or, before a first dose, the test to order), and
lists the reasons to override it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from engine.decision.matching import Match
from engine.decision.orders import RXNORM_SYSTEM
from engine.decision.rules import Drug, OverrideReason, PreTest, Recommendation, Rule
from engine.genotype.calls import NO_RESULT, PhenotypeCall
from engine.genotype.results import GeneResult
from engine.runtime.identifiers import UUID_SEPARATOR as _SEP

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

# A stable identifier from its parts, given joined by UUID_SEPARATOR (``Identifiers.stable_uuid_of``): the
# same card for the same order and result gets the same uuid at order-select and at order-sign, so the EHR
# shows it once (see README, "Card identity"). Joined by the caller in one f-string: three uuids per card.
IdMaker = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class CardContext:
    """What the hook request tells us that cards need beyond the match."""

    patient_id: str
    user_id: str | None
    make_id: IdMaker


@dataclass(frozen=True, slots=True)
class SwapTemplate:
    """The fixed parts of one suggestion: swap the drug for an alternative, or order a test."""

    name: str
    label: str
    create_description: str
    resource: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CardTemplate:
    """Everything a card takes from its rule file, prepared once when the library loads.

    Cards are built on every order; only the patient's results, the order and the ids differ
    between two cards from the same template. Its dicts are shared: never mutate them. Every swap's
    resource has the same keys, and every swap deletes the draft the same way (``delete_description``,
    None when nothing is deleted): a card builds what its suggestions add to them once.
    """

    summary: str
    advice: str
    source_line: str
    source: dict[str, Any]
    links: list[dict[str, Any]]
    override_reasons: list[dict[str, Any]]
    delete_description: str | None
    swaps: tuple[SwapTemplate, ...]

    def __post_init__(self) -> None:
        if len({tuple(swap.resource) for swap in self.swaps}) > 1:
            raise ValueError("the swaps of one card template must have resources with the same keys")


TemplateKey = tuple[str, int, str]  # (rule id, recommendation index or -1 for the pre-test card, drug name)


def card_templates(rules: Iterable[Rule]) -> dict[TemplateKey, CardTemplate]:
    """A template for every (rule, recommendation, drug) that may show a card."""
    templates: dict[TemplateKey, CardTemplate] = {}
    for rule in rules:
        for drug in rule.drugs:
            for index, recommendation in enumerate(rule.recommendations):
                if recommendation.bounds[1] != "none":
                    templates[(rule.id, index, drug.name)] = _template(rule, recommendation, drug)
            if rule.pretest is not None:
                templates[(rule.id, -1, drug.name)] = _pretest_template(rule, rule.pretest, drug)
    return templates


def template_key(match: Match) -> TemplateKey:
    return (match.rule.id, match.index, match.drug.name)


def _common(rule: Rule) -> dict[str, Any]:
    guideline = rule.guideline
    return {
        "source_line": f"**Source:** {guideline.citation} [{guideline.label}]({guideline.url})",
        "source": {
            "label": guideline.label,
            "url": guideline.url,
            "topic": {"system": RULE_SYSTEM, "code": rule.id, "display": rule.title},
        },
        "links": [{"label": guideline.title, "url": guideline.url, "type": "absolute"}],
        "override_reasons": [
            {"system": OVERRIDE_REASON_SYSTEM, "code": reason.code, "display": reason.display}
            for reason in offered_reasons(rule)
        ],
    }


def offered_reasons(rule: Rule) -> tuple[OverrideReason, ...]:
    """The override reasons every card of ``rule`` offers."""
    return rule.override_reasons or DEFAULT_OVERRIDE_REASONS


def offered_reason_codes(rules: Iterable[Rule]) -> frozenset[str]:
    """Every override reason code some card of ``rules`` offers (feedback with any other is recorded as other)."""
    return frozenset(reason.code for rule in rules for reason in offered_reasons(rule))


_STAR_ALLELE = re.compile(r"(?<![*\\])\*(?=\d)")


def _stars(text: str) -> str:
    """CPIC prose names alleles as *2, which markdown would read as emphasis."""
    return _STAR_ALLELE.sub(r"\\*", text.strip())


def _template(rule: Rule, recommendation: Recommendation, drug: Drug) -> CardTemplate:
    advice = []
    if recommendation.implication:
        advice.append(f"**Implication:** {_stars(recommendation.implication)}")
    advice.append(f"**CPIC recommendation ({recommendation.classification}):** {_stars(recommendation.recommendation)}")
    if recommendation.dose:
        advice.append(f"**Dose:** {_stars(recommendation.dose)}")
    if recommendation.note:
        advice.append(_stars(recommendation.note))
    if rule.note:
        advice.append(_stars(rule.note))
    swaps = []
    for name in recommendation.suggest:
        alternative = rule.alternative(name)
        if alternative is None:
            continue
        swaps.append(
            SwapTemplate(
                name=alternative.name,
                label=f"Replace {drug.name} with {alternative.name}",
                create_description=f"Order {alternative.order_text}",
                resource={
                    "resourceType": "MedicationRequest",
                    "status": "draft",
                    "medicationCodeableConcept": {
                        "coding": [{"system": RXNORM_SYSTEM, "code": alternative.rxnorm, "display": alternative.name}],
                        "text": alternative.name,
                    },
                    "dosageInstruction": [{"text": alternative.order_text}],
                    "note": [
                        {"text": f"Replaces {drug.name} on pharmacogenomic advice. {recommendation.recommendation}"}
                    ],
                },
            )
        )
    return CardTemplate(
        summary=recommendation.summary_for(drug.name),
        advice="\n\n".join(advice),
        delete_description=f"Remove the draft {drug.name} order",
        swaps=tuple(swaps),
        **_common(rule),
    )


def _pretest_template(rule: Rule, pretest: PreTest, drug: Drug) -> CardTemplate:
    code: dict[str, Any] = {"text": pretest.test}
    if pretest.code is not None:
        coding = {"system": pretest.code.system, "code": pretest.code.code}
        if pretest.code.display:
            coding["display"] = pretest.code.display
        code["coding"] = [coding]
    order = SwapTemplate(
        name="test",
        label=f"Order {pretest.test}",
        create_description=f"Order {pretest.test} before {drug.name}",
        resource={
            "resourceType": "ServiceRequest",
            "status": "draft",
            "code": code,
            "reasonCode": [{"text": f"Pharmacogenomic testing before {drug.name} (CPIC)"}],
        },
    )
    return CardTemplate(
        summary=pretest.summary.replace("{drug}", drug.name),
        advice=_stars(pretest.detail).replace("{drug}", drug.name),
        delete_description=None,
        swaps=(order,),
        **_common(rule),
    )


def summary_text(template: CardTemplate, match: Match) -> str:
    return template.summary.replace("{phenotype}", match.key)


def build_card(match: Match, context: CardContext, template: CardTemplate) -> dict[str, Any]:
    """The card for one match, as CDS Hooks JSON (the caller only asks for matches that show a card).

    Plain dicts rather than the models in ``engine.decision.card_models``: this runs on every order, and
    the tests check its output against those models and the spec.
    """
    rule, tier = match.rule, match.tier
    card_id = context.make_id(
        f"card{_SEP}{context.patient_id}{_SEP}{match.order.reference}{_SEP}{rule.id}{_SEP}{rule.version}"
        f"{_SEP}{match.kind}{_SEP}{match.key}{_SEP}{tier}"
    )
    card: dict[str, Any] = {
        "uuid": card_id,
        "summary": summary_text(template, match),
        "detail": card_detail(match, template),
        "indicator": tier,
        "source": template.source,
    }
    swaps = template.swaps
    if match.withheld:
        withheld = {name for name, _ in match.withheld}
        swaps = tuple(swap for swap in swaps if swap.name not in withheld)
    if swaps:
        card["suggestions"] = _suggestions(match, context, template, swaps, card_id)
        card["selectionBehavior"] = "at-most-one"
    if tier in ("warning", "critical"):
        card["overrideReasons"] = template.override_reasons
    card["links"] = template.links
    return card


def _suggestions(
    match: Match, context: CardContext, template: CardTemplate, swaps: tuple[SwapTemplate, ...], card_id: str
) -> list[dict[str, Any]]:
    """Create each alternative (deleting the draft order, for a swap), in the draft order's context.

    What the suggestions have in common (the delete action, the resource's order-specific fields) is
    built once and shared: orjson writes a shared dict wherever it appears, and no one mutates a card.
    """
    order = match.order
    common: dict[str, Any] = {"intent": "order", "subject": {"reference": f"Patient/{context.patient_id}"}}
    fixed = swaps[0].resource  # the keys of every swap's resource (CardTemplate)
    for key, value in order.carried.items():  # the draft's intent, visit, indication (R4-checked)
        if key not in fixed:
            common[key] = value
    if context.user_id:
        common["requester"] = {"reference": context.user_id}
    deletes = []
    if template.delete_description:
        deletes.append({"type": "delete", "description": template.delete_description, "resourceId": order.reference})
    make_id, prefix = context.make_id, f"suggestion{_SEP}{card_id}{_SEP}"
    return [
        {
            "label": swap.label,
            "uuid": make_id(prefix + swap.name),
            "actions": [
                *deletes,
                {"type": "create", "description": swap.create_description, "resource": {**swap.resource, **common}},
            ],
        }
        for swap in swaps
    ]


# A backslash before each character markdown gives a meaning. Every ASCII character is in the table (most as
# itself): str.translate then reads ASCII text without a failed lookup per character, at a third of a regex sub.
_MARKDOWN_ESCAPES = str.maketrans(
    {chr(code): "\\" + chr(code) if chr(code) in "\\`*_{}[]<>()#+!|~" else chr(code) for code in range(128)}
)


def _escape(text: str) -> str:
    """Text from a lab or EHR, made inert in markdown."""
    return text.translate(_MARKDOWN_ESCAPES)


def _code(text: str) -> str:
    return f"`{text.replace('`', '')}`"


def _describe(result: GeneResult) -> str:
    call = result.call
    when = f" ({_escape(result.effective)})" if result.effective else ""
    if call.diplotype:
        return f"genotype {_code(call.diplotype)} → {_phenotype(call)}{when}"
    stated = _escape(result.reported_phenotype) if result.reported_phenotype else call.phenotype
    return f"reported: {stated}{when}"


def _phenotype(call) -> str:
    text = call.phenotype.replace("*", "\\*")
    return f"{text} (activity score {call.activity_score})" if call.activity_score else text


def _add_result_lines(lines: list[str], gene: str, result: GeneResult | None) -> None:
    """Append the lines on ``gene``'s result to ``lines`` (the detail's parts: no list per gene)."""
    if result is None:
        lines.append(f"**{gene}:** {NO_RESULT.lower()} on file")
        return
    call = result.call
    reported = f" (reported {_escape(result.effective)})" if result.effective else ""
    if result.conflicting:
        listed = "\n".join([f"- {_describe(other)}" for other in result.conflicting])
        lines.append(f"**{gene} results on file disagree:**\n{listed}")
        lines.append(
            f"**{gene} phenotype:** {call.phenotype}. Confirm the result with the laboratory before relying on it."
        )
        return
    if call.diplotype:
        genotype, phenotype = _called_lines(gene, call)
        lines.append(f"{genotype}{reported}")
        lines.append(phenotype)
    else:
        source = _escape(result.reported_phenotype) if result.reported_phenotype else _phenotype(call)
        lines.append(f"**{gene} result as reported:** {source}{reported}")
    if not call.definite and call.reason:
        lines.append(f"**Why indeterminate:** {_escape(call.reason)}.")


# (gene, call) -> the start of its genotype line and its phenotype line. The phenotyper hands out the same
# few calls over and over; bounded, forgotten all at once when full.
_CALLED_LINES: dict[tuple[str, PhenotypeCall], tuple[str, str]] = {}
CALLED_LINES_REMEMBERED = 4096


def _called_lines(gene: str, call: PhenotypeCall) -> tuple[str, str]:
    """The lines a called diplotype gives, but the date reported (see ``_CALLED_LINES``)."""
    key = (gene, call)
    found = _CALLED_LINES.get(key)
    if found is None:
        if len(_CALLED_LINES) >= CALLED_LINES_REMEMBERED:
            _CALLED_LINES.clear()
        how = ""
        if call.functions:
            how = " — " + " + ".join([f"{_code(allele)} {function.lower()}" for allele, function in call.functions])
        found = _CALLED_LINES[key] = (
            f"**{gene} genotype:** {_code(call.diplotype)}",
            f"**{gene} phenotype (CPIC):** {_phenotype(call)}{how}",
        )
    return found


def card_detail(match: Match, template: CardTemplate) -> str:
    """Markdown that walks from each result to the phenotype to CPIC's recommendation."""
    parts: list[str] = []
    if match.kind == "recommendation":
        for gene, result in match.results.items():
            _add_result_lines(parts, gene, result)
        population = match.population
        if population.population is not None:
            parts.append(f"**Population:** {population.population.label} ({population.why})")
    if match.matched_by_name:
        parts.append(
            f"*This order carries no RxNorm code the rules know; it was recognised by the drug name "
            f"({_escape(match.order.display or '')}). Check that it is {match.drug.name}.*"
        )
    parts.append(template.advice)
    for name, diagnosis in match.withheld:
        parts.append(f"**{name.capitalize()} is not offered:** the patient's record shows {_escape(diagnosis)}.")
    if match.strength is not None:
        parts.append(
            f"*Alert level set from this hospital's own outcome data, within the bounds set by pharmacy: "
            f"{_escape(match.strength.evidence)}.*"
        )
    parts.append(template.source_line)
    return "\n\n".join(parts)
