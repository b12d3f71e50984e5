"""The study run where the site's OMOP lives: the same hospital in DuckDB, PostgreSQL and Spark gives the same cells,
estimates and report.

Real engines: the session's PostgreSQL server and one Spark session in local mode. The hospital
(100,000 persons, simulated once for the file) is exported with the commands' own code (``simulate
--export-postgres / --export-lake``); the stores that study it in place have their OMOP tables dropped,
so only the source can answer. Each engine runs one cycle, shared by the tests that look at it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest
from click.testing import CliRunner

from analytics.cycle import CycleResult, run_cycle
from analytics.data.omop import CDM_TABLES
from analytics.report.render import write_report
from analytics.settings import Paths
from analytics.sources import open_source
from analytics.sources.export import export_lake, export_postgres
from analytics.sources.url import parse_omop_url
from engine.rulebook.library import Library
from pgx_loop.cli import main as cli
from tests.learning_data import paths_in, query, simulated, truth
from tests.test_report import csv_tables

PERSONS = 100_000
ESTIMATE_COLUMNS = "rule, phenotype, contrast, n, events, reference_n, reference_events, person_years, hr, ci_low, " \
    "ci_high, log_hr, se, posterior_hr, posterior_low, posterior_high, p_harm, p_safe, cells"  # fmt: skip


@pytest.fixture(scope="module")
def hospital(tmp_path_factory, library: Library, postgres) -> dict:
    """One simulated hospital: a DuckDB store, the same OMOP in PostgreSQL and in a Parquet lake."""
    folder = tmp_path_factory.mktemp("hospital")
    database = folder / "hospital.duckdb"
    con = simulated(library, PERSONS, seed=11, effects=truth(), path=database)
    try:
        _add_problem_results(con)
        lake = folder / "lake"
        export_lake(con, lake)
        url = postgres.create_database("omop_in_place") + "?schema=cdm"
        export_postgres(con, url)
    finally:
        con.close()
    return {"database": database, "lake": lake, "postgres": url}


PROBLEMS = ("*1/*99", "banana", "*1/*1")  # an allele no definition knows, not a diplotype, another diplotype


def _add_problem_results(con: duckdb.DuckDBPyConnection) -> None:
    """For three tested persons, an earlier CYP2C19 result of each of ``PROBLEMS``, in OMOP and in the store
    alike: the report's result checks have something to find, and no latest result (so no cell) changes."""
    rows = con.execute(
        "SELECT person_id, result_date FROM pgx_result WHERE gene = 'CYP2C19' AND diplotype <> '*1/*1' "
        "ORDER BY person_id LIMIT 3"
    ).fetchall()
    ((concept,),) = con.execute(
        "SELECT DISTINCT measurement_concept_id FROM measurement WHERE measurement_source_value = '84413-4'"
    ).fetchall()
    for (person, day), diplotype in zip(rows, PROBLEMS, strict=True):
        earlier = day - timedelta(days=365)
        con.execute("INSERT INTO pgx_result VALUES (?, 'CYP2C19', ?, ?, 'simulator')", [person, diplotype, earlier])
        con.execute(
            "INSERT INTO measurement (person_id, measurement_concept_id, measurement_date, "
            "measurement_type_concept_id, measurement_source_value, value_source_value) "
            "VALUES (?, ?, ?, 32817, '84413-4', ?)",
            [person, concept, earlier, f"CYP2C19 {diplotype}"],
        )


def _store_without_omop(directory: Path, database: Path):
    paths = paths_in(directory, database)
    con = duckdb.connect(str(paths.database))
    for table in CDM_TABLES:
        con.execute(f'DROP TABLE IF EXISTS "{table}"')
    con.execute("DELETE FROM pgx_result")  # the store's copy of the results: the source's are what counts
    con.close()
    return paths


Cycle = tuple[Paths, CycleResult]


def _cycle(library: Library, directory: Path, database: Path, url: str | None) -> Cycle:
    """One cycle on a copy of the hospital's store: OMOP in it (``url`` None), or dropped and queried at ``url``."""
    if url is None:
        paths = paths_in(directory, database)
    else:
        paths = replace(_store_without_omop(directory, database), omop=url)
    return paths, run_cycle(library, paths)


@pytest.fixture(scope="module")
def in_store(hospital, library: Library, tmp_path_factory) -> Cycle:
    return _cycle(library, tmp_path_factory.mktemp("duckdb"), hospital["database"], None)


@pytest.fixture(scope="module")
def in_postgres(hospital, library: Library, tmp_path_factory) -> Cycle:
    return _cycle(library, tmp_path_factory.mktemp("postgres"), hospital["database"], hospital["postgres"])


