"""The research opt-out list: persons whose records the learning loop must not study.

A site exports the whole list as CSV with the header ``person_id`` (optionally ``since``); each
load replaces the previous list, so someone who withdraws their opt-out is studied again.
Opting out never affects alerts: the service does not read this list.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pandas as pd


class OptOutFileError(ValueError):
    """An opt-out file that cannot be read; the message says where."""


def load_opt_outs(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Replace ``research_opt_out`` with the persons in ``path`` (the caller commits)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "person_id" not in [name.strip().lower() for name in reader.fieldnames or []]:
            raise OptOutFileError(f"{path}:1: the header must name person_id")
        rows = {}
        for number, raw in enumerate(reader, start=2):
            row = {key.strip().lower(): (value or "").strip() for key, value in raw.items() if key}
            if not row["person_id"].isdigit():
                raise OptOutFileError(f"{path}:{number}: person_id must be a number")
            rows[int(row["person_id"])] = row.get("since") or None
    con.register("opt_outs", pd.DataFrame(list(rows.items()), columns=["person_id", "since"], dtype=object))
    con.execute("DELETE FROM research_opt_out")
    con.execute("INSERT INTO research_opt_out SELECT CAST(person_id AS BIGINT), TRY_CAST(since AS DATE) FROM opt_outs")
    return len(rows)
