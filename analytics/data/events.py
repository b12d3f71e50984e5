"""Ingesting the service's event log into ``cds_event``, exactly once.

Each segment file is read from where the last ingestion stopped (``event_ingest``), and only
complete lines are taken, so a line being written or torn by a crash is read next time or never.
``event_id`` is the primary key: an event that reaches two segments (a retried feedback, a
restart) is stored once.

Several replicas' directories can be ingested together (``PGX_LOOP_EVENT_LOG_DIRS``). A segment
is known by its directory and name (``segment_key``), so two replicas' segments of the same name
never share an offset. Reading a segment again from the start (a directory mounted elsewhere)
costs time, never a duplicate: the ``event_id`` check above holds across directories too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pandas as pd

from analytics.data.store import count

log = logging.getLogger(__name__)

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


def segment_key(directory: Path, segment: Path) -> str:
    """How ``event_ingest`` knows a segment: its directory's absolute path and its name."""
    return str(directory.resolve() / segment.name)


def segments(directories: Path | Sequence[Path]) -> list[tuple[str, Path]]:
    """(key, path) of every segment in ``directories`` (one or several replicas' event-log directories)."""
    found = []
    listed = [directories] if isinstance(directories, Path) else list(directories)
    for directory in listed:
        if not directory.is_dir():
            # One replica's directory missing among several is worth a warning; the only directory
            # missing is a service that has not logged yet (the first cycle of a new site).
            level = logging.WARNING if len(listed) > 1 else logging.INFO
            log.log(level, "event-log directory %s not found: its events are not ingested this time", directory)
            continue
        found += [(segment_key(directory, path), path) for path in sorted(directory.glob("events-*.jsonl"))]
    return found


def read_offsets(con: duckdb.DuckDBPyConnection, found: list[tuple[str, Path]]) -> dict[str, int]:
    """Where the last ingestion stopped in each segment, by key.

    Databases written before segments were keyed by directory hold bare names: such an offset is
    carried over only when exactly one segment found has that name (else the segment is read again
    from the start, which the ``event_id`` check makes harmless; skipping bytes would not be).
    """
    stored = dict(con.execute("SELECT segment, offset_bytes FROM event_ingest").fetchall())
    names: dict[str, int] = {}
    for _, path in found:
        names[path.name] = names.get(path.name, 0) + 1
    return {key: stored.get(key, stored.get(path.name, 0) if names[path.name] == 1 else 0) for key, path in found}


def ingest(con: duckdb.DuckDBPyConnection, directories: Path | Sequence[Path]) -> int:
    """Read new complete events from every segment in ``directories``; returns how many were new.

    Runs inside the caller's transaction: if the cycle fails, neither events nor offsets move.
    """
    found = segments(directories)
    offsets = read_offsets(con, found)
    rows: list[dict] = []
    moved: dict[str, tuple[int, int]] = {}
    for key, path in found:
        start = offsets[key]
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
            row = _row(event, key) if isinstance(event, dict) else None
            if row is not None:
                rows.append(row)
                taken += 1
        moved[key] = (start + len(complete), taken)
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
