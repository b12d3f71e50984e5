"""Importing OMOP extracts and lab genotype files into the analytics database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from analytics.cycle import run_cycle
from analytics.data.genotypes import GenotypeFileError, extract_measurements, load_genotype_file, refresh_phenotypes
from analytics.data.omop import OmopError, load_omop
from analytics.data.store import connect, transaction
from analytics.settings import Paths
from engine.rulebook.library import Library
from tests.learning_data import simulated, truth

CDM = ("person", "observation_period", "death", "measurement", "drug_exposure", "condition_occurrence", "concept",
       "concept_ancestor")  # fmt: skip


@pytest.fixture(scope="module")
def source(library: Library, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated site database, as the site's own OMOP CDM in DuckDB."""
    path = tmp_path_factory.mktemp("omop") / "site.duckdb"
    simulated(library, 20_000, seed=4, effects=truth(), path=path).close()
    return path


def export(source: Path, folder: Path, fmt: str, upper: bool = True) -> Path:
    """The CDM tables of ``source`` as a folder of files, named and headed in upper case like real extracts."""
    folder.mkdir(parents=True)
    con = duckdb.connect(str(source), read_only=True)
    for table in CDM:
        columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
        select = ", ".join(f'"{c}" AS "{c.upper() if upper else c}"' for c in columns)
        name = table.upper() if upper else table
        options = "(FORMAT csv, HEADER)" if fmt == "csv" else "(FORMAT parquet)"
        con.execute(f"COPY (SELECT {select} FROM {table}) TO '{folder / f'{name}.{fmt}'}' {options}")
    con.close()
    (folder / "SITE_NOTES.csv").write_text("note_id,text\n1,not a CDM table\n")
    (folder / "cdm_source.csv").write_text("cdm_source_name,cdm_version\nTest site,v5.4\n")
    return folder


def counts(database: Path) -> dict[str, int]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        return {table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] for table in CDM}
    finally:
        con.close()


def cli(database: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGX_LOOP_VAR_DIR": str(database.parent / "var")}
    return subprocess.run(
        [sys.executable, "-m", "pgx_loop.cli", *args, "--db", str(database)], capture_output=True, text=True, env=env
    )


def test_an_upper_case_csv_extract_loads_and_gives_the_same_estimates(source: Path, tmp_path: Path, library):
    folder = export(source, tmp_path / "extract", "csv")
    target = tmp_path / "imported.duckdb"
    done = cli(target, "load-omop", str(folder))
    assert done.returncode == 0, done.stderr
    assert '"skipped": [\n    "site_notes"\n  ]' in done.stdout  # extra tables are listed, not loaded
    assert counts(target) == counts(source)
    con = duckdb.connect(str(target), read_only=True)
    types = con.execute("SELECT typeof(drug_exposure_start_date), typeof(person_id) FROM drug_exposure LIMIT 1")
    assert types.fetchall() == [("DATE", "BIGINT")]
    con.close()

    imported = run_cycle(library, Paths(target, tmp_path / "events", tmp_path / "strengths.json"))
    reference_db = tmp_path / "reference.duckdb"
    reference_db.write_bytes(source.read_bytes())
    with connect(reference_db) as con:  # the opt-out list is the loop's own table, not part of the extract
        con.execute("DELETE FROM research_opt_out")
    reference = run_cycle(library, Paths(reference_db, tmp_path / "events", tmp_path / "reference.json"))

    def key(entry: dict) -> tuple[str, str]:
        return entry["rule"], entry["phenotype"]

    for mine, theirs in zip(sorted(imported.estimates, key=key), sorted(reference.estimates, key=key), strict=True):
        assert (mine["n"], mine["events"]) == (theirs["n"], theirs["events"])
        assert mine["hr"] == pytest.approx(theirs["hr"], rel=1e-9)


def test_reloading_is_idempotent_and_parquet_and_duckdb_sources_load_too(source: Path, tmp_path: Path):
    target = tmp_path / "site.duckdb"
    for origin in (export(source, tmp_path / "parquet", "parquet", upper=False), source, source):
        done = cli(target, "load-omop", str(origin))
        assert done.returncode == 0, done.stderr
        assert counts(target) == counts(source)
    con = duckdb.connect(str(target), read_only=True)
    # Genotypes in measurement (LOINC 84413-4) are recognised, once, however often the extract is loaded.
    results = con.execute("SELECT count(*), count(DISTINCT person_id || gene) FROM pgx_result").fetchall()[0]
    con.close()
    assert results[0] == results[1] > 0


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("OBSERVATION_PERIOD.csv", "missing table observation_period"),
        ("DRUG_EXPOSURE.csv:DRUG_CONCEPT_ID", "table drug_exposure lacks CDM v5.4 column(s) drug_concept_id"),
    ],
)
def test_a_missing_table_or_column_is_named_and_nothing_changes(source, tmp_path: Path, remove: str, message: str):
    target = tmp_path / "site.duckdb"
    assert cli(target, "load-omop", str(source)).returncode == 0
    before = counts(target)
    folder = export(source, tmp_path / "broken", "csv")
    file, _, column = remove.partition(":")
    if column:
        con = duckdb.connect()
        without = f"SELECT * EXCLUDE ({column}) FROM read_csv('{folder / file}')"
        con.execute(f"COPY ({without}) TO '{folder / 'x.csv'}' (HEADER)")
        (folder / "x.csv").replace(folder / file)
    else:
        (folder / file).unlink()
    done = cli(target, "load-omop", str(folder))
    assert done.returncode == 1
    assert message in done.stderr and str(folder) in done.stderr
    assert counts(target) == before


