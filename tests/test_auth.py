"""JWT authentication of CDS calls (checklist S1, S2): real keys, real signatures, real HTTP through the app."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import ECAlgorithm

from hooks.app import create_app
from hooks.security.auth import AuthConfigError, load_issuers
from hooks.settings import Settings
from pgx_loop.cli import main as cli
from tests.auth_app import (
    ALGS,
    BASE,
    DISCOVERY,
    EHR,
    FEEDBACK,
    FILED,
    SANDBOX,
    SERVICE,
    assert_unauthorized,
    bearer,
    call,
    write_issuers,
)
from tests.conftest import RULES
from tests.fhirdata import example
from tests.jwt_keys import SigningKey, claims, jwks, new_key
from tests.listener import ConnectionRecorder
from tests.live_server import LiveServer


@pytest.mark.parametrize("alg", ALGS)
def test_each_recommended_algorithm_is_accepted_on_every_cds_endpoint(auth_client, keys, alg):
    for path in (DISCOVERY, SERVICE, FEEDBACK):
        response = call(auth_client, path, keys[alg].sign(claims(EHR, BASE + path)))
        assert response.status_code == 200, (path, response.text)
    assert call(auth_client, SERVICE, keys[alg].sign(claims(EHR, BASE + SERVICE))).json()["cards"][0]["indicator"] == (
        "critical"
    )


def test_extra_claims_and_an_audience_list_are_tolerated(auth_client, keys):
    now = int(time.time())
    token = keys["RS384"].sign(
        claims(EHR, [BASE + SERVICE, "https://other"], sub="client-42", nbf=now - 300, tenant="north")
    )
    assert call(auth_client, SERVICE, token).status_code == 200


def test_keys_from_a_file_next_to_the_issuers_file(make_client, keys):
    auth_client = make_client(suffix=".json")
    assert call(auth_client, DISCOVERY, keys["ES384"].sign(claims(FILED, BASE + DISCOVERY))).status_code == 200
    assert_unauthorized(call(auth_client, DISCOVERY, keys["RS384"].sign(claims(FILED, BASE + DISCOVERY))))


def hmac_token(secret: bytes, payload: dict[str, Any], kid: str) -> str:
    """An HS256 token signed by hand, as PyJWT refuses to use a PEM public key as an HMAC secret."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}.{b64(json.dumps(payload).encode())}"
    )
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def tampered_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


def tampered_payload(token: str) -> str:
    head, payload, signature = token.split(".")
    claims_ = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims_["tenant"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims_).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def non_canonical_payload(key: SigningKey) -> str:
    """A well-signed token whose payload segment is re-spelt with stray trailing bits (same bytes, other text)."""
    for filler in ("", "x", "xx", "xxx"):
        head, payload, signature = key.sign(claims(EHR, BASE + SERVICE, filler=filler)).split(".")
        if len(payload) % 4:
            last = B64URL.index(payload[-1]) | 1  # a bit the decoder drops
            if B64URL[last] != payload[-1]:
                return f"{head}.{payload[:-1]}{B64URL[last]}.{signature}"
    raise AssertionError("no payload length with spare bits")


def standard_base64_signature(token: str) -> str:
    """The signature in standard base64 ('+', '/'), which is not base64url."""
    head, payload, signature = token.split(".")
    return f"{head}.{payload}.{signature.replace('-', '+').replace('_', '/')}"


def rsa_public_pem(key: SigningKey) -> bytes:
    return key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


