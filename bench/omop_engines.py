"""One learning cycle on DuckDB (OMOP in the store) and on Spark local[2] (OMOP in a Parquet lake), by size.

For each size: the simulated hospital in a DuckDB file, exported as a Parquet lake, then one cycle
per engine, each in its own process (``--one``), alternating engines ``--repeat`` times. Printed per
run: wall time, CPU time (the Python process and, for Spark, its JVM: on a shared machine it moves
less than wall time), peak resident memory (same two), the rows that left the engine by kind, and
the sums of the cells; then the medians and the ratio of times between sizes.

Sizes above ``--base`` persons (1M) are that hospital replicated with distinct person ids
(``replicate``): simulating 10M persons at once needs ~10 GB in pandas. Replicas make each cell
count exactly k times the base's, which the bench asserts, engine by engine.

Rows out must be aggregates only: the bench fails if any query returns anything but the cells, the
report's counts (per study by group, arm and population, with the opted-out total; genotype coverage
by population), which negative controls the site ever recorded, one row count per CDM table, the
distinct (gene, diplotype) pairs or the drug product index (vocabulary), or if any of these grows
with the number of persons.
Run it niced: ``nice -n 19 .venv/bin/python bench/omop_engines.py --persons 1000000 10000000``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
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


def _cpu_seconds(pid: str) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _kind(sql: str) -> str:
    """Which of the study's aggregate queries ``sql`` (DuckDB dialect) is; 'unknown' fails the bench."""
    final = sql.rstrip().splitlines()[-1]
    if final == "SELECT * FROM cells":
        return "cells"
    if final.strip() == "FROM cohort WHERE opted_out":  # the report's counts by group, arm, population
        return "cohort_counts"
    if final.strip() == "FROM labelled GROUP BY population":  # the report's genotype coverage
        return "coverage_counts"
    if re.search(r"SELECT \d+ AS k WHERE EXISTS", sql):  # which negative controls the site ever recorded
        return "controls_recorded"
    if sql.startswith("SELECT DISTINCT gene, diplotype FROM"):
        return "diplotypes"
    if re.fullmatch(r"SELECT '\w+' AS name, count\(\*\) AS n FROM \w+( UNION ALL .*)?", sql):
        return "table_counts"
    if "ingredient.concept_code IN" in sql:
        return "product_index"
    return "unknown"


def _counting(engine: str, moved: dict[str, int], sums: dict[str, int]) -> None:
    """Count, by kind, the rows each query brings out of the engine (DuckDB: the cells it hands to pandas)."""
    import analytics.cycle
    from analytics.sources.base import Source

    def add(kind: str, frame) -> None:
        moved[kind] = moved.get(kind, 0) + len(frame)
        if kind == "cells":
            for column in ("n", "events", "person_days"):
                sums[column] = sums.get(column, 0) + int(frame[column].sum())

    if engine == "spark":
        query = Source.query

        def counted(self, sql: str):
            frame = query(self, sql)
            add(_kind(sql), frame)
            return frame

        Source.query = counted
    else:
        cells = analytics.cycle.cells

        def counted_cells(con, study):
            frame = cells(con, study)
            add("cells", frame)
            return frame

        analytics.cycle.cells = counted_cells


