"""Diplotype -> phenotype, the way CPIC assigns it.

Parsing is forgiving about notation (``*2/*1``, ``CYP2C19*1/*2``, ``CYP2C19 *1/*2`` are one
diplotype) and exact about meaning: an allele the gene file does not define gives
``Indeterminate`` with the reason, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from engine.genes import INDETERMINATE, GeneDefinition, allele_sort_key

_SUBALLELE = re.compile(r"^(\*\d+[A-Za-z]*)\.\d+$")


@dataclass(frozen=True, slots=True)
class PhenotypeCall:
    """What one gene result means: the phenotype, and how it was reached."""

    gene: str
    diplotype: str | None
    phenotype: str
    activity_score: str | None = None
    functions: tuple[tuple[str, str], ...] = ()
    reason: str | None = None

    @property
    def definite(self) -> bool:
        return self.phenotype != INDETERMINATE

    @property
    def lookup_key(self) -> str:
        """The value CPIC recommendations are keyed on for this gene."""
        return self.phenotype


def split_diplotype(gene_symbol: str, text: str) -> tuple[str, str] | None:
    """The two allele names in ``text``, gene prefixes removed; ``None`` if it is not a diplotype."""
    cleaned = re.sub(rf"{re.escape(gene_symbol)}\s*(?=\*)", "", text.strip(), flags=re.IGNORECASE)
    parts = [part.strip() for part in cleaned.split("/")]
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def _canonical_allele(gene: GeneDefinition, name: str) -> str:
    if name in gene.allele_function:
        return name
    # PharmVar sub-alleles (*2.001) share the core allele's defining variants and function.
    match = _SUBALLELE.match(name)
    if match and match.group(1) in gene.allele_function:
        return match.group(1)
    return name


def call_diplotype(gene: GeneDefinition, text: str) -> PhenotypeCall:
    """Phenotype one diplotype string for ``gene``."""
    return _call_cached(gene, text)


@lru_cache(maxsize=65536)
def _call_cached(gene: GeneDefinition, text: str) -> PhenotypeCall:
    alleles = split_diplotype(gene.symbol, text)
    if alleles is None:
        return PhenotypeCall(
            gene.symbol, text.strip() or None, INDETERMINATE, reason=f"not a diplotype: {text.strip()!r}"
        )
    first, second = sorted((_canonical_allele(gene, name) for name in alleles), key=allele_sort_key)
    diplotype = f"{first}/{second}"
    unknown = [name for name in (first, second) if name not in gene.allele_function]
    if unknown:
        names = ", ".join(dict.fromkeys(unknown))
        return PhenotypeCall(
            gene.symbol, diplotype, INDETERMINATE, reason=f"allele not in the {gene.symbol} definitions: {names}"
        )
    functions = ((first, gene.allele_function[first]), (second, gene.allele_function[second]))
    phenotype = gene.phenotype_of_functions(functions[0][1], functions[1][1])
    reason = None
    if phenotype == INDETERMINATE:
        reason = f"CPIC assigns no phenotype to {functions[0][1].lower()} + {functions[1][1].lower()}"
    return PhenotypeCall(gene.symbol, diplotype, phenotype, functions=functions, reason=reason)
