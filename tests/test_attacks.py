"""An attacker's pass against a real `pgx-loop serve` with JWT authentication on.

One server process (TCP, real ES384 signatures, a trusted issuer whose FHIR server is a real local
one) is attacked with what the other tests leave out: request heads too large to parse cheaply,
two Authorization headers, FHIR results beyond the page limit or behind a next link that cannot
be followed, ``..;`` path segments, feedback timestamps at the edge of the calendar, and raw
paths reaching the log.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.fhir_server import FhirServer
from tests.fhirdata import PATIENT, example, genotype, hook_request, searchset
from tests.jwt_keys import SigningKey, claims, jwks, new_key
from tests.live_server import LiveServer

EHR = "https://ehr.example.org"
SELECT = "/cds-services/pgx-order-select"
FEEDBACK = SELECT + "/feedback"
MAX_PAGES = 3


class Target:
    """The server under attack, the EHR's signing key and the EHR's FHIR server."""

    def __init__(self, server: LiveServer, key: SigningKey, fhir: FhirServer) -> None:
        self.server = server
        self.key = key
        self.fhir = fhir

    def token(self, path: str, **extra: Any) -> str:
        return self.key.sign(claims(EHR, self.server.base + path, **extra))

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(path)}", **headers}
        return httpx.post(self.server.base + path, json=body, headers=headers, timeout=30)

    def log_since(self, mark: int) -> str:
        return self.server.output()[mark:]


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator[Target]:
    directory: Path = tmp_path_factory.mktemp("attacks")
    key = new_key("ES384")
    with FhirServer() as fhir:
        issuers = [{"iss": EHR, "jwks": jwks(key), "fhir_servers": [fhir.base]}]
        (directory / "issuers.yaml").write_text(yaml.safe_dump(issuers))
        server = LiveServer(
            directory / "var",
            env={
                "PGX_LOOP_AUTH": "jwt",
                "PGX_LOOP_TRUSTED_ISSUERS": str(directory / "issuers.yaml"),
                "PGX_LOOP_FHIR_MAX_PAGES": str(MAX_PAGES),
            },
        )
        server.env["PGX_LOOP_PUBLIC_BASE_URL"] = server.base
        with server:
            yield Target(server, key, fhir)


@pytest.fixture
def fhir(target: Target) -> Iterator[FhirServer]:
    """The EHR's FHIR server, reset after each test."""
    yield target.fhir
    target.fhir.observations, target.fhir.page_size, target.fhir.body = [], 0, None
    target.fhir.requests.clear()


