"""The OMOP vocabulary in a schema of its own, as OHDSI sites keep it (``@vocabularyDatabaseSchema``).

Real PostgreSQL, OHDSI's official DDL (tests/test_real_omop_postgres.py): the same small hospital once
with everything in one schema, once split as a site runs the full DDL twice: schema ``cdm`` holds the
clinical rows and an empty ``concept``/``concept_ancestor``, schema ``vocab`` the vocabulary rows and
empty clinical tables. ``?schema=cdm&vocabulary=VOCAB`` must give the one-schema cycle's cohort, cells,
estimates and product index; each table read from the schema it was named for.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from analytics.cycle import CycleResult, run_cycle
from analytics.settings import Paths
from analytics.sources import SourceError, open_source
from engine.rulebook.library import Library
from tests.learning_data import query
from tests.postgres_server import PASSWORD
from tests.test_omop_in_place import ESTIMATE_COLUMNS
from tests.test_real_omop_postgres import create_cdm, hospital_csv

VOCABULARY = ("concept", "concept_ancestor")


@pytest.fixture(scope="module")
def site(postgres) -> str:
    """One database: schema ``whole`` (everything), and the same rows split between ``cdm`` and ``vocab``."""
    csv = hospital_csv()
    url = postgres.create_database("vocabulary_apart")
    create_cdm(url, "whole", csv)
    create_cdm(url, "cdm", {table: text for table, text in csv.items() if table not in VOCABULARY})
    create_cdm(url, "vocab", {table: text for table, text in csv.items() if table in VOCABULARY})
    return url


def _cycle(library: Library, directory: Path, url: str) -> tuple[Paths, CycleResult]:
    """One cycle of a fresh store on the OMOP at ``url``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = Paths(directory / "loop.duckdb", directory / "events", directory / "strengths.json", omop=url)
    return paths, run_cycle(library, paths)


def _outcome(paths: Paths) -> dict:
    """What the cycle stored and published: counts, estimates with their cells, the product index."""
    found = {table: query(paths, f"SELECT * EXCLUDE (run_id) FROM {table} ORDER BY ALL")
             for table in ("cohort_count", "cohort_opt_out", "coverage_count", "quality_count")}  # fmt: skip
    found["estimate"] = query(paths, f"SELECT {ESTIMATE_COLUMNS} FROM estimate ORDER BY rule, phenotype, contrast")
    products = json.loads(paths.products.read_text()) if paths.products.exists() else {}
    found["products"] = (products.get("products"), products.get("brands"))
    return found


@pytest.fixture(scope="module")
def in_one_schema(site, library: Library, tmp_path_factory) -> dict:
    paths, result = _cycle(library, tmp_path_factory.mktemp("whole"), site + "?schema=whole")
    assert result.products
    return _outcome(paths)


def test_a_vocabulary_schema_gives_the_one_schema_cohort_cells_estimates_and_products(
    site, in_one_schema, library: Library, tmp_path: Path
):
    """The vocabulary named in upper case, as a site's script spells ``@vocabularyDatabaseSchema``: the ``vocab``
    OHDSI's DDL created. The clopidogrel tablet is found only through ``concept``: 7 genotyped new users."""
    paths, result = _cycle(library, tmp_path, site + "?schema=cdm&vocabulary=VOCAB")

    split = _outcome(paths)
    users = [row for row in split["cohort_count"] if row[0] == "cyp2c19-clopidogrel" and row[2] == 1]
    assert sum(row[4] for row in users) == 7
    assert split["estimate"] and split == in_one_schema
    products = split["products"][0]
    assert result.products == len(products) > 0  # the tablet, under clopidogrel in vocab.concept_ancestor
    assert {product["rxcui"] for product in products} == {"309362"}
    assert json.loads(paths.status.read_text())["status"] == "ok"


def test_without_the_vocabulary_schema_the_cdm_schema_s_empty_vocabulary_is_read(
    site, in_one_schema, library: Library, tmp_path: Path
):
    """What a split site got before ``vocabulary=``: the empty ``cdm.concept`` finds no tablet and no product."""
    paths, result = _cycle(library, tmp_path, site + "?schema=cdm")

    assert not result.products
    assert all(row[4] == 0 for row in _outcome(paths)["cohort_count"] if row[0] == "cyp2c19-clopidogrel" and row[2])


