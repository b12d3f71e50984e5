"""bench/omop_engines.py, DuckDB half, end to end on a small hospital: replicas scale the cells exactly.

The Spark half runs the same code with the source's query counted; it takes minutes, so only the
bench itself runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

BENCH = Path(__file__).resolve().parent.parent / "bench" / "omop_engines.py"


def test_replicated_hospital_has_distinct_persons_and_k_times_the_cells(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--persons", "3000", "6000", "--base", "3000", "--engines",
                           "duckdb", "--work", str(tmp_path)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    runs = {row["persons"]: row for row in map(json.loads, (line for line in done.stdout.splitlines()
                                                            if line.startswith("{")))}  # fmt: skip
    small, large = runs[3000], runs[6000]
    assert small["rows_out_by_kind"] == large["rows_out_by_kind"] == {"cells": small["rows_out"]} != {"cells": 0}
    assert large["cell_sums"] == {key: 2 * value for key, value in small["cell_sums"].items()}
    assert small["cell_sums"]["events"] > 0
    con = duckdb.connect(str(tmp_path / "hospital-6000.duckdb"), read_only=True)
    try:
        persons = con.execute("SELECT count(*), count(DISTINCT person_id), max(person_id) FROM person").fetchone()
        periods = con.execute("SELECT count(DISTINCT observation_period_id) FROM observation_period").fetchone()
    finally:
        con.close()
    assert persons == (6000, 6000, 6000)
    assert periods == (6000,)
    assert (tmp_path / "lake-6000" / "person.parquet").is_file()
