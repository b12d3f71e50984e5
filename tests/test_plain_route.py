"""The hook endpoint's PlainRoute: documented as before, called without FastAPI's parameter machinery."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.testclient import TestClient

from hooks.app import create_app
from hooks.http.plain_route import PlainRoute
from hooks.settings import Settings


def test_the_hook_route_is_plain_and_documents_its_path_parameter():
    app = create_app(Settings(auth="off"))
    route = next(r for r in app.routes if getattr(r, "path", None) == "/cds-services/{service_id}")
    assert isinstance(route, PlainRoute)
    operation = app.openapi()["paths"]["/cds-services/{service_id}"]["post"]
    assert [p["name"] for p in operation["parameters"]] == ["service_id"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/HookRequest")


def test_path_parameters_arrive_and_exception_handlers_still_answer():
    app = FastAPI()

    class Refused(Exception):
        pass

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return Response(b"refused", status_code=418)

    async def echo(name: str, request: Request) -> Response:
        if name == "no":
            raise Refused
        return Response(f"{name} {request.method}".encode())

    app.router.add_api_route("/x/{name}", echo, methods=["POST"], route_class_override=PlainRoute)
    client = TestClient(app)
    assert client.post("/x/abc").text == "abc POST"
    assert client.post("/x/no").status_code == 418
    assert client.get("/x/abc").status_code == 405


def test_an_endpoint_wanting_resolved_parameters_is_refused():
    app = FastAPI()

    async def wants_query(request: Request, limit: int = 3) -> Response:
        return Response(b"")

    with pytest.raises(TypeError, match="only the request and path parameters"):
        app.router.add_api_route("/q", wants_query, methods=["GET"], route_class_override=PlainRoute)
