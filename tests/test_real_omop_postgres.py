"""The OMOP CDM in PostgreSQL as OHDSI's own DDL creates it, not as the project's exporter does.

The tables below are copied from OHDSI's official DDL, ``inst/ddl/5.4/postgresql/OMOPCDM_postgresql_5.4_ddl.sql``
in github.com/OHDSI/CommonDataModel (commit f853f6e39c61, 2026-07-22), with ``@cdmDatabaseSchema`` replaced
as a site's scripts replace it: unquoted, so PostgreSQL folds the name to lower case. Ids are ``integer``,
not ``bigint``; values ``NUMERIC``; source values ``varchar(50)``. The data is a small hospital written
as the CSV files OHDSI ships its sample CDMs in (Synthea27Nj: upper-case file names, a header, empty is
NULL): loaded into PostgreSQL with COPY, and into the store with ``load-omop``; the two cycles must count
the same cohort.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import psycopg
import pytest
from click.testing import CliRunner

from pgx_loop.cli import main as cli

DDL = """
CREATE TABLE @cdmDatabaseSchema.person (
			person_id integer NOT NULL,
			gender_concept_id integer NOT NULL,
			year_of_birth integer NOT NULL,
			month_of_birth integer NULL,
			day_of_birth integer NULL,
			birth_datetime TIMESTAMP NULL,
			race_concept_id integer NOT NULL,
			ethnicity_concept_id integer NOT NULL,
			location_id integer NULL,
			provider_id integer NULL,
			care_site_id integer NULL,
			person_source_value varchar(50) NULL,
			gender_source_value varchar(50) NULL,
			gender_source_concept_id integer NULL,
			race_source_value varchar(50) NULL,
			race_source_concept_id integer NULL,
			ethnicity_source_value varchar(50) NULL,
			ethnicity_source_concept_id integer NULL );
CREATE TABLE @cdmDatabaseSchema.observation_period (
			observation_period_id integer NOT NULL,
			person_id integer NOT NULL,
			observation_period_start_date date NOT NULL,
			observation_period_end_date date NOT NULL,
			period_type_concept_id integer NOT NULL );
CREATE TABLE @cdmDatabaseSchema.drug_exposure (
			drug_exposure_id integer NOT NULL,
			person_id integer NOT NULL,
			drug_concept_id integer NOT NULL,
			drug_exposure_start_date date NOT NULL,
			drug_exposure_start_datetime TIMESTAMP NULL,
			drug_exposure_end_date date NOT NULL,
			drug_exposure_end_datetime TIMESTAMP NULL,
			verbatim_end_date date NULL,
			drug_type_concept_id integer NOT NULL,
			stop_reason varchar(20) NULL,
			refills integer NULL,
			quantity NUMERIC NULL,
			days_supply integer NULL,
			sig TEXT NULL,
			route_concept_id integer NULL,
			lot_number varchar(50) NULL,
			provider_id integer NULL,
			visit_occurrence_id integer NULL,
			visit_detail_id integer NULL,
			drug_source_value varchar(50) NULL,
			drug_source_concept_id integer NULL,
			route_source_value varchar(50) NULL,
			dose_unit_source_value varchar(50) NULL );
CREATE TABLE @cdmDatabaseSchema.condition_occurrence (
			condition_occurrence_id integer NOT NULL,
			person_id integer NOT NULL,
			condition_concept_id integer NOT NULL,
			condition_start_date date NOT NULL,
			condition_start_datetime TIMESTAMP NULL,
			condition_end_date date NULL,
			condition_end_datetime TIMESTAMP NULL,
			condition_type_concept_id integer NOT NULL,
			condition_status_concept_id integer NULL,
			stop_reason varchar(20) NULL,
			provider_id integer NULL,
			visit_occurrence_id integer NULL,
			visit_detail_id integer NULL,
			condition_source_value varchar(50) NULL,
			condition_source_concept_id integer NULL,
			condition_status_source_value varchar(50) NULL );
