"""``fhirServer`` is only contacted when configuration lists it (issue 10, SSRF and the FHIR fallback).

Every "never contacted" claim is checked on a real listener on 127.0.0.1 that counts the TCP
connections it accepts: the service must not even connect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
import yaml
from fastapi.testclient import TestClient

from hooks.app import create_app
from hooks.fhir.prefetch import UNREADABLE
from hooks.protocol.fhir_servers import FhirServerConfigError
from hooks.settings import Settings
from tests.conftest import RULES
from tests.fhir_server import FhirServer
from tests.fhirdata import PATIENT, genotype, hook_request
from tests.jwt_keys import claims, jwks, new_key
from tests.live_server import LiveServer

SELECT = "/cds-services/pgx-order-select"
BASE = "https://cds.example.org/pgx"
EHR = "https://ehr.example.org"
OTHER = "https://other-ehr.example.org"
DISCARD = "http://127.0.0.1:9/fhir"  # nothing listens on the discard port


@pytest.fixture
def internal() -> Iterator[FhirServer]:
    """An 'internal' FHIR server nobody listed, holding a poor metabolizer's genotype."""
    with FhirServer() as server:
        server.observations = [genotype("CYP2C19", "*2/*2")]
        yield server


def fallback(server: str, token: str | None = "fhir-token") -> dict:
    body = hook_request()
    del body["prefetch"]
    body["fhirServer"] = server
    if token:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/Observation.read",
            "subject": "pgx-loop",
        }
    return body


def serving(settings: Settings, library, **update) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=update), library))


def assert_not_contacted(response, server: FhirServer) -> None:
    assert response.status_code == 412, response.text
    assert "no usable fhirServer" in response.json()["issue"][0]["diagnostics"]
    assert server.connections == 0 and server.requests == []


# --- auth off: PGX_LOOP_FHIR_SERVERS -------------------------------------------------------


def test_a_listed_server_is_searched_with_the_patient_as_an_encoded_parameter(settings, library, internal):
    with serving(settings, library, fhir_servers=internal.base) as client:
        response = client.post(SELECT, json=fallback(internal.base))
    assert response.json()["cards"][0]["indicator"] == "critical"
    for path, auth in internal.requests:
        query = parse_qs(urlsplit(path).query)
        assert urlsplit(path).path == "/fhir/Observation" and auth == "Bearer fhir-token"
        assert set(query) == {"patient", "code"} and query["patient"] == [PATIENT]


def test_an_unlisted_server_is_never_contacted(settings, library, internal, caplog):
    with FhirServer() as listed, serving(settings, library, fhir_servers=listed.base) as client:
        response = client.post(SELECT, json=fallback(internal.base))
    assert_not_contacted(response, internal)
    assert any("not on the FHIR server list" in record.getMessage() for record in caplog.records)
    assert not any("fhir-token" in record.getMessage() for record in caplog.records)


def test_no_list_means_no_server_is_contacted(settings, library, internal):
    with serving(settings, library) as client:
        assert_not_contacted(client.post(SELECT, json=fallback(internal.base)), internal)


def test_a_server_under_a_listed_base_is_allowed(settings, library, internal):
    with serving(settings, library, fhir_servers=internal.base.removesuffix("/fhir")) as client:
        response = client.post(SELECT, json=fallback(internal.base))
    assert response.status_code == 200 and internal.connections > 0


@pytest.mark.parametrize(
    "variant",
    [
        lambda base: base + "2",  # /fhir2 is not under /fhir
        lambda base: base.replace("/fhir", "/other"),
        lambda base: base.replace("/fhir", "/fhir/../other"),
        lambda base: base.replace("http://", "https://"),
    ],
)
def test_near_misses_of_a_listed_base_are_not_contacted(settings, library, internal, variant):
    with serving(settings, library, fhir_servers=internal.base) as client:
        assert_not_contacted(client.post(SELECT, json=fallback(variant(internal.base))), internal)


def test_another_port_or_another_spelling_of_loopback_is_not_contacted(settings, library, internal):
    port = internal.base.split(":")[2].split("/")[0]
    with FhirServer() as listed, serving(settings, library, fhir_servers=listed.base) as client:
        for spelling in ("2130706433", "0x7f000001", "127.1", "localhost", "[::ffff:127.0.0.1]"):
            response = client.post(SELECT, json=fallback(f"http://{spelling}:{port}/fhir"))
            assert_not_contacted(response, internal)
    assert listed.connections == 0


def test_a_bad_list_refuses_to_start(settings, library):
    bad = settings.model_copy(update={"fhir_servers": "https://ehr.example.org/fhir?x=1"})
    with pytest.raises(FhirServerConfigError, match=r"PGX_LOOP_FHIR_SERVERS: .* must not carry a query"):
        create_app(bad, library)


# --- fhirServer values refused outright: 400, never 500, nothing contacted -----------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (lambda base: base + "?_count=1000", "query"),
        (lambda base: base + "#x", "fragment"),
        (lambda base: base.replace("http://", "http://user:secret@"), "user name"),
        (lambda base: base.replace("/fhir", "/fhir%2F..%2Fadmin"), "hide"),
        (lambda base: base + "\x00", "not a valid URL"),
        (lambda base: "http://[::1/", "not a valid URL"),
        (lambda base: "http://xn--/", "not a valid URL"),
        (lambda base: f"http://{'a' * 64}.example.org/fhir", "not a valid URL"),
        (lambda base: base + "/" + "a" * 3000, "longer than"),
        (lambda base: "ftp://127.0.0.1/fhir", "http"),
        (lambda base: "http:///fhir", "host"),
    ],
)
def test_unusable_fhir_server_values_get_400_naming_the_field_only(settings, library, internal, value, reason):
    fhir_server = value(internal.base)
    with serving(settings, library, fhir_servers=internal.base) as client:
        response = client.post(SELECT, json=fallback(fhir_server))
    assert response.status_code == 400, response.text
    [issue] = response.json()["issue"]
    assert issue["diagnostics"].startswith("fhirServer: ") and reason in issue["diagnostics"]
    assert "secret" not in response.text and "a" * 64 not in response.text
    assert internal.connections == 0


