"""The site's OMOP CDM on Spark: local mode or Spark Connect, tables from a Parquet lake or a catalog database.

A lake's tables are registered as temporary views of this session (names in any case:
``DIR/PERSON.parquet`` or a folder ``DIR/person/``); nothing is written anywhere.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from analytics.data.omop import CDM_TABLES
from analytics.sources.base import PUSHED_INLINE, Source, SourceError
from analytics.sources.url import SparkUrl

# DataType.simpleString() -> the DuckDB spelling analytics.data.cdm checks
TYPES = {"tinyint": "TINYINT", "smallint": "SMALLINT", "int": "INTEGER", "bigint": "BIGINT", "float": "FLOAT",
         "double": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMP", "timestamp_ntz": "TIMESTAMP",
         "string": "VARCHAR"}  # fmt: skip
LOCAL = {
    "spark.master": "local[2]",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.execution.arrow.pyspark.enabled": "false",  # results are a few hundred rows: no Arrow socket needed
    "spark.sql.session.timeZone": "UTC",
}


def local_session():
    """This process's Spark session in local mode (an existing one is reused, as a test run shares one)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("pgx-loop")
    for key, value in LOCAL.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def lake_tables(lake: Path) -> dict[str, Path]:
    """CDM table (lower case) -> its Parquet file or folder in ``lake``."""
    found: dict[str, Path] = {}
    for entry in sorted(lake.iterdir()):
        name = entry.name.lower().removesuffix(".parquet")
        if name in CDM_TABLES and name not in found and (entry.is_dir() or entry.name.lower().endswith(".parquet")):
            found[name] = entry
    return found


class SparkSource(Source):
    """A Spark session reading the CDM; queries run in Spark, only their results come back."""

    dialect = "spark"

    def __init__(self, url: SparkUrl) -> None:
        super().__init__()
        self.shown, self.views = url.shown, []
        try:
            import pyspark  # noqa: F401  (imported here: the serving process never needs it)
        except ImportError:
            raise SourceError(f"{url.shown}: pyspark is not installed (pip install 'pgx-loop[spark]')") from None
        # pyspark's notices that it does not yet "fully support" pandas 3, one per query: the cells that come
        # back are checked equal to DuckDB's and PostgreSQL's (tests/test_omop_in_place.py).
        warnings.filterwarnings("ignore", module=r"pyspark\.")
        if url.lake is not None and url.remote is None and not url.lake.is_dir():
            raise SourceError(f"{url.shown}: no such folder {url.lake}")
        try:
            self.spark = self._session(url)
            if url.database:
                self.spark.catalog.setCurrentDatabase(url.database)
        except SourceError:
            raise
        except Exception as exc:  # py4j and gRPC errors: the first line says enough
            raise SourceError(f"{url.shown}: cannot start or reach Spark: {_first_line(exc)}") from None
        if url.lake is not None:
            self._register(url.lake)

    @staticmethod
    def _session(url: SparkUrl):
        if url.remote is None:
            return local_session()
        from pyspark.sql import SparkSession

        return SparkSession.builder.remote(url.remote).getOrCreate()

    def _register(self, lake: Path) -> None:
        tables = lake_tables(lake) if lake.is_dir() else {}
        for name, path in tables.items():
            try:
                self.spark.read.parquet(str(path)).createOrReplaceTempView(name)
            except Exception as exc:
                raise SourceError(f"{self.shown}: {path.name} is not readable Parquet: {_first_line(exc)}") from None
            self.views.append(name)

    def _fetch(self, sql: str) -> pd.DataFrame:
        try:
            return self.spark.sql(sql).toPandas()
        except Exception as exc:
            raise SourceError(f"{self.shown}: query failed: {_first_line(exc)}") from None

    def columns(self) -> dict[str, dict[str, str]]:
        names = self.views or [table.name.lower() for table in self.spark.catalog.listTables()
                               if table.name.lower() in CDM_TABLES]  # fmt: skip
        found = {}
        for name in names:
            fields = self.spark.table(name).schema.fields
            found[name] = {f.name.lower(): TYPES.get(f.dataType.simpleString(), f.dataType.simpleString().upper())
                           for f in fields}  # fmt: skip
        return found

    def pushed_ids(self, name: str, ids: list[int]) -> str:
        if len(ids) <= PUSHED_INLINE:
            return super().pushed_ids(name, ids)
        view = f"pgx_loop_{name}"  # session-local: gone with the session, never in the site's catalog
        self.spark.createDataFrame(pd.DataFrame({"person_id": ids}, dtype="int64")).createOrReplaceTempView(view)
        self.views.append(view)
        return f"{view} AS {name}"

    def close(self) -> None:
        for view in self.views:
            self.spark.catalog.dropTempView(view)
        self.views = []


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