BAD_TOKENS: dict[str, Callable[[dict[str, SigningKey]], str]] = {
    "alg none": lambda k: jwt.encode(claims(EHR, BASE + SERVICE), None, algorithm="none", headers={"kid": "x"}),
    "HS256": lambda k: jwt.encode(
        claims(EHR, BASE + SERVICE), "a-shared-secret-of-32-bytes-long!", algorithm="HS256", headers={"kid": "x"}
    ),
    "HS256 with the RSA public key as secret": lambda k: hmac_token(
        rsa_public_pem(k["RS384"]), claims(EHR, BASE + SERVICE), k["RS384"].kid
    ),
    "aud of another endpoint": lambda k: k["ES384"].sign(claims(EHR, BASE + FEEDBACK)),
    "aud with a trailing slash": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE + "/")),
    "aud of discovery": lambda k: k["ES384"].sign(claims(EHR, BASE + DISCOVERY)),
    "expired": lambda k: k["ES384"].sign(
        claims(EHR, BASE + SERVICE, iat=int(time.time()) - 400, exp=int(time.time()) - 90)
    ),
    "iat in the future": lambda k: k["ES384"].sign(
        claims(EHR, BASE + SERVICE, iat=int(time.time()) + 600, exp=int(time.time()) + 900)
    ),
    "lifetime over an hour": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE, lifetime=7200)),
    "missing jti": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE, jti=None)),
    "missing exp": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE, exp=None)),
    "missing aud": lambda k: k["ES384"].sign(claims(EHR, None)),
    "typ not JWT": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE), typ="at+jwt"),
    "no typ": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE), typ=None),
    "no kid": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE), kid=None),
    "unknown iss": lambda k: k["ES384"].sign(claims("https://stranger.example.org", BASE + SERVICE)),
    "unknown kid": lambda k: new_key("ES384", "not-published").sign(claims(EHR, BASE + SERVICE)),
    "untrusted key under a trusted kid": lambda k: new_key("ES384", k["ES384"].kid).sign(claims(EHR, BASE + SERVICE)),
    "alg not the key's": lambda k: jwt.encode(
        claims(EHR, BASE + SERVICE), k["ES256"].private, algorithm="ES256", headers={"kid": k["ES384"].kid}
    ),
    "tampered signature": lambda k: tampered_signature(k["RS384"].sign(claims(EHR, BASE + SERVICE))),
    "tampered payload": lambda k: tampered_payload(k["ES384"].sign(claims(EHR, BASE + SERVICE))),
    "garbage": lambda k: "not-a-jwt",
    "nbf in the future": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE, nbf=int(time.time()) + 600)),
    "aud a list without this URL": lambda k: k["ES384"].sign(claims(EHR, [BASE + FEEDBACK, "https://other"])),
    "aud a number": lambda k: k["ES384"].sign(claims(EHR, 42)),
    "aud a list holding this URL and a number": lambda k: k["ES384"].sign(claims(EHR, [BASE + SERVICE, 42])),
    "sub not a string": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE, sub=42)),
    "crit extension": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE), crit=["exp"]),
    "unencoded payload (b64 false)": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE), b64=False),
    "payload re-spelt in base64url": lambda k: non_canonical_payload(k["ES384"]),
    "signature in standard base64": lambda k: standard_base64_signature(
        next(t for t in (k["ES384"].sign(claims(EHR, BASE + SERVICE)) for _ in range(50)) if "-" in t or "_" in t)
    ),
    "padding where none can be": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE)) + "====",
    "longer than 16 KiB": lambda k: k["ES384"].sign(claims(EHR, BASE + SERVICE, padding="x" * 20_000)),
}


REASONS = {
    "alg none": "algorithm_not_allowed",
    "HS256": "algorithm_not_allowed",
    "HS256 with the RSA public key as secret": "algorithm_not_allowed",
    "aud of another endpoint": "wrong_audience",
    "aud with a trailing slash": "wrong_audience",
    "aud of discovery": "wrong_audience",
    "expired": "expired",
    "iat in the future": "not_yet_valid",
    "lifetime over an hour": "lifetime_too_long",
    "missing jti": "missing_claim",
    "missing exp": "missing_claim",
    "missing aud": "missing_claim",
    "typ not JWT": "typ_not_jwt",
    "no typ": "typ_not_jwt",
    "no kid": "missing_kid",
    "unknown iss": "unknown_issuer",
    "unknown kid": "unknown_kid",
    "untrusted key under a trusted kid": "bad_signature",
    "alg not the key's": "algorithm_key_mismatch",
    "tampered signature": "bad_signature",
    "tampered payload": "bad_signature",
    "garbage": "malformed",
    "nbf in the future": "not_yet_valid",
    "aud a list without this URL": "wrong_audience",
    "aud a number": "wrong_audience",
    "aud a list holding this URL and a number": "wrong_audience",
    "sub not a string": "invalid_token",
    "crit extension": "unsupported_header",
    "unencoded payload (b64 false)": "malformed",  # its payload is detached: no claims to read
    "payload re-spelt in base64url": "malformed",
    "signature in standard base64": "malformed",
    "padding where none can be": "malformed",
    "longer than 16 KiB": "too_long",
}


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_bad_tokens_get_401_with_an_empty_body(auth_client, keys, case, caplog):
    with caplog.at_level("INFO", logger="hooks.security.auth_middleware"):
        assert_unauthorized(call(auth_client, SERVICE, BAD_TOKENS[case](keys)))
    assert f": {REASONS[case]} (" in caplog.text


