"""Operations: /healthz, /readyz, Prometheus /metrics after real calls, JSON logs with request ids."""

from __future__ import annotations

import io
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from analytics.cycle import NoData, run_cycle
from analytics.settings import Paths
from engine.rulebook.library import Library
from engine.runtime.cycle_status import read_status
from engine.runtime.logs import JsonFormatter
from hooks.app import create_app
from hooks.settings import Settings
from tests.conftest import RULES, logged_events
from tests.fhirdata import genotype, hook_request
from tests.learning_data import paths_in, simulated, truth

SELECT = "/cds-services/pgx-order-select"
FEEDBACK = "/cds-services/pgx-order-select/feedback"
LATENCY = "pgx_loop_hook_request_duration_seconds"

Samples = dict[tuple[str, frozenset], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def change(before: Samples, after: Samples, name: str, **labels: str) -> float:
    # Metrics are per process and the test suite shares one: compare before and after.
    return value(after, name, **labels) - value(before, name, **labels)


def test_healthz_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "alive"}


def test_readyz_reports_what_is_served(client, library):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready" and body["event_log"] == "writable"
    assert body["rules"] == {"version": library.version, "count": len(library.rules), "last_reload_failed": False}
    assert body["strengths"]["version"] == "0" and body["analytics"] is None


def test_readyz_is_503_when_the_event_log_cannot_be_written(client, settings):
    shutil.rmtree(settings.events_path)
    settings.events_path.write_text("not a directory")  # tests run as root: permissions would not stop a write
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready" and body["event_log"] == "not writable"
    [reason] = body["reasons"]
    assert reason.startswith("the event log segment events/events-") and reason.endswith(" is gone")
    assert str(settings.var_dir) not in response.text and str(settings.var_dir.resolve()) not in response.text


def test_readyz_is_503_when_no_rules_are_loaded(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES / "genes", rules / "genes")  # genes but not one rule
    with TestClient(create_app(Settings(rules_dir=rules, var_dir=tmp_path / "var"))) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reasons"] == ["no rules loaded from the rules directory"]
        assert client.get("/healthz").status_code == 200  # alive, just not ready


def card_request() -> dict[str, Any]:
    return hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])