def test_every_vocabulary_query_names_the_vocabulary_schema(site):
    """The source sees vocab's concept (5 rows), not cdm's (none), and cdm's person, not vocab's (empty)."""
    source = open_source(site + "?schema=cdm&vocabulary=vocab")
    try:
        assert source.vocabulary == "vocabulary schema vocab"
        counts = source.query("SELECT (SELECT count(*) FROM concept) AS concepts, (SELECT count(*) FROM person) AS n")
        assert counts.values.tolist() == [[5, 12]]
        columns = source.columns()
        assert set(VOCABULARY) <= set(columns) and "person" in columns
    finally:
        source.close()


def test_a_missing_or_incomplete_vocabulary_schema_is_named(site, library: Library, tmp_path: Path):
    """Named and not there, or without concept_ancestor: the cycle stops before any study, naming the schema
    (as a missing CDM table is named), never the password; a study without the vocabulary would count nobody."""
    with psycopg.connect(site, autocommit=True) as con:
        con.execute("CREATE SCHEMA thin")
        con.execute("CREATE TABLE thin.concept (LIKE vocab.concept)")
    cases = {
        "?schema=cdm&vocabulary=nowhere": "vocabulary schema nowhere does not exist",
        "?schema=cdm&vocabulary=Thin": "missing table concept_ancestor in vocabulary schema thin",
    }
    for suffix, message in cases.items():
        with pytest.raises(SourceError) as raised:
            _cycle(library, tmp_path / suffix.rsplit("=", 1)[1], site + suffix)
        assert message in str(raised.value) and PASSWORD not in str(raised.value), str(raised.value)
        assert "query failed" not in str(raised.value)


def test_the_exporter_puts_the_vocabulary_where_the_url_says(site, tmp_path: Path):
    """``simulate --export-postgres ...?schema=S&vocabulary=V`` writes a split site to try the loop on."""
    import duckdb

    from analytics.data.omop import load_omop
    from analytics.data.store import LOOP_TABLES
    from analytics.sources.export import export_postgres

    folder = tmp_path / "csv"
    folder.mkdir()
    for table, text in hospital_csv().items():
        (folder / f"{table}.csv").write_text(text)
    loader = duckdb.connect(str(tmp_path / "store.duckdb"))
    loader.execute(LOOP_TABLES)
    load_omop(loader, folder)
    loader.close()  # the loader has lost file access for good; the export needs it
    con = duckdb.connect(str(tmp_path / "store.duckdb"))
    try:
        export_postgres(con, site + "?schema=exported&vocabulary=exported_vocab")
    finally:
        con.close()
    with psycopg.connect(site) as pg:
        where = pg.execute("SELECT table_schema, table_name FROM information_schema.tables "
                           "WHERE table_schema LIKE 'exported%' ORDER BY 1, 2").fetchall()  # fmt: skip
    assert {table for schema, table in where if schema == "exported_vocab"} == set(VOCABULARY)
    assert {table for schema, table in where if schema == "exported"} == {
        "person", "observation_period", "drug_exposure", "condition_occurrence", "measurement", "death"}  # fmt: skip


def test_the_url_names_the_vocabulary_schema_and_spark_says_it_cannot():
    from analytics.sources.url import OmopUrlError, parse_omop_url

    parsed = parse_omop_url("postgresql://analyst:s3cret@db.example/omop?schema=cdm&vocabulary=Vocab&sslmode=require")
    assert (parsed.schema, parsed.vocabulary) == ("cdm", "Vocab")
    assert "vocabulary" not in parsed.conninfo and "sslmode=require" in parsed.conninfo  # libpq would refuse it
    assert "vocabulary Vocab" in parsed.shown and "s3cret" not in parsed.shown
    assert parse_omop_url("postgresql://analyst@db.example/omop?schema=cdm").vocabulary is None
    for url, message in {
        "postgresql://a@h/db?schema=cdm&vocabulary=v-1": "vocabulary must be a schema's plain name",
        "postgresql://a@h/db?vocabulary=a&vocabulary=b": "vocabulary is given more than once",
        "sc://h:15002?database=cdm&vocabulary_database=vocab": "supported on PostgreSQL only",
        "spark://local?lake=/x&vocabulary_lake=/y": "supported on PostgreSQL only",
    }.items():
        with pytest.raises(OmopUrlError, match=message):
            parse_omop_url(url)
