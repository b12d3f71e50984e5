"""Gene definition files (``rules/genes/<GENE>.yaml``): their schema and loading.

A gene file states, as CPIC does, the clinical function of each allele and the rule that turns
a pair of allele functions into a phenotype. The loader checks the file is complete (every pair
of functions it uses has exactly one phenotype) and that its own examples hold.
"""

from __future__ import annotations

import itertools

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.yamlsource import Problem, SourceError, YamlDocument

INDETERMINATE = "Indeterminate"


class Citation(BaseModel):
    """Where the facts in a file come from."""

    model_config = ConfigDict(extra="forbid")

    citation: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://\S+$")
    data: str | None = None


class GeneFile(BaseModel):
    """The schema of one gene definition file."""

    model_config = ConfigDict(extra="forbid")

    gene: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]*$")
    hgnc: str = Field(pattern=r"^HGNC:\d+$", description="HGNC identifier, as FHIR results carry it")
    kind: str = Field(description="How a diplotype becomes a phenotype: 'function pair'")
    source: Citation
    alleles: dict[str, str] = Field(min_length=1, description="allele name -> CPIC clinical function")
    phenotypes: dict[str, list[tuple[str, str]]] = Field(
        min_length=1, description="phenotype -> the pairs of allele functions that give it"
    )
    examples: dict[str, str] = Field(default_factory=dict, description="diplotype -> expected phenotype")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value != "function pair":
            raise ValueError(f"unknown kind {value!r}; expected 'function pair'")
        return value

    @field_validator("alleles")
    @classmethod
    def _allele_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if "/" in name or not name.strip():
                raise ValueError(f"allele name {name!r} must be non-empty and contain no '/'")
        return value


def allele_sort_key(name: str) -> tuple:
    """Order alleles the way CPIC tables do: ``*2`` before ``*17``, names after numbers."""
    if name.startswith("*"):
        digits = "".join(itertools.takewhile(str.isdigit, name[1:]))
        if digits:
            return (0, int(digits), name[1 + len(digits) :])
    return (1, 0, name)


class GeneDefinition:
    """A validated gene file, ready to phenotype diplotypes."""

    def __init__(self, spec: GeneFile, source: str):
        self.symbol = spec.gene
        self.hgnc = spec.hgnc
        self.source = source
        self.citation = spec.source
        self.allele_function = dict(spec.alleles)
        self.pair_phenotype = {
            _pair_key(*pair): phenotype for phenotype, pairs in spec.phenotypes.items() for pair in pairs
        }
        self.phenotypes = tuple(dict.fromkeys([*spec.phenotypes, INDETERMINATE]))
        self.examples = dict(spec.examples)

    def phenotype_of_functions(self, first: str, second: str) -> str:
        return self.pair_phenotype.get(_pair_key(first, second), INDETERMINATE)


def _pair_key(first: str, second: str) -> tuple[str, str]:
    return (first, second) if first <= second else (second, first)


def parse_gene_file(document: YamlDocument) -> GeneDefinition:
    """Validate a parsed gene file: schema, completeness of the phenotype rule, examples."""
    try:
        spec = GeneFile.model_validate(document.data)
    except ValidationError as exc:
        raise SourceError(document.validation_problems(exc)) from None
    problems: list[Problem] = []
    seen: dict[tuple[str, str], str] = {}
    for phenotype, pairs in spec.phenotypes.items():
        for index, pair in enumerate(pairs):
            key = _pair_key(*pair)
            if key in seen and seen[key] != phenotype:
                problems.append(
                    document.problem(
                        ("phenotypes", phenotype, index),
                        f"functions {list(pair)} already give {seen[key]!r}; a pair may give only one phenotype",
                    )
                )
            seen[key] = phenotype
    used = sorted(set(spec.alleles.values()))
    for first, second in itertools.combinations_with_replacement(used, 2):
        if _pair_key(first, second) not in seen:
            problems.append(
                document.problem(
                    ("phenotypes",),
                    f"no phenotype for the function pair [{first}, {second}]; "
                    f"add it (use {INDETERMINATE!r} if CPIC assigns none)",
                )
            )
    for phenotype, pairs in spec.phenotypes.items():
        for index, pair in enumerate(pairs):
            for function in pair:
                if function not in used:
                    problems.append(
                        document.problem(
                            ("phenotypes", phenotype, index),
                            f"function {function!r} is not the function of any allele in this file",
                        )
                    )
    if problems:
        raise SourceError(problems)
    return GeneDefinition(spec, document.name)