def test_metrics_count_hook_calls_cards_and_feedback(client, settings):
    before = scrape(client)
    cards = [client.post(SELECT, json=card_request()).json()["cards"][0] for _ in range(3)]
    assert client.post(SELECT, content=b"[", headers={"Content-Type": "application/json"}).status_code == 400
    for unknown in ("no-such-service", "another-made-up-one"):
        assert client.post(f"/cds-services/{unknown}", json=card_request()).status_code == 404
    accepted = [{"id": cards[0]["suggestions"][0]["uuid"]}]
    feedback = [
        {"card": cards[0]["uuid"], "outcome": "accepted", "acceptedSuggestions": accepted,
         "outcomeTimestamp": "2026-11-22T10:05:31Z"},
        {"card": cards[1]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-22T10:06:00Z"},
        {"card": cards[2]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-22T10:07:00Z"},
    ]  # fmt: skip
    assert client.post(FEEDBACK, json={"feedback": feedback}).json() == {"recorded": 3, "duplicates": 0}
    assert client.post(FEEDBACK, json={"feedback": feedback[1:]}).json() == {"recorded": 0, "duplicates": 2}
    after = scrape(client)

    hook = {"service": "pgx-order-select", "endpoint": "hook"}
    assert change(before, after, f"{LATENCY}_count", **hook, status="200") == 3
    assert change(before, after, f"{LATENCY}_bucket", **hook, status="200", le="+Inf") == 3
    assert change(before, after, f"{LATENCY}_sum", **hook, status="200") > 0
    assert change(before, after, f"{LATENCY}_count", **hook, status="400") == 1
    assert change(before, after, f"{LATENCY}_count", service="unknown", endpoint="hook", status="404") == 2
    assert change(before, after, f"{LATENCY}_count", service="pgx-order-select", endpoint="feedback", status="200") == 2
    services = {dict(labels).get("service") for _, labels in after}
    assert "no-such-service" not in services and "another-made-up-one" not in services  # bounded labels

    [tier] = {event["tier"] for event in logged_events(settings) if event["type"] == "card"}
    assert change(before, after, "pgx_loop_cards_total", rule="cyp2c19-clopidogrel", tier=tier) == 3
    assert change(before, after, "pgx_loop_feedback_total", service="pgx-order-select", outcome="accepted") == 1
    assert change(before, after, "pgx_loop_feedback_total", service="pgx-order-select", outcome="overridden") == 2


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.05)


def test_failed_reloads_are_counted_and_do_not_make_the_service_unready(tmp_path):
    rules = tmp_path / "rules"
    (rules / "genes").mkdir(parents=True)
    shutil.copy(RULES / "genes" / "CYP2C19.yaml", rules / "genes")
    shutil.copy(RULES / "cyp2c19-clopidogrel.yaml", rules)
    settings = Settings(rules_dir=rules, var_dir=tmp_path / "var", rules_poll_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        before = scrape(client)
        rule = rules / "cyp2c19-clopidogrel.yaml"
        rule.write_text(rule.read_text().replace("classification: Strong", "classification: Very strong", 1))
        wait_for(lambda: client.get("/status/rules").json()["failures"] == 1)
        settings.strengths_path.write_text("{not json")
        wait_for(lambda: client.get("/status/strengths").json()["failures"] == 1)
        after = scrape(client)
        assert change(before, after, "pgx_loop_reload_failures_total", what="rules") == 1
        assert change(before, after, "pgx_loop_reload_failures_total", what="strengths") == 1
        response = client.get("/readyz")
        assert response.status_code == 200  # the last good rules keep serving
        assert response.json()["rules"]["last_reload_failed"] is True
        assert response.json()["strengths"]["last_reload_failed"] is True
        statuses = client.get("/status/rules").text + client.get("/status/strengths").text + response.text
        assert str(tmp_path) not in statuses and str(tmp_path.resolve()) not in statuses  # names, not paths
        assert "strengths.json: not a strengths snapshot" in statuses and "cyp2c19-clopidogrel.yaml:" in statuses


def test_the_last_analytics_cycle_is_reported_from_its_status_file(library: Library, tmp_path: Path):
    source = tmp_path / "source.duckdb"
    simulated(library, 5000, seed=8, effects=truth(), path=source).close()
    paths = paths_in(tmp_path / "var", source)
    result = run_cycle(library, paths)
    settings = Settings(rules_dir=RULES, var_dir=tmp_path / "var", strengths_file=paths.snapshot)
    assert settings.analytics_status_path == paths.status
    status = read_status(paths.status)
    assert status is not None and status.status == "ok" and status.cycle_id == result.run_id
    with TestClient(create_app(settings, library)) as client:
        samples = scrape(client)
        assert value(samples, "pgx_loop_analytics_cycle_last_status", status="ok") == 1
        assert value(samples, "pgx_loop_analytics_cycle_last_status", status="failed") == 0
        assert value(samples, "pgx_loop_analytics_cycle_duration_seconds") == status.duration_seconds > 0
        succeeded = value(samples, "pgx_loop_analytics_cycle_last_success_timestamp_seconds")
        assert succeeded == pytest.approx(status.finished.timestamp())
        assert client.get("/readyz").json()["analytics"]["cycle_id"] == result.run_id

        # A cycle with nothing to learn from: the file is replaced, read again at the next scrape.
        empty = Paths(tmp_path / "empty.duckdb", paths.events, paths.snapshot)
        with pytest.raises(NoData):
            run_cycle(library, empty)
        samples = scrape(client)
        assert value(samples, "pgx_loop_analytics_cycle_last_status", status="no-data") == 1
        assert value(samples, "pgx_loop_analytics_cycle_last_status", status="ok") == 0
        assert value(samples, "pgx_loop_analytics_cycle_last_success_timestamp_seconds") == succeeded
        assert client.get("/readyz").status_code == 200  # information, not a readiness condition
    assert "has no person" in read_status(paths.status).message


@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The root logger's lines, formatted as the service writes them, parsed back."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(level)


def test_log_lines_carry_the_request_id(client, json_log):
    stranger = genotype("CYP2C19", "*1/*1", patient="someone-else")  # skipped, with a warning
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2"), stranger])
    response = client.post(SELECT, json=body, headers={"X-Request-ID": "ehr-trace.0042"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "ehr-trace.0042"
    [line] = [line for line in json_log() if "subject is not the request's patient" in line["message"]]
    assert line["request_id"] == "ehr-trace.0042" and line["level"] == "WARNING"
    assert line["logger"] == "hooks.fhir.fhir_pgx" and line["time"].endswith("+00:00")

    for unusable in ("has spaces in it", "x" * 200, 'quote"brace{'):
        response = client.post(SELECT, json=body, headers={"X-Request-ID": unusable})
        assert response.headers["x-request-id"] != unusable
        assert len(response.headers["x-request-id"]) == 32  # one made up instead
    generated = client.get("/healthz").headers["x-request-id"]
    assert generated != client.get("/healthz").headers["x-request-id"]
    ids = [line["request_id"] for line in json_log() if "subject is not" in line["message"]]
    assert len(ids) == 4 and len(set(ids)) == 4  # each request its own id


def test_an_unexpected_error_is_a_500_outcome_whose_request_id_finds_the_log_line(settings, library, json_log):
    with TestClient(create_app(settings, library), raise_server_exceptions=False) as client:

        async def broken(*args, **kwargs):
            raise RuntimeError("a bug")

        client.app.state.hooks.handle = broken  # fault injection: a bug in the hook handler
        response = client.post(SELECT, json=hook_request(), headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "trace-500"
    assert response.json()["resourceType"] == "OperationOutcome"
    [line, answer] = [line for line in json_log() if line["level"] == "ERROR"]
    assert line["request_id"] == "trace-500" and "RuntimeError: a bug" in line["exception"]
    assert (answer["logger"], answer["request_id"], answer["status"]) == ("hooks.access", "trace-500", 500)
    assert answer["reason"] == "internal_error" and answer["route"] == "/cds-services/{service_id}"


def test_tokens_and_query_strings_are_blanked_even_in_exceptions(json_log):
    url = "https://ehr.example/fhir/Observation?patient=pt-7781&code=84413-4"
    request = httpx.Request("GET", url, headers={"Authorization": "Bearer abc.def"})
    error = httpx.HTTPStatusError(f"Server error for url '{url}'", request=request, response=httpx.Response(500))
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwdC03NzgxIn0.c2lnbmF0dXJl"
    try:
        raise error
    except httpx.HTTPStatusError:
        logging.getLogger("hooks.test").exception("fetch failed with Bearer tok-123 and %s", jwt)
    [line] = json_log()
    text = orjson.dumps(line).decode()
    for secret in ("pt-7781", "tok-123", jwt, "eyJzdWIiOiJwdC03NzgxIn0"):
        assert secret not in text
    assert "https://ehr.example/fhir/Observation?[redacted]" in line["exception"]
    assert line["message"] == "fetch failed with Bearer [redacted] and [redacted-jwt]"