CREATE TABLE @cdmDatabaseSchema.measurement (
			measurement_id integer NOT NULL,
			person_id integer NOT NULL,
			measurement_concept_id integer NOT NULL,
			measurement_date date NOT NULL,
			measurement_datetime TIMESTAMP NULL,
			measurement_time varchar(10) NULL,
			measurement_type_concept_id integer NOT NULL,
			operator_concept_id integer NULL,
			value_as_number NUMERIC NULL,
			value_as_concept_id integer NULL,
			unit_concept_id integer NULL,
			range_low NUMERIC NULL,
			range_high NUMERIC NULL,
			provider_id integer NULL,
			visit_occurrence_id integer NULL,
			visit_detail_id integer NULL,
			measurement_source_value varchar(50) NULL,
			measurement_source_concept_id integer NULL,
			unit_source_value varchar(50) NULL,
			unit_source_concept_id integer NULL,
			value_source_value varchar(50) NULL,
			measurement_event_id integer NULL,
			meas_event_field_concept_id integer NULL );
CREATE TABLE @cdmDatabaseSchema.death (
			person_id integer NOT NULL,
			death_date date NOT NULL,
			death_datetime TIMESTAMP NULL,
			death_type_concept_id integer NULL,
			cause_concept_id integer NULL,
			cause_source_value varchar(50) NULL,
			cause_source_concept_id integer NULL );
CREATE TABLE @cdmDatabaseSchema.concept (
			concept_id integer NOT NULL,
			concept_name varchar(255) NOT NULL,
			domain_id varchar(20) NOT NULL,
			vocabulary_id varchar(20) NOT NULL,
			concept_class_id varchar(20) NOT NULL,
			standard_concept varchar(1) NULL,
			concept_code varchar(50) NOT NULL,
			valid_start_date date NOT NULL,
			valid_end_date date NOT NULL,
			invalid_reason varchar(1) NULL );
CREATE TABLE @cdmDatabaseSchema.concept_ancestor (
			ancestor_concept_id integer NOT NULL,
			descendant_concept_id integer NOT NULL,
			min_levels_of_separation integer NOT NULL,
			max_levels_of_separation integer NOT NULL );
"""
TABLES = ("person", "observation_period", "drug_exposure", "condition_occurrence", "measurement", "death", "concept",
          "concept_ancestor")  # fmt: skip

TABLET, INGREDIENT, PRASUGREL = 19075601, 1322184, 40163718  # clopidogrel 75 MG Oral Tablet (309362), clopidogrel
MI = 4329847  # Myocardial infarction (SNOMED 22298006), as Synthea27Nj's vocabulary has it
GENOTYPE_CONCEPT = 2000000001  # a site's own concept for LOINC 84413-4 (OMOP keeps ids above 2e9 for local ones)
CYP2C19 = {1: "*1/*1", 2: "*1/*1", 3: "*1/*1", 4: "*1/*2", 5: "*1/*2", 6: "*2/*2", 7: "*2/*2", 9: "*1/*1",
           10: "*2/*2", 11: "*1/*2"}  # fmt: skip


def _csv(header: str, rows: list[tuple]) -> str:
    return header + "\n" + "".join(",".join("" if v is None else str(v) for v in row) + "\n" for row in rows)


def hospital_csv() -> dict[str, str]:
    """Twelve persons: eight start clopidogrel (the tablet; the rule names the ingredient and the tablet), three
    prasugrel; CYP2C19 results by LOINC source value or by the site's concept, some events and a death."""
    persons = range(1, 13)
    race = {3: 8516, 9: 8516, 12: 0}  # Black or African American; no race recorded
    person = [(p, 8507 if p % 2 else 8532, 1950 + p, None, None, None, race.get(p, 8527),
               38003563 if p == 5 else 38003564, None, None, None, f"src-{p}", None, None, None, None, None, None)
              for p in persons]  # fmt: skip
    period = [(p, p, "2010-01-01", "2022-12-31", 32817) for p in persons]
    drugs = [(p, p, TABLET, "2020-03-01", "2020-03-01 00:00:00", "2020-03-31", None, None, 32869, None, 0, 30.0, 30,
              None, 0, None, None, None, None, "309362", None, None, None) for p in range(1, 9)]  # fmt: skip
    drugs += [(100 + p, p, PRASUGREL, "2020-05-01", None, "2020-05-31", None, None, 32869, None, 0, 30.0, 30, None, 0,
               None, None, None, None, "613391", None, None, None) for p in (9, 10, 11)]  # fmt: skip
    conditions = [(k, p, MI, day, None, None, None, 32020, 0, None, None, None, None, "22298006", MI, None)
                  for k, (p, day) in enumerate([(6, "2020-09-01"), (4, "2021-01-10"), (10, "2020-12-01"),
                                                (2, "2019-01-01")], start=1)]  # fmt: skip
    # a weight (a NUMERIC value), then the CYP2C19 results
    measurements = [(1, 1, 3025315, "2020-01-01", None, None, 32817, None, 48.1, 0, 9529, None, None, None, None,
                     None, "29463-7", 3025315, "kg", None, "48.1", None, None)]  # fmt: skip
    for p, diplotype in CYP2C19.items():
        by_source = p % 2 == 1  # coded by measurement_source_value, or by the site's concept for LOINC 84413-4
        text = f"cyp2c19  {diplotype} " if p == 3 else f"CYP2C19 {diplotype}"
        measurements.append((10 + p, p, 0 if by_source else GENOTYPE_CONCEPT, "2019-06-01", None, None, 32817, None,
                             None, 0, 0, None, None, None, None, None, "84413-4" if by_source else "PGX-CYP2C19",
                             None, None, None, text, None, None))  # fmt: skip
    # Person 8's two results of one day disagree (Normal and Poor Metabolizer): neither is the latest
    measurements += [(30, 8, GENOTYPE_CONCEPT, "2019-06-01", None, None, 32817, None, None, 0, 0, None, None, None,
                      None, None, "PGX-CYP2C19", None, None, None, "CYP2C19 *1/*1", None, None),
                     (31, 8, 0, "2019-06-01", None, None, 32817, None, None, 0, 0, None, None, None, None, None,
                      "84413-4", None, None, None, "CYP2C19 *2/*2", None, None)]  # fmt: skip
    concepts = [
        (TABLET, "clopidogrel 75 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug", "S", "309362"),
        (INGREDIENT, "clopidogrel", "Drug", "RxNorm", "Ingredient", "S", "32968"),
        (PRASUGREL, "prasugrel", "Drug", "RxNorm", "Ingredient", "S", "613391"),
        (MI, "Myocardial infarction", "Condition", "SNOMED", "Clinical Finding", "S", "22298006"),
        (GENOTYPE_CONCEPT, "Genotype display name", "Measurement", "LOINC", "Lab Test", "S", "84413-4"),
    ]
    concepts = [(*c, "1970-01-01", "2099-12-31", None) for c in concepts]
    ancestors = [(INGREDIENT, INGREDIENT, 0, 0), (INGREDIENT, TABLET, 2, 2), (PRASUGREL, PRASUGREL, 0, 0)]
    header = {table: ",".join(line.strip().split()[0] for line in block.splitlines()[1:])
              for table, block in _ddl_blocks().items()}  # fmt: skip
    rows = {"person": person, "observation_period": period, "drug_exposure": drugs, "condition_occurrence": conditions,
            "measurement": measurements, "death": [(7, "2021-06-30", None, 32817, 0, None, None)],
            "concept": concepts, "concept_ancestor": ancestors}  # fmt: skip
    return {table: _csv(header[table], rows[table]) for table in TABLES}


