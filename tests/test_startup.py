"""Start-up: the serving process never imports the analytics stack, so it starts in seconds and
refuses a bad configuration at once. The scheduler's child process imports DuckDB and statsmodels."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPOSITORY
from tests.live_server import LiveServer

HEAVY = ("duckdb", "pandas", "statsmodels", "scipy", "jinja2")


def imported_modules(stderr: str) -> set[str]:
    """Top-level packages named in ``python -X importtime`` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pgx_loop.cli", *args],
        cwd=REPOSITORY,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_serving_app_and_the_scheduler_import_no_analytics_stack():
    code = (
        "import sys, hooks.app, analytics.scheduler, pgx_loop.cli, pgx_loop.serve; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_configuration_error_is_reported_without_loading_the_analytics_stack(tmp_path):
    started = time.monotonic()
    result = run_cli("serve", "--port", "1", env={"PGX_LOOP_AUTH": "jwt", "PGX_LOOP_VAR_DIR": str(tmp_path)})
    elapsed = time.monotonic() - started
    assert result.returncode == 1 and "PGX_LOOP_TRUSTED_ISSUERS" in result.stderr
    assert not imported_modules(result.stderr) & set(HEAVY)
    assert elapsed < 10  # about 0.5 s on a quiet machine; generous for a shared one


def test_serve_with_the_schedule_on_answers_without_the_analytics_stack(tmp_path):
    server = LiveServer(tmp_path / "var", env={"PGX_LOOP_ANALYTICS_INTERVAL_HOURS": "24"})
    started = time.monotonic()
    with server:
        elapsed = time.monotonic() - started
        pid = server.process.pid
        maps = Path(f"/proc/{pid}/maps").read_text()
    assert "_duckdb" not in maps and "statsmodels" not in maps  # the serving process never loaded them
    assert elapsed < 20  # about 2 s on a quiet machine
