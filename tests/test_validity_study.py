"""The validity study's parts: fast cells equal the SQL's, the sequential boundary keeps its
false-escalation budget, and a small grid of the study itself (real statsmodels fits)."""

from __future__ import annotations

import itertools
import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from analytics.data.genotypes import extract_measurements, refresh_phenotypes
from analytics.simulation.proportion import clustered_wilson, wilson
from analytics.simulation.simulate import Truth, simulate
from analytics.simulation.simulated_cells import StudyDraws, draws, study_cells, with_truth
from analytics.simulation.validity import (
    Outcome,
    Scenario,
    draw_seed,
    escalations_by_draw,
    replicates,
    sequential_summary,
    summarise,
)
from analytics.study.cohort import Study, build, cells
from analytics.study.estimate import estimate
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


def test_each_ancestry_mix_draws_its_own_sites(library: Library):
    """Under one simulator seed the ancestry draw only relabels the same uniforms: the default and
    the East Asian sites were the same persons with the same waiting times, so their errors moved
    together (on seeds 1-20 both gave a -0.04 'bias' at every true HR). Each mix has its own seeds."""
    rule = _rule(library)
    assert draw_seed(7, "default") == 7  # the default mix is `pgx-loop simulate --seed 7`
    sites = []
    for mix in ("default", "east-asian"):
        truth = Scenario(1.0, 0.06, mix, 20_000).truth(rule)
        sites.append(draws(library, persons=20_000, seed=draw_seed(7, mix), truth=truth)[0])
    assert 0.45 < np.mean(sites[0].female == sites[1].female) < 0.55
    assert np.mean(sites[0].birth_year == sites[1].birth_year) < 0.05


def test_outcomes_fall_on_every_day_the_study_counts_at_risk_the_last_one_too(library: Library):
    """The study counts days index+1 .. end inclusive; the simulator once stopped at the start of the
    last day, so no outcome ever fell on the last day of the window (a day of person-time without risk)."""
    rule = _rule(library)
    truth = Scenario(1.0, 0.63, "default", 300_000).truth(rule)  # a hazard of 1 a year: most outcomes late
    _, new_users = draws(library, persons=300_000, seed=8, truth=truth)
    draw = next(d for d in new_users if d.rule.id == rule.id)
    days = np.floor(draw.event_day[draw.happened]).astype(int) - draw.index[draw.happened]
    window = rule.learning.time_at_risk_days
    assert days.min() == 1 and days.max() == window
    # about as many on the last day as on each of the days before it (about 10 each)
    assert np.sum(days == window) >= 0.3 * np.mean([np.sum(days == window - k) for k in range(1, 31)]) > 1


def test_at_big_n_the_within_drug_estimate_is_the_hazard_ratio_the_simulator_states(library: Library):
    """4 million persons, East Asian mix, 1-year risk 60%: about 10,000 events in the reference
    group and 9,000-13,000 among Intermediate Metabolizers on the drug, a Monte Carlo SE of about
    0.014 for their log HR (seed 11 gives +0.010 at HR 1, +0.018 at HR 2). The error once seen on
    seeds 1-20 (-0.036 at every HR) would put HR 1 outside 0.02; the estimate is within 0.02 of the
    truth at HR 1 (no offset) and HR 2 (no attenuation), the same persons under both truths."""
    rule = _rule(library)
    study = Study(rule, rule.learning)
    drawn = Scenario(1.0, 0.6, "east-asian", 4_000_000).truth(rule)
    population, new_users = draws(library, persons=4_000_000, seed=11, truth=drawn)
    prepared = StudyDraws(study, population, new_users)
    for hr in (1.0, 2.0):
        again = with_truth(rule, population, new_users, drawn, Scenario(hr, 0.6, "east-asian", 4_000_000).truth(rule))
        mine = next(d for d in again if d.rule.id == rule.id)
        found = {e.group: e for e in estimate(study, prepared.with_outcomes(mine).cells(), ("within-drug",))}
        im, pm = found["Intermediate Metabolizer"], found["Poor Metabolizer"]
        assert im.events > 8_000 and im.reference_events > 8_000
        assert abs(im.log_hr - math.log(hr)) < 0.02, (hr, im.log_hr, im.se)
        assert abs(pm.log_hr - math.log(hr)) < 0.05, (hr, pm.log_hr, pm.se)


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
    z = 3.0
    common["z"] = z
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


