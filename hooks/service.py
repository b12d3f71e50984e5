"""Answering a hook call: request -> orders and results -> engine -> cards -> event log.

Card identity: a card's uuid is derived from (patient, order, rule and its version, phenotype,
tier). The same order seen at order-select and again at order-sign therefore yields the very
same card, uuid included, and CDS clients replace rather than repeat it; the event log keeps
both showings (different hook instances), which analytics counts once per card uuid.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from engine.cards import CardContext
from engine.identifiers import Identifiers
from engine.library import Library
from engine.matching import Match
from engine.strengths import EMPTY, Snapshot
from hooks.discovery import Service
from hooks.eventlog import EventLog
from hooks.fhir_pgx import ResultReader
from hooks.metrics import CARDS, STRENGTHS_VERSION
from hooks.orders import OrderError, orders_to_check
from hooks.patient_facts import patient_facts
from hooks.prefetch import FhirFetcher, PrefetchInvalid, pgx_resources
from hooks.requests import HookRequest, OrderSelectContext, OrderSignContext

CONTEXTS = {"order-select": OrderSelectContext, "order-sign": OrderSignContext}
EMPTY_RESPONSE = b'{"cards":[]}'


class BadRequest(ValueError):
    """A request the service cannot act on; its message goes back in the 400."""

    def __init__(self, *reasons: str):
        self.reasons = list(reasons)
        super().__init__("; ".join(reasons))


def validation_reasons(error: ValidationError, prefix: str = "") -> list[str]:
    """Field path and message of each problem; never the offending value."""
    reasons = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        message = item["msg"].removeprefix("Value error, ")
        reasons.append(f"{where}: {message}" if where else message)
    return reasons


class HookHandler:
    """Evaluates hook requests against the current library."""

    def __init__(self, library: Library, identifiers: Identifiers, events: EventLog, fetcher: FhirFetcher):
        self.use(library)
        self.use_strengths(EMPTY)
        self._ids = identifiers
        self._events = events
        self._fetcher = fetcher

    def use(self, library: Library) -> None:
        """Serve ``library`` from the next request on (one assignment: a request sees one library)."""
        self._current = (library, ResultReader(library.genes, library.rules_by_code))

    def use_strengths(self, snapshot: Snapshot) -> None:
        """Apply ``snapshot``'s tiers from the next request on (clamped to each rule's bounds by the engine)."""
        self._strengths = (snapshot.version, snapshot.table())
        STRENGTHS_VERSION.set(snapshot.version)

    @property
    def library(self) -> Library:
        return self._current[0]

    async def handle(self, service: Service, request: HookRequest) -> bytes:
        """The JSON body of the response to one hook call."""
        if request.hook != service.hook:
            raise BadRequest(f"hook: this service answers {service.hook!r}, not {request.hook!r}")
        context = _parse_context(service.hook, request.context)
        _check_patient(request, context.patientId)
        library, reader = self._current
        strengths_version, strengths = self._strengths
        try:
            orders = orders_to_check(context)
        except OrderError as exc:
            raise BadRequest(str(exc)) from None
        if not any(library.watches(order) for order in orders):
            return EMPTY_RESPONSE  # no rule concerns these drugs: no need for results at all
        try:
            resources = await pgx_resources(request, context.patientId, self._fetcher)
        except PrefetchInvalid as exc:
            raise BadRequest(str(exc)) from None
        facts = patient_facts(request.prefetch, orders)
        results = library.interpret(reader.read(resources, context.patientId), facts.sex)
        matches = [match for match in library.match(orders, results, facts, strengths) if match.shows_card]
        if not matches:
            return EMPTY_RESPONSE
        card_context = CardContext(context.patientId, context.userId, self._ids.stable_uuid)
        cards = [library.card(match, card_context) for match in matches]
        # Shadow rules are evaluated and logged like any other, but their cards are not returned.
        events = self._card_events(service, request, context.patientId, matches, cards, library, strengths_version)
        await self._events.append(events)
        shown = [card for match, card in zip(matches, cards, strict=True) if match.rule.status == "active"]
        for match in matches:
            if match.rule.status == "active":
                CARDS.labels(match.rule.id, match.tier).inc()
        return orjson.dumps({"cards": shown}) if shown else EMPTY_RESPONSE

    def _card_events(
        self,
        service: Service,
        request: HookRequest,
        patient_id: str,
        matches: list[Match],
        cards: list[dict[str, Any]],
        library: Library,
        strengths_version: int,
    ) -> list[dict[str, Any]]:
        """One event per card (shown or shadow): what analytics needs, patient and order pseudonymised."""
        shared = {
            "type": "card",
            "time": datetime.now(UTC).isoformat(),
            "service": service.id,
            "hook": service.hook,
            "hook_instance": request.hookInstance,
            "patient": self._ids.pseudonym(patient_id),
            "library_version": library.version,
            "strengths_version": strengths_version,
        }
        return [
            {
                "event_id": str(uuid.uuid4()),
                **shared,
                "order": self._ids.pseudonym(match.order.reference),
                "card": card["uuid"],
                "rule": match.rule.id,
                "rule_version": match.rule.version,
                "gene": "+".join(match.rule.gene_list),
                "phenotype": match.key,
                "kind": match.kind,
                "population": match.population.id,
                "drug": match.drug.name,
                "tier": match.tier,
                "tier_source": match.tier_source,
                "shadow": match.rule.status == "shadow",
            }
            for match, card in zip(matches, cards, strict=True)
        ]


def _parse_context(hook: str, context: dict[str, Any]) -> OrderSignContext:
    try:
        return CONTEXTS[hook].model_validate(context)
    except ValidationError as exc:
        raise BadRequest(*validation_reasons(exc, "context")) from None


def _check_patient(request: HookRequest, patient_id: str) -> None:
    patient = (request.prefetch or {}).get("patient")
    if isinstance(patient, dict) and patient.get("resourceType") == "Patient" and patient.get("id") != patient_id:
        raise BadRequest("prefetch.patient is not the patient in context.patientId")
