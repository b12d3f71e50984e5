"""Recording clinician feedback (accepted / overridden) on cards.

Feedback is idempotent: an item's event id is derived from its content, so a repeated item is
acknowledged without being written again, and if a repeat does reach the log (another worker,
a restart), ingestion deduplicates on the same id. Free-text override comments are not stored;
they may hold patient details. Only whether there was one is kept.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from engine.identifiers import Identifiers
from hooks.discovery import Service
from hooks.eventlog import EventLog
from hooks.metrics import FEEDBACK
from hooks.requests import FeedbackItem, FeedbackRequest


class FeedbackReceipt(BaseModel):
    """How many feedback items were new, and how many had been received before."""

    recorded: int
    duplicates: int


REMEMBERED = 100_000  # recent feedback ids kept to recognise repeats without touching the disk


class FeedbackRecorder:
    def __init__(self, identifiers: Identifiers, events: EventLog):
        self._ids = identifiers
        self._events = events
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def record(self, service: Service, request: FeedbackRequest) -> FeedbackReceipt:
        """Log each new feedback item durably; returns how many were new and how many repeats."""
        now = datetime.now(UTC).isoformat()
        fresh: list[dict[str, Any]] = []
        for item in request.feedback:
            event = self._event(service, item, now)
            if event["event_id"] in self._seen or any(e["event_id"] == event["event_id"] for e in fresh):
                continue
            fresh.append(event)
        for event in fresh:
            self._remember(event["event_id"])
        try:
            await self._events.append(fresh)
        except Exception:
            for event in fresh:
                self._seen.pop(event["event_id"], None)
            raise
        for event in fresh:
            FEEDBACK.labels(service.id, event["outcome"]).inc()
        return FeedbackReceipt(recorded=len(fresh), duplicates=len(request.feedback) - len(fresh))

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        if len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)

    def _event(self, service: Service, item: FeedbackItem, now: str) -> dict[str, Any]:
        accepted = sorted(suggestion.id for suggestion in item.acceptedSuggestions or [])
        reason = item.overrideReason.reason if item.overrideReason else None
        outcome_time = item.outcomeTimestamp.astimezone(UTC).isoformat()
        event_id = self._ids.stable_uuid(
            "feedback",
            service.id,
            item.card,
            item.outcome,
            outcome_time,
            *accepted,
            f"{reason.system}|{reason.code}" if reason else "",
        )
        event: dict[str, Any] = {
            "event_id": event_id,
            "type": "feedback",
            "time": now,
            "service": service.id,
            "card": item.card,
            "outcome": item.outcome,
            "outcome_time": outcome_time,
        }
        if accepted:
            event["accepted_suggestions"] = accepted
        if reason:
            event["override_reason"] = {"system": reason.system, "code": reason.code}
        if item.overrideReason and item.overrideReason.userComment:
            event["has_comment"] = True
        return event
