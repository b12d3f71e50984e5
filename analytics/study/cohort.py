"""The study for one rule, as SQL in DuckDB: concept sets -> new-user cohort -> cells.

OHDSI CohortMethod's steps, named the same way:

1. concept sets: the rule's drug, its comparators, the outcome and each condition covariate,
   expanded to descendants through ``concept_ancestor`` when the vocabulary is present;
2. ``cohort``: new users of the drug or a comparator (first use, with a washout inside
   observation), research opt-outs excluded;
3. ``study_population``: the cohort with its genotype group, covariates and follow-up (time at
   risk from the day after the first dose to the outcome, death, end of observation or the end of
   the window);
4. ``cells``: events and person-time per (arm, group, covariates, time band): the sufficient
   statistics of a piecewise-exponential model, small enough to fit in statsmodels.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import duckdb
import pandas as pd

from analytics.data.genotypes import GENOTYPE_LOINC, latest_results_sql
from engine.decision.learning import CodedCondition, Learning, Outcome
from engine.decision.rules import Rule

REFERENCE = "reference"
VOCABULARY = {"snomed": "SNOMED", "icd10": "ICD10CM"}


def time_bands(days: int) -> list[tuple[int, int]]:
    """Follow-up intervals for the piecewise-exponential model: finer early, where hazards change."""
    edges = {0, days, *(edge for edge in (30, 90, 180) if edge < days), *range(365, days, 365)}
    return list(itertools.pairwise(sorted(edges)))


@dataclass(frozen=True)
class Study:
    """A rule's learning study, compiled to the names its SQL uses."""

    rule: Rule
    learning: Learning

    @property
    def gene(self) -> str:
        return self.rule.gene_list[0]

    def groups(self) -> dict[str, str]:
        """phenotype -> group label ('reference' for the reference phenotypes)."""
        mapping = {phenotype: REFERENCE for phenotype in self.learning.reference}
        for group in self.learning.groups:
            mapping.update({phenotype: group.label for phenotype in group.phenotypes})
        return mapping

    @property
    def covariate_names(self) -> list[str]:
        names = [c for c in self.learning.covariates if isinstance(c, str)]
        return names + [c.name for c in self.learning.condition_covariates]


