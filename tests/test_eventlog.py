"""The event log: durable before acknowledged, group-committed off the event loop, torn lines tolerated."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from hooks.answering.eventlog import EventLog, EventLogError, read_events
from hooks.app import create_app
from hooks.protocol.requests import HookRequest
from tests.conftest import logged_events
from tests.fhirdata import genotype, hook_request

POOR = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])


def _point_at(log: EventLog, device: str) -> None:
    """Make the segment's descriptor a device: /dev/full fails every write (a full disk),
    /dev/null takes writes but fails fdatasync (EINVAL), as a failing disk's flush would."""
    fd = os.open(device, os.O_WRONLY)
    os.dup2(fd, log._fd)
    os.close(fd)


@pytest.fixture
def slow_disk(monkeypatch):
    """A busy disk (the disk is this module's boundary): an fdatasync in this process takes 150 ms."""
    real_sync = os.fdatasync

    def slow_sync(fd: int) -> None:
        time.sleep(0.15)
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", slow_sync)


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


def _syncer_pid(log: EventLog) -> int:
    assert log._syncer is not None
    return log._syncer._process.pid


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_no_request_is_answered_before_its_fdatasync_and_those_that_wait_share_the_next_one(tmp_path):
    async def run():
        log = EventLog(tmp_path)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        os.kill(_syncer_pid(log), signal.SIGSTOP)  # a disk that takes as long as we like to sync
        first = asyncio.create_task(log.append([{"event_id": "first"}]))
        await asyncio.sleep(0.2)
        assert not first.done(), "acknowledged before its fdatasync finished"
        rest = [asyncio.create_task(log.append([{"event_id": str(n)}])) for n in range(50)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in rest)
        os.kill(_syncer_pid(log), signal.SIGCONT)
        await asyncio.gather(first, *rest)
        ticking.cancel()
        await log.close()
        return log, ticks

    log, ticks = asyncio.run(run())
    assert ticks >= 15  # the event loop kept running while the sync was pending
    assert log.flushes == 2 and log.requests == 51  # the 50 that waited went out in one fdatasync
    assert len(read_events(log.path)) == 51


def test_when_the_fdatasync_process_dies_its_batch_fails_and_the_next_batch_gets_a_new_one(tmp_path):
    async def run():
        log = EventLog(tmp_path)
        await log.append([{"event_id": "before"}])
        dead = _syncer_pid(log)
        os.kill(dead, signal.SIGSTOP)
        lost = asyncio.create_task(log.append([{"event_id": "unconfirmed"}]))
        await asyncio.sleep(0.05)
        os.kill(dead, signal.SIGKILL)
        with pytest.raises(EventLogError, match="process exited"):
            await asyncio.wait_for(lost, 5)  # fails, never hangs
        await log.append([{"event_id": "after"}])
        assert _syncer_pid(log) != dead
        await log.close()
        return log

    log = asyncio.run(run())
    ids = [event["event_id"] for event in read_events(log.path)]
    assert ids[0] == "before" and ids[-1] == "after"  # "unconfirmed" may be there too: written, never acknowledged
    assert log.requests == 2


def test_a_failed_fdatasync_fails_its_batch(tmp_path):
    async def run():
        log = EventLog(tmp_path)
        await log.append([{"event_id": "before"}])
        os.kill(_syncer_pid(log), signal.SIGKILL)
        await _until(lambda: log._syncer is None)
        _point_at(log, "/dev/null")  # the next fdatasync process syncs a descriptor that cannot be synced
        with pytest.raises(EventLogError, match="fdatasync failed: Invalid argument"):
            await log.append([{"event_id": "refused"}])
        await log.close()
        return log

    log = asyncio.run(run())
    assert log.requests == 1


def test_closing_waits_for_the_sync_in_flight_and_stops_the_process(tmp_path):
    async def run():
        log = EventLog(tmp_path)
        process = log._syncer._process
        pending = [asyncio.create_task(log.append([{"event_id": str(n)}])) for n in range(20)]
        await asyncio.sleep(0)
        await log.close()
        assert all(task.done() and task.exception() is None for task in pending)
        assert process.poll() == 0
        with pytest.raises(EventLogError):
            await log.append([{"event_id": "late"}])
        return log

    log = asyncio.run(run())
    assert len(read_events(log.path)) == 20


def test_closing_ends_even_when_the_last_batch_cannot_be_written(tmp_path):
    async def run():
        log = EventLog(tmp_path)
        os.kill(_syncer_pid(log), signal.SIGSTOP)
        synced = asyncio.create_task(log.append([{"event_id": "synced"}]))
        await asyncio.sleep(0.05)
        refused = asyncio.create_task(log.append([{"event_id": "refused"}]))  # waits for the next batch
        await asyncio.sleep(0)
        _point_at(log, "/dev/full")  # its write will fail
        closing = asyncio.create_task(log.close())
        await asyncio.sleep(0.05)
        os.kill(_syncer_pid(log), signal.SIGCONT)
        await asyncio.wait_for(closing, 5)
        await synced
        with pytest.raises(EventLogError, match="write failed"):
            await refused

    asyncio.run(run())


