"""The OMOP CDM v5.4 columns the learning loop reads, with their CDM data types.

Taken from the OHDSI specification, ``inst/csv/OMOP_CDMv5.4_Field_Level.csv`` in
github.com/OHDSI/CommonDataModel (commit f853f6e, 2026-07-22): every column below is listed
there with ``isRequired = Yes`` and the type given here, except the ``*_source_value`` columns,
which the CDM makes optional and the loop only uses when present (``OPTIONAL_COLUMNS``).

A table the loop needs (``REQUIRED_TABLES``) that lacks a column, or holds values that are not of
the column's type, makes an extract unusable. A table it can do without (``OPTIONAL_TABLES``: the
vocabulary, ``death``) in that state is left out with a warning, as if the extract had none.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["integer", "date", "text"]

REQUIRED_TABLES: dict[str, dict[str, Kind]] = {
    "person": {
        "person_id": "integer", "gender_concept_id": "integer", "year_of_birth": "integer",
        "race_concept_id": "integer", "ethnicity_concept_id": "integer",
    },
    "observation_period": {
        "person_id": "integer", "observation_period_start_date": "date", "observation_period_end_date": "date",
    },
    "drug_exposure": {"person_id": "integer", "drug_concept_id": "integer", "drug_exposure_start_date": "date"},
    "condition_occurrence": {"person_id": "integer", "condition_concept_id": "integer", "condition_start_date": "date"},
    "measurement": {"person_id": "integer", "measurement_concept_id": "integer", "measurement_date": "date"},
}  # fmt: skip
OPTIONAL_TABLES: dict[str, dict[str, Kind]] = {
    "death": {"person_id": "integer", "death_date": "date"},
    "concept": {"concept_id": "integer", "vocabulary_id": "text", "concept_code": "text"},
    "concept_ancestor": {"ancestor_concept_id": "integer", "descendant_concept_id": "integer"},
}
# Read when present (all varchar in the CDM): pseudonym links, source codes, genotype text.
OPTIONAL_COLUMNS: dict[str, dict[str, Kind]] = {
    "person": {"person_source_value": "text"},
    "condition_occurrence": {"condition_source_value": "text"},
    "measurement": {"measurement_source_value": "text", "value_source_value": "text"},
}
USED_TABLES: dict[str, dict[str, Kind]] = {**REQUIRED_TABLES, **OPTIONAL_TABLES}

# DuckDB types a source column of each kind may have: anything that casts without loss of meaning.
# Text CSVs are read as VARCHAR and cast; DuckDB extracts often store ids as DOUBLE (Eunomia does).
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT")  # fmt: skip
SOURCE_TYPES: dict[Kind, tuple[str, ...]] = {
    "integer": (*INTEGER_TYPES, "DOUBLE", "FLOAT", "DECIMAL", "VARCHAR"),
    "date": ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S",
             "VARCHAR"),
    "text": ("VARCHAR",),
}  # fmt: skip
# The types a column has once loaded (analytics.data.omop casts to these).
LOADED_TYPES: dict[Kind, tuple[str, ...]] = {
    "integer": INTEGER_TYPES,
    "date": ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE"),
    "text": ("VARCHAR",),
}


def source_type_fits(kind: Kind, duckdb_type: str) -> bool:
    """Whether a source column of ``duckdb_type`` can hold values of the CDM ``kind``."""
    base = duckdb_type.upper().split("(")[0]
    return base in SOURCE_TYPES[kind]


def type_problems(table: str, types: dict[str, str], *, loaded: bool) -> list[str]:
    """What is wrong with the types of ``table``'s columns (lower-case name -> DuckDB type) for the loop.

    ``loaded``: check the types the store must hold (phrased ``table.column``), rather than the
    types a source may have (phrased ``column``).
    """
    prefix = f"{table}." if loaded else ""
    problems = []
    for column, kind in USED_TABLES[table].items():
        duckdb_type = types.get(column)
        if duckdb_type is None:
            continue
        fits = duckdb_type.upper() in LOADED_TYPES[kind] if loaded else source_type_fits(kind, duckdb_type)
        if not fits:
            problems.append(f"{prefix}{column} must hold {_plural[kind]}, not {duckdb_type}")
    return problems


def missing_columns(table: str, columns: set[str]) -> list[str]:
    """The CDM columns the loop reads that ``columns`` (lower-case) lacks."""
    return [column for column in USED_TABLES[table] if column not in columns]


_plural: dict[Kind, str] = {"integer": "whole numbers", "date": "dates", "text": "text"}
