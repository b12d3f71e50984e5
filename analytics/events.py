"""Ingesting the service's event log into ``cds_event``, exactly once.

Each segment file is read from where the last ingestion stopped (``event_ingest``), and only
complete lines are taken, so a line being written or torn by a crash is read next time or never.
``event_id`` is the primary key: an event that reaches two segments (a retried feedback, a
restart) is stored once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pandas as pd

from analytics.store import count

COLUMNS = (
    "event_id", "type", "time", "service", "patient", "card", "rule", "rule_version", "gene", "phenotype",
    "drug", "tier", "tier_source", "shadow", "outcome", "override_reason", "accepted_suggestions",
)  # fmt: skip


def _row(event: dict, segment: str) -> dict | None:
    if not isinstance(event.get("event_id"), str) or event.get("type") not in ("card", "feedback"):
        return None
    row = {column: event.get(column) for column in COLUMNS}
    reason = event.get("override_reason")
    row["override_reason"] = reason.get("code") if isinstance(reason, dict) else None
    accepted = event.get("accepted_suggestions")
    row["accepted_suggestions"] = len(accepted) if isinstance(accepted, list) else None
    row["source_file"] = segment
    return row


def ingest(con: duckdb.DuckDBPyConnection, directory: Path) -> int:
    """Read new complete events from every segment in ``directory``; returns how many were new.

    Runs inside the caller's transaction: if the cycle fails, neither events nor offsets move.
    """
    if not directory.is_dir():
        return 0
    offsets = dict(con.execute("SELECT segment, offset_bytes FROM event_ingest").fetchall())
    rows: list[dict] = []
    moved: dict[str, tuple[int, int]] = {}
    for path in sorted(directory.glob("events-*.jsonl")):
        start = offsets.get(path.name, 0)
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        if not complete:
            continue
        taken = 0
        for line in complete.splitlines():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line torn by a crash and ended by the next write: never acknowledged
            row = _row(event, path.name) if isinstance(event, dict) else None
            if row is not None:
                rows.append(row)
                taken += 1
        moved[path.name] = (start + len(complete), taken)
    before = count(con, "cds_event")
    if rows:
        con.register("frame", pd.DataFrame(rows, columns=[*COLUMNS, "source_file"]))
        columns = [*COLUMNS, "source_file"]
        selected = ", ".join("CAST(time AS TIMESTAMPTZ)" if c == "time" else c for c in columns)
        con.execute(
            f"""INSERT INTO cds_event ({", ".join(columns)}, ingested_at)
                SELECT {selected}, now() FROM frame
                WHERE event_id NOT IN (SELECT event_id FROM cds_event)
                QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY time) = 1"""
        )
    now = datetime.now(UTC)
    for segment, (offset, taken) in moved.items():
        con.execute(
            """INSERT INTO event_ingest VALUES (?, ?, ?, ?)
               ON CONFLICT (segment) DO UPDATE SET offset_bytes = excluded.offset_bytes,
                   events = event_ingest.events + excluded.events, updated_at = excluded.updated_at""",
            [segment, offset, taken, now],
        )
    return count(con, "cds_event") - before
