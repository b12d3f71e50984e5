"""Hostile and malformed OMOP extracts: refused with a message, nothing run, nothing changed.

Each attack here was seen working (issue 10): a CSV header cell that breaks out of a quoted
identifier and writes a file with ``COPY ... TO``, and a DuckDB extract whose ``person`` is a view
reading the site's pseudonym key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from engine.rulebook.library import Library
from tests.learning_data import simulated, truth

CDM = ("person", "observation_period", "death", "measurement", "drug_exposure", "condition_occurrence")


@pytest.fixture(scope="module")
def site(library: Library, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated site, as an OMOP CDM DuckDB file."""
    path = tmp_path_factory.mktemp("site") / "site.duckdb"
    simulated(library, 3_000, seed=7, effects=truth(), path=path).close()
    return path


def cli(database: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGX_LOOP_VAR_DIR": str(database.parent / "var")}
    return subprocess.run(
        [sys.executable, "-m", "pgx_loop.cli", *args, "--db", str(database)], capture_output=True, text=True, env=env
    )


def fingerprint(database: Path) -> dict[str, tuple[int, int]]:
    """Row count and content hash of every table in the store: equal fingerprints, unchanged store."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        tables = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: con.execute(f'SELECT count(*), bit_xor(hash(x)) FROM "{t}" x').fetchall()[0] for t in tables}
    finally:
        con.close()


def csv_extract(site: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    con = duckdb.connect(str(site), read_only=True)
    for table in CDM:
        con.execute(f"COPY {table} TO '{folder / f'{table}.csv'}' (FORMAT csv, HEADER)")
    con.close()
    return folder


@pytest.fixture
def loaded(site: Path, tmp_path: Path) -> Path:
    """A store with the site loaded once: the state a hostile extract must leave untouched."""
    store = tmp_path / "store" / "loop.duckdb"
    store.parent.mkdir()
    done = cli(store, "load-omop", str(site))
    assert done.returncode == 0, done.stderr
    return store


def test_a_csv_header_that_breaks_out_of_its_identifier_runs_nothing(site: Path, loaded: Path, tmp_path: Path):
    planted = tmp_path / "planted.csv"
    folder = csv_extract(site, tmp_path / "extract")
    person = folder / "person.csv"
    rows = person.read_text().splitlines()
    # The header cell closes the quoted identifier, finishes the statement, writes a file, and
    # comments out the rest of the line: DuckDB ran all of it before the fix.
    cell = f"x\" FROM (SELECT 1 AS x); COPY (SELECT 'owned' AS w) TO '{planted}'; --"
    header = '"' + cell.replace('"', '""') + '",' + rows[0]
    person.write_text("\n".join([header, *(f"0,{row}" for row in rows[1:])]) + "\n")
    before = fingerprint(loaded)

    done = cli(loaded, "load-omop", str(folder))

    assert done.returncode == 1
    assert f"{person}: table person: column 'x\" FROM (SELECT 1 AS x); COPY (SELECT" in done.stderr
    assert "is not a plain name" in done.stderr and "Traceback" not in done.stderr
    assert not planted.exists()
    assert fingerprint(loaded) == before


def test_a_duckdb_extract_whose_person_is_a_view_is_refused(site: Path, loaded: Path, tmp_path: Path):
    secret = tmp_path / "pgx-loop.key"
    secret.write_text("the-site-pseudonym-key-0123456789")
    extract = tmp_path / "extract.duckdb"
    shutil.copy(site, extract)
    con = duckdb.connect(str(extract))
    con.execute("ALTER TABLE person RENAME TO person_rows")
    con.execute(
        f"""CREATE VIEW person AS SELECT p.* EXCLUDE (person_source_value), k.content AS person_source_value
            FROM person_rows p, read_text('{secret}') k"""
    )
    con.close()
    before = fingerprint(loaded)

    done = cli(loaded, "load-omop", str(extract))

    assert done.returncode == 1, done.stdout
    assert f"{extract}: table person is a view, not a base table; only base tables are copied" in done.stderr
    assert fingerprint(loaded) == before
    con = duckdb.connect(str(loaded), read_only=True)
    assert con.execute("SELECT count(*) FROM person WHERE person_source_value LIKE '%pseudonym-key%'").fetchall() == [
        (0,)
    ]
    con.close()


def test_after_reading_the_sources_the_connection_can_touch_no_file(site: Path, tmp_path: Path):
    """Defence in depth: even SQL the loader did not mean to run could not read or write a file."""
    from analytics.data.omop import load_omop
    from analytics.data.store import connect

    secret = tmp_path / "pgx-loop.key"
    secret.write_text("key")
    con = connect(tmp_path / "loop.duckdb")
    load_omop(con, site)
    for statement in (
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        f"SELECT * FROM read_text('{secret}')",
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
    ):
        with pytest.raises(duckdb.Error):
            con.execute(statement)
    con.close()
    assert not (tmp_path / "out.csv").exists()


def test_an_optional_table_with_foreign_columns_is_left_out_with_a_warning(site: Path, tmp_path: Path):
    """Eunomia's death table has columns column0..column6: analyze died on it with a Binder Error."""
    folder = csv_extract(site, tmp_path / "extract")
    (folder / "death.csv").write_text("column0,column1\n1,2020-01-01\n")
    store = tmp_path / "loop.duckdb"

    done = cli(store, "load-omop", str(folder))

    assert done.returncode == 0, done.stderr
    assert (
        f"{folder / 'death.csv'}: table death lacks CDM v5.4 column(s) person_id, death_date; left out" in done.stderr
    )
    assert '"death": "table death lacks CDM v5.4 column(s) person_id, death_date"' in done.stdout
    con = duckdb.connect(str(store), read_only=True)
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'death'").fetchall()[0][0]
    con.close()
    analysed = cli(store, "analyze")
    assert analysed.returncode == 0, analysed.stderr


@pytest.mark.parametrize(
    ("table", "column", "value", "message"),
    [
        (
            "drug_exposure",
            "drug_exposure_start_date",
            "'last tuesday'",
            "table drug_exposure: drug_exposure_start_date has",
        ),
        (
            "person",
            "year_of_birth",
            "'1950.5'",
            "table person: year_of_birth has 1 value(s) that are not whole numbers",
        ),
    ],
)
def test_values_that_are_not_of_their_cdm_type_are_counted_and_refused(
    site: Path, loaded: Path, tmp_path: Path, table: str, column: str, value: str, message: str
):
    folder = csv_extract(site, tmp_path / "extract")
    con = duckdb.connect()
    path = folder / f"{table}.csv"
    con.execute(
        f"""COPY (SELECT * REPLACE (CASE WHEN row_number() OVER () = 1 THEN {value} ELSE CAST({column} AS VARCHAR)
                  END AS {column}) FROM read_csv('{path}', all_varchar = true)) TO '{tmp_path / "x.csv"}' (HEADER)"""
    )
    con.close()
    shutil.move(tmp_path / "x.csv", path)
    before = fingerprint(loaded)

    done = cli(loaded, "load-omop", str(folder))

    assert done.returncode == 1
    assert f"{path}: {message}" in done.stderr and "Traceback" not in done.stderr
    assert "last tuesday" not in done.stderr  # values may be patient data: counted, never shown
    assert fingerprint(loaded) == before


def test_analyze_on_a_store_with_an_unusable_death_table_says_what_to_do(site: Path, tmp_path: Path):
    """A store loaded by an earlier version: a message naming the table, never a DuckDB traceback."""
    store = tmp_path / "loop.duckdb"
    shutil.copy(site, store)
    con = duckdb.connect(str(store))
    con.execute("CREATE OR REPLACE TABLE death AS SELECT 1 AS column0, '2020-01-01' AS column1")
    con.close()

    done = cli(store, "analyze")

    assert done.returncode == 1
    assert "death.person_id is missing" in done.stderr and "pgx-loop load-omop" in done.stderr
    assert "Traceback" not in done.stderr


LAB_FILES = {
    "load-genotypes": ("person_id,gene,diplotype\n1,CYP2C19,*1/*2\n", "{id},CYP2C19,*2/*2\n"),
    "load-opt-outs": ("person_id,since\n1,2024-01-01\n", "{id},\n"),
}
BAD_LINES = {
    "not UTF-8": (b"7\xff,CYP2C19,*1/*1\n", "not UTF-8 text"),
    "beyond BIGINT": (b"9223372036854775808,CYP2C19,*1/*1\n", "person_id must be a whole number from 0 to"),
    "negative": (b"-5,CYP2C19,*1/*1\n", "person_id must be a whole number from 0 to"),
    "superscript digit": ("\u00b2,CYP2C19,*1/*1\n".encode(), "person_id must be a whole number from 0 to"),
    "not a number": (b"MRN0042,CYP2C19,*1/*1\n", "person_id must be a whole number from 0 to"),
    "field over the csv module's limit": (b"9" * 200_000 + b",CYP2C19,*1/*1\n", "not readable as CSV"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
@pytest.mark.parametrize("command", sorted(LAB_FILES))
def test_a_bad_line_in_a_lab_file_is_named_and_changes_nothing(tmp_path: Path, command: str, case: str):
    store = tmp_path / "loop.duckdb"
    header_and_first, later = LAB_FILES[command]
    good = tmp_path / "good.csv"
    good.write_text(header_and_first + later.format(id=2))
    assert cli(store, command, str(good)).returncode == 0
    before = fingerprint(store)
    line, message = BAD_LINES[case]
    bad = tmp_path / "good.csv"  # the same name: a load replaces the rows it loaded before
    if command == "load-opt-outs":
        line = line.split(b",")[0] + b",\n"
    bad.write_bytes(header_and_first.encode() + later.format(id=3).encode() + line)

    done = cli(store, command, str(bad))

    assert done.returncode == 1, done.stdout
    assert f"{bad}:4: {message}" in done.stderr and "Traceback" not in done.stderr
    assert fingerprint(store) == before
