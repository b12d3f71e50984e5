"""Empirical calibration with negative controls: the fit, and coverage restored under unmeasured confounding."""

from __future__ import annotations

import math

import numpy as np

from analytics.calibration import fit_systematic_error
from analytics.cohort import Study
from analytics.estimate import Z95, estimate
from analytics.simulate import Truth
from analytics.simulated_cells import draws, study_cells
from engine.library import Library
from tests.learning_data import CLOPIDOGREL


def test_the_systematic_error_fit_recovers_a_known_bias_distribution():
    rng = np.random.default_rng(3)
    ses = rng.uniform(0.05, 0.3, size=400)
    estimates = rng.normal(0.2, 0.1, size=400) + rng.normal(0, ses)
    error = fit_systematic_error(list(estimates), list(ses))
    assert abs(error.mean - 0.2) < 0.03 and abs(error.sd - 0.1) < 0.03
    calibrated, spread = error.calibrate(0.2, 0.1)
    assert abs(calibrated) < 0.03 and spread > 0.1
    clean = fit_systematic_error(list(rng.normal(0, ses)), list(ses))
    assert abs(clean.mean) < 0.03 and clean.sd < 0.05


def test_calibration_restores_coverage_when_an_unmeasured_confounder_travels_with_genotype(library: Library):
    """A risk factor common in one ancestry, where the risk phenotype is also common, and not in the data:
    the within-drug estimate is biased away from the true HR of 1; its negative controls share the bias."""
    rule = next(r for r in library.rules if r.id == CLOPIDOGREL)
    study = Study(rule, rule.learning)
    truth = Truth()
    truth.rules[CLOPIDOGREL] = {"baseline_rate": 0.3,
                                "hazard_ratio": {"Intermediate Metabolizer": 1.0, "Poor Metabolizer": 1.0}}  # fmt: skip
    truth.ancestry = {"EUR": 0.5, "EAS": 0.5}
    truth.confounding = {"hazard_ratio": 4.0, "prevalence": {"EUR": 0.0, "EAS": 0.9}}
    truth.controls = 8
    nominal, calibrated = [], []
    for seed in range(1, 11):
        population, new_users = draws(library, persons=50_000, seed=seed, truth=truth)
        found = {e.group: e for e in estimate(study, study_cells(study, population, new_users), ("within-drug",))}
        local = found["Intermediate Metabolizer"]
        controls = [
            next(e for e in estimate(study, study_cells(study, population, new_users, outcome=name), ("within-drug",))
                 if e.group == "Intermediate Metabolizer")
            for name in truth.negative_controls(CLOPIDOGREL)
        ]  # fmt: skip
        error = fit_systematic_error([c.log_hr for c in controls], [c.se for c in controls])
        nominal.append(abs(local.log_hr) <= Z95 * local.se)
        log_hr, se = error.calibrate(local.log_hr, local.se)
        calibrated.append(abs(log_hr) <= Z95 * se)
        assert error.mean > 0.1  # the controls see the confounding
    assert np.mean(nominal) <= 0.5
    assert np.mean(calibrated) >= 0.8
    assert math.isfinite(error.sd)