def _ddl_blocks() -> dict[str, str]:
    blocks = {}
    for block in DDL.strip().split(";")[:-1]:
        first, *rest = block.strip().splitlines()
        blocks[first.split(".")[1].split()[0]] = "\n".join([first, *rest])
    return blocks


def create_cdm(url: str, schema: str, csv: dict[str, str], quote: bool = False) -> None:
    """The official DDL with ``@cdmDatabaseSchema`` replaced by ``schema`` (quoted, or as OHDSI's scripts do: not),
    then each table's CSV copied in."""
    name = f'"{schema}"' if quote else schema
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {name}")
        con.execute(DDL.replace("@cdmDatabaseSchema", name))
        for table, text in csv.items():
            with con.cursor().copy(f"COPY {name}.{table} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                copy.write(text)


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory) -> dict:
    """The hospital in PostgreSQL (schema ``cdm``, from the official DDL) and as a folder of OHDSI-style CSVs."""
    csv = hospital_csv()
    folder = tmp_path_factory.mktemp("synthea-like")
    for table, text in csv.items():
        (folder / f"{table.upper()}.csv").write_text(text)
    url = postgres.create_database("official_ddl")
    create_cdm(url, "cdm", csv)
    with psycopg.connect(url, autocommit=True) as con:  # a routine update: the row now lies after its twin
        con.execute("UPDATE cdm.measurement SET measurement_time = '09:00' WHERE measurement_id = 30")
    return {"url": url, "csv": csv, "folder": folder}


def _analyze(database: Path, *args: str):
    return CliRunner().invoke(cli, ["analyze", "--db", str(database), *args])


