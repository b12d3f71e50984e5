"""From an estimate to a tier: a Bayesian update toward the literature, and a cautious policy.

Prior: a robust mixture, w·N(log HR₀, SE₀² + η²) + (1 − w)·N(0, 1): mostly the published effect
(widened for between-site heterogeneity η), with a vague component so that local data that
contradicts the guideline can still be seen (Schmidli 2014). With a normal likelihood for the
local log HR, each component updates in closed form and the weights by their marginal likelihood.

Decision, per genotype group (thresholds in the rule's ``learning.policy``):
- nothing until the data are there: at least ``min_events`` events in the group and in the
  reference, and a local SE of at most ``max_se``;
- escalate one tier when P(HR > harm_hr) > escalate_probability and the local data on their own
  cross this look's sequential boundary (the score z of HR = 1, with its information under that
  null, at or above the Lan-DeMets boundary of analytics/study/sequential.py, and never below the
  ``local_confirmation`` quantile): the prior is
  already in the rule file's tier, so only this site's data may raise it, a strong prior cannot
  escalate on weak local data, and however many cycles run, a group with no true harm escalates
  in at most ``false_escalation_per_year`` of years (measured: bench/learning_validity.py);
- de-escalate one tier only when P(HR < safe_hr) > deescalate_probability on ``deescalate_after``
  consecutive cycles (hysteresis: weakening needs stronger, repeated evidence);
- at most one tier per cycle, never below the floor or above the ceiling of any recommendation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from engine.decision.learning import Group, Policy
from engine.decision.rules import TIER_RANK, TIERS, Tier


@dataclass(frozen=True)
class Posterior:
    """A two-component normal mixture over the log hazard ratio."""

    weights: tuple[float, float]
    means: tuple[float, float]
    sds: tuple[float, float]

    def probability_above(self, hr: float) -> float:
        x = math.log(hr)
        components = zip(self.weights, self.means, self.sds, strict=True)
        return sum(w * (1 - NormalDist(m, s).cdf(x)) for w, m, s in components)

    def probability_below(self, hr: float) -> float:
        return 1 - self.probability_above(hr)

    def quantile(self, q: float) -> float:
        """The HR below which the posterior puts probability q (bisection on the mixture CDF)."""
        low, high = -10.0, 10.0
        for _ in range(80):
            middle = (low + high) / 2
            if 1 - self.probability_above(math.exp(middle)) < q:
                low = middle
            else:
                high = middle
        return math.exp((low + high) / 2)

    @property
    def median_hr(self) -> float:
        return self.quantile(0.5)


def prior_components(
    group: Group, policy: Policy
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    informative_sd = math.sqrt(group.prior.se**2 + policy.heterogeneity**2)
    return (policy.prior_weight, 1 - policy.prior_weight), (group.prior.log_hr, 0.0), (informative_sd, 1.0)


def update(group: Group, policy: Policy, log_hr: float | None, se: float | None) -> Posterior:
    """The posterior given a local estimate (the prior itself when there is none)."""
    weights, means, sds = prior_components(group, policy)
    if log_hr is None or se is None:
        return Posterior(weights, means, sds)
    new_weights, new_means, new_sds = [], [], []
    for w, m, s in zip(weights, means, sds, strict=True):
        precision = 1 / s**2 + 1 / se**2
        new_means.append((m / s**2 + log_hr / se**2) / precision)
        new_sds.append(math.sqrt(1 / precision))
        new_weights.append(w * NormalDist(m, math.sqrt(s**2 + se**2)).pdf(log_hr))
    total = sum(new_weights)
    return Posterior(
        (new_weights[0] / total, new_weights[1] / total), (new_means[0], new_means[1]), (new_sds[0], new_sds[1])
    )


def at_ceiling_reason(ceiling: Tier) -> str:
    """The one reason every group held at its ceiling gives (reports group by it)."""
    return f"at its ceiling ({ceiling}), the highest tier the rule allows"


def escalation_boundary(policy: Policy, sequential: float) -> float:
    """The z the local estimate must reach to escalate: the sequential boundary, floored by local_confirmation."""
    return max(sequential, NormalDist().inv_cdf(policy.local_confirmation))


@dataclass(frozen=True)
class Decision:
    tier_before: Tier
    tier_after: Tier
    action: str  # escalate | de-escalate | hold | insufficient data | off
    reason: str

    @property
    def changes(self) -> bool:
        return self.tier_after != self.tier_before


def decide(
    policy: Policy,
    *,
    tier: Tier,
    floor: Tier,
    ceiling: Tier,
    posterior: Posterior,
    events: int,
    reference_events: int,
    log_hr: float | None,
    se: float | None,
    safe_streak: int,
    z: float | None,
    boundary: float,
) -> Decision:
    """The tier for the next cycle. ``safe_streak``: earlier consecutive cycles that met the de-escalation bar;
    ``z``: the local score z of HR = 1 (analytics.study.estimate.score_test); ``boundary``: this
    look's sequential boundary on it (analytics/study/sequential.py)."""
    if (
        events < policy.min_events
        or reference_events < policy.min_events
        or log_hr is None
        or se is None
        or z is None
        or se > policy.max_se
    ):
        reason = (
            f"not enough data: {events} events in the group and {reference_events} in the reference "
            f"(need {policy.min_events} each), local SE {'n/a' if se is None else f'{se:.2f}'} "
            f"(need at most {policy.max_se})"
        )
        return Decision(tier, tier, "insufficient data", reason)
    harm = posterior.probability_above(policy.harm_hr)
    safe = posterior.probability_below(policy.safe_hr)
    rank = TIER_RANK[tier]
    needed = escalation_boundary(policy, boundary)
    at_ceiling = rank >= TIER_RANK[ceiling]
    if harm > policy.escalate_probability:
        if at_ceiling:
            return Decision(tier, tier, "hold", f"{at_ceiling_reason(ceiling)}; P(HR > {policy.harm_hr}) = {harm:.2f}")
        if z < needed:
            reason = (
                f"P(HR > {policy.harm_hr}) = {harm:.2f}, but this site's own estimate does not confirm harm yet "
                f"(z = {z:.2f}, this cycle's sequential boundary {needed:.2f})"
            )
            return Decision(tier, tier, "hold", reason)
        reason = (
            f"P(HR > {policy.harm_hr}) = {harm:.2f} > {policy.escalate_probability}, and this site's estimate "
            f"crosses the sequential boundary (z = {z:.2f} >= {needed:.2f})"
        )
        return Decision(tier, TIERS[rank + 1], "escalate", reason)
    if safe > policy.deescalate_probability:
        streak = safe_streak + 1
        if streak < policy.deescalate_after:
            reason = (
                f"P(HR < {policy.safe_hr}) = {safe:.2f} > {policy.deescalate_probability}, "
                f"cycle {streak} of the {policy.deescalate_after} needed"
            )
            return Decision(tier, tier, "hold", reason)
        if rank > TIER_RANK[floor]:
            reason = f"P(HR < {policy.safe_hr}) = {safe:.2f} > {policy.deescalate_probability} for {streak} cycles"
            return Decision(tier, TIERS[rank - 1], "de-escalate", reason)
        return Decision(tier, tier, "hold", f"P(HR < {policy.safe_hr}) = {safe:.2f}, already at the floor ({floor})")
    evidence = f"P(HR > {policy.harm_hr}) = {harm:.2f}, P(HR < {policy.safe_hr}) = {safe:.2f}"
    if at_ceiling:
        return Decision(tier, tier, "hold", f"{at_ceiling_reason(ceiling)}; {evidence}")
    return Decision(tier, tier, "hold", f"{evidence}: no change")
