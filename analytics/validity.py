"""The learning loop's operating characteristics on the simulator: the validity study's engine.

One replicate is one seed of one scenario (true HR, baseline risk, ancestry mix, size). Its data
are drawn once (analytics.simulate), then looked at as a site would over the last year of the
study: twelve monthly extracts, one cycle on each (estimate, posterior, the policy with its
sequential boundary), every group starting at "warning" between "info" and "critical". From the
last look come the estimate's bias, SE and CI coverage; from the twelve, whether any cycle
escalated (false escalation at HR <= 1, power above), and tier moves in the wrong direction.
The cells come from analytics.simulated_cells (equal to the SQL's cells, tested), the fits and
decisions from the same functions a cycle calls.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from analytics.cohort import Study
from analytics.estimate import Z95, estimate
from analytics.policy import decide, update
from analytics.sequential import Boundaries
from analytics.simulate import ANCESTRY, ANCESTRY_SHARE, STUDY_DAYS, Truth
from analytics.simulated_cells import draws, study_cells
from engine.library import Library
from engine.rules import Rule

ANCESTRY_MIXES = {
    "default": dict(zip(ANCESTRY, ANCESTRY_SHARE, strict=True)),
    # CYP2C19 no-function alleles are commonest in East Asian ancestry (learning-loop.md §1).
    "east-asian": {"EAS": 0.70, "EUR": 0.12, "SAS": 0.08, "AMR": 0.05, "AFR": 0.05},
}
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


def replicate(library: Library, rule: Rule, scenario: Scenario, seed: int, looks: int = LOOKS) -> list[Outcome]:
    """One seed of ``scenario``: its twelve monthly cycles."""
    learning = rule.learning
    assert learning is not None
    study = Study(rule, learning)
    population, new_users = draws(library, persons=scenario.persons, seed=seed, truth=scenario.truth(rule))
    policy = learning.policy
    state = {
        g.label: {"tier": START, "streak": 0, "escalated": False, "fixed": False, "wrong": 0, "first": None,
                  "boundaries": Boundaries(policy.false_escalation_per_year, policy.spending)}
        for g in learning.groups
    }  # fmt: skip
    last = {}
    for k in range(1, looks + 1):
        cutoff = STUDY_DAYS - round((looks - k) * 365.25 / 12)
        cells = study_cells(study, population, new_users, cutoff=cutoff)
        final = k == looks
        contrasts = ("within-drug", "interaction") if final else ("within-drug",)
        found = {(e.group, e.contrast): e for e in estimate(study, cells, contrasts)}
        for group in learning.groups:
            local, s = found[(group.label, "within-drug")], state[group.label]
            if final:
                last[group.label] = (local, found[(group.label, "interaction")])
            posterior = update(group, policy, local.log_hr, local.se)
            boundary = math.inf
            if local.log_hr is not None and local.se is not None:
                boundary = s["boundaries"].look(k / looks, 1 / local.se**2)
                sufficient = (
                    min(local.events, local.reference_events) >= policy.min_events and local.se <= policy.max_se
                )
                if sufficient and posterior.probability_above(policy.harm_hr) > policy.escalate_probability:
                    s["fixed"] |= local.log_hr / local.se > FIXED_LOCAL_Z
            decision = decide(policy, tier=s["tier"], floor=FLOOR, ceiling=CEILING, posterior=posterior,
                              events=local.events, reference_events=local.reference_events, log_hr=local.log_hr,
                              se=local.se, safe_streak=s["streak"], boundary=boundary)  # fmt: skip
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
    empirical_se: float | None  # SD of log HR across seeds
    model_se: float | None  # mean of the model's SE
    coverage: float | None  # share of 95% CIs covering the true HR
    interaction_bias: float | None
    interaction_coverage: float | None
    escalated: float  # share of seeds with an escalation in the year (sequential policy)
    escalated_fixed: float  # ... under the fixed per-look rule
    wrong_moves: float  # share of seeds with a tier move against the truth

    def as_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarise(scenario: Scenario, group: str, outcomes: list[Outcome]) -> Summary:
    truth = math.log(scenario.hr)
    fitted = [o for o in outcomes if o.log_hr is not None and o.se is not None]
    inter = [o for o in outcomes if o.interaction_log_hr is not None and o.interaction_se is not None]
    estimates = np.array([o.log_hr for o in fitted])
    ses = np.array([o.se for o in fitted])
    inter_estimates = np.array([o.interaction_log_hr for o in inter])
    inter_ses = np.array([o.interaction_se for o in inter])
    n = len(outcomes)
    return Summary(
        scenario.hr, scenario.baseline, scenario.ancestry, scenario.persons, group, n, len(fitted),
        float(np.mean([o.events for o in outcomes])),
        float(estimates.mean() - truth) if len(fitted) else None,
        float(estimates.std(ddof=1)) if len(fitted) > 1 else None,
        float(ses.mean()) if len(fitted) else None,
        float(np.mean(np.abs(estimates - truth) <= Z95 * ses)) if len(fitted) else None,
        float(inter_estimates.mean() - truth) if len(inter) else None,
        float(np.mean(np.abs(inter_estimates - truth) <= Z95 * inter_ses)) if len(inter) else None,
        sum(o.escalated for o in outcomes) / n, sum(o.escalated_fixed for o in outcomes) / n,
        sum(o.wrong_moves > 0 for o in outcomes) / n,
    )  # fmt: skip