def _counted(database: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        counts = {table: con.execute(f"SELECT * EXCLUDE (run_id) FROM {table} ORDER BY ALL").fetchall()
                  for table in ("cohort_count", "cohort_opt_out", "coverage_count")}  # fmt: skip
        counts["cells"] = [(rule, phenotype, contrast, n, events, json.loads(cells)) for rule, phenotype, contrast, n,
                           events, cells in con.execute("SELECT rule, phenotype, contrast, n, events, cells FROM "
                                                        "estimate ORDER BY ALL").fetchall()]  # fmt: skip
        return counts
    finally:
        con.close()


@pytest.fixture(scope="module")
def in_store(site, tmp_path_factory) -> dict[str, list[tuple]]:
    database = tmp_path_factory.mktemp("store") / "loop.duckdb"
    loaded = CliRunner().invoke(cli, ["load-omop", str(site["folder"]), "--db", str(database)])
    assert loaded.exit_code == 0, loaded.output
    done = _analyze(database)
    assert done.exit_code == 0, done.output
    return _counted(database)


@pytest.fixture(scope="module")
def in_place(site, tmp_path_factory) -> dict[str, list[tuple]]:
    database = tmp_path_factory.mktemp("in-place") / "loop.duckdb"
    done = _analyze(database, "--omop", site["url"] + "?schema=cdm")
    assert done.exit_code == 0, done.output
    return _counted(database)


def test_the_official_ddl_in_postgresql_gives_the_store_s_cohort_and_cells(in_place, in_store):
    clopidogrel = [row for row in in_place["cohort_count"] if row[0] == "cyp2c19-clopidogrel"]
    # the 7 genotyped new users of the tablet (person 8 has no result) and the 3 of prasugrel, with 3 events
    assert sum(row[4] for row in clopidogrel if row[2] == 1) == 7 and sum(row[4] for row in clopidogrel) == 10
    assert sum(row[5] for row in clopidogrel) == 3
    assert {row[1] for row in clopidogrel} == {"reference", "Intermediate Metabolizer", "Poor Metabolizer"}
    assert in_place == in_store


def test_results_of_one_day_that_disagree_are_indeterminate_on_both_paths(in_place, in_store):
    """Person 8 (White, on clopidogrel) has *1/*1 and *2/*2 of the same day. Whichever row an engine meets first
    used to decide their group (PostgreSQL, after the update, chose Normal; the store Poor): an ambiguous result is
    Indeterminate, in no group, and counted so."""
    for counted in (in_place, in_store):
        users = sum(row[4] for row in counted["cohort_count"] if row[0] == "cyp2c19-clopidogrel" and row[2] == 1)
        assert users == 7  # persons 1-7; not 8
        white = next(row for row in counted["coverage_count"] if row[0] == "White")
        assert white[1:] == (7, 1, 0)  # persons 1, 2, 4, 6, 7, 10 and 11 called; 8 Indeterminate
    assert in_place == in_store


def test_a_schema_named_in_upper_case_is_the_one_ohdsi_s_ddl_created(site, in_store, tmp_path: Path):
    """`@cdmDatabaseSchema` = CDM creates schema cdm; the site names it as it wrote it, in the URL too."""
    database = tmp_path / "loop.duckdb"
    done = _analyze(database, "--omop", site["url"] + "?schema=CDM")

    assert done.exit_code == 0, done.output
    assert _counted(database) == in_store


def test_a_schema_created_quoted_in_mixed_case_is_read_as_named(site, in_store, tmp_path: Path):
    """What `simulate --export-postgres ...?schema=Site_A` creates ("Site_A", quoted) is the schema the URL names."""
    create_cdm(site["url"], "Site_A", site["csv"], quote=True)
    database = tmp_path / "loop.duckdb"
    done = _analyze(database, "--omop", site["url"] + "?schema=Site_A")

    assert done.exit_code == 0, done.output
    assert _counted(database) == in_store


def test_upper_case_quoted_table_names_are_named_as_missing_before_any_study(site, postgres, tmp_path: Path):
    """A table created as "PERSON" is not the `person` the study's SQL reads: the check says so, not a failed query."""
    url = site["url"]
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE SCHEMA shouting")
        for table in TABLES:
            con.execute(f'CREATE TABLE shouting."{table.upper()}" (LIKE cdm.{table})')
    done = _analyze(tmp_path / "loop.duckdb", "--omop", url + "?schema=shouting")

    assert done.exit_code == 1 and isinstance(done.exception, SystemExit), done.output
    assert "missing table person" in done.output and "query failed" not in done.output
