"""Rule matching: which rules apply to which orders, given the patient's results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from engine.lookup import RuleLookup
from engine.orders import Order
from engine.populations import PatientFacts, PopulationChoice, choose_population
from engine.results import GeneResult
from engine.rules import TIER_RANK, TIERS, Drug, Recommendation, Rule, Tier

# A published strength per (rule id, result key); overrides the rule file's tier within its bounds.
StrengthTable = Mapping[tuple[str, str], Tier]


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that applies to an order: the results it was decided on and what it recommends.

    ``kind`` is "recommendation", or "pretest" when the rule's gene was never tested and the
    rule asks for the test to be suggested (then ``recommendation`` is None).
    """

    rule: Rule
    drug: Drug
    order: Order
    results: Mapping[str, GeneResult | None]
    recommendation: Recommendation | None
    index: int
    key: str
    population: PopulationChoice
    tier: Tier
    tier_source: str  # "rule file" or "local evidence"
    kind: Literal["recommendation", "pretest"] = "recommendation"

    @property
    def shows_card(self) -> bool:
        return self.tier != "none"

    @property
    def result(self) -> GeneResult | None:
        """The first of the rule's genes with a result."""
        return next((result for result in self.results.values() if result is not None), None)


def effective_tier(
    rule: Rule, recommendation: Recommendation, key: str, strengths: StrengthTable | None
) -> tuple[Tier, str]:
    """The tier to show: the published strength if any, always clamped to the rule's floor and ceiling."""
    wanted = strengths.get((rule.id, key)) if strengths else None
    if wanted is None:
        return recommendation.tier, "rule file"
    floor, ceiling = recommendation.bounds
    rank = min(max(TIER_RANK[wanted], TIER_RANK[floor]), TIER_RANK[ceiling])
    return TIERS[rank], "local evidence"


def match_orders(
    rules_by_code: Mapping[str, tuple[tuple[RuleLookup, Drug], ...]],
    orders: Iterable[Order],
    results: Mapping[str, GeneResult],
    facts: PatientFacts | None = None,
    strengths: StrengthTable | None = None,
) -> list[Match]:
    """Every (rule, order) pair whose drug was ordered and for which the rule has something to say."""
    facts = facts or PatientFacts()
    matches: list[Match] = []
    for order in orders:
        seen: set[str] = set()
        for code in sorted(order.rxnorm):
            for lookup, drug in rules_by_code.get(code, ()):
                rule = lookup.rule
                if rule.id in seen:
                    continue
                seen.add(rule.id)
                match = _match_rule(lookup, drug, order, results, facts, strengths)
                if match is not None:
                    matches.append(match)
    return matches


def _match_rule(
    lookup: RuleLookup,
    drug: Drug,
    order: Order,
    results: Mapping[str, GeneResult],
    facts: PatientFacts,
    strengths: StrengthTable | None,
) -> Match | None:
    rule = lookup.rule
    own = {gene: results.get(gene) for gene in rule.gene_list}
    population = choose_population(rule, facts)
    # The pre-test card wins when the genes it is about were never tested, even if another gene
    # of the guideline was (carbamazepine: an HLA-A result does not replace HLA-B testing).
    if rule.pretest and all(own[gene] is None for gene in rule.pretest.genes or rule.gene_list):
        return _pretest(rule, drug, order, own, population)
    if all(result is None for result in own.values()):
        return None
    compiled = lookup.find(own, population.id)
    if compiled is None:  # the loader proves coverage; a gap here would be a bug, so stay silent rather than guess
        return None
    key = compiled.key(own, rule.single_gene)
    tier, source = effective_tier(rule, compiled.spec, key, strengths)
    return Match(rule, drug, order, own, compiled.spec, compiled.index, key, population, tier, source)


def _pretest(rule: Rule, drug: Drug, order: Order, own, population: PopulationChoice) -> Match:
    assert rule.pretest is not None
    return Match(rule, drug, order, own, None, -1, "no result", population, rule.pretest.tier, "rule file", "pretest")
