"""A study's cells straight from the simulator's draws: no OMOP tables, no SQL.

The validity study (bench/learning_validity.py) needs thousands of simulated databases; writing
each to DuckDB and running the cohort SQL is what costs the time. The simulator's draws
(analytics.simulation.simulate.draw_population / draw_new_users) already hold everything the cohort SQL
would find, so this module applies the same rules to them in numpy: the same new users (not
opted out, with a result on file, in a genotype group), the same covariates (age band from the
calendar years, sex, a condition diagnosed within its look-back, by any rule's diagnosis of that
code), the same follow-up (to the outcome, death, end of observation or of the window) and the
same time bands. tests/test_validity_study.py checks that the cells equal
analytics.study.cohort.cells on the written database, seed for seed.

What does not change between a year's monthly extracts (who a user is, their covariates) is
worked out once (``StudyDraws``); each extract then only recounts follow-up and events.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pandas as pd

from analytics.simulation.simulate import (
    DAY0,
    NewUsers,
    Population,
    Truth,
    draw_new_users,
    draw_population,
    simulated_rules,
)
from analytics.study.cohort import Study, time_bands
from engine.decision.rules import Rule
from engine.rulebook.library import Library

AGE_BANDS = ((75, "75+"), (65, "65-74"), (50, "50-64"))


def draws(library: Library, *, persons: int, seed: int, truth: Truth) -> tuple[Population, list[NewUsers]]:
    """Everything ``simulate`` would write with this seed, as arrays (same random stream)."""
    rng = np.random.default_rng(seed)
    rules = simulated_rules(library)
    population = draw_population(rng, library, sorted({rule.gene for rule in rules}), persons, truth)
    return population, [draw_new_users(rng, rule, truth, population, offset) for offset, rule in enumerate(rules)]


def _rate(truth: Truth, rule: Rule) -> float:
    return -math.log(1 - float(truth.rules.get(rule.id, {"baseline_rate": 0.05})["baseline_rate"]))


def with_truth(rule: Rule, population: Population, new_users: list[NewUsers], drawn: Truth,
               truth: Truth) -> list[NewUsers]:  # fmt: skip
    """The draws of ``rule`` under another baseline rate and hazard ratios: common random numbers.

    The simulator draws an outcome time as index + 1 + E / hazard, E a unit exponential (numpy
    draws E and multiplies by the scale, so the stream does not depend on the hazard), and the
    baseline rate and the true hazard ratios only multiply the hazard. The same seed under another
    truth therefore gives these draws with the waiting times rescaled, which is what ``draws``
    with ``truth`` returns (tests/test_validity_study.py checks it). Population settings
    (ancestry, confounding, negative controls) must be the same in both truths.
    """
    out = []
    for draw in new_users:
        if draw.rule.id != rule.id:
            out.append(draw)
            continue
        distinct, where = np.unique(population.phenotypes[rule.gene][draw.users], return_inverse=True)
        before = np.array([drawn.hazard_ratio(rule, ph) for ph in distinct])[where]
        after = np.array([truth.hazard_ratio(rule, ph) for ph in distinct])[where]
        factor = (_rate(drawn, rule) / _rate(truth, rule)) * np.where(draw.on_drug, before / after, 1.0)
        event_day = draw.index + 1 + (draw.event_day - draw.index - 1) * factor
        out.append(dataclasses.replace(draw, event_day=event_day, happened=event_day < draw.end))
    return out


def _age_band(index: np.ndarray, birth_year: np.ndarray) -> np.ndarray:
    year = (DAY0 + index.astype("timedelta64[D]")).astype("datetime64[Y]").astype(int) + 1970
    age = year - birth_year
    band = np.full(len(age), "<50", dtype=object)
    for lower, label in reversed(AGE_BANDS):
        band[age >= lower] = label
    return band


def _diagnosed(draw: NewUsers, others: list[NewUsers], covariate, persons: int) -> np.ndarray:
    """Whether each of ``draw``'s users has a diagnosis of ``covariate`` within its look-back (any rule's)."""
    codes = {(c.system, c.code) for c in covariate.conditions}
    present = np.zeros(len(draw.users), bool)
    for other in others:
        assert other.rule.learning is not None
        for theirs in other.rule.learning.condition_covariates:
            first = theirs.conditions[0]
            if (first.system, first.code) not in codes:
                continue
            has = other.conditions[theirs.name]
            day = np.full(persons, -1, dtype=np.int64)
            day[other.users[has]] = (other.index - other.condition_lag[theirs.name])[has]
            mine = day[draw.users]
            present |= (mine >= 0) & (mine >= draw.index - covariate.lookback_days) & (mine <= draw.index)
    return present


class StudyDraws:
    """One study's users with what every extract shares: genotype group, arm and covariates, as cell keys."""

    def __init__(self, study: Study, population: Population, new_users: list[NewUsers]) -> None:
        learning = study.learning
        self.study, self.population = study, population
        self.draw = draw = next(d for d in new_users if d.rule.id == study.rule.id)
        p, users = population, draw.users
        groups = study.groups()
        distinct, where = np.unique(p.phenotypes[study.gene][users], return_inverse=True)
        grp = np.array([groups.get(ph) for ph in distinct], dtype=object)[where]
        frame = {"target": draw.on_drug.astype(np.int64), "grp": grp}
        for name in study.covariate_names:
            if name == "age":
                frame["age"] = _age_band(draw.index, p.birth_year[users])
            elif name == "sex":
                frame["sex"] = np.where(p.female[users], "F", "M")
            else:
                covariate = next(c for c in learning.condition_covariates if c.name == name)
                frame[name] = _diagnosed(draw, new_users, covariate, len(p.person_id)).astype(np.int64)
        self.in_group = grp != None  # noqa: E711
        self.keys = ["target", "grp", *study.covariate_names]
        rows = pd.DataFrame(frame)
        codes = rows[self.in_group].drop_duplicates().sort_values(self.keys, ignore_index=True)
        self.levels = codes  # one row per distinct key, in the cells' order
        self.key = np.full(len(users), -1, dtype=np.int64)
        self.key[self.in_group] = (
            rows[self.in_group].merge(codes.reset_index(), on=self.keys, how="left")["index"].to_numpy()
        )
        self.bands = time_bands(learning.time_at_risk_days)
        self.dies = p.dies[users]
        self.death_day = p.death_day[users]
        self.obs_end = p.obs_end[users]
        self.eligible = p.tested[users] & ~p.opted_out[users] & self.in_group
        self.result_day = p.result_day[users]

    def with_outcomes(self, draw: NewUsers) -> StudyDraws:
        """The same users with the outcome times of ``draw`` (the same draw under another truth)."""
        assert draw.rule.id == self.draw.rule.id and len(draw.users) == len(self.draw.users)
        other = copy.copy(self)
        other.draw = draw
        return other

    def cells(self, *, outcome: str | None = None, cutoff: int | None = None) -> pd.DataFrame:
        """The cells of the extract taken ``cutoff`` days after the study start (see ``study_cells``)."""
        draw, window = self.draw, self.study.learning.time_at_risk_days
        last_day = np.inf if cutoff is None else cutoff
        dies = self.dies & (self.death_day < last_day + 1)
        death = np.where(dies, np.floor(np.where(dies, self.death_day, 0)), np.inf)
        obs_end = np.minimum(self.obs_end, last_day)
        end = np.minimum(np.minimum(obs_end, draw.index + window), death).astype(np.int64)
        event_day = draw.event_day if outcome is None else draw.negative_controls[outcome]
        happened = draw.happened if outcome is None else np.isfinite(event_day)
        keep = self.eligible & (self.result_day <= last_day) & (end > draw.index) & (draw.index <= obs_end)
        event_date = np.floor(np.where(happened, event_day, 0)).astype(np.int64)
        had_event = happened & (event_date > draw.index) & (event_date <= end)
        fu, had_event, key = (np.where(had_event, event_date, end) - draw.index)[keep], had_event[keep], self.key[keep]
        size, bands = len(self.levels), len(self.bands)
        n, events, days = (np.zeros((size, bands), np.int64) for _ in range(3))
        for b, (start, stop) in enumerate(self.bands):
            at_risk = fu > start
            k = key[at_risk]
            n[:, b] = np.bincount(k, minlength=size)
            events[:, b] = np.bincount(k, weights=had_event[at_risk] & (fu[at_risk] <= stop), minlength=size)
            days[:, b] = np.bincount(k, weights=np.minimum(fu[at_risk], stop) - start, minlength=size)
        # keys sorted, then band: the order of the SQL's cells (levels are sorted by the keys)
        level, band = np.nonzero(n > 0)
        cells = self.levels.take(level).reset_index(drop=True)
        starts = np.array([start for start, _ in self.bands], np.int64)
        return cells.assign(band=starts[band], n=n[level, band], events=events[level, band],
                            person_days=days[level, band])  # fmt: skip


def study_cells(study: Study, population: Population, new_users: list[NewUsers], *, outcome: str | None = None,
                cutoff: int | None = None) -> pd.DataFrame:  # fmt: skip
    """The cells analytics.study.cohort.cells would compute for ``study``.

    ``outcome``: a negative control's name instead of the study outcome; ``cutoff``: the data as an
    extract taken on that day (days from the study start) would hold them: later index dates,
    results, deaths and follow-up are not there yet.
    """
    return StudyDraws(study, population, new_users).cells(outcome=outcome, cutoff=cutoff)