# --- auth on: each issuer's fhir_servers ---------------------------------------------------


@pytest.fixture
def issuer_keys():
    return {EHR: new_key("ES256"), OTHER: new_key("ES256")}


def with_issuers(tmp_path, library, issuer_keys, ehr_servers: list[str]) -> TestClient:
    path = tmp_path / "issuers.yaml"
    entries = [
        {"iss": EHR, "jwks": jwks(issuer_keys[EHR]), "fhir_servers": ehr_servers},
        {"iss": OTHER, "jwks": jwks(issuer_keys[OTHER])},
    ]
    path.write_text(yaml.safe_dump(entries))
    settings = Settings(
        rules_dir=RULES, var_dir=tmp_path / "var", auth="jwt", trusted_issuers=path, public_base_url=BASE
    )
    return TestClient(create_app(settings, library))


def call_as(client: TestClient, issuer_keys, iss: str, body: dict):
    token = issuer_keys[iss].sign(claims(iss, BASE + SELECT))
    return client.post(
        SELECT,
        content=orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def test_an_issuer_reaches_only_its_own_servers(tmp_path, library, issuer_keys, internal):
    with with_issuers(tmp_path, library, issuer_keys, [internal.base]) as client:
        assert_not_contacted(call_as(client, issuer_keys, OTHER, fallback(internal.base)), internal)
        response = call_as(client, issuer_keys, EHR, fallback(internal.base))
    assert response.status_code == 200 and response.json()["cards"][0]["indicator"] == "critical"


def test_with_auth_on_http_needs_an_http_entry(tmp_path, library, issuer_keys, internal):
    https_only = internal.base.replace("http://", "https://")
    with with_issuers(tmp_path, library, issuer_keys, [https_only]) as client:
        assert_not_contacted(call_as(client, issuer_keys, EHR, fallback(internal.base)), internal)


def test_an_issuer_entry_with_an_unusable_url_refuses_to_start(tmp_path, library, issuer_keys):
    from hooks.security.auth import AuthConfigError

    with pytest.raises(AuthConfigError, match="fhir_servers"):
        with_issuers(tmp_path, library, issuer_keys, ["https://user:pw@ehr.example.org/fhir"])


# --- what a caller learns, and what one search may cost -------------------------------------


def test_every_failure_reads_the_same_to_the_caller(settings, library, caplog):
    answers = set()
    with FhirServer() as failing, serving(settings, library, fhir_servers=f"{failing.base},{DISCARD}") as client:
        for status, body in ((404, None), (500, None), (200, b"not json"), (200, b"[]")):
            failing.status, failing.body = status, body
            answers.add(client.post(SELECT, json=fallback(failing.base)).text)
        answers.add(client.post(SELECT, json=fallback(DISCARD)).text)
    assert len(answers) == 1 and UNREADABLE in answers.pop()
    causes = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "412" in r.getMessage()]
    assert [cause for cause in causes if "HTTP 404" in cause] and [c for c in causes if "unreachable" in c]


def page(entries: int, filler: int = 0, next_url: str | None = None) -> bytes:
    bundle: dict = {"resourceType": "Bundle", "type": "searchset", "entry": [{} for _ in range(entries)]}
    if filler:
        bundle["filler"] = "x" * filler
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return orjson.dumps(bundle)


def test_the_byte_cap_holds_across_all_pages_of_a_search(settings, library, caplog):
    with FhirServer() as server:
        # Each page is under the cap; four of them are not.
        server.body = lambda path: page(0, 300_000, f"{server.base}/Observation?page={len(server.requests)}")
        with serving(settings, library, fhir_servers=server.base, fhir_max_bytes=1_000_000) as client:
            response = client.post(SELECT, json=fallback(server.base))
    assert response.status_code == 412
    assert any("more than 1000000 bytes in one search" in r.getMessage() for r in caplog.records)


def test_the_entry_limit_applies_to_fetched_bundles(settings, library, caplog):
    with FhirServer() as server:
        server.body = page(50)
        with serving(settings, library, fhir_servers=server.base, max_bundle_entries=20) as client:
            response = client.post(SELECT, json=fallback(server.base))
    assert response.status_code == 412
    assert any("more than 20 entries in one search" in r.getMessage() for r in caplog.records)


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


def test_a_huge_bundle_of_empty_objects_does_not_blow_up_the_worker(tmp_path):
    huge = page(6_000_000)  # ~18 MB of {}: about 1 GB once parsed into Python objects
    with FhirServer() as server:
        server.body = huge
        with LiveServer(tmp_path / "var", env={"PGX_LOOP_FHIR_SERVERS": server.base}) as service:
            before = _peak_rss_mb(service.process.pid)
            response = httpx.post(service.base + SELECT, json=fallback(server.base), timeout=30)
            after = _peak_rss_mb(service.process.pid)
    assert response.status_code == 412
    assert after - before < 100, f"peak RSS grew {after - before:.0f} MB"
