"""Headers every answer carries, and redirects that never trust the Host header.

- ``X-Content-Type-Options: nosniff`` on every response: a browser must not read an answer as
  anything but its declared type.
- ``Cache-Control: no-store`` on the CDS service calls: cards carry genotypes (PHI) and must not
  sit in a browser or proxy cache.
- The trailing-slash redirect Starlette offers builds an absolute ``Location`` from the Host
  header (``Host: evil.test`` -> ``http://evil.test/healthz``); this one sends a relative path.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")
PRIVATE_PREFIX = "/cds-services/"


class SecurityHeaders:
    """Adds the headers above to every HTTP response (outermost, so 401s and 500s get them too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [NOSNIFF, NO_STORE] if scope["path"].startswith(PRIVATE_PREFIX) else [NOSNIFF]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in dict(extra)]
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def relative_slash_redirects(app: FastAPI) -> None:
    """Redirect ``/path/`` <-> ``/path`` when only the other exists, with a relative ``Location``."""
    app.router.redirect_slashes = False

    @app.exception_handler(HTTPException)
    async def not_found(request: Request, exc: HTTPException) -> Response:
        path = request.url.path
        if exc.status_code == 404 and request.method in ("GET", "HEAD") and _redirectable(path):
            other = path[:-1] if path.endswith("/") else path + "/"
            # Only when no route took the path: a route's own 404 (no such report) stays a 404.
            if not _routed(app, request.scope) and _routed(app, {**request.scope, "path": other}):
                query = request.url.query
                return RedirectResponse(other + (f"?{query}" if query else ""), status_code=307)
        return await http_exception_handler(request, exc)


def _redirectable(path: str) -> bool:
    # "//host" in a Location is another site: never redirect such paths.
    return path not in ("", "/") and not path.startswith("//") and "\\" not in path


def _routed(app: FastAPI, scope: dict[str, Any]) -> bool:
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)
