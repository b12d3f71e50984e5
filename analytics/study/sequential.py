"""Escalation as a sequential test: Lan-DeMets alpha spending over a surveillance year's looks.

The loop looks at growing data every night; a fixed threshold tested at every look escalates a
null rule far more often than its nominal level (Armitage, McPherson & Rowe 1969). So escalation
is a one-sided group-sequential test of H0: HR <= 1 on the local data, with z_k the score z of
HR = 1 at look k and I_k its Fisher information under that null (analytics.study.estimate.score_test:
about 1 / (1/E_group + 1/E_reference), E the events expected at the pooled rate). Under H0 the
z_k are jointly normal with corr(z_j, z_k) = sqrt(I_j / I_k) (independent increments of the
score: Jennison & Turnbull 2000, sect. 3.5 and 11.6; Scharfstein, Tsiatis & Robins 1997). The
information is taken under the null on purpose: the Wald 1 / SE^2 is computed at the fitted rate,
so in a small group it rises and falls with the group's own events, and a look where it fell
counted as adding nothing; the null information moves with person-time only. Each
surveillance year (starting at its first look) has a budget alpha, spent as the year passes by a
Lan-DeMets spending function of the calendar fraction t of the year (Lan KKG, DeMets DL.
Biometrika 1983;70:659-663; calendar time: Lan & DeMets, Stat Med 1989;8:1191-1198): the boundary c_k at look k solves

    P(z_1 < c_1, ..., z_{k-1} < c_{k-1}, z_k >= c_k | H0) = alpha(t_k) - P(crossed earlier | H0),

computed by numerical integration over the sub-density of the score S = z sqrt(I) (Armitage et al.
1969's recursion). Any number and timing of looks keep P(any escalation in a year | HR = 1) <=
alpha; a look with no new information spends nothing and keeps the previous boundary.

Spending functions (one-sided alpha): Pocock-type alpha log(1 + (e - 1) t) spends evenly, so an
effect can be acted on early in the year (the default); O'Brien-Fleming-type
2 - 2 Phi(z_{1-alpha/2} / sqrt t) keeps early looks very strict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr
from scipy.stats import norm

SPENDING = ("pocock", "obrien-fleming")
MIN_NEW_INFORMATION = 1e-3  # relative growth of information below which a look adds nothing
GRID_PER_SD = 10  # grid points per SD of the smaller of the increment and the score
LOWEST_Z = 8.0  # the density below z = -8 is negligible


def spent(t: float, alpha: float, kind: str) -> float:
    """Alpha to be spent by calendar fraction ``t`` of the year."""
    t = min(max(t, 0.0), 1.0)
    if t == 0:
        return 0.0
    if kind == "obrien-fleming":
        return float(2 * (1 - norm.cdf(norm.ppf(1 - alpha / 2) / math.sqrt(t))))
    return alpha * math.log(1 + (math.e - 1) * t)


@dataclass(frozen=True)
class Look:
    """One look: calendar fraction of the year, information under H0, and the boundary on z used."""

    t: float
    information: float
    boundary: float


@dataclass
class Boundaries:
    """The looks of one surveillance year so far, and the null sub-density of the score between them."""

    alpha: float
    kind: str = "pocock"
    looks: list[Look] = field(default_factory=list)
    _grid: np.ndarray | None = None
    _density: np.ndarray | None = None  # sub-density of S on _grid (mass that has not crossed)

    @property
    def crossed(self) -> float:
        """P(some earlier look crossed | H0)."""
        if self._density is None or self._grid is None:
            return 0.0
        return float(max(0.0, 1 - self._density @ np.gradient(self._grid)))

    def look(self, t: float, information: float) -> float:
        """The boundary on z for a look at calendar fraction ``t`` with ``information``; records the look."""
        target = max(spent(t, self.alpha, self.kind) - self.crossed, 0.0)
        last = self.looks[-1] if self.looks else None
        if last is not None and information <= last.information * (1 + MIN_NEW_INFORMATION):
            boundary = last.boundary  # nothing new to test: the same data cannot cross again
        elif last is None or self._grid is None or self._density is None:
            boundary = float(norm.isf(target)) if target > 0 else math.inf
            root = math.sqrt(information)
            grid = np.arange(-LOWEST_Z * root, min(boundary, 12.0) * root, root / (4 * GRID_PER_SD))
            self._grid, self._density = grid, norm.pdf(grid / root) / root
        else:
            boundary = self._next(information, target)
        self.looks.append(Look(t, information, boundary))
        return boundary

    def _next(self, information: float, target: float) -> float:
        assert self._grid is not None and self._density is not None
        step = math.sqrt(information - self.looks[-1].information)
        grid, density = self._grid, self._density
        weights = density * np.gradient(grid)  # mass at each grid point

        def crossing(c: float) -> float:
            return float(weights @ ndtr((grid - c * math.sqrt(information)) / step))  # P(N > x) = ndtr(-x), fast

        if target <= 0:
            boundary = math.inf
        elif crossing(12.0) >= target:
            boundary = 12.0
        else:
            low, high = -12.0, 12.0
            for _ in range(50):
                middle = (low + high) / 2
                if crossing(middle) > target:
                    low = middle
                else:
                    high = middle
            boundary = high
        # The density of S at this look below the boundary: the old one convolved with the
        # increment's normal density, on a uniform grid fine enough for both.
        root = math.sqrt(information)
        spacing = min(step, root) / GRID_PER_SD
        top = min(boundary, 12.0) * root
        bottom = max(grid[0] - 6 * step, -LOWEST_Z * root)
        lattice = np.arange(bottom, max(top, grid[-1]) + spacing, spacing)
        old = np.interp(lattice, grid, density, left=0.0, right=0.0)
        width = math.ceil(7 * step / spacing)
        kernel = norm.pdf(np.arange(-width, width + 1) * spacing / step) * spacing / step
        convolved = np.convolve(old, kernel, mode="full")[width : width + len(lattice)]
        keep = lattice <= top
        new_grid, convolved = lattice[keep], convolved[keep]
        self._grid, self._density = new_grid, convolved
        return boundary


def replay(looks: list[Look], alpha: float, kind: str) -> Boundaries:
    """The state after ``looks`` (as stored by earlier cycles), to add the next one."""
    state = Boundaries(alpha, kind)
    for look in looks:
        state.look(look.t, look.information)
    return state
