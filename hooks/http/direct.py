"""The hook call, dispatched from the application's entrance straight to its route.

A FastAPI request crosses about a dozen ASGI layers before its endpoint; for the hook call, nearly
all of the traffic, most of them do nothing: FastAPI's telemetry (off), its application body limit
(unset), the exit stack that closes uploaded files (there are none), the router's search, and two
route wrappers. ``DirectDispatch`` recognises a POST to one of a route's exact paths
(``/cds-services/pgx-order-select``) and sends it through what does act on it, built from the
application's own configuration so that there is one source of truth:

- Starlette's ``ServerErrorMiddleware``, with the handler FastAPI would give it (the safety net);
- the application's middleware (``app.user_middleware``: request id, logs and metrics, security
  headers, CORS, the JWT check), the same classes with the same options, in the same order;
- Starlette's ``ExceptionMiddleware`` with the application's exception handlers (the 400, 404,
  413, 415... OperationOutcomes), as FastAPI builds it;
- the route itself, with the scope the router would have given it (``route``, ``endpoint``,
  ``path_params``, ``router``).

Everything else (other paths and methods, lifespan, a ``root_path``) goes to FastAPI unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from hooks.http.plain_route import PlainRoute

log = logging.getLogger(__name__)


class DirectDispatch(FastAPI):
    """FastAPI, with POSTs to the paths given to ``dispatch_directly`` taken straight to their route."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct_paths: dict[str, tuple[PlainRoute, dict[str, str]]] = {}
        self._direct_stack: ASGIApp | None = None

    def dispatch_directly(self, route: PlainRoute, parameter: str, values: Iterable[str]) -> None:
        """Take POSTs to ``route`` with ``parameter`` set to one of ``values`` straight to it.

        Only where the router would choose ``route`` too: checked when the first request comes,
        once every route is in place.
        """
        for value in values:
            path = route.path_format.replace("{" + parameter + "}", value)
            self._direct_paths[path] = (route, {parameter: value})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self._direct_paths
            and not scope.get("root_path")
        ):
            scope["app"] = self  # as Starlette's entrance does: request.app
            if self._direct_stack is None:
                self._direct_stack = self._build_direct_stack()
            await self._direct_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _build_direct_stack(self) -> ASGIApp:
        """The layers FastAPI's ``build_middleware_stack`` puts around the router, less those that do nothing here."""
        self._keep_routed_paths()
        error_handler = None
        handlers = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        app: ASGIApp = ExceptionMiddleware(_DirectRoute(self.router, self._direct_paths), handlers, self.debug)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return ServerErrorMiddleware(app, handler=error_handler, debug=self.debug)

    def _keep_routed_paths(self) -> None:
        """Drop any path the router would not give to its route (none, unless the routes changed)."""
        for path, (route, _) in list(self._direct_paths.items()):
            probe = {"type": "http", "method": "POST", "path": path, "root_path": ""}
            first = next((r for r in self.router.routes if r.matches(probe)[0] == Match.FULL), None)
            if first is not route or self.root_path:
                log.warning("%s is dispatched through the router: another route or a root path takes it", path)
                del self._direct_paths[path]


class _DirectRoute:
    """What the router and the route's ``handle`` do for a path known to be the route's and a method it allows."""

    def __init__(self, router: Any, paths: dict[str, tuple[PlainRoute, dict[str, str]]]) -> None:
        self.router = router
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route, parameters = self.paths[scope["path"]]
        scope.setdefault("router", self.router)
        scope["endpoint"] = route.endpoint
        scope["path_params"] = dict(parameters)
        scope["route"] = route
        await route.app(scope, receive, send)
