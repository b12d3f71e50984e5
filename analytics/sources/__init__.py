"""The site's OMOP CDM where it lives: PostgreSQL or Spark, queried in place (``analyze --omop URL``).

The study SQL is written once, in DuckDB's dialect (analytics.study.cohort), and rendered for each
engine by SQLGlot (base.render). Only aggregates leave the engine: the cells, the counts of the
data snapshot, the opted-out count, the distinct diplotypes to phenotype, and the product index
(vocabulary, no patients). psycopg and pyspark are imported only when such a source is opened.
"""

from __future__ import annotations

from analytics.sources.base import Source, SourceError
from analytics.sources.url import OmopUrlError, PostgresUrl, parse_omop_url


def open_source(url: str) -> Source:
    """Connect to the OMOP source ``url`` names; ``SourceError`` (a clear message) if it cannot be used."""
    try:
        parsed = parse_omop_url(url)
    except OmopUrlError as exc:
        raise SourceError(str(exc)) from None
    if isinstance(parsed, PostgresUrl):
        from analytics.sources.postgres import PostgresSource

        return PostgresSource(parsed)
    from analytics.sources.spark import SparkSource

    return SparkSource(parsed)


__all__ = ["Source", "SourceError", "open_source"]
