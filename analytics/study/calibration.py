"""Empirical calibration with negative-control outcomes (OHDSI's EmpiricalCalibration, in Python).

A negative control is an outcome the genotype cannot affect on the drug (true HR 1). Estimated
with the study's own design, its log HRs scatter around 0 only by chance if the design is sound;
what they show beyond chance is the design's systematic error (residual confounding, such as an
unmeasured risk factor that travels with ancestry and so with genotype). Following Schuemie et al.
(Stat Med 2014;33:209-218; PNAS 2018;115:2571-2577) the systematic error is modelled as normal,
N(mu, sigma^2), fitted by maximum likelihood with each control's log HR ~ N(mu, sigma^2 + se_i^2);
an estimate is then calibrated by removing mu and adding sigma^2 to its variance: calibrated
p-values and CIs (the negative-control-only version of their interval calibration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

from analytics.study.estimate import Z95


@dataclass(frozen=True)
class SystematicError:
    """The fitted null distribution: mean and SD of the design's bias on the log HR scale."""

    mean: float
    sd: float
    controls: int

    def calibrate(self, log_hr: float, se: float) -> tuple[float, float]:
        """The calibrated log HR and SE."""
        return log_hr - self.mean, math.sqrt(se**2 + self.sd**2)

    def p_value(self, log_hr: float, se: float) -> float:
        """Calibrated two-sided p-value of H0: HR = 1."""
        estimate, spread = self.calibrate(log_hr, se)
        return float(2 * norm.sf(abs(estimate) / spread))

    def interval(self, log_hr: float, se: float) -> tuple[float, float, float]:
        """Calibrated HR and 95% CI."""
        estimate, spread = self.calibrate(log_hr, se)
        return math.exp(estimate), math.exp(estimate - Z95 * spread), math.exp(estimate + Z95 * spread)


def fit_systematic_error(log_hrs: list[float], ses: list[float]) -> SystematicError:
    """Maximum-likelihood fit of N(mu, sigma^2) to negative-control estimates with their SEs."""
    x, s = np.asarray(log_hrs, float), np.asarray(ses, float)
    if len(x) == 0:
        raise ValueError("no negative-control estimates to fit")

    def negative_log_likelihood(theta: np.ndarray) -> float:
        mu, log_sigma = theta
        variance = s**2 + math.exp(2 * log_sigma)
        return float(0.5 * np.sum(np.log(variance) + (x - mu) ** 2 / variance))

    start = np.array([float(np.mean(x)), math.log(max(float(np.std(x)), 0.01))])
    fit = minimize(negative_log_likelihood, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
    mu, log_sigma = fit.x
    sigma = math.exp(log_sigma)
    return SystematicError(float(mu), sigma if sigma > 1e-4 else 0.0, len(x))


def unconfounded_p(log_hr: float, se: float) -> float:
    """The nominal two-sided p-value, for reports beside the calibrated one."""
    return float(2 * norm.sf(abs(log_hr) / se))
