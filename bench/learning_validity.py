"""The learning loop's validity study: bias, SE, coverage, false escalation and power, on the simulator.

For every scenario of the grid (true HR of the risk groups x baseline 1-year risk x ancestry mix x
size) and seed, the simulator's data are looked at as a site would over the study's last year:
monthly extracts, one cycle each, the real estimator, posterior and policy (analytics/simulation/validity.py).
Printed per scenario and genotype group: mean events, mean bias of the log HR with its Monte
Carlo SE (empirical SE / sqrt(seeds): with 20 seeds a bias of 0.04 can be the seeds', with 100 about 0.02), empirical
SE (across seeds) against the model's mean SE, 95% CI coverage, the seeds in which some cycle of
the year escalated (a false escalation when the true HR is <= 1, power otherwise) with its Wilson
95% interval, the share under the earlier fixed per-look rule (local 99% CI above 1), and the
share with a tier move against the truth. Then the cells that miss the estimator's targets
(|bias| < 0.05 where there are >= 100 events, coverage 93-97%), and those missing them beyond the
seeds' Monte Carlo error (bias less 1.96 Monte Carlo SE still >= 0.05; the coverage's Wilson
interval clear of 93-97%); and, per group and true HR over all scenarios, the share of simulated
site-years escalating (target <= 5% at HR <= 1; the sequential boundary is Lan-DeMets
alpha spending: Lan KKG, DeMets DL, Biometrika 1983;70:659-663; analytics/study/sequential.py),
with two 95% intervals: over all site-years, each draw's scenarios a cluster (Wilson at Korn &
Graubard's effective sample size, Survey Methodology 1998;24:193-201; analytics/simulation/proportion.py),
and the conservative one counting only the independent draws.

    python bench/learning_validity.py --raw .validity-raw.jsonl --seeds 100 --write analytics/report/validity.json
    python bench/learning_validity.py --hr 1.0 --persons 100000 --seeds 100
    python bench/learning_validity.py ... --looks 1         # estimates only: one look, no year of cycles

One draw per seed, ancestry mix and size serves every true HR and baseline risk (common random
numbers: analytics.simulation.simulated_cells.with_truth rescales the outcome times, tested equal
to drawing anew; the scenarios of one mix and size therefore share their seeds' error, and each
ancestry mix draws from its own simulator seeds, analytics.simulation.validity.draw_seed), and the
cells come straight from the draws (analytics/simulation/simulated_cells.py, tested equal to the
SQL cohort's cells seed for seed). The full grid (72 scenarios x 20 seeds) is 80 draws of about
6 s of CPU each (468 s in all; 36 min wall at nice 19 on a loaded 2-core machine); seeds 21-100
(320 draws) took 1,953 s CPU and 60 min wall with --workers 2 at nice 19 (load 4-8). ``--raw``
appends every seed's outcomes as it finishes and skips those already there, so a run can stop
and resume; seeds run outermost, so a stopped run has the same seeds in every scenario.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Each fit is a few hundred cells: BLAS threads only fight over the cores (2-3x slower under load).
for _threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

from analytics.simulation.proportion import wilson  # noqa: E402
from analytics.simulation.validity import (  # noqa: E402
    ANCESTRY_MIXES,
    LOOKS,
    Outcome,
    Scenario,
    Summary,
    draw_seed,
    replicates,
    sequential_summary,
    summarise_results,
)
from engine.rulebook.library import Library, load_library  # noqa: E402

RULE = "cyp2c19-clopidogrel"


@functools.cache
def _library() -> Library:
    return load_library(ROOT / "rules")  # once per worker process


def _run(job: tuple[list[Scenario], int, int]) -> tuple[int, dict[Scenario, list[Outcome]], float]:
    """One seed of every scenario of one ancestry mix and size (one draw, common random numbers)."""
    scenarios, seed, looks = job
    library = _library()
    rule = next(r for r in library.rules if r.id == RULE)
    started = time.process_time()
    return seed, replicates(library, rule, scenarios, seed, looks), time.process_time() - started


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table(summaries: list[Summary], looks: int) -> str:
    """The study's table, one line per scenario and group."""
    head = (f"{'HR':>4} {'base':>5} {'ancestry':>10} {'persons':>7} {'group':<25} {'seeds':>5} {'events':>6} "
            f"{'bias':>6} {'mcse':>5} {'empSE':>6} {'modSE':>6} {'cover':>5} {'i.bias':>6} {'i.cov':>5} "
            f"{'esc/yr' if looks > 1 else 'esc':>6} {'(95% CI)':>9} {'fixed':>5} {'wrong':>5}")  # fmt: skip
    lines = [head]
    for s in summaries:
        low, high = s.escalated_ci95
        lines.append(
            f"{s.hr:>4} {s.baseline:>5} {s.ancestry:>10} {s.persons:>7} {s.group:<25} {s.seeds:>5} "
            f"{s.mean_events:>6.0f} {_fmt(s.bias, '+.3f'):>6} {_fmt(s.bias_mcse, '.3f'):>5} "
            f"{_fmt(s.empirical_se, '.3f'):>6} {_fmt(s.model_se, '.3f'):>6} {_fmt(s.coverage, '.0%'):>5} "
            f"{_fmt(s.interaction_bias, '+.3f'):>6} {_fmt(s.interaction_coverage, '.0%'):>5} "
            f"{f'{s.escalations}/{s.seeds}':>6} {f'{low:.0%}-{high:.0%}':>9} {s.escalated_fixed:>5.0%} "
            f"{s.wrong_moves:>5.0%}"
        )
    return "\n".join(lines)


