"""Agreement with CPIC/PharmCAT's own diplotype tables (run when ../shared/pgx-oracle exists)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from engine.genotype.phenotyper import call_diplotype
from engine.rulebook.library import Library

# The reference tables live beside the project (../shared/pgx-oracle); a clone elsewhere can
# point at them with PGX_LOOP_ORACLE.
CANDIDATES = [
    Path(os.environ.get("PGX_LOOP_ORACLE", "")),
    Path(__file__).resolve().parent.parent.parent / "shared" / "pgx-oracle",
    Path("/work/shared/pgx-oracle"),
]
ORACLE = next((path for path in CANDIDATES if str(path) != "." and path.is_dir()), CANDIDATES[1])


def oracle_rows(gene: str) -> list[dict[str, str]]:
    path = ORACLE / f"diplotype_phenotype_{gene}.csv"
    if not path.exists():
        pytest.skip(f"{path} not present: the oracle comparison runs only beside ../shared/pgx-oracle")
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


GENES = [
    "CYP2C19",
    "CYP2C9",
    "CYP2D6",
    "CYP3A5",
    "DPYD",
    "HLA-A",
    "HLA-B",
    "NUDT15",
    "SLCO1B1",
    "TPMT",
    "UGT1A1",
    "VKORC1",
]


@pytest.mark.parametrize("gene", GENES)
def test_no_definite_result_disagrees_with_cpic(library: Library, gene: str):
    """Every row of CPIC's table: same phenotype and activity score wherever we give a definite answer,
    and a definite answer wherever CPIC gives one (we define every allele CPIC assigns a function)."""
    definitions = library.genes[gene]
    wrong, unresolved = [], []
    for row in oracle_rows(gene):
        call = call_diplotype(definitions, row["diplotype"])
        if definitions.kind == "allele presence":
            # One row per (diplotype, allele of interest): the row's status must be among ours.
            if row["phenotype"] not in call.keys:
                wrong.append((row["diplotype"], row["phenotype"], call.phenotype))
            continue
        expected_score = row["activity_score"] if row["activity_score"] not in ("", "n/a") else None
        if call.definite:
            if call.phenotype != row["phenotype"] or call.activity_score != expected_score:
                wrong.append((row["diplotype"], row["phenotype"], expected_score, call.phenotype, call.activity_score))
        elif row["phenotype"] != "Indeterminate":
            unresolved.append((row["diplotype"], row["phenotype"], call.reason))
    assert wrong == []
    assert unresolved == []
