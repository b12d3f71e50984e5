"""The event log: durable before acknowledged, group-committed, torn lines tolerated."""

from __future__ import annotations

import asyncio
import os

from hooks.eventlog import EventLog, read_events
from tests.fhirdata import genotype, hook_request


def test_concurrent_appends_share_flushes_and_all_land(tmp_path):
    async def run():
        log = EventLog(tmp_path)
        await asyncio.gather(*(log.append([{"event_id": str(i), "n": i}]) for i in range(300)))
        await log.close()
        return log

    log = asyncio.run(run())
    events = read_events(log.path)
    assert sorted(int(event["event_id"]) for event in events) == list(range(300))
    assert log.events == 300
    assert log.flushes < 300  # group commit: many requests per fsync


def test_each_process_writes_its_own_segment(tmp_path):
    async def open_two():
        first, second = EventLog(tmp_path), EventLog(tmp_path)
        await first.close()
        await second.close()
        return first.path, second.path

    first, second = asyncio.run(open_two())
    assert first != second and first.parent == second.parent == tmp_path


def test_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "events-x.jsonl"
    path.write_bytes(b'{"event_id": "a"}\n{"event_id": "b"}\n{"event_id": "c", "ty')
    assert [event["event_id"] for event in read_events(path)] == ["a", "b"]


def test_when_the_log_cannot_be_written_the_call_fails_with_503(client):
    # Point the segment at /dev/full: every write fails with ENOSPC, as on a full disk.
    events = client.app.state.events
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, events._fd)
    os.close(full)
    response = client.post(
        "/cds-services/pgx-order-select", json=hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    )
    assert response.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"


def test_the_log_holds_no_token_and_no_patient_id(client, settings):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2", patient="MRN-55501234")], patient="MRN-55501234")
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["fhirAuthorization"] = {
        "access_token": "eyJSECRETACCESS",
        "token_type": "Bearer",
        "expires_in": 30,
        "scope": "patient/Observation.read",
        "subject": "pgx-loop",
        "patient": "MRN-55501234",
    }
    card = client.post("/cds-services/pgx-order-select", json=body).json()["cards"][0]
    client.post(
        "/cds-services/pgx-order-select/feedback",
        json={
            "feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-22T10:00:00Z"}]
        },
    )
    text = "".join(path.read_text() for path in settings.events_path.glob("*.jsonl"))
    assert card["uuid"] in text
    assert "eyJSECRETACCESS" not in text and "MRN-55501234" not in text
