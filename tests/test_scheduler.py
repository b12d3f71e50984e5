"""The schedule: when the next cycle is due, that it runs in the background, and that failures are contained."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from analytics.data.store import connect
from analytics.scheduler import next_due, scheduled_cycle, start_scheduler
from analytics.settings import AnalyticsSettings
from engine.rulebook.library import Library
from engine.runtime.cycle_status import read_status
from tests.conftest import RULES
from tests.learning_data import simulated, truth


@pytest.fixture(scope="module")
def site_db(library: Library, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scheduled") / "site.duckdb"
    simulated(library, 20_000, seed=8, effects=truth(), path=path).close()
    return path


def settings_for(tmp_path: Path, source: Path, rules: Path = RULES, hours: float = 24) -> AnalyticsSettings:
    database = tmp_path / "loop.duckdb"
    if not database.exists():
        shutil.copy(source, database)
    return AnalyticsSettings(rules_dir=rules, var_dir=tmp_path / "var", db=database, analytics_interval_hours=hours)


def test_the_next_cycle_is_due_an_interval_after_the_last_success(tmp_path: Path, site_db: Path):
    settings = settings_for(tmp_path, site_db)
    now = datetime.now(UTC)
    assert next_due(settings, now) == now  # never run: due now
    result = scheduled_cycle(settings)
    assert result is not None and result.status == "ok"
    due = next_due(settings, now)
    assert timedelta(hours=23, minutes=59) < due - now < timedelta(hours=24, minutes=1)
    # Overdue (the service was down over night): due at once, not a day late.
    later = now + timedelta(hours=30)
    assert next_due(settings, later) == later


def test_a_scheduled_cycle_on_broken_rules_is_skipped_and_changes_nothing(tmp_path: Path, site_db: Path, caplog):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "cyp2c19-clopidogrel.yaml").write_text("id: cyp2c19-clopidogrel\ntitle: [unclosed\n")
    settings = settings_for(tmp_path, site_db, rules=rules)
    with caplog.at_level(logging.ERROR):
        assert scheduled_cycle(settings) is None
    assert "the rule files do not load" in caplog.text
    assert not settings.paths().snapshot.exists()
    status = read_status(settings.paths().status)  # what the service reports in /metrics
    assert status is not None and status.status == "skipped" and "rule files do not load" in status.message
    con = duckdb.connect(str(settings.database), read_only=True)
    assert con.execute("SELECT count(*) FROM analysis_run").fetchall() == [(0,)]
    con.close()


def test_the_scheduler_runs_an_overdue_cycle_in_a_child_process(tmp_path: Path, site_db: Path):
    settings = settings_for(tmp_path, site_db)
    scheduler = start_scheduler(settings)
    assert scheduler is not None
    try:
        # Watch the status file, not the database: a reader's lock on the file is what a cycle
        # starting at that moment would have to wait for.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and read_status(settings.paths().status) is None:
            time.sleep(0.2)
        status = read_status(settings.paths().status)
        assert status is not None and status.status == "ok", status
        con = duckdb.connect(str(settings.database), read_only=True)
        assert con.execute("SELECT status FROM analysis_run").fetchall() == [("ok",)]
        con.close()
        job = scheduler.get_job("analytics-cycle")
        assert job.next_run_time > datetime.now(UTC) + timedelta(hours=23)
    finally:
        scheduler.shutdown(wait=True)


def test_an_interval_of_zero_turns_the_schedule_off(tmp_path: Path, site_db: Path):
    assert start_scheduler(settings_for(tmp_path, site_db, hours=0)) is None


def test_replicas_sharing_a_postgresql_run_one_cycle_between_them(tmp_path: Path, site_db: Path, postgres, caplog):
    from analytics.cycle_lease import cycle_lease

    name = f"lease_{tmp_path.name[-20:].replace('-', '_')}".lower()
    postgres.create_database(name)
    settings = settings_for(tmp_path, site_db).model_copy(update={"replay_store": postgres.url(name)})

    def runs() -> list[tuple]:
        con = duckdb.connect(str(settings.database), read_only=True)
        try:
            return con.execute("SELECT status FROM analysis_run").fetchall()
        finally:
            con.close()

    with caplog.at_level(logging.INFO), cycle_lease(settings.replay_store) as held:  # another replica's cycle
        assert held
        assert scheduled_cycle(settings) is None
    assert "another replica is running it" in caplog.text
    assert runs() == []
    result = scheduled_cycle(settings)  # the lock is free: this replica runs it
    assert result is not None and result.status == "ok"
    caplog.clear()
    with caplog.at_level(logging.INFO):  # a replica whose turn came just after: the shared status says done
        assert scheduled_cycle(settings) is None
    assert "a replica finished one at" in caplog.text
    assert runs() == [("ok",)]


def test_a_cycle_waits_for_a_reader_holding_the_database_instead_of_failing(tmp_path: Path, site_db: Path):
    """An analyst's read-only look at the file when the cycle opens it delays the cycle; it does not fail it."""
    settings = settings_for(tmp_path, site_db)
    hold = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True);"
        " print('held', flush=True); time.sleep(1.5)"
    )
    reader = subprocess.Popen([sys.executable, "-c", hold, str(settings.database)], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "held"
        with pytest.raises(duckdb.IOException, match="lock"):  # no waiting: DuckDB refuses a second process
            connect(settings.database, lock_wait=0)
        started = time.monotonic()
        con = connect(settings.database)  # what the cycle calls: it waits for the reader to let go
        waited = time.monotonic() - started
        con.close()
        assert 0.5 < waited < 10
        result = scheduled_cycle(settings)
        assert result is not None and result.status == "ok"
    finally:
        reader.wait(timeout=30)
