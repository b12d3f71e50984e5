"""Report generation at scale: simulate N persons (with the service's cards and feedback), run one cycle,
then write the outcome report; the report's time is compared with the cycle's, measured in the same run.

Each step runs in its own child process (bench/learning_cycle.py's steps), so the numbers are the
step's own. Target: the report for 1,000,000 persons in under 10 s.

    python bench/report_speed.py [--persons 1000000] [--seed 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from learning_cycle import _peak_mb, cycle_step, in_child  # noqa: E402

KEY = b"bench-report-key-0123456789abcdef"


def simulate_with_events_step(database: Path, persons: int, seed: int) -> dict:
    """bench/learning_cycle.py's simulation, plus the cards and feedback the service would have logged."""
    from analytics.data.store import connect
    from analytics.simulation.simulate import simulate
    from engine.rulebook.library import load_library
    from engine.runtime.identifiers import Identifiers

    library = load_library(ROOT / "rules")
    started = time.perf_counter()
    con = connect(database)
    counts = simulate(con, library, persons=persons, seed=seed, identifiers=Identifiers(KEY))
    con.close()
    return {"seconds": time.perf_counter() - started, "rows": counts}


def report_step(directory: Path) -> dict:
    from analytics.report.render import write_report
    from engine.rulebook.library import load_library
    from engine.runtime.identifiers import Identifiers

    library = load_library(ROOT / "rules")
    started = time.perf_counter()
    folder = write_report(directory / "bench.duckdb", library, directory / "reports", min_cell=10,
                          identifiers=Identifiers(KEY), events_dir=directory / "events")  # fmt: skip
    seconds = time.perf_counter() - started
    size = sum(path.stat().st_size for path in folder.iterdir())
    return {"seconds": seconds, "peak_mb": _peak_mb(), "files": len(list(folder.iterdir())), "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="Leave the database and the report in this folder")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="pgx-report-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench.duckdb").unlink(missing_ok=True)
    try:
        simulated = in_child(simulate_with_events_step, directory / "bench.duckdb", args.persons, args.seed)
        print(f"simulate {args.persons:,} persons: {simulated['seconds']:6.1f} s "
              f"({simulated['rows']['cds_event']:,} card and feedback events)")  # fmt: skip
        cycle = in_child(cycle_step, directory)
        print(f"one full cycle (baseline):   {cycle['seconds']:6.2f} s  peak {cycle['peak_mb']:6.0f} MB")
        report = in_child(report_step, directory)
        print(f"report (HTML + CSVs):        {report['seconds']:6.2f} s  peak {report['peak_mb']:6.0f} MB"
              f"  ({report['files']} files, {report['bytes'] / 1024:.0f} KB)")  # fmt: skip
        print(f"ratio report / cycle: {report['seconds'] / cycle['seconds']:.2f}x")
        print(f"target: report under 10 s -> {'met' if report['seconds'] < 10 else 'NOT met'}")
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
