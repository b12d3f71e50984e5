"""The knowledge base: validated gene definitions and rules, with the indexes the hot path needs.

:func:`engine.rulebook.library.load_library` builds one from a rules directory; the worked examples of
those files are then run against it (``engine/rulebook/examples.py``), which is why it lives apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.decision.cards import CardContext, CardTemplate, TemplateKey, build_card, template_key
from engine.decision.lookup import RuleLookup
from engine.decision.matching import Match, RuleIndex, StrengthTable, Watched, match_orders, watched
from engine.decision.orders import Order
from engine.decision.populations import PatientFacts
from engine.decision.products import ProductIndex, ingredient_tables
from engine.decision.rules import Drug, Rule
from engine.genotype.genes import GeneDefinition
from engine.genotype.results import GeneResult, ReportedResult, interpret

WATCHING_REMEMBERED = 4096  # distinct (codes, drug text) pairs; then forgotten all at once


@dataclass(frozen=True)
class Library:
    """Validated gene definitions and rules, with the indexes the hot path needs."""

    directory: Path
    genes: Mapping[str, GeneDefinition]
    rules: tuple[Rule, ...]
    version: str
    lookups: Mapping[str, RuleLookup]
    rules_by_code: Mapping[str, tuple[tuple[RuleLookup, Drug], ...]]
    rules_by_name: Mapping[str, tuple[tuple[RuleLookup, Drug], ...]]
    card_templates: Mapping[TemplateKey, CardTemplate]
    # (RxNorm codes, drug text) -> the rules watching such an order: fixed for this library, and the same drugs
    # are ordered over and over. Bounded; a library with other indexes (with_products) starts its own.
    _watching: dict[tuple[frozenset[str], str | None], Watched] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def interpret(self, reports: Iterable[ReportedResult], sex: str | None = None) -> dict[str, GeneResult]:
        """One interpreted result per gene; ``sex`` ("female"/"male"/None) is needed for G6PD."""
        return interpret(self.genes, reports, sex)

    def match(
        self,
        orders: Iterable[Order],
        results: Mapping[str, GeneResult],
        facts: PatientFacts | None = None,
        strengths: StrengthTable | None = None,
    ) -> list[Match]:
        return match_orders(self.rules_for, orders, results, facts, strengths)

    def rules_for(self, order: Order) -> Watched:
        """The rules watching ``order``'s drug, whether found by its name, and their genes
        (engine.decision.matching.rules_for)."""
        key = (order.rxnorm, order.display)
        found = self._watching.get(key)
        if found is None:
            if len(self._watching) >= WATCHING_REMEMBERED:
                self._watching.clear()
            found = self._watching[key] = watched(order, self.rules_by_code, self.rules_by_name)
        return found

    def genes_for(self, orders: Iterable[Order]) -> frozenset[str]:
        """The genes of every rule watching one of ``orders``: the only results their cards depend on.

        Empty when no rule watches any of them.
        """
        genes = [self.rules_for(order).genes for order in orders]
        # One order (order-select's usual call): its remembered set as it is.
        return genes[0] if len(genes) == 1 else frozenset().union(*genes)

    def watches(self, order: Order) -> bool:
        """Whether any rule watches the order's drug (by code, or by name when no code is known)."""
        return bool(self.genes_for([order]))

    def card(self, match: Match, context: CardContext) -> dict[str, Any]:
        """The CDS Hooks card for a match that shows one."""
        return build_card(match, context, self.card_templates[template_key(match)])

    def with_products(self, published: ProductIndex) -> Library:
        """This library also matching the products and brands of ``published`` (the OMOP-built index).

        Built once per published index, so a request still does one dict lookup per code.
        """
        if not published.products and not published.brands:
            return self
        by_code, by_name = with_products(self.rules_by_code, self.rules_by_name, (published,))
        return replace(self, rules_by_code=by_code, rules_by_name=by_name)

    def rule(self, rule_id: str) -> Rule | None:
        lookup = self.lookups.get(rule_id)
        return lookup.rule if lookup else None


def with_products(
    by_code: RuleIndex, by_name: RuleIndex, indexes: Iterable[ProductIndex]
) -> tuple[RuleIndex, RuleIndex]:
    """The code and name indexes with each product code and brand name leading to its ingredients' rules.

    A combination leads to the rules of every ingredient it holds; an ingredient no rule covers adds nothing.
    """
    product_codes, brand_names = ingredient_tables(indexes)

    def extended(index: RuleIndex, table: Mapping[str, tuple[str, ...]]) -> RuleIndex:
        result = dict(index)
        for key, ingredients in table.items():
            entries = {(lookup.rule.id, drug.name): (lookup, drug) for lookup, drug in result.get(key, ())}
            for code in ingredients:
                for lookup, drug in by_code.get(code, ()):
                    entries.setdefault((lookup.rule.id, drug.name), (lookup, drug))
            if entries:
                result[key] = tuple(entries.values())
        return result

    return extended(by_code, product_codes), extended(by_name, brand_names)
