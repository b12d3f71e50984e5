"""X-linked genes (G6PD): the patient's sex decides how many alleles there are to read.

A male has one X chromosome: his one allele's function gives the phenotype (hemizygous). A
female has two: the pair of functions gives it, as for any function-pair gene (one normal and one
deficient allele make CPIC's "Variable"). Labs write a male's result as one allele, sometimes
twice over ("A-/A-"). When the sex is not known a result is given only if it would be the same
for a male or a female; otherwise the call is Indeterminate and says that the sex is needed.
"""

from __future__ import annotations

from engine.documents.yamlsource import Problem, YamlDocument
from engine.genotype.calls import INDETERMINATE, PhenotypeCall, indeterminate
from engine.genotype.function_pair import function_pair_problems
from engine.genotype.genes import GeneDefinition, XLinkedFile

FEMALE, MALE = "female", "male"


def _pair_key(first: str, second: str) -> tuple[str, str]:
    return (first, second) if first <= second else (second, first)


class XLinkedGene(GeneDefinition):
    kind = "x-linked"
    uses_sex = True

    def __init__(self, spec: XLinkedFile, source: str):
        super().__init__(spec, source)
        self.allele_function = dict(spec.alleles)
        self.hemizygous = dict(spec.hemizygous)
        self.pair_phenotype = {
            _pair_key(*pair): phenotype for phenotype, pairs in spec.phenotypes.items() for pair in pairs
        }
        self.female_examples = dict(spec.female_examples)
        self.male_examples = dict(spec.male_examples)
        self.phenotypes = tuple(dict.fromkeys([*spec.phenotypes, *spec.hemizygous.values(), INDETERMINATE]))

    def known_alleles(self) -> tuple[str, ...]:
        return tuple(self.allele_function)

    def split(self, text: str) -> list[str] | None:
        parts = [part.strip() for part in text.split("/")]
        return parts if len(parts) in (1, 2) and all(parts) else None

    def example_sets(self) -> list[tuple[str, str | None, dict[str, str]]]:
        return [
            ("examples", None, self.examples),
            ("female_examples", FEMALE, self.female_examples),
            ("male_examples", MALE, self.male_examples),
        ]

    def canonical_allele(self, name: str, known: dict) -> str:
        """Also the reader's names ("Mediterranean", "A+"): a male's lone allele is read only here, since
        the notation reader takes one allele only with its zygosity."""
        name = super().canonical_allele(name, known)
        return name if name in known else (self.reader.defined(name) or name)

    def _hemizygous(self, allele: str) -> str:
        return self.hemizygous.get(self.allele_function[allele], INDETERMINATE)

    def call_alleles(self, alleles: list[str], sex: str | None = None) -> PhenotypeCall:
        names, diplotype, undefined = self.defined_alleles(alleles, self.allele_function)
        if undefined is not None:
            return undefined
        functions = tuple((name, self.allele_function[name]) for name in names)
        if len(names) == 1:
            if sex == FEMALE:
                return indeterminate(self.symbol, diplotype, "one allele reported for a female patient, who has two")
            return self._called(diplotype, self._hemizygous(names[0]), functions, "a hemizygous allele")
        first, second = names
        female = self.pair_phenotype.get(_pair_key(functions[0][1], functions[1][1]), INDETERMINATE)
        if sex == FEMALE:
            return self._called(diplotype, female, functions, "this pair of functions")
        if sex == MALE:
            if first != second:
                return indeterminate(self.symbol, diplotype, "two different alleles reported for a male patient")
            return self._called(diplotype, self._hemizygous(first), functions, "a hemizygous allele")
        readings = {female, self._hemizygous(first), self._hemizygous(second)}
        if len(readings) > 1:
            reason = (
                f"the patient's sex is needed and not known: {female} for a female, "
                f"{' or '.join(sorted({self._hemizygous(first), self._hemizygous(second)}))} for a male"
            )
            return indeterminate(self.symbol, diplotype, reason, functions)
        return self._called(diplotype, female, functions, "this pair of functions")

    def _called(self, diplotype: str, phenotype: str, functions: tuple, what: str) -> PhenotypeCall:
        if phenotype == INDETERMINATE:
            return indeterminate(self.symbol, diplotype, f"CPIC assigns no phenotype to {what}", functions)
        return PhenotypeCall(self.symbol, diplotype, phenotype, functions=functions)


def x_linked_problems(spec: XLinkedFile, document: YamlDocument) -> list[Problem]:
    """The female pairs as for a function-pair gene; every allele function needs a hemizygous phenotype."""
    problems = function_pair_problems(spec, document)  # type: ignore[arg-type]
    for function in sorted(set(spec.alleles.values()) - set(spec.hemizygous)):
        problems.append(
            document.problem(
                ("hemizygous",), f"no phenotype for a male carrying a {function!r} allele; add it (or Indeterminate)"
            )
        )
    return problems