def one(engine: str, database: Path, lake: Path, work: Path) -> dict:
    """One cycle in this process; returns its measures."""
    from analytics.cycle import run_cycle
    from analytics.settings import Paths
    from engine.rulebook.library import default_rules_dir, load_library

    moved: dict[str, int] = {}
    sums: dict[str, int] = {}
    _counting(engine, moved, sums)

    library = load_library(default_rules_dir())
    folder = work / f"run-{engine}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    store = folder / "loop.duckdb"
    shutil.copy(database, store)
    paths = Paths(store, folder / "events", folder / "strengths.json")
    if engine == "spark":
        paths = replace(paths, omop=f"spark://local?lake={lake}")
    started, cpu = time.perf_counter(), _own_cpu()
    result = run_cycle(library, paths)
    seconds, cpu = time.perf_counter() - started, _own_cpu() - cpu
    children = _children()  # Spark's JVM, still alive: its session lives as long as this process
    jvm_cpu = sum(_cpu_seconds(pid) for pid in children)
    jvm = max((_peak_kib(pid) for pid in children), default=0)
    if engine == "spark" and result.rows_from_source != sum(moved.values()):
        raise SystemExit(f"spark: the source counted {result.rows_from_source} rows out, the bench {moved}")
    return {"engine": engine, "seconds": round(seconds, 1), "cpu_seconds": round(cpu + jvm_cpu, 1),
            "python_peak_mib": _peak_kib("self") // 1024, "jvm_peak_mib": jvm // 1024,
            "rows_out": sum(moved.values()), "rows_out_by_kind": moved, "cell_sums": sums}  # fmt: skip


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# Tables that hold person ids (and ids numbered like them); cds_event is the loop's own log, kept as is.
PERSON_TABLES = {"person": ["person_id"], "observation_period": ["person_id", "observation_period_id"],
                 "death": ["person_id"], "measurement": ["person_id"], "drug_exposure": ["person_id"],
                 "condition_occurrence": ["person_id"], "pgx_result": ["person_id"],
                 "research_opt_out": ["person_id"]}  # fmt: skip


def replicate(base: Path, persons: int, copies: int, database: Path) -> None:
    """``database``: ``copies`` of the ``persons``-person hospital ``base``, copy k's ids shifted by k * persons."""
    import duckdb

    partial = database.with_suffix(".partial")
    shutil.copy(base, partial)
    con = duckdb.connect(str(partial))
    try:
        con.execute("SET memory_limit = '4GB'")
        for table, ids in PERSON_TABLES.items():
            for k in range(1, copies):
                shifted = ", ".join(f"{column} + {k * persons} AS {column}" for column in ids)
                con.execute(f'INSERT INTO "{table}" SELECT * REPLACE ({shifted}) FROM "{table}" '
                            f"WHERE person_id <= {persons}")  # fmt: skip
        con.execute(f"UPDATE sim_truth SET persons = {persons * copies}")
    finally:
        con.close()
    partial.rename(database)


