"""An APIRoute for endpoints that read the request themselves: documented by FastAPI, called directly.

FastAPI resolves an endpoint's parameters on every call (path, query, body, dependencies) and
runs it inside two exit stacks for dependencies with ``yield``. The hook endpoint takes only the
Request and its path parameters, so that machinery cost it about a tenth of its CPU for nothing.
This route still gives FastAPI the endpoint's signature (the OpenAPI document is unchanged) but
calls it directly, with the path parameters as keywords. Its exceptions reach the application's
handlers through Starlette's ExceptionMiddleware, which holds the same handlers that a route's own
wrapper would look up again (a second wrapper of ``send`` and three closures per call, for nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class PlainRoute(APIRoute):
    """Calls ``endpoint(request=request, **path_params)``; it must return a Response and use no dependencies."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.dependant.dependencies or self.dependant.query_params or self.dependant.body_params:
            raise TypeError(f"{path}: a PlainRoute endpoint takes only the request and path parameters")
        if getattr(self, "max_body_size", None) is not None:
            raise TypeError(f"{path}: a PlainRoute endpoint enforces its own body limit")
        self.app = self._asgi

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.call_endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    async def call_endpoint(self, request: Request) -> Response:
        """The endpoint's response to ``request``, whose scope has the path parameters."""
        return await self.endpoint(request=request, **request.path_params)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.call_endpoint
