"""Red team of the genotype -> phenotype stage: notations and FHIR encodings the team did not write.

Each test is a case where the engine gave a confident answer it should not have (a lab's own
words contradicting it, two codings or components of one result disagreeing, a result that says
nothing about the allele a drug depends on), checked against CPIC's terms. The product rule:
an unknown, ambiguous or self-contradicting result is never read as a confident phenotype.
"""

from __future__ import annotations

import pytest

from engine.genotype.calls import INDETERMINATE
from engine.genotype.phenotyper import call_diplotype

# --- a phenotype written after a single-position genotype ------------------------------------------

# CPIC's SLCO1B1 table: c.521 TC is Decreased Function, CC Poor Function. A lab line whose own
# phenotype contradicts its genotype is Indeterminate, as it is for star-allele diplotypes.
CONTRADICTED = [
    ("SLCO1B1", "rs4149056 C/T Poor Function"),
    ("SLCO1B1", "rs4149056 T/T (Decreased Function)"),
    ("SLCO1B1", "c.521T>C heterozygous Normal Function"),
]


@pytest.mark.parametrize(("gene", "written"), CONTRADICTED)
def test_a_single_position_genotype_contradicted_by_its_own_phenotype_is_indeterminate(library, gene, written):
    call = call_diplotype(library.genes[gene], written)
    assert call.phenotype == INDETERMINATE, call
    assert "stated" in (call.reason or "")


def test_a_single_position_genotype_with_the_phenotype_it_gives_is_read(library):
    call = call_diplotype(library.genes["SLCO1B1"], "rs4149056 C/C Poor Function")
    assert call.phenotype == "Poor Function"