def prepare(persons: int, base: int, work: Path) -> tuple[Path, Path]:
    """The simulated hospital (reused when present; above ``base`` persons, replicas of it) and its lake."""
    database = work / f"hospital-{persons}.duckdb"
    lake = work / f"lake-{persons}"
    if database.exists() and lake.is_dir():
        return database, lake
    started = time.perf_counter()
    if persons <= base:
        subprocess.run([sys.executable, "-m", "pgx_loop.cli", "simulate", "--persons", str(persons), "--seed", "1",
                        "--db", str(database)], check=True, cwd=REPOSITORY, stdout=subprocess.DEVNULL)  # fmt: skip
        how = "simulated"
    else:
        if persons % base:
            raise SystemExit(f"--persons {persons}: above --base {base}, a multiple of it")
        replicate(prepare(base, base, work)[0], base, persons // base, database)
        how = f"replicated the {base:,}-person hospital {persons // base} times:"
    import duckdb

    from analytics.sources.export import export_lake

    shutil.rmtree(lake, ignore_errors=True)
    con = duckdb.connect(str(database), read_only=True)
    try:
        export_lake(con, lake)
    finally:
        con.close()
    print(f"{how} {persons:,} persons, lake exported, in {time.perf_counter() - started:.0f} s", flush=True)
    return database, lake


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--base", type=int, default=1_000_000, help="larger sizes replicate this simulated one")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--engines", nargs="+", choices=["duckdb", "spark"], default=["duckdb", "spark"])
    parser.add_argument("--work", type=Path, default=REPOSITORY / "var" / "bench-omop")
    parser.add_argument("--one", nargs=4, metavar=("ENGINE", "DB", "LAKE", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        engine, database, lake, work = args.one
        print(json.dumps(one(engine, Path(database), Path(lake), Path(work))))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    medians: dict[tuple[str, int], tuple[float, float]] = {}
    rows: dict[tuple[str, int], dict] = {}
    for persons in args.persons:
        database, lake = prepare(persons, args.base, args.work)
        runs: dict[str, list[dict]] = {engine: [] for engine in args.engines}
        for _ in range(args.repeat):
            for engine in args.engines:
                load = _load()
                done = subprocess.run([sys.executable, __file__, "--one", engine, str(database), str(lake),
                                       str(args.work)], capture_output=True, text=True)  # fmt: skip
                if done.returncode:  # the engine's own words: Spark's error is in the child's stderr
                    raise SystemExit(f"{engine} at {persons:,} persons failed:\n" + done.stderr[-4000:])
                row = {"persons": persons, **json.loads(done.stdout.strip().splitlines()[-1]),
                       "load_before": load, "load_after": _load()}  # fmt: skip
                runs[engine].append(row)
                print(json.dumps(row), flush=True)
                _check(row, rows.setdefault((engine, persons), row), rows, args.base)
        for engine, done_runs in runs.items():
            wall = [run["seconds"] for run in done_runs]
            cpu = [run["cpu_seconds"] for run in done_runs]
            medians[(engine, persons)] = (statistics.median(wall), statistics.median(cpu))
            print(f"{persons:>11,} persons  {engine:6}  wall median {statistics.median(wall):.1f} s "
                  f"(min {min(wall)}, max {max(wall)}), CPU median {statistics.median(cpu):.1f} s "
                  f"(min {min(cpu)}, max {max(cpu)}), runs {len(wall)}", flush=True)  # fmt: skip
    for small, large in itertools.pairwise(sorted(args.persons)):
        for engine in args.engines:
            (wall_small, cpu_small), (wall_large, cpu_large) = medians[(engine, small)], medians[(engine, large)]
            print(f"{engine}: {small:,} -> {large:,} persons ({large / small:.0f}x): wall time x"
                  f"{wall_large / wall_small:.2f}, CPU time x{cpu_large / cpu_small:.2f}")  # fmt: skip


def _check(row: dict, first: dict, rows: dict, base: int) -> None:
    """Rows out are aggregates only, the same every run; the cells agree across engines and scale with replicas."""
    kinds = row["rows_out_by_kind"]
    if set(kinds) - {"cells", "cohort_counts", "coverage_counts", "controls_recorded", "diplotypes", "table_counts",
                     "product_index"}:
        raise SystemExit(f"rows out of the engine that are not aggregates: {kinds}")
    if (kinds, row["cell_sums"]) != (first["rows_out_by_kind"], first["cell_sums"]):
        raise SystemExit(f"rows out differ between runs: {kinds} {row['cell_sums']} vs {first}")
    for (engine, persons), other in rows.items():
        if persons == row["persons"] and other["rows_out_by_kind"]["cells"] != kinds["cells"]:
            raise SystemExit(f"{row['engine']} and {engine} return different numbers of cells")
        if persons == row["persons"] and other["cell_sums"] != row["cell_sums"]:
            raise SystemExit(f"{row['engine']} and {engine} cells differ: {row['cell_sums']} {other['cell_sums']}")
        if persons == base and row["persons"] % base == 0 and engine == row["engine"]:
            k = row["persons"] // base
            if kinds != other["rows_out_by_kind"]:  # replicas: the same cells, the same aggregates
                raise SystemExit(f"rows out grew with persons: {other['rows_out_by_kind']} -> {kinds}")
            if row["cell_sums"] != {key: k * value for key, value in other["cell_sums"].items()}:
                raise SystemExit(f"{k} replicas do not give {k}x the cells: {other['cell_sums']} -> {row['cell_sums']}")


if __name__ == "__main__":
    main()
