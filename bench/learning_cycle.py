"""The learning loop at scale: simulate N persons, run one full cycle, and compare with individual-level fitting.

Each step runs in its own child process, so the peak memory printed is that step's own
(resident set size, which includes DuckDB's native memory). The baseline, run in this same
benchmark on the same database, fits the same piecewise-exponential Poisson model the way one
would without the sufficient-statistics trick: one pandas row per person and time band, then
statsmodels. The ratio is baseline time / cells time for the estimation itself.

    python bench/learning_cycle.py [--persons 1000000] [--seed 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def simulate_step(database: Path, persons: int, seed: int) -> dict:
    from analytics.data.store import connect
    from analytics.simulation.simulate import simulate
    from engine.rulebook.library import load_library

    library = load_library(ROOT / "rules")
    started = time.perf_counter()
    con = connect(database)
    counts = simulate(con, library, persons=persons, seed=seed)
    con.close()
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb(), "rows": counts}


def cycle_step(directory: Path) -> dict:
    from analytics.cycle import run_cycle
    from analytics.settings import Paths
    from engine.rulebook.library import load_library

    library = load_library(ROOT / "rules")
    started = time.perf_counter()
    result = run_cycle(library, Paths(directory / "bench.duckdb", directory / "events", directory / "strengths.json"))
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb(), "estimates": result.estimates}


def estimation_step(database: Path, individual: bool) -> dict:
    """The estimation alone, per rule: study SQL, then the fit on cells or on person-band rows."""
    import duckdb
    import numpy as np
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    from analytics.data.genotypes import refresh_phenotypes
    from analytics.study.cohort import Study, build, cells, individual_rows, person_bands
    from analytics.study.estimate import _formula, estimate
    from engine.rulebook.library import load_library

    library = load_library(ROOT / "rules")
    con = duckdb.connect(str(database), read_only=False)
    refresh_phenotypes(con, library)
    seconds, rows, hrs = 0.0, 0, {}
    for rule in library.rules:
        if rule.learning is None:
            continue
        study = Study(rule, rule.learning)
        build(con, study)
        started = time.perf_counter()
        if individual:
            people = individual_rows(con, study)
            people = people[people.target == 1]
            data = person_bands(people, rule.learning.time_at_risk_days)
            fit = smf.glm(_formula(study, False), data, family=sm.families.Poisson(), exposure=data.person_days).fit()
            rows += len(data)
            for group in rule.learning.groups:
                term = f"C(grp, Treatment('reference'))[T.{group.label}]"
                hrs[(rule.id, group.label)] = float(np.exp(fit.params[term]))
        else:
            table = cells(con, study)
            rows += int((table.target == 1).sum())
            for item in estimate(study, table):
                if item.contrast == "within-drug":
                    hrs[(rule.id, item.group)] = item.hr
        seconds += time.perf_counter() - started
    con.close()
    return {"seconds": seconds, "peak_mb": _peak_mb(), "rows": rows, "hrs": hrs}


def in_child(function, *args):
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(function, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="Leave the database in this folder")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="pgx-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "bench.duckdb"
    database.unlink(missing_ok=True)
    try:
        simulated = in_child(simulate_step, database, args.persons, args.seed)
        size_mb = database.stat().st_size / 2**20
        print(f"simulate {args.persons:,} persons: {simulated['seconds']:6.1f} s  peak {simulated['peak_mb']:6.0f} MB"
              f"  ({sum(simulated['rows'].values()):,} rows, database {size_mb:.0f} MB)")  # fmt: skip
        cycle = in_child(cycle_step, directory)
        print(f"one full cycle (all rules):  {cycle['seconds']:6.1f} s  peak {cycle['peak_mb']:6.0f} MB")
        for entry in cycle["estimates"]:
            hr = (
                f"HR {entry['hr']:.2f} ({entry['ci_low']:.2f}-{entry['ci_high']:.2f})" if entry["hr"] else "no estimate"
            )
            print(f"    {entry['rule']:22} {entry['phenotype']:26} n={entry['n']:>6} events={entry['events']:>5} "
                  f"{hr:24} {entry['action']}")  # fmt: skip
        copy = directory / "estimation.duckdb"
        shutil.copy(database, copy)
        by_cells = in_child(estimation_step, copy, False)
        by_rows = in_child(estimation_step, copy, True)
        print(f"estimation on cells:         {by_cells['seconds']:6.2f} s  peak {by_cells['peak_mb']:6.0f} MB"
              f"  ({by_cells['rows']:,} cells)")  # fmt: skip
        print(f"baseline, person-band rows:  {by_rows['seconds']:6.2f} s  peak {by_rows['peak_mb']:6.0f} MB"
              f"  ({by_rows['rows']:,} rows, pandas + statsmodels)")  # fmt: skip
        print(f"ratio baseline / cells: {by_rows['seconds'] / by_cells['seconds']:.1f}x time, "
              f"{by_rows['rows'] / by_cells['rows']:.0f}x rows")  # fmt: skip
        worst = max(abs(by_rows["hrs"][k] / by_cells["hrs"][k] - 1) for k in by_cells["hrs"])
        print(f"largest HR difference between the two: {worst:.1e} (relative)")
        print("targets: cycle under 30 s and 2048 MB -> "
              f"{'met' if cycle['seconds'] < 30 and cycle['peak_mb'] < 2048 else 'NOT met'}")  # fmt: skip
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
