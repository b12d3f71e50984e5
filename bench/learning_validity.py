"""The learning loop's validity study: bias, SE, coverage, false escalation and power, on the simulator.

For every scenario of the grid (true HR of the risk groups x baseline 1-year risk x ancestry mix x
size) and seed, the simulator's data are looked at as a site would over the study's last year:
monthly extracts, one cycle each, the real estimator, posterior and policy (analytics/validity.py).
Printed per scenario and genotype group: mean events, mean bias of the log HR, empirical SE
(across seeds) against the model's mean SE, 95% CI coverage, the share of seeds in which some
cycle of the year escalated (a false escalation when the true HR is <= 1, power otherwise), the
same under the earlier fixed per-look rule (local 99% CI above 1), and the share with a tier move
against the truth. Targets: |bias| < 0.05 where there are >= 100 events, coverage 93-97%, false
escalation <= 5% per group per year.

    python bench/learning_validity.py                       # the full grid, 20 seeds (hours on 1 core)
    python bench/learning_validity.py --hr 1.0 --persons 100000 --seeds 100 --workers 2
    python bench/learning_validity.py ... --looks 1         # estimates only: one look, no year of cycles
    python bench/learning_validity.py ... --write analytics/report/validity.json   # for the report's methods

Cells come straight from the simulator's draws (analytics/simulated_cells.py), which
tests/test_validity_study.py checks equal the SQL cohort's cells seed for seed.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics.validity import ANCESTRY_MIXES, LOOKS, Scenario, Summary, replicate, summarise  # noqa: E402
from engine.library import Library, load_library  # noqa: E402

RULE = "cyp2c19-clopidogrel"


@functools.cache
def _library() -> Library:
    return load_library(ROOT / "rules")  # once per worker process


def _run(job: tuple[Scenario, int, int]) -> tuple[Scenario, list]:
    scenario, seed, looks = job
    library = _library()
    rule = next(r for r in library.rules if r.id == RULE)
    return scenario, replicate(library, rule, scenario, seed, looks)


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table(summaries: list[Summary], looks: int) -> str:
    """The study's table, one line per scenario and group."""
    head = (f"{'HR':>4} {'base':>5} {'ancestry':>10} {'persons':>7} {'group':<25} {'seeds':>5} {'events':>6} "
            f"{'bias':>6} {'empSE':>6} {'modSE':>6} {'cover':>5} {'i.bias':>6} {'i.cov':>5} "
            f"{'esc/yr' if looks > 1 else 'esc':>6} {'fixed':>5} {'wrong':>5}")  # fmt: skip
    lines = [head]
    for s in summaries:
        lines.append(
            f"{s.hr:>4} {s.baseline:>5} {s.ancestry:>10} {s.persons:>7} {s.group:<25} {s.seeds:>5} "
            f"{s.mean_events:>6.0f} {_fmt(s.bias, '+.3f'):>6} {_fmt(s.empirical_se, '.3f'):>6} "
            f"{_fmt(s.model_se, '.3f'):>6} {_fmt(s.coverage, '.0%'):>5} {_fmt(s.interaction_bias, '+.3f'):>6} "
            f"{_fmt(s.interaction_coverage, '.0%'):>5} {s.escalated:>6.0%} {s.escalated_fixed:>5.0%} "
            f"{s.wrong_moves:>5.0%}"
        )
    return "\n".join(lines)


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
    parser.add_argument("--write", type=Path, help="merge the summaries into this JSON file (the report reads it)")
    args = parser.parse_args()
    scenarios = [Scenario(*combo) for combo in itertools.product(args.hr, args.baseline, args.ancestry, args.persons)]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(scenario, seed, args.looks) for scenario in scenarios for seed in seeds]
    started = time.perf_counter()
    results: dict[Scenario, list] = {scenario: [] for scenario in scenarios}
    with ProcessPoolExecutor(args.workers) as pool:
        for scenario, outcomes in pool.map(_run, jobs, chunksize=1):
            results[scenario].append(outcomes)
    summaries = []
    for scenario, runs in results.items():
        for position, group in enumerate(o.group for o in runs[0]):
            summaries.append(summarise(scenario, group, [run[position] for run in runs]))
    print(f"{RULE}: {len(scenarios)} scenarios x {args.seeds} seeds, {args.looks} monthly look(s) each "
          f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
    print(table(summaries, args.looks))
    if args.write:
        existing = json.loads(args.write.read_text()) if args.write.exists() else {"rule": RULE, "rows": []}
        fresh = {(s.hr, s.baseline, s.ancestry, s.persons, s.group, args.looks) for s in summaries}
        keys = ("hr", "baseline", "ancestry", "persons", "group", "looks")
        rows = [r for r in existing["rows"] if tuple(r[k] for k in keys) not in fresh]
        rows += [{**s.as_json(), "looks": args.looks} for s in summaries]
        args.write.write_text(json.dumps({"rule": RULE, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
