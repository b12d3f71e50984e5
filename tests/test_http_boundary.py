"""The HTTP boundary (issue 10, smaller findings): what a 400 says, content types, headers, redirects,
and suggestion resources built only from fields known to be valid."""

from __future__ import annotations

import copy
import gzip

import orjson
import pytest

from tests.fhirdata import genotype, hook_request, medication_request

SELECT = "/cds-services/pgx-order-select"
FEEDBACK = "/cds-services/pgx-order-select/feedback"
FEEDBACK_BODY = {
    "feedback": [
        {
            "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
            "outcome": "overridden",
            "overrideReason": {"reason": {"system": "urn:pgx-loop:override-reason", "code": "stable-on-drug"}},
            "outcomeTimestamp": "2026-01-01T10:00:00Z",
        }
    ]
}


def post(client, path, body, content_type="application/json"):
    headers = {} if content_type is None else {"Content-Type": content_type}
    return client.post(path, content=orjson.dumps(body), headers=headers)


def test_a_400_never_echoes_a_huge_hook_value(client):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    body["hook"] = "patient-view-" + "x" * 1_000_000
    response = post(client, SELECT, body)
    assert response.status_code == 400
    assert len(response.content) < 1000 and "xxxxxxxx" not in response.text
    assert "hook" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",  # a browser's cross-site "simple" POST
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json-patch+json",
        "application/json; charset=utf-16",
    ],
)
@pytest.mark.parametrize("path", [SELECT, FEEDBACK])
def test_hook_and_feedback_posts_must_be_declared_json(client, path, content_type):
    body = FEEDBACK_BODY if path == FEEDBACK else hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    response = post(client, path, body, content_type)
    assert response.status_code == 415
    assert response.json()["issue"][0]["diagnostics"] == "the body must be sent as Content-Type: application/json"


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
@pytest.mark.parametrize("path", [SELECT, FEEDBACK])
def test_a_compressed_body_is_unsupported_media_not_malformed_json(client, path, encoding):
    body = FEEDBACK_BODY if path == FEEDBACK else hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    compressed = gzip.compress(orjson.dumps(body))
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    response = client.post(path, content=compressed, headers=headers)
    assert response.status_code == 415
    assert "Content-Encoding is not supported" in response.json()["issue"][0]["diagnostics"]
    headers["Content-Encoding"] = "identity"
    assert client.post(path, content=orjson.dumps(body), headers=headers).status_code == 200


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=UTF-8", "Application/JSON"])
def test_json_with_or_without_a_utf8_charset_is_accepted(client, content_type):
    response = post(client, SELECT, hook_request(genotypes=[genotype("CYP2C19", "*2/*2")]), content_type)
    assert response.status_code == 200 and response.json()["cards"]


def test_hook_answers_are_never_cached_and_every_answer_is_nosniff(client):
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    private = [
        post(client, SELECT, body),
        post(client, FEEDBACK, FEEDBACK_BODY),
        post(client, SELECT, {"hook": "x"}),  # 400
        post(client, SELECT, body, "text/plain"),  # 415
        post(client, "/cds-services/nope", body),  # 404
    ]
    for response in private:
        assert response.headers["cache-control"] == "no-store", response.status_code
        assert response.headers["x-content-type-options"] == "nosniff"
    for path in ("/cds-services", "/healthz", "/readyz", "/metrics", "/status/rules", "/openapi.json", "/nowhere"):
        assert client.get(path).headers["x-content-type-options"] == "nosniff", path


def test_a_401_carries_the_headers_too(auth_client):
    response = post(auth_client, SELECT, hook_request())
    assert response.status_code == 401
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["cache-control"] == "no-store"


def test_slash_redirects_are_relative_never_built_from_the_host_header(client):
    response = client.get("/healthz/?probe=1", headers={"Host": "evil.test"}, follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/healthz?probe=1"
    assert client.get("/healthz/").json() == {"status": "alive"}  # still followed to the page
    reports = client.get("/reports", headers={"Host": "evil.test"}, follow_redirects=False)
    assert reports.status_code == 307 and reports.headers["location"] == "/reports/"
    for path in ("//evil.test/", "//evil.test", "/nowhere/"):
        assert client.get(path, follow_redirects=False).status_code == 404, path


# --- suggestions: only fields known to be valid are carried over from the draft -------------


def created(card) -> list[dict]:
    return [a["resource"] for s in card["suggestions"] for a in s["actions"] if a["type"] == "create"]


def test_a_suggestion_carries_only_known_valid_fields_of_the_draft(client):
    order = medication_request()
    order.update(
        {
            "intent": "plan",
            "priority": "urgent",
            "encounter": {"reference": "Encounter/e1", "extension": [{"url": "x", "valueString": "junk"}]},
            "category": [{"coding": [{"system": "s", "code": "inpatient", "userSelected": "not-a-boolean"}]}],
            "reasonCode": [{"text": "ACS", "unknownField": {"nested": True}}],
            "dosageInstruction": [{"text": "from the draft, must not be copied"}],
            "note": "not even an R4 array",
            "contained": [{"resourceType": "Binary", "id": "b", "data": "AAAA"}],
        }
    )
    body = hook_request(orders=[order], genotypes=[genotype("CYP2C19", "*2/*2")])
    response = post(client, SELECT, copy.deepcopy(body))
    [card] = response.json()["cards"]
    for resource in created(card):
        assert resource["intent"] == "plan" and resource["priority"] == "urgent"
        assert resource["encounter"] == {"reference": "Encounter/e1"}
        assert resource["category"] == [{"coding": [{"system": "s", "code": "inpatient"}]}]
        assert resource["reasonCode"] == [{"text": "ACS"}]
        assert "contained" not in resource and "from the draft" not in orjson.dumps(resource).decode()
        assert isinstance(resource["note"], list) and isinstance(resource["dosageInstruction"], list)


def test_a_draft_whose_category_is_neither_an_r4_array_nor_one_concept_gets_400_not_an_invalid_create(client):
    order = {**medication_request(), "category": "inpatient"}
    response = post(client, SELECT, hook_request(orders=[order], genotypes=[genotype("CYP2C19", "*2/*2")]))
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"].startswith("context.draftOrders.entry.0.resource.category")
