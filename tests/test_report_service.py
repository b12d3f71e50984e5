"""``/reports/`` in the real app: the index, the latest report, by day, the CSVs; read-only, no way out."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.rulebook.library import Library
from hooks.app import create_app
from hooks.settings import Settings

OLDER, NEWER, OTHER_DAY = "2026-11-30T020000Z", "2026-12-01T020000Z", "2026-12-01T010000Z"


def fake_report(root: Path, stamp: str) -> None:
    folder = root / stamp
    folder.mkdir(parents=True)
    (folder / "report.html").write_text(f"<!doctype html><title>{stamp}</title>")
    (folder / "cohort.csv").write_text("group,users\nreference,120\n")


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    root = tmp_path / "reports"
    for stamp in (OLDER, NEWER, OTHER_DAY):
        fake_report(root, stamp)
    (root / "index.html").write_text("<!doctype html><title>index</title>")
    (tmp_path / "secret.txt").write_text("outside the reports folder")
    return root


@pytest.fixture
def served(reports: Path, tmp_path: Path, library: Library) -> Iterator[TestClient]:
    settings = Settings(rules_dir=library.directory, var_dir=tmp_path / "var", reports_dir=reports)
    with TestClient(create_app(settings, library), follow_redirects=False) as client:
        yield client


def test_the_index_and_each_report_are_served_as_pages(served: TestClient):
    index = served.get("/reports/")
    assert index.status_code == 200 and "index" in index.text
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    page = served.get(f"/reports/{OLDER}/")
    assert page.status_code == 200 and OLDER in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    exported = served.get(f"/reports/{OLDER}/cohort.csv")
    assert exported.status_code == 200 and exported.text.startswith("group,users")
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"


def test_latest_and_a_day_lead_to_the_newest_report(served: TestClient):
    latest = served.get("/reports/latest")
    assert latest.status_code == 307 and latest.headers["location"] == f"/reports/{NEWER}/"
    day = served.get("/reports/2026-12-01")
    assert day.status_code == 307 and day.headers["location"] == f"/reports/{NEWER}/"
    assert served.get("/reports/2026-11-30").headers["location"] == f"/reports/{OLDER}/"
    assert served.get("/reports/2026-10-01").status_code == 404
    assert served.get(f"/reports/{OLDER}").headers["location"] == f"/reports/{OLDER}/"


@pytest.mark.parametrize(
    "path",
    [
        "/reports/..%2fsecret.txt",
        f"/reports/{OLDER}/..%2f..%2fsecret.txt",
        f"/reports/{OLDER}/%2e%2e/%2e%2e/secret.txt",
        "/reports/%2e%2e/secret.txt",
        f"/reports/{OLDER}/report.py",
        f"/reports/{OLDER}/.hidden.csv",
        "/reports/2026-12-01T999999Z/report.html",
        "/reports/not-a-report/",
    ],
)
def test_nothing_outside_the_reports_is_reachable(served: TestClient, path: str):
    response = served.get(path)
    assert response.status_code in (404, 405), (path, response.status_code)
    assert "outside the reports folder" not in response.text


def test_reports_are_read_only(served: TestClient):
    assert served.post("/reports/").status_code == 405
    assert served.delete(f"/reports/{OLDER}/report.html").status_code == 405


def test_without_reports_yet_the_answer_says_so(tmp_path: Path, library: Library):
    settings = Settings(rules_dir=library.directory, var_dir=tmp_path / "var")
    with TestClient(create_app(settings, library)) as client:
        for path in ("/reports/", "/reports/latest"):
            response = client.get(path)
            assert response.status_code == 404 and "no reports yet" in response.json()["issue"][0]["diagnostics"]


def test_the_service_does_not_load_duckdb_or_analytics_for_reports():
    code = "import sys, hooks.app; print([m for m in sys.modules if m.split('.')[0] in ('duckdb', 'analytics')])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
