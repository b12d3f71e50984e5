"""What the report shows of the OMOP data, as aggregates computed by the cycle where the data lives.

The same SQL (DuckDB's dialect, rendered by SQLGlot for PostgreSQL and Spark as the cells are) runs
in the analytics store or in the site's engine; only counts come out, and they are stored per run
(``cohort_count``, ``cohort_opt_out``, ``coverage_count``), so the report reads the same tables
whichever engine ran the cycle:

- per rule: new users, events and person-days per genotype group, arm and population group (the
  cohort and equity tables), and the new users excluded for a research opt-out (the cycle's count too);
- per population group: persons with a usable genotype call, only Indeterminate calls, or none;
- the result checks (``quality_count``), when OMOP is queried where it lives: results naming an allele the
  gene definitions do not know, results that are not a diplotype, persons whose results for one gene
  disagree (and whether their phenotypes do). On the store the report checks ``pgx_result`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import duckdb
import pandas as pd

from analytics.data.genotypes import latest_results_sql
from analytics.study.cohort import CTE, Catalog, Study, cohort_ctes, genotype_rows, literal, population_ctes, with_query
from engine.genotype.phenotyper import call_diplotype
from engine.rulebook.library import Library

RACE = {8527: "White", 8516: "Black or African American", 8515: "Asian", 8557: "Native Hawaiian or Pacific Islander",
        8657: "American Indian or Alaska Native"}  # fmt: skip
HISPANIC = 38003563
UNKNOWN_GROUP = "Unknown or not reported"

Run = Callable[[str], pd.DataFrame]  # runs a DuckDB-dialect query where the OMOP data is


def group_label_sql(alias: str = "p") -> str:
    """SQL naming a person's race/ethnicity group: Hispanic or Latino (any race), else the OMOP race."""
    races = " ".join(f"WHEN {concept} THEN '{name}'" for concept, name in RACE.items())
    return (
        f"CASE WHEN {alias}.ethnicity_concept_id = {HISPANIC} THEN 'Hispanic or Latino (any race)' "
        f"ELSE CASE {alias}.race_concept_id {races} ELSE '{UNKNOWN_GROUP}' END END"
    )


def cohort_counts_query(study: Study, catalog: Catalog) -> str:
    """Per genotype group, arm (``target``) and population group: persons, events and person-days; then one
    row with no group holding the new users who opted out."""
    ctes = cohort_ctes(study, catalog) + population_ctes(study, catalog)
    ctes.append(("labelled", f"""SELECT s.grp, s.target, {group_label_sql()} AS population, s.event_date,
            date_diff('day', s.index_date, coalesce(s.event_date, s.end_date)) AS fu
        FROM study_population s JOIN person p ON p.person_id = s.person_id"""))  # fmt: skip
    return with_query(ctes, """SELECT grp, target, population, count(*) AS persons, count(event_date) AS events,
            CAST(sum(fu) AS BIGINT) AS person_days
        FROM labelled GROUP BY grp, target, population
        UNION ALL
        SELECT CAST(NULL AS VARCHAR), CAST(NULL AS INTEGER), CAST(NULL AS VARCHAR), count(*), CAST(0 AS BIGINT),
            CAST(0 AS BIGINT)
        FROM cohort WHERE opted_out""")  # fmt: skip


def cohort_counts(run: Run, study: Study, catalog: Catalog) -> tuple[pd.DataFrame, int]:
    """The study's cohort counts (``cohort_counts_query``) and its opted-out count, from where the data is."""
    rows = run(cohort_counts_query(study, catalog))
    opted_out = rows.grp.isna()
    return rows[~opted_out].reset_index(drop=True), int(rows.persons[opted_out].sum())


def _phenotyped_results(diplotype_phenotypes: dict[str, dict[str, str]], catalog: Catalog) -> list[CTE]:
    """``genotype`` (the source's results) and ``lookup``(gene, diplotype, phenotype) of their diplotypes."""
    calls = sorted((gene, diplotype, phenotype) for gene, table in diplotype_phenotypes.items()
                   for diplotype, phenotype in table.items())  # fmt: skip
    body = ", ".join(f"({literal(g)}, {literal(d)}, {literal(p)})" for g, d, p in calls)
    body = body or "(CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR))"
    return [
        ("genotype", genotype_rows(catalog)),
        ("lookup", f"SELECT * FROM (VALUES {body}) AS v(gene, diplotype, phenotype)"),
    ]


def _person_calls(catalog: Catalog) -> list[CTE]:
    """``person_call``(person_id, phenotype): each person's call per gene, from the latest result."""
    if catalog.diplotype_phenotypes is None:  # the store's person_phenotype
        return [("person_call", "SELECT person_id, phenotype FROM person_phenotype")]
    # as refresh_phenotypes calls them in the store: results of the latest date that disagree are Indeterminate
    return [
        *_phenotyped_results(catalog.diplotype_phenotypes, catalog),
        ("called", "SELECT r.person_id, r.gene, r.result_date, l.phenotype "
                   "FROM genotype r JOIN lookup l ON l.gene = r.gene AND l.diplotype = r.diplotype"),
        ("latest", latest_results_sql("called", "person_id, gene")),
        ("person_call", "SELECT person_id, CASE WHEN min(phenotype) = max(phenotype) THEN min(phenotype) "
                        "ELSE 'Indeterminate' END AS phenotype FROM latest GROUP BY person_id, gene"),
    ]  # fmt: skip


