"""Genes phenotyped from the pair of allele functions (CYP2C19, CYP3A5, TPMT, NUDT15, SLCO1B1, ...)."""

from __future__ import annotations

import itertools

from engine.documents.spelling import did_you_mean
from engine.documents.yamlsource import Problem, YamlDocument
from engine.genotype.calls import INDETERMINATE, PhenotypeCall, indeterminate
from engine.genotype.genes import FunctionPairFile, GeneDefinition


def _pair_key(first: str, second: str) -> tuple[str, str]:
    return (first, second) if first <= second else (second, first)


class FunctionPairGene(GeneDefinition):
    kind = "function pair"

    def __init__(self, spec: FunctionPairFile, source: str):
        super().__init__(spec, source)
        self.allele_function = dict(spec.alleles)
        self.pair_phenotype = {
            _pair_key(*pair): phenotype for phenotype, pairs in spec.phenotypes.items() for pair in pairs
        }
        self.phenotypes = tuple(dict.fromkeys([*spec.phenotypes, INDETERMINATE]))

    def known_alleles(self) -> tuple[str, ...]:
        return tuple(self.allele_function)

    def call_alleles(self, alleles: list[str]) -> PhenotypeCall:
        (first, second), diplotype, undefined = self.defined_alleles(alleles, self.allele_function)
        if undefined is not None:
            return undefined
        functions = ((first, self.allele_function[first]), (second, self.allele_function[second]))
        phenotype = self.pair_phenotype.get(_pair_key(functions[0][1], functions[1][1]), INDETERMINATE)
        if phenotype == INDETERMINATE:
            reason = f"CPIC assigns no phenotype to {functions[0][1].lower()} + {functions[1][1].lower()}"
            return indeterminate(self.symbol, diplotype, reason, functions)
        return PhenotypeCall(self.symbol, diplotype, phenotype, functions=functions)


def function_pair_problems(spec: FunctionPairFile, document: YamlDocument) -> list[Problem]:
    """A pair of functions must give exactly one phenotype, and every pair in use must give one."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], str] = {}
    used = sorted(set(spec.alleles.values()))
    for phenotype, pairs in spec.phenotypes.items():
        for index, pair in enumerate(pairs):
            where = ("phenotypes", phenotype, index)
            key = _pair_key(*pair)
            if seen.get(key, phenotype) != phenotype:
                problems.append(
                    document.problem(
                        where, f"functions {list(pair)} already give {seen[key]!r}; one phenotype per pair"
                    )
                )
            seen[key] = phenotype
            for function in pair:
                if function not in used:
                    problems.append(
                        document.problem(
                            where,
                            f"function {function!r} is not the function of any allele in this file"
                            f"{did_you_mean(function, used)}",
                        )
                    )
    for first, second in itertools.combinations_with_replacement(used, 2):
        if _pair_key(first, second) not in seen:
            problems.append(
                document.problem(
                    ("phenotypes",),
                    f"no phenotype for the function pair [{first}, {second}]; "
                    f"add it (use {INDETERMINATE!r} if CPIC assigns none)",
                )
            )
    return problems