def test_a_correctly_padded_token_is_accepted_as_pyjwt_accepts_it(auth_client, keys):
    for filler in ("", "x", "xx", "xxx"):  # a payload whose base64url needs padding
        head, payload, signature = keys["ES384"].sign(claims(EHR, BASE + SERVICE, filler=filler)).split(".")
        if len(payload) % 4:
            break
    signing_input = f"{head}.{payload}{'=' * (-len(payload) % 4)}"  # signed as sent, padding and all
    signature = ECAlgorithm(ECAlgorithm.SHA384).sign(signing_input.encode(), keys["ES384"].private)
    padded = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert call(auth_client, SERVICE, padded).status_code == 200
    assert_unauthorized(call(auth_client, SERVICE, padded.replace("=.", ".")))  # the signature covers the padding


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "x.y.z"}]
)
def test_missing_or_malformed_authorization_header(auth_client, headers):
    for path in (DISCOVERY, SERVICE, FEEDBACK):
        assert_unauthorized(call(auth_client, path, None, **headers))


def test_a_replayed_jti_is_refused(auth_client, keys):
    token = keys["ES384"].sign(claims(EHR, BASE + SERVICE))
    assert call(auth_client, SERVICE, token).status_code == 200
    assert_unauthorized(call(auth_client, SERVICE, token))


def test_a_refused_token_is_not_logged_but_its_reason_is(auth_client, keys, caplog):
    token = keys["ES384"].sign(claims(EHR, BASE + FEEDBACK))
    with caplog.at_level("INFO", logger="hooks.security.auth_middleware"):
        assert_unauthorized(call(auth_client, SERVICE, token))
    assert "wrong_audience" in caplog.text and EHR in caplog.text
    assert token not in caplog.text and token.split(".")[1] not in caplog.text


def test_operator_endpoints_need_no_token(auth_client):
    assert auth_client.get("/status/rules").status_code == 200
    assert auth_client.get("/openapi.json").status_code == 200


def test_an_allowlisted_jku_is_fetched_once_and_cached(auth_client, jwks_server, sandbox_key):
    jku = f"{jwks_server.base}/jwks.json"
    for _ in range(3):
        token = sandbox_key.sign(claims(SANDBOX, BASE + SERVICE), jku=jku)
        assert call(auth_client, SERVICE, token).status_code == 200
    assert jwks_server.requests == ["/jwks.json"]
    # No jku in the header: the issuer's configured one, from the cache.
    assert call(auth_client, DISCOVERY, sandbox_key.sign(claims(SANDBOX, BASE + DISCOVERY))).status_code == 200
    assert jwks_server.requests == ["/jwks.json"]


def test_key_rotation_is_picked_up_by_refreshing_on_an_unknown_kid(auth_client, jwks_server, sandbox_key):
    jku = f"{jwks_server.base}/jwks.json"
    assert call(auth_client, SERVICE, sandbox_key.sign(claims(SANDBOX, BASE + SERVICE), jku=jku)).status_code == 200
    rotated = new_key("RS384", "sandbox-2")
    jwks_server.documents["/jwks.json"] = jwks(sandbox_key, rotated)
    assert call(auth_client, SERVICE, rotated.sign(claims(SANDBOX, BASE + SERVICE), jku=jku)).status_code == 200
    assert jwks_server.requests == ["/jwks.json", "/jwks.json"]
    # A kid still unknown after that refresh is refused (one more fetch, since refreshes are unthrottled here).
    assert_unauthorized(call(auth_client, SERVICE, new_key("ES384", "sandbox-9").sign(claims(SANDBOX, BASE + SERVICE))))
    assert len(jwks_server.requests) == 3


def test_random_kids_cannot_make_the_service_hammer_the_jwks_server(make_client, jwks_server, sandbox_key):
    auth_client = make_client(jwks_min_refresh_seconds=300)
    assert call(auth_client, SERVICE, sandbox_key.sign(claims(SANDBOX, BASE + SERVICE))).status_code == 200
    for n in range(5):
        assert_unauthorized(
            call(auth_client, SERVICE, new_key("ES384", f"random-{n}").sign(claims(SANDBOX, BASE + SERVICE)))
        )
    assert jwks_server.requests == ["/jwks.json"]


def test_a_jku_off_the_allowlist_is_never_contacted(auth_client, jwks_server, sandbox_key, keys):
    jwks_server.documents["/attacker.json"] = jwks(sandbox_key)
    for iss in (SANDBOX, EHR):  # the attacker's key is configured for neither
        token = sandbox_key.sign(claims(iss, BASE + SERVICE), jku=f"{jwks_server.base}/attacker.json")
        assert_unauthorized(call(auth_client, SERVICE, token))
    assert jwks_server.requests == []


