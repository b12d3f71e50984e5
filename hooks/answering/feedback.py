"""Recording clinician feedback (accepted / overridden) on cards.

Feedback is idempotent: an item's event id is derived from its content, so a repeated item is
acknowledged without being written again, and if a repeat does reach the log (another worker,
a restart), ingestion deduplicates on the same id. Free-text override comments are not stored;
they may hold patient details. Only whether there was one is kept.

An override reason is recorded as sent only if it is one the service's cards offer (system
``urn:pgx-loop:override-reason``, a code of the rules being served); anything else, which an
EHR or a caller could have filled with any text, is recorded as ``other``. Analytics narrows this
further to the reasons offered by the rule of the card the feedback names.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from engine.decision.cards import OVERRIDE_REASON_SYSTEM, offered_reason_codes
from engine.rulebook.library import Library
from engine.runtime.identifiers import Identifiers
from hooks.answering.eventlog import EventLog
from hooks.metrics import FEEDBACK
from hooks.protocol.discovery import Service
from hooks.protocol.requests import FeedbackItem, FeedbackRequest


class FeedbackReceipt(BaseModel):
    """How many feedback items were new, and how many had been received before."""

    recorded: int
    duplicates: int


REMEMBERED = 100_000  # recent feedback ids kept to recognise repeats without touching the disk
OTHER_REASON = "other"


class FeedbackRecorder:
    def __init__(self, identifiers: Identifiers, events: EventLog, library: Callable[[], Library]):
        """``library``: the rule library being served (it changes on reload)."""
        self._ids = identifiers
        self._events = events
        self._library = library
        self._offered: tuple[str, frozenset[str]] = ("", frozenset())
        self._seen: OrderedDict[str, None] = OrderedDict()

    def _offered_codes(self) -> frozenset[str]:
        """The override reason codes the served cards offer, computed once per library version."""
        library = self._library()
        if self._offered[0] != library.version:
            self._offered = (library.version, offered_reason_codes(library.rules))
        return self._offered[1]

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
            offered = reason.system == OVERRIDE_REASON_SYSTEM and reason.code in self._offered_codes()
            code = reason.code if offered else OTHER_REASON
            event["override_reason"] = {"system": OVERRIDE_REASON_SYSTEM, "code": code}
        if item.overrideReason and item.overrideReason.userComment:
            event["has_comment"] = True
        return event
