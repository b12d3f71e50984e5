"""CORS for browser-based CDS clients, at no cost to the EHR's own server-to-server calls."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send


class BrowserCors(CORSMiddleware):
    """Starlette's CORS, stepped over for requests without an ``Origin`` header.

    Only browsers send ``Origin``; an EHR calling from its server does not, and CORS has nothing
    to add to those answers, so they skip building the header map and wrapping ``send``.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, _ in scope["headers"]:
                if name == b"origin":
                    break
            else:
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
