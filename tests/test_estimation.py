"""Estimation on simulated data with known truth: the cell model, Cox, coverage, and the null."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from analytics.cycle import run_cycle
from analytics.data.genotypes import refresh_phenotypes
from analytics.study.cohort import REFERENCE, Study, build, cells, individual_rows, person_bands
from analytics.study.estimate import _formula, design, estimate
from engine.rulebook.library import Library
from tests.learning_data import CLOPIDOGREL, NULL, NULL_STATIN, SIMVASTATIN, paths_in, simulated, truth


@pytest.fixture(scope="module")
def clopidogrel_study(library: Library):
    """A 40,000-person cohort: the study population of the clopidogrel rule, with its cells."""
    con = simulated(library, 40_000, seed=5, effects=truth())
    refresh_phenotypes(con, library)
    rule = library.rule(CLOPIDOGREL)
    study = Study(rule, rule.learning)
    build(con, study)
    yield study, cells(con, study), individual_rows(con, study)
    con.close()


def test_the_cell_fit_equals_the_individual_level_poisson_fit(clopidogrel_study):
    study, cell_table, rows = clopidogrel_study
    on_drug_cells = cell_table[(cell_table.target == 1) & (cell_table.person_days > 0)]
    individual = person_bands(rows[rows.target == 1], study.learning.time_at_risk_days)
    formula = _formula(study, interaction=False)
    from_cells = smf.glm(formula, on_drug_cells, family=sm.families.Poisson(), exposure=on_drug_cells.person_days)
    from_rows = smf.glm(formula, individual, family=sm.families.Poisson(), exposure=individual.person_days)
    a, b = from_cells.fit(), from_rows.fit()
    assert len(on_drug_cells) < len(individual)
    assert np.allclose(a.params, b.params, atol=1e-8)
    assert np.allclose(a.bse, b.bse, atol=1e-8)


@pytest.mark.parametrize("interaction", [False, True])
def test_the_direct_model_matrix_fits_as_the_formula_does(clopidogrel_study, interaction: bool):
    study, cell_table, _ = clopidogrel_study
    data = cell_table if interaction else cell_table[cell_table.target == 1]
    data = data[data.person_days > 0]
    formula = smf.glm(_formula(study, interaction), data, family=sm.families.Poisson(), exposure=data.person_days)
    direct = sm.GLM(data.events, design(study, data, interaction), family=sm.families.Poisson(),
                    exposure=data.person_days)  # fmt: skip
    a, b = formula.fit(), direct.fit()
    assert sorted(a.params.index) == sorted(b.params.index)
    assert np.allclose(a.params, b.params[a.params.index], atol=1e-8)
    assert np.allclose(a.bse, b.bse[a.params.index], atol=1e-8)


def test_the_cell_fit_agrees_with_cox_on_the_same_patients(clopidogrel_study):
    study, cell_table, rows = clopidogrel_study
    estimates = {e.group: e for e in estimate(study, cell_table) if e.contrast == "within-drug"}
    on_drug = rows[rows.target == 1]
    covariates = " + ".join(f"C({n})" if n in ("age", "sex") else n for n in study.covariate_names)
    cox = smf.phreg(
        f"fu ~ C(grp, Treatment('{REFERENCE}')) + {covariates}", on_drug, status=on_drug.event.values, ties="efron"
    ).fit()
    cox_log_hr = pd.Series(cox.params, index=cox.model.exog_names)
    cox_se = pd.Series(cox.bse, index=cox.model.exog_names)
    for group in ("Intermediate Metabolizer", "Poor Metabolizer"):
        term = f"C(grp, Treatment('{REFERENCE}'))[T.{group}]"
        mine = estimates[group]
        assert abs(mine.log_hr - cox_log_hr[term]) < 0.02, (group, mine.log_hr, cox_log_hr[term])
        assert abs(mine.se / cox_se[term] - 1) < 0.05, (group, mine.se, cox_se[term])


def test_the_95_percent_interval_covers_the_true_hazard_ratio_in_at_least_17_of_20_seeds(library: Library):
    effects = truth(simvastatin={"Decreased Function": 4.5, "Poor Function": 16.9}, rate=0.4)
    covered: dict[tuple[str, str], int] = {}
    for seed in range(1, 21):
        con = simulated(library, 25_000, seed=seed, effects=effects)
        refresh_phenotypes(con, library)
        for rule_id, group_label in ((CLOPIDOGREL, "Intermediate Metabolizer"), (SIMVASTATIN, "Decreased Function")):
            rule = library.rule(rule_id)
            study = Study(rule, rule.learning)
            build(con, study)
            found = next(
                e for e in estimate(study, cells(con, study)) if (e.group, e.contrast) == (group_label, "within-drug")
            )
            true_hr = effects.rules[rule_id]["hazard_ratio"][group_label]
            low, high = found.ci
            covered[(rule_id, group_label)] = covered.get((rule_id, group_label), 0) + int(low <= true_hr <= high)
        con.close()
    assert all(count >= 17 for count in covered.values()), covered


def test_with_a_null_truth_the_loop_does_not_escalate(library: Library, tmp_path: Path):
    effects = truth(clopidogrel=NULL, simvastatin=NULL_STATIN, rate=0.4)
    actions = []
    for seed in range(1, 11):
        database = tmp_path / f"null-{seed}.duckdb"
        simulated(library, 25_000, seed=seed, effects=effects, path=database).close()
        result = run_cycle(library, paths_in(tmp_path / f"run-{seed}", database))
        actions += [(seed, e["rule"], e["phenotype"], e["action"], e["hr"]) for e in result.estimates]
        assert result.snapshot_version == 0
    assert not [a for a in actions if "escalate" in a[3]], actions
    # The data were there to act on: this is the policy holding, not the minimum-data gate.
    assert sum(a[3] == "hold" for a in actions) >= 10


def test_a_strong_true_effect_is_escalated_within_bounds(library: Library, tmp_path: Path):
    effects = truth(clopidogrel={"Intermediate Metabolizer": 2.5, "Poor Metabolizer": 2.5})
    database = tmp_path / "strong.duckdb"
    simulated(library, 40_000, seed=2, effects=effects, path=database).close()
    result = run_cycle(library, paths_in(tmp_path / "run", database))
    by_group = {e["phenotype"]: e for e in result.estimates if e["rule"] == CLOPIDOGREL}
    assert by_group["Intermediate Metabolizer"]["action"] == "escalate"
    assert (
        by_group["Intermediate Metabolizer"]["tier_before"],
        by_group["Intermediate Metabolizer"]["tier_after"],
    ) == (
        "warning",
        "critical",
    )
    # Poor metabolizers are already at the ceiling the pharmacists set: they stay there.
    assert by_group["Poor Metabolizer"]["tier_after"] == "critical"
    assert math.isclose(by_group["Intermediate Metabolizer"]["hr"], 2.5, rel_tol=0.4)