def coverage_query(catalog: Catalog) -> str:
    """Per population group: persons with a usable call (any gene), only Indeterminate calls, or no call."""
    ctes = [
        *_person_calls(catalog),
        ("calls", "SELECT person_id, max(CASE WHEN phenotype <> 'Indeterminate' THEN 1 ELSE 0 END) AS usable "
                  "FROM person_call GROUP BY person_id"),
        ("labelled", f"SELECT {group_label_sql()} AS population, c.usable FROM person p "
                     "LEFT JOIN calls c ON c.person_id = p.person_id"),
    ]  # fmt: skip
    return with_query(ctes, """SELECT population, CAST(sum(CASE WHEN usable = 1 THEN 1 ELSE 0 END) AS BIGINT)
            AS determinate, CAST(sum(CASE WHEN usable = 0 THEN 1 ELSE 0 END) AS BIGINT) AS indeterminate,
            CAST(sum(CASE WHEN usable IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS untested
        FROM labelled GROUP BY population""")  # fmt: skip


@dataclass(frozen=True)
class ResultChecks:
    """What the report's data-quality section says of the genotype results."""

    unknown_alleles: int  # results naming an allele the gene definitions do not know
    unreadable: int  # results that are not a diplotype at all
    disagreeing: int = 0  # person-genes with results of more than one diplotype
    disagreeing_phenotype: int = 0  # ... whose diplotypes give different phenotypes


def allele_checks(pairs: Iterable[tuple[str, str, int]], library: Library) -> ResultChecks:
    """Unknown alleles and unreadable results among ``pairs`` (gene, diplotype, how many results)."""
    unknown = unreadable = 0
    for gene, diplotype, n in pairs:
        definition = library.genes.get(gene)
        if definition is None:
            continue
        reason = call_diplotype(definition, diplotype).reason or ""
        unknown += n if reason.startswith("allele not in") else 0
        unreadable += n if reason.startswith(("not a diplotype", "one allele without its zygosity")) else 0
    return ResultChecks(unknown, unreadable)


def disagreeing_query(catalog: Catalog) -> str:
    """Person-genes whose results name more than one diplotype, and of those, more than one phenotype."""
    ctes = [
        *_phenotyped_results(catalog.diplotype_phenotypes or {}, catalog),
        # A gene without definitions has no phenotype: its diplotypes count as one (''), as they do on the store.
        ("per_gene", "SELECT g.person_id, g.gene, count(DISTINCT g.diplotype) AS diplotypes, "
                     "count(DISTINCT coalesce(l.phenotype, '')) AS phenotypes FROM genotype g "
                     "LEFT JOIN lookup l ON l.gene = g.gene AND l.diplotype = g.diplotype "
                     "GROUP BY g.person_id, g.gene"),
    ]  # fmt: skip
    return with_query(ctes, """SELECT CAST(count(*) AS BIGINT) AS disagreeing,
            CAST(coalesce(sum(CASE WHEN phenotypes > 1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS disagreeing_phenotype
        FROM per_gene WHERE diplotypes > 1""")  # fmt: skip


def result_checks(run: Run, catalog: Catalog, library: Library) -> ResultChecks:
    """The result checks of genotypes read where OMOP lives: the counts the catalog brought, one row more."""
    pairs = ((gene, diplotype, n) for (gene, diplotype), n in (catalog.result_counts or {}).items())
    checks = allele_checks(pairs, library)
    row = run(disagreeing_query(catalog)).iloc[0]
    return ResultChecks(checks.unknown_alleles, checks.unreadable, int(row.disagreeing),
                        int(row.disagreeing_phenotype))  # fmt: skip


def store_checks(con: duckdb.DuckDBPyConnection, run_id: str, checks: ResultChecks) -> None:
    """Record the result checks for run ``run_id``."""
    con.execute("INSERT INTO quality_count VALUES (?, ?, ?, ?, ?)",
                [run_id, checks.unknown_alleles, checks.unreadable, checks.disagreeing,
                 checks.disagreeing_phenotype])  # fmt: skip


def store_cohort(con: duckdb.DuckDBPyConnection, run_id: str, rule: str, counts: pd.DataFrame, opted_out: int) -> None:
    """Record one rule's cohort counts and opt-outs for run ``run_id``."""
    for row in counts.sort_values(["grp", "target", "population"]).itertuples(index=False):
        con.execute("INSERT INTO cohort_count VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, rule, row.grp, int(row.target), row.population, int(row.persons), int(row.events),
                     int(row.person_days or 0)])  # fmt: skip
    con.execute("INSERT INTO cohort_opt_out VALUES (?, ?, ?)", [run_id, rule, opted_out])


def store_coverage(con: duckdb.DuckDBPyConnection, run_id: str, counts: pd.DataFrame) -> None:
    """Record the result coverage per population group for run ``run_id``."""
    for row in counts.sort_values("population").itertuples(index=False):
        con.execute("INSERT INTO coverage_count VALUES (?, ?, ?, ?, ?)",
                    [run_id, row.population, int(row.determinate), int(row.indeterminate), int(row.untested)])
