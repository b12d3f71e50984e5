"""From a patient's gene results to the one CPIC recommendation that applies.

Each recommendation names, per gene, the values it covers: phenotypes, allele statuses
("*57:01 positive"), activity scores or score ranges ("0.25 to 1.0"), "Indeterminate", or
"No Result" for an untested gene of a multi-gene guideline. The loader compiles them into
conditions and checks that, within each population, every possible combination of results
meets exactly one recommendation.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from engine.decision.populations import PatientFacts, PopulationChoice, choose_population
from engine.decision.rules import GENERAL, Recommendation, Rule
from engine.documents.spelling import did_you_mean
from engine.genotype.activity_score import ActivityScoreGene
from engine.genotype.allele_presence import AllelePresenceGene
from engine.genotype.calls import INDETERMINATE, NO_RESULT, PhenotypeCall, indeterminate
from engine.genotype.genes import GeneDefinition
from engine.genotype.results import GeneResult
from engine.genotype.scores import Interval, parse_range

GeneResults = Mapping[str, GeneResult | None]


@dataclass(frozen=True)
class Condition:
    """What one recommendation requires of one gene's result."""

    gene: GeneDefinition
    keys: frozenset[str]
    intervals: tuple[Interval, ...] = ()

    def matches(self, result: GeneResult | None) -> bool:
        if result is None:
            return NO_RESULT in self.keys
        call = result.call
        if not self.keys.isdisjoint(call.keys):
            return True
        if self.intervals and call.definite and isinstance(self.gene, ActivityScoreGene):
            scores = self.gene.score_interval(call)
            return scores is not None and any(interval.contains(scores) for interval in self.intervals)
        return False

    def could_match(self, result: GeneResult | None) -> bool:
        """Whether some result consistent with ``result`` would match (a phenotype stated without its score)."""
        if self.matches(result):
            return True
        if result is None or not self.intervals or not isinstance(self.gene, ActivityScoreGene):
            return False
        scores = self.gene.score_interval(result.call)
        return scores is not None and any(interval.overlaps(scores) for interval in self.intervals)

    def matched_key(self, result: GeneResult | None) -> str:
        """The value this condition matched, for naming the result ("*57:01 positive", "1.0")."""
        if result is None:
            return NO_RESULT
        call = result.call
        for key in call.keys:
            if key in self.keys:
                return key
        if call.activity_score:
            return f"activity score {call.activity_score}"
        return call.phenotype


def compile_condition(gene: GeneDefinition, values: tuple[str, ...], multi_gene: bool) -> Condition:
    """The condition for a recommendation's values; ValueError says what is wrong with them."""
    if not values:
        raise ValueError(f"no value given for {gene.symbol}")
    keys: set[str] = set()
    intervals: list[Interval] = []
    for value in values:
        if value == NO_RESULT:
            if not multi_gene:
                raise ValueError(
                    f"{NO_RESULT!r} is for multi-gene rules; a single-gene rule without a result shows no card"
                )
            keys.add(value)
        elif isinstance(gene, ActivityScoreGene) and value != INDETERMINATE:
            interval = gene.ranges.get(value) or parse_range(value)
            if interval is None:
                raise ValueError(
                    f"{value!r} is not a {gene.symbol} phenotype, activity score or range"
                    f"{did_you_mean(value, [*gene.ranges, INDETERMINATE])} "
                    f"(e.g. '1.0', '0.25 to 1.0', '> 2.25'; phenotypes: {', '.join(gene.ranges)})"
                )
            intervals.append(interval)
        elif value in gene.lookup_values():
            keys.add(value)
        else:
            raise ValueError(
                f"{value!r} is not a {gene.symbol} value{did_you_mean(value, [*gene.lookup_values(), NO_RESULT])} "
                f"(expected one of: {', '.join(gene.lookup_values())})"
            )
    return Condition(gene, frozenset(keys), tuple(intervals))


