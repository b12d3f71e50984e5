"""The FastAPI application: discovery, the two order hooks, and feedback.

Errors come back as FHIR OperationOutcomes (what CDS Hooks 3.0 asks for, harmless in 2.0):
400 for malformed input with the reason, 404 for an unknown service, 412 when the patient's
results are neither in prefetch nor obtainable, 503 when the event log cannot be written.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from engine.decision.card_models import CdsResponse
from engine.rulebook.library import Library, load_library
from engine.runtime.identifiers import Identifiers, load_or_create_key
from hooks.answering.eventlog import EventLog, EventLogError
from hooks.answering.feedback import FeedbackReceipt, FeedbackRecorder
from hooks.answering.service import HookHandler
from hooks.fhir.prefetch import FhirFetcher, PrefetchUnavailable
from hooks.http.direct import DirectDispatch
from hooks.http.headers import relative_slash_redirects
from hooks.http.observability import RequestObservability, note_reasons
from hooks.http.plain_route import PlainRoute
from hooks.operator.operations import OperatorPort, operations_router
from hooks.operator.reload import ProductsWatcher, RulesWatcher, StrengthsWatcher
from hooks.operator.reports import reports_router
from hooks.protocol.discovery import SERVICES, Discovery, Service
from hooks.protocol.fhir_servers import FhirServerConfigError, FhirServerPolicy, parse_list
from hooks.protocol.limits import PARSER_DEPTH, Limits, TooComplex, TooLarge, request_bundles
from hooks.protocol.outcomes import JSON, BadRequest, documented, operation_outcome, validation_reasons
from hooks.protocol.requests import FeedbackRequest, HookRequest
from hooks.security.auth import JwtVerifier, build_verifier
from hooks.security.auth_middleware import secure
from hooks.settings import Settings

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
USUAL_JSON = frozenset({JSON, f"{JSON}; charset=utf-8", f"{JSON}; charset=UTF-8", f"{JSON};charset=UTF-8"})
DISCOVERY = orjson.dumps({"services": [service.model_dump() for service in SERVICES.values()]})


def _reasons(exc: RequestValidationError) -> list[str]:
    reasons = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        reasons.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return reasons


class UnknownService(LookupError):
    pass


class UnsupportedMediaType(Exception):
    """A POST body not declared as JSON (-> 415): a browser's cross-site "simple" POST cannot declare it."""

    def __init__(self, reason: str = "the body must be sent as Content-Type: application/json") -> None:
        super().__init__(reason)
        self.reason = reason


def _require_json(request: Request) -> None:
    """``application/json``, optionally with ``charset=utf-8``; else UnsupportedMediaType."""
    content_type = request.headers.get("content-type", "")
    if content_type in USUAL_JSON:
        return  # what EHRs send, known without parsing it
    media_type, *parameters = (part.strip().lower() for part in content_type.split(";"))
    charsets = {value.strip('"') for name, _, value in (p.partition("=") for p in parameters) if name == "charset"}
    if media_type != JSON or not charsets <= {"utf-8"}:
        raise UnsupportedMediaType


def _service(service_id: str) -> Service:
    service = SERVICES.get(service_id)
    if service is None:
        raise UnknownService(service_id)
    return service


async def _parse(request: Request, model: type[ModelT]) -> ModelT:
    """Validate the JSON body, within the size and shape limits.

    orjson, because parsing the body is most of a request's cost.
    """
    _require_json(request)
    limits: Limits = request.app.state.limits
    body = await limits.read_body(request.headers.get("content-length"), request.receive)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        encoding = request.headers.get("content-encoding")
        if encoding is not None and encoding.strip().lower() not in ("", "identity"):
            # Asked only of a body that is not JSON (a compressed one cannot be): the usual call pays nothing.
            refused = "the body must be sent uncompressed: Content-Encoding is not supported"
            raise UnsupportedMediaType(refused) from None
        if str(exc).startswith("depth limit exceeded"):
            raise BadRequest(f"the JSON is nested more than {PARSER_DEPTH} levels deep") from None
        raise BadRequest("the body is not valid JSON") from None
    try:
        # Depth where the service walks or echoes the request: a hook call's context, a whole feedback call.
        limits.check_depth(data.get("context") if model is HookRequest and isinstance(data, dict) else data)
        limits.check_bundles(request_bundles(data))
    except TooComplex as exc:
        raise BadRequest(str(exc)) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(*validation_reasons(exc)) from None


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {JSON: {"schema": ref}}}}