def exchange(target: Target, head: bytes, chunks: Iterable[bytes] = (), timeout: float = 15) -> bytes:
    """Send ``head`` then ``chunks`` on one connection; the server's whole answer (until it closes).

    Read while sending: a server that answers and closes before the rest arrives resets the
    connection, and an answer still unread then may be lost.
    """
    answer = bytearray()
    with socket.create_connection(("127.0.0.1", target.server.port), timeout=timeout) as sock:

        def read() -> None:
            try:
                while data := sock.recv(65536):
                    answer.extend(data)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        try:
            sock.sendall(head)
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:  # closed by the server while we were still sending
            pass
        reader.join(timeout)
    return bytes(answer)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def repeated(total: int, piece: bytes) -> list[bytes]:
    return [piece] * (total // len(piece))


# --- The request head ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head, filler, end",
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ", b"a" * 65536, b"\r\n\r\n"),  # one huge header
        (b"GET /healthz?", b"a" * 65536, b" HTTP/1.1\r\nHost: x\r\n\r\n"),  # a huge URL
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-A: b\r\n" * 8192, b"\r\n"),  # very many headers
    ],
    ids=["header", "url", "many headers"],
)
def test_a_request_head_over_64_kib_is_refused_with_431_before_it_costs_the_loop(target, head, filler, end):
    """Unbounded, a head was accumulated by repeated concatenation: 40 MB cost 1.5 s of the event loop."""
    started = time.monotonic()
    answer = exchange(target, head, [*repeated(8 * 2**20, filler), end])
    assert status_of(answer) == 431, answer[:200]
    assert time.monotonic() - started < 5
    assert httpx.get(target.server.base + "/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("authorized", [True, False], ids=["answered with 431", "after its 401"])
def test_trailers_over_64_kib_are_refused_like_a_head(target, authorized):
    """A chunked body's trailer fields are gathered like headers: unbounded, 40 MB of them cost 2 s of the loop."""
    data = orjson.dumps(hook_request(genotypes=[genotype("CYP2C19", "*2/*2")]))
    auth = f"Authorization: Bearer {target.token(SELECT)}\r\n" if authorized else ""
    head = (
        (
            f"POST {SELECT} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n{len(data):x}\r\n"
        ).encode()
        + data
        + b"\r\n0\r\nX-Trailer: "
    )
    started = time.monotonic()
    answer = exchange(target, head, [*repeated(8 * 2**20, b"a" * 65536), b"\r\n\r\n"])
    assert status_of(answer) == (431 if authorized else 401), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1  # never a second answer to one request
    assert time.monotonic() - started < 4  # closed, not kept alive after the 401


def test_a_large_token_and_a_large_body_still_pass(target, fhir):
    """The head limit counts the head only: a 15 kB token and a 3 MB body sent in one write are served."""
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    body["padding"] = "x" * 3_000_000
    data = orjson.dumps(body)
    token = target.token(SELECT, padding="p" * 11_200)
    head = (
        f"POST {SELECT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    assert 15_000 < len(token) < 16 * 1024
    answer = exchange(target, head + data)
    assert status_of(answer) == 200, answer[:300]
    assert b'"indicator":"critical"' in answer


# --- Authorization ------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["valid first", "valid last", "both valid"])
def test_two_authorization_headers_are_refused_whichever_comes_first(target, order):
    """A proxy that reads the last header and the service the first would each see a different caller."""
    data = orjson.dumps(example("order-select-poor-metabolizer.json"))
    valid, bad = f"Bearer {target.token(SELECT)}", "Bearer not.a.token"
    first, second = {
        "valid first": (valid, bad),
        "valid last": (bad, valid),
        "both valid": (valid, f"Bearer {target.token(SELECT)}"),
    }[order]
    head = (
        f"POST {SELECT} HTTP/1.1\r\nHost: x\r\nAuthorization: {first}\r\nAuthorization: {second}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = exchange(target, head + data)
    assert status_of(answer) == 401, answer[:200]
    assert answer.endswith(b"\r\n\r\n")  # an empty body


def test_a_refusal_is_logged_with_the_route_never_the_raw_path(target):
    mark = len(target.server.output())
    raw = "/cds-services/" + PATIENT + "-" * 2000
    assert httpx.get(target.server.base + raw, timeout=5).status_code == 401
    time.sleep(0.3)  # the log line is written after the answer
    log = target.log_since(mark)
    assert "missing_token" in log
    assert PATIENT not in log


# --- Results that must not be silently cut short -----------------------------------------------


def fallback(server: str) -> dict[str, Any]:
    body = hook_request()
    del body["prefetch"]
    body["fhirServer"] = server
    body["fhirAuthorization"] = {
        "access_token": "fhir-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Observation.read",
        "subject": "pgx-loop",
    }
    return body


def test_a_result_beyond_the_page_limit_is_not_silently_dropped(target, fhir):
    """Normal results fill the pages the service may read; the disagreeing one is on the page after."""
    fhir.page_size = 1
    fhir.observations = [genotype("CYP2C19", "*1/*1", obs_id=f"nm-{n}") for n in range(MAX_PAGES)]
    fhir.observations.append(genotype("CYP2C19", "*2/*2", obs_id="pm"))
    mark = len(target.server.output())
    response = target.post(SELECT, fallback(fhir.base))
    assert response.status_code == 412, response.text  # not {"cards": []}: results were left unread
    assert f"more than {MAX_PAGES} pages" in target.log_since(mark)


def test_results_that_fit_the_page_limit_are_all_read(target, fhir):
    fhir.page_size = 1
    fhir.observations = [genotype("CYP2C19", "*1/*1", obs_id=f"nm-{n}") for n in range(MAX_PAGES - 1)]
    fhir.observations.append(genotype("CYP2C19", "*2/*2", obs_id="pm"))
    card = target.post(SELECT, fallback(fhir.base)).json()["cards"][0]
    assert "disagree" in card["detail"]


@pytest.mark.parametrize("server", [None, "https://unlisted.example.org/fhir"], ids=["no fhirServer", "unlisted"])
def test_a_paged_prefetch_whose_next_page_cannot_be_read_gives_412(target, fhir, server):
    """The first page holds a normal result; the next one, which nobody may fetch, could disagree."""
    first = searchset(genotype("CYP2C19", "*1/*1"))
    first["link"] = [{"relation": "next", "url": f"{fhir.base}/Observation?patient={PATIENT}&page=2"}]
    body = hook_request()
    body["prefetch"] = {"pgxGenotypes": first, "pgxImplications": None}
    if server:
        body["fhirServer"] = server
    response = target.post(SELECT, body)
    assert response.status_code == 412, response.text
    assert fhir.requests == []


def test_a_paged_prefetch_is_completed_from_a_listed_server(target, fhir):
    fhir.observations = [genotype("CYP2C19", "*2/*2")]
    first = searchset(genotype("CYP2C19", "*2/*2"))
    first["link"] = [{"relation": "next", "url": f"{fhir.base}/Observation?patient={PATIENT}&code=84413-4"}]
    body = fallback(fhir.base)
    body["prefetch"] = {"pgxGenotypes": first, "pgxImplications": None}
    assert target.post(SELECT, body).json()["cards"][0]["indicator"] == "critical"
    assert len(fhir.requests) == 1


# --- Paths that leave the listed FHIR base on servers that read ";" as a parameter -------------


@pytest.mark.parametrize("tail", ["/..;/admin", "/r4/..;/..;/admin", "/.;/..;x/admin", "/..;jsessionid=1"])
def test_a_fhir_server_with_dot_segments_behind_parameters_is_refused(target, fhir, tail):
    """Tomcat and Jetty read `/fhir/..;/admin` as `/admin`: outside the listed base, with the EHR's token."""
    response = target.post(SELECT, fallback(fhir.base + tail))
    assert response.status_code == 400, response.text
    assert "fhirServer" in response.text
    assert fhir.requests == []


def test_a_next_link_with_dot_segments_behind_parameters_is_not_followed(target, fhir):
    page = searchset(genotype("CYP2C19", "*2/*2"))
    page["link"] = [{"relation": "next", "url": f"{fhir.base}/..;/admin/Observation?page=2"}]
    fhir.body = orjson.dumps(page)
    response = target.post(SELECT, fallback(fhir.base))
    assert response.status_code == 412, response.text
    assert all("..;" not in path for path, _ in fhir.requests)


# --- Feedback -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_feedback_time_that_is_outside_the_calendar_in_utc_gets_400_not_500(target, stamp):
    item = {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": stamp}
    response = target.post(FEEDBACK, {"feedback": [item]})
    assert response.status_code == 400, response.text
    assert "outcomeTimestamp" in response.text


# --- Which gene a genotype is about -------------------------------------------------------------


def test_a_gene_coding_that_is_not_an_object_gets_400_not_500(target):
    other = genotype("CYP2D6", "*4/*4")
    other["component"][0]["valueCodeableConcept"] = {"coding": [7]}
    response = target.post(SELECT, hook_request(genotypes=[genotype("CYP2C19", "*2/*2"), other]))
    assert response.status_code == 400, response.text
    assert "prefetch.pgxGenotypes.entry.1.resource" in response.text


GENE_NAMED_BY_NOTHING = {
    "null": None,
    "empty": {},
    "no codings": {"coding": []},
    "an empty coding": {"coding": [{}]},
    "a gene not ours": {"coding": [{"system": "http://www.genenames.org", "code": "HGNC:99999"}]},
    "another gene of ours": {"coding": [{"system": "http://www.genenames.org", "code": "HGNC:2623"}]},  # CYP2C9
}


@pytest.mark.parametrize("case", sorted(GENE_NAMED_BY_NOTHING))
def test_a_genotype_whose_gene_studied_does_not_name_the_gene_of_its_value_is_refused_not_skipped(target, case):
    """`CYP2C19 *2/*2` with a gene-studied component naming no gene of ours, or CYP2C9, was skipped: no card."""
    poor = genotype("CYP2C19", "*2/*2")
    poor["component"][0]["valueCodeableConcept"] = GENE_NAMED_BY_NOTHING[case]
    response = target.post(SELECT, hook_request(genotypes=[poor]))
    assert response.status_code == 400, response.text  # never {"cards": []}
    assert "gene studied" in response.text


@pytest.mark.parametrize("case", sorted(GENE_NAMED_BY_NOTHING))
def test_such_a_genotype_of_a_gene_the_order_does_not_need_costs_no_card(target, case):
    other = genotype("CYP2D6", "*4/*4")
    other["component"][0]["valueCodeableConcept"] = GENE_NAMED_BY_NOTHING[case]
    response = target.post(SELECT, hook_request(genotypes=[other, genotype("CYP2C19", "*2/*2")]))
    assert [card["indicator"] for card in response.json()["cards"]] == ["critical"]
