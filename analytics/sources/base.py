"""What every OMOP source engine offers the study: its tables and columns, and a query that counts what leaves."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pandas as pd

PUSHED_INLINE = 5_000  # ids pushed into a query as an inline table; more go in a session-local view (Spark)


class SourceError(RuntimeError):
    """The OMOP source cannot be used: a bad URL, an unreachable server, missing tables or columns.

    The message names the source (never its password) and what is wrong, never a data value.
    """


def render(sql: str, dialect: str, schemas: dict[str, str] | None = None) -> str:
    """The study SQL (written in DuckDB's dialect) in ``dialect``, by SQLGlot; DuckDB's runs as written.

    ``schemas``: table -> the schema to read it from, for tables kept apart from the CDM (a vocabulary
    schema); the others stay unqualified, read where the session looks (the CDM schema).
    """
    if dialect == "duckdb" and not schemas:
        return sql
    import sqlglot  # only the analytics process needs it, and only for a source elsewhere

    if not schemas:
        return sqlglot.transpile(sql, read="duckdb", write=dialect)[0]
    return _qualified(sqlglot.parse_one(sql, read="duckdb"), schemas).sql(dialect=dialect)


def _qualified(tree, schemas: dict[str, str]):
    """``tree`` with each unqualified table of ``schemas`` named in its schema (quoted: the name as resolved).

    A CTE of the same name is not a table; the study's CTEs never take a vocabulary table's name, but a
    reference to one must stay a reference."""
    from sqlglot import exp

    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if name in schemas and name not in ctes and not table.args.get("db"):
            table.set("db", exp.to_identifier(schemas[name], quoted=True))
    return tree


class Source(ABC):
    """An OMOP CDM in an engine. ``rows_out`` counts every row fetched out of it."""

    dialect: str
    shown: str  # the URL for messages, without a password

    def __init__(self) -> None:
        self.rows_out = 0
        # Vocabulary table -> its schema, when the URL puts the vocabulary apart from the CDM.
        self.schemas: dict[str, str] = {}
        # Where the URL says the vocabulary is, for messages; None: not named, so it is optional.
        self.vocabulary: str | None = None

    @abstractmethod
    def _fetch(self, sql: str) -> pd.DataFrame:
        """Run ``sql`` (already in the engine's dialect) and return its rows."""

    @abstractmethod
    def columns(self) -> dict[str, dict[str, str]]:
        """CDM table -> column -> type, spelled as DuckDB spells it; names in lower case where the study's SQL
        reaches them so (a PostgreSQL table created as "PERSON" keeps its name: unquoted SQL cannot reach it)."""

    def query(self, sql: str) -> pd.DataFrame:
        """Run a DuckDB-dialect query in the engine; its result is all that leaves the engine."""
        frame = self._fetch(render(sql, self.dialect, self.schemas))
        frame.columns = [str(column).lower() for column in frame.columns]
        self.rows_out += len(frame)
        return frame

    def pushed_ids(self, name: str, ids: list[int]) -> str:
        """A relation ``name``(person_id) of ``ids`` for the study's queries (a few thousand at most inline)."""
        if not ids:
            return f"(SELECT CAST(NULL AS BIGINT) AS person_id WHERE 1 = 0) AS {name}"
        body = ", ".join(f"({int(i)})" for i in ids)
        return f"(VALUES {body}) AS {name}(person_id)"

    @abstractmethod
    def close(self) -> None:
        """Release the connection; the engine's data is untouched."""
