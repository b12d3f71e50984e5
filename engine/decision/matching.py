"""Rule matching: which rules apply to which orders, given the patient's results."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, NamedTuple

from engine.decision.lookup import RuleLookup
from engine.decision.orders import Order
from engine.decision.populations import PatientFacts, PopulationChoice, choose_population, has_condition
from engine.decision.rules import TIER_RANK, TIERS, Drug, Recommendation, Rule, Tier
from engine.decision.strengths import Strength
from engine.genotype.results import GeneResult

# Published strengths per (rule id, result key); they override the rule file's tier within its bounds.
StrengthTable = Mapping[tuple[str, str], Strength]


class Match(NamedTuple):
    """A rule that applies to an order: the results it was decided on and what it recommends.

    ``kind`` is "recommendation", or "pretest" when the rule's gene was never tested and the
    rule asks for the test to be suggested (then ``recommendation`` is None).

    A NamedTuple, immutable like the frozen dataclass it was: one is built per rule met on every
    hook call, and that dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost more
    than finding the recommendation.
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
    strength: Strength | None  # the published strength that set the tier; None: the rule file's
    kind: Literal["recommendation", "pretest"] = "recommendation"
    withheld: tuple[tuple[str, str], ...] = ()  # (alternative, the diagnosis that contraindicates it)
    matched_by_name: bool = False

    @property
    def shows_card(self) -> bool:
        return self.tier != "none"

    @property
    def tier_source(self) -> str:
        return LOCAL_EVIDENCE if self.strength is not None else RULE_FILE

    @property
    def result(self) -> GeneResult | None:
        """The first of the rule's genes with a result."""
        return next((result for result in self.results.values() if result is not None), None)


RULE_FILE = "rule file"
LOCAL_EVIDENCE = "local evidence"


def effective_tier(
    rule: Rule, recommendation: Recommendation, key: str, strengths: StrengthTable | None
) -> tuple[Tier, Strength | None]:
    """The tier to show: the published strength if any, always clamped to the recommendation's bounds.

    Strengths come from studying the rule's default population, so only its recommendations
    take them; advice for other populations (stroke, not ACS, for clopidogrel) keeps the file's tier.
    """
    published = strengths.get((rule.id, key)) if strengths else None
    if published is None or recommendation.population != rule.default_population:
        return recommendation.tier, None
    floor, ceiling = recommendation.bounds
    rank = min(max(TIER_RANK[published.tier], TIER_RANK[floor]), TIER_RANK[ceiling])
    return TIERS[rank], published


RuleIndex = Mapping[str, tuple[tuple[RuleLookup, Drug], ...]]


def rules_for(order: Order, by_code: RuleIndex, by_name: RuleIndex) -> tuple[list[tuple[RuleLookup, Drug]], bool]:
    """The rules watching an order's drug, and whether they were found by name rather than code.

    RxNorm codes come first. Only an order none of whose codes a rule knows (a local code, a
    product code outside the rule files) is matched on its drug's name, as a whole word:
    missing a clopidogrel order because of its coding would be the worse error.
    """
    found: dict[str, tuple[RuleLookup, Drug]] = {}
    for code in sorted(order.rxnorm):
        for lookup, drug in by_code.get(code, ()):
            found.setdefault(lookup.rule.id, (lookup, drug))
    if found or not order.display:
        return list(found.values()), False
    words = set(re.findall(r"[a-z0-9]+", order.display.casefold()))
    for name, entries in by_name.items():
        if set(name.split()) <= words:
            for lookup, drug in entries:
                found.setdefault(lookup.rule.id, (lookup, drug))
    return list(found.values()), True


class Watched(NamedTuple):
    """The rules watching an order's drug, whether found by its name (``rules_for``), and their genes."""

    rules: Sequence[tuple[RuleLookup, Drug]]
    by_name: bool
    genes: frozenset[str]


def watched(order: Order, by_code: RuleIndex, by_name: RuleIndex) -> Watched:
    """``rules_for``, with the genes of the rules found: worked out once per drug by a library that remembers it."""
    rules, found_by_name = rules_for(order, by_code, by_name)
    return Watched(tuple(rules), found_by_name, frozenset(gene for lookup, _ in rules for gene in lookup.genes))


RulesFor = Callable[[Order], Watched]


def match_orders(
    watching: RulesFor,
    orders: Iterable[Order],
    results: Mapping[str, GeneResult],
    facts: PatientFacts | None = None,
    strengths: StrengthTable | None = None,
) -> list[Match]:
    """Every (rule, order) pair whose drug was ordered and for which the rule has something to say.

    ``watching(order)``: the rules watching the order's drug and whether found by name (``watched``
    over the library's indexes, remembered by the library).
    """
    facts = facts or PatientFacts()
    matches: list[Match] = []
    for order in orders:
        candidates, by_drug_name, _ = watching(order)
        for lookup, drug in candidates:
            matches += _match_rule(lookup, drug, order, results, facts, strengths, by_drug_name)
    return matches


def _match_rule(
    lookup: RuleLookup,
    drug: Drug,
    order: Order,
    results: Mapping[str, GeneResult],
    facts: PatientFacts,
    strengths: StrengthTable | None,
    by_drug_name: bool,
) -> list[Match]:
    """The rule's advice for this order: a recommendation, a pre-test card, or both.

    Both, when the genes the pre-test card is about were never tested but another gene of the
    guideline was: an HLA-A*31:01 result must not hide behind "please test HLA-B" (carbamazepine).
    """
    rule = lookup.rule
    own: dict[str, GeneResult | None] = {}
    tested = False
    for gene in lookup.genes:
        own[gene] = result = lookup.result_for(gene, results.get(gene))
        tested = tested or result is not None
    population = choose_population(rule, facts) if facts.selects_population else lookup.default_choice
    found: list[Match] = []
    if tested:
        compiled = lookup.find(own, population.id)
        # The loader proves coverage; a gap here would be a bug, so stay silent rather than guess.
        if compiled is not None:
            key = compiled.key(own, rule.single_gene)
            tier, strength = effective_tier(rule, compiled.spec, key, strengths)
            withheld = _withheld(rule, compiled.spec, facts)
            found.append(
                Match(
                    rule,
                    drug,
                    order,
                    own,
                    compiled.spec,
                    compiled.index,
                    key,
                    population,
                    tier,
                    strength,
                    withheld=withheld,
                    matched_by_name=by_drug_name,
                )
            )
    if rule.pretest and all(own[gene] is None for gene in rule.pretest.genes or lookup.genes):
        found.append(
            Match(
                rule,
                drug,
                order,
                own,
                None,
                -1,
                "no result",
                population,
                rule.pretest.tier,
                None,
                "pretest",
                matched_by_name=by_drug_name,
            )
        )
    return found


def _withheld(rule: Rule, recommendation: Recommendation, facts: PatientFacts) -> tuple[tuple[str, str], ...]:
    """Suggested alternatives the patient's own diagnoses rule out (prasugrel after a stroke)."""
    if not facts.conditions:
        return ()  # no diagnosis can rule any out
    withheld = []
    for name in recommendation.suggest:
        alternative = rule.alternative(name)
        hit = has_condition(alternative.avoid_if, facts) if alternative else None
        if hit is not None:
            withheld.append((name, hit.display or hit.code))
    return tuple(withheld)
