"""Answering a hook call: request -> orders and results -> engine -> cards -> event log.

Card identity: a card's uuid is derived from (patient, order, rule and its version, phenotype,
tier). The same order seen at order-select and again at order-sign therefore yields the very
same card, uuid included, and CDS clients replace rather than repeat it; the event log keeps
both showings (different hook instances), which analytics counts once per card uuid.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from engine.decision.cards import CardContext
from engine.decision.matching import Match
from engine.decision.products import EMPTY as NO_PRODUCTS
from engine.decision.products import ProductIndex
from engine.decision.strengths import EMPTY, Snapshot
from engine.rulebook.library import Library
from engine.runtime.identifiers import Identifiers, random_uuid
from hooks.answering.eventlog import EventLog
from hooks.answering.orders import OrderError, orders_to_check
from hooks.fhir.fhir_pgx import ResultReader, Triaged
from hooks.fhir.fhir_shapes import value_problems
from hooks.fhir.patient_facts import patient_facts
from hooks.fhir.prefetch import FhirFetcher, PrefetchInvalid, pgx_resources
from hooks.metrics import CARDS, STRENGTHS_VERSION
from hooks.protocol.discovery import Service
from hooks.protocol.fhir_servers import FhirServerPolicy
from hooks.protocol.order_contexts import OrderContext, order_context
from hooks.protocol.outcomes import BadRequest, validation_reasons
from hooks.protocol.requests import HookRequest

log = logging.getLogger(__name__)
CONTEXT_PREFETCH = {"patient": ("Patient",), "conditions": ("Bundle", "Condition")}
EMPTY_RESPONSE = b'{"cards":[]}'


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__ (3x the cost)
class Answer:
    """A hook call's response body, the events to make durable before sending it, and the card counters
    to count once they are. Read only once made."""

    content: bytes
    events: list[dict[str, Any]]
    counters: list[Any]


NOTHING = Answer(EMPTY_RESPONSE, [], [])


class HookHandler:
    """Evaluates hook requests against the current library."""

    def __init__(
        self,
        library: Library,
        identifiers: Identifiers,
        events: EventLog,
        fetcher: FhirFetcher,
        fhir_servers: FhirServerPolicy,
    ):
        self._products = NO_PRODUCTS
        self._swap = threading.RLock()  # the two watchers swap from different threads
        self.use(library)
        self.use_strengths(EMPTY)
        self._ids = identifiers
        self._events = events
        self._fetcher = fetcher
        self._fhir_servers = fhir_servers
        self._card_counters: dict[tuple[str, str], Any] = {}

    def use(self, library: Library) -> None:
        """Serve ``library`` from the next request on (one assignment: a request sees one library)."""
        with self._swap:
            self._base = library
            served = library.with_products(self._products)
            self._current = (served, ResultReader(served.genes, served.rules_by_code))

    def use_products(self, index: ProductIndex) -> None:
        """Also match the products and brands of ``index`` (built from the OMOP vocabulary) from the next request on."""
        with self._swap:
            self._products = index
            self.use(self._base)

    def use_strengths(self, snapshot: Snapshot) -> None:
        """Apply ``snapshot``'s tiers from the next request on (clamped to each rule's bounds by the engine)."""
        self._strengths = (snapshot.version, snapshot.table())
        STRENGTHS_VERSION.set(snapshot.version)

    @property
    def library(self) -> Library:
        return self._current[0]

    async def handle(self, service: Service, request: HookRequest, issuer: str | None = None) -> bytes:
        """The JSON body of the response to one hook call (``issuer``: the verified JWT's ``iss``, if any).

        While the response waits for its events to be durable it holds only its bytes and events: the
        parsed request and all derived from it are freed first (callers must not keep the request
        either). Measured: with a dozen requests waiting for the disk while holding them, every
        request ran on cold memory and the event loop spent 20-30% more CPU per request.
        """
        answer = await self._answer(service, request, issuer)
        del request
        if answer.events:
            await self._events.append(answer.events)
        for counter in answer.counters:
            counter.inc()
        return answer.content

    async def _answer(self, service: Service, request: HookRequest, issuer: str | None) -> Answer:
        if request.hook != service.hook:
            raise BadRequest(f"hook: this service answers {service.hook!r}, not the hook named")
        context = _parse_context(service.hook, request.context)
        _check_context_prefetch(request, context.patientId)
        library, reader = self._current
        strengths_version, strengths = self._strengths
        try:
            orders = orders_to_check(context)
        except OrderError as exc:
            raise BadRequest(*exc.reasons) from None
        genes = library.genes_for(orders)
        if not genes:
            return NOTHING  # no rule concerns these drugs: no need for results at all
        server = self._usable_server(request, issuer)
        token = request.fhirAuthorization.access_token if request.fhirAuthorization and server else None
        triaged: Triaged = {}  # results known by their triage (ResultReader.unread)
        try:
            resources = await pgx_resources(
                request.prefetch, context.patientId, self._fetcher, server, token, reader.unread(genes, triaged)
            )
        except PrefetchInvalid as exc:
            log.warning("refused unreadable PGx prefetch: %s", exc)
            raise BadRequest(*exc.reasons) from None
        facts = patient_facts(request.prefetch, orders)
        # Only the genes of the rules these orders meet: the other results cannot change a card. The fhirServer
        # as named, contacted or not: it is the server the EHR's results, and their absolute subjects, are on.
        try:
            reported = reader.read(resources, context.patientId, genes, triaged, request.fhirServer)
        except PrefetchInvalid as exc:
            log.warning("refused unreadable PGx prefetch: %s", exc)
            raise BadRequest(*exc.reasons) from None
        results = library.interpret(reported, facts.sex)
        matches = [match for match in library.match(orders, results, facts, strengths) if match.shows_card]
        if not matches:
            return NOTHING
        card_context = CardContext(context.patientId, context.userId, self._ids.stable_uuid_of)
        cards = [library.card(match, card_context) for match in matches]
        # Shadow rules are evaluated and logged like any other, but their cards are not returned.
        events = self._card_events(service, request, context.patientId, matches, cards, library, strengths_version)
        shown, counters = [], []
        for match, card in zip(matches, cards, strict=True):
            if match.rule.status == "active":
                shown.append(card)
                counters.append(self._card_counter(match.rule.id, match.tier))
        return Answer(orjson.dumps({"cards": shown}) if shown else EMPTY_RESPONSE, events, counters)

    def _card_counter(self, rule_id: str, tier: str) -> Any:
        """The cards counter of (rule, tier), looked up once: ``labels()`` takes a lock and builds a key each time."""
        counter = self._card_counters.get((rule_id, tier))
        if counter is None:
            counter = self._card_counters[(rule_id, tier)] = CARDS.labels(rule_id, tier)
        return counter

    def _usable_server(self, request: HookRequest, issuer: str | None) -> str | None:
        """The request's fhirServer if configuration allows contacting it; otherwise as if none was given."""
        if request.fhirServer is None:
            return None
        if self._fhir_servers.allows(request.fhirServer, issuer):
            return request.fhirServer
        # Never contacted. The host only (no path, no token): what an operator needs to extend the list.
        log.warning(
            "fhirServer host %r is not on the FHIR server list of issuer %r; treated as absent",
            httpx.URL(request.fhirServer).raw_host.decode("ascii")[:100],
            issuer,
        )
        return None

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
        """One event per card (shown or shadow): what analytics needs, patient and order pseudonymised.

        One timestamp and one pseudonym per patient and per order for the whole request. Each event is one
        dict literal, built in a plain loop: merging a shared dict into each, and two comprehensions over
        the orders, cost about a microsecond more per request.
        """
        pseudonym = self._ids.pseudonym
        at = iso_time(time.time_ns())
        patient = pseudonym(patient_id)
        orders: dict[str, str] = {}
        events = []
        for match, card in zip(matches, cards, strict=True):
            rule = match.rule
            reference = match.order.reference
            order = orders.get(reference)
            if order is None:
                order = orders[reference] = pseudonym(reference)
            events.append(
                {
                    "event_id": random_uuid(),
                    "type": "card",
                    "time": at,
                    "service": service.id,
                    "hook": service.hook,
                    "hook_instance": request.hookInstance,
                    "patient": patient,
                    "library_version": library.version,
                    "strengths_version": strengths_version,
                    "order": order,
                    "card": card["uuid"],
                    "rule": rule.id,
                    "rule_version": rule.version,
                    "gene": "+".join(rule.gene_list),
                    "phenotype": match.key,
                    "kind": match.kind,
                    "population": match.population.id,
                    "drug": match.drug.name,
                    "tier": match.tier,
                    "tier_source": match.tier_source,
                    "shadow": rule.status == "shadow",
                }
            )
        return events


def iso_time(ns: int) -> str:
    """``datetime.now(UTC).isoformat()`` at the time ``ns`` (``time.time_ns()``), without building a datetime per call.

    The date and time of day are formatted once per second; microseconds floored, and left out when
    zero, as ``datetime`` does.
    """
    seconds, micros = divmod(ns // 1000, 1_000_000)
    if micros:
        return f"{_second_text(seconds)}.{micros:06d}+00:00"
    return f"{_second_text(seconds)}+00:00"


@lru_cache(maxsize=2)
def _second_text(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()[:-6]  # without "+00:00"


def _parse_context(hook: str, context: dict[str, Any]) -> OrderContext:
    try:
        return order_context(hook, context)
    except ValidationError as exc:
        raise BadRequest(*validation_reasons(exc, "context")) from None


def _check_context_prefetch(request: HookRequest, patient_id: str) -> None:
    """The optional Patient and Conditions must be readable too: they choose the CPIC population.

    An OperationOutcome there (the EHR could not fetch it, CDS Hooks 2.0 §Prefetch) is no data, as
    an absent key is: these keys are never fetched, and ``patient_facts`` reads only their own types.
    """
    prefetch = request.prefetch or {}
    problems = []
    for key, kinds in CONTEXT_PREFETCH.items():
        value = prefetch.get(key)
        if value is None:
            continue
        found = value_problems(value, f"prefetch.{key}")
        if not found and value["resourceType"] == "OperationOutcome":
            log.info("prefetch.%s is an OperationOutcome: read as no data", key)
            continue
        if not found and value["resourceType"] not in kinds:
            found = [f"prefetch.{key}: must be a {' or '.join(kinds)}, an OperationOutcome, or null"]
        problems += found
    if problems:
        log.warning("refused unreadable prefetch: %s", "; ".join(problems))
        raise BadRequest(*problems)
    patient = prefetch.get("patient")
    if patient is not None and patient["resourceType"] == "Patient" and patient.get("id") != patient_id:
        raise BadRequest("prefetch.patient is not the patient in context.patientId")
