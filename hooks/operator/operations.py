"""Endpoints for operators and their tooling: ``/healthz``, ``/readyz`` and ``/metrics``.

They are outside ``/cds-services`` and need no credentials: probes and scrapers call them, and
they reveal no patient data (versions, counts, times) and no absolute file paths (names are
relative to the directories the operator configured). With an admin port (``pgx-loop serve
--admin-port``), the operator endpoints answer only there (``OperatorPort``).

Ready means the service can answer hook calls correctly: a rule library with rules is served
and the event log can be written. A failed reload is reported but does not make the service
unready: the last good rules keep serving, and every replica reads the same rule files, so
failing readiness would take the whole service down for one bad edit.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from engine.runtime.cycle_status import read_status
from hooks.answering.eventlog import EventLog
from hooks.http.observability import note_reason
from hooks.metrics import exposition
from hooks.protocol.outcomes import operation_outcome
from hooks.security.auth_middleware import is_protected
from hooks.settings import Settings

JSON = "application/json"
ALIVE = orjson.dumps({"status": "alive"})


def event_log_problem(events: EventLog, var_dir: Path) -> str | None:
    """Why events could not be written now, or None: the segment must still be there and the directory writable."""
    if not events.path.exists():
        return f"the event log segment {shown(events.path, var_dir)} is gone"
    probe = events.path.with_name(f".ready-{os.getpid()}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.unlink(probe)
    except OSError as exc:
        directory = shown(events.path.parent, var_dir)
        return f"the event log directory {directory} is not writable: {exc.strerror or 'error'}"
    return None


def shown(path: Path, *bases: Path) -> str:
    """``path`` as an operator endpoint may show it: relative to the first configured directory holding it,
    else its name alone (the layout of the host's file system is not for unauthenticated callers)."""
    for base in bases:
        try:
            return str(path.relative_to(base)) if path != base else base.name
        except ValueError:
            continue
    return path.name


async def readiness(state: Any, settings: Settings) -> tuple[bool, dict[str, Any]]:
    """Whether the service is ready, and what it serves (with the reasons when it is not)."""
    if not hasattr(state, "rules"):
        return False, {"status": "not ready", "reasons": ["starting"]}
    reasons = []
    rules, strengths = state.rules.status, state.strengths.status
    served = len(state.hooks.library.rules)
    if served == 0:
        reasons.append("no rules loaded from the rules directory")
    problem = await asyncio.to_thread(event_log_problem, state.events, settings.var_dir)
    if problem:
        reasons.append(problem)
    analytics = read_status(settings.analytics_status_path)
    body: dict[str, Any] = {
        "status": "not ready" if reasons else "ready",
        "rules": {"version": rules.version, "count": served, "last_reload_failed": bool(rules.last_error)},
        "strengths": {"version": strengths.version, "last_reload_failed": bool(strengths.last_error)},
        "event_log": "not writable" if problem else "writable",
        # Information only: the service serves the last published strengths whatever the last cycle did.
        "analytics": analytics.model_dump(mode="json", include={"cycle_id", "status", "finished", "last_success"})
        if analytics
        else None,
    }
    if reasons:
        body["reasons"] = reasons
    return not reasons, body


def operations_router(settings: Settings) -> APIRouter:
    """The three endpoints, for the service configured by ``settings``."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> Response:
        return Response(ALIVE, media_type=JSON)

    @router.get(
        "/readyz",
        summary="Readiness: rules loaded and event log writable (503 with the reasons if not)",
        responses={503: {"description": "Not ready; the body's reasons say why"}},
    )
    async def readyz(request: Request) -> Response:
        ready, body = await readiness(request.app.state, settings)
        return Response(orjson.dumps(body), 200 if ready else 503, media_type=JSON)

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(exposition(settings.analytics_status_path), media_type=CONTENT_TYPE_LATEST)

    return router


PROBES = ("/healthz", "/readyz")


class OperatorPort:
    """With ``admin_port`` set, the operator endpoints answer only on that port (404 on the service's port).

    The service's port keeps ``/cds-services`` (for the EHR) and the probes (for its load balancer).
    The port is the local socket's (``scope["server"]``), so a Host header cannot move a request.
    """

    def __init__(self, app: Any, admin_port: int) -> None:
        self.app = app
        self.admin_port = admin_port

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._answers_here(scope):
            note_reason(scope, "operator_endpoint_on_service_port")
            await operation_outcome(404, "not-found", "not served on this port")(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _answers_here(self, scope: dict[str, Any]) -> bool:
        server = scope.get("server")
        if server is not None and server[1] == self.admin_port:
            return True
        return is_protected(scope["path"]) or scope["path"] in PROBES
