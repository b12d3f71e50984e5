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

from analytics.store import scalar, table_exists
from engine.learning import CodedCondition, Learning
from engine.rules import Rule

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


def _descendants(con: duckdb.DuckDBPyConnection) -> str:
    """The clause adding descendant concepts of ``base``, when the vocabulary's hierarchy is present."""
    if not table_exists(con, "concept_ancestor"):
        return ""
    return (
        "UNION SELECT ca.descendant_concept_id FROM concept_ancestor ca "
        "JOIN base b ON ca.ancestor_concept_id = b.concept_id"
    )


def _drug_set(con: duckdb.DuckDBPyConnection, name: str, codes: list[str]) -> None:
    """Temp table ``name``(concept_id) of drug concepts for RxNorm ``codes`` and their descendants."""
    codes_sql = ", ".join(f"'{code}'" for code in codes if code.isdigit())
    if table_exists(con, "concept"):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {name} AS
            WITH base AS (
                SELECT concept_id FROM concept WHERE vocabulary_id = 'RxNorm' AND concept_code IN ({codes_sql})
            )
            SELECT concept_id FROM base {_descendants(con)}"""
        )
    else:  # no vocabulary: the extract's concept ids or source values are the RxNorm codes themselves
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {name} AS
            SELECT DISTINCT drug_concept_id AS concept_id FROM drug_exposure
            WHERE CAST(drug_concept_id AS VARCHAR) IN ({codes_sql})"""
        )


