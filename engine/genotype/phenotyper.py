"""Diplotype -> phenotype, the way CPIC assigns it.

Parsing is forgiving about notation (``*2/*1``, ``CYP2C19*1/*2``, ``CYP2C19 *1|*2`` are one
diplotype; lab and PharmCAT spellings are read by engine.genotype.notations) and exact about meaning: an
allele the gene file does not define gives ``Indeterminate`` with the reason, never a guess. How a
gene turns alleles into a phenotype is its kind's business (engine.genotype.function_pair,
engine.genotype.activity_score, engine.genotype.allele_presence).
"""

from __future__ import annotations

from functools import lru_cache

from engine.genotype.calls import PhenotypeCall
from engine.genotype.genes import MOST_CHARACTERS, GeneDefinition


def call_diplotype(gene: GeneDefinition, text: str, sex: str | None = None) -> PhenotypeCall:
    """Phenotype one diplotype string for ``gene`` (cached: labs repeat the same few diplotypes).

    ``sex`` is passed on only to genes whose call depends on it (G6PD), so that other genes share
    one cache entry per diplotype. A text too long to be a genotype is not cached: each would hold
    its text in memory, and the call refuses it at once anyway.
    """
    if len(text) > MOST_CHARACTERS:
        return gene.call(text, sex)
    return _call_cached(gene, text, sex if gene.uses_sex else None)


@lru_cache(maxsize=65536)
def _call_cached(gene: GeneDefinition, text: str, sex: str | None) -> PhenotypeCall:
    return gene.call(text, sex)