def test_an_unreachable_jwks_gives_401(auth_client, jwks_server, sandbox_key):
    jwks_server.status = 500
    assert_unauthorized(call(auth_client, SERVICE, sandbox_key.sign(claims(SANDBOX, BASE + SERVICE))))
    assert jwks_server.requests == ["/jwks.json"]


# Configuration


def test_yaml_and_json_issuer_files_say_the_same(tmp_path, keys, jwks_server):
    yaml_issuers = load_issuers(write_issuers(tmp_path, keys, jwks_server, ".yaml"))
    json_issuers = load_issuers(write_issuers(tmp_path, keys, jwks_server, ".json"))
    assert yaml_issuers == json_issuers
    assert [issuer.iss for issuer in yaml_issuers] == [EHR, SANDBOX, FILED]
    assert json_issuers[1].jku == [f"{jwks_server.base}/jwks.json"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("- iss: [unclosed", "not valid YAML or JSON"),
        ('[{"iss": "https://a"}]', "needs jwks, jwks_file or jku"),
        ('{"iss": "https://a", "jku": "https://a/jwks"}', "expected a list"),
        ('[{"iss": "https://a", "jku": "ftp://a/jwks"}]', "not an http(s) URL"),
        ('[{"iss": "https://a", "jwks_file": "missing.json"}]', "missing.json"),
        ('[{"iss": "https://a", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}}]', "no EC or RSA"),
        ("[]", "lists no trusted issuers"),
    ],
)
def test_a_bad_issuers_file_is_refused_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "issuers.yaml"
    path.write_text(content)
    settings = Settings(
        rules_dir=RULES, var_dir=tmp_path / "var", auth="jwt", trusted_issuers=path, public_base_url=BASE
    )
    with pytest.raises(AuthConfigError) as error:
        create_app(settings)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_serve_refuses_to_start_with_auth_on_and_no_issuers(tmp_path):
    result = CliRunner().invoke(
        cli, ["serve", "--port", "1"], env={"PGX_LOOP_AUTH": "jwt", "PGX_LOOP_VAR_DIR": str(tmp_path / "var")}
    )
    assert result.exit_code == 1
    assert "PGX_LOOP_TRUSTED_ISSUERS" in result.output


def test_auth_needs_the_public_base_url(tmp_path, keys, jwks_server):
    issuers = write_issuers(tmp_path, keys, jwks_server)
    with pytest.raises(AuthConfigError, match="PGX_LOOP_PUBLIC_BASE_URL"):
        create_app(Settings(rules_dir=RULES, var_dir=tmp_path / "var", auth="jwt", trusted_issuers=issuers))


def test_a_real_server_configured_by_environment_checks_tokens(tmp_path, keys, jwks_server):
    """`pgx-loop serve --workers 2`, configured only through PGX_LOOP_* variables, called over TCP."""
    server = LiveServer(tmp_path / "var", workers=2)
    env = {
        "PGX_LOOP_AUTH": "jwt",
        "PGX_LOOP_TRUSTED_ISSUERS": str(write_issuers(tmp_path, keys, jwks_server)),
        "PGX_LOOP_PUBLIC_BASE_URL": server.base + "/",
    }
    server.env.update(env)
    with server:
        assert_unauthorized(httpx.get(f"{server.base}/cds-services", timeout=5))
        token = keys["ES384"].sign(claims(EHR, f"{server.base}{SERVICE}"))
        body = example("order-select-poor-metabolizer.json")
        answers = []
        for _ in range(12):  # a new connection each time: the replays reach both workers
            with httpx.Client(timeout=10) as client:
                answers.append(client.post(f"{server.base}{SERVICE}", json=body, headers=bearer(token)))
        assert answers[0].status_code == 200 and answers[0].json()["cards"][0]["indicator"] == "critical"
        for replayed in answers[1:]:
            assert_unauthorized(replayed)
        assert httpx.get(f"{server.base}/status/rules").status_code == 200


def test_a_token_seen_by_one_process_is_refused_by_another_on_the_same_state(make_client, keys):
    token = keys["ES384"].sign(claims(EHR, BASE + SERVICE))
    assert call(make_client(), SERVICE, token).status_code == 200
    assert_unauthorized(call(make_client(), SERVICE, token))  # another worker, or the service after a restart


def _now() -> int:
    return int(time.time())


# NumericDates that are not numbers, validly signed: each gave 500 (or worse) before they were checked.
BAD_TIMES: dict[str, dict[str, Any]] = {
    "exp as a numeric string": {"exp": str(_now() + 300)},
    "iat as a numeric string": {"iat": str(_now())},
    "both as strings": {"exp": str(_now() + 300), "iat": str(_now())},
    "nbf as a string": {"nbf": str(_now())},
    "exp true": {"exp": True},
    "iat false": {"iat": False},
    "exp a list": {"exp": [_now() + 300]},
    "iat an object": {"iat": {"value": _now()}},
    "exp a huge integer": {"exp": 10**40},
    "exp a huge float": {"exp": 1e300},
    "iat negative": {"iat": -1},
    "exp NaN": {"exp": float("nan")},
    "exp Infinity": {"exp": float("inf")},
}


