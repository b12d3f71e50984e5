"""The hook call, dispatched from the application's entrance straight to its route.

A FastAPI request crosses about a dozen ASGI layers before its endpoint. For the hook call, which is
nearly all of the traffic, several of them do nothing: FastAPI's telemetry (off), its application
body limit (unset), the exit stack that closes uploaded files (there are none), the router's search,
the route's two wrappers, and the exception layer's wrapper of ``send``.

``DirectDispatch`` recognises a POST to one of a route's exact paths (``/cds-services/pgx-order-select``)
and sends it through the layers that do act on it. Each comes from the application's own
configuration, so there is one source of truth:

- Starlette's ``ServerErrorMiddleware``, with the handler FastAPI gives it (the last safety net);
- the application's middleware (``app.user_middleware``), the same classes with the same options in
  the same order: request id, logs and metrics, security headers, CORS and the JWT check;
- the application's exception handlers (the 400, 404, 413 and 415 OperationOutcomes and the rest),
  looked up as Starlette's ``ExceptionMiddleware`` looks them up;
- the route's endpoint, with the scope the router gives it (``route``, ``endpoint``, ``path_params``).

Everything else goes to FastAPI unchanged: other paths and methods, lifespan, and requests with a
``root_path``. ``tests/test_direct_dispatch.py`` compares the answers of both paths.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, ExceptionHandler, Receive, Scope, Send

from hooks.http.plain_route import PlainRoute

log = logging.getLogger(__name__)

Targets = dict[str, tuple[PlainRoute, dict[str, str]]]  # exact path -> (route, its path parameters)


class DirectDispatch(FastAPI):
    """FastAPI, with POSTs to the paths given to ``dispatch_directly`` taken straight to their route."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct_paths: Targets = {}
        self._direct_stack: ASGIApp | None = None

    def dispatch_directly(self, route: PlainRoute, parameter: str, values: Iterable[str]) -> None:
        """Take POSTs to ``route`` with its path ``parameter`` set to one of ``values`` straight to it.

        Only where the router would choose ``route`` too: that is checked at the first request, once
        every route is in place.
        """
        for value in values:
            path = route.path_format.replace("{" + parameter + "}", value)
            self._direct_paths[path] = (route, {parameter: value})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self._direct_stack is None:
                self._start()
            if scope["method"] == "POST" and scope["path"] in self._direct_paths and not scope.get("root_path"):
                scope["app"] = self  # what Starlette's entrance does: request.app
                await self._direct_stack(scope, receive, send)  # type: ignore[misc]
                return
        await super().__call__(scope, receive, send)

    def _start(self) -> None:
        """Build both stacks at the first request, once every route, middleware and handler is in place.

        Starlette builds its own at its first request too, and from then on refuses new middleware.
        """
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        self._direct_stack = self._build_direct_stack()

    def _build_direct_stack(self) -> ASGIApp:
        """FastAPI's ``build_middleware_stack``, less the layers that do nothing for these paths."""
        self._keep_routed_paths()
        error_handler = None
        handlers = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        app: ASGIApp = _RouteCall(self.router, self._direct_paths, handlers)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return ServerErrorMiddleware(app, handler=error_handler, debug=self.debug)

    def _keep_routed_paths(self) -> None:
        """Leave to the router any path it would not give to the route (none, unless the routes changed)."""
        for path, (route, _) in list(self._direct_paths.items()):
            probe = {"type": "http", "method": "POST", "path": path, "root_path": ""}
            first = next((r for r in self.router.routes if r.matches(probe)[0] == Match.FULL), None)
            if first is not route or self.root_path:
                log.warning("POST %s goes through the router: another route, or a root path, takes it", path)
                del self._direct_paths[path]


class _RouteCall:
    """The router's, the route's and ``ExceptionMiddleware``'s work, for a path and method known to be the route's."""

    def __init__(self, router: Any, targets: Targets, handlers: Mapping[Any, ExceptionHandler]) -> None:
        self.router = router
        self.targets = targets
        self.by_status = {key: value for key, value in handlers.items() if isinstance(key, int)}
        self.by_class = {key: value for key, value in handlers.items() if not isinstance(key, int)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Not set: "starlette.exception_handlers" and "fastapi_middleware_astack", for Starlette's own route
        # wrapper and uploaded files' closing; a PlainRoute uses neither.
        route, parameters = self.targets[scope["path"]]
        if "router" not in scope:
            scope["router"] = self.router
        scope["endpoint"] = route.endpoint
        scope["path_params"] = dict(parameters)
        scope["route"] = route
        request = Request(scope, receive, send)
        response: Response | None
        try:
            response = await route.call_endpoint(request)
        except Exception as exc:
            response = await self._handle(request, exc)
            if response is None:
                return
        # Not guarded: once the answer has started, Starlette turns a handled exception into a RuntimeError,
        # here it stays itself; both reach the server, as the answer is on its way either way.
        await response(scope, receive, send)

    async def _handle(self, request: Request, exc: Exception) -> Response | None:
        """The application's handler's answer to ``exc``, found as Starlette finds it; ``exc`` again if none."""
        handler = self.by_status.get(exc.status_code) if isinstance(exc, HTTPException) else None
        if handler is None:
            handler = next((self.by_class[kind] for kind in type(exc).__mro__ if kind in self.by_class), None)
        if handler is None:
            raise exc
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
            return await handler(request, exc)
        return await run_in_threadpool(handler, request, exc)
