"""Genotype results: from a lab's CSV export, from OMOP ``measurement``, and as phenotypes.

A lab CSV has the header ``person_id,gene,diplotype`` (optionally ``result_date``). In OMOP, a
genotype is a ``measurement`` coded LOINC 84413-4 ("Genotype display name": by concept, or by
``measurement_source_value``) whose ``value_source_value`` reads "GENE diplotype", e.g.
"CYP2C19 *1/*2", the grammar the HL7 Genomics Reporting IG recommends. Phenotypes come from the
same gene definitions the service uses, so analytics and alerts never disagree.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from analytics.data.csv_input import CsvFileError, person_id, read_rows
from analytics.data.store import scalar, table_exists
from engine.genotype.phenotyper import call_diplotype
from engine.rulebook.library import Library

GENOTYPE_LOINC = "84413-4"


class GenotypeFileError(CsvFileError):
    """A genotype file that cannot be read; the message says where."""


MAX_TEXT = 200  # characters of a gene or diplotype: far beyond any real one (DPYD names are the longest)


def load_genotype_file(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Replace the results previously loaded from a file of this name with its rows (caller commits).

    The whole file is read and checked before the database is touched.
    """
    try:
        rows = [_genotype(path, line, row) for line, row in read_rows(path, ("person_id", "gene", "diplotype"))]
    except CsvFileError as exc:
        raise GenotypeFileError(str(exc)) from None
    con.register("frame", pd.DataFrame(rows, columns=["person_id", "gene", "diplotype", "result_date"]))
    source = f"file {path.name}"
    con.execute("DELETE FROM pgx_result WHERE source = ?", [source])
    con.execute(
        "INSERT INTO pgx_result SELECT person_id, gene, diplotype, TRY_CAST(result_date AS DATE), ? FROM frame",
        [source],
    )
    return len(rows)


def _genotype(path: Path, line: int, row: dict[str, str]) -> tuple[int, str, str, str | None]:
    gene, diplotype = row.get("gene", ""), row.get("diplotype", "")
    if not gene or not diplotype:
        raise GenotypeFileError(f"{path}:{line}: needs a numeric person_id, a gene and a diplotype")
    if len(gene) > MAX_TEXT or len(diplotype) > MAX_TEXT:
        raise GenotypeFileError(f"{path}:{line}: gene or diplotype longer than {MAX_TEXT} characters")
    return person_id(path, line, row.get("person_id", "")), gene.upper(), diplotype, row.get("result_date") or None


def extract_measurements(con: duckdb.DuckDBPyConnection, genes: set[str]) -> int:
    """Copy genotype results held in OMOP ``measurement`` into ``pgx_result``, replacing earlier copies.

    The caller owns the transaction, so the delete and the insert land together.
    """
    if not table_exists(con, "measurement"):
        return 0
    columns = {row[0] for row in con.execute("DESCRIBE measurement").fetchall()}
    if "value_source_value" not in columns:
        return 0
    coded = ["measurement_source_value = ?"] if "measurement_source_value" in columns else []
    if table_exists(con, "concept"):
        loinc = "SELECT concept_id FROM concept WHERE vocabulary_id = 'LOINC' AND concept_code = ?"
        coded.append(f"measurement_concept_id IN ({loinc})")
    if not coded:
        return 0
    con.execute("DELETE FROM pgx_result WHERE source = 'omop measurement'")
    con.execute(
        f"""
        INSERT INTO pgx_result
        SELECT person_id, upper(split_part(trim(value_source_value), ' ', 1)),
               trim(substr(trim(value_source_value), length(split_part(trim(value_source_value), ' ', 1)) + 1)),
               measurement_date, 'omop measurement'
        FROM measurement
        WHERE ({" OR ".join(coded)})
          AND upper(split_part(trim(value_source_value), ' ', 1)) IN (SELECT unnest(?::VARCHAR[]))
        """,
        [GENOTYPE_LOINC] * len(coded) + [sorted(genes)],
    )
    return int(scalar(con, "SELECT count(*) FROM pgx_result WHERE source = 'omop measurement'"))


def refresh_phenotypes(con: duckdb.DuckDBPyConnection, library: Library) -> None:
    """(Re)build ``person_phenotype``: each person's phenotype per gene, from their latest result.

    Distinct (gene, diplotype) pairs are phenotyped once in Python; the join back is SQL. Results of the
    latest date that give different phenotypes are ambiguous: the call is Indeterminate (``DISAGREEING``),
    whichever row comes first. ``latest_call_sql`` is the same choice, for the study run in place.
    """
    pairs = con.execute("SELECT DISTINCT gene, diplotype FROM pgx_result").fetchall()
    calls = []
    for gene, diplotype in pairs:
        definition = library.genes.get(gene)
        if definition is None:
            continue
        call = call_diplotype(definition, diplotype)
        calls.append((gene, diplotype, call.phenotype, call.activity_score, call.reason))
    con.register("lookup", pd.DataFrame(calls, columns=["gene", "diplotype", "phenotype", "activity_score", "reason"]))
    called = """SELECT r.person_id, r.gene, r.diplotype, l.phenotype, l.activity_score, l.reason, r.result_date
        FROM pgx_result r JOIN lookup l USING (gene, diplotype)"""
    con.execute(
        f"""
        CREATE OR REPLACE TABLE person_phenotype AS
        WITH latest AS ({latest_results_sql(f"({called})", "person_id, gene")}),
        chosen AS (
            SELECT *, min(phenotype) OVER w <> max(phenotype) OVER w AS disagree,
                   row_number() OVER (PARTITION BY person_id, gene ORDER BY diplotype) AS j
            FROM latest WINDOW w AS (PARTITION BY person_id, gene)
        )
        SELECT person_id, gene, diplotype,
               CASE WHEN disagree THEN 'Indeterminate' ELSE phenotype END AS phenotype,
               CASE WHEN disagree THEN NULL ELSE activity_score END AS activity_score,
               CASE WHEN disagree THEN '{DISAGREEING}' ELSE reason END AS reason, result_date
        FROM chosen WHERE j = 1
        """
    )


DISAGREEING = "results of the same date give different phenotypes"


def latest_results_sql(results: str, per: str) -> str:
    """The rows of ``results`` (a relation with ``result_date``) of the latest date for each ``per``: all of them when
    several share it, so that the caller sees whether they agree (SQL for DuckDB, PostgreSQL and Spark alike)."""
    return (
        f"SELECT * FROM (SELECT r.*, dense_rank() OVER (PARTITION BY {per} ORDER BY result_date DESC NULLS LAST) "
        f"AS latest_k FROM {results} r) x WHERE latest_k = 1"
    )
