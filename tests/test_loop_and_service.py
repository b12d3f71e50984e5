"""Where the service and the loop meet: events flow to DuckDB once; published strengths flow back to cards."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from analytics.data.events import ingest
from analytics.data.store import LOOP_TABLES, transaction
from engine.decision.strengths import Snapshot, Strength
from engine.rulebook.library import Library
from hooks.app import create_app
from hooks.settings import Settings
from tests.conftest import RULES
from tests.fhirdata import genotype, hook_request

CLOPIDOGREL = "cyp2c19-clopidogrel"
LOCAL_LINE = "Alert level set from this hospital's own outcome data"


def intermediate_metabolizer_card(client: TestClient, **request) -> dict:
    response = client.post(
        "/cds-services/pgx-order-select",
        json=hook_request(genotypes=[genotype("CYP2C19", "*1/*2")], **request),
    )
    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    return card


def database() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(LOOP_TABLES)
    return con


def test_events_are_ingested_exactly_once(client: TestClient, settings: Settings):
    card = intermediate_metabolizer_card(client)
    intermediate_metabolizer_card(client)  # the same card at a second hook call: a second showing
    reason = {"reason": {"code": "will-monitor", "system": "urn:pgx-loop:override-reason"}}
    feedback = {"feedback": [{"card": card["uuid"], "outcome": "overridden", "overrideReason": reason,
                              "outcomeTimestamp": "2026-11-22T10:00:00Z"}]}  # fmt: skip
    assert client.post("/cds-services/pgx-order-select/feedback", json=feedback).status_code == 200
    segment = next(settings.events_path.glob("events-*.jsonl"))
    lines = segment.read_bytes().splitlines(keepends=True)
    # A restart re-sent one event into a second segment, and a crash left a torn line there.
    (settings.events_path / "events-other-2-2.jsonl").write_bytes(lines[0] + b'{"event_id": "torn-1", "ty')

    con = database()
    with transaction(con):
        assert ingest(con, settings.events_path) == 3
    with transaction(con):
        assert ingest(con, settings.events_path) == 0  # nothing is read twice
    rows = con.execute("SELECT type, rule, phenotype, tier, tier_source, outcome, override_reason FROM cds_event "
                       "ORDER BY type, time").fetchall()  # fmt: skip
    assert rows == [
        ("card", CLOPIDOGREL, "Intermediate Metabolizer", "warning", "rule file", None, None),
        ("card", CLOPIDOGREL, "Intermediate Metabolizer", "warning", "rule file", None, None),
        ("feedback", None, None, None, None, "overridden", "will-monitor"),
    ]
    # The torn line is completed by the next write: then, and only then, it is read.
    with (settings.events_path / "events-other-2-2.jsonl").open("ab") as handle:
        handle.write(b'pe": "feedback", "time": "2026-11-22T10:00:01Z", "card": "c"}\n')
    with transaction(con):
        assert ingest(con, settings.events_path) == 1
    patients = {row[0] for row in con.execute("SELECT patient FROM cds_event WHERE type = 'card'").fetchall()}
    assert patients and all(len(p) == 32 and "example" not in p for p in patients)  # pseudonyms only


@pytest.fixture
def served(tmp_path: Path, library: Library):
    settings = Settings(rules_dir=RULES, var_dir=tmp_path / "var", rules_poll_seconds=0.05)
    with TestClient(create_app(settings, library)) as client:
        yield client, settings


def publish(path: Path, version: int, tier: str, evidence: str = "local HR 2.10 (95% CI 1.60-2.80)") -> None:
    strengths = tuple(
        Strength(rule=CLOPIDOGREL, phenotype=phenotype, tier=tier, evidence=evidence, run_id="run-1",
                 decided_at="2026-11-22T00:00:00+00:00")
        for phenotype in ("Intermediate Metabolizer", "Likely Intermediate Metabolizer")
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(
        Snapshot(version=version, created="2026-11-22T00:00:00+00:00", strengths=strengths).model_dump_json()
    )
    temporary.replace(path)


def wait_for_version(client: TestClient, version: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/status/strengths").json()
        if status["version"] == version:
            return status
        time.sleep(0.05)
    raise AssertionError(f"strengths version {version} never served: {status}")


def test_published_strengths_reach_cards_without_a_restart(served):
    client, settings = served
    before = intermediate_metabolizer_card(client)
    assert before["indicator"] == "warning" and LOCAL_LINE not in before["detail"]

    publish(settings.strengths_path, 1, "critical")
    status = wait_for_version(client, "1")
    assert status["strengths"] == 2 and "last_error" not in status
    after = intermediate_metabolizer_card(client)
    assert after["indicator"] == "critical"
    assert LOCAL_LINE in after["detail"] and "local HR 2.10" in after["detail"]
    events = [
        json.loads(line) for path in settings.events_path.glob("*.jsonl") for line in path.read_text().splitlines()
    ]
    assert events[-1]["tier_source"] == "local evidence" and events[-1]["strengths_version"] == 1

    # Patients outside the population the loop studied keep the rule file's advice (stroke: not ACS/PCI).
    stroke = {"conditions": {"resourceType": "Bundle", "entry": [{"resource": {
        "resourceType": "Condition", "subject": {"reference": "Patient/example-patient-1"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I63.9"}]}}}]}}  # fmt: skip
    body = hook_request(genotypes=[genotype("CYP2C19", "*1/*2")])
    body["prefetch"].update(stroke)
    (card,) = client.post("/cds-services/pgx-order-select", json=body).json()["cards"]
    assert LOCAL_LINE not in card["detail"] and "Population:** Neurovascular" in card["detail"]


def test_a_published_tier_never_leaves_the_recommendation_bounds(served):
    client, settings = served
    publish(settings.strengths_path, 1, "none")  # below the floor the pharmacists set (info)
    wait_for_version(client, "1")
    card = intermediate_metabolizer_card(client)
    assert card["indicator"] == "info" and LOCAL_LINE in card["detail"]


def test_a_broken_strengths_file_keeps_the_last_good_one_serving(served):
    client, settings = served
    publish(settings.strengths_path, 1, "critical")
    wait_for_version(client, "1")
    settings.strengths_path.write_text('{"version": 2, "strengths": [{"rule": "x"}]}')
    deadline = time.monotonic() + 10
    while client.get("/status/strengths").json()["failures"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = client.get("/status/strengths").json()
    assert status["version"] == "1" and "not a strengths snapshot" in status["last_error"]["problems"][0]
    assert intermediate_metabolizer_card(client)["indicator"] == "critical"
    settings.strengths_path.unlink()
    publish(settings.strengths_path, 3, "warning")
    wait_for_version(client, "3")
    assert intermediate_metabolizer_card(client)["indicator"] == "warning"