@pytest.fixture(scope="module")
def in_spark(hospital, library: Library, spark, tmp_path_factory) -> Cycle:
    url = f"spark://local?lake={hospital['lake']}"
    return _cycle(library, tmp_path_factory.mktemp("spark"), hospital["database"], url)


def _estimates(paths) -> list[tuple]:
    return query(paths, f"SELECT {ESTIMATE_COLUMNS} FROM estimate ORDER BY rule, phenotype, contrast")


def _same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b) > 0
    for row_a, row_b in zip(a, b, strict=True):
        for x, y in zip(row_a, row_b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                assert x == pytest.approx(y, rel=1e-9, abs=1e-12), (row_a[:3], x, y)
            elif isinstance(x, str) and x.startswith("["):  # the cells, as JSON
                assert json.loads(x) == json.loads(y), row_a[:3]
            else:
                assert x == y, (row_a[:3], x, y)


def _counted(paths: Paths) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """The report's counts as the cycle stored them: cohort, opt-outs, coverage."""
    return (query(paths, "SELECT * EXCLUDE (run_id) FROM cohort_count ORDER BY ALL"),
            query(paths, "SELECT * EXCLUDE (run_id) FROM cohort_opt_out ORDER BY ALL"),
            query(paths, "SELECT * EXCLUDE (run_id) FROM coverage_count ORDER BY ALL"))  # fmt: skip


def test_duckdb_postgresql_and_spark_give_identical_cells_and_estimates(
    in_store: Cycle, in_postgres: Cycle, in_spark: Cycle, library: Library
):
    store, duck = in_store
    assert duck.rows_from_source is None  # the default path: OMOP in the store
    expected = _estimates(store)
    assert {row[0] for row in expected} == {rule.id for rule in library.rules if rule.learning}

    for name, (paths, result) in (("postgres", in_postgres), ("spark", in_spark)):
        _same(_estimates(paths), expected)
        assert result.opted_out_excluded == duck.opted_out_excluded > 0
        assert [e["tier_after"] for e in result.estimates] == [e["tier_after"] for e in duck.estimates]
        assert _counted(paths) == _counted(store), name
        checks = query(paths, "SELECT * EXCLUDE (run_id) FROM quality_count")
        assert checks == query(in_postgres[0], "SELECT * EXCLUDE (run_id) FROM quality_count") != [], name
        # What left the engine: the cells, the report's counts, a count per table and per study, the distinct
        # diplotypes, the products.
        cells = len({(row[0], json.dumps(cell, sort_keys=True)) for row in _estimates(paths)
                     for cell in json.loads(row[-1])})  # each group's cells repeat the reference's  # fmt: skip
        counts = sum(len(rows) for rows in _counted(paths))
        assert cells + counts < result.rows_from_source < cells + counts + 400, (name, result.rows_from_source)
        snapshot = json.loads(query(paths, "SELECT data_snapshot FROM analysis_run WHERE status = 'ok'")[0][0])
        assert snapshot["person"]["rows"] == PERSONS


COHORT_TABLES = ("-cohort-users", "-cohort-events", "-cohort-opt-outs", "-equity-users", "equity-result-coverage",
                 "quality-results", "quality-problems")  # fmt: skip


def test_the_report_shows_the_same_cohort_whichever_engine_ran(
    in_store: Cycle, in_postgres: Cycle, library: Library, tmp_path: Path
):
    """The report after an in-place cycle reads the counts the source computed: the same tables, cell for cell,
    as after a cycle on the store, with small cells hidden the same way."""
    store, _ = in_store
    paths, _ = in_postgres
    folders = {}
    for min_cell in (10, 0):
        expected = csv_tables(write_report(store.database, library, tmp_path / f"duckdb-{min_cell}", min_cell=min_cell))
        folders[min_cell] = write_report(paths.database, library, tmp_path / f"postgres-{min_cell}", min_cell=min_cell)
        found = csv_tables(folders[min_cell])
        shown = {name: table for name, table in expected.items() if name.endswith(COHORT_TABLES)}
        assert len(shown) == 4 * 2 + 3  # per rule: users, events, opt-outs, equity; coverage; results; checks
        for name, table in shown.items():
            assert found[name] == table, name
    clopidogrel = found["cyp2c19-clopidogrel-cohort-users"]  # every count shown (min_cell 0)
    ((n,),) = query(paths, "SELECT n FROM estimate WHERE rule = 'cyp2c19-clopidogrel' AND contrast = 'within-drug' "
                           "AND phenotype = 'Intermediate Metabolizer'")  # fmt: skip
    assert clopidogrel[0][:2] == ["Genotype group", "clopidogrel"]
    assert next(row[1] for row in clopidogrel if row[0] == "Intermediate Metabolizer") == str(n) != "0"
    assert "queried them where they live (--omop)" in (folders[0] / "report.html").read_text()
    # The result checks were made in PostgreSQL (the store's copy of the results is empty): the three problems.
    checks = dict(found["quality-problems"][1:5])
    assert [checks[name] for name in list(checks)[:3]] == ["1", "1", "3"], checks


def test_nothing_but_aggregates_leaves_postgresql(in_postgres: Cycle, hospital):
    """Every row fetched is counted: a cycle on 100,000 persons fetches about a thousand (cells, the report's
    counts, the product index); the session cannot write."""
    paths, result = in_postgres
    assert query(paths, "SELECT count(*) FROM estimate")[0][0] > 0
    assert 0 < result.rows_from_source < 2_000 < PERSONS
    assert result.products == 0  # the vocabulary was read in PostgreSQL (the simulator's has no products)
    source = open_source(hospital["postgres"])
    try:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            source.con.execute("CREATE TABLE cdm.written_by_the_loop (i integer)")
    finally:
        source.close()


def test_a_bad_url_an_unreachable_server_and_missing_tables_are_named_without_a_traceback(
    hospital, postgres, tmp_path: Path
):
    database = tmp_path / "loop.duckdb"

    def analyze(url: str):
        return CliRunner().invoke(cli, ["analyze", "--db", str(database), "--omop", url])

    cases = {
        "mysql://x@h/db": "expected postgresql://",
        "postgresql://u@127.0.0.1:1/db?schema=cdm": "cannot connect: connection failed",  # the first line, not the hint
        "postgresql://u@h:5432/db?schema=bad-name": "schema must be a plain name",
        hospital["postgres"].replace("schema=cdm", "schema=public"): "holds no tables",
        f"spark://local?lake={tmp_path / 'nowhere'}": "no such folder",
        "sc://host?lake=/x": "Spark Connect is sc://HOST:PORT",
    }
    for url, message in cases.items():
        done = analyze(url)
        assert done.exit_code == 1 and isinstance(done.exception, SystemExit), (url, done.output)
        assert message in done.output, (url, done.output)
        assert "pgx-loop-test" not in done.output  # the password is never shown
    # a schema lacking a required table
    postgres.psql("CREATE SCHEMA partial; CREATE TABLE partial.person (person_id bigint)", "omop_in_place")
    done = analyze(hospital["postgres"].replace("schema=cdm", "schema=partial"))
    assert done.exit_code == 1 and isinstance(done.exception, SystemExit), done.output
    assert "missing table observation_period" in done.output and "person.gender_concept_id is missing" in done.output


def test_the_product_index_built_in_postgresql_equals_duckdbs_on_eunomia(postgres, library: Library, tmp_path: Path):
    """Eunomia's real RxNorm vocabulary: the product query rendered for PostgreSQL finds the same products."""
    from analytics.data.omop import load_omop
    from analytics.data.products import build_index, covered_ingredients, index_from_rows, products_sql
    from analytics.data.store import LOOP_TABLES
    from tests.test_real_omop import EUNOMIA

    loader = duckdb.connect(str(tmp_path / "eunomia.duckdb"))
    loader.execute(LOOP_TABLES)
    load_omop(loader, EUNOMIA)
    loader.close()  # the loader's connection has lost file access for good; the export needs it
    con = duckdb.connect(str(tmp_path / "eunomia.duckdb"))
    try:
        expected = build_index(con, library)
        url = postgres.create_database("eunomia") + "?schema=cdm"
        export_postgres(con, url)
    finally:
        con.close()
    source = open_source(url)
    try:
        found = index_from_rows(source.query(products_sql(covered_ingredients(library))).itertuples(index=False))
        assert source.rows_out == len(found.products) + sum(len(p.ingredients) for p in found.products) - len(
            found.products
        )  # one row per product and ingredient: the vocabulary, no patient
    finally:
        source.close()
    assert expected.products and found.products == expected.products and found.brands == expected.brands


def test_the_omop_url_reads_the_same_postgresql_form_as_the_replay_store():
    """libpq parameters a site needs (sslmode) pass through; the password never reaches what is shown."""
    parsed = parse_omop_url("postgresql://analyst:s3cret@db.example:6432/cdm?schema=cdm54&sslmode=require")
    assert parsed.schema == "cdm54"
    assert "sslmode=require" in parsed.conninfo and "schema=" not in parsed.conninfo
    assert "s3cret" not in parsed.shown and "db.example:6432/cdm" in parsed.shown
    assert parse_omop_url("postgresql://analyst@db.example/cdm").schema == "public"