def literal(value: str) -> str:
    """A string as an SQL literal (DuckDB syntax; SQLGlot re-quotes it for the other engines)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Catalog:
    """What the source engine holds, which the study SQL adapts to.

    ``diplotype_phenotypes``: gene -> diplotype -> phenotype, when genotypes are read from the
    source's ``measurement`` table (OMOP elsewhere); None when they are in the store's
    ``person_phenotype`` (the DuckDB path). ``result_counts``: (gene, diplotype) -> how many results
    the source holds, for the report's result checks (OMOP elsewhere only). ``opt_outs``: a relation
    holding ``person_id``.
    """

    tables: frozenset[str]
    condition_source: bool
    opt_outs: str
    measurement_source: bool = False
    genotype_text: bool = False  # measurement.value_source_value is present
    diplotype_phenotypes: dict[str, dict[str, str]] | None = None
    result_counts: dict[tuple[str, str], int] | None = None


CTE = tuple[str, str]  # (name, SELECT)


def _concept_set(catalog: Catalog, name: str, base_sql: str) -> list[CTE]:
    """``name``(concept_id): the concepts of ``base_sql`` and their descendants, when the hierarchy is present."""
    descendants = (
        f" UNION SELECT ca.descendant_concept_id FROM concept_ancestor ca "
        f"JOIN {name}_base b ON ca.ancestor_concept_id = b.concept_id"
        if "concept_ancestor" in catalog.tables
        else ""
    )
    return [(f"{name}_base", base_sql), (name, f"SELECT concept_id FROM {name}_base{descendants}")]


def _drug_set(catalog: Catalog, name: str, codes: list[str]) -> list[CTE]:
    """Drug concepts for RxNorm ``codes`` and their descendants."""
    codes_sql = ", ".join(literal(code) for code in codes if code.isdigit()) or "NULL"
    if "concept" in catalog.tables:
        rxnorm = f"SELECT concept_id FROM concept WHERE vocabulary_id = 'RxNorm' AND concept_code IN ({codes_sql})"
        return _concept_set(catalog, name, rxnorm)
    # no vocabulary: the extract's concept ids are the RxNorm codes themselves
    return [(name, f"SELECT DISTINCT drug_concept_id AS concept_id FROM drug_exposure "
                   f"WHERE CAST(drug_concept_id AS VARCHAR) IN ({codes_sql})")]  # fmt: skip


def _condition_set(catalog: Catalog, name: str, codes: tuple[CodedCondition, ...]) -> list[CTE]:
    """Condition concepts (ICD-10 codes cover their sub-codes) and their descendants.

    An ``omop`` code is the concept id itself: it needs no vocabulary to be found, and an id the
    site never uses matches nothing. SNOMED and ICD-10 codes are looked up in ``concept``.
    """
    found = [f"SELECT CAST({code.code} AS BIGINT) AS concept_id" for code in codes if code.system == "omop"]
    matches = []
    for code in codes:
        if code.system == "icd10":
            prefix = literal(code.code.replace(".", "") + "%")
            matches.append(f"(vocabulary_id LIKE 'ICD10%' AND replace(concept_code, '.', '') LIKE {prefix})")
        elif code.system == "snomed":
            vocabulary = literal(VOCABULARY[code.system])
            matches.append(f"(vocabulary_id = {vocabulary} AND concept_code = {literal(code.code)})")
    if matches and "concept" in catalog.tables:
        found.append(f"SELECT concept_id FROM concept WHERE {' OR '.join(matches)}")
    if not found:
        return [(name, "SELECT CAST(NULL AS BIGINT) AS concept_id WHERE 1 = 0")]
    return _concept_set(catalog, name, " UNION ".join(found))


def _source_match(column: str, codes: tuple[CodedCondition, ...]) -> str:
    """Without concept ids for a diagnosis, its source value still names the code."""
    parts = []
    for code in codes:
        if code.system == "omop":  # a concept id, never a source value
            continue
        plain = code.code.replace(".", "")
        parts.append(
            f"replace({column}, '.', '') LIKE {literal(plain + '%')}"
            if code.system == "icd10"
            else f"{column} = {literal(code.code)}"
        )
    return " OR ".join(parts) or "1 = 0"


def _occurrences(catalog: Catalog, concepts: str, codes: tuple[CodedCondition, ...]) -> str:
    by_source = f" OR ({_source_match('co.condition_source_value', codes)})" if catalog.condition_source else ""
    return (
        f"SELECT co.person_id, co.condition_start_date AS day FROM condition_occurrence co "
        f"LEFT JOIN {concepts} cs ON cs.concept_id = co.condition_concept_id "
        f"WHERE cs.concept_id IS NOT NULL{by_source}"
    )


def _values(rows: list[tuple[str, ...]], columns: str) -> str:
    """An inline table of string rows (never empty: an empty list gives a row of NULLs that joins nothing)."""
    width = len(columns.split(","))
    body = ", ".join("(" + ", ".join(literal(v) if v is not None else "NULL" for v in row) + ")" for row in rows)
    body = body or "(" + ", ".join(["CAST(NULL AS VARCHAR)"] * width) + ")"
    return f"SELECT * FROM (VALUES {body}) AS v({columns})"


def _person_groups(study: Study, catalog: Catalog) -> list[CTE]:
    """``person_group``(person_id, grp): each person's genotype group for the study's gene, latest result first."""
    gene = study.gene
    if catalog.diplotype_phenotypes is None:  # the store's person_phenotype (latest result already chosen)
        return [
            ("phenotype_groups", _values(sorted(study.groups().items()), "phenotype, grp")),
            ("person_group", f"SELECT pp.person_id, g.grp FROM person_phenotype pp JOIN phenotype_groups g "
                             f"ON g.phenotype = pp.phenotype WHERE pp.gene = {literal(gene)}"),
        ]  # fmt: skip
    # Genotypes in the source's measurement table; the diplotypes were phenotyped in Python (the
    # same gene definitions the service uses) and come back as an inline table. As in the store
    # (analytics.data.genotypes.refresh_phenotypes), results of the latest date that give different
    # phenotypes are Indeterminate: in no group.
    groups = study.groups()
    lookup = [(d, p, groups.get(p)) for d, p in sorted(catalog.diplotype_phenotypes.get(gene, {}).items())]
    return [
        ("genotype", f"SELECT * FROM ({genotype_rows(catalog)}) g WHERE gene = {literal(gene)}"),
        ("lookup", _values(lookup, "diplotype, phenotype, grp")),
        ("called", "SELECT r.person_id, r.result_date, l.phenotype, l.grp "
                   "FROM genotype r JOIN lookup l ON l.diplotype = r.diplotype"),
        ("latest", latest_results_sql("called", "person_id")),
        ("person_group", "SELECT person_id, min(grp) AS grp FROM latest GROUP BY person_id "
                         "HAVING min(phenotype) = max(phenotype) AND min(grp) IS NOT NULL"),
    ]  # fmt: skip


def genotype_rows(catalog: Catalog) -> str:
    """Genotype results in ``measurement`` (person_id, result_date, gene, diplotype), as in analytics.data.genotypes."""
    if not catalog.genotype_text:
        return (
            "SELECT CAST(NULL AS BIGINT) AS person_id, CAST(NULL AS DATE) AS result_date, "
            "CAST(NULL AS VARCHAR) AS gene, CAST(NULL AS VARCHAR) AS diplotype WHERE 1 = 0"
        )
    first_word = "split_part(trim(m.value_source_value), ' ', 1)"
    coded = ["m.measurement_concept_id IN (SELECT concept_id FROM concept WHERE vocabulary_id = 'LOINC' "
             f"AND concept_code = {literal(GENOTYPE_LOINC)})"] if "concept" in catalog.tables else []  # fmt: skip
    if catalog.measurement_source:
        coded.append(f"m.measurement_source_value = {literal(GENOTYPE_LOINC)}")
    return (
        f"SELECT m.person_id, m.measurement_date AS result_date, upper({first_word}) AS gene, "
        f"trim(substr(trim(m.value_source_value), length({first_word}) + 1)) AS diplotype "
        f"FROM measurement m WHERE {' OR '.join(coded) or '1 = 0'}"
    )


def cohort_ctes(study: Study, catalog: Catalog) -> list[CTE]:
    """Concept sets and ``cohort``: new users of the drug or a comparator, with their opt-out flag."""
    learning = study.learning
    ctes = _drug_set(catalog, "target_concepts", [code for drug in study.rule.drugs for code in drug.rxnorm])
    ctes += _drug_set(catalog, "comparator_concepts", [code for c in learning.comparators for code in c.rxnorm])
    ctes += [
        ("exposures", """SELECT d.person_id, d.drug_exposure_start_date AS day,
                CASE WHEN t.concept_id IS NOT NULL THEN 1 ELSE 0 END AS target
            FROM drug_exposure d
            LEFT JOIN target_concepts t ON t.concept_id = d.drug_concept_id
            LEFT JOIN comparator_concepts k ON k.concept_id = d.drug_concept_id
            WHERE t.concept_id IS NOT NULL OR k.concept_id IS NOT NULL"""),
        # a first day with both drugs counts as the rule's drug
        ("first_use", """SELECT person_id, min(day) AS index_date,
                CASE WHEN min(CASE WHEN target = 1 THEN day END) = min(day) THEN 1 ELSE 0 END AS target
            FROM exposures GROUP BY person_id"""),
        ("opt_out", f"SELECT DISTINCT person_id FROM {catalog.opt_outs}"),
        ("cohort", f"""SELECT f.person_id, f.index_date, f.target, op.observation_period_end_date AS obs_end,
                o.person_id IS NOT NULL AS opted_out
            FROM first_use f
            JOIN observation_period op ON op.person_id = f.person_id
             AND f.index_date BETWEEN op.observation_period_start_date + {int(learning.washout_days)}
                                  AND op.observation_period_end_date
            LEFT JOIN opt_out o ON o.person_id = f.person_id"""),
    ]  # fmt: skip
    return ctes


def candidate_ctes(study: Study, catalog: Catalog) -> list[CTE]:
    """``candidates``: the cohort (opt-outs left out) with genotype group, age band, sex, covariates and the
    end of follow-up; all that does not depend on the outcome, so a negative control's study shares it."""
    learning = study.learning
    ctes: list[CTE] = []
    covariate_columns, covariate_joins = [], []
    for covariate in learning.condition_covariates:
        name = covariate.name
        ctes += _condition_set(catalog, f"covariate_{name}_concepts", covariate.conditions)
        ctes.append((f"covariate_{name}", f"""SELECT DISTINCT c.person_id FROM cohort c
            JOIN ({_occurrences(catalog, f"covariate_{name}_concepts", covariate.conditions)}) x
              ON x.person_id = c.person_id AND x.day BETWEEN c.index_date - {int(covariate.lookback_days)}
             AND c.index_date"""))  # fmt: skip
        covariate_columns.append(f"CASE WHEN cv_{name}.person_id IS NOT NULL THEN 1 ELSE 0 END AS {name},")
        covariate_joins.append(f"LEFT JOIN covariate_{name} cv_{name} ON cv_{name}.person_id = c.person_id")
    if "death" in catalog.tables:
        ctes.append(("deaths", "SELECT person_id, min(death_date) AS death_date FROM death GROUP BY person_id"))
    else:
        ctes.append(("deaths", "SELECT CAST(NULL AS BIGINT) AS person_id, CAST(NULL AS DATE) AS death_date"))
    ctes += _person_groups(study, catalog)
    age = "year(c.index_date) - p.year_of_birth"
    ctes.append(("candidates", f"""SELECT c.person_id, c.index_date, c.target, pg.grp,
                CASE WHEN {age} >= 75 THEN '75+' WHEN {age} >= 65 THEN '65-74'
                     WHEN {age} >= 50 THEN '50-64' ELSE '<50' END AS age,
                CASE WHEN p.gender_concept_id = 8532 THEN 'F' ELSE 'M' END AS sex,
                {" ".join(covariate_columns)}
                least(c.obs_end, c.index_date + {int(learning.time_at_risk_days)},
                      coalesce(dth.death_date, c.obs_end)) AS end_date
            FROM cohort c
            JOIN person p ON p.person_id = c.person_id
            JOIN person_group pg ON pg.person_id = c.person_id
            LEFT JOIN deaths dth ON dth.person_id = c.person_id
            {" ".join(covariate_joins)}
            WHERE NOT c.opted_out"""))  # fmt: skip
    return ctes