def test_genotypes_are_found_in_measurement_by_concept_or_by_source_value(tmp_path: Path, library: Library):
    con = connect(tmp_path / "m.duckdb")
    con.execute(
        "CREATE TABLE concept AS SELECT 3001 AS concept_id, 'LOINC' AS vocabulary_id, '84413-4' AS concept_code"
    )
    con.execute(
        """CREATE TABLE measurement AS SELECT * FROM (VALUES
           (1, 3001, DATE '2024-01-02', NULL, 'CYP2C19 *1/*2'),
           (2, 0, DATE '2024-01-03', '84413-4', ' cyp2c19  *2/*2 '),
           (3, 3001, DATE '2024-01-04', NULL, 'CYP2C19 *1/*1'),
           (3, 3001, DATE '2025-06-01', NULL, 'CYP2C19 *1/*17'),
           (4, 3001, DATE '2024-01-04', NULL, 'NOTAGENE *1/*1'),
           (5, 9999, DATE '2024-01-04', NULL, 'CYP2C19 *2/*2'))
           t(person_id, measurement_concept_id, measurement_date, measurement_source_value, value_source_value)"""
    )
    with transaction(con):
        assert extract_measurements(con, set(library.genes)) == 4
    refresh_phenotypes(con, library)
    phenotypes = dict(con.execute("SELECT person_id, phenotype FROM person_phenotype ORDER BY 1").fetchall())
    # The newest result counts (person 3 was re-tested); a row of another LOINC code (person 5) is not a genotype.
    assert phenotypes == {1: "Intermediate Metabolizer", 2: "Poor Metabolizer", 3: "Rapid Metabolizer"}


