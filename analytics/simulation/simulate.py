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
neutral). Follow-up runs over whole days, as the study counts them: from the start of the day
after the index through the end of the last day at risk (end of observation or of the window), or
until death.
``Truth`` states exactly what a true hazard ratio means; it is the quantity analytics/study/estimate.py
estimates (tests/test_validity_study.py and bench/learning_validity.py check it over many seeds).
The draws (``draw_population``, ``draw_new_users``) are kept apart from the OMOP rows they become,
so that analytics/simulation/simulated_cells.py can make the study's cells from the same draws without SQL.

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
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import yaml

from analytics.data.store import LOOP_TABLES, transaction
from engine.decision.learning import CodedCondition, Outcome
from engine.decision.rules import Rule
from engine.genotype.phenotyper import call_diplotype
from engine.rulebook.library import Library
from engine.runtime.identifiers import Identifiers

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
    """The true effects: per rule, the 1-year outcome risk of normal metabolizers and the HRs.

    What a hazard ratio means (the estimand; analytics/study/estimate.py estimates exactly this): among
    new users of the rule's drug, the hazard of the outcome in a phenotype group divided by the
    hazard in the reference phenotypes, conditional on the covariates the study adjusts for (age
    band, sex, the rule's condition covariates) and constant over follow-up. The hazard has no
    other term (no frailty, no site or ancestry effect unless ``confounding`` injects one), so the
    conditional and the study's adjusted hazard ratio are the same quantity, at any baseline rate
    and follow-up; the time at risk is the study's own (whole days from the day after the index
    through the last day at risk). The one difference is the dates' resolution: the study counts
    the day of the outcome whole, which lowers the log HR by about (hazard_group - hazard_reference)
    / 2 per day, under 0.001 at one-year risks up to 15%. On a comparator the genotype has no
    effect (HR 1), so the genotype x drug interaction has the same true value.
    Optional population settings: ``ancestry`` (shares by group, default ANCESTRY_SHARE), and an
    unmeasured ``confounding`` risk factor whose prevalence differs by ancestry (so it travels with
    genotype) and which multiplies every outcome's hazard; ``negative_controls`` simulates that many
    outcomes no genotype affects (for empirical calibration), per rule: first those the rule's
    learning section lists, with their codes, then made-up ones (code ``nc-<rule>-ncNN``) when more
    are asked for; ``listed`` simulates exactly the listed ones.
    """

    rules: dict[str, dict] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_TRUTH.items()})
    ancestry: dict[str, float] = field(default_factory=lambda: dict(zip(ANCESTRY, ANCESTRY_SHARE, strict=True)))
    confounding: dict = field(default_factory=dict)  # {hazard_ratio: 2.0, prevalence: {EUR: 0.1, EAS: 0.5, ...}}
    controls: int | Literal["listed"] = 0

    @property
    def ancestry_share(self) -> np.ndarray:
        shares = np.array([float(self.ancestry.get(a, 0.0)) for a in ANCESTRY])
        return shares / shares.sum()

    @property
    def confounder_log_hr(self) -> float:
        return math.log(float(self.confounding.get("hazard_ratio", 1.0)))

    def confounder(self, rng: np.random.Generator, ancestry: np.ndarray) -> np.ndarray:
        """The unmeasured risk factor per person; drawn only when the truth injects one (seeds stay comparable)."""
        if not self.confounding:
            return np.zeros(len(ancestry), bool)
        prevalence = np.array([float(self.confounding.get("prevalence", {}).get(a, 0.0)) for a in ANCESTRY])
        return rng.random(len(ancestry)) < prevalence[ancestry]

    def negative_controls(self, rule: Rule) -> list[Outcome]:
        """The negative-control outcomes simulated for ``rule`` (every genotype's true HR 1 on them)."""
        listed = list(rule.learning.negative_controls) if rule.learning else []
        count = len(listed) if self.controls == "listed" else self.controls
        made_up = [
            Outcome(name=name, conditions=(CodedCondition(system="snomed", code=f"nc-{name}"),))
            for name in (f"{rule.id}-nc{k + 1:02d}" for k in range(len(listed), count))
        ]
        return (listed + made_up)[:count]

    @classmethod
    def from_file(cls, path: Path) -> Truth:
        data = yaml.safe_load(path.read_text()) or {}
        rules = data.get("rules") if isinstance(data, dict) else None
        if not isinstance(rules, dict):
            raise ValueError(f"{path}: expected a mapping 'rules: {{rule-id: {{baseline_rate, hazard_ratio}}}}'")
        truth = cls()
        ancestry = data.get("ancestry")
        if ancestry is not None:
            if (
                not isinstance(ancestry, dict)
                or set(ancestry) - set(ANCESTRY)
                or sum(map(float, ancestry.values())) <= 0
            ):
                raise ValueError(f"{path}: ancestry must map some of {list(ANCESTRY)} to shares")
            truth.ancestry = {str(a): float(v) for a, v in ancestry.items()}
        if data.get("confounding") is not None:
            if not isinstance(data["confounding"], dict) or not isinstance(data["confounding"].get("prevalence"), dict):
                raise ValueError(f"{path}: confounding needs hazard_ratio and a prevalence mapping by ancestry")
            truth.confounding = dict(data["confounding"])
        controls = data.get("negative_controls", 0)
        if controls != "listed" and (isinstance(controls, bool) or not isinstance(controls, int) or controls < 0):
            raise ValueError(f"{path}: negative_controls must be a count or 'listed' (the rules' own)")
        truth.controls = controls
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

    def known(self, concept_id: int, name: str, domain: str) -> int:
        """A real OMOP concept id a rule names (``system: omop``): kept as it is; its SNOMED code is not known here."""
        key = ("OMOP", str(concept_id))
        if key not in self._ids:
            self._ids[key] = concept_id
            self.rows.append((concept_id, name, domain, "SNOMED", "Simulated", "S", None))
            self.ancestors.append((concept_id, concept_id))
        return concept_id


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


