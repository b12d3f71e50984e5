"""The hook POST's direct dispatch answers exactly as FastAPI's whole stack does.

Every request goes once through the application (``app``, whose entrance takes hook POSTs straight
to their route) and once through FastAPI's own entrance (``FastAPI.__call__``: every middleware
layer, the router), over HTTP with httpx's ASGI transport; status, every header, body and the
answer's log line must be the same. The router counts what reaches it, to show which path was taken.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi import Request as HttpRequest
from fastapi.responses import Response
from fastapi.testclient import TestClient

from hooks.app import create_app
from hooks.http.direct import DirectDispatch
from hooks.http.plain_route import PlainRoute
from hooks.settings import Settings
from tests.auth_app import BASE, EHR, SERVICE, bearer, write_issuers
from tests.conftest import RULES
from tests.fhirdata import example
from tests.jwt_keys import claims

ALLOWED = "https://sandbox.cds-hooks.org"
BODY = example("order-select-poor-metabolizer.json")
Answer = tuple[int, list[tuple[str, str]], bytes, dict[str, Any]]
Request = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


class Entrances:
    """The same application (same state, same lifespan) entered directly and through FastAPI's stack."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.routed: list[str] = []  # paths that reached the router
        self.dispatched: list[str] = []  # paths that took the direct path
        router_stack, build_direct_stack = app.router.middleware_stack, app._build_direct_stack

        def counting(seen: list[str], stack: Any) -> Any:
            async def count(scope: dict[str, Any], receive: Any, send: Any) -> None:
                seen.append(scope["path"])
                await stack(scope, receive, send)

            return count

        app.router.middleware_stack = counting(self.routed, router_stack)
        app._build_direct_stack = lambda: counting(self.dispatched, build_direct_stack())  # type: ignore[method-assign]

    def run(self, caplog: pytest.LogCaptureFixture, *requests: Request) -> list[tuple[Answer, Answer]]:
        """Each of ``requests`` sent through each entrance: [(direct answer, stack answer), ...]."""

        async def send_all() -> list[tuple[Answer, Answer]]:
            async with (
                self.app.router.lifespan_context(self.app),
                client(self.app) as direct,
                client(partial(FastAPI.__call__, self.app)) as stack,
            ):
                return [(await answer(caplog, r, direct), await answer(caplog, r, stack)) for r in requests]

        return asyncio.run(send_all())


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def answer(caplog: pytest.LogCaptureFixture, request: Request, client: httpx.AsyncClient) -> Answer:
    caplog.clear()
    response = await request(client)
    [line] = [record.fields for record in caplog.records if record.name == "hooks.access"]
    logged = {key: value for key, value in line.items() if key != "duration_ms"}
    return response.status_code, sorted(response.headers.multi_items()), response.content, logged


@pytest.fixture
def entrances(tmp_path, library) -> Entrances:
    settings = Settings(
        rules_dir=RULES,
        var_dir=tmp_path / "var",
        auth="off",
        cors_origins=ALLOWED,
        max_body_bytes=64_000,
        access_log=True,  # a line for every answer, successes too, to compare
    )
    return Entrances(create_app(settings, library))


@pytest.fixture(autouse=True)
def access_lines(caplog) -> None:
    caplog.set_level(logging.INFO, logger="hooks.access")


def post(path: str = SERVICE, *, body: Any = BODY, content: bytes | None = None, **headers: str) -> Request:
    headers = {"X-Request-ID": "same-id", "Content-Type": "application/json", **headers}
    return lambda client: client.post(path, content=orjson.dumps(body) if content is None else content, headers=headers)


def oversized() -> bytes:
    body = copy.deepcopy(BODY)
    body["context"]["padding"] = "x" * 70_000
    return orjson.dumps(body)


