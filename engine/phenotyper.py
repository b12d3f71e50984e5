"""Diplotype -> phenotype, the way CPIC assigns it.

Parsing is forgiving about notation (``*2/*1``, ``CYP2C19*1/*2``, ``CYP2C19 *1|*2`` are one
diplotype; lab and PharmCAT spellings are read by engine.notations) and exact about meaning: an
allele the gene file does not define gives ``Indeterminate`` with the reason, never a guess. How a
gene turns alleles into a phenotype is its kind's business (engine.function_pair,
engine.activity_score, engine.allele_presence).
"""

from __future__ import annotations

from functools import lru_cache

from engine.calls import PhenotypeCall
from engine.genes import GeneDefinition


def call_diplotype(gene: GeneDefinition, text: str) -> PhenotypeCall:
    """Phenotype one diplotype string for ``gene`` (cached: labs repeat the same few diplotypes)."""
    return _call_cached(gene, text)


@lru_cache(maxsize=65536)
def _call_cached(gene: GeneDefinition, text: str) -> PhenotypeCall:
    return gene.call(text)
