"""Operating characteristics of the learning loop on the simulator, over many seeds.

For each seed: simulate N persons with the literature's true effects and run one full cycle,
counting how often each group's 95% interval covers the true HR (within-drug and interaction
contrasts); then the same with a null truth (every HR 1.0), counting escalations, which would
be false alarms. Escalation needs P(HR > harm) > 0.90 and the local estimate's own 99% interval
above 1 (see analytics/policy.py).

    python bench/learning_validity.py [--persons 300000] [--seeds 20]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from analytics.cycle import run_cycle  # noqa: E402
from analytics.settings import Paths  # noqa: E402
from analytics.simulate import Truth, simulate  # noqa: E402
from analytics.store import connect  # noqa: E402
from engine.library import load_library  # noqa: E402


def null_truth() -> Truth:
    truth = Truth()
    for spec in truth.rules.values():
        spec["hazard_ratio"] = {phenotype: 1.0 for phenotype in spec["hazard_ratio"]}
    return truth


def one_run(library, truth: Truth, persons: int, seed: int, directory: Path) -> list[dict]:
    database = directory / f"seed-{seed}.duckdb"
    con = connect(database)
    simulate(con, library, persons=persons, seed=seed, truth=truth)
    con.close()
    result = run_cycle(library, Paths(database, directory / "events", directory / f"strengths-{seed}.json"))
    con = duckdb.connect(str(database), read_only=True)
    interaction = {
        (rule, group): (low, high)
        for rule, group, low, high in con.execute(
            "SELECT rule, phenotype, ci_low, ci_high FROM estimate WHERE contrast = 'interaction' AND run_id = ?",
            [result.run_id],
        ).fetchall()
    }
    con.close()
    database.unlink()
    for entry in result.estimates:
        entry["interaction_ci"] = interaction[(entry["rule"], entry["phenotype"])]
    return result.estimates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=300_000)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    library = load_library(ROOT / "rules")
    directory = Path(tempfile.mkdtemp(prefix="pgx-validity-"))
    started = time.perf_counter()
    try:
        literature, null = Truth(), null_truth()
        covered, fitted, interaction_covered, interaction_fitted = Counter(), Counter(), Counter(), Counter()
        null_actions: Counter = Counter()
        escalated: Counter = Counter()
        for seed in range(1, args.seeds + 1):
            for entry in one_run(library, literature, args.persons, seed, directory):
                key = (entry["rule"], entry["phenotype"])
                escalated[key] += "escalate" in entry["action"]
                true_hr = literature.rules[entry["rule"]]["hazard_ratio"][entry["phenotype"]]
                if entry["hr"] is not None:
                    fitted[key] += 1
                    covered[key] += entry["ci_low"] <= true_hr <= entry["ci_high"]
                low, high = entry["interaction_ci"]
                if low is not None:
                    interaction_fitted[key] += 1
                    interaction_covered[key] += low <= true_hr <= high
            for entry in one_run(library, null, args.persons, seed, directory):
                null_actions[entry["action"].split(" (")[0]] += 1
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{args.seeds} seeds x {args.persons:,} persons, literature truth then null truth "
          f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
    print("95% interval covers the true HR (target: at least 17 of 20, i.e. 85%):")
    for key in sorted(fitted):
        print(f"    {key[0]:22} {key[1]:26} within-drug {covered[key]:>2}/{fitted[key]:<2}"
              f"   interaction {interaction_covered[key]:>2}/{interaction_fitted[key]:<2}"
              f"   escalated or proposed {escalated[key]:>2}/{args.seeds}")  # fmt: skip
    escalations = sum(count for action, count in null_actions.items() if "escalate" in action)
    looks = sum(null_actions.values())
    print(f"null truth: {escalations} escalation(s) in {looks} group-cycles; actions {dict(null_actions)}")


if __name__ == "__main__":
    main()