def outcome_ctes(study: Study, catalog: Catalog) -> list[CTE]:
    """``study_population``: the candidates (less those with the outcome before, if the study says so) with
    their first outcome in follow-up."""
    learning = study.learning
    ctes = _condition_set(catalog, "outcome_concepts", learning.outcome.conditions)
    ctes.append(("outcomes", _occurrences(catalog, "outcome_concepts", learning.outcome.conditions)))
    prior_join, prior_where = "", ""
    if learning.exclude_prior_outcome:
        ctes.append(("prior_outcome", """SELECT DISTINCT c.person_id FROM candidates c
            JOIN outcomes o ON o.person_id = c.person_id AND o.day <= c.index_date"""))  # fmt: skip
        prior_join = "LEFT JOIN prior_outcome po ON po.person_id = c.person_id"
        prior_where = "WHERE po.person_id IS NULL"
    ctes += [
        ("base", f"SELECT c.* FROM candidates c {prior_join} {prior_where}"),
        ("first_event", """SELECT b.person_id, min(o.day) AS event_date FROM base b
            JOIN outcomes o ON o.person_id = b.person_id AND o.day > b.index_date AND o.day <= b.end_date
            GROUP BY b.person_id"""),
        ("study_population", """SELECT b.*, fe.event_date FROM base b
            LEFT JOIN first_event fe ON fe.person_id = b.person_id
            WHERE b.end_date > b.index_date"""),
    ]  # fmt: skip
    return ctes