def _condition_set(con: duckdb.DuckDBPyConnection, name: str, codes: tuple[CodedCondition, ...]) -> None:
    """Temp table ``name``(concept_id) of condition concepts (ICD-10 codes cover their sub-codes)."""
    if not table_exists(con, "concept"):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} (concept_id BIGINT)")
        return
    matches = []
    for code in codes:
        vocabulary = VOCABULARY[code.system]
        if code.system == "icd10":
            matches.append(
                f"(vocabulary_id LIKE 'ICD10%' AND replace(concept_code, '.', '') LIKE '{code.code.replace('.', '')}%')"
            )
        else:
            matches.append(f"(vocabulary_id = '{vocabulary}' AND concept_code = '{code.code}')")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {name} AS
        WITH base AS (SELECT concept_id FROM concept WHERE {" OR ".join(matches)})
        SELECT concept_id FROM base {_descendants(con)}"""
    )


def _source_match(column: str, codes: tuple[CodedCondition, ...]) -> str:
    """Without concept ids for a diagnosis, its source value still names the code."""
    parts = []
    for code in codes:
        plain = code.code.replace(".", "")
        parts.append(
            f"replace({column}, '.', '') LIKE '{plain}%'" if code.system == "icd10" else f"{column} = '{code.code}'"
        )
    return " OR ".join(parts) or "FALSE"


def build(con: duckdb.DuckDBPyConnection, study: Study) -> None:
    """Create the temp tables ``cohort`` and ``study_population`` for ``study``."""
    learning = study.learning
    _drug_set(con, "target_concepts", [code for drug in study.rule.drugs for code in drug.rxnorm])
    _drug_set(con, "comparator_concepts", [code for c in learning.comparators for code in c.rxnorm])
    _condition_set(con, "outcome_concepts", learning.outcome.conditions)
    has_source = "condition_source_value" in {r[0] for r in con.execute("DESCRIBE condition_occurrence").fetchall()}

    def occurrences(concepts: str, codes: tuple[CodedCondition, ...]) -> str:
        by_source = f" OR ({_source_match('condition_source_value', codes)})" if has_source else ""
        return (
            f"SELECT person_id, condition_start_date AS day FROM condition_occurrence "
            f"WHERE condition_concept_id IN (SELECT concept_id FROM {concepts}){by_source}"
        )

    covariate_sql = []
    for covariate in learning.condition_covariates:
        _condition_set(con, f"covariate_{covariate.name}", covariate.conditions)
        covariate_sql.append(
            f"""CAST(EXISTS (SELECT 1 FROM ({occurrences(f"covariate_{covariate.name}", covariate.conditions)}) x
                WHERE x.person_id = c.person_id AND x.day BETWEEN c.index_date - {covariate.lookback_days}
                AND c.index_date) AS INTEGER) AS {covariate.name}"""
        )
    opt_out = "research_opt_out" if table_exists(con, "research_opt_out") else "(SELECT NULL::BIGINT AS person_id)"
    deaths = (
        "SELECT person_id, min(death_date) AS death_date FROM death GROUP BY person_id"
        if table_exists(con, "death")
        else "SELECT NULL::BIGINT AS person_id, NULL::DATE AS death_date"
    )
    death = f"LEFT JOIN ({deaths}) dth USING (person_id)"
    con.register("groups", pd.DataFrame(list(study.groups().items()), columns=["phenotype", "grp"]))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE cohort AS
        WITH exposures AS (
            SELECT d.person_id, d.drug_exposure_start_date AS day,
                   CASE WHEN d.drug_concept_id IN (SELECT concept_id FROM target_concepts) THEN 1 ELSE 0 END AS target
            FROM drug_exposure d
            WHERE d.drug_concept_id IN (SELECT concept_id FROM target_concepts)
               OR d.drug_concept_id IN (SELECT concept_id FROM comparator_concepts)
        ),
        first_use AS (
            SELECT person_id, min(day) AS index_date, arg_min(target, day) AS target FROM exposures GROUP BY person_id
        )
        SELECT f.person_id, f.index_date, f.target, op.observation_period_end_date AS obs_end,
               f.person_id IN (SELECT person_id FROM {opt_out}) AS opted_out
        FROM first_use f
        JOIN observation_period op ON op.person_id = f.person_id
         AND f.index_date BETWEEN op.observation_period_start_date + {learning.washout_days}
                              AND op.observation_period_end_date
        """
    )
    prior = (
        "AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.person_id = c.person_id AND o.day <= c.index_date)"
        if learning.exclude_prior_outcome
        else ""
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE study_population AS
        WITH outcomes AS ({occurrences("outcome_concepts", learning.outcome.conditions)}),
        base AS (
            SELECT c.person_id, c.index_date, c.target, g.grp,
                   CASE WHEN year(c.index_date) - p.year_of_birth >= 75 THEN '75+'
                        WHEN year(c.index_date) - p.year_of_birth >= 65 THEN '65-74'
                        WHEN year(c.index_date) - p.year_of_birth >= 50 THEN '50-64' ELSE '<50' END AS age,
                   CASE WHEN p.gender_concept_id = 8532 THEN 'F' ELSE 'M' END AS sex,
                   {", ".join(covariate_sql) + "," if covariate_sql else ""}
                   least(c.obs_end, c.index_date + {learning.time_at_risk_days},
                         coalesce(dth.death_date, c.obs_end)) AS end_date
            FROM cohort c
            JOIN person p USING (person_id)
            JOIN person_phenotype pp ON pp.person_id = c.person_id AND pp.gene = '{study.gene}'
            JOIN groups g ON g.phenotype = pp.phenotype
            {death}
            WHERE NOT c.opted_out {prior}
        )
        SELECT b.*,
               (SELECT min(o.day) FROM outcomes o WHERE o.person_id = b.person_id
                 AND o.day > b.index_date AND o.day <= b.end_date) AS event_date
        FROM base b WHERE b.end_date > b.index_date
        """
    )


def excluded_opt_outs(con: duckdb.DuckDBPyConnection) -> int:
    return int(scalar(con, "SELECT count(*) FROM cohort WHERE opted_out"))


def cells(con: duckdb.DuckDBPyConnection, study: Study) -> pd.DataFrame:
    """Events and person-time (days) per arm, group, covariates and time band."""
    con.register(
        "bands", pd.DataFrame(time_bands(study.learning.time_at_risk_days), columns=["band_start", "band_end"])
    )
    covariates = ", ".join(study.covariate_names)
    return con.execute(
        f"""
        WITH follow AS (
            SELECT *, date_diff('day', index_date, coalesce(event_date, end_date)) AS fu,
                   event_date IS NOT NULL AS had_event
            FROM study_population
        )
        SELECT target, grp, {covariates}, b.band_start AS band,
               count(*) AS n,
               sum(CASE WHEN had_event AND fu > b.band_start AND fu <= b.band_end THEN 1 ELSE 0 END) AS events,
               sum(least(fu, b.band_end) - b.band_start) AS person_days
        FROM follow f JOIN bands b ON f.fu > b.band_start
        GROUP BY ALL
        ORDER BY ALL
        """
    ).df()


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
