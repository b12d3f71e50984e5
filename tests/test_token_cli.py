"""`pgx-loop keygen` and `pgx-loop token`: the README's worked example of authentication, run as written."""

from __future__ import annotations

import json
import stat

import jwt
import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

from hooks.app import create_app
from hooks.settings import Settings
from pgx_loop.cli import main as cli
from tests.auth_app import assert_unauthorized
from tests.conftest import RULES
from tests.fhirdata import example

BASE = "https://cds.hospital.example"
ISS = "https://ehr.hospital.example"


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output.strip()


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_a_key_made_by_keygen_and_tokens_minted_by_token_are_accepted(tmp_path, library, alg):
    run("keygen", "--kid", "ehr-2026", "--alg", alg, "--out", str(tmp_path / "keys"))
    private = tmp_path / "keys" / "ehr-2026.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    published = json.loads((tmp_path / "keys" / "ehr-2026.jwks.json").read_text())
    assert [key["kid"] for key in published["keys"]] == ["ehr-2026"]
    assert "d" not in published["keys"][0]  # the public half only

    issuers = tmp_path / "issuers.yaml"
    issuers.write_text(yaml.safe_dump([{"iss": ISS, "jwks_file": "keys/ehr-2026.jwks.json"}]))
    settings = Settings(
        rules_dir=RULES, var_dir=tmp_path / "var", auth="jwt", trusted_issuers=issuers, public_base_url=BASE
    )
    with TestClient(create_app(settings, library)) as client:

        def mint(path: str) -> dict[str, str]:
            token = run("token", "--iss", ISS, "--key", str(private), "--kid", "ehr-2026", "--aud", BASE + path)
            return {"Authorization": f"Bearer {token}"}

        assert client.get("/cds-services", headers=mint("/cds-services")).status_code == 200
        select = "/cds-services/pgx-order-select"
        headers = mint(select)
        response = client.post(select, json=example("order-select-poor-metabolizer.json"), headers=headers)
        assert response.json()["cards"][0]["indicator"] == "critical"
        assert_unauthorized(client.post(select, json=example("order-select-poor-metabolizer.json"), headers=headers))
        feedback = f"{select}/feedback"
        response = client.post(feedback, json=example("feedback-overridden.json"), headers=mint(feedback))
        assert response.status_code == 200


def test_token_carries_the_required_claims_and_the_asked_jku(tmp_path):
    run("keygen", "--kid", "k1", "--out", str(tmp_path))
    token = run("token", "--iss", ISS, "--key", str(tmp_path / "k1.pem"), "--kid", "k1", "--aud", BASE,
                "--lifetime", "120", "--jku", "https://sandbox.example/jwks.json")  # fmt: skip
    header, claims = jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "ES384", "typ": "JWT", "kid": "k1", "jku": "https://sandbox.example/jwks.json"}
    assert claims["iss"] == ISS and claims["aud"] == BASE and claims["exp"] - claims["iat"] == 120
    assert len(claims["jti"]) == 36
    again = run("token", "--iss", ISS, "--key", str(tmp_path / "k1.pem"), "--kid", "k1", "--aud", BASE)
    assert jwt.decode(again, options={"verify_signature": False})["jti"] != claims["jti"]


def test_token_refuses_an_algorithm_the_key_cannot_sign(tmp_path):
    run("keygen", "--kid", "k1", "--out", str(tmp_path))
    result = CliRunner().invoke(
        cli, ["token", "--iss", ISS, "--key", str(tmp_path / "k1.pem"), "--kid", "k1", "--aud", BASE, "--alg", "RS384"]
    )
    assert result.exit_code == 2 and "cannot sign RS384" in result.output
    public = tmp_path / "k1.jwks.json"
    result = CliRunner().invoke(cli, ["token", "--iss", ISS, "--key", str(public), "--kid", "k1", "--aud", BASE])
    assert result.exit_code == 2 and "not an unencrypted PEM private key" in result.output
