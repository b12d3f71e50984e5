"""The validity study's parts: fast cells equal the SQL's, the sequential boundary keeps its
false-escalation budget, and a small grid of the study itself (real statsmodels fits)."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from analytics.data.genotypes import extract_measurements, refresh_phenotypes
from analytics.simulation.simulate import Truth, simulate
from analytics.simulation.simulated_cells import draws, study_cells, with_truth
from analytics.simulation.validity import Scenario, replicates, summarise
from analytics.study.cohort import Study, build, cells
from analytics.study.policy import decide, update
from analytics.study.sequential import Boundaries, replay
from engine.rulebook.library import Library
from tests.learning_data import CLOPIDOGREL


def _rule(library: Library, rule_id: str = CLOPIDOGREL):
    return next(r for r in library.rules if r.id == rule_id)


@pytest.mark.parametrize("seed", [3, 4])
def test_the_fast_cells_equal_the_cohort_sqls_cells_seed_for_seed(library: Library, seed: int):
    truth = Truth()
    con = duckdb.connect()
    simulate(con, library, persons=30_000, seed=seed, truth=truth)
    extract_measurements(con, set(library.genes))
    refresh_phenotypes(con, library)
    population, new_users = draws(library, persons=30_000, seed=seed, truth=truth)
    for rule in (r for r in library.rules if r.learning):
        study = Study(rule, rule.learning)
        build(con, study)
        sql = cells(con, study)
        fast = study_cells(study, population, new_users)
        sql = sql.astype({c: fast[c].dtype for c in fast.columns})
        pd.testing.assert_frame_equal(sql.reset_index(drop=True), fast[sql.columns].reset_index(drop=True))


def test_a_cutoff_sees_less_data_and_the_full_cutoff_sees_it_all(library: Library):
    truth = Truth()
    population, new_users = draws(library, persons=30_000, seed=5, truth=truth)
    rule = _rule(library)
    study = Study(rule, rule.learning)
    everything = study_cells(study, population, new_users)
    earlier = study_cells(study, population, new_users, cutoff=365 * 6)
    assert earlier.events.sum() < everything.events.sum() and earlier.person_days.sum() < everything.person_days.sum()
    pd.testing.assert_frame_equal(everything, study_cells(study, population, new_users, cutoff=10**6))


def test_other_truths_by_rescaling_equal_drawing_them_with_the_same_seed(library: Library):
    """Common random numbers: the study's scenarios share a seed's persons, their outcomes rescaled."""
    rule = _rule(library)
    drawn = Scenario(1.0, 0.06, "east-asian", 30_000).truth(rule)
    population, new_users = draws(library, persons=30_000, seed=6, truth=drawn)
    study = Study(rule, rule.learning)
    for hr, baseline in ((0.7, 0.02), (3.0, 0.15)):
        truth = Scenario(hr, baseline, "east-asian", 30_000).truth(rule)
        _, direct = draws(library, persons=30_000, seed=6, truth=truth)
        rescaled = with_truth(rule, population, new_users, drawn, truth)
        mine, theirs = (next(d for d in x if d.rule.id == rule.id) for x in (rescaled, direct))
        assert np.allclose(mine.event_day, theirs.event_day, rtol=1e-12)
        before = next(d for d in new_users if d.rule.id == rule.id)
        assert (mine.happened == theirs.happened).all() and mine.happened.sum() != before.happened.sum()
        pd.testing.assert_frame_equal(study_cells(study, population, rescaled), study_cells(study, population, direct))


@pytest.mark.parametrize("kind", ["pocock", "obrien-fleming"])
@pytest.mark.parametrize("growth", [0.02, 2.0])
def test_a_year_of_looks_at_no_harm_crosses_the_boundary_at_most_alpha_of_the_time(kind: str, growth: float):
    """Monte Carlo of the null score process at twelve looks (information growing slowly or fast)."""
    information = 40 * (1 + growth * np.arange(12) / 11)
    state = Boundaries(0.05, kind)
    boundaries = np.array([state.look((k + 1) / 12, i) for k, i in enumerate(information)])
    rng = np.random.default_rng(7)
    increments = rng.normal(size=(200_000, 12)) * np.sqrt(np.diff(np.concatenate([[0], information])))
    z = np.cumsum(increments, axis=1) / np.sqrt(information)
    crossed = (z >= boundaries).any(axis=1).mean()
    assert 0.045 < crossed < 0.0525
    if growth > 1:  # with real new information at each look, the single-look threshold would not keep the budget
        assert (z >= 1.645).any(axis=1).mean() > 0.06


def test_a_look_without_new_information_keeps_the_boundary_and_replay_restores_the_state():
    state = Boundaries(0.05, "pocock")
    first = state.look(1 / 12, 40.0)
    again = state.look(2 / 12, 40.0)
    later = state.look(3 / 12, 44.0)
    assert again == first and later < first
    restored = replay(state.looks, 0.05, "pocock")
    assert restored.look(4 / 12, 48.0) == pytest.approx(state.look(4 / 12, 48.0))


def test_the_policy_escalates_only_across_the_sequential_boundary(library: Library):
    rule = _rule(library)
    group = rule.learning.groups[0]
    policy = rule.learning.policy
    posterior = update(group, policy, math.log(1.6), 0.15)
    common = dict(tier="warning", floor="info", ceiling="critical", posterior=posterior, events=200,
                  reference_events=400, log_hr=math.log(1.6), se=0.15, safe_streak=0)  # fmt: skip
    z = math.log(1.6) / 0.15
    assert decide(policy, **common, boundary=z - 0.1).action == "escalate"
    held = decide(policy, **common, boundary=z + 0.1)
    assert held.action == "hold" and "sequential boundary" in held.reason


def test_a_small_grid_of_the_study_meets_its_targets(library: Library):
    """The always-run slice of bench/learning_validity.py: unbiased, calibrated, no false escalation."""
    rule = _rule(library)
    scenarios = [Scenario(hr, 0.15, "default", 60_000) for hr in (1.0, 2.0)]
    seeds = [replicates(library, rule, scenarios, seed, looks=3) for seed in range(1, 21)]
    for scenario in scenarios:
        hr, runs = scenario.hr, [by_scenario[scenario] for by_scenario in seeds]
        im = summarise(scenario, "Intermediate Metabolizer", [run[0] for run in runs])
        assert im.fitted == 20 and abs(im.bias) < 0.15
        assert im.coverage >= 0.85
        assert 0.7 < im.empirical_se / im.model_se < 1.4
        if hr == 1.0:
            assert im.escalated <= 0.05 and im.wrong_moves <= 0.05
        else:
            assert im.escalated > 0.5
