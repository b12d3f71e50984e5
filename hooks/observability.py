"""Per-request observability: the request id (for every log line) and hook latency (for /metrics).

A pure ASGI middleware, so a request costs a header scan, a context-variable set and, for hook
and feedback calls, one histogram observation.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from prometheus_client.metrics import Histogram

from engine.logs import request_id
from hooks.discovery import SERVICES
from hooks.metrics import HOOK_LATENCY
from hooks.outcomes import operation_outcome

HEADER = b"x-request-id"
# An incoming id is kept only if it is short and plain, so a client cannot forge log structure through it.
SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
PREFIX = "/cds-services/"
INTERNAL_ERROR = "internal error; the service log has the details under this request's X-Request-ID"
log = logging.getLogger(__name__)

Scope = dict[str, Any]


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


class RequestObservability:
    """Sets the request id (taken from ``X-Request-ID`` or made up, echoed in the response) and times hook calls."""

    def __init__(self, app: Any):
        self.app = app
        self._latency: dict[tuple[str, str, int], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current = incoming_id(scope) or os.urandom(16).hex()  # random, like a uuid4, at a quarter of the cost
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
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        labels = hook_labels(scope["path"])
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status != 500 or responded:
                raise  # the answer is on its way: nothing better can be sent
            # Answered here rather than by Starlette's outermost handler, so that the 500 carries the
            # request id the log line below carries too (the formatter redacts tokens in the traceback).
            log.exception("unhandled error answering %s", scope["path"])
            await operation_outcome(500, "exception", INTERNAL_ERROR)(scope, receive, send_with_id)
        finally:
            if labels is not None:
                self._histogram(*labels, status).observe(time.perf_counter() - started)

    def _histogram(self, service: str, endpoint: str, status: int) -> Histogram:
        key = (service, endpoint, status)
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = HOOK_LATENCY.labels(service, endpoint, str(status))
        return child
