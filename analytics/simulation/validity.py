"""The learning loop's operating characteristics on the simulator: the validity study's engine.

One replicate is one seed of one scenario (true HR, baseline risk, ancestry mix, size). Its data
are drawn once (analytics.simulation.simulate), then looked at as a site would over the last year of the
study: twelve monthly extracts, one cycle on each (estimate, posterior, the policy with its
sequential boundary), every group starting at "warning" between "info" and "critical". From the
last look come the estimate's bias, SE and CI coverage; from the twelve, whether any cycle
escalated (false escalation at HR <= 1, power above), and tier moves in the wrong direction.
The cells come from analytics.simulation.simulated_cells (equal to the SQL's cells, tested), the fits and
decisions from the same functions a cycle calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from analytics.simulation.proportion import clustered_wilson, wilson
from analytics.simulation.simulate import ANCESTRY, ANCESTRY_SHARE, STUDY_DAYS, Truth
from analytics.simulation.simulated_cells import StudyDraws, draws, with_truth
from analytics.study.cohort import Study
from analytics.study.estimate import Z95, estimate
from analytics.study.policy import decide, update
from analytics.study.sequential import Boundaries
from engine.decision.rules import Rule
from engine.rulebook.library import Library

ANCESTRY_MIXES = {
    "default": dict(zip(ANCESTRY, ANCESTRY_SHARE, strict=True)),
    # CYP2C19 no-function alleles are commonest in East Asian ancestry (learning-loop.md §1).
    "east-asian": {"EAS": 0.70, "EUR": 0.12, "SAS": 0.08, "AMR": 0.05, "AFR": 0.05},
}
SEED_STRIDE = 1_000_000  # each ancestry mix draws its sites from its own block of simulator seeds (``draw_seed``)
LOOKS = 12  # monthly extracts over the last year
START, FLOOR, CEILING = "warning", "info", "critical"
FIXED_LOCAL_Z = NormalDist().inv_cdf(0.995)  # the earlier rule: the local 99% CI above 1 at any look


@dataclass(frozen=True)
class Scenario:
    hr: float
    baseline: float
    ancestry: str
    persons: int

    def truth(self, rule: Rule) -> Truth:
        """Every risk group at ``hr``; the population mix named by ``ancestry``."""
        truth = Truth()
        assert rule.learning is not None
        truth.rules[rule.id] = {"baseline_rate": self.baseline,
                                "hazard_ratio": {g.label: self.hr for g in rule.learning.groups}}  # fmt: skip
        truth.ancestry = dict(ANCESTRY_MIXES[self.ancestry])
        return truth


@dataclass(frozen=True)
class Outcome:
    """One group in one replicate."""

    group: str
    events: int
    log_hr: float | None
    se: float | None
    interaction_log_hr: float | None
    interaction_se: float | None
    escalated: bool  # some cycle of the year escalated (sequential policy)
    escalated_fixed: bool  # ... under the earlier fixed per-look rule (local 99% CI above 1)
    wrong_moves: int  # tier moves against the truth (escalation at HR <= 1, de-escalation at HR >= harm)
    first_escalation: int | None  # the look (1-12) of the first escalation


def draw_seed(seed: int, ancestry: str) -> int:
    """The simulator seed (``pgx-loop simulate --seed``) of the study's seed ``seed`` in an ancestry mix.

    The ancestry draw only relabels the same uniforms, so under one seed every mix would hold the
    same persons with the same unit waiting times, and the mixes' errors would move together (on
    seeds 1-20 the 400k default and East Asian sites gave the same -0.04 bias at every true HR).
    Each mix takes its own block of seeds; the default mix keeps the seed itself.
    """
    return seed + SEED_STRIDE * list(ANCESTRY_MIXES).index(ancestry)


def replicate(library: Library, rule: Rule, scenario: Scenario, seed: int, looks: int = LOOKS) -> list[Outcome]:
    """One seed of ``scenario``: its monthly cycles."""
    return replicates(library, rule, [scenario], seed, looks)[scenario]


def replicates(library: Library, rule: Rule, scenarios: list[Scenario], seed: int,
               looks: int = LOOKS) -> dict[Scenario, list[Outcome]]:  # fmt: skip
    """One seed of each scenario (all of one ancestry mix and size), from one draw.

    Common random numbers: the persons, treatments and unit waiting times are drawn once, and
    each scenario's baseline rate and hazard ratios rescale the waiting times
    (analytics.simulation.simulated_cells.with_truth), exactly the draws the seed gives under that truth.
    Each scenario's seeds stay independent of each other; only scenarios sharing a seed are
    correlated, which the per-scenario figures do not see, but a comparison across them does: a
    bias of one sign at every true HR and baseline of a mix is those seeds' Monte Carlo error
    (``Summary.bias_mcse``), shared, not a property of the estimator.
    """
    mixes = {(s.ancestry, s.persons) for s in scenarios}
    assert len(mixes) == 1, "one draw serves one ancestry mix and size"
    drawn = scenarios[0].truth(rule)
    population, new_users = draws(library, persons=scenarios[0].persons, seed=draw_seed(seed, scenarios[0].ancestry),
                                  truth=drawn)  # fmt: skip
    prepared = StudyDraws(Study(rule, rule.learning), population, new_users)
    out = {}
    for scenario in scenarios:
        again = with_truth(rule, population, new_users, drawn, scenario.truth(rule))
        mine = next(d for d in again if d.rule.id == rule.id)
        out[scenario] = _year_of_looks(prepared.with_outcomes(mine), scenario, looks)
    return out


def _year_of_looks(prepared: StudyDraws, scenario: Scenario, looks: int) -> list[Outcome]:
    """The monthly cycles of one replicate, every group starting at ``START``."""
    study = prepared.study
    learning = study.learning
    policy = learning.policy
    state = {
        g.label: {"tier": START, "streak": 0, "escalated": False, "fixed": False, "wrong": 0, "first": None,
                  "boundaries": Boundaries(policy.false_escalation_per_year, policy.spending)}
        for g in learning.groups
    }  # fmt: skip
    last = {}
    for k in range(1, looks + 1):
        cutoff = STUDY_DAYS - round((looks - k) * 365.25 / 12)
        cells = prepared.cells(cutoff=cutoff)
        final = k == looks
        contrasts = ("within-drug", "interaction") if final else ("within-drug",)
        found = {(e.group, e.contrast): e for e in estimate(study, cells, contrasts)}
        for group in learning.groups:
            local, s = found[(group.label, "within-drug")], state[group.label]
            if final:
                last[group.label] = (local, found[(group.label, "interaction")])
            posterior = update(group, policy, local.log_hr, local.se)
            boundary = math.inf
            if local.score_z is not None and local.null_information is not None:
                boundary = s["boundaries"].look(k / looks, local.null_information)
                sufficient = (
                    min(local.events, local.reference_events) >= policy.min_events and local.se <= policy.max_se
                )
                if sufficient and posterior.probability_above(policy.harm_hr) > policy.escalate_probability:
                    s["fixed"] |= local.log_hr / local.se > FIXED_LOCAL_Z
            decision = decide(policy, tier=s["tier"], floor=FLOOR, ceiling=CEILING, posterior=posterior,
                              events=local.events, reference_events=local.reference_events, log_hr=local.log_hr,
                              se=local.se, safe_streak=s["streak"], z=local.score_z, boundary=boundary)  # fmt: skip
            safe = decision.action != "insufficient data" and (
                posterior.probability_below(policy.safe_hr) > policy.deescalate_probability
            )
            s["streak"] = s["streak"] + 1 if safe else 0
            if decision.action == "escalate":
                s["escalated"] = True
                s["first"] = s["first"] or k
                s["wrong"] += scenario.hr <= 1
            elif decision.action == "de-escalate":
                s["wrong"] += scenario.hr >= policy.harm_hr
            s["tier"] = decision.tier_after
    outcomes = []
    for group in learning.groups:
        local, interaction = last[group.label]
        s = state[group.label]
        outcomes.append(Outcome(group.label, local.events, local.log_hr, local.se, interaction.log_hr,
                                interaction.se, s["escalated"], s["fixed"], s["wrong"], s["first"]))  # fmt: skip
    return outcomes


@dataclass(frozen=True)
class Summary:
    """One scenario and group over its seeds."""

    hr: float
    baseline: float
    ancestry: str
    persons: int
    group: str
    seeds: int
    fitted: int
    mean_events: float
    bias: float | None  # mean of log HR - log true HR
    bias_mcse: float | None  # its Monte Carlo SE: empirical SE / sqrt(fitted)
    empirical_se: float | None  # SD of log HR across seeds
    model_se: float | None  # mean of the model's SE
    coverage: float | None  # share of 95% CIs covering the true HR
    interaction_bias: float | None
    interaction_coverage: float | None
    escalated: float  # share of seeds with an escalation in the year (sequential policy)
    escalated_fixed: float  # ... under the fixed per-look rule
    wrong_moves: float  # share of seeds with a tier move against the truth
    escalations: int  # seeds with an escalation in the year
    escalated_ci95: tuple[float, float]  # Wilson 95% interval of ``escalated`` over the seeds

    def as_json(self) -> dict:
        def rounded(v):
            return round(v, 4) if isinstance(v, float) else [rounded(x) for x in v] if isinstance(v, tuple) else v

        return {k: rounded(v) for k, v in asdict(self).items()}


def summarise(scenario: Scenario, group: str, outcomes: list[Outcome]) -> Summary:
    truth = math.log(scenario.hr)
    fitted = [o for o in outcomes if o.log_hr is not None and o.se is not None]
    inter = [o for o in outcomes if o.interaction_log_hr is not None and o.interaction_se is not None]
    estimates = np.array([o.log_hr for o in fitted])
    ses = np.array([o.se for o in fitted])
    inter_estimates = np.array([o.interaction_log_hr for o in inter])
    inter_ses = np.array([o.interaction_se for o in inter])
    n = len(outcomes)
    escalations = sum(o.escalated for o in outcomes)
    return Summary(
        scenario.hr, scenario.baseline, scenario.ancestry, scenario.persons, group, n, len(fitted),
        float(np.mean([o.events for o in outcomes])),
        float(estimates.mean() - truth) if len(fitted) else None,
        float(estimates.std(ddof=1) / math.sqrt(len(fitted))) if len(fitted) > 1 else None,
        float(estimates.std(ddof=1)) if len(fitted) > 1 else None,
        float(ses.mean()) if len(fitted) else None,
        float(np.mean(np.abs(estimates - truth) <= Z95 * ses)) if len(fitted) else None,
        float(inter_estimates.mean() - truth) if len(inter) else None,
        float(np.mean(np.abs(inter_estimates - truth) <= Z95 * inter_ses)) if len(inter) else None,
        escalations / n, sum(o.escalated_fixed for o in outcomes) / n,
        sum(o.wrong_moves > 0 for o in outcomes) / n, escalations, wilson(escalations, n),
    )  # fmt: skip


def summarise_results(results: Mapping[Scenario, Mapping[int, Sequence[Outcome]]]) -> list[Summary]:
    """Every scenario and group of ``results`` (scenario -> seed -> the seed's outcomes) over its seeds."""
    out = []
    for scenario, by_seed in results.items():
        runs = [by_seed[seed] for seed in sorted(by_seed)]
        for position, group in enumerate(o.group for o in runs[0]):
            out.append(summarise(scenario, group, [run[position] for run in runs]))
    return out


def escalations_by_draw(results: Mapping[Scenario, Mapping[int, Sequence[Outcome]]], group: str,
                        hr: float) -> tuple[list[int], list[int]]:  # fmt: skip
    """Per draw (seed, ancestry mix, size) at true ``hr``: the site-years of ``group`` that escalated
    within the year, and the site-years (one per baseline risk): the clusters of the pooled share."""
    hits: dict[tuple[int, str, int], int] = {}
    sizes: dict[tuple[int, str, int], int] = {}
    for scenario, by_seed in results.items():
        if scenario.hr != hr:
            continue
        for seed, outcomes in by_seed.items():
            draw = (seed, scenario.ancestry, scenario.persons)
            mine = next(o for o in outcomes if o.group == group)
            hits[draw] = hits.get(draw, 0) + mine.escalated
            sizes[draw] = sizes.get(draw, 0) + 1
    return [hits[d] for d in sorted(sizes)], [sizes[d] for d in sorted(sizes)]


def sequential_summary(results: Mapping[Scenario, Mapping[int, Sequence[Outcome]]]) -> dict:
    """A year of looks, per genotype group: false escalation (true HR <= 1) and power (HR > 1), over all cells.

    The scenarios of one seed, ancestry mix and size share a draw (common random numbers), so their
    site-years are clusters, not independent. ``ci95`` is the cluster-aware Wilson interval over
    all site-years with the Korn-Graubard effective sample size (analytics.simulation.proportion);
    ``ci95_independent_draws`` counts only the independent draws (seeds x mixes and sizes,
    ``draw_seed``), the conservative interval: as wide as if the baselines of a draw always agreed.
    The scenario escalating most often is named with its own count and interval over its seeds.
    """
    every = summarise_results(results)
    out: dict = {"groups": {}}
    for group in sorted({s.group for s in every}):
        mine = [s for s in every if s.group == group]
        entry: dict = {}
        for hr in sorted({s.hr for s in mine}):
            cells = [s for s in mine if s.hr == hr]
            pooled = clustered_wilson(*escalations_by_draw(results, group, hr))
            n, hits, draws = pooled.site_years, pooled.hits, pooled.clusters
            fixed = round(sum(s.escalated_fixed * s.seeds for s in cells))
            conservative = wilson(pooled.share * draws, draws)
            top = max(cells, key=lambda s: (s.escalated, -s.seeds))
            entry[f"{hr:g}"] = {
                "kind": "false escalation per year" if hr <= 1 else "power within a year",
                "seeds": n, "cells": len(cells), "independent_draws": draws, "escalations": hits,
                "escalated": round(hits / n, 4),
                "ci95": [round(x, 4) for x in pooled.ci95],
                "ci95_method": "Wilson at the Korn-Graubard effective sample size, draws as clusters",
                "design_effect": None if pooled.design_effect is None else round(pooled.design_effect, 3),
                "effective_site_years": round(pooled.effective_site_years, 1),
                "ci95_independent_draws": [round(x, 4) for x in conservative],
                "highest_cell": round(top.escalated, 4),
                "highest_cell_scenario": f"{100 * top.baseline:g}%, {top.ancestry}, {top.persons:,}",
                "highest_cell_escalations": f"{top.escalations}/{top.seeds}",
                "highest_cell_ci95": [round(x, 4) for x in top.escalated_ci95],
                "fixed_rule": round(fixed / n, 4),
                "wrong_moves": round(sum(s.wrong_moves * s.seeds for s in cells) / n, 4),
            }  # fmt: skip
        out["groups"][group] = entry
    return out
