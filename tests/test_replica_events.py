"""Ingesting several replicas' event-log directories: segments of the same name never share an offset."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from analytics.data.events import ingest
from analytics.data.store import connect
from analytics.settings import AnalyticsSettings
from hooks.answering.eventlog import EventLog


def card_event(card: str) -> dict:
    return {
        "event_id": str(uuid.uuid4()), "type": "card", "time": datetime.now(UTC).isoformat(), "service": "s",
        "card": card, "rule": "cyp2c19-clopidogrel",
    }  # fmt: skip


def write_segment(directory: Path, name: str, events: list[dict]) -> Path:
    """A real segment (the service's writer), renamed as a replica with another naming could have it."""

    async def write() -> Path:
        log = EventLog(directory)
        await log.append(events)
        await log.close()
        return log.path

    return asyncio.run(write()).rename(directory / name)


def append(path: Path, events: list[dict]) -> None:
    async def write() -> None:
        log = EventLog(path.parent)
        await log.append(events)
        await log.close()
        log.path.rename(path.with_suffix(".tail"))

    asyncio.run(write())
    tail = path.with_suffix(".tail")
    with path.open("ab") as handle:
        handle.write(tail.read_bytes())
    tail.unlink()


def cards(con) -> list[str]:
    return [row[0] for row in con.execute("SELECT card FROM cds_event ORDER BY card").fetchall()]


def test_two_replicas_segments_of_the_same_name_are_both_read_and_only_once(tmp_path):
    a, b = tmp_path / "replica-a" / "events", tmp_path / "replica-b" / "events"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    first = write_segment(a, "events-000001.jsonl", [card_event("a1"), card_event("a2")])
    write_segment(b, "events-000001.jsonl", [card_event("b1")])
    con = connect(tmp_path / "loop.duckdb")
    dirs = AnalyticsSettings(event_log_dirs=str(tmp_path / "replica-*" / "events")).paths().event_dirs
    assert dirs == [a.resolve(), b.resolve()]
    assert ingest(con, dirs) == 3
    assert cards(con) == ["a1", "a2", "b1"]  # keyed by name alone, b's offset would have been a's
    assert ingest(con, dirs) == 0
    append(first, [card_event("a3")])
    assert ingest(con, dirs) == 1
    assert cards(con) == ["a1", "a2", "a3", "b1"]
    segments = [row[0] for row in con.execute("SELECT segment FROM event_ingest ORDER BY 1").fetchall()]
    assert segments == [str(a.resolve() / "events-000001.jsonl"), str(b.resolve() / "events-000001.jsonl")]


def test_a_listed_directory_that_is_missing_is_named_and_the_others_ingested(tmp_path, caplog):
    present = tmp_path / "present"
    present.mkdir()
    write_segment(present, "events-1.jsonl", [card_event("p1")])
    settings = AnalyticsSettings(event_log_dirs=f"{present}, {tmp_path / 'unmounted'}")
    con = connect(tmp_path / "loop.duckdb")
    assert ingest(con, settings.paths().event_dirs) == 1
    assert "event-log directory" in caplog.text and "unmounted" in caplog.text


def test_the_environment_variable_lists_directories_separated_by_commas(tmp_path, monkeypatch):
    monkeypatch.setenv("PGX_LOOP_EVENT_LOG_DIRS", f" {tmp_path / 'a'} ,{tmp_path / 'b'},")
    assert AnalyticsSettings().paths().event_dirs == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]


def test_offsets_of_a_database_from_before_directory_keys_are_carried_over_only_when_unambiguous(tmp_path):
    events = tmp_path / "events"
    events.mkdir()
    segment = write_segment(events, "events-host-1-1.jsonl", [card_event("old")])
    con = connect(tmp_path / "loop.duckdb")
    # As the earlier ingestion left it: the segment read to its end, keyed by its bare name, and its
    # event since removed (say, an opt-out): carried over, the offset keeps it from coming back.
    size = os.path.getsize(segment)
    con.execute("INSERT INTO event_ingest VALUES (?, ?, 1, now())", [segment.name, size])
    append(segment, [card_event("new")])
    assert ingest(con, [events]) == 1
    assert cards(con) == ["new"]

    # The same bare name in a second replica's directory: whose offset it was cannot be told, so both
    # segments are read from the start (repeats are dropped by event_id; nothing is skipped).
    other = tmp_path / "other"
    other.mkdir()
    write_segment(other, "events-host-1-1.jsonl", [card_event("other")])
    fresh = connect(tmp_path / "fresh.duckdb")
    fresh.execute("INSERT INTO event_ingest VALUES (?, ?, 1, now())", [segment.name, size])
    assert ingest(fresh, [events, other]) == 3
    assert cards(fresh) == ["new", "old", "other"]