def test_the_score_test_is_raos_with_the_information_taken_under_the_null():
    """Two groups: z = (O - E) / sqrt(V) and information D p (1 - p) = 1 / (1/E_group + 1/E_reference),
    both from expected events at the pooled rate, not from the group's own count; and with a
    covariate the same z as statsmodels' score test of the null fit."""
    import statsmodels.api as sm

    from analytics.study.estimate import score_test

    exog = pd.DataFrame({"const": [1.0, 1.0], "g": [0.0, 1.0]})
    fit = sm.GLM(np.array([30.0, 12.0]), exog, family=sm.families.Poisson(), exposure=np.array([1000.0, 200.0])).fit()
    z, information = score_test(fit, "g")
    share = 200 / 1200
    assert information == pytest.approx(42 * share * (1 - share))
    assert z == pytest.approx((12 - 42 * share) / math.sqrt(42 * share * (1 - share)))
    assert 1 / fit.bse["g"] ** 2 > information * 1.4  # the Wald information follows the 12 observed events

    rng = np.random.default_rng(1)
    n = 300
    exog = pd.DataFrame({"const": 1.0, "g": rng.integers(0, 2, n) * 1.0, "age": rng.normal(size=n)})
    time = rng.uniform(10, 100, n)
    events = rng.poisson(time * 0.01 * np.exp(0.3 * exog.age + 0.2 * exog.g))
    fit = sm.GLM(events, exog, family=sm.families.Poisson(), exposure=time).fit()
    null = sm.GLM(events, exog[["const", "age"]], family=sm.families.Poisson(), exposure=time).fit()
    z, _ = score_test(fit, "g")
    assert z**2 == pytest.approx(float(null.score_test(exog_extra=exog[["g"]].to_numpy()).statistic[0]))
    assert np.sign(z) == np.sign(fit.params["g"])


def test_a_small_group_at_hr_1_escalates_in_about_5_percent_of_years():
    """The year of looks on a small group (about 1 event a month against 5 in the reference, 12
    and 60 before the year starts): score z and null information through the real boundary."""
    rng = np.random.default_rng(11)
    years, escalated = 400, 0
    for _ in range(years):
        state, expected_group, expected_reference = Boundaries(0.05, "pocock"), 12.0, 60.0
        group, reference = rng.poisson(12), rng.poisson(60)
        for k in range(1, 13):
            group, reference = group + rng.poisson(1.0), reference + rng.poisson(5.0)
            expected_group, expected_reference = expected_group + 1.0, expected_reference + 5.0
            pooled, share = group + reference, expected_group / (expected_group + expected_reference)
            information = pooled * share * (1 - share)
            boundary = state.look(k / 12, information)
            z = (group - pooled * share) / math.sqrt(information)
            if min(group, reference) >= 10 and z >= max(boundary, 1.645):
                escalated += 1
                break
    assert escalated / years <= 0.08


def test_perfectly_duplicated_clusters_give_the_interval_of_the_clusters_alone():
    """Three baselines of one draw that always agree hold one draw's information, not three."""
    per_draw = [1] * 4 + [0] * 76
    pooled = clustered_wilson([3 * x for x in per_draw], [3] * 80)
    assert pooled.share == pytest.approx(4 / 80) and pooled.site_years == 240 and pooled.clusters == 80
    assert pooled.design_effect == pytest.approx(3 * 80 / 79, rel=1e-9)  # m, times the variance's C / (C - 1)
    assert pooled.effective_site_years == 80
    assert pooled.ci95 == pytest.approx(wilson(4, 80))


