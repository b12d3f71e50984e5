"""What one gene result means: the phenotype call every later stage works from."""

from __future__ import annotations

from dataclasses import dataclass

INDETERMINATE = "Indeterminate"
NO_RESULT = "No Result"  # CPIC's key for a gene of a multi-gene guideline that was not tested


@dataclass(frozen=True, slots=True)
class PhenotypeCall:
    """A gene's phenotype, how it was reached, and the keys CPIC recommendations are looked up by.

    ``keys`` are the categorical lookup values: the phenotype, or for allele-presence genes the
    status of each allele of interest ("*57:01 positive"). Activity-score genes are looked up by
    ``activity_score`` as well.
    """

    gene: str
    diplotype: str | None
    phenotype: str
    activity_score: str | None = None
    functions: tuple[tuple[str, str], ...] = ()
    reason: str | None = None
    keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.keys:
            object.__setattr__(self, "keys", (self.phenotype,))

    @property
    def definite(self) -> bool:
        return self.phenotype != INDETERMINATE


def indeterminate(gene: str, diplotype: str | None, reason: str, functions: tuple = ()) -> PhenotypeCall:
    return PhenotypeCall(gene, diplotype, INDETERMINATE, functions=functions, reason=reason)


def loose_phenotype(phenotype: str) -> str:
    """A phenotype without CPIC's "Likely": LOINC's answer list and most lab reports have no "Likely" terms,
    so a lab writing "Poor metabolizer" for a diplotype CPIC calls "Likely Poor Metabolizer" agrees with it
    (CPIC applies the same advice)."""
    return phenotype.removeprefix("Likely ")


def stated_agrees(stated: str, called: str) -> bool:
    """Whether a phenotype a lab wrote agrees with the phenotype called from the alleles."""
    return loose_phenotype(stated) == loose_phenotype(called)
