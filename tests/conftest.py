from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.rulebook.library import Library, load_library
from hooks.answering.eventlog import read_events
from hooks.app import create_app
from hooks.settings import Settings
from tests.fhir_server import FhirServer
from tests.postgres_server import PostgresServer, PostgresUnavailable, running_postgres

REPOSITORY = Path(__file__).resolve().parent.parent

# Tests that build Settings() themselves test other things than authentication: serve them without
# it unless they ask (tests/test_auth.py passes auth="jwt" explicitly).
os.environ.setdefault("PGX_LOOP_AUTH", "off")
pytest_plugins = ["tests.auth_app"]  # fixtures of the app with authentication on
RULES = REPOSITORY / "rules"


@pytest.fixture(scope="session")
def library() -> Library:
    return load_library(RULES)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(rules_dir=RULES, var_dir=tmp_path / "var", fhir_timeout=1.0, auth="off")


@pytest.fixture
def client(settings: Settings, library: Library) -> Iterator[TestClient]:
    with TestClient(create_app(settings, library)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole run (`make test` installs it where it runs as root)."""
    running = running_postgres()
    try:
        server = running.__enter__()
    except PostgresUnavailable as reason:  # only a failed start skips; a failed stop stays an error
        pytest.skip(f"PostgreSQL not available: {reason}")
    try:
        yield server
    finally:
        running.__exit__(None, None, None)


@pytest.fixture
def fhir_server() -> Iterator[FhirServer]:
    with FhirServer() as server:
        yield server


def logged_events(settings: Settings) -> list[dict[str, Any]]:
    """Every event in every segment of the service's event log."""
    return [event for path in sorted(settings.events_path.glob("events-*.jsonl")) for event in read_events(path)]


@pytest.fixture(scope="session")
def spark():
    """One Spark session in local mode for the whole run (pyspark from PyPI, Debian's OpenJDK 17)."""
    if shutil.which("java") is None:
        pytest.skip("Spark not available: no Java runtime (make servers installs OpenJDK 17)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.skip("Spark not available: pyspark is not installed (make install)")
    from analytics.sources.spark import local_session

    session = local_session()
    yield session
    session.stop()
