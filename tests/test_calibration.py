"""Empirical calibration with negative controls: the fit, and coverage restored under unmeasured confounding."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analytics.cycle import run_cycle
from analytics.simulation.simulate import Truth
from analytics.simulation.simulated_cells import draws, study_cells
from analytics.study.calibration import fit_systematic_error
from analytics.study.cohort import Study
from analytics.study.estimate import Z95, estimate
from engine.rulebook.library import Library
from tests.learning_data import CLOPIDOGREL, paths_in, query, simulated


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
    truth.rules[CLOPIDOGREL] = {"baseline_rate": 0.05,
                                "hazard_ratio": {"Intermediate Metabolizer": 1.0, "Poor Metabolizer": 1.0}}  # fmt: skip
    truth.ancestry = {"EUR": 0.5, "EAS": 0.5}
    # A strong factor (HR 8), carried by most East Asian-ancestry patients only, among whom CYP2C19
    # intermediate metabolizers are commoner: about +0.2 on the log HR of every within-drug contrast.
    truth.confounding = {"hazard_ratio": 8.0, "prevalence": {"EUR": 0.0, "EAS": 0.9}}
    truth.controls = "listed"  # the rule file's own negative controls, with their OMOP concept ids
    nominal, calibrated, biases, residuals = [], [], [], []
    for seed in range(1, 9):
        population, new_users = draws(library, persons=80_000, seed=seed, truth=truth)
        found = {e.group: e for e in estimate(study, study_cells(study, population, new_users), ("within-drug",))}
        local = found["Intermediate Metabolizer"]
        controls = [
            next(e for e in estimate(study, study_cells(study, population, new_users, outcome=name), ("within-drug",))
                 if e.group == "Intermediate Metabolizer")
            for name in (control.name for control in truth.negative_controls(rule))
        ]  # fmt: skip
        error = fit_systematic_error([c.log_hr for c in controls], [c.se for c in controls])
        nominal.append(abs(local.log_hr) <= Z95 * local.se)
        log_hr, se = error.calibrate(local.log_hr, local.se)
        calibrated.append(abs(log_hr) <= Z95 * se)
        biases.append(local.log_hr)
        residuals.append(log_hr)
    assert np.mean(biases) > 0.12  # at a true HR of 1 the within-drug estimate is biased upward...
    assert abs(np.mean(residuals)) < 0.5 * np.mean(biases)  # ...and the controls' systematic error removes it
    assert np.mean(calibrated) >= 0.75 and np.mean(calibrated) >= np.mean(nominal)
    assert math.isfinite(error.sd)


def test_with_the_rule_files_negative_controls_the_cycle_decides_on_the_calibrated_estimate(tmp_path, library):
    """The shipped rule library's negative controls (OMOP concept ids from OHDSI's published lists), simulated
    at a site with an unmeasured confounder: the cycle estimates them and calibrates the decision."""
    rule = next(r for r in library.rules if r.id == CLOPIDOGREL)
    listed = rule.learning.negative_controls
    truth = Truth()
    truth.rules[CLOPIDOGREL]["baseline_rate"] = 0.05
    truth.ancestry = {"EUR": 0.5, "EAS": 0.5}
    truth.confounding = {"hazard_ratio": 8.0, "prevalence": {"EUR": 0.0, "EAS": 0.9}}
    truth.controls = "listed"
    source = tmp_path / "source.duckdb"
    con = simulated(library, 60_000, seed=4, effects=truth, path=source)
    # the simulator records each control under the concept id the rule file names
    recorded = dict(con.execute("""SELECT condition_concept_id, count(*) FROM condition_occurrence
        WHERE condition_concept_id < 2000000000 GROUP BY 1""").fetchall())  # fmt: skip
    con.close()
    assert set(recorded) == {int(c.conditions[0].code) for c in listed} and min(recorded.values()) > 100
    paths = paths_in(tmp_path / "loop", source)
    first, again = run_cycle(library, paths), run_cycle(library, paths)
    rows = query(paths, "SELECT run_id, phenotype, evidence FROM strength_audit WHERE rule = ? AND run_id IS NOT NULL",
                 [CLOPIDOGREL])  # fmt: skip
    looks = {(run, phenotype): json.loads(evidence).get("look") for run, phenotype, evidence in rows}
    im = "Intermediate Metabolizer"
    before, after = looks[(first.run_id, im)], looks[(again.run_id, im)]
    # one surveillance year; the same data again is no new information, so the same boundary
    assert before and after and after["year_start"] == before["year_start"]
    assert after["boundary"] == before["boundary"] and after["t"] > before["t"]
    ((log_hr, se),) = query(paths, """SELECT log_hr, se FROM estimate WHERE run_id = ? AND rule = ? AND phenotype = ?
        AND contrast = 'within-drug'""", [again.run_id, CLOPIDOGREL, im])  # fmt: skip
    (evidence,) = [json.loads(e) for run, phenotype, e in rows if run == again.run_id and phenotype == im]
    calibration = evidence["calibration"]
    assert calibration["controls"] == len(listed)
    (row,) = [e for e in again.estimates if e["rule"] == CLOPIDOGREL and e["phenotype"] == im]
    assert row["negative_controls"] == {"listed": len(listed), "estimable": len(listed), "calibrated": True}
    # The decision's statistic is the calibrated score z: shifted by the controls' mean, widened by their
    # spread. The score and Wald z of one fit agree closely, so it lies near the calibrated Wald z and
    # well away from the uncalibrated one.
    expected = (log_hr - calibration["bias_mean"]) / math.sqrt(se**2 + calibration["bias_sd"] ** 2)
    z = evidence["look"]["z"]
    assert z == pytest.approx(expected, rel=0.03)
    assert abs(z - expected) < abs(z - log_hr / se) / 3
    assert 1 / evidence["look"]["information"] > calibration["bias_sd"] ** 2  # widened by the controls' spread
    assert calibration["calibrated"]["hr"] == pytest.approx(math.exp(log_hr - calibration["bias_mean"]))
