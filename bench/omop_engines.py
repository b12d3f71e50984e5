"""One learning cycle on DuckDB (OMOP in the store) and on Spark local[2] (OMOP in a Parquet lake), by size.

For each size: simulate the hospital into a DuckDB file, export it as a Parquet lake, then run one
cycle per engine, each in its own process (``--one``), alternating engines ``--repeat`` times.
Printed per run: wall time, peak resident memory (the Python process and, for Spark, its JVM),
rows that left the engine (Spark: counted by the source; DuckDB: the cells, which never leave the
process), and the ratio of times between sizes. Run it niced: ``nice -n 19 .venv/bin/python
bench/omop_engines.py --persons 1000000 3000000``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))


def _peak_kib(pid: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _children() -> list[str]:
    pids = []
    for task in Path("/proc/self/task").iterdir():
        pids += (task / "children").read_text().split()
    return pids


def one(engine: str, database: Path, lake: Path, work: Path) -> dict:
    """One cycle in this process; returns its measures."""
    from analytics.cycle import run_cycle
    from analytics.settings import Paths
    from engine.rulebook.library import default_rules_dir, load_library

    library = load_library(default_rules_dir())
    folder = work / f"run-{engine}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    store = folder / "loop.duckdb"
    shutil.copy(database, store)
    paths = Paths(store, folder / "events", folder / "strengths.json")
    if engine == "spark":
        paths = replace(paths, omop=f"spark://local?lake={lake}")
    started = time.perf_counter()
    result = run_cycle(library, paths)
    seconds = time.perf_counter() - started
    jvm = max((_peak_kib(pid) for pid in _children()), default=0)
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    cells = len({(rule, cell) for rule, blob in con.execute("SELECT rule, cells FROM estimate").fetchall()
                 for cell in (json.dumps(c, sort_keys=True) for c in json.loads(blob))})  # fmt: skip
    con.close()
    return {"engine": engine, "seconds": round(seconds, 1), "python_peak_mib": _peak_kib("self") // 1024,
            "jvm_peak_mib": jvm // 1024, "cells": cells, "rows_out": result.rows_from_source}  # fmt: skip


def prepare(persons: int, work: Path) -> tuple[Path, Path]:
    """The simulated hospital (reused when present) and its Parquet lake."""
    database = work / f"hospital-{persons}.duckdb"
    lake = work / f"lake-{persons}"
    if not database.exists():
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pgx_loop.cli", "simulate", "--persons", str(persons), "--seed", "1",
                        "--db", str(database), "--export-lake", str(lake)], check=True, cwd=REPOSITORY,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        print(f"simulated {persons:,} persons and exported the lake in {time.perf_counter() - started:.0f} s")
    return database, lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", type=Path, default=REPOSITORY / "var" / "bench-omop")
    parser.add_argument("--one", nargs=4, metavar=("ENGINE", "DB", "LAKE", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        engine, database, lake, work = args.one
        print(json.dumps(one(engine, Path(database), Path(lake), Path(work))))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    medians: dict[tuple[str, int], float] = {}
    for persons in args.persons:
        database, lake = prepare(persons, args.work)
        times: dict[str, list[float]] = {"duckdb": [], "spark": []}
        for _ in range(args.repeat):
            for engine in ("duckdb", "spark"):
                done = subprocess.run([sys.executable, __file__, "--one", engine, str(database), str(lake),
                                       str(args.work)], capture_output=True, text=True, check=True)  # fmt: skip
                row = json.loads(done.stdout.strip().splitlines()[-1])
                times[engine].append(row["seconds"])
                print(json.dumps({"persons": persons, **row}))
        for engine, values in times.items():
            medians[(engine, persons)] = statistics.median(values)
            spread = f" (min {min(values)}, max {max(values)})" if len(values) > 1 else ""
            print(f"{persons:>11,} persons  {engine:6}  median {medians[(engine, persons)]:.1f} s{spread}")
    sizes = sorted(args.persons)
    for small, large in itertools.pairwise(sizes):
        for engine in ("duckdb", "spark"):
            ratio = medians[(engine, large)] / medians[(engine, small)]
            print(f"{engine}: {small:,} -> {large:,} persons ({large / small:.1f}x): time x{ratio:.2f}")


if __name__ == "__main__":
    main()
