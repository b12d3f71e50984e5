"""Why a patient and an order get the card they get: every step from the results to the tier.

Used by ``pgx-loop rules explain``; the same functions the service runs, with their working shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.decision.cards import summary_text, template_key
from engine.decision.matching import Match, StrengthTable, rules_for
from engine.decision.orders import Order
from engine.decision.populations import PatientFacts
from engine.genotype.results import GeneResult, ReportedResult
from engine.rulebook.library import Library


@dataclass(frozen=True)
class RuleStep:
    """One rule that watches the ordered drug, and what it decided."""

    rule_id: str
    source: str
    drug: str
    outcome: str  # "card", "no card", "not applicable"
    match: Match | None = None
    card_summary: str | None = None
    why: str | None = None


@dataclass(frozen=True)
class Explanation:
    results: dict[str, GeneResult]
    order: Order
    steps: list[RuleStep]


def find_drug_codes(library: Library, drug: str) -> frozenset[str]:
    """An RxNorm code as given, or the codes of the rule drug with that name."""
    if drug.isdigit():
        return frozenset({drug})
    wanted = drug.strip().casefold()
    return frozenset(
        code
        for rule in library.rules
        for entry in rule.drugs
        if entry.name.casefold() == wanted
        for code in entry.rxnorm
    )


def explain(
    library: Library,
    reports: Iterable[ReportedResult],
    codes: frozenset[str],
    facts: PatientFacts | None = None,
    strengths: StrengthTable | None = None,
    display: str | None = None,
) -> Explanation:
    """Interpret, match and tier as the service does, with the published ``strengths`` applied.

    ``display`` is the order's text: as in the service, it is matched on drug names only when no
    rule knows any of the ``codes``.
    """
    results = library.interpret(reports, facts.sex if facts else None)
    order = Order("MedicationRequest/explained", codes, display)
    matches: dict[str, list[Match]] = {}
    for match in library.match([order], results, facts, strengths):
        matches.setdefault(match.rule.id, []).append(match)
    steps = []
    seen = set()
    for lookup, drug in rules_for(order, library.rules_by_code, library.rules_by_name)[0]:
        rule = lookup.rule
        if rule.id in seen:
            continue
        seen.add(rule.id)
        if rule.id not in matches:
            why = f"no result on file for {', '.join(rule.gene_list)}"
            steps.append(RuleStep(rule.id, rule.source, drug.name, "not applicable", why=why))
            continue
        for match in matches[rule.id]:
            template = library.card_templates.get(template_key(match))
            summary = summary_text(template, match) if match.shows_card and template else None
            outcome = "card" if match.shows_card else "no card"
            if rule.status == "shadow" and match.shows_card:
                outcome = "shadow card (logged, not shown)"
            steps.append(RuleStep(rule.id, rule.source, drug.name, outcome, match, summary))
    return Explanation(results, order, steps)
