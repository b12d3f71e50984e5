"""The served report in a real browser: headless Debian Chromium against the service run by uvicorn.

Skipped, with the reason shown (pytest -ra), where Chromium is not installed (``make browser``
installs it). The screenshot is kept in tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.cycle import run_cycle
from analytics.report.render import write_report
from engine.rulebook.library import Library
from engine.runtime.identifiers import Identifiers
from tests.cdp import Browser, chromium
from tests.learning_data import paths_in, simulated, truth
from tests.live_server import LiveServer

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BINARY = chromium()
pytestmark = pytest.mark.skipif(
    BINARY is None, reason="Debian chromium is not installed (run `make browser`, which needs apt-get as root)"
)


@pytest.fixture(scope="module")
def service(library: Library, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real service (uvicorn, a separate process) serving a report made from 8,000 simulated persons."""
    directory = tmp_path_factory.mktemp("browser")
    simulated(library, 8_000, seed=5, effects=truth(rate=0.3), path=directory / "source.duckdb").close()
    paths = paths_in(directory / "loop", directory / "source.duckdb")
    run_cycle(library, paths)
    reports = directory / "reports"
    write_report(paths.database, library, reports, min_cell=10, identifiers=Identifiers(b"k" * 32))
    env = {"PGX_LOOP_RULES_DIR": str(library.directory), "PGX_LOOP_REPORTS_DIR": str(reports)}
    with LiveServer(directory / "var", env=env) as server:
        yield server.base


def test_the_latest_report_opens_without_errors_with_its_plots(service: str):
    assert BINARY is not None
    with Browser(BINARY) as browser:
        browser.open(f"{service}/reports/latest")
        assert browser.evaluate("location.pathname").startswith("/reports/2")  # followed to the newest report
        assert browser.errors() == []
        plots = browser.evaluate(
            "Array.from(document.querySelectorAll('svg[role=img]')).filter(s => s.querySelector('title')"
            " && s.getBoundingClientRect().width > 100 && s.getBoundingClientRect().height > 100).length"
        )
        assert plots == 2  # a forest plot per rule, drawn (the trend chart appears from the third cycle on)
        marks = browser.evaluate("Array.from(document.querySelectorAll('svg g.mark-prior, svg g.mark-posterior'))"
                                 ".filter(g => g.getBoundingClientRect().width > 0).length")  # fmt: skip
        assert marks == 8  # published and combined estimates of two groups per rule
        assert browser.evaluate("performance.getEntriesByType('resource').length") == 0  # nothing else fetched
        assert browser.evaluate("document.querySelectorAll('table').length") > 10
        browser.screenshot(ARTIFACTS / "report.png")
        assert (ARTIFACTS / "report.png").stat().st_size > 10_000
        assert browser.pdf().startswith(b"%PDF")  # it prints
        # The error collection itself works: a console error on the page is seen.
        browser.evaluate("console.error('pgx-probe')")
        browser.evaluate("new Promise(r => setTimeout(r, 50))")
        assert any("pgx-probe" in error for error in browser.errors())


def test_the_index_links_to_the_report(service: str):
    assert BINARY is not None
    with Browser(BINARY) as browser:
        browser.open(f"{service}/reports/")
        assert browser.errors() == []
        target = browser.evaluate("document.querySelector('td a').getAttribute('href')")
        browser.open(f"{service}/reports/{target}")
        assert browser.evaluate("document.querySelector('h1').textContent") == "pgx-loop outcome report"
        assert browser.errors() == []