def population_ctes(study: Study, catalog: Catalog) -> list[CTE]:
    """``study_population``: the cohort with genotype group, covariates, follow-up end and first outcome."""
    return candidate_ctes(study, catalog) + outcome_ctes(study, catalog)


def cells_ctes(study: Study) -> list[CTE]:
    """``cells``: events and person-time (days) per arm, group, covariates and time band."""
    keys = ", ".join(["target", "grp", *study.covariate_names])
    bands = ", ".join(f"({start}, {end})" for start, end in time_bands(study.learning.time_at_risk_days))
    return [
        ("bands", f"SELECT * FROM (VALUES {bands}) AS v(band_start, band_end)"),
        ("follow", """SELECT *, date_diff('day', index_date, coalesce(event_date, end_date)) AS fu,
                event_date IS NOT NULL AS had_event FROM study_population"""),
        ("cells", f"""SELECT {keys}, b.band_start AS band, count(*) AS n,
                CAST(sum(CASE WHEN had_event AND fu > b.band_start AND fu <= b.band_end THEN 1 ELSE 0 END) AS BIGINT)
                    AS events,
                CAST(sum(least(fu, b.band_end) - b.band_start) AS BIGINT) AS person_days
            FROM follow f JOIN bands b ON f.fu > b.band_start
            GROUP BY {keys}, b.band_start"""),
    ]  # fmt: skip


def with_query(ctes: list[CTE], final: str) -> str:
    """One statement: the CTEs in order, then ``final``."""
    return "WITH " + ",\n".join(f"{name} AS ({sql})" for name, sql in ctes) + "\n" + final