def _diplotypes(rng: np.random.Generator, gene: str, ancestry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two alleles per person under Hardy-Weinberg, by ancestry: the 'a/b' labels and each person's label index."""
    alleles = list(ALLELE_FREQUENCIES[gene])
    table = np.array([ALLELE_FREQUENCIES[gene][a] for a in alleles])  # alleles x ancestries
    names = ["*1", *alleles]
    cumulative = np.vstack([1 - table.sum(axis=0), table]).cumsum(axis=0).T  # ancestries x alleles
    by_ancestry = [np.flatnonzero(ancestry == a) for a in range(len(cumulative))]
    picks = []
    for _ in range(2):
        uniform, pick = rng.random(len(ancestry)), np.empty(len(ancestry), np.int64)
        for a, persons in enumerate(by_ancestry):
            # how many cumulative shares lie below the uniform: the allele (a bisection, not an n x alleles matrix)
            pick[persons] = np.searchsorted(cumulative[a], uniform[persons], side="left")
        picks.append(np.minimum(pick, len(names) - 1))
    labels = np.array([f"{a}/{b}" for a in names for b in names])
    return labels, picks[0] * len(names) + picks[1]


@dataclass
class Population:
    """Everyone the simulator made, person by person (index i is person_id i + 1)."""

    person_id: np.ndarray
    ancestry: np.ndarray
    female: np.ndarray
    birth_year: np.ndarray
    obs_start: np.ndarray
    obs_end: np.ndarray
    death_day: np.ndarray  # inf for those who do not die in observation
    opted_out: np.ndarray
    tested: np.ndarray
    result_day: np.ndarray
    diplotypes: dict[str, np.ndarray]
    phenotypes: dict[str, np.ndarray]
    confounder: np.ndarray  # the unmeasured risk factor (all False unless the truth injects one)

    @property
    def dies(self) -> np.ndarray:
        return np.isfinite(self.death_day)


@dataclass
class NewUsers:
    """One rule's new users as drawn: who, when, covariates, arm, and the outcome (days from study start)."""

    rule: Rule
    users: np.ndarray  # indices into the Population
    index: np.ndarray
    age: np.ndarray
    conditions: dict[str, np.ndarray]  # covariate name -> present at index
    condition_lag: dict[str, np.ndarray]  # days before index the diagnosis was recorded
    on_drug: np.ndarray
    alerted: np.ndarray
    comparator: np.ndarray  # which comparator, for those not on the drug
    product: np.ndarray  # which of the drug's concepts, for those on it
    supply: np.ndarray
    end: np.ndarray  # end of follow-up in continuous days, exclusive: the end of the last day at risk, or death
    event_day: np.ndarray
    happened: np.ndarray
    outcome_concept: np.ndarray
    negative_controls: dict[str, np.ndarray] = field(default_factory=dict)  # name -> day of the outcome, inf if none
    control_codes: dict[str, CodedCondition] = field(default_factory=dict)  # name -> the code its rows carry


def draw_population(rng: np.random.Generator, library: Library, genes: list[str], persons: int,
                    truth: Truth) -> Population:  # fmt: skip
    """Persons, their observation, deaths, opt-outs, results on file and true diplotypes."""
    ancestry = rng.choice(len(ANCESTRY), size=persons, p=truth.ancestry_share)
    person_id = np.arange(1, persons + 1, dtype=np.int64)
    female = rng.random(persons) < 0.5
    birth_year = rng.integers(1930, 2000, size=persons)
    obs_start = rng.integers(-3650, 365 * 3, size=persons).clip(0, None)
    obs_end = np.minimum(obs_start + rng.integers(365 * 2, 365 * 12, size=persons), STUDY_DAYS)
    # Background mortality: about 1% a year, censoring follow-up.
    death_day = obs_start + rng.exponential(100 * 365, size=persons)
    death_day = np.where(death_day < obs_end, death_day, np.inf)
    opted_out = rng.random(persons) < 0.03
    tested = rng.random(persons) < 0.6
    result_day = rng.integers(0, STUDY_DAYS, size=persons)
    diplotypes, phenotypes = {}, {}
    for gene in genes:
        labels, which = _diplotypes(rng, gene, ancestry)
        diplotypes[gene] = labels[which]
        phenotypes[gene] = np.array([call_diplotype(library.genes[gene], d).phenotype for d in labels])[which]
    confounder = truth.confounder(rng, ancestry)
    return Population(person_id, ancestry, female, birth_year, obs_start, obs_end, death_day, opted_out, tested,
                      result_day, diplotypes, phenotypes, confounder)  # fmt: skip


def draw_new_users(rng: np.random.Generator, rule: Rule, truth: Truth, population: Population,
                   offset: int) -> NewUsers:  # fmt: skip
    """One rule's new users, treatment and outcomes, from the proportional-hazards model in the module doc."""
    learning = rule.learning
    assert learning is not None
    p = population
    n = len(p.person_id)
    # New users: one index date inside observation, after a full washout, leaving room for follow-up.
    starts = rng.random(n) < (0.05 if offset == 0 else 0.08)
    index = p.obs_start + learning.washout_days + rng.integers(0, 365 * 6, size=n)
    users = np.flatnonzero(starts & (index < p.obs_end) & (index < p.death_day))
    index = index[users]
    age = (STUDY_START.year + index / 365.25 - p.birth_year[users]).astype(int)
    is_female = p.female[users]

    # Condition covariates: present at index for a share of new users; they raise both the
    # chance of the alternative and the outcome hazard (confounding by indication).
    linear_treat = np.full(len(users), -0.2) + 0.4 * (age >= 75) - 0.3 * is_female
    linear_outcome = (
        COVARIATE_LOG_HR["age75"] * (age >= 75)
        + COVARIATE_LOG_HR["age65"] * ((age >= 65) & (age < 75))
        + COVARIATE_LOG_HR["female"] * is_female
    )
    conditions, lags = {}, {}
    for covariate in learning.condition_covariates:
        present = rng.random(len(users)) < (0.45 if covariate.lookback_days <= 30 else 0.2)
        linear_treat -= 0.6 * present
        linear_outcome += COVARIATE_LOG_HR["condition"] * present
        conditions[covariate.name] = present
        lags[covariate.name] = rng.integers(0, min(covariate.lookback_days, 30), size=len(users))

    # Treatment: the rule's drug or a comparator. After go-live, a known risk phenotype is mostly
    # switched (the alert working), which is why estimation adjusts and compares, not just counts.
    phenotype = p.phenotypes[rule.gene][users]
    risk = np.isin(phenotype, [ph for g in learning.groups for ph in g.phenotypes])
    known = p.tested & (p.result_day < p.obs_end)
    alerted = risk & known[users] & (index >= (GO_LIVE - STUDY_START).days) & (p.result_day[users] <= index)
    p_drug = 1 / (1 + np.exp(-(linear_treat + 0.9)))
    p_drug = np.where(alerted, p_drug * 0.35, p_drug)
    on_drug = rng.random(len(users)) < p_drug if learning.comparators else np.ones(len(users), bool)
    comparator = rng.integers(0, max(len(learning.comparators), 1), size=len(users))
    product = rng.integers(0, len(_drug_codes(rule)), size=len(users))
    supply = rng.choice([30, 90], size=len(users))

    # Outcomes: exponential times; the hazard gives a 1-year risk of baseline_rate for a normal
    # metabolizer on the drug with average covariates, times the phenotype's true HR on the drug.
    spec = truth.rules.get(rule.id, {"baseline_rate": 0.05})
    rate = -math.log(1 - float(spec["baseline_rate"])) / 365.25
    distinct, where = np.unique(phenotype, return_inverse=True)
    ratio = np.array([truth.hazard_ratio(rule, ph) for ph in distinct])[where]
    confounding = truth.confounder_log_hr * p.confounder[users]
    hazard = rate * np.exp(linear_outcome - linear_outcome.mean() + confounding) * np.where(on_drug, ratio, 0.85)
    event_day = index + 1 + rng.exponential(1 / hazard)
    # At risk over whole days, as the study counts them: from the start of the day after the index
    # through the end of the last day (end of observation or of the window), or until death.
    end = np.minimum(np.minimum(p.obs_end[users] + 1, p.death_day[users]), index + learning.time_at_risk_days + 1)
    happened = event_day < end
    outcome_concept = rng.integers(0, 2 * len(learning.outcome.conditions), size=len(users))
    draw = NewUsers(rule, users, index, age, conditions, lags, on_drug, alerted, comparator, product, supply, end,
                    event_day, happened, outcome_concept)  # fmt: skip
    for control in truth.negative_controls(rule):
        # Outcomes no genotype-drug pair affects (true HR 1 in every group, on every drug), with the
        # same measured covariates and the same unmeasured confounder as the study outcome.
        control_hazard = rate * np.exp(linear_outcome - linear_outcome.mean() + confounding)
        day = index + 1 + rng.exponential(1 / control_hazard)
        draw.negative_controls[control.name] = np.where(day < end, day, np.inf)
        draw.control_codes[control.name] = control.conditions[0]
    return draw


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
    rules = simulated_rules(library)
    p = draw_population(rng, library, sorted({rule.gene for rule in rules}), persons, truth)
    source_value = np.char.add("MRN", np.char.zfill(p.person_id.astype(str), 8))
    tables.add(
        "person",
        pd.DataFrame(
            {
                "person_id": p.person_id,
                "gender_concept_id": np.where(p.female, FEMALE, MALE),
                "year_of_birth": p.birth_year,
                "race_concept_id": np.array([RACE_CONCEPT[a] for a in ANCESTRY])[p.ancestry],
                "ethnicity_concept_id": np.where(p.ancestry == ANCESTRY.index("AMR"), HISPANIC, NOT_HISPANIC),
                "person_source_value": source_value,
            }
        ),
    )
    tables.add(
        "observation_period",
        pd.DataFrame(
            {
                "observation_period_id": p.person_id,
                "person_id": p.person_id,
                "observation_period_start_date": _dates(p.obs_start),
                "observation_period_end_date": _dates(p.obs_end),
                "period_type_concept_id": 32817,
            }
        ),
    )
    dies = p.dies
    tables.add(
        "death", pd.DataFrame({"person_id": p.person_id[dies], "death_date": _dates(p.death_day[dies].astype(int))})
    )
    tables.add(
        "research_opt_out",
        pd.DataFrame({"person_id": p.person_id[p.opted_out], "since": _dates(p.obs_start[p.opted_out])}),
    )
    genotype_concept = concepts.id("LOINC", "84413-4", "Genotype display name", "Measurement")
    tested = p.tested
    for gene, diplotypes in p.diplotypes.items():
        ids = p.person_id[tested]
        tables.add(
            "measurement",
            pd.DataFrame(
                {
                    "person_id": ids,
                    "measurement_concept_id": genotype_concept,
                    "measurement_date": _dates(p.result_day[tested]),
                    "measurement_type_concept_id": 32817,
                    "measurement_source_value": "84413-4",
                    "value_source_value": np.char.add(f"{gene} ", diplotypes[tested]),
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
                    "result_date": _dates(p.result_day[tested]),
                    "source": "simulator",
                }
            ),
        )

    truth_rows = []
    for offset, rule in enumerate(rules):
        draw = draw_new_users(rng, rule, truth, p, offset)
        _rule_tables(draw, p, concepts, tables)
        if identifiers:
            # The service's events draw from their own stream: with or without them, the cohort is the same.
            phenotype = p.phenotypes[rule.gene][draw.users]
            _cds_events(np.random.default_rng([seed, offset, 1]), rule, tables, identifiers,
                        source_value[draw.users], draw.index, phenotype, draw.alerted, draw.on_drug)  # fmt: skip
        spec = truth.rules.get(rule.id, {"baseline_rate": 0.05})
        truth_rows += [
            (rule.id, ph, truth.hazard_ratio(rule, ph), float(spec["baseline_rate"]))
            for ph in sorted({*p.phenotypes[rule.gene][draw.users]})
        ]
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


def simulated_rules(library: Library) -> list[Rule]:
    """The rules the simulator makes data for, in the order it draws them."""
    return [rule for rule in library.rules if rule.learning and rule.gene in ALLELE_FREQUENCIES]


def _rule_tables(draw: NewUsers, p: Population, concepts: Concepts, tables: Tables) -> None:
    """The OMOP rows of one rule's new users: covariate diagnoses, exposures, outcomes."""
    learning = draw.rule.learning
    assert learning is not None
    person = p.person_id[draw.users]
    for covariate in learning.condition_covariates:
        code = covariate.conditions[0]
        concept = _condition_concept(concepts, code, code.display or covariate.name)
        present = draw.conditions[covariate.name]
        tables.add(
            "condition_occurrence",
            pd.DataFrame(
                {
                    "person_id": person[present],
                    "condition_concept_id": concept,
                    "condition_start_date": _dates((draw.index - draw.condition_lag[covariate.name])[present]),
                    "condition_type_concept_id": 32817,
                    "condition_source_value": code.code,
                }
            ),
        )
    drug_concepts = np.array(_drug_concepts(draw.rule, concepts))
    comparator_concepts = np.array(
        [concepts.id("RxNorm", c.rxnorm[0], c.name, "Drug") for c in learning.comparators] or [drug_concepts[0]]
    )
    drug_concept = np.where(draw.on_drug, drug_concepts[draw.product], comparator_concepts[draw.comparator])
    tables.add(
        "drug_exposure",
        pd.DataFrame(
            {
                "person_id": person,
                "drug_concept_id": drug_concept,
                "drug_exposure_start_date": _dates(draw.index),
                "drug_exposure_end_date": _dates(draw.index + draw.supply),
                "days_supply": draw.supply,
                "drug_type_concept_id": 32817,
            }
        ),
    )
    outcome_concepts = np.array(_outcome_concepts(learning, concepts))
    happened = draw.happened
    tables.add(
        "condition_occurrence",
        pd.DataFrame(
            {
                "person_id": person[happened],
                "condition_concept_id": outcome_concepts[draw.outcome_concept[happened]],
                "condition_start_date": _dates(draw.event_day[happened].astype(int)),
                "condition_type_concept_id": 32817,
                "condition_source_value": "simulated outcome",
            }
        ),
    )
    for name, day in draw.negative_controls.items():
        code = draw.control_codes[name]
        concept = _condition_concept(concepts, code, code.display or f"negative control outcome: {name}")
        seen = np.isfinite(day)
        tables.add(
            "condition_occurrence",
            pd.DataFrame(
                {
                    "person_id": person[seen],
                    "condition_concept_id": concept,
                    "condition_start_date": _dates(day[seen].astype(int)),
                    "condition_type_concept_id": 32817,
                    "condition_source_value": None if code.system == "omop" else code.code,
                }
            ),
        )


def _drug_codes(rule: Rule) -> list[str]:
    drug = rule.drugs[0]
    return [drug.rxnorm[0], *drug.rxnorm[1:2]]


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
        parent = _condition_concept(concepts, code, code.display or learning.outcome.name)
        # One descendant per outcome concept, to exercise descendant expansion.
        child = code.model_copy(update={"system": "snomed" if code.system == "omop" else code.system,
                                        "code": f"{code.code}-sim-child"})  # fmt: skip
        ids += [parent, _condition_concept(concepts, child, f"{code.display} (subtype)", parent=parent)]
    return ids


def _condition_concept(concepts: Concepts, code: CodedCondition, name: str, parent: int | None = None) -> int:
    """The concept id a rule's diagnosis code is recorded under: an omop code is already one."""
    if code.system == "omop":
        return concepts.known(int(code.code), name, "Condition")
    return concepts.id("SNOMED" if code.system == "snomed" else "ICD10CM", code.code, name, "Condition", parent)


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