def test_independent_site_years_give_the_pooled_wilson_interval():
    pooled = clustered_wilson([1] * 7 + [0] * 233, [1] * 240)  # clusters of one site-year each
    assert pooled.effective_site_years == 240 and pooled.ci95 == pytest.approx(wilson(7, 240))
    # less variance between draws than independent site-years would give: capped at the site-years
    even = clustered_wilson([1] * 20 + [0] * 60, [3] * 80)
    assert even.design_effect < 1 and even.effective_site_years == 240
    assert even.ci95 == pytest.approx(wilson(20, 240))
    # in between, n* = p (1 - p) / Var lies between the draws and the site-years, so does the interval
    some = clustered_wilson([2, 2, 1, 1, 1, 0, 0] + [0] * 73, [3] * 80)
    assert 80 < some.effective_site_years < 240 and 1 < some.design_effect < 3
    assert wilson(7, 240)[1] < some.ci95[1] < wilson(7 / 3, 80)[1]


def test_no_escalation_at_all_counts_only_the_draws():
    none = clustered_wilson([0] * 80, [3] * 80)
    assert none.design_effect is None and none.effective_site_years == 80 and none.ci95 == pytest.approx(wilson(0, 80))


@pytest.mark.parametrize("draws", [80, 400])
def test_the_cluster_aware_interval_covers_at_its_nominal_rate(draws: int):
    """Draws of three site-years, half of them sharing one outcome (as the baselines of one draw
    share its persons), a 3% true share: the cluster-aware interval covers about 95% of the time
    (Monte Carlo SE 0.6%), the pooled Wilson that treats site-years as independent about 83-85%."""
    rng = np.random.default_rng(draws)
    truth, replications, covered, naive = 0.03, 1500, 0, 0
    for _ in range(replications):
        shared = rng.random(draws) < 0.5
        one = rng.random(draws) < truth
        escalated = np.where(shared[:, None], one[:, None], rng.random((draws, 3)) < truth)
        pooled = clustered_wilson(escalated.sum(axis=1), [3] * draws)
        covered += pooled.ci95[0] <= truth <= pooled.ci95[1]
        low, high = wilson(escalated.sum(), 3 * draws)
        naive += low <= truth <= high
    assert 0.925 <= covered / replications <= 0.975
    assert naive / replications < 0.9


def test_the_pooled_share_takes_each_draw_with_its_baselines_as_one_cluster():
    """Seed x ancestry mix x size is one draw; its baselines (and only they) share it."""

    def outcome(group: str, escalated: bool) -> Outcome:
        return Outcome(group, 50, 0.0, 0.2, 0.0, 0.3, escalated, False, int(escalated), 1 if escalated else None)

    results: dict[Scenario, dict[int, list[Outcome]]] = {}
    for hr, baseline, mix, seed in itertools.product((1.0, 2.0), (0.02, 0.15), ("default", "east-asian"), range(1, 11)):
        # at HR 1 seed 1 escalates at both baselines of the default mix; seed 2 of the East Asian mix at 15% only
        hit = hr == 2.0 or (seed, mix) == (1, "default") or (seed, mix, baseline) == (2, "east-asian", 0.15)
        scenario = Scenario(hr, baseline, mix, 100_000)
        results.setdefault(scenario, {})[seed] = [outcome("IM", hit), outcome("PM", False)]
    hits, sizes = escalations_by_draw(results, "IM", 1.0)
    assert sizes == [2] * 20 and sorted(hits, reverse=True)[:3] == [2, 1, 0] and sum(hits) == 3
    null = sequential_summary(results)["groups"]["IM"]["1"]
    assert (null["escalations"], null["seeds"], null["independent_draws"]) == (3, 40, 20)
    assert null["ci95"] == pytest.approx(clustered_wilson(hits, sizes).ci95, abs=1e-4)
    assert null["ci95_independent_draws"] == pytest.approx(wilson(1.5, 20), abs=1e-4)
    assert null["ci95_independent_draws"][1] > null["ci95"][1]
    assert sequential_summary(results)["groups"]["PM"]["1"]["ci95"] == pytest.approx(wilson(0, 20), abs=1e-4)
