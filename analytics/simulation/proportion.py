"""95% intervals of a share of simulated site-years: Wilson, and Wilson with clustered site-years.

The validity study's site-years are not all independent: the scenarios of one draw (seed,
ancestry mix, size) share its persons (common random numbers), so their escalations are
correlated. ``clustered_wilson`` takes the draws as clusters and uses every site-year, with the
effective sample size of Korn & Graubard (Korn EL, Graubard BI. Confidence intervals for
proportions with small expected number of positive counts estimated from survey data. Survey
Methodology 1998;24:193-201): n* = p(1 - p) / Var(p), Var(p) the with-replacement variance of
the ratio estimator over clusters, scaled by (t_{n-1} / t_{clusters-1})^2 for the clusters'
degrees of freedom, put into the Wilson score interval in place of n (the "modified Wilson"
interval of SAS PROC SURVEYFREQ; the form Franco C, Little RJA, Louis TA, Slud EV recommend,
J Surv Stat Methodol 2019;7:334-364).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t
from statsmodels.stats.proportion import proportion_confint


def wilson(hits: float, n: float) -> tuple[float, float]:
    """The Wilson score 95% interval of a proportion (Wilson EB, JASA 1927;22:209-212): honest at 0/20 or 6/20."""
    low, high = proportion_confint(hits, n, alpha=0.05, method="wilson")
    return float(low), float(high)


@dataclass(frozen=True)
class ClusteredShare:
    """A share of site-years with its cluster-aware 95% interval."""

    hits: int
    site_years: int
    clusters: int
    share: float
    design_effect: float | None  # Var(share) over clusters / binomial Var; None when no variance to estimate
    effective_site_years: float  # n*, between the clusters and the site-years
    ci95: tuple[float, float]


def clustered_wilson(hits: Sequence[int], sizes: Sequence[int]) -> ClusteredShare:
    """The share sum(hits) / sum(sizes) over clusters (cluster i: ``hits[i]`` of ``sizes[i]``) and its
    Wilson interval at the Korn-Graubard effective sample size (module docstring).

    n* is kept between the number of clusters and of site-years: equal-size clusters of m
    site-years have a design effect of at most m (a mean of m correlated draws varies no more than
    one draw), and below 1 the site-years themselves are the honest count (SAS's truncation). With
    no hit (or all hits) there is no variance to estimate, and the interval counts the clusters
    only, the conservative end. Perfectly duplicated clusters give the interval of the clusters;
    independent site-years give the pooled Wilson interval.
    """
    y, m = np.asarray(hits, dtype=float), np.asarray(sizes, dtype=float)
    clusters, n = len(m), float(m.sum())
    share = float(y.sum() / n)
    design_effect, effective = None, float(clusters)
    if 0 < share < 1 and clusters > 1:
        variance = clusters / (clusters - 1) * float(np.sum((y - share * m) ** 2)) / n**2
        design_effect = variance / (share * (1 - share) / n)
        degrees = (student_t.ppf(0.975, n - 1) / student_t.ppf(0.975, clusters - 1)) ** 2
        effective = math.inf if variance == 0 else share * (1 - share) / variance * degrees
    effective = min(max(effective, clusters), n)
    return ClusteredShare(int(y.sum()), int(n), clusters, share, design_effect, effective,
                          wilson(share * effective, effective))  # fmt: skip
