"""schemathesis against the service's own OpenAPI schema, over real HTTP: no 5xx, every response as documented.

Examples are bounded per operation so that CI stays fast. Both generation modes run: bodies
valid per the schema (to reach the engine) and deliberately malformed ones (what an EHR may send
wrongly matters as much as what it should send). Service ids are pinned to the real services
half of the time, so generated bodies reach the hook handlers rather than stopping at a 404.

Not checked: that every schema-valid body is accepted. The schema cannot say that a service
answers one hook only, or that an accepted card needs the suggestion it accepted; a 400 saying so
is the right answer (and is itself checked against the schema).
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from hooks.app import create_app
from hooks.protocol.discovery import SERVICES
from hooks.settings import Settings
from tests.jwt_keys import jwks, new_key
from tests.live_server import LiveServer

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(auth="off")).openapi())
OPERATIONS = {operation.label: operation for operation in (r.ok() for r in SCHEMA.get_all_operations())}
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
# A GET without parameters has no malformed form to generate.
CASES = [
    (label, mode)
    for label, operation in sorted(OPERATIONS.items())
    for mode in ((POSITIVE, NEGATIVE) if operation.method.upper() == "POST" else (POSITIVE,))
]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("fuzz") / "var") as server:
        yield server


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """The service as deployed: authentication on, and the fuzzer holding no token."""
    directory = tmp_path_factory.mktemp("fuzz-auth")
    issuers = directory / "issuers.json"
    issuers.write_text(json.dumps([{"iss": "https://ehr.example.org", "jwks": jwks(new_key("ES384"))}]))
    server = LiveServer(directory / "var", env={"PGX_LOOP_AUTH": "jwt", "PGX_LOOP_TRUSTED_ISSUERS": str(issuers)})
    server.env["PGX_LOOP_PUBLIC_BASE_URL"] = server.base
    with server:
        yield server


def _cases(operation, mode):
    if "{service_id}" not in operation.path:
        return operation.as_strategy(mode)
    pinned = st.sampled_from(sorted(SERVICES)).flatmap(
        lambda service: operation.as_strategy(mode, path_parameters={"service_id": service})
    )
    return st.one_of(pinned, operation.as_strategy(mode))


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{label} {mode.value}" for label, mode in CASES])
def test_every_operation_answers_as_documented_and_never_with_a_5xx(live, label, mode):
    operation = OPERATIONS[label]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=_cases(operation, mode))
    def check(case):
        case.call_and_validate(base_url=live.base, excluded_checks=[positive_data_acceptance])

    check()


CDS = sorted(label for label in OPERATIONS if " /cds-services" in label)


@pytest.mark.parametrize("label", CDS)
def test_without_a_token_every_cds_call_gets_a_documented_401(guarded, label):
    operation = OPERATIONS[label]

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=_cases(operation, POSITIVE))
    def check(case):
        response = case.call_and_validate(base_url=guarded.base, excluded_checks=[positive_data_acceptance])
        assert response.status_code == 401 and response.content == b""

    check()