def pooled_lines(sequential: dict) -> str:
    """One line per group and true HR: the pooled share with both 95% intervals."""
    lines = []
    for group, by_hr in sequential["groups"].items():
        for hr, r in by_hr.items():
            low, high = r["ci95"]
            draws_low, draws_high = r["ci95_independent_draws"]
            deff = r["design_effect"]
            deff = "no variance to estimate" if deff is None else f"design effect {deff:.2f}"
            lines.append(
                f"{group}, HR {hr} ({r['kind']}): {r['escalations']}/{r['seeds']} site-years = {r['escalated']:.1%}; "
                f"95% CI {low:.1%}-{high:.1%} (draws as clusters: {deff}, {r['effective_site_years']:g} effective "
                f"site-years), {draws_low:.1%}-{draws_high:.1%} counting only the {r['independent_draws']} "
                f"independent draws"
            )
    return "\n".join(lines)


def targets(summaries: list[Summary]) -> dict:
    """Which cells miss the estimator's targets (|bias| < 0.05 where >= 100 events; coverage 93-97%)."""
    judged = [s for s in summaries if s.mean_events >= 100 and s.bias is not None]
    return {
        "cells_with_100_events": len(judged),
        "bias_over_0.05": [_key(s) for s in judged if abs(s.bias) >= 0.05],
        # missed beyond the seeds' own error: |bias| - 1.96 Monte Carlo SE still at or over 0.05
        "bias_over_0.05_beyond_monte_carlo_error": [
            _key(s) for s in judged if abs(s.bias) - 1.96 * (s.bias_mcse or 0.0) >= 0.05
        ],
        "coverage_outside_93_97": [_key(s) for s in judged if not 0.93 <= s.coverage <= 0.97],
        # ... beyond the seeds' own error: the Wilson 95% interval of the coverage misses 93-97% entirely
        "coverage_outside_93_97_beyond_monte_carlo_error": [
            _key(s) for s in judged if not _overlaps(wilson(s.coverage * s.fitted, s.fitted), (0.93, 0.97))
        ],
        "coverage_all_judged": round(
            sum(s.coverage * s.fitted for s in judged) / max(sum(s.fitted for s in judged), 1), 4
        ),
    }


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _key(s: Summary) -> str:
    return (f"HR {s.hr:g}, {100 * s.baseline:g}%, {s.ancestry}, {s.persons:,}, {s.group}: "
            f"bias {s.bias:+.3f} (Monte Carlo SE {_fmt(s.bias_mcse, '.3f')}), coverage {s.coverage:.0%}")  # fmt: skip


