"""Durability: SIGKILL the real server under concurrent load; nothing acknowledged is lost, nothing counted twice.

Clients post hook calls and feedback on the cards they get back, from several threads, against
`pgx-loop serve --workers 2`. Mid-stream the whole process group is killed with SIGKILL (no
shutdown code runs). The server is restarted on the same state and an EHR-style retry of every
acknowledged feedback is sent. Then:
- every card and feedback the server acknowledged with a 200 is in the event log;
- ingestion, run once on the torn log right after the kill and again after the restart, stores
  each event exactly once: a retried feedback is one row, and no line is read twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from analytics.data.events import ingest
from analytics.data.store import connect
from hooks.answering.eventlog import read_events
from tests.fhirdata import genotype, hook_request
from tests.live_server import LiveServer

THREADS = 6
DIPLOTYPES = ("*2/*2", "*1/*2", "*2/*3")


class Load:
    """Clients that record exactly what the server acknowledged."""

    def __init__(self, base: str):
        self.base = base
        self.cards: list[tuple[str, str]] = []  # (hook instance, card uuid) acknowledged
        self.feedback: list[dict] = []  # feedback items acknowledged
        self.failures = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(THREADS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _client(self, number: int) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as client:
            sequence = 0
            while not self._stop.is_set():
                sequence += 1
                patient = f"durable-{number}-{sequence}"
                diplotype = DIPLOTYPES[sequence % len(DIPLOTYPES)]
                body = hook_request(genotypes=[genotype("CYP2C19", diplotype, patient=patient)], patient=patient)
                try:
                    response = client.post("/cds-services/pgx-order-select", json=body)
                except httpx.TransportError:
                    self._failed()
                    continue
                if response.status_code != 200:
                    self._failed()
                    continue
                cards = response.json()["cards"]
                with self._lock:
                    self.cards.extend((body["hookInstance"], card["uuid"]) for card in cards)
                items = [_feedback(card, sequence) for card in cards]
                try:
                    answer = client.post("/cds-services/pgx-order-select/feedback", json={"feedback": items})
                except httpx.TransportError:
                    self._failed()
                    continue
                if answer.status_code == 200:
                    with self._lock:
                        self.feedback.extend(items)
                else:
                    self._failed()

    def _failed(self) -> None:
        with self._lock:
            self.failures += 1
        time.sleep(0.05)  # the server is gone; don't spin


def _feedback(card: dict, sequence: int) -> dict:
    item = {"card": card["uuid"], "outcomeTimestamp": datetime.now(UTC).isoformat()}
    if sequence % 2:
        return {**item, "outcome": "accepted", "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}]}
    return {**item, "outcome": "overridden", "overrideReason": {"reason": card["overrideReasons"][0]}}


def logged(events_dir) -> list[dict]:
    return [event for path in sorted(events_dir.glob("events-*.jsonl")) for event in read_events(path)]


# "interval" too: it syncs in the background, but writes before answering, so killing the
# process (not the machine) loses nothing acknowledged either.
@pytest.mark.parametrize("sync", ["always", "interval"])
def test_sigkill_under_load_loses_no_acknowledged_event_and_ingestion_counts_each_once(tmp_path, sync):
    var = tmp_path / "var"
    events_dir = var / "events"
    database = tmp_path / "loop.duckdb"
    server = LiveServer(var, workers=2, env={"PGX_LOOP_EVENT_SYNC": sync}).start()
    load = Load(server.base)
    load.start()
    deadline = time.monotonic() + 30
    while len(load.feedback) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # SIGKILL, mid-stream: the clients are still sending
    acknowledged_at_kill = len(load.feedback)
    load.stop()
    assert acknowledged_at_kill >= 150, server.output()

    # Ingest the log as the crash left it (possibly a torn last line in a segment).
    con = connect(database)
    first = ingest(con, events_dir)

    # The EHR did not trust the crash: it sends every acknowledged feedback again.
    with LiveServer(var, workers=2) as restarted, httpx.Client(base_url=restarted.base, timeout=10) as client:
        for start in range(0, len(load.feedback), 50):
            answer = client.post(
                "/cds-services/pgx-order-select/feedback", json={"feedback": load.feedback[start : start + 50]}
            )
            assert answer.status_code == 200
    second = ingest(con, events_dir)

    events = logged(events_dir)
    cards_logged = {(e["hook_instance"], e["card"]) for e in events if e["type"] == "card"}
    assert set(load.cards) <= cards_logged, "an acknowledged card is missing from the event log"
    feedback_logged = {(e["card"], e["outcome"]) for e in events if e["type"] == "feedback"}
    assert {(item["card"], item["outcome"]) for item in load.feedback} <= feedback_logged

    rows = con.execute("SELECT event_id, type, card FROM cds_event").fetchall()
    assert len(rows) == first + second
    assert len({event_id for event_id, _, _ in rows}) == len(rows)
    distinct_in_log = {e["event_id"] for e in events}
    assert {event_id for event_id, _, _ in rows} == distinct_in_log, "ingestion missed or invented events"
    per_card = Counter(card for _, kind, card in rows if kind == "feedback")
    assert per_card and max(per_card.values()) == 1, "a retried feedback was stored twice"
    assert {item["card"] for item in load.feedback} <= set(per_card)
    con.close()


def test_a_feedback_retried_to_another_worker_is_one_event_after_ingestion(tmp_path):
    var = tmp_path / "var"
    with LiveServer(var, workers=2) as server, httpx.Client(base_url=server.base, timeout=10) as client:
        body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
        card = client.post("/cds-services/pgx-order-select", json=body).json()["cards"][0]
        item = _feedback(card, 1)
        for _ in range(20):  # new connections: the retries reach both workers
            with httpx.Client(base_url=server.base, timeout=10) as fresh:
                assert fresh.post("/cds-services/pgx-order-select/feedback", json={"feedback": [item]}).is_success
    con = connect(tmp_path / "loop.duckdb")
    ingest(con, var / "events")
    assert con.execute("SELECT count(*) FROM cds_event WHERE type = 'feedback'").fetchone() == (1,)
    assert uuid.UUID(card["uuid"])
    con.close()