@dataclass(frozen=True)
class CompiledRecommendation:
    index: int
    spec: Recommendation
    conditions: Mapping[str, Condition]

    def matches(self, results: GeneResults) -> bool:
        # A loop, not all(): no generator built for each recommendation tried (half the cost).
        for gene, condition in self.conditions.items():  # noqa: SIM110
            if not condition.matches(results.get(gene)):
                return False
        return True

    def key(self, results: GeneResults, single_gene: bool) -> str:
        """The result this recommendation was chosen for, as the learning loop and event log name it."""
        if single_gene:
            ((gene, condition),) = self.conditions.items()
            result = results.get(gene)
            if result is not None and not isinstance(condition.gene, AllelePresenceGene):
                return result.call.phenotype
            return condition.matched_key(result)
        return "; ".join(
            f"{gene} {condition.matched_key(results.get(gene))}" for gene, condition in self.conditions.items()
        )


@dataclass(frozen=True)
class RuleLookup:
    """A rule's recommendations, compiled against the gene definitions."""

    rule: Rule
    recommendations: tuple[CompiledRecommendation, ...]

    @cached_property
    def default_choice(self) -> PopulationChoice:
        """The population for a patient whose diagnoses and age are unknown: the rule's alone, so chosen once."""
        return choose_population(self.rule, PatientFacts())

    @cached_property
    def genes(self) -> tuple[str, ...]:
        """The rule's genes (``Rule.gene_list``, which builds its tuple on each call)."""
        return self.rule.gene_list

    @cached_property
    def _in_population(self) -> dict[str, tuple[CompiledRecommendation, ...]]:
        """Each population's recommendations, in the rule's order."""
        by_population: dict[str, list[CompiledRecommendation]] = {}
        for recommendation in self.recommendations:
            by_population.setdefault(recommendation.spec.population, []).append(recommendation)
        return {population: tuple(found) for population, found in by_population.items()}

    @cached_property
    def keys_by_gene(self) -> dict[str, frozenset[str]]:
        """Every categorical value the rule's recommendations look each gene up by."""
        found: dict[str, set[str]] = {}
        for recommendation in self.recommendations:
            for gene, condition in recommendation.conditions.items():
                found.setdefault(gene, set()).update(condition.keys)
        return {gene: frozenset(keys) for gene, keys in found.items()}

    def result_for(self, gene: str, result: GeneResult | None) -> GeneResult | None:
        """``result`` as this rule reads it: None (not tested) when it leaves out an allele the rule asks about.

        Only allele-presence genes report part of what they could: "HLA-B*57:01 negative" is no
        HLA-B*15:02 result, so carbamazepine gets its pre-test card, not silence.
        """
        if result is None:
            return None
        definition = self._gene_definitions.get(gene)
        if isinstance(definition, AllelePresenceGene) and not definition.answers(
            result.call, self.keys_by_gene.get(gene, frozenset())
        ):
            return None
        return result

    @cached_property
    def _gene_definitions(self) -> dict[str, GeneDefinition]:
        return {
            gene: condition.gene
            for recommendation in self.recommendations
            for gene, condition in recommendation.conditions.items()
        }

    def find(self, results: GeneResults, population: str) -> CompiledRecommendation | None:
        found = self._first(results, population)
        if found is None:
            # A phenotype stated without its activity score may span entries CPIC keys on the
            # score; if they all give the same advice at the same tier, that advice holds.
            candidates = [
                r
                for r in self._in_population.get(population, ())
                if all(c.could_match(results.get(gene)) for gene, c in r.conditions.items())
            ]
            if candidates and len({(r.spec.recommendation, r.spec.tier) for r in candidates}) == 1:
                return candidates[0]
            # A phenotype stated without its activity score can span recommendations CPIC keys on
            # the score; fall back to the Indeterminate advice, saying why.
            retry = {gene: _unscored(result, self.recommendations) for gene, result in results.items()}
            if retry != dict(results):
                return self._first(retry, population)
        return found

    def _first(self, results: GeneResults, population: str) -> CompiledRecommendation | None:
        for recommendation in self._in_population.get(population, ()):
            if recommendation.matches(results):
                return recommendation
        return None


def _unscored(result: GeneResult | None, recommendations: tuple[CompiledRecommendation, ...]) -> GeneResult | None:
    if result is None or result.call.activity_score or not result.call.definite or result.call.diplotype:
        return result
    conditions = recommendations[0].conditions if recommendations else {}
    if not isinstance(getattr(conditions.get(result.gene), "gene", None), ActivityScoreGene):
        return result
    reason = f"{result.call.phenotype} was reported without an activity score; CPIC keys this advice on the score"
    return GeneResult(indeterminate(result.gene, None, reason), result.effective, result.reported_phenotype)


