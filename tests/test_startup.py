"""Start-up: the serving process never imports the analytics stack, so it starts in seconds and
refuses a bad configuration at once. The scheduler's child process imports DuckDB and statsmodels.
Stop: SIGTERM (a container's stop) or Ctrl-C is a clean exit that takes the scheduler's child along."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_by_signal_is_a_clean_exit_that_stops_the_scheduler_and_its_child(tmp_path, stop):
    server = LiveServer(tmp_path / "var", env={"PGX_LOOP_ANALYTICS_INTERVAL_HOURS": "24"}).start()
    try:
        pid = server.process.pid
        deadline = time.monotonic() + 30
        while not children(pid) and time.monotonic() < deadline:  # the overdue cycle's process, spawned at start
            time.sleep(0.1)
        spawned = children(pid)
        assert spawned, "the scheduler started no child process"
        os.kill(pid, stop)  # the main process only, as a container runtime or an init system signals it
        assert server.process.wait(timeout=30) == 0
    finally:
        server.kill()
    output = server.output()
    assert "Scheduler has been shut down" in output
    # Before, uvicorn's re-raised SIGTERM killed the process before its exit handlers ran: the resource
    # tracker then reported the executor's semaphores as leaked; Ctrl-C printed Click's "Aborted!".
    assert "leaked" not in output and "Aborted" not in output and "Traceback" not in output
    deadline = time.monotonic() + 10
    while any(alive(child) for child in spawned) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(child) for child in spawned)
