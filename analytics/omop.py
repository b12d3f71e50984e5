"""Importing an OMOP CDM v5.3/v5.4 extract: another DuckDB file, or a folder of CSV or Parquet files.

Every CDM table found is copied under its standard (lower-case) name with lower-case columns, so
an extract with upper-case names loads as well as one without; tables that are not CDM tables
are listed and skipped. Re-running replaces the tables: the import is idempotent. Tables and
columns the loop needs are checked first, and anything missing is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from analytics.store import count, transaction

# What the learning loop reads; everything else in the CDM is optional.
REQUIRED: dict[str, tuple[str, ...]] = {
    "person": ("person_id", "gender_concept_id", "year_of_birth", "race_concept_id"),
    "observation_period": ("person_id", "observation_period_start_date", "observation_period_end_date"),
    "drug_exposure": ("person_id", "drug_concept_id", "drug_exposure_start_date"),
    "condition_occurrence": ("person_id", "condition_concept_id", "condition_start_date"),
    "measurement": ("person_id", "measurement_concept_id", "measurement_date"),
}
OPTIONAL = (
    "visit_occurrence", "visit_detail", "death", "procedure_occurrence", "device_exposure", "observation",
    "specimen", "note", "note_nlp", "location", "care_site", "provider", "payer_plan_period", "cost",
    "drug_era", "dose_era", "condition_era", "episode", "episode_event", "fact_relationship", "metadata",
    "cdm_source", "cohort", "cohort_definition", "concept", "vocabulary", "domain", "concept_class",
    "concept_relationship", "relationship", "concept_synonym", "concept_ancestor", "source_to_concept_map",
    "drug_strength",
)  # fmt: skip
CDM_TABLES = (*REQUIRED, *OPTIONAL)
DATE_COLUMNS = (
    "observation_period_start_date", "observation_period_end_date", "drug_exposure_start_date",
    "drug_exposure_end_date", "condition_start_date", "condition_end_date", "measurement_date", "death_date",
    "visit_start_date", "visit_end_date", "valid_start_date", "valid_end_date",
)  # fmt: skip
SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet")
# Vocabulary identifiers are codes, not numbers, despite their "_id" suffix.
TEXT_IDS = ("vocabulary_id", "domain_id", "concept_class_id", "relationship_id", "source_vocabulary_id",
            "target_vocabulary_id", "cdm_source_abbreviation")  # fmt: skip


class OmopError(ValueError):
    """The extract cannot be used; the message names what is missing."""


INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
DATE_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE")


def type_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Required columns whose type the study cannot use (ids and birth years whole numbers, dates dates)."""
    problems = []
    for table, needed in REQUIRED.items():
        types = {name.lower(): kind for name, kind, *_ in con.execute(f'DESCRIBE "{table}"').fetchall()}
        for column in needed:
            kind = types.get(column)
            if kind is None:
                problems.append(f"{table}.{column} is missing")
            elif column.endswith("_date") and kind not in DATE_TYPES:
                problems.append(f"{table}.{column} must hold dates, not {kind}")
            elif (column.endswith("_id") or column == "year_of_birth") and kind not in INTEGER_TYPES:
                problems.append(f"{table}.{column} must hold whole numbers, not {kind}")
    return problems


@dataclass
class ImportReport:
    tables: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _sources(con: duckdb.DuckDBPyConnection, source: Path) -> dict[str, str]:
    """CDM table name -> a SQL expression reading it, and the names of everything else found."""
    found: dict[str, str] = {}
    if source.is_file():
        try:
            con.execute(f"ATTACH {_literal(source)} AS omop_source (READ_ONLY)")
        except duckdb.Error:
            raise OmopError(f"{source}: not a DuckDB database file, nor a folder of CSV/Parquet files") from None
        rows = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = 'omop_source'"
        ).fetchall()
        for schema, name in rows:
            found.setdefault(name.lower(), f'omop_source."{schema}"."{name}"')
    elif source.is_dir():
        for path in sorted(source.iterdir()):
            lower = path.name.lower()
            suffix = next((s for s in SUFFIXES if lower.endswith(s)), None)
            if suffix is None:
                continue
            name = lower.removesuffix(suffix)
            reader = "read_parquet" if suffix == ".parquet" else "read_csv"
            options = "" if suffix == ".parquet" else ", header = true, all_varchar = true"
            found.setdefault(name, f"{reader}({_literal(path)}{options})")
    else:
        raise OmopError(f"{source}: not a DuckDB database file, nor a folder of CSV/Parquet files")
    return found


def _literal(path: Path) -> str:
    """A path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def _columns(con: duckdb.DuckDBPyConnection, expression: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {expression}").fetchall()]


def _typed(columns: list[str]) -> str:
    """The select list that lower-cases column names and casts dates, ids and numbers (text CSVs)."""
    selects = []
    for column in columns:
        lower = column.lower()
        value = f'"{column}"'
        if lower in DATE_COLUMNS:
            value = f"TRY_CAST({value} AS DATE)"
        elif (lower.endswith("_id") and lower not in TEXT_IDS) or lower in ("year_of_birth", "days_supply"):
            value = f"TRY_CAST({value} AS BIGINT)"
        elif lower in ("value_as_number", "quantity", "range_low", "range_high"):
            value = f"TRY_CAST({value} AS DOUBLE)"
        selects.append(f'{value} AS "{lower}"')
    return ", ".join(selects)


def load_omop(con: duckdb.DuckDBPyConnection, source: Path) -> ImportReport:
    """Copy the CDM tables of ``source`` into ``con``, replacing earlier copies, in one transaction."""
    sources = _sources(con, source)
    try:
        missing_tables = [table for table in REQUIRED if table not in sources]
        problems = [f"missing table {table}" for table in missing_tables]
        columns: dict[str, list[str]] = {}
        for table, expression in sources.items():
            if table in CDM_TABLES:
                columns[table] = _columns(con, expression)
        for table, needed in REQUIRED.items():
            have = {column.lower() for column in columns.get(table, [])}
            absent = [column for column in needed if column not in have]
            if table in columns and absent:
                problems.append(f"table {table} lacks column(s) {', '.join(absent)}")
        if problems:
            raise OmopError(f"{source}: " + "; ".join(problems))
        report = ImportReport()
        with transaction(con):
            for table, expression in sources.items():
                if table not in CDM_TABLES:
                    report.skipped.append(table)
                    continue
                con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT {_typed(columns[table])} FROM {expression}')
                report.tables[table] = count(con, table)
        return report
    finally:
        con.execute("DETACH DATABASE IF EXISTS omop_source")
