"""Rule matching: which rules apply to which orders, given the patient's results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.orders import Order
from engine.results import GeneResult
from engine.rules import TIER_RANK, Drug, Recommendation, Rule, Tier

# A published strength per (rule id, lookup key); overrides the rule file's tier within its bounds.
StrengthTable = Mapping[tuple[str, str], Tier]


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that applies to an order, with the result and recommendation it was decided on."""

    rule: Rule
    drug: Drug
    order: Order
    result: GeneResult
    recommendation: Recommendation
    tier: Tier
    tier_source: str  # "rule file" or "local evidence"

    @property
    def shows_card(self) -> bool:
        return self.tier != "none"


def effective_tier(rule: Rule, recommendation: Recommendation, strengths: StrengthTable | None) -> tuple[Tier, str]:
    """The tier to show: the published strength if any, always clamped to the rule's floor and ceiling."""
    if strengths is None or (rule.id, recommendation.phenotype) not in strengths:
        return recommendation.tier, "rule file"
    floor, ceiling = recommendation.bounds
    wanted = strengths[(rule.id, recommendation.phenotype)]
    rank = min(max(TIER_RANK[wanted], TIER_RANK[floor]), TIER_RANK[ceiling])
    tier: Tier = next(name for name, value in TIER_RANK.items() if value == rank)  # type: ignore[assignment]
    return tier, "local evidence"


def match_orders(
    rules_by_code: Mapping[str, tuple[tuple[Rule, Drug], ...]],
    orders: Iterable[Order],
    results: Mapping[str, GeneResult],
    strengths: StrengthTable | None = None,
) -> list[Match]:
    """Every (rule, order) pair whose drug was ordered and whose gene has a result."""
    matches: list[Match] = []
    for order in orders:
        seen: set[str] = set()
        for code in sorted(order.rxnorm):
            for rule, drug in rules_by_code.get(code, ()):
                if rule.id in seen:
                    continue
                seen.add(rule.id)
                result = results.get(rule.gene)
                if result is None:
                    continue
                recommendation = rule.recommendation_for(result.call.lookup_key)
                if recommendation is None:  # the library loader rejects rules with gaps; be safe anyway
                    continue
                tier, source = effective_tier(rule, recommendation, strengths)
                matches.append(Match(rule, drug, order, result, recommendation, tier, source))
    return matches
