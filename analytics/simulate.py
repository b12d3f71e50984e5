"""A synthetic OMOP cohort with known truth, for every rule that has a ``learning:`` section.

Per person: an ancestry group (with CPIC-relevant allele frequencies), sex, birth year, an
observation period, and a true diplotype for each gene; about 60% have the result on file (as an
OMOP ``measurement`` and in ``pgx_result``). Per rule: some persons start the rule's drug or one
of its comparators on an index date, with confounders (age, sex, the rule's condition covariates)
that raise both the chance of the alternative and the outcome hazard. After the alert goes live,
patients with a known risk phenotype are mostly switched to the alternative, and the service's
cards and feedback for them are written to ``cds_event``. Outcomes come from a proportional-hazards
model with a constant baseline hazard: on the rule's drug the hazard is multiplied by the true
hazard ratio of the patient's phenotype, on a comparator it is not (alternatives are genotype-
neutral). Follow-up ends at the outcome, death, the end of observation or the study end.

The truth used is stored in ``sim_truth``. Concept ids are local (2 000 000 000 and up, the OMOP
range for site concepts); the ``concept`` and ``concept_ancestor`` rows map them to the real RxNorm,
SNOMED and LOINC codes the rules name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

from analytics.store import LOOP_TABLES, transaction
from engine.identifiers import Identifiers
from engine.library import Library
from engine.phenotyper import call_diplotype
from engine.rules import Rule

STUDY_START = date(2018, 1, 1)
STUDY_END = date(2025, 12, 31)
GO_LIVE = date(2022, 1, 1)
DAY0 = np.datetime64(STUDY_START.isoformat())
STUDY_DAYS = (STUDY_END - STUDY_START).days

ANCESTRY = ("EUR", "AFR", "EAS", "SAS", "AMR")
ANCESTRY_SHARE = (0.60, 0.15, 0.08, 0.05, 0.12)
RACE_CONCEPT = {"EUR": 8527, "AFR": 8516, "EAS": 8515, "SAS": 8515, "AMR": 0}  # OMOP race: White, Black, Asian
HISPANIC, NOT_HISPANIC = 38003563, 38003564
MALE, FEMALE = 8507, 8532

# Allele frequencies by ancestry (../shared/reference/learning-loop.md §1 for CYP2C19; SLCO1B1 *5/*15
# from rs4149056 frequencies). Whatever is left is the reference allele ("*1").
ALLELE_FREQUENCIES: dict[str, dict[str, tuple[float, ...]]] = {
    "CYP2C19": {
        "*2": (0.15, 0.17, 0.31, 0.34, 0.10),
        "*3": (0.0005, 0.002, 0.06, 0.004, 0.0005),
        "*17": (0.22, 0.235, 0.015, 0.136, 0.12),
        "*9": (0.001, 0.012, 0.0005, 0.0005, 0.001),
        "*12": (0.0005, 0.001, 0.0005, 0.0005, 0.0005),
    },
    "SLCO1B1": {
        "*15": (0.14, 0.02, 0.11, 0.04, 0.09),
        "*5": (0.02, 0.005, 0.005, 0.005, 0.01),
        "*14": (0.03, 0.01, 0.08, 0.02, 0.03),
    },
}

# Literature defaults, per rule and phenotype (used without --truth).
DEFAULT_TRUTH: dict[str, dict] = {
    "cyp2c19-clopidogrel": {  # Mega JS et al. JAMA 2010;304:1821 (MACE on clopidogrel)
        "baseline_rate": 0.06,
        "hazard_ratio": {"Intermediate Metabolizer": 1.55, "Poor Metabolizer": 1.76},
    },
    "slco1b1-simvastatin": {  # SEARCH, Link E et al. NEJM 2008;359:789 (myopathy on simvastatin)
        "baseline_rate": 0.01,
        "hazard_ratio": {"Decreased Function": 4.5, "Poor Function": 16.9},
    },
}

CONCEPT_BASE = 2_000_000_000
COVARIATE_LOG_HR = {"age75": math.log(1.6), "age65": math.log(1.3), "female": math.log(0.9), "condition": math.log(1.4)}


@dataclass
class Truth:
    """The true effects: per rule, the 1-year outcome risk of normal metabolizers and the HRs."""

    rules: dict[str, dict] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_TRUTH.items()})

    @classmethod
    def from_file(cls, path: Path) -> Truth:
        data = yaml.safe_load(path.read_text()) or {}
        rules = data.get("rules") if isinstance(data, dict) else None
        if not isinstance(rules, dict):
            raise ValueError(f"{path}: expected a mapping 'rules: {{rule-id: {{baseline_rate, hazard_ratio}}}}'")
        truth = cls()
        for rule_id, spec in rules.items():
            if not isinstance(spec, dict) or not isinstance(spec.get("hazard_ratio", {}), dict):
                raise ValueError(f"{path}: rules.{rule_id} needs baseline_rate and a hazard_ratio mapping")
            merged = dict(truth.rules.get(rule_id, {"baseline_rate": 0.05, "hazard_ratio": {}}))
            merged.update({k: v for k, v in spec.items() if k != "hazard_ratio"})
            merged["hazard_ratio"] = {str(p): float(hr) for p, hr in (spec.get("hazard_ratio") or {}).items()}
            rate = float(merged.get("baseline_rate", 0.05))
            if not 0 < rate < 1:
                raise ValueError(f"{path}: rules.{rule_id}.baseline_rate must be between 0 and 1")
            truth.rules[rule_id] = merged
        return truth

    def problems(self, library: Library) -> list[str]:
        """Rules or phenotypes in this truth that the library's learning rules do not have."""
        learning = {rule.id: rule.learning for rule in library.rules if rule.learning}
        found = []
        for rule_id, spec in self.rules.items():
            if rule_id not in learning:
                if rule_id not in DEFAULT_TRUTH:
                    found.append(f"rules.{rule_id}: no rule with a learning section has this id")
                continue
            known = {*learning[rule_id].reference, *(g.label for g in learning[rule_id].groups),
                     *(p for g in learning[rule_id].groups for p in g.phenotypes)}  # fmt: skip
            found += [
                f"rules.{rule_id}.hazard_ratio: {name!r} is not one of {sorted(known)}"
                for name in spec.get("hazard_ratio", {})
                if name not in known
            ]
        return found

    def hazard_ratio(self, rule: Rule, phenotype: str) -> float:
        ratios = self.rules.get(rule.id, {}).get("hazard_ratio", {})
        if phenotype in ratios:
            return float(ratios[phenotype])
        for group in rule.learning.groups if rule.learning else ():
            if phenotype in group.phenotypes and group.label in ratios:
                return float(ratios[group.label])
        return 1.0