def test_the_service_answers_503_when_the_fdatasync_process_dies_mid_batch_and_200_after(settings, library):
    with TestClient(create_app(settings, library)) as client, ThreadPoolExecutor(1) as pool:
        events = client.app.state.events
        dead = _syncer_pid(events)
        os.kill(dead, signal.SIGSTOP)
        pending = pool.submit(client.post, "/cds-services/pgx-order-select", json=POOR)
        deadline = time.monotonic() + 10
        while events._in_flight is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(dead, signal.SIGKILL)
        assert pending.result(timeout=10).status_code == 503
        answer = client.post("/cds-services/pgx-order-select", json=POOR)
        assert answer.status_code == 200
        card = answer.json()["cards"][0]["uuid"]
    assert card in {event["card"] for event in logged_events(settings)}


def test_a_call_waiting_for_the_disk_holds_no_parsed_request(settings, library):
    """Calls waiting for their batch's fdatasync keep only their answer: a dozen of them holding their
    parsed requests made every call run on cold memory (20-30% more event-loop CPU per call)."""
    with TestClient(create_app(settings, library)) as client, ThreadPoolExecutor(1) as pool:
        events = client.app.state.events
        os.kill(_syncer_pid(events), signal.SIGSTOP)
        try:
            pending = pool.submit(client.post, "/cds-services/pgx-order-select", json=POOR)
            deadline = time.monotonic() + 10
            while events._in_flight is None and time.monotonic() < deadline:
                time.sleep(0.005)
            assert events._in_flight is not None and not pending.done()
            gc.collect()
            assert not [thing for thing in gc.get_objects() if isinstance(thing, HookRequest)]
        finally:
            os.kill(_syncer_pid(events), signal.SIGCONT)
        assert pending.result(timeout=10).status_code == 200


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_a_failed_write_fails_the_request_and_nothing_is_acknowledged(tmp_path, sync):
    async def run():
        log = EventLog(tmp_path, sync=sync)
        await log.append([{"event_id": "before"}])
        saved = os.dup(log._fd)
        _point_at(log, "/dev/full")
        with pytest.raises(EventLogError):
            await log.append([{"event_id": "lost"}])
        os.dup2(saved, log._fd)  # the disk recovers
        os.close(saved)
        await log.append([{"event_id": "after"}])
        await log.close()
        return log

    log = asyncio.run(run())
    assert [event["event_id"] for event in read_events(log.path)] == ["before", "after"]


def test_interval_mode_answers_before_the_sync_and_syncs_within_about_a_second(tmp_path, slow_disk):
    async def run():
        log = EventLog(tmp_path, sync="interval")
        started = time.perf_counter()
        await asyncio.gather(*(log.append([{"event_id": str(n)}]) for n in range(20)))
        answered = time.perf_counter() - started
        # Written before the answer: a crash of this process (not of the machine) loses nothing.
        written = len(read_events(log.path))
        deadline = time.monotonic() + 3
        while log.flushes == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await log.close()
        return log, answered, written

    log, answered, written = asyncio.run(run())
    assert answered < 0.1  # no request waited for the 150 ms fdatasync
    assert written == 20 and log.requests == 20
    assert log.flushes >= 1


def test_interval_mode_refuses_events_after_a_failed_sync(tmp_path):
    async def run():
        log = EventLog(tmp_path, sync="interval")
        _point_at(log, "/dev/null")
        await log.append([{"event_id": "taken"}])  # written; its fdatasync fails in the background
        deadline = time.monotonic() + 3
        while log._sync_error is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        with pytest.raises(EventLogError, match="sync failed"):
            await log.append([{"event_id": "refused"}])
        await log.close()

    asyncio.run(run())


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_when_the_log_cannot_be_written_the_call_fails_with_503(settings, library, sync):
    with TestClient(create_app(settings.model_copy(update={"event_sync": sync}), library)) as client:
        _point_at(client.app.state.events, "/dev/full")  # every write fails with ENOSPC, as on a full disk
        response = client.post("/cds-services/pgx-order-select", json=POOR)
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


def test_card_events_carry_distinct_version_4_uuids(client, settings):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    for _ in range(3):
        assert client.post("/cds-services/pgx-order-select", json=body).status_code == 200
    ids = [event["event_id"] for event in logged_events(settings)]
    assert len(ids) == 3 == len(set(ids))
    assert all(uuid.UUID(event_id).version == 4 and str(uuid.UUID(event_id)) == event_id for event_id in ids)
