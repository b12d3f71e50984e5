"""The app with JWT authentication on, three trusted issuers and a local jku server (test_auth, test_cors)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from engine.rulebook.library import Library
from hooks.app import create_app
from hooks.settings import Settings
from tests.conftest import RULES
from tests.fhirdata import example
from tests.jwks_server import JwksServer
from tests.jwt_keys import SigningKey, jwks, new_key

BASE = "https://cds.example.org/pgx"
EHR = "https://ehr.example.org"  # keys inline
SANDBOX = "https://sandbox.example.org"  # keys at an allowlisted jku
FILED = "https://filed.example.org"  # keys in a file next to the issuers file
DISCOVERY = "/cds-services"
SERVICE = "/cds-services/pgx-order-select"
FEEDBACK = "/cds-services/pgx-order-select/feedback"
ALGS = ["ES384", "RS384", "ES256", "RS256"]


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {alg: new_key(alg) for alg in ALGS}


@pytest.fixture(scope="module")
def sandbox_key() -> SigningKey:
    return new_key("ES384", "sandbox-1")


@pytest.fixture
def jwks_server(sandbox_key) -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.documents["/jwks.json"] = jwks(sandbox_key)
        yield server


def write_issuers(directory: Path, keys: dict[str, SigningKey], jwks_server: JwksServer, suffix: str = ".yaml") -> Path:
    (directory / "filed-keys.json").write_text(json.dumps(jwks(keys["ES384"])))
    issuers = [
        {"iss": EHR, "jwks": jwks(*keys.values())},
        {"iss": SANDBOX, "jku": [f"{jwks_server.base}/jwks.json"]},
        {"iss": FILED, "jwks_file": "filed-keys.json"},
    ]
    path = directory / f"issuers{suffix}"
    path.write_text(json.dumps(issuers) if suffix == ".json" else yaml.safe_dump(issuers))
    return path


@pytest.fixture
def make_client(tmp_path, keys, jwks_server, library: Library) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(suffix: str = ".yaml", **overrides: Any) -> TestClient:
        settings = Settings(
            rules_dir=RULES,
            var_dir=tmp_path / "var",
            auth="jwt",
            trusted_issuers=write_issuers(tmp_path, keys, jwks_server, suffix),
            public_base_url=BASE,
            **{"jwks_min_refresh_seconds": 0, **overrides},
        )
        client = TestClient(create_app(settings, library))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def auth_client(make_client) -> TestClient:
    return make_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(client: TestClient, path: str, token: str | None, **headers: str):
    headers = {**(bearer(token) if token is not None else {}), **headers}
    if path == DISCOVERY:
        return client.get(path, headers=headers)
    body = example("feedback-overridden.json" if path.endswith("/feedback") else "order-select-poor-metabolizer.json")
    return client.post(path, json=body, headers=headers)


def assert_unauthorized(response) -> None:
    assert response.status_code == 401
    assert response.content == b""
    assert response.headers["www-authenticate"] == "Bearer"
