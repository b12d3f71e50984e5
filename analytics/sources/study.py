"""The learning study run inside a source engine: check its CDM, phenotype its genotypes, bring back cells.

Genotypes: with OMOP elsewhere they are read where they live, from the source's ``measurement``
(LOINC 84413-4, "GENE diplotype" in ``value_source_value``, as analytics.data.genotypes reads them).
Only the distinct (gene, diplotype) pairs come out, to be phenotyped with the service's gene
definitions; the phenotype of each diplotype goes back in as an inline table. Genotypes loaded
into the store from a lab file are not pushed into the site's engine. The research opt-out list
is the store's (``load-opt-outs``): its person ids go *into* the query, nothing comes out.
"""

from __future__ import annotations

import logging

import pandas as pd

from analytics.data import cdm
from analytics.data.products import VOCABULARY
from analytics.sources.base import Source, SourceError
from analytics.study.cohort import Catalog, Study, cells_query, genotype_rows, sorted_cells
from engine.genotype.phenotyper import call_diplotype
from engine.rulebook.library import Library

log = logging.getLogger(__name__)


def usable_tables(source: Source) -> dict[str, dict[str, str]]:
    """The source's CDM tables the study can read; ``SourceError`` naming what stops it.

    As on import (analytics.data.omop): a required table missing a column or of a wrong type stops the
    cycle; an optional one (vocabulary, death) in that state is left out with a warning. A vocabulary
    the URL names (``source.vocabulary``) is required: its ``concept`` and ``concept_ancestor``, missing or
    unusable, stop the cycle with the schema named, rather than a study run silently without them.
    """
    columns = source.columns()
    required = [*cdm.REQUIRED_TABLES, *(VOCABULARY if source.vocabulary else ())]
    problems = [_where(source, name, f"missing table {name}") for name in required if name not in columns]
    usable = {}
    for table, types in columns.items():
        if table not in cdm.USED_TABLES:
            usable[table] = types
            continue
        found = [f"{table}.{column} is missing" for column in cdm.missing_columns(table, set(types))]
        found += cdm.type_problems(table, types, loaded=True)
        if not found:
            usable[table] = types
        elif table in required:
            problems += [_where(source, table, problem) for problem in found]
        else:
            log.warning("%s: %s; left out, as if the source had no %s table", source.shown, "; ".join(found), table)
    if problems:
        raise SourceError(f"{source.shown}: " + "; ".join(problems))
    return usable


def _where(source: Source, table: str, problem: str) -> str:
    """``problem``, naming the vocabulary schema when ``table`` was looked for there."""
    return f"{problem} in {source.vocabulary}" if source.vocabulary and table in VOCABULARY else problem


def catalog(source: Source, library: Library, opt_outs: list[int]) -> Catalog:
    """What the study SQL needs to know of ``source``, with its diplotypes phenotyped."""
    tables = usable_tables(source)
    measurement = tables["measurement"]
    found = Catalog(
        frozenset(tables), "condition_source_value" in tables["condition_occurrence"],
        source.pushed_ids("opted_out", sorted(opt_outs)),
        measurement_source="measurement_source_value" in measurement,
        genotype_text="value_source_value" in measurement,
    )  # fmt: skip
    lookup: dict[str, dict[str, str]] = {}
    counts: dict[tuple[str, str], int] = {}
    if found.genotype_text:
        # Distinct results: the same result recorded twice is one result for the report's checks.
        results = f"SELECT DISTINCT person_id, result_date, gene, diplotype FROM ({genotype_rows(found)}) r"
        pairs = source.query(f"SELECT gene, diplotype, count(*) AS results FROM ({results}) g GROUP BY gene, diplotype")
        for gene, diplotype, n in pairs.itertuples(index=False):
            if gene is None or diplotype is None:
                continue
            counts[(gene, diplotype)] = int(n)
            definition = library.genes.get(gene)
            if definition is not None:
                lookup.setdefault(gene, {})[diplotype] = call_diplotype(definition, diplotype).phenotype
    return Catalog(found.tables, found.condition_source, found.opt_outs, found.measurement_source,
                   found.genotype_text, lookup, counts)  # fmt: skip


def study_cells(source: Source, study: Study, found: Catalog) -> pd.DataFrame:
    """The study's cells, computed in the source engine."""
    return sorted_cells(source.query(cells_query(study, found)), study)


def row_counts(source: Source, tables: frozenset[str]) -> dict:
    """Row counts of the CDM tables the cycle rests on (one aggregate query), for the run's data snapshot."""
    names = sorted(tables & set(cdm.USED_TABLES))
    union = " UNION ALL ".join(f"SELECT '{name}' AS name, count(*) AS n FROM {name}" for name in names)
    return {name: {"rows": int(n)} for name, n in source.query(union).itertuples(index=False)}
