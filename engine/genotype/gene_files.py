"""Reading one gene file: schema, kind-specific checks, and the gene definition it yields."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from engine.documents.yamlsource import Problem, SourceError, YamlDocument
from engine.genotype.activity_score import ActivityScoreGene, activity_score_problems
from engine.genotype.allele_presence import AllelePresenceGene
from engine.genotype.function_pair import FunctionPairGene, function_pair_problems
from engine.genotype.genes import (
    ActivityScoreFile,
    AllelePresenceFile,
    FunctionPairFile,
    GeneDefinition,
    GeneFile,
    XLinkedFile,
)
from engine.genotype.x_linked import XLinkedGene, x_linked_problems

_SCHEMA: TypeAdapter = TypeAdapter(GeneFile)
KINDS = ("function pair", "activity score", "allele presence", "x-linked")


def parse_gene_file(document: YamlDocument) -> GeneDefinition:
    """Validate a parsed gene file and build its definition; SourceError lists every problem."""
    data = document.data
    if isinstance(data, dict) and data.get("kind") not in KINDS:
        raise SourceError([document.problem(("kind",), f"kind must be one of: {', '.join(KINDS)}")])
    try:
        spec = _SCHEMA.validate_python(data)
    except ValidationError as exc:
        # A discriminated union puts the kind first in each error location; the file has no such level.
        kind = data.get("kind") if isinstance(data, dict) else None
        problems = document.validation_problems(exc, strip_first=kind)
        raise SourceError(problems) from None
    if isinstance(spec, FunctionPairFile):
        problems, gene = function_pair_problems(spec, document), FunctionPairGene
    elif isinstance(spec, ActivityScoreFile):
        problems, gene = activity_score_problems(spec, document), ActivityScoreGene
    elif isinstance(spec, XLinkedFile):
        problems, gene = x_linked_problems(spec, document), XLinkedGene
    else:
        assert isinstance(spec, AllelePresenceFile)
        problems, gene = [], AllelePresenceGene
    definition = gene(spec, document.name)
    problems += _notation_problems(definition, document)
    if problems:
        raise SourceError(problems)
    definition.reader  # noqa: B018 - build the notation reader now, at load time, not on a request
    return definition


def _notation_problems(gene: GeneDefinition, document: YamlDocument) -> list[Problem]:
    """Other names and positions must stand for alleles the file defines."""
    known = set(gene.known_alleles())
    problems = []
    for alias, allele in gene.allele_names.items():
        if allele not in known:
            message = f"{alias!r} names {allele!r}, which is not an allele here"
            problems.append(document.problem(("allele_names", alias), message))
    if gene.reference_allele is not None and gene.reference_allele not in known:
        problems.append(document.problem(("reference_allele",), f"{gene.reference_allele!r} is not an allele here"))
    for index, position in enumerate(gene.positions):
        for base, allele in position.bases.items():
            if allele not in known:
                problems.append(
                    document.problem(("positions", index, "bases", base), f"{allele!r} is not an allele here")
                )
    return problems