def compile_rule(rule: Rule, genes: Mapping[str, GeneDefinition]) -> tuple[RuleLookup, list[tuple[tuple, str]]]:
    """Compile a rule's recommendations; returns the lookup and (location, message) problems."""
    problems: list[tuple[tuple, str]] = []
    compiled = []
    multi = not rule.single_gene
    for index, recommendation in enumerate(rule.recommendations):
        where: tuple = ("recommendations", index)
        conditions = {}
        if multi and set(recommendation.when or {}) != set(rule.gene_list):
            problems.append(((*where, "when"), f"when must name each of the rule's genes: {', '.join(rule.gene_list)}"))
            continue
        for symbol in rule.gene_list:
            field = (*where, "phenotype") if not multi else (*where, "when", symbol)
            try:
                conditions[symbol] = compile_condition(
                    genes[symbol], recommendation.values_for(symbol, not multi), multi
                )
            except ValueError as exc:
                problems.append((field, str(exc)))
        if len(conditions) == len(rule.gene_list):
            compiled.append(CompiledRecommendation(index, recommendation, conditions))
    return RuleLookup(rule, tuple(compiled)), problems


@dataclass
class Coverage:
    """What checking every combination of results found: gaps, overlaps, and the result keys
    each recommendation can be shown for (to check its summary at its longest)."""

    problems: list[tuple[tuple, str]]
    keys: dict[int, set[str]]


def coverage(lookup: RuleLookup, genes: Mapping[str, GeneDefinition]) -> Coverage:
    """Every possible combination of results must meet exactly one recommendation per population."""
    rule = lookup.rule
    options: list[list[PhenotypeCall | None]] = []
    for symbol in rule.gene_list:
        calls: list[PhenotypeCall | None] = list(genes[symbol].representative_calls())
        if not rule.single_gene:
            calls.append(None)
        options.append(calls)
    populations = [population.id for population in rule.populations] or [GENERAL]
    problems = []
    keys: dict[int, set[str]] = {}
    # Which recommendations each gene's result meets, worked out once per result rather than once
    # per combination: the combinations multiply (a two-gene rule has hundreds), the results do not.
    meeting = [
        [
            frozenset(
                r.index
                for r in lookup.recommendations
                if r.conditions[symbol].matches(GeneResult(call) if call is not None else None)
            )
            for call in calls
        ]
        for symbol, calls in zip(rule.gene_list, options, strict=True)
    ]
    by_index = {r.index: r for r in lookup.recommendations}
    for population in populations:
        missing, ambiguous = [], []
        in_population = frozenset(r.index for r in lookup.recommendations if r.spec.population == population)
        for picks in itertools.product(*(range(len(calls)) for calls in options)):
            combination = [calls[pick] for calls, pick in zip(options, picks, strict=True)]
            if all(call is None for call in combination):
                continue  # nothing tested: the pre-test card's business
            indices = in_population.intersection(*(meeting[gene][pick] for gene, pick in enumerate(picks)))
            found = [by_index[index] for index in sorted(indices)]
            results = {
                symbol: GeneResult(call) if call is not None else None
                for symbol, call in zip(rule.gene_list, combination, strict=True)
            }
            if len(found) == 1:
                keys.setdefault(found[0].index, set()).add(found[0].key(results, rule.single_gene))
            elif not found:
                missing.append(_describe(results, genes))
            else:
                described = _describe(results, genes)
                ambiguous.append(f"{described} (recommendations {', '.join(str(r.index + 1) for r in found)})")
        where = f" in population {population!r}" if rule.populations else ""
        if missing:
            problems.append(
                (
                    ("recommendations",),
                    f"no recommendation{where} for {len(missing)} possible result(s), e.g. {'; '.join(missing[:4])}",
                )
            )
        if ambiguous:
            problems.append(
                (
                    ("recommendations",),
                    f"more than one recommendation{where} applies to {len(ambiguous)} result(s), "
                    f"e.g. {'; '.join(ambiguous[:3])}",
                )
            )
    return Coverage(problems, keys)


def _describe(results: Mapping[str, GeneResult | None], genes: Mapping[str, GeneDefinition]) -> str:
    parts = []
    for symbol, result in results.items():
        parts.append(f"{symbol} {genes[symbol].describe(result.call) if result else NO_RESULT}")
    return " + ".join(parts)
