"""Headers every answer carries, and redirects that never trust the Host header.

- ``X-Content-Type-Options: nosniff`` on every response: a browser must not read an answer as
  anything but its declared type.
- ``Cache-Control: no-store`` on the CDS service calls: cards carry genotypes (PHI) and must not
  sit in a browser or proxy cache.
- The trailing-slash redirect Starlette offers builds an absolute ``Location`` from the Host
  header (``Host: evil.test`` -> ``http://evil.test/healthz``); this one sends a relative path.
- The router's own 404 and 405 (and a route's 404) answer with an OperationOutcome, like every
  other error; a 405 keeps its ``Allow`` header.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from hooks.protocol.outcomes import operation_outcome

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")
PRIVATE_PREFIX = "/cds-services/"
PUBLIC = ((NOSNIFF,), frozenset({NOSNIFF[0]}))  # (headers added, names they replace)
PRIVATE = ((NOSNIFF, NO_STORE), frozenset({NOSNIFF[0], NO_STORE[0]}))


def with_security_headers(path: str, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A response's ``headers`` with the headers above (replacing any the app set) for a request to ``path``.

    Applied by the outermost middleware we add (``hooks.http.observability.RequestObservability``), in
    the same wrapper of ``send`` that adds the request id, so that every answer carries them, 401s and
    500s too, without another middleware layer on every request.
    """
    extra, replaced = PRIVATE if path.startswith(PRIVATE_PREFIX) else PUBLIC
    kept = [header for header in headers if header[0].lower() not in replaced]  # a new list: the caller may extend it
    kept += extra
    return kept


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
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        answer = operation_outcome(exc.status_code, code, str(exc.detail))
        answer.headers.update(exc.headers or {})
        return answer


def _redirectable(path: str) -> bool:
    # "//host" in a Location is another site: never redirect such paths.
    return path not in ("", "/") and not path.startswith("//") and "\\" not in path


def _routed(app: FastAPI, scope: dict[str, Any]) -> bool:
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)
