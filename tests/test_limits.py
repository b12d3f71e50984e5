"""Size and shape limits: each a clear 4xx with the reason, and an ordinary request unaffected."""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest
from fastapi.testclient import TestClient
from starlette.requests import ClientDisconnect

from hooks.app import create_app
from hooks.protocol.limits import Limits, TooComplex, TooLarge
from tests.fhirdata import genotype, hook_request, medication_request

SELECT = "/cds-services/pgx-order-select"


@pytest.fixture
def strict(settings, library):
    limited = settings.model_copy(update={"max_body_bytes": 20_000, "max_json_depth": 16, "max_bundle_entries": 5})
    with TestClient(create_app(limited, library)) as client:
        yield client


def reasons(response) -> list[str]:
    return [issue["diagnostics"] for issue in response.json()["issue"]]


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": [value]} if len(json.dumps(value)) % 2 else {"a": value}
    return value


def test_an_ordinary_request_is_within_every_limit(strict):
    response = strict.post(SELECT, json=hook_request(genotypes=[genotype("CYP2C19", "*2/*2")]))
    assert response.status_code == 200 and response.json()["cards"]


def test_a_body_over_the_size_limit_gets_413(strict):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    body["context"]["note"] = "x" * 30_000
    response = strict.post(SELECT, json=body)
    assert response.status_code == 413
    assert reasons(response) == ["the body is larger than the 20000 bytes this service accepts"]


def test_a_chunked_body_without_length_is_cut_off_too(strict):
    payload = orjson.dumps({**hook_request(), "pad": "x" * 30_000})

    def chunks():
        for start in range(0, len(payload), 4096):
            yield payload[start : start + 4096]

    response = strict.post(SELECT, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_deep_nesting_gets_400_naming_the_limit(strict):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    body["context"]["extension"] = nested(30)
    response = strict.post(SELECT, json=body)
    assert response.status_code == 400
    assert reasons(response) == ["the JSON is nested more than 16 levels deep"]


def test_a_draft_order_nested_deeper_than_the_limit_gets_400_not_a_failed_answer(client):
    # Parts of the draft order (reasonCode...) go back in the suggestions: their depth matters.
    order = medication_request("deep-1")
    order["reasonCode"] = [nested(300)]
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")], orders=[order])
    response = client.post(SELECT, json=body)
    assert response.status_code == 400
    assert reasons(response) == ["the JSON is nested more than 40 levels deep"]


def test_nesting_beyond_the_parsers_limit_anywhere_gets_400_naming_it(client):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    body["prefetch"]["extra"] = "DEEP"
    content = orjson.dumps(body).replace(b'"DEEP"', b"[" * 1100 + b"]" * 1100)
    response = client.post(SELECT, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert reasons(response) == ["the JSON is nested more than 1024 levels deep"]


def test_deep_values_in_prefetch_that_the_service_never_walks_are_accepted(strict):
    # Results are read at fixed paths, never walked or sent back: only the parser's limit applies.
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    body["prefetch"]["pgxGenotypes"]["entry"][0]["resource"]["extension"] = [nested(30)]
    response = strict.post(SELECT, json=body)
    assert response.status_code == 200 and response.json()["cards"]


def test_too_many_draft_orders_get_400(strict):
    orders = [medication_request(f"draft-{n}") for n in range(6)]
    response = strict.post(SELECT, json=hook_request(orders=orders))
    assert response.status_code == 400
    assert reasons(response) == ["context.draftOrders.entry: 6 entries, more than the 5 allowed"]


def test_too_many_prefetched_results_get_400(strict):
    body = hook_request(genotypes=[genotype("CYP2C19", "*1/*1") for _ in range(6)])
    response = strict.post(SELECT, json=body)
    assert response.status_code == 400
    assert reasons(response) == ["prefetch.pgxGenotypes.entry: 6 entries, more than the 5 allowed"]


def test_feedback_is_held_to_the_same_limits(strict):
    response = strict.post(SELECT + "/feedback", json={"feedback": [], "extension": nested(30)})
    assert response.status_code == 400 and "nested more than 16" in reasons(response)[0]


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("{}", 1),
        ("[[], {}]", 2),
        ('{"a": "[[[[[[", "b": [{"c": "}}}}\\"]]]"}]}', 3),
        ('[{"a": [{"b": [1, 2, {"c": {}}]}]}]', 7),
        ('"just a string with { and ["', 0),
        ('{"a": "ends in a backslash \\\\", "b": [["\\"]"]]}', 3),
    ],
)
def test_depth_is_measured_on_containers_not_brackets_in_strings(text, depth):
    value = orjson.loads(text)
    Limits(10_000, depth, 10).check_depth(value)
    if depth:
        with pytest.raises(TooComplex):
            Limits(10_000, depth - 1, 10).check_depth(value)


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    read = []

    async def receive():
        read.append(True)
        return {"type": "http.request", "body": b"{}"}

    with pytest.raises(Exception, match="larger than"):
        asyncio.run(Limits(1000, 10, 10).read_body("5000", receive))
    assert read == []


def _messages(*messages):
    """An ASGI ``receive`` giving ``messages`` in order, and the count of those read."""
    queue, read = list(messages), []

    async def receive():
        read.append(True)
        return queue.pop(0)

    return receive, read


def test_a_body_in_chunks_is_joined_and_one_over_the_limit_is_refused_at_the_chunk_that_crosses_it():
    chunk = {"type": "http.request", "body": b"x" * 400, "more_body": True}
    last = {"type": "http.request", "body": b"!", "more_body": False}
    receive, _ = _messages(chunk, chunk, last)
    assert asyncio.run(Limits(1000, 10, 10).read_body(None, receive)) == b"x" * 800 + b"!"
    receive, read = _messages(chunk, chunk, chunk, last)
    with pytest.raises(TooLarge):
        asyncio.run(Limits(1000, 10, 10).read_body(None, receive))
    assert len(read) == 3  # the fourth message is never asked for


def test_a_client_gone_before_its_body_arrived_is_a_client_disconnect():
    receive, _ = _messages({"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"})
    with pytest.raises(ClientDisconnect):
        asyncio.run(Limits(1000, 10, 10).read_body(None, receive))
