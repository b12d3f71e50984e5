"""Genes phenotyped from the sum of allele activity values (CYP2C9, CYP2D6, DPYD).

CPIC looks their recommendations up by the score itself (CYP2C9 *1/*3, score 1.0, and *1/*2,
score 1.5, are both intermediate metabolizers but can be advised differently). Copy numbers of
three or more are CPIC's "≥3" bin: ``*1x3`` is read as ``*1x≥3`` and scores as "≥3.0".

An unknown copy number (``*1/*1xN``) is called only when every copy number from 2 up gives the
same phenotype (the ≥3 bin makes 2 and 3 the only cases; a few more are checked anyway). A
phased result with several variants on a strand (DPYD ``[c.498G>A + c.2582A>G]/[...]``) counts
each strand as its lowest-activity variant where the gene file says so, as CPIC's DPYD guideline
and PharmCAT do.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace

from engine.documents.yamlsource import Problem, YamlDocument
from engine.genotype.calls import INDETERMINATE, PhenotypeCall, indeterminate
from engine.genotype.genes import ActivityScoreFile, GeneDefinition, allele_sort_key
from engine.genotype.notations import UNKNOWN_COPIES
from engine.genotype.scores import Interval, format_score, parse_range, parse_score

_COPIES = re.compile(r"^(?P<base>.+?)\s*[xX×]\s*(?:≥|>=)?\s*(?P<copies>\d+)$")
COPIES_TRIED = range(2, 7)  # an unknown copy number: the ≥3 bin makes 2 and 3 decisive, the rest confirm


def _with_copies(name: str, copies: int) -> str:
    base = name.removesuffix(UNKNOWN_COPIES)
    return f"{base}x{copies}" if base != name else name


def _value(activity: float | str | None) -> tuple[float, bool] | None:
    """An activity value as (value, at_least); None when the allele has no value (uncertain function)."""
    if activity is None:
        return None
    if isinstance(activity, int | float):
        return float(activity), False
    interval = parse_score(activity)
    if interval is None:
        raise ValueError(f"activity {activity!r} is not a number or '≥number'")
    return interval.low, math.isinf(interval.high)


class ActivityScoreGene(GeneDefinition):
    kind = "activity score"

    def __init__(self, spec: ActivityScoreFile, source: str):
        super().__init__(spec, source)
        self.allele_function = {name: allele.function for name, allele in spec.alleles.items()}
        self.activity = {name: _value(allele.activity) for name, allele in spec.alleles.items()}
        self.ranges = {phenotype: parse_range(text) for phenotype, text in spec.phenotypes.items()}
        self.phenotypes = (*spec.phenotypes, INDETERMINATE)
        self.lowest_per_strand = spec.variants_on_one_strand == "lowest activity"

    def known_alleles(self) -> tuple[str, ...]:
        return tuple(self.activity)

    def canonical_allele(self, name: str, known: dict) -> str:
        name = super().canonical_allele(name, known)
        match = _COPIES.match(name)
        if name not in known and match and int(match["copies"]) >= 3:
            binned = f"{match['base']}x≥3"  # CPIC bins three or more copies together
            if binned in known:
                return binned
        return name

    def call_alleles(self, alleles: list[str]) -> PhenotypeCall:
        (first, second), diplotype, undefined = self.defined_alleles(alleles, self.activity)
        if undefined is not None:
            return undefined
        functions = ((first, self.allele_function[first]), (second, self.allele_function[second]))
        values = [self.activity[first], self.activity[second]]
        if None in values:
            names = ", ".join(name for name in (first, second) if self.activity[name] is None)
            return indeterminate(self.symbol, diplotype, f"no CPIC activity value for {names}", functions)
        return self._scored(diplotype, sum(v for v, _ in values), any(a for _, a in values), functions)

    def call_strands(self, strands: tuple[tuple[str, ...], ...]) -> PhenotypeCall:
        if any(len(strand) > 1 for strand in strands):
            return self._lowest_per_strand(strands)
        names = [strand[0] for strand in strands]
        if any(name.endswith(UNKNOWN_COPIES) for name in names):
            return self._any_copy_number(names)
        return self.call_alleles(names)

    def _lowest_per_strand(self, strands: tuple[tuple[str, ...], ...]) -> PhenotypeCall:
        """Each strand counts as its lowest-activity variant (CPIC DPYD guideline; PharmCAT, phased data)."""
        written = "/".join(f"[{' + '.join(strand)}]" if len(strand) > 1 else strand[0] for strand in strands)
        if not self.lowest_per_strand:
            return indeterminate(self.symbol, written, f"{self.symbol} alleles are not read as variants per strand")
        lowest = []
        for strand in strands:
            names = [self.canonical_allele(name, self.activity) for name in strand]
            unknown = [name for name in names if name not in self.activity]
            if unknown:
                return indeterminate(self.symbol, written, f"allele not in the {self.symbol} definitions: {unknown[0]}")
            uncertain = [name for name in names if self.activity[name] is None]
            if uncertain:
                return indeterminate(self.symbol, written, f"no CPIC activity value for {uncertain[0]}")
            lowest.append(min(names, key=lambda name: self.activity[name][0]))  # type: ignore[index]
        call = self.call_alleles(lowest)
        return replace(call, diplotype=written)

    def _any_copy_number(self, names: list[str]) -> PhenotypeCall:
        """A duplication of unknown copy number: called only if every copy number gives one phenotype."""
        names = sorted(names, key=allele_sort_key)
        written = "/".join(names)
        calls = []
        for copies in COPIES_TRIED:
            tried = [_with_copies(name, copies) for name in names]
            call = self.call_alleles(tried)
            if not call.definite:
                return indeterminate(self.symbol, written, f"copy number not stated, and with {copies}: {call.reason}")
            calls.append(call)
        phenotypes = {call.phenotype for call in calls}
        if len(phenotypes) > 1:
            found = " or ".join(sorted(phenotypes))
            return indeterminate(self.symbol, written, f"copy number not stated: {written} could be {found}")
        scores = [parse_score(call.activity_score or "") for call in calls]
        low = min(score.low for score in scores if score is not None)
        at_least = len({call.activity_score for call in calls}) > 1 or any(math.isinf(s.high) for s in scores if s)
        called = self._scored(written, low, at_least, self._copy_functions(names))
        if called.phenotype != calls[0].phenotype:  # the range from the lowest score up must keep the phenotype
            return indeterminate(self.symbol, written, f"copy number not stated: {written} spans phenotypes")
        return called

    def _copy_functions(self, names: list[str]) -> tuple[tuple[str, str], ...]:
        functions = []
        for name in names:
            tried = [_with_copies(name, copies) for copies in COPIES_TRIED]
            seen = {self.allele_function.get(self.canonical_allele(each, self.activity)) for each in tried}
            functions.append((name, seen.pop() if len(seen) == 1 else "function depends on the copy number"))
        return tuple(functions)

    def _scored(self, diplotype: str | None, score: float, at_least: bool, functions=()) -> PhenotypeCall:
        interval = Interval(score, math.inf, high_open=True) if at_least else Interval(score, score)
        text = format_score(score, at_least)
        phenotype = self.phenotype_of(interval)
        if phenotype is None:
            return indeterminate(
                self.symbol, diplotype, f"CPIC assigns no phenotype to activity score {text}", functions
            )
        return PhenotypeCall(self.symbol, diplotype, phenotype, activity_score=text, functions=functions)

    def phenotype_of(self, interval: Interval) -> str | None:
        return next((phenotype for phenotype, r in self.ranges.items() if r and r.contains(interval)), None)

    def score_interval(self, call: PhenotypeCall) -> Interval | None:
        """The scores a call stands for: its own score, else its phenotype's whole range."""
        if call.activity_score:
            return parse_score(call.activity_score)
        return self.ranges.get(call.phenotype)

    def reported_score(self, text: str) -> PhenotypeCall | None:
        """A call from an activity score stated without a diplotype ("1.5", "AS 1.5")."""
        interval = parse_score(re.sub(r"^(activity score|as)\s*:?\s*", "", text.strip(), flags=re.IGNORECASE))
        if interval is None:
            return None
        return self._scored(None, interval.low, math.isinf(interval.high))

    def achievable(self) -> set[tuple[float, bool]]:
        values = {value for value in self.activity.values() if value is not None}
        return {(a + b, fa or fb) for (a, fa), (b, fb) in itertools.combinations_with_replacement(values, 2)}

    def representative_calls(self) -> list[PhenotypeCall]:
        calls = [self._scored(None, score, at_least) for score, at_least in sorted(self.achievable())]
        return [*calls, indeterminate(self.symbol, None, "representative")]

    def describe(self, call: PhenotypeCall) -> str:
        return f"activity score {call.activity_score} ({call.phenotype})" if call.activity_score else call.phenotype


def activity_score_problems(spec: ActivityScoreFile, document: YamlDocument) -> list[Problem]:
    """Values must parse; ranges must parse, not overlap, and cover every score the alleles can add up to."""
    problems: list[Problem] = []
    for name, allele in spec.alleles.items():
        try:
            _value(allele.activity)
        except ValueError as exc:
            problems.append(document.problem(("alleles", name, "activity"), str(exc)))
    ranges = {}
    for phenotype, text in spec.phenotypes.items():
        interval = parse_range(text)
        if interval is None:
            problems.append(document.problem(("phenotypes", phenotype), f"{text!r} is not a score range"))
        ranges[phenotype] = interval
    if problems:
        return problems
    gene = ActivityScoreGene(spec, document.name)
    for score, at_least in sorted(gene.achievable()):
        interval = Interval(score, math.inf, high_open=True) if at_least else Interval(score, score)
        matching = [phenotype for phenotype, r in ranges.items() if r.contains(interval)]
        if len(matching) > 1:
            problems.append(
                document.problem(
                    ("phenotypes",), f"score {format_score(score, at_least)} falls in {' and '.join(matching)}"
                )
            )
    return problems
