"""The research opt-out list: persons whose records the learning loop must not study.

A site exports the whole list as CSV with the header ``person_id`` (optionally ``since``); each
load replaces the previous list, so someone who withdraws their opt-out is studied again.
Opting out never affects alerts: the service does not read this list.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from analytics.data.csv_input import CsvFileError, person_id, read_rows


class OptOutFileError(CsvFileError):
    """An opt-out file that cannot be read; the message says where."""


def load_opt_outs(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Replace ``research_opt_out`` with the persons in ``path`` (the caller commits).

    The whole file is read and checked before the database is touched.
    """
    try:
        rows = {person_id(path, line, row.get("person_id", "")): row.get("since") or None
                for line, row in read_rows(path, ("person_id",))}  # fmt: skip
    except CsvFileError as exc:
        raise OptOutFileError(str(exc)) from None
    con.register("opt_outs", pd.DataFrame(list(rows.items()), columns=["person_id", "since"], dtype=object))
    con.execute("DELETE FROM research_opt_out")
    con.execute("INSERT INTO research_opt_out SELECT CAST(person_id AS BIGINT), TRY_CAST(since AS DATE) FROM opt_outs")
    return len(rows)
