"""CORS for browser-based CDS clients such as the CDS Hooks sandbox (checklist S3)."""

from __future__ import annotations

import pytest

from tests.auth_app import BASE, EHR, SERVICE, assert_unauthorized, bearer, call
from tests.jwt_keys import claims

SANDBOX_ORIGIN = "https://sandbox.cds-hooks.org"


def preflight(client, origin: str = SANDBOX_ORIGIN, path: str = SERVICE, **extra: str):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
            **extra,
        },
    )


def allowed_headers(response) -> set[str]:
    return {name.strip().lower() for name in response.headers["access-control-allow-headers"].split(",")}


@pytest.mark.parametrize("path", ["/cds-services", SERVICE, f"{SERVICE}/feedback"])
def test_a_sandbox_preflight_needs_no_jwt_and_names_authorization(auth_client, path):
    response = preflight(auth_client, path=path)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert {"authorization", "content-type"} <= allowed_headers(response)
    assert "POST" in response.headers["access-control-allow-methods"]


def test_a_public_page_may_call_the_service_on_a_private_network(auth_client, make_client):
    """Chromium's Private Network Access: the sandbox (a public https page) calling a service on localhost
    or the hospital's network first asks with ``Access-Control-Request-Private-Network``; without the
    answer's ``Access-Control-Allow-Private-Network`` the browser never sends the hook call."""
    asked = {"Access-Control-Request-Private-Network": "true"}
    response = preflight(auth_client, **asked)
    assert response.status_code == 200 and response.headers["access-control-allow-private-network"] == "true"
    refused = preflight(make_client(cors_origins=SANDBOX_ORIGIN), origin="https://evil.example.com", **asked)
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers  # the browser stops


def test_the_browser_can_read_both_a_card_and_a_401(auth_client, keys):
    token = keys["ES384"].sign(claims(EHR, BASE + SERVICE))
    response = call(auth_client, SERVICE, token, Origin=SANDBOX_ORIGIN)
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"
    refused = auth_client.get("/cds-services", headers={**bearer(token), "Origin": SANDBOX_ORIGIN})
    assert_unauthorized(refused)
    assert refused.headers["access-control-allow-origin"] == "*"


def test_configured_origins_refuse_the_others(make_client):
    client = make_client(cors_origins=f"{SANDBOX_ORIGIN}, https://ehr.example.org")
    allowed = preflight(client)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == SANDBOX_ORIGIN
    assert {"authorization", "content-type"} <= allowed_headers(allowed)
    refused = preflight(client, origin="https://evil.example.com")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_a_server_to_server_call_gets_no_cors_headers_and_empty_origins_turn_cors_off(auth_client, make_client, keys):
    token = keys["ES384"].sign(claims(EHR, BASE + SERVICE))
    plain = call(auth_client, SERVICE, token)  # an EHR's server sends no Origin
    assert plain.status_code == 200 and not any(name.startswith("access-control-") for name in plain.headers)
    off = make_client(cors_origins="")
    assert preflight(off).status_code == 405  # no CORS layer: OPTIONS is not a route
    answered = call(off, SERVICE, keys["ES384"].sign(claims(EHR, BASE + SERVICE)), Origin=SANDBOX_ORIGIN)
    assert answered.status_code == 200 and "access-control-allow-origin" not in answered.headers
