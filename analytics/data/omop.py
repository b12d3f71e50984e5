"""Importing an OMOP CDM v5.3/v5.4 extract: another DuckDB file, or a folder of CSV or Parquet files.

Every CDM table found is copied under its standard (lower-case) name with lower-case columns, so
an extract with upper-case names loads as well as one without; tables that are not CDM tables
are listed and skipped. Re-running replaces the tables: the import is idempotent. The tables and
columns the loop reads are checked against the CDM v5.4 specification (analytics.data.cdm) first, and
anything missing is named.

An extract is untrusted input, so its SQL is safe by construction: file and table names become
SQL only as quoted string literals; a column or schema name from the extract is used only if it
is a plain identifier (``^[A-Za-z_][A-Za-z0-9_]*$``); only base tables of an attached DuckDB
file are read, never views (a view runs the extract author's SQL); and once the sources are
attached or read, the connection loses all file-system access for good
(``enable_external_access = false``, configuration locked), so nothing it runs afterwards can
read or write a file. A refused extract changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from analytics.data import cdm
from analytics.data.genotypes import extract_measurements
from analytics.data.store import count, transaction

log = logging.getLogger(__name__)

REQUIRED = cdm.REQUIRED_TABLES  # what the learning loop cannot do without
# The standardized vocabularies of CDM v5.4: what a site may keep in a schema of their own
# (OHDSI's @vocabularyDatabaseSchema; ``vocabulary=`` of a PostgreSQL OMOP URL).
VOCABULARY_TABLES = ("concept", "vocabulary", "domain", "concept_class", "concept_relationship", "relationship",
                     "concept_synonym", "concept_ancestor", "source_to_concept_map", "drug_strength")  # fmt: skip
OPTIONAL = (
    "visit_occurrence", "visit_detail", "death", "procedure_occurrence", "device_exposure", "observation",
    "specimen", "note", "note_nlp", "location", "care_site", "provider", "payer_plan_period", "cost",
    "drug_era", "dose_era", "condition_era", "episode", "episode_event", "fact_relationship", "metadata",
    "cdm_source", "cohort", "cohort_definition", *VOCABULARY_TABLES,
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
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SHOWN_CHARS = 40  # of a refused name in a message: enough to find it, not a payload to echo


class OmopError(ValueError):
    """The extract cannot be used; the message names the file, the table and what is wrong."""


@dataclass
class ImportReport:
    tables: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # optional CDM table -> why it was not loaded
    genotype_results: int = 0


@dataclass(frozen=True)
class _Table:
    """One CDM table of the extract: where it came from (for messages) and how to read it."""

    name: str
    origin: str
    relation: str  # SQL naming it; built from literals and validated identifiers only
    types: dict[str, str]  # column as in the extract -> DuckDB type


def _shown(name: str) -> str:
    return repr(name if len(name) <= SHOWN_CHARS else name[:SHOWN_CHARS] + "...")


def _literal(path: Path) -> str:
    """A path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def _describe(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


def _attach(con: duckdb.DuckDBPyConnection, source: Path) -> tuple[dict[str, _Table], list[str]]:
    """The CDM base tables of a DuckDB file; a CDM table that is a view refuses the extract."""
    try:
        con.execute(f"ATTACH {_literal(source)} AS omop_source (READ_ONLY)")
    except duckdb.Error:
        raise OmopError(f"{source}: not a DuckDB database file, nor a folder of CSV/Parquet files") from None
    rows = con.execute(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_catalog = 'omop_source' ORDER BY table_schema <> 'main', table_schema, table_name"
    ).fetchall()
    found: dict[str, _Table] = {}
    skipped: list[str] = []
    for schema, name, kind in rows:
        lower = name.lower()
        if lower not in CDM_TABLES:
            skipped.append(lower)
            continue
        if lower in found:
            continue
        if kind != "BASE TABLE":
            raise OmopError(
                f"{source}: table {lower} is a {kind.lower()}, not a base table; only base tables are copied "
                "(a view runs SQL its author wrote)"
            )
        if not IDENTIFIER.match(schema):
            raise OmopError(f"{source}: table {lower} is in schema {_shown(schema)}, which is not a plain identifier")
        relation = f'omop_source."{schema}"."{name}"'  # name equals a CDM name up to case: an identifier
        found[lower] = _Table(lower, str(source), relation, _describe(con, relation))
    return found, skipped


def _stage(con: duckdb.DuckDBPyConnection, source: Path) -> tuple[dict[str, _Table], list[str]]:
    """Read each CDM file of a folder into a temp table, so nothing reads a file after this."""
    found: dict[str, _Table] = {}
    skipped: list[str] = []
    for path in sorted(source.iterdir()):
        lower = path.name.lower()
        suffix = next((s for s in SUFFIXES if lower.endswith(s)), None)
        if suffix is None:
            continue
        name = lower.removesuffix(suffix)
        if name not in CDM_TABLES:
            skipped.append(name)
            continue
        if name in found:
            continue
        reader = (
            f"read_parquet({_literal(path)})"
            if suffix == ".parquet"
            else f"read_csv({_literal(path)}, header = true, all_varchar = true)"
        )
        relation = f"omop_stage_{name}"  # a CDM table name: an identifier
        con.execute(f"CREATE OR REPLACE TEMP TABLE {relation} AS SELECT * FROM {reader}")
        found[name] = _Table(name, f"{path}", relation, _describe(con, relation))
    return found, skipped


def _seal(con: duckdb.DuckDBPyConnection) -> None:
    """From here on the connection can touch no file but its own database, and cannot be given back the right."""
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _refuse_odd_names(tables: dict[str, _Table]) -> None:
    for table in tables.values():
        for column in table.types:
            if not IDENTIFIER.match(column):
                raise OmopError(
                    f"{table.origin}: table {table.name}: column {_shown(column)} is not a plain name "
                    "(letters, digits and _); nothing was loaded"
                )


def _cast(column: str, kind: cdm.Kind | None) -> str:
    """The cast that turns the extract's column (a validated identifier) into the store's type."""
    lower = column.lower()
    value = f'"{column}"'
    if kind == "date" or (kind is None and lower in DATE_COLUMNS):
        return f"TRY_CAST({value} AS DATE)"
    numbered = (lower.endswith("_id") and lower not in TEXT_IDS) or lower in ("year_of_birth", "days_supply")
    if kind == "integer" or (kind is None and numbered):
        return f"TRY_CAST({value} AS BIGINT)"
    if kind is None and lower in ("value_as_number", "quantity", "range_low", "range_high"):
        return f"TRY_CAST({value} AS DOUBLE)"
    return value


def _kinds(table: str) -> dict[str, cdm.Kind]:
    return {**cdm.USED_TABLES.get(table, {}), **cdm.OPTIONAL_COLUMNS.get(table, {})}


def _unusable_values(con: duckdb.DuckDBPyConnection, table: _Table) -> list[str]:
    """Used columns holding values that are not of their CDM type (counted, never shown: they may be PHI)."""
    checks = []
    by_lower = {column.lower(): column for column in table.types}
    for lower, kind in _kinds(table.name).items():
        column = by_lower.get(lower)
        if column is None or table.types[column].upper() in cdm.LOADED_TYPES[kind]:
            continue
        value = f'"{column}"'
        if kind == "date":
            bad = f"{value} IS NOT NULL AND TRY_CAST({value} AS DATE) IS NULL"
        elif kind == "integer":  # also refuse 1.5, which a cast would round
            whole = f"TRY_CAST({value} AS BIGINT)"
            bad = f"{value} IS NOT NULL AND ({whole} IS NULL OR TRY_CAST({value} AS DOUBLE) <> {whole})"
        else:
            continue
        checks.append((lower, kind, f"count(*) FILTER ({bad})"))
    if not checks:
        return []
    counts = con.execute(f"SELECT {', '.join(sql for _, _, sql in checks)} FROM {table.relation}").fetchall()[0]
    return [
        f"{lower} has {n:,} value(s) that are not {'dates' if kind == 'date' else 'whole numbers'}"
        for (lower, kind, _), n in zip(checks, counts, strict=True)
        if n
    ]


def _problem(con: duckdb.DuckDBPyConnection, table: _Table) -> str | None:
    """Why ``table`` cannot serve the loop (missing CDM columns, wrong types, values that do not convert), or None."""
    if table.name not in cdm.USED_TABLES:
        return None
    lower_types = {column.lower(): kind for column, kind in table.types.items()}
    if missing := cdm.missing_columns(table.name, set(lower_types)):
        return f"table {table.name} lacks CDM v5.4 column(s) {', '.join(missing)}"
    optional = {c: t for c, t in lower_types.items() if c in cdm.OPTIONAL_COLUMNS.get(table.name, {})}
    problems = cdm.type_problems(table.name, lower_types, loaded=False)
    problems += [f"{column} must hold text, not {kind}" for column, kind in optional.items() if kind != "VARCHAR"]
    problems = problems or _unusable_values(con, table)
    return f"table {table.name}: " + "; ".join(problems) if problems else None


def _check(con: duckdb.DuckDBPyConnection, source: Path, tables: dict[str, _Table], report: ImportReport) -> None:
    """Refuse the extract if a required table is unusable; leave out (with a warning) an unusable optional one."""
    problems = [f"{source}: missing table {name}" for name in REQUIRED if name not in tables]
    for name, table in list(tables.items()):
        found = _problem(con, table)
        if found is None:
            continue
        if name in REQUIRED:
            problems.append(f"{table.origin}: {found}")
        else:
            report.left_out[name] = found
            del tables[name]
            log.warning("%s: %s; left out, as if the extract had no %s table", table.origin, found, name)
    if problems:
        raise OmopError("\n".join(problems))


def load_omop(con: duckdb.DuckDBPyConnection, source: Path, genes: Iterable[str] = ()) -> ImportReport:
    """Copy the CDM tables of ``source`` into ``con``, replacing earlier copies, in one transaction.

    Genotype results in ``measurement`` for ``genes`` are extracted in the same transaction. After
    this, ``con`` has no file-system access (see the module's docstring): close it when done.
    """
    if not (source.is_file() or source.is_dir()):
        raise OmopError(f"{source}: not a DuckDB database file, nor a folder of CSV/Parquet files")
    staged: dict[str, _Table] = {}
    try:
        staged, skipped = _attach(con, source) if source.is_file() else _stage(con, source)
        _seal(con)
        _refuse_odd_names(staged)
        report = ImportReport(skipped=skipped)
        tables = dict(staged)
        _check(con, source, tables, report)
        with transaction(con):
            for name in report.left_out:  # an earlier copy must not stand in for the unusable one
                con.execute(f'DROP TABLE IF EXISTS "{name}"')
            for name, table in tables.items():
                kinds = _kinds(name)
                selects = ", ".join(f'{_cast(c, kinds.get(c.lower()))} AS "{c.lower()}"' for c in table.types)
                con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT {selects} FROM {table.relation}')
                report.tables[name] = count(con, name)
            report.genotype_results = extract_measurements(con, set(genes))
        return report
    finally:
        for table in staged.values():
            if table.relation.startswith("omop_stage_"):
                con.execute(f"DROP TABLE IF EXISTS {table.relation}")
        con.execute("DETACH DATABASE IF EXISTS omop_source")


def type_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """What stops the study in the store's CDM tables: columns missing or not of their CDM v5.4 type."""
    problems = []
    for table in cdm.USED_TABLES:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_catalog = current_database() AND table_name = ?",
            [table],
        ).fetchall()
        if not rows:
            continue  # a missing required table is reported as "no data"; an optional one is simply absent
        types = {name.lower(): kind for name, kind in rows}
        found = [f"{table}.{column} is missing" for column in cdm.missing_columns(table, set(types))]
        found += cdm.type_problems(table, types, loaded=True)
        if found and table not in REQUIRED:
            found.append(f"reload the extract with pgx-loop load-omop, which leaves out an unusable {table}")
        problems += found
    return problems