CASES = {
    "good call": (post(), 200),
    "no id: one made up, echoed": (post(**{"X-Request-ID": ""}), 200),
    "400 not JSON": (post(content=b"{not json"), 400),
    "400 invalid request": (post(body={"hook": "order-select"}), 400),
    "415 not declared JSON": (post(**{"Content-Type": "text/plain"}), 415),
    "413 too large": (post(content=oversized()), 413),
    "CORS, allowed origin": (post(Origin=ALLOWED), 200),
    "CORS, another origin": (post(Origin="https://elsewhere.example"), 200),
}
FALLS_THROUGH = {  # (request, status, whether the router answers it)
    "404 unknown service": (post("/cds-services/no-such-service"), 404, True),
    "feedback": (post(SERVICE + "/feedback", body=example("feedback-overridden.json")), 200, True),
    "GET on the hook path": (lambda client: client.get(SERVICE, headers={"X-Request-ID": "same-id"}), 405, True),
    "CORS preflight": (
        lambda client: client.options(
            SERVICE,
            headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST", "X-Request-ID": "same-id"},
        ),
        200,
        False,  # the CORS middleware answers it
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_hook_post_skips_the_router_and_answers_as_the_whole_stack_does(entrances, caplog, case):
    request, status = CASES[case]
    [(direct, stack)] = entrances.run(caplog, request)
    assert entrances.dispatched == [SERVICE] and entrances.routed == [SERVICE]  # the stack's call was routed
    if case.startswith("no id"):  # made-up ids differ: compare all but that header
        direct, stack = ((a[0], [h for h in a[1] if h[0] != "x-request-id"], *a[2:]) for a in (direct, stack))
    assert direct[0] == status
    assert direct == stack


@pytest.mark.parametrize("case", FALLS_THROUGH)
def test_everything_else_goes_through_the_router(entrances, caplog, case):
    request, status, routed = FALLS_THROUGH[case]
    [(direct, stack)] = entrances.run(caplog, request)
    assert entrances.dispatched == [] and len(entrances.routed) == (2 if routed else 0)
    if case == "feedback":  # the second is recorded as a duplicate of the first
        assert (direct[2], stack[2]) == (b'{"recorded":1,"duplicates":0}', b'{"recorded":0,"duplicates":1}')
        direct, stack = direct[:2] + direct[3:], stack[:2] + stack[3:]
    assert direct[0] == status and direct == stack


def test_an_unexpected_error_answers_the_same_500_with_nothing_leaked(entrances, caplog):
    async def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("a bug about pt-7781")

    async def faulty(client: httpx.AsyncClient) -> httpx.Response:
        entrances.app.state.hooks.handle = broken  # fault injection: a bug in the hook handler
        return await post()(client)

    [(direct, stack)] = entrances.run(caplog, faulty)
    assert entrances.dispatched == [SERVICE] and direct[0] == 500 and direct == stack
    assert b"pt-7781" not in direct[2] and b"a bug" not in direct[2]
    assert direct[3]["reason"] == "internal_error"


@pytest.fixture
def auth_entrances(tmp_path, keys, jwks_server, library) -> Entrances:
    settings = Settings(
        rules_dir=RULES,
        var_dir=tmp_path / "var",
        auth="jwt",
        trusted_issuers=write_issuers(tmp_path, keys, jwks_server),
        public_base_url=BASE,
        cors_origins=ALLOWED,
        access_log=True,
    )
    return Entrances(create_app(settings, library))


def test_with_authentication_a_401_and_a_signed_call_answer_as_the_whole_stack_does(auth_entrances, caplog, keys):
    tokens = iter(keys["ES384"].sign(claims(EHR, BASE + SERVICE)) for _ in range(2))  # each token is used once
    refused = [post(**headers) for headers in ({}, bearer("not.a.token"), {**bearer("x.y.z"), "Origin": ALLOWED})]
    answers = auth_entrances.run(caplog, *refused, lambda client: post(**bearer(next(tokens)))(client))
    for direct, stack in answers[:-1]:
        assert direct[0] == 401 and direct == stack
    direct, stack = answers[-1]
    assert direct[0] == 200 and direct == stack
    assert auth_entrances.dispatched == [SERVICE] * 4 and auth_entrances.routed == [SERVICE]  # 401s: never routed


def test_a_path_another_route_takes_first_stays_with_the_router():
    app = DirectDispatch()

    async def first(request: HttpRequest) -> Response:
        return Response(b"first")

    async def second(name: str, request: HttpRequest) -> Response:
        return Response(name.encode())

    app.router.add_api_route("/x/shadowed", first, methods=["POST"])
    app.router.add_api_route("/x/{name}", second, methods=["POST"], route_class_override=PlainRoute)
    app.dispatch_directly(app.router.routes[-1], "name", ["shadowed", "open"])
    client = TestClient(app)
    assert client.post("/x/shadowed").text == "first"  # the router's choice, not the direct route's
    assert client.post("/x/open").text == "open"
    assert list(app._direct_paths) == ["/x/open"]
