"""Copies of the store's OMOP tables for other engines: a Parquet lake, a PostgreSQL schema (``simulate --export-*``).

For trying the in-place study on the simulated hospital; a site's real OMOP is never written by the loop.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb

from analytics.data.omop import CDM_TABLES, VOCABULARY_TABLES
from analytics.sources.base import SourceError
from analytics.sources.url import OmopUrlError, PostgresUrl, parse_omop_url
from engine.runtime.postgres_url import scrubbed

PG_TYPES = {"BIGINT": "bigint", "INTEGER": "integer", "SMALLINT": "smallint", "DOUBLE": "double precision",
            "FLOAT": "real", "DATE": "date", "TIMESTAMP": "timestamp", "BOOLEAN": "boolean",
            "VARCHAR": "text"}  # fmt: skip


def cdm_tables(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """The store's CDM tables: name -> column -> DuckDB type."""
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' "
        "AND table_catalog = current_database() ORDER BY table_name, ordinal_position"
    ).fetchall()
    found: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        if table in CDM_TABLES:
            found.setdefault(table, {})[column] = kind
    return found


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def export_lake(con: duckdb.DuckDBPyConnection, directory: Path) -> dict[str, int]:
    """Write each CDM table to ``directory/<table>.parquet``; returns row counts."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = {}
    for table in cdm_tables(con):
        con.execute(f'COPY (SELECT * FROM "{table}") TO {_literal(directory / f"{table}.parquet")} (FORMAT parquet)')
        counts[table] = int(con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    return counts


def export_postgres(con: duckdb.DuckDBPyConnection, url: str) -> dict[str, int]:
    """Create the CDM tables in the URL's schema (replacing them) and copy the rows in; returns row counts.

    The vocabulary tables go to the URL's ``vocabulary`` schema when it names one."""
    import psycopg

    try:
        parsed = parse_omop_url(url)
    except OmopUrlError as exc:
        raise SourceError(str(exc)) from None
    if not isinstance(parsed, PostgresUrl):
        raise SourceError("--export-postgres needs a postgresql:// URL")
    counts = {}
    try:
        with psycopg.connect(parsed.conninfo, connect_timeout=10) as pg, tempfile.TemporaryDirectory() as tmp:
            vocabulary = parsed.vocabulary or parsed.schema  # the URL may put the vocabulary apart, as sites do
            for schema in dict.fromkeys((parsed.schema, vocabulary)):
                pg.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            for table, columns in cdm_tables(con).items():
                name = f'"{vocabulary if table in VOCABULARY_TABLES else parsed.schema}"."{table}"'
                ddl = ", ".join(f'"{c}" {PG_TYPES.get(kind.split("(")[0], "text")}' for c, kind in columns.items())
                pg.execute(f"DROP TABLE IF EXISTS {name}")
                pg.execute(f"CREATE TABLE {name} ({ddl})")
                csv = Path(tmp) / f"{table}.csv"
                con.execute(f'COPY (SELECT * FROM "{table}") TO {_literal(csv)} (FORMAT csv, HEADER false)')
                with pg.cursor().copy(f"COPY {name} FROM STDIN (FORMAT csv)") as copy, csv.open("rb") as rows:
                    while chunk := rows.read(1 << 20):
                        copy.write(chunk)
                counts[table] = int(con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
                csv.unlink()
                pg.execute(f"ANALYZE {name}")  # planner statistics, as a site's database has them
    except psycopg.Error as exc:
        raise SourceError(f"{parsed.shown}: {scrubbed(exc, parsed.conninfo)}") from None
    return counts
