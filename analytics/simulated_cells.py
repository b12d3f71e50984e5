"""A study's cells straight from the simulator's draws: no OMOP tables, no SQL.

The validity study (bench/learning_validity.py) needs thousands of simulated databases; writing
each to DuckDB and running the cohort SQL is what costs the time. The simulator's draws
(analytics.simulate.draw_population / draw_new_users) already hold everything the cohort SQL
would find, so this module applies the same rules to them in numpy: the same new users (not
opted out, with a result on file, in a genotype group), the same covariates (age band from the
calendar years, sex, a condition diagnosed within its look-back, by any rule's diagnosis of that
code), the same follow-up (to the outcome, death, end of observation or of the window) and the
same time bands. tests/test_validity_study.py checks that the cells equal
analytics.cohort.cells on the written database, seed for seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.cohort import Study, time_bands
from analytics.simulate import DAY0, NewUsers, Population, Truth, draw_new_users, draw_population, simulated_rules
from engine.library import Library

AGE_BANDS = ((75, "75+"), (65, "65-74"), (50, "50-64"))


def draws(library: Library, *, persons: int, seed: int, truth: Truth) -> tuple[Population, list[NewUsers]]:
    """Everything ``simulate`` would write with this seed, as arrays (same random stream)."""
    rng = np.random.default_rng(seed)
    rules = simulated_rules(library)
    population = draw_population(rng, library, sorted({rule.gene for rule in rules}), persons, truth)
    return population, [draw_new_users(rng, rule, truth, population, offset) for offset, rule in enumerate(rules)]


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


def study_cells(study: Study, population: Population, new_users: list[NewUsers], *, outcome: str | None = None,
                cutoff: int | None = None) -> pd.DataFrame:  # fmt: skip
    """The cells analytics.cohort.cells would compute for ``study``.

    ``outcome``: a negative control's name instead of the study outcome; ``cutoff``: the data as an
    extract taken on that day (days from the study start) would hold them: later index dates,
    results, deaths and follow-up are not there yet.
    """
    learning = study.learning
    draw = next(d for d in new_users if d.rule.id == study.rule.id)
    p, users = population, draw.users
    last_day = np.inf if cutoff is None else cutoff
    groups = study.groups()
    distinct, where = np.unique(p.phenotypes[study.gene][users], return_inverse=True)
    grp = np.array([groups.get(ph) for ph in distinct], dtype=object)[where]
    dies = p.dies[users] & (p.death_day[users] < last_day + 1)
    death = np.where(dies, np.floor(np.where(dies, p.death_day[users], 0)), np.inf)
    obs_end = np.minimum(p.obs_end[users], last_day)
    end = np.minimum(np.minimum(obs_end, draw.index + learning.time_at_risk_days), death).astype(np.int64)
    event_day = draw.event_day if outcome is None else draw.negative_controls[outcome]
    happened = draw.happened if outcome is None else np.isfinite(event_day)
    known = p.tested[users] & (p.result_day[users] <= last_day)
    keep = known & ~p.opted_out[users] & (grp != None) & (end > draw.index) & (draw.index <= obs_end)  # noqa: E711
    event_date = np.floor(np.where(happened, event_day, 0)).astype(np.int64)
    had_event = happened & (event_date > draw.index) & (event_date <= end)
    fu = np.where(had_event, event_date, end) - draw.index
    frame = {"target": draw.on_drug.astype(np.int64), "grp": grp}
    for name in study.covariate_names:
        if name == "age":
            frame["age"] = _age_band(draw.index, p.birth_year[users])
        elif name == "sex":
            frame["sex"] = np.where(p.female[users], "F", "M")
        else:
            covariate = next(c for c in learning.condition_covariates if c.name == name)
            frame[name] = _diagnosed(draw, new_users, covariate, len(p.person_id)).astype(np.int64)
    rows = pd.DataFrame(frame)[keep]
    fu, had_event = fu[keep], had_event[keep]
    keys = ["target", "grp", *study.covariate_names]
    pieces = []
    for start, stop in time_bands(learning.time_at_risk_days):
        at_risk = fu > start
        piece = rows[at_risk].copy()
        piece["band"] = start
        piece["n"] = 1
        piece["events"] = (had_event[at_risk] & (fu[at_risk] <= stop)).astype(np.int64)
        piece["person_days"] = np.minimum(fu[at_risk], stop) - start
        pieces.append(piece)
    cells = pd.concat(pieces).groupby([*keys, "band"], as_index=False)[["n", "events", "person_days"]].sum()
    return cells.sort_values([*keys, "band"], ignore_index=True)
