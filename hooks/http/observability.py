"""Per-request observability: the request id (for every log line), hook latency (for /metrics), and
a log line for every answer that is not a success (plus, optionally, one for every request). Being the
outermost middleware we add, it also puts the security headers of ``hooks.http.headers`` on every answer.

A pure ASGI middleware, so a request costs a header scan, a context-variable set and, for hook
and feedback calls, one histogram observation.

The answer line names the route template (``/cds-services/{service_id}``), never the raw path,
and a short reason class, never a value from the request: the code that refuses a request puts
its class in ``scope["state"]["reason"]`` (``request.state.reason``), or the exception it raises
carries a ``reason_class`` (see ``note_reasons``). Without one, the class is the status's name.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from prometheus_client.metrics import Histogram
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from engine.runtime.identifiers import random_hex
from engine.runtime.logs import request_id
from hooks.http.headers import with_security_headers
from hooks.metrics import HOOK_LATENCY
from hooks.protocol.discovery import SERVICES
from hooks.protocol.outcomes import operation_outcome

HEADER = b"x-request-id"
# An incoming id is kept only if it is short and plain, so a client cannot forge log structure through it.
SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
PREFIX = "/cds-services/"
INTERNAL_ERROR = "internal error; the service log has the details under this request's X-Request-ID"
log = logging.getLogger(__name__)
access = logging.getLogger("hooks.access")

Scope = dict[str, Any]
Handler = Callable[[Request, Exception], Awaitable[Response]]


def note_reason(scope: Scope, reason: str) -> None:
    """Name why this request is refused, for its answer's log line (a short class, never a value)."""
    scope.setdefault("state", {})["reason"] = reason


def reason_class(exc: Exception) -> str:
    """An exception's ``reason_class``, else its class name in snake case (``UnknownService``: ``unknown_service``)."""
    explicit = getattr(exc, "reason_class", None)
    if isinstance(explicit, str):
        return explicit
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def note_reasons(handlers: dict[Any, Handler]) -> None:
    """Make every exception handler note its exception's reason class before it answers.

    Applied to the app's handlers once they are all registered, so that handlers added anywhere
    (and FastAPI's own, for 404 and 405) are covered without each remembering to do it.
    """

    def noting(handler: Handler) -> Handler:
        async def handle(request: Request, exc: Exception) -> Response:
            status = getattr(exc, "status_code", None)  # Starlette's HTTPException: 404, 405
            reason = _status_reason(status) if isinstance(status, int) else reason_class(exc)
            note_reason(request.scope, reason)
            return await handler(request, exc)

        return handle

    for kind, handler in list(handlers.items()):
        handlers[kind] = noting(handler)


def _status_reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return f"status_{status}"


def route_template(scope: Scope, labels: tuple[str, str] | None = None) -> str:
    """The matched route's path template, so that ids in the path never reach the log.

    A request turned away before routing (a 401) gets its CDS template from ``labels``; any other
    unrouted path is ``unmatched``.
    """
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    if labels is not None:
        return PREFIX + ("{service_id}" if labels[1] == "hook" else "{service_id}/feedback")
    return PREFIX.rstrip("/") if scope["path"] == PREFIX.rstrip("/") else "unmatched"


def incoming_id(scope: Scope) -> str | None:
    """The request's ``X-Request-ID``, if it has a sane one."""
    for name, value in scope["headers"]:
        if name == HEADER:
            return value.decode("ascii") if SANE_ID.fullmatch(value) else None
    return None


def hook_labels(path: str) -> tuple[str, str] | None:
    """(service, endpoint) of a hook or feedback call; None for other paths. Unknown services share one label."""
    if not path.startswith(PREFIX):
        return None
    service, _, rest = path[len(PREFIX) :].partition("/")
    if rest not in ("", "feedback"):
        return None
    return (service if service in SERVICES else "unknown"), (rest or "hook")


# The labels of the services' own paths (nearly every request), found in one lookup.
KNOWN_LABELS = {path: hook_labels(path) for path in (PREFIX + s + end for s in SERVICES for end in ("", "/feedback"))}


class RequestObservability:
    """Sets the request id (taken from ``X-Request-ID`` or made up, echoed in the response), times hook
    calls, and logs every answer that is not a success (every answer if ``access_log``). Adds the
    security headers to every answer."""

    def __init__(self, app: Any, access_log: bool = False):
        self.app = app
        self.access_log = access_log
        self._latency: dict[tuple[str, str, int], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current = incoming_id(scope) or random_hex()  # random, like a uuid4, at a fraction of the cost
        # Not reset afterwards: each request runs in its own task, whose context copy ends with it, and the
        # server's own "exception in ASGI application" line, logged after the app returns, keeps the id.
        request_id.set(current)
        echoed = (HEADER, current.encode("ascii"))
        status = 500

        responded = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                headers = with_security_headers(scope["path"], message.get("headers", ()))
                headers.append(echoed)
                message = {**message, "headers": headers}
            await send(message)

        path = scope["path"]
        labels = KNOWN_LABELS.get(path) or hook_labels(path)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client went away (or was cut off by the read deadline) before its body arrived:
            # there is no one to answer.
            status = 499  # nginx's "client closed request", for the log line and the histogram
            note_reason(scope, "client_disconnected")
        except Exception:
            if status != 500 or responded:
                raise  # the answer is on its way: nothing better can be sent
            # Answered here rather than by Starlette's outermost handler, so that the 500 carries the
            # request id the log line below carries too (the formatter redacts tokens in the traceback).
            log.exception("unhandled error answering %s", route_template(scope))
            note_reason(scope, "internal_error")
            await operation_outcome(500, "exception", INTERNAL_ERROR)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            if labels is not None:
                self._histogram(*labels, status).observe(elapsed)
            if not 200 <= status < 300 or self.access_log:
                self._log_answer(scope, status, elapsed, labels)

    def _log_answer(self, scope: Scope, status: int, elapsed: float, labels: tuple[str, str] | None) -> None:
        """One line per answer: method, route template, status, reason class, service, duration; never a value."""
        level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
        reason = scope.get("state", {}).get("reason") or ("" if status < 300 else _status_reason(status))
        fields = {
            "method": scope["method"],
            "route": route_template(scope, labels),
            "status": status,
            "reason": reason or None,
            "service": labels[0] if labels else None,
            "duration_ms": round(elapsed * 1000, 2),
        }
        text = f"{fields['method']} {fields['route']} {status}" + (f" ({reason})" if reason else "")
        access.log(level, "%s in %.1f ms", text, elapsed * 1000, extra={"fields": fields})

    def _histogram(self, service: str, endpoint: str, status: int) -> Histogram:
        key = (service, endpoint, status)
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = HOOK_LATENCY.labels(service, endpoint, str(status))
        return child
