"""Hazard ratios from the cells: a piecewise-exponential Poisson model, fitted with statsmodels.

    events ~ C(grp) + C(band) + covariates,  offset log(person-time)       among the drug's users
    events ~ C(grp) * target + C(band) + covariates, offset log(person-time)   drug and comparators

The first gives each genotype group's hazard ratio against the reference on the drug (what the
literature prior describes); the second the genotype x drug interaction, which stays valid after
the alert starts switching patients (learning-loop.md §4). Cells are sufficient statistics: the
fit equals the individual-level Poisson fit, and approximates Cox (tests check both).

Beside the Wald estimate (log HR, SE at the fitted rates), each contrast carries the score test of
HR = 1 with its information under that null: the sequential escalation test needs a statistic
whose information does not move with the estimate (``score_test`` below says why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

from analytics.study.cohort import REFERENCE, Study

Z95 = 1.959964


@dataclass(frozen=True)
class Estimate:
    """One hazard ratio with its 95% CI, and the counts it rests on."""

    group: str
    contrast: str  # "within-drug" or "interaction"
    n: int
    events: int
    reference_n: int
    reference_events: int
    person_years: float
    log_hr: float | None
    se: float | None
    score_z: float | None = None  # score test of HR = 1 (``score_test``)
    null_information: float | None = None  # Fisher information for the log HR at HR = 1

    @property
    def hr(self) -> float | None:
        return math.exp(self.log_hr) if self.log_hr is not None else None

    @property
    def ci(self) -> tuple[float | None, float | None]:
        if self.log_hr is None or self.se is None:
            return None, None
        return math.exp(self.log_hr - Z95 * self.se), math.exp(self.log_hr + Z95 * self.se)


def _formula(study: Study, interaction: bool) -> str:
    terms = [f"C(grp, Treatment('{REFERENCE}'))"]
    if interaction:
        terms = [f"C(grp, Treatment('{REFERENCE}')) * target"]
    terms.append("C(band)")
    for name in study.covariate_names:
        terms.append(f"C({name})" if name in ("age", "sex") else name)
    return "events ~ " + " + ".join(terms)


def _counts(cells: pd.DataFrame) -> dict[str, tuple[int, int, float]]:
    """Per group: persons (in its first time band), events and person-years."""
    # numpy, not a pandas groupby: the validity study calls this thousands of times on a few hundred cells
    groups, where = np.unique(cells.grp.to_numpy(dtype=object), return_inverse=True)
    band = cells.band.to_numpy()
    first_band = np.full(len(groups), np.iinfo(np.int64).max)
    np.minimum.at(first_band, where, band)
    n = np.bincount(where, weights=cells.n.to_numpy() * (band == first_band[where]), minlength=len(groups))
    events = np.bincount(where, weights=cells.events.to_numpy(), minlength=len(groups))
    days = np.bincount(where, weights=cells.person_days.to_numpy(), minlength=len(groups))
    return {group: (int(n[k]), int(events[k]), float(days[k] / 365.25)) for k, group in enumerate(groups)}


def _dummies(values: pd.Series, name: str) -> dict[str, np.ndarray]:
    """Treatment coding of a categorical as patsy writes it: the first sorted level is the reference."""
    plain = values.to_numpy(dtype=object)
    return {f"{name}[T.{level}]": (plain == level).astype(float) for level in sorted(set(plain))[1:]}


def design(study: Study, data: pd.DataFrame, interaction: bool) -> pd.DataFrame:
    """The model matrix of ``_formula`` built directly, with patsy's column names.

    The validity study fits thousands of models on a few hundred cells each, where building the
    matrix through the formula costs more than the fit; tests/test_estimation.py checks the two
    give the same fit.
    """
    group_term = f"C(grp, Treatment('{REFERENCE}'))"
    grp = data.grp.to_numpy(dtype=object)
    groups = {f"{group_term}[T.{level}]": (grp == level).astype(float)
              for level in sorted(set(grp) - {REFERENCE})}  # fmt: skip
    columns: dict[str, np.ndarray] = {"Intercept": np.ones(len(data)), **groups}
    target = data.target.to_numpy(float)
    if interaction:
        columns["target"] = target
    columns.update(_dummies(data.band, "C(band)"))
    for name in study.covariate_names:
        if name in ("age", "sex"):
            columns.update(_dummies(data[name], f"C({name})"))
        else:
            columns[name] = data[name].to_numpy(float)
    if interaction:
        columns.update({f"{term}:target": dummy * target for term, dummy in groups.items()})
    return pd.DataFrame(columns, index=data.index)


def _fit(study: Study, cells: pd.DataFrame, interaction: bool):
    data = cells[cells.person_days > 0]
    model = sm.GLM(data.events, design(study, data, interaction), family=sm.families.Poisson(),
                   exposure=data.person_days)  # fmt: skip
    return model.fit()


NEWTON_STEPS = 25  # the null fit starts at the full fit's coefficients: a few steps converge


def score_test(fit, term: str) -> tuple[float, float]:
    """Rao's score z of H0: ``term`` = 0 and the efficient information for it under H0.

    The Wald information 1/SE^2 is computed at the fitted rates, so in a small group it grows
    and shrinks with the group's own event count: under H0 it is correlated with the estimate,
    and the information fractions alpha spending rests on stop being fixed by the design. Under
    the null fit (the term at 0, the other coefficients refitted) the information is, for a rate
    ratio, 1 / (1/E_group + 1/E_reference) with E the events expected at the pooled rate: it
    moves with person-time, not with the outcome, and the score statistics of successive looks
    have the independent increments the boundary assumes (Jennison C, Turnbull BW. Group
    Sequential Methods with Applications to Clinical Trials, 2000, sect. 3.5 and 11.6;
    Scharfstein DO, Tsiatis AA, Robins JM. JASA 1997;92:1342-1350). Returns (z, information):
    with I and U the Fisher information and score at the null fit, information = 1 / [I^-1]_jj
    and z = U_j / sqrt(information) (the nuisance scores are zero there).
    """
    model = fit.model
    exog, endog, offset = model.exog, model.endog, model.exposure  # statsmodels keeps log(exposure)
    j = list(fit.params.index).index(term)
    others = np.arange(exog.shape[1]) != j
    nuisance, params = exog[:, others], fit.params.to_numpy()[others].copy()
    for _ in range(NEWTON_STEPS):  # the null fit: Newton-Raphson on the Poisson log-likelihood
        mu = np.exp(nuisance @ params + offset)
        step = np.linalg.lstsq(nuisance.T @ (nuisance * mu[:, None]), nuisance.T @ (endog - mu), rcond=None)[0]
        params += step
        if np.max(np.abs(step)) < 1e-10:
            break
    mu = np.exp(nuisance @ params + offset)
    information = np.linalg.pinv(exog.T @ (exog * mu[:, None]))[j, j]
    return float((exog[:, j] @ (endog - mu)) * math.sqrt(information)), float(1 / information)


CONTRASTS = ("within-drug", "interaction")


def estimate(study: Study, cells: pd.DataFrame, contrasts: tuple[str, ...] = CONTRASTS) -> list[Estimate]:
    """The contrasts for every group (log HR None where the data cannot support a fit)."""
    estimates = []
    on_drug = cells[cells.target == 1]
    fits = {}
    for contrast, data, interaction in (("within-drug", on_drug, False), ("interaction", cells, True)):
        if contrast not in contrasts:
            continue
        reference_events = data.events.to_numpy()[data.grp.to_numpy(dtype=object) == REFERENCE].sum()
        if reference_events == 0 or (interaction and cells.target.nunique() < 2):
            fits[contrast] = None
            continue
        try:
            fits[contrast] = _fit(study, data, interaction)
        except (ValueError, np.linalg.LinAlgError):
            fits[contrast] = None
    counts = _counts(on_drug)
    reference_n, reference_events, _ = counts.get(REFERENCE, (0, 0, 0.0))
    # statsmodels builds a new Series at every .params / .bse: read them once per fit
    coefficients = {contrast: (fit.params, fit.bse) for contrast, fit in fits.items() if fit is not None}
    for group in study.learning.groups:
        n, events, years = counts.get(group.label, (0, 0, 0.0))
        for contrast in contrasts:
            fit = fits[contrast]
            term = f"C(grp, Treatment('{REFERENCE}'))[T.{group.label}]"
            if contrast == "interaction":
                term += ":target"
            log_hr = se = score_z = information = None
            if fit is not None and term in coefficients[contrast][0].index and events > 0:
                params, bse = coefficients[contrast]
                log_hr, se = float(params[term]), float(bse[term])
                if not (math.isfinite(log_hr) and math.isfinite(se)) or se > 10:  # separation: no estimate
                    log_hr = se = None
                else:
                    score_z, information = score_test(fit, term)
            estimates.append(Estimate(group.label, contrast, n, events, reference_n, reference_events, years,
                                      log_hr, se, score_z, information))  # fmt: skip
    return estimates