def cells_query(study: Study, catalog: Catalog) -> str:
    """The whole study as one query (DuckDB syntax) returning the cells: what runs in the source engine."""
    return with_query(cohort_ctes(study, catalog) + population_ctes(study, catalog) + cells_ctes(study),
                      "SELECT * FROM cells")  # fmt: skip


def recorded_query(outcomes: tuple[Outcome, ...], catalog: Catalog) -> str:
    """Which of ``outcomes`` (by position, column ``k``) have any record in ``condition_occurrence``.

    An outcome never recorded here (a concept this site's vocabulary does not have, or one nobody
    was ever diagnosed with) needs no study: its estimate could only be empty.
    """
    ctes, found = [], []
    for k, outcome in enumerate(outcomes):
        concepts = f"recorded_{k}_concepts"
        ctes += _condition_set(catalog, concepts, outcome.conditions)
        found.append(f"SELECT {k} AS k WHERE EXISTS ({_occurrences(catalog, concepts, outcome.conditions)})")
    return with_query(ctes, " UNION ALL ".join(found))


def sorted_cells(frame: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Cells in one order and with integer counts, whatever engine computed them."""
    keys = ["target", "grp", *study.covariate_names, "band"]
    whole = ["target", "band", "n", "events", "person_days", *(c.name for c in study.learning.condition_covariates)]
    frame = frame.astype({column: "int64" for column in whole})
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def store_catalog(con: duckdb.DuckDBPyConnection) -> Catalog:
    """The catalog of the analytics store (the DuckDB path)."""
    tables = frozenset(row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_catalog = current_database()").fetchall())  # fmt: skip
    columns = {row[0] for row in con.execute("DESCRIBE condition_occurrence").fetchall()}
    return Catalog(tables, "condition_source_value" in columns, "research_opt_out")


def build(con: duckdb.DuckDBPyConnection, study: Study, built: dict[str, str] | None = None) -> None:
    """Create the temp tables ``target_concepts``, ``comparator_concepts``, ``cohort``, ``candidates`` and
    ``study_population`` for ``study`` in the store (the report reads them too).

    ``built``: the SQL each table was last built from on ``con``, kept by the caller across studies of one
    cycle. A table whose SQL and inputs are unchanged is kept: a negative control's study differs from its
    rule's only in the outcome, so only ``study_population`` is built again.
    """
    catalog = store_catalog(con)
    built = {} if built is None else built
    cohort = cohort_ctes(study, catalog)
    tables = [(name, with_query(cohort, f"SELECT * FROM {name}"))
              for name in ("target_concepts", "comparator_concepts", "cohort")]  # fmt: skip
    tables.append(("candidates", with_query(candidate_ctes(study, catalog), "SELECT * FROM candidates")))
    tables.append(("study_population", with_query(outcome_ctes(study, catalog), "SELECT * FROM study_population")))
    changed = False
    for name, sql in tables:
        changed = changed or built.get(name) != sql  # a table built again makes every later one stale
        if changed:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
            built[name] = sql


def cells(con: duckdb.DuckDBPyConnection, study: Study) -> pd.DataFrame:
    """Events and person-time (days) per arm, group, covariates and time band, from ``study_population``."""
    return sorted_cells(con.execute(with_query(cells_ctes(study), "SELECT * FROM cells")).df(), study)


def individual_rows(con: duckdb.DuckDBPyConnection, study: Study) -> pd.DataFrame:
    """One row per person (time, event, covariates): for checks against an individual-level model."""
    covariates = ", ".join(study.covariate_names)
    return con.execute(
        f"""SELECT target, grp, {covariates}, date_diff('day', index_date, coalesce(event_date, end_date)) AS fu,
                   CAST(event_date IS NOT NULL AS INTEGER) AS event
            FROM study_population"""
    ).df()


def person_bands(rows: pd.DataFrame, days: int) -> pd.DataFrame:
    """``individual_rows`` split at the band edges: the person-level data the cells summarise."""
    pieces = []
    for start, end in time_bands(days):
        at_risk = rows[rows.fu > start].copy()
        at_risk["band"] = start
        at_risk["person_days"] = at_risk.fu.clip(upper=end) - start
        at_risk["events"] = ((at_risk.event == 1) & (at_risk.fu <= end)).astype(int)
        pieces.append(at_risk)
    return pd.concat(pieces, ignore_index=True)