class Concepts:
    """Local concept ids for the codes the simulation uses, and their concept rows."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.ancestors: list[tuple[int, int]] = []
        self._ids: dict[tuple[str, str], int] = {}

    def id(self, vocabulary: str, code: str, name: str, domain: str, parent: int | None = None) -> int:
        key = (vocabulary, code)
        if key not in self._ids:
            concept_id = CONCEPT_BASE + len(self._ids) + 1
            self._ids[key] = concept_id
            self.rows.append((concept_id, name, domain, vocabulary, "Simulated", "S", code))
            self.ancestors.append((concept_id, concept_id))
        if parent is not None and (parent, self._ids[key]) not in self.ancestors:
            self.ancestors.append((parent, self._ids[key]))
        return self._ids[key]


@dataclass
class Tables:
    """The simulated rows, table by table, before they are written."""

    frames: dict[str, list[pd.DataFrame]] = field(default_factory=dict)

    def add(self, table: str, frame: pd.DataFrame) -> None:
        self.frames.setdefault(table, []).append(frame)  # empty frames too: they carry the columns

    def frame(self, table: str) -> pd.DataFrame:
        added = self.frames.get(table, [])
        frames = [frame for frame in added if len(frame)] or added[:1]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _dates(days: np.ndarray) -> np.ndarray:
    return DAY0 + days.astype("timedelta64[D]")


def _diplotypes(rng: np.random.Generator, gene: str, ancestry: np.ndarray) -> np.ndarray:
    """Two alleles per person under Hardy-Weinberg, by ancestry; returns 'a/b' strings."""
    alleles = list(ALLELE_FREQUENCIES[gene])
    table = np.array([ALLELE_FREQUENCIES[gene][a] for a in alleles])  # alleles x ancestries
    names = np.array(["*1", *alleles])
    probabilities = np.vstack([1 - table.sum(axis=0), table])[:, ancestry].T  # persons x alleles
    cumulative = probabilities.cumsum(axis=1)
    picks = [(rng.random(len(ancestry))[:, None] > cumulative).sum(axis=1) for _ in range(2)]
    first, second = (names[np.minimum(p, len(names) - 1)] for p in picks)
    return np.char.add(np.char.add(first, "/"), second)


def simulate(
    con: duckdb.DuckDBPyConnection,
    library: Library,
    *,
    persons: int,
    seed: int,
    truth: Truth | None = None,
    identifiers: Identifiers | None = None,
) -> dict[str, int]:
    """Write a simulated OMOP database into ``con`` (replacing its tables); returns row counts."""
    truth = truth or Truth()
    rng = np.random.default_rng(seed)
    concepts = Concepts()
    tables = Tables()
    rules = [rule for rule in library.rules if rule.learning and rule.gene in ALLELE_FREQUENCIES]

    ancestry = rng.choice(len(ANCESTRY), size=persons, p=ANCESTRY_SHARE)
    person_id = np.arange(1, persons + 1, dtype=np.int64)
    female = rng.random(persons) < 0.5
    birth_year = rng.integers(1930, 2000, size=persons)
    obs_start = rng.integers(-3650, 365 * 3, size=persons).clip(0, None)
    obs_end = np.minimum(obs_start + rng.integers(365 * 2, 365 * 12, size=persons), STUDY_DAYS)
    source_value = np.char.add("MRN", np.char.zfill(person_id.astype(str), 8))
    tables.add(
        "person",
        pd.DataFrame(
            {
                "person_id": person_id,
                "gender_concept_id": np.where(female, FEMALE, MALE),
                "year_of_birth": birth_year,
                "race_concept_id": np.array([RACE_CONCEPT[a] for a in ANCESTRY])[ancestry],
                "ethnicity_concept_id": np.where(ancestry == ANCESTRY.index("AMR"), HISPANIC, NOT_HISPANIC),
                "person_source_value": source_value,
            }
        ),
    )
    tables.add(
        "observation_period",
        pd.DataFrame(
            {
                "observation_period_id": person_id,
                "person_id": person_id,
                "observation_period_start_date": _dates(obs_start),
                "observation_period_end_date": _dates(obs_end),
                "period_type_concept_id": 32817,
            }
        ),
    )
    # Background mortality: about 1% a year, censoring follow-up.
    death_day = obs_start + rng.exponential(100 * 365, size=persons)
    dies = death_day < obs_end
    tables.add("death", pd.DataFrame({"person_id": person_id[dies], "death_date": _dates(death_day[dies].astype(int))}))
    opted_out = rng.random(persons) < 0.03
    tables.add(
        "research_opt_out", pd.DataFrame({"person_id": person_id[opted_out], "since": _dates(obs_start[opted_out])})
    )

    tested = rng.random(persons) < 0.6
    result_day = rng.integers(0, STUDY_DAYS, size=persons)
    genotype_concept = concepts.id("LOINC", "84413-4", "Genotype display name", "Measurement")
    phenotypes: dict[str, np.ndarray] = {}
    for gene in sorted({rule.gene for rule in rules}):
        diplotypes = _diplotypes(rng, gene, ancestry)
        called = {d: call_diplotype(library.genes[gene], d).phenotype for d in np.unique(diplotypes)}
        phenotypes[gene] = np.array([called[d] for d in diplotypes])
        ids = person_id[tested]
        values = np.char.add(f"{gene} ", diplotypes[tested])
        tables.add(
            "measurement",
            pd.DataFrame(
                {
                    "person_id": ids,
                    "measurement_concept_id": genotype_concept,
                    "measurement_date": _dates(result_day[tested]),
                    "measurement_type_concept_id": 32817,
                    "measurement_source_value": "84413-4",
                    "value_source_value": values,
                }
            ),
        )
        tables.add(
            "pgx_result",
            pd.DataFrame(
                {
                    "person_id": ids,
                    "gene": gene,
                    "diplotype": diplotypes[tested],
                    "result_date": _dates(result_day[tested]),
                    "source": "simulator",
                }
            ),
        )

    truth_rows = []
    for offset, rule in enumerate(rules):
        truth_rows += _simulate_rule(
            rng, rule, truth, concepts, tables,
            # The service's events draw from their own stream: with or without them, the cohort is the same.
            (identifiers, np.random.default_rng([seed, offset, 1])) if identifiers else None,
            person_id=person_id, birth_year=birth_year, female=female, obs_start=obs_start,
            obs_end=obs_end, death_day=np.where(dies, death_day, np.inf), phenotype=phenotypes[rule.gene],
            known=tested & (result_day < obs_end), result_day=result_day, source_value=source_value, offset=offset,
        )  # fmt: skip
    truth_frame = pd.DataFrame(truth_rows, columns=["rule", "phenotype", "hazard_ratio", "baseline_rate"])
    truth_frame["seed"], truth_frame["persons"] = seed, persons
    tables.add("sim_truth", truth_frame)
    tables.add(
        "concept",
        pd.DataFrame(
            concepts.rows,
            columns=["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
                     "standard_concept", "concept_code"],
        ),
    )  # fmt: skip
    tables.add(
        "concept_ancestor",
        pd.DataFrame(
            [(a, d, int(a != d), int(a != d)) for a, d in concepts.ancestors],
            columns=["ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation",
                     "max_levels_of_separation"],
        ),
    )  # fmt: skip
    with transaction(con):
        return _write(con, tables)


def _simulate_rule(
    rng: np.random.Generator,
    rule: Rule,
    truth: Truth,
    concepts: Concepts,
    tables: Tables,
    events: tuple[Identifiers, np.random.Generator] | None,
    *,
    person_id: np.ndarray,
    birth_year: np.ndarray,
    female: np.ndarray,
    obs_start: np.ndarray,
    obs_end: np.ndarray,
    death_day: np.ndarray,
    phenotype: np.ndarray,
    known: np.ndarray,
    result_day: np.ndarray,
    source_value: np.ndarray,
    offset: int,
) -> list[tuple]:
    learning = rule.learning
    assert learning is not None
    n = len(person_id)
    # New users: one index date inside observation, after a full washout, leaving room for follow-up.
    starts = rng.random(n) < (0.05 if offset == 0 else 0.08)
    index = obs_start + learning.washout_days + rng.integers(0, 365 * 6, size=n)
    users = np.flatnonzero(starts & (index < obs_end) & (index < death_day))
    index = index[users]
    age = (STUDY_START.year + index / 365.25 - birth_year[users]).astype(int)
    is_female = female[users]

    # Condition covariates: present at index for a share of new users; they raise both the
    # chance of the alternative and the outcome hazard (confounding by indication).
    linear_treat = np.full(len(users), -0.2) + 0.4 * (age >= 75) - 0.3 * is_female
    linear_outcome = (
        COVARIATE_LOG_HR["age75"] * (age >= 75)
        + COVARIATE_LOG_HR["age65"] * ((age >= 65) & (age < 75))
        + COVARIATE_LOG_HR["female"] * is_female
    )
    for covariate in learning.condition_covariates:
        present = rng.random(len(users)) < (0.45 if covariate.lookback_days <= 30 else 0.2)
        linear_treat -= 0.6 * present
        linear_outcome += COVARIATE_LOG_HR["condition"] * present
        code = covariate.conditions[0]
        concept = concepts.id(
            "SNOMED" if code.system == "snomed" else "ICD10CM", code.code, code.display or covariate.name, "Condition"
        )
        day = index - rng.integers(0, min(covariate.lookback_days, 30), size=len(users))
        tables.add(
            "condition_occurrence",
            pd.DataFrame(
                {
                    "person_id": person_id[users][present],
                    "condition_concept_id": concept,
                    "condition_start_date": _dates(day[present]),
                    "condition_type_concept_id": 32817,
                    "condition_source_value": code.code,
                }
            ),
        )

    # Treatment: the rule's drug or a comparator. After go-live, a known risk phenotype is mostly
    # switched (the alert working), which is why estimation adjusts and compares, not just counts.
    risk = np.isin(phenotype[users], [p for g in learning.groups for p in g.phenotypes])
    alerted = risk & known[users] & (index >= (GO_LIVE - STUDY_START).days) & (result_day[users] <= index)
    p_drug = 1 / (1 + np.exp(-(linear_treat + 0.9)))
    p_drug = np.where(alerted, p_drug * 0.35, p_drug)
    on_drug = rng.random(len(users)) < p_drug if learning.comparators else np.ones(len(users), bool)

    drug_concepts = _drug_concepts(rule, concepts)
    comparator_concepts = [concepts.id("RxNorm", c.rxnorm[0], c.name, "Drug") for c in learning.comparators] or [
        drug_concepts[0]
    ]
    which = rng.integers(0, len(comparator_concepts), size=len(users))
    drug_concept = np.where(on_drug, rng.choice(drug_concepts, size=len(users)), np.array(comparator_concepts)[which])
    supply = rng.choice([30, 90], size=len(users))
    tables.add(
        "drug_exposure",
        pd.DataFrame(
            {
                "person_id": person_id[users],
                "drug_concept_id": drug_concept,
                "drug_exposure_start_date": _dates(index),
                "drug_exposure_end_date": _dates(index + supply),
                "days_supply": supply,
                "drug_type_concept_id": 32817,
            }
        ),
    )

    # Outcomes: exponential times; the hazard gives a 1-year risk of baseline_rate for a normal
    # metabolizer on the drug with average covariates, times the phenotype's true HR on the drug.
    spec = truth.rules.get(rule.id, {"baseline_rate": 0.05})
    rate = -math.log(1 - float(spec["baseline_rate"])) / 365.25
    ratio = np.array([truth.hazard_ratio(rule, p) for p in phenotype[users]])
    hazard = rate * np.exp(linear_outcome - linear_outcome.mean()) * np.where(on_drug, ratio, 0.85)
    event_day = index + 1 + rng.exponential(1 / hazard)
    end = np.minimum(np.minimum(obs_end[users], death_day[users]), index + learning.time_at_risk_days)
    happened = event_day <= end
    outcome_concepts = _outcome_concepts(learning, concepts)
    tables.add(
        "condition_occurrence",
        pd.DataFrame(
            {
                "person_id": person_id[users][happened],
                "condition_concept_id": rng.choice(outcome_concepts, size=int(happened.sum())),
                "condition_start_date": _dates(event_day[happened].astype(int)),
                "condition_type_concept_id": 32817,
                "condition_source_value": "simulated outcome",
            }
        ),
    )
    if events is not None:
        identifiers, event_rng = events
        _cds_events(
            event_rng, rule, tables, identifiers, source_value[users], index, phenotype[users], alerted, on_drug
        )
    return [
        (rule.id, p, truth.hazard_ratio(rule, p), float(spec["baseline_rate"])) for p in sorted({*phenotype[users]})
    ]


def _drug_concepts(rule: Rule, concepts: Concepts) -> list[int]:
    drug = rule.drugs[0]
    ingredient = concepts.id("RxNorm", drug.rxnorm[0], drug.name, "Drug")
    # A product code under the ingredient, when the rule names one: exercises concept_ancestor.
    products = [
        concepts.id("RxNorm", code, f"{drug.name} product", "Drug", parent=ingredient) for code in drug.rxnorm[1:2]
    ]
    return [ingredient, *products]


def _outcome_concepts(learning, concepts: Concepts) -> list[int]:
    ids = []
    for code in learning.outcome.conditions:
        vocabulary = "SNOMED" if code.system == "snomed" else "ICD10CM"
        parent = concepts.id(vocabulary, code.code, code.display or learning.outcome.name, "Condition")
        # One descendant per outcome concept, to exercise descendant expansion.
        ids += [
            parent,
            concepts.id(vocabulary, f"{code.code}-sim-child", f"{code.display} (subtype)", "Condition", parent=parent),
        ]
    return ids


def _cds_events(rng, rule, tables, identifiers, mrn, index, phenotype, alerted, on_drug) -> None:
    """The service's cards and clinicians' feedback for the alerted new users."""
    k = int(alerted.sum())
    if not k:
        return
    times = pd.to_datetime(_dates(index[alerted])) + pd.to_timedelta(
        rng.integers(8 * 3600, 18 * 3600, size=k), unit="s"
    )
    cards = [identifiers.stable_uuid("sim-card", rule.id, m) for m in mrn[alerted]]
    patients = [identifiers.pseudonym(m) for m in mrn[alerted]]
    tier = np.where(np.char.find(phenotype[alerted].astype(str), "Poor") >= 0, "critical", "warning")
    base = {
        "service": "pgx-order-select",
        "rule": rule.id,
        "rule_version": "simulated",
        "gene": rule.gene,
        "drug": rule.drugs[0].name,
        "tier_source": "rule file",
        "shadow": False,
        "source_file": "simulator",
    }
    tables.add("cds_event", pd.DataFrame({
        "event_id": [f"sim-{c}" for c in cards], "type": "card", "time": times, "patient": patients, "card": cards,
        "phenotype": phenotype[alerted], "tier": tier, **base,
    }))  # fmt: skip
    accepted = ~on_drug[alerted]
    reasons = rng.choice(
        ["stable-on-drug", "alternative-not-suitable", "benefit-outweighs-risk", "will-monitor"], size=k
    )
    answered = rng.random(k) < 0.8  # some cards get no feedback at all
    tables.add("cds_event", pd.DataFrame({
        "event_id": [f"sim-fb-{c}" for c in cards], "type": "feedback",
        "time": times + pd.to_timedelta(rng.integers(5, 600, size=k), unit="s"), "card": cards, "patient": patients,
        "outcome": np.where(accepted, "accepted", "overridden"), "override_reason": np.where(accepted, None, reasons),
        "accepted_suggestions": accepted.astype(int), **base,
    })[answered])  # fmt: skip


def _select(frame: pd.DataFrame) -> str:
    """Columns of a frame, with the numpy datetimes as SQL dates."""
    return ", ".join(
        f'CAST("{c}" AS DATE) AS "{c}"' if c.endswith("_date") or c == "since" else f'"{c}"' for c in frame.columns
    )


def _write(con: duckdb.DuckDBPyConnection, tables: Tables) -> dict[str, int]:
    counts = {}
    for table in ("person", "observation_period", "death", "measurement", "drug_exposure", "condition_occurrence",
                  "concept", "concept_ancestor", "sim_truth"):  # fmt: skip
        frame = tables.frame(table)
        con.register("frame", frame)
        con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT {_select(frame)} FROM frame')
        counts[table] = len(frame)
    for table in ("pgx_result", "research_opt_out"):
        con.execute(f'DROP TABLE IF EXISTS "{table}"')
    con.execute("DROP TABLE IF EXISTS cds_event")
    con.execute(LOOP_TABLES)
    for table in ("pgx_result", "research_opt_out"):
        frame = tables.frame(table)
        con.register("frame", frame)
        con.execute(f'INSERT INTO "{table}" SELECT {_select(frame)} FROM frame')
        counts[table] = len(frame)
    frame = tables.frame("cds_event")
    if len(frame):
        con.register("frame", frame)
        columns = ", ".join(frame.columns)
        con.execute(f"INSERT INTO cds_event ({columns}, ingested_at) SELECT {columns}, now() FROM frame")
    counts["cds_event"] = len(frame)
    return counts


def truth_for(con: duckdb.DuckDBPyConnection) -> Mapping[tuple[str, str], float]:
    """The true hazard ratios a simulated database was made with."""
    rows = con.execute("SELECT rule, phenotype, hazard_ratio FROM sim_truth").fetchall()
    return {(rule, phenotype): hr for rule, phenotype, hr in rows}
