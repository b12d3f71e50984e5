"""Agreement with CPIC/PharmCAT's own diplotype tables (run when ../shared/pgx-oracle exists)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from engine.library import Library
from engine.phenotyper import call_diplotype

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


@pytest.mark.parametrize("gene", ["CYP2C19"])
def test_no_definite_phenotype_disagrees_with_cpic(library: Library, gene: str):
    definitions = library.genes[gene]
    rows = oracle_rows(gene)
    wrong, resolved, unresolved = [], 0, []
    for row in rows:
        call = call_diplotype(definitions, row["diplotype"])
        if call.definite:
            resolved += 1
            if call.phenotype != row["phenotype"]:
                wrong.append((row["diplotype"], row["phenotype"], call.phenotype))
        elif row["phenotype"] != "Indeterminate":
            unresolved.append(row["diplotype"])
    assert wrong == []
    # Every diplotype CPIC gives a phenotype, we give one too: full coverage of assigned alleles.
    assert unresolved == []
    assert resolved == sum(row["phenotype"] != "Indeterminate" for row in rows)