def _load_raw(path: Path, looks: int) -> dict[Scenario, dict[int, list[Outcome]]]:
    found: dict[Scenario, dict[int, list[Outcome]]] = {}
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        record = json.loads(line)
        scenario = record["scenario"]
        # Outcomes from before the mixes had their own seeds (draw_seed) are other sites: run again.
        if record["looks"] != looks or record.get("draw_seed") != draw_seed(record["seed"], scenario["ancestry"]):
            continue
        scenario = Scenario(**scenario)
        found.setdefault(scenario, {})[record["seed"]] = [Outcome(**o) for o in record["outcomes"]]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hr", type=float, nargs="+", default=[0.7, 1.0, 1.2, 1.5, 2.0, 3.0])
    parser.add_argument("--baseline", type=float, nargs="+", default=[0.02, 0.06, 0.15])
    parser.add_argument("--ancestry", nargs="+", default=list(ANCESTRY_MIXES), choices=list(ANCESTRY_MIXES))
    parser.add_argument("--persons", type=int, nargs="+", default=[100_000, 400_000])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument(
        "--looks", type=int, default=LOOKS, help="monthly cycles over the last year (1: estimates only)"
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--raw", type=Path, help="append each seed's outcomes here (JSON lines) and reuse the "
                        "seeds already there: a long study can stop and resume")  # fmt: skip
    parser.add_argument("--write", type=Path, help="merge the summaries into this JSON file (the report reads it)")
    args = parser.parse_args()
    scenarios = [Scenario(*combo) for combo in itertools.product(args.hr, args.baseline, args.ancestry, args.persons)]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    done = _load_raw(args.raw, args.looks) if args.raw else {}
    results = {scenario: {seed: done[scenario][seed] for seed in seeds if seed in done.get(scenario, {})}
               for scenario in scenarios}  # fmt: skip
    draws = sorted({(s.ancestry, s.persons) for s in scenarios})
    # Seeds outermost: stopped early, the study still has the same seeds in every scenario.
    jobs = []
    for seed, (ancestry, persons) in itertools.product(seeds, draws):
        todo = [s for s in scenarios if (s.ancestry, s.persons) == (ancestry, persons) and seed not in results[s]]
        if todo:
            jobs.append((todo, seed, args.looks))
    started, cpu = time.perf_counter(), 0.0
    with ProcessPoolExecutor(args.workers) as pool:
        for seed, outcomes, seconds in pool.map(_run, jobs, chunksize=1):
            cpu += seconds
            for scenario, runs in outcomes.items():
                results[scenario][seed] = runs
                if args.raw:
                    with args.raw.open("a") as raw:
                        raw.write(json.dumps({"scenario": dataclasses.asdict(scenario), "seed": seed,
                                              "draw_seed": draw_seed(seed, scenario.ancestry), "looks": args.looks,
                                              "outcomes": [dataclasses.asdict(o) for o in runs]}) + "\n")  # fmt: skip
    wall = time.perf_counter() - started
    found = summarise_results(results)
    print(f"{RULE}: {len(scenarios)} scenarios x {args.seeds} seeds, {args.looks} monthly look(s) each; "
          f"{len(jobs)} draws run now: {wall:.0f} s wall, {cpu:.0f} s CPU")  # fmt: skip
    print(table(found, args.looks))
    sequential = sequential_summary(results) if args.looks > 1 else None
    checked = targets(found)
    print("\nEstimator targets, cells with >= 100 events:", json.dumps(checked, indent=1))
    if sequential:
        print("\nA year of monthly looks (Lan-DeMets alpha spending, 5% per group per year):")
        print(pooled_lines(sequential))
        print(json.dumps(sequential, indent=1))
    if args.write:
        existing = json.loads(args.write.read_text()) if args.write.exists() else {"rule": RULE, "rows": []}
        fresh = {(s.hr, s.baseline, s.ancestry, s.persons, s.group, args.looks) for s in found}
        keys = ("hr", "baseline", "ancestry", "persons", "group", "looks")
        rows = [r for r in existing["rows"] if tuple(r[k] for k in keys) not in fresh]
        rows += [{**s.as_json(), "looks": args.looks} for s in found]
        study = {**existing, "rule": RULE, "rows": rows, "targets": checked}
        if sequential:
            study["sequential"] = sequential
        args.write.write_text(json.dumps(study, indent=1) + "\n")


if __name__ == "__main__":
    main()