@pytest.mark.parametrize("case", BAD_TIMES)
def test_time_claims_that_are_not_numbers_get_401_not_500(auth_client, keys, case, caplog):
    token = keys["ES384"].sign(claims(EHR, BASE + SERVICE, **BAD_TIMES[case]))
    with caplog.at_level("INFO", logger="hooks.security.auth_middleware"):
        assert_unauthorized(call(auth_client, SERVICE, token))
    # NaN and Infinity are not JSON at all (Python's encoder writes them anyway): malformed.
    reason = "malformed" if case in ("exp NaN", "exp Infinity") else "bad_time_claim"
    assert f": {reason} (" in caplog.text


def test_fractional_numeric_dates_are_accepted(auth_client, keys):
    now = time.time()
    token = keys["ES384"].sign(claims(EHR, BASE + SERVICE, iat=now - 0.5, exp=now + 299.5))
    assert call(auth_client, SERVICE, token).status_code == 200


# The HL7 CDS Hooks sandbox names its own jku in every token; a site configures its key instead.


def test_a_configured_kid_is_verified_with_its_key_and_the_unlisted_jku_never_contacted(make_client, keys):
    auth_client = make_client()
    with ConnectionRecorder() as listener:
        jku = f"{listener.url}/.well-known/jwks.json"
        for path in (DISCOVERY, SERVICE, FEEDBACK):
            token = keys["ES384"].sign(claims(FILED, BASE + path), jku=jku)  # FILED: keys in jwks_file
            assert call(auth_client, path, token).status_code == 200, path
        inline = keys["RS384"].sign(claims(EHR, BASE + SERVICE), jku=jku)  # EHR: keys inline
        assert call(auth_client, SERVICE, inline).status_code == 200
        assert listener.connections == 0


def test_an_unlisted_jku_with_an_unknown_kid_is_refused_without_a_connection(make_client, keys, caplog):
    auth_client = make_client()
    with ConnectionRecorder() as listener:
        stranger = new_key("ES384", "not-configured")
        token = stranger.sign(claims(FILED, BASE + SERVICE), jku=f"{listener.url}/jwks.json")
        with caplog.at_level("INFO", logger="hooks.security.auth_middleware"):
            assert_unauthorized(call(auth_client, SERVICE, token))
        # A configured kid does not make a forged signature under it pass either.
        forged = new_key("ES384", keys["ES384"].kid).sign(claims(FILED, BASE + SERVICE), jku=f"{listener.url}/j")
        assert_unauthorized(call(auth_client, SERVICE, forged))
        assert listener.connections == 0
    assert ": jku_not_allowed (" in caplog.text


def test_an_issuer_with_both_jwks_and_jwks_file_is_refused_naming_file_and_entry(tmp_path, keys):
    (tmp_path / "keys.json").write_text(json.dumps(jwks(keys["ES384"])))
    path = tmp_path / "issuers.yaml"
    both = {"iss": FILED, "jwks": jwks(keys["ES384"]), "jwks_file": "keys.json"}
    path.write_text(json.dumps([{"iss": EHR, "jwks": jwks(keys["RS384"])}, both]))
    settings = Settings(
        rules_dir=RULES, var_dir=tmp_path / "var", auth="jwt", trusted_issuers=path, public_base_url=BASE
    )
    with pytest.raises(AuthConfigError) as error:
        create_app(settings)
    message = str(error.value)
    assert message.startswith(f"{path}: 1: ")  # the file, then the entry's position in the list
    assert "both jwks and jwks_file" in message and FILED in message


def test_the_loaded_issuers_are_logged_with_their_key_ids_only(make_client, keys, caplog):
    with caplog.at_level("INFO", logger="hooks.security.auth"):
        make_client()
    lines = [record.getMessage() for record in caplog.records if record.name == "hooks.security.auth"]
    [ehr] = [line for line in lines if EHR in line]
    assert all(key.kid in ehr for key in keys.values())
    [sandbox] = [line for line in lines if SANDBOX in line]
    assert "1 allowlisted jku" in sandbox
    text = "\n".join(lines)
    jwk = keys["ES384"].public_jwk()
    assert jwk["x"] not in text and jwk["y"] not in text  # ids, never key material