def test_results_of_the_latest_date_that_give_different_phenotypes_make_the_call_indeterminate(
    tmp_path: Path, library: Library
):
    """Which of two rows of one day comes first is the engine's choice, not the patient's: no guess is made."""
    con = connect(tmp_path / "m.duckdb")
    con.execute(
        """CREATE TABLE measurement AS SELECT * FROM (VALUES
           (6, DATE '2024-01-04', 'CYP2C19 *1/*1'), (6, DATE '2024-01-04', 'CYP2C19 *2/*2'),
           (7, DATE '2024-01-04', 'CYP2C19 *1/*2'), (7, DATE '2024-01-04', 'CYP2C19 *1/*3'),
           (8, DATE '2023-01-04', 'CYP2C19 *1/*1'), (8, DATE '2023-01-04', 'CYP2C19 *2/*2'),
           (8, DATE '2024-01-04', 'CYP2C19 *1/*2'))
           t(person_id, measurement_date, value_source_value)"""
    )
    con.execute("ALTER TABLE measurement ADD COLUMN measurement_source_value VARCHAR DEFAULT '84413-4'")
    con.execute("ALTER TABLE measurement ADD COLUMN measurement_concept_id INTEGER DEFAULT 0")
    with transaction(con):
        extract_measurements(con, set(library.genes))
    refresh_phenotypes(con, library)
    calls = {row[0]: row[1:] for row in con.execute(
        "SELECT person_id, phenotype, activity_score, reason FROM person_phenotype ORDER BY 1").fetchall()}  # fmt: skip
    assert calls[6] == ("Indeterminate", None, "results of the same date give different phenotypes")
    assert calls[7][0] == "Intermediate Metabolizer"  # two diplotypes, one phenotype: the same call
    assert calls[8][0] == "Intermediate Metabolizer"  # a later result settles an earlier disagreement


def test_a_lab_genotype_file_loads_and_a_bad_row_is_named(tmp_path: Path, library: Library):
    database = tmp_path / "g.duckdb"
    good = tmp_path / "lab.csv"
    good.write_text("Person_ID,Gene,Diplotype,Result_Date\n10,CYP2C19,*2/*2,2024-02-01\n11,cyp2c19,*1/*1,\n")
    done = cli(database, "load-genotypes", str(good))
    assert done.returncode == 0, done.stderr
    assert cli(database, "load-genotypes", str(good)).returncode == 0  # again: replaced, not doubled
    con = connect(database)
    assert con.execute("SELECT person_id, gene, diplotype FROM pgx_result ORDER BY 1").fetchall() == [
        (10, "CYP2C19", "*2/*2"),
        (11, "CYP2C19", "*1/*1"),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("person_id,gene,diplotype\n12,CYP2C19,*1/*2\nMRN0013,CYP2C19,*1/*2\n")
    with pytest.raises(GenotypeFileError, match=r"bad\.csv:3: person_id must be a whole number"), transaction(con):
        load_genotype_file(con, bad)
    assert con.execute("SELECT count(*) FROM pgx_result").fetchall() == [(2,)]
    con.close()


def test_a_file_that_is_neither_database_nor_folder_is_refused(tmp_path: Path):
    stray = tmp_path / "notes.txt"
    stray.write_text("hello")
    con = connect(tmp_path / "x.duckdb")
    with pytest.raises(OmopError, match="not a DuckDB database file, nor a folder of CSV/Parquet files"):
        load_omop(con, stray)
    con.close()


def test_the_opt_out_list_is_replaced_by_each_load(tmp_path: Path):
    database = tmp_path / "o.duckdb"
    first = tmp_path / "opt-outs.csv"
    first.write_text("person_id,since\n1,2024-01-01\n2,\n3,2025-02-03\n")
    assert cli(database, "load-opt-outs", str(first)).returncode == 0
    second = tmp_path / "opt-outs-later.csv"
    second.write_text("PERSON_ID\n3\n")  # persons 1 and 2 withdrew their opt-out
    assert cli(database, "load-opt-outs", str(second)).returncode == 0
    con = duckdb.connect(str(database), read_only=True)
    assert con.execute("SELECT person_id, since FROM research_opt_out").fetchall() == [(3, None)]
    con.close()
    bad = tmp_path / "bad.csv"
    bad.write_text("person_id\n4\nMRN5\n")
    done = cli(database, "load-opt-outs", str(bad))
    assert done.returncode == 1 and "bad.csv:3: person_id must be a whole number" in done.stderr
