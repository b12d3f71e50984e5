"""The site's OMOP CDM in PostgreSQL, read in place: a read-only session with the CDM schema on its path."""

from __future__ import annotations

import pandas as pd

from analytics.data.omop import VOCABULARY_TABLES
from analytics.sources.base import Source, SourceError
from analytics.sources.url import PostgresUrl
from engine.runtime.postgres_url import scrubbed

# information_schema.columns.data_type -> the DuckDB spelling analytics.data.cdm checks
TYPES = {
    "smallint": "SMALLINT", "integer": "INTEGER", "bigint": "BIGINT", "numeric": "DECIMAL", "real": "FLOAT",
    "double precision": "DOUBLE", "date": "DATE", "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE", "character varying": "VARCHAR", "text": "VARCHAR",
    "character": "VARCHAR",
}  # fmt: skip
CONNECT_SECONDS = 10


class PostgresSource(Source):
    """A PostgreSQL database; every transaction is read-only (the server refuses any write).

    The URL's schema is the one of that exact name if there is one (the exporter creates it quoted),
    else its lower-case fold: what an unquoted name means to PostgreSQL, so ``schema=CDM`` finds the
    ``cdm`` that OHDSI's DDL creates from ``@cdmDatabaseSchema`` = CDM. The check of the columns and the
    study read that one schema. Table and column names are taken as PostgreSQL holds them: the study's
    SQL names them unquoted, so a table created as "PERSON" is not its ``person``.

    A ``vocabulary`` schema (OHDSI's ``@vocabularyDatabaseSchema``) resolves the same way and must
    exist. Its tables (analytics.data.omop.VOCABULARY_TABLES) are read from it alone, named in it in
    every query (base.render), so a stray copy in the CDM schema (an empty ``concept`` that the full
    DDL run there creates) is never read; the CDM tables stay on the search path.

    Nested-loop joins are off for the session: the planner cannot see the size of the study's
    CTEs and, guessing a handful of rows, chose nested loops that took minutes on 30,000 persons;
    every join of the study is an equality join that hashes well.
    """

    dialect = "postgres"

    def __init__(self, url: PostgresUrl) -> None:
        super().__init__()
        import psycopg  # imported here: the serving process never needs it
        from psycopg import sql

        self.shown, self.schema, self.conninfo = url.shown, url.schema, url.conninfo
        try:
            self.con = psycopg.connect(
                url.conninfo, autocommit=True, connect_timeout=CONNECT_SECONDS,
                options="-c default_transaction_read_only=on -c enable_nestloop=off",
            )  # fmt: skip
        except psycopg.Error as exc:
            raise SourceError(f"{self.shown}: cannot connect: {scrubbed(exc, self.conninfo)[:300]}") from None
        try:
            self.schema = self._resolved(url.schema) or url.schema
            self.vocabulary_schema = self._resolved(url.vocabulary) if url.vocabulary else self.schema
            self.con.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        except psycopg.Error as exc:
            self.con.close()
            reason = scrubbed(exc, self.conninfo)[:300]
            raise SourceError(f"{self.shown}: cannot use schema {url.schema}: {reason}") from None
        if self.vocabulary_schema is None:
            self.con.close()
            raise SourceError(f"{self.shown}: vocabulary schema {url.vocabulary} does not exist")
        if url.vocabulary:
            self.vocabulary = f"vocabulary schema {self.vocabulary_schema}"
        if self.vocabulary_schema != self.schema:
            self.schemas = dict.fromkeys(VOCABULARY_TABLES, self.vocabulary_schema)

    def _resolved(self, name: str) -> str | None:
        """The schema ``name`` means: that exact one, else its lower-case fold; None if neither exists."""
        found = self.con.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname IN (%s, lower(%s)) ORDER BY nspname <> %s LIMIT 1",
            [name, name, name],
        ).fetchone()
        return found[0] if found else None

    def _fetch(self, sql: str) -> pd.DataFrame:
        import psycopg

        try:
            with self.con.cursor() as cursor:
                cursor.execute(sql)
                rows = cursor.fetchall()
                names = [column.name for column in cursor.description or ()]
        except psycopg.Error as exc:  # a dropped connection, a cancelled statement: named, never a traceback
            raise SourceError(f"{self.shown}: query failed: {scrubbed(exc, self.conninfo)[:300]}") from None
        return pd.DataFrame(rows, columns=names)

    def columns(self) -> dict[str, dict[str, str]]:
        # Vocabulary tables from the vocabulary schema, the others from the CDM's (the same schema by default).
        found: dict[str, dict[str, str]] = {}
        with self.con.cursor() as cursor:
            cursor.execute(
                "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema IN (%s, %s)",
                [self.schema, self.vocabulary_schema],
            )
            rows = cursor.fetchall()
        for schema, table, column, kind in rows:
            wanted = self.vocabulary_schema if table in VOCABULARY_TABLES else self.schema
            if schema == wanted:
                found.setdefault(table, {})[column] = TYPES.get(kind, kind.upper())
        if not any(schema == self.schema for schema, *_ in rows):
            raise SourceError(f"{self.shown}: schema {self.schema} holds no tables this login can read")
        return found

    def close(self) -> None:
        self.con.close()
