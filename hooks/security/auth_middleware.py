"""The ASGI layer in front of the CDS endpoints: a verified bearer JWT, or 401 with an empty body.

Only paths under ``/cds-services`` are protected (discovery, services, feedback); operator
endpoints (/status, health, metrics) stay open. Preflight OPTIONS requests pass through so that
CORS (outside this layer) can answer them.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from hooks.http.cors import BrowserCors
from hooks.http.observability import hook_labels, note_reason, route_template
from hooks.security.auth import AuthError, JwtVerifier
from hooks.security.replay import ReplayStoreUnavailable
from hooks.settings import Settings

log = logging.getLogger(__name__)

PROTECTED_PREFIX = "/cds-services"
UNAUTHORIZED_HEADERS = [(b"www-authenticate", b"Bearer"), (b"content-length", b"0")]
UNAVAILABLE_HEADERS = [(b"retry-after", b"1"), (b"content-length", b"0")]


def is_protected(path: str) -> bool:
    """Whether a call to ``path`` needs the EHR's JWT."""
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


class BearerAuthMiddleware:
    """Verifies the JWT on protected paths; the verified claims go to ``request.state.jwt_claims``."""

    def __init__(self, app: ASGIApp, verifier: JwtVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or not is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            header = _authorization(scope["headers"])
            claims = await self.verifier.verify(header.decode("latin-1") if header else None, scope["path"])
        except AuthError as exc:
            # The reason class, the route (never the raw path) and who claimed to sign; never the token.
            route = route_template(scope, hook_labels(scope["path"]))
            log.info("401 on %s: %s (iss=%s kid=%s)", route, exc.reason, _short(exc.iss), _short(exc.kid))
            note_reason(scope, exc.reason)
            await send({"type": "http.response.start", "status": 401, "headers": UNAUTHORIZED_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        except ReplayStoreUnavailable as exc:
            # Whether the token was used before cannot be told: never served without that check.
            log.error("503 on %s: the jti replay store did not answer (%s)", scope["path"], exc)
            note_reason(scope, "replay_store_unavailable")
            await send({"type": "http.response.start", "status": 503, "headers": UNAVAILABLE_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        scope.setdefault("state", {})["jwt_claims"] = claims
        await self.app(scope, receive, send)


def _authorization(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The one ``Authorization`` header's value; AuthError if there are two.

    RFC 9110 §11.6.2 allows one. With two, a proxy reading the last and this service the first
    would each see a different caller, so neither is used.
    """
    found = [value for name, value in headers if name == b"authorization"]
    if len(found) > 1:
        raise AuthError("several_authorization_headers")
    return found[0] if found else None


def _short(value: Any) -> str | None:
    return None if value is None else repr(str(value)[:80])


def secure(app: Starlette, settings: Settings, verifier: JwtVerifier | None) -> None:
    """JWT checks on the CDS endpoints (unless ``verifier`` is None: auth off), and CORS outside them.

    CORS is outermost so that preflights never meet the JWT check and browsers can read a 401.
    The allowed headers are named: a ``*`` would not cover ``Authorization``. With no origins
    configured there is no CORS layer.
    """
    if verifier is None:
        log.warning("AUTHENTICATION IS OFF: any client can call /cds-services (PGX_LOOP_AUTH=off)")
    else:
        app.add_middleware(BearerAuthMiddleware, verifier=verifier)
        log.info("JWT authentication on for %s/cds-services*", verifier.public_base_url)
    if not settings.cors_origin_list:
        return  # PGX_LOOP_CORS_ORIGINS empty: no browser client, no CORS layer at all
    app.add_middleware(
        BrowserCors,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        # A public page (the sandbox) calling a service on a private network: Chromium's preflight asks first.
        allow_private_network=True,
        max_age=600,
    )