BAD_REQUEST = {
    "description": "The request is malformed; each issue names the field and what is wrong with it",
    "content": {JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}},
}


def _openapi_with_bodies(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the request models, which the routes parse themselves."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (HookRequest, FeedbackRequest):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        # FastAPI documents its default 422; this service answers validation errors with 400.
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            if operation["responses"].pop("422", None) is not None:
                operation["responses"].setdefault("400", BAD_REQUEST)
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema


def fhir_server_policy(settings: Settings, verifier: JwtVerifier | None) -> FhirServerPolicy:
    """The FHIR servers requests may name: per trusted issuer, or PGX_LOOP_FHIR_SERVERS with auth off."""
    if verifier is not None:
        if settings.fhir_server_list:
            log.warning("PGX_LOOP_FHIR_SERVERS is ignored with authentication on: each issuer lists its fhir_servers")
        return FhirServerPolicy({iss: issuer.fhir_servers for iss, issuer in verifier.issuers.items()})
    try:
        return FhirServerPolicy({None: parse_list(settings.fhir_server_list, "PGX_LOOP_FHIR_SERVERS")})
    except ValueError as exc:
        raise FhirServerConfigError(str(exc)) from None


@contextmanager
def _serving_gc() -> Iterator[None]:
    """Tune the cyclic garbage collector for a long-running request loop.

    Measured with bench/hooks_throughput.py: under load, default thresholds ran a full collection
    over the whole start-up heap about twice a second, ~50 ms each (p99 latency 80 ms, ~15% of
    CPU). Freezing the start-up heap and collecting young objects less often removed that.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _route_first(app: FastAPI, path: str) -> PlainRoute:
    """Try ``path``'s route before the others: the router tests routes in order, and the hook call is
    nearly all the traffic. Safe because no other route's path matches a ``/cds-services/{id}`` path."""
    routes = app.router.routes
    routes.insert(0, routes.pop(next(i for i, route in enumerate(routes) if getattr(route, "path", None) == path)))
    first = routes[0]
    assert isinstance(first, PlainRoute)
    return first


def create_app(settings: Settings | None = None, library: Library | None = None) -> FastAPI:
    """The service, configured by ``settings`` (default: the environment).

    ``library`` is the rule library to start with, when the caller has already loaded
    ``settings.rules_dir``; otherwise it is loaded at startup.
    """
    settings = settings or Settings()
    preloaded = library
    verifier = build_verifier(settings) if settings.auth == "jwt" else None  # AuthConfigError: refuse to start
    fhir_servers = fhir_server_policy(settings, verifier)  # FhirServerConfigError: refuse to start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        library = preloaded or load_library(settings.rules_dir)
        identifiers = Identifiers(load_or_create_key(settings.key_path))
        events = EventLog(settings.events_path, sync=settings.event_sync)
        log.info("serving %d rules (library %s); event log %s", len(library.rules), library.version, events.path)
        async with httpx.AsyncClient(follow_redirects=False) as client:
            if verifier is not None:
                verifier.client = client  # jku fetches share the service's connection pool
            fetcher = FhirFetcher(
                client,
                app.state.limits,
                timeout=settings.fhir_timeout,
                max_pages=settings.fhir_max_pages,
                max_bytes=settings.fhir_max_bytes,
            )
            hooks = HookHandler(library, identifiers, events, fetcher, fhir_servers)
            app.state.hooks = hooks
            app.state.feedback = FeedbackRecorder(identifiers, events, lambda: hooks.library)
            app.state.events = events
            app.state.rules = RulesWatcher(settings.rules_dir, library, hooks.use, settings.rules_poll_seconds)
            app.state.strengths = StrengthsWatcher(
                settings.strengths_path, hooks.use_strengths, settings.rules_poll_seconds
            )
            app.state.strengths.load_now()
            app.state.products = ProductsWatcher(
                settings.products_path, hooks.use_products, settings.rules_poll_seconds
            )
            app.state.products.load_now()
            watchers = (app.state.rules, app.state.strengths, app.state.products)
            for watcher in watchers:
                watcher.start()
            with _serving_gc():
                yield
            for watcher in watchers:
                await watcher.stop()
        await events.close()
        if verifier is not None:
            verifier.replay.close()  # the replay store's connections (a later start opens new ones)

    app = DirectDispatch(
        title="pgx-loop CDS Hooks service",
        version="0.1.0",
        summary="Pharmacogenomic clinical decision support (CDS Hooks 2.0)",
        lifespan=lifespan,
        # FastAPI's OpenTelemetry bridge: unused here (Prometheus metrics, JSON logs), yet it checks three
        # providers on every request, and its logs would carry exception messages the service keeps out of logs.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.limits = Limits(settings.max_body_bytes, settings.max_json_depth, settings.max_bundle_entries)

    @app.exception_handler(UnknownService)
    async def unknown_service(request: Request, exc: UnknownService) -> Response:
        return operation_outcome(404, "not-found", "no such CDS service")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return operation_outcome(400, "invalid", *_reasons(exc))

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return operation_outcome(400, "invalid", *exc.reasons)

    @app.exception_handler(UnsupportedMediaType)
    async def unsupported_media_type(request: Request, exc: UnsupportedMediaType) -> Response:
        return operation_outcome(415, "not-supported", exc.reason)

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, exc: TooLarge) -> Response:
        return operation_outcome(413, "too-costly", str(exc))

    @app.exception_handler(PrefetchUnavailable)
    async def precondition_failed(request: Request, exc: PrefetchUnavailable) -> Response:
        return operation_outcome(412, "incomplete", str(exc))

    @app.exception_handler(EventLogError)
    async def log_unavailable(request: Request, exc: EventLogError) -> Response:
        log.error("%s", exc)
        return operation_outcome(503, "transient", "the service cannot record events right now; try again")

    @app.get("/status/rules", summary="The rule library being served, and the last reload problem")
    async def rules_status(request: Request) -> dict[str, Any]:
        return request.app.state.rules.status.as_json()

    @app.get("/status/strengths", summary="The tiers published by the learning loop, and the last reload problem")
    async def strengths_status(request: Request) -> dict[str, Any]:
        return request.app.state.strengths.status.as_json()

    @app.get(
        "/status/products",
        summary="The RxNorm product index built from the OMOP vocabulary, and the last reload problem",
    )
    async def products_status(request: Request) -> dict[str, Any]:
        return request.app.state.products.status.as_json()

    @app.get("/cds-services", summary="CDS Hooks discovery", responses={200: {"model": Discovery}, **documented()})
    async def discovery() -> Response:
        return Response(DISCOVERY, media_type=JSON)

    async def call_service(service_id: str, request: Request) -> Response:
        service = _service(service_id)
        claims = request.scope.get("state", {}).get("jwt_claims")  # not request.state: no exception when absent
        issuer = claims["iss"] if claims else None
        # The parsed request is handed over, not kept: it is freed before the response waits for the disk.
        content = await request.app.state.hooks.handle(service, await _parse(request, HookRequest), issuer)
        return Response(content, media_type=JSON)

    app.router.add_api_route(
        "/cds-services/{service_id}",
        call_service,
        methods=["POST"],
        summary="Call a CDS service",
        openapi_extra=_json_body(HookRequest),
        responses={200: {"model": CdsResponse}, **documented(400, 404, 412, 413, 415, 503)},
        route_class_override=PlainRoute,  # the hot path: no per-call parameter resolution
    )
    hook_route = _route_first(app, "/cds-services/{service_id}")
    app.dispatch_directly(hook_route, "service_id", SERVICES)  # the hook calls skip the framework's idle layers

    @app.post(
        "/cds-services/{service_id}/feedback",
        summary="Feedback on cards",
        openapi_extra=_json_body(FeedbackRequest),
        response_model=FeedbackReceipt,
        responses=documented(400, 404, 413, 415, 503),
    )
    async def feedback(service_id: str, request: Request) -> FeedbackReceipt:
        service = _service(service_id)
        body = await _parse(request, FeedbackRequest)
        return await request.app.state.feedback.record(service, body)

    app.include_router(reports_router(settings))  # operator pages, outside the CDS endpoints
    secure(app, settings, verifier)
    app.openapi = lambda: _openapi_with_bodies(app)  # type: ignore[method-assign]

    # Operations: open endpoints outside /cds-services; request ids, latency and security headers for
    # every request (added last, so it is the outermost middleware and also sees requests others turn away,
    # and every answer, 401s and 500s too, carries the headers).
    app.include_router(operations_router(settings))
    if settings.admin_port is not None:
        app.add_middleware(OperatorPort, admin_port=settings.admin_port)
    app.add_middleware(RequestObservability, access_log=settings.access_log)
    relative_slash_redirects(app)
    note_reasons(app.exception_handlers)  # after the last handler: each error answer's log line names its reason
    return app
